/* fuzz_shared.c — the shared-store server's message parser
 * (lib/shared/proto.c) on arbitrary bytes.
 *
 * Input: byte 0 = the connection's staging slots, byte 1 bit 0 = whether
 * the handshake is done, the rest = one received message. Invariants: the
 * parser never reads past the message (ASan), and what it accepts is
 * exactly what the server may act on: a known op, n within bounds, a body
 * of exactly the length the op and n give (COMMIT: none, n counting the
 * reservation's keys), every slot id in range, HELLO only first. Corpus: corpus/shared (make_shared_seeds.py). */
#include <string.h>

#include "fuzz.h"
#include "shared/proto.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t nslots = data[0];
    int handshaken = data[1] & 1;
    size_t len = size - 2;
    /* A copy of exactly len bytes, so ASan sees any read past the end. */
    uint8_t *msg = malloc(len ? len : 1);
    if (!msg)
        return 0;
    memcpy(msg, data + 2, len);
    kvt__request rq;
    const char *why = NULL;
    int rc = kvt__proto_parse_request(msg, len, nslots, handshaken, &rq, &why);
    FUZZ_CHECK(rc == 0 || rc == KVT_EINVAL, "parser returned %d", rc);
    FUZZ_CHECK(why != NULL, "no reason");
    if (rc == 0) {
        FUZZ_CHECK(len >= sizeof(kvt__msg_hdr) && len <= KVT_PROTO_MAX_MSG, "length %zu", len);
        if (!handshaken) {
            FUZZ_CHECK(rq.op == KVT_OP_HELLO && rq.hello, "accepted op %u before HELLO", rq.op);
            FUZZ_CHECK(len == sizeof(kvt__msg_hdr) + sizeof(kvt__hello), "HELLO of %zu", len);
        } else {
            FUZZ_CHECK(rq.op >= KVT_OP_LOOKUP && rq.op < KVT_OP_COUNT_, "op %u", rq.op);
            FUZZ_CHECK(rq.n <= KVT_PROTO_MAX_KEYS, "n %u", rq.n);
            int slots = rq.op == KVT_OP_PUT || rq.op == KVT_OP_GET;
            int bodiless = rq.op == KVT_OP_COMMIT;
            size_t want = sizeof(kvt__msg_hdr) +
                          (bodiless ? 0 : (size_t)rq.n * (16 + (slots ? 4 : 0)));
            FUZZ_CHECK(len == want, "length %zu for n %u op %u", len, rq.n, rq.op);
            if (bodiless)
                FUZZ_CHECK(!rq.keys && rq.arg0 <= 1 && !rq.arg1, "COMMIT %u %u", rq.arg0, rq.arg1);
            else if (rq.n)
                FUZZ_CHECK((const uint8_t *)rq.keys == msg + sizeof(kvt__msg_hdr), "keys");
            for (uint32_t i = 0; slots && i < rq.n; i++)
                FUZZ_CHECK(kvt__proto_slot(&rq, i) < nslots, "slot %u of %u",
                           kvt__proto_slot(&rq, i), nslots);
            if (rq.op == KVT_OP_PIN)
                FUZZ_CHECK(rq.arg0 > 0 && rq.arg0 <= INT32_MAX, "lease %u", rq.arg0);
            if (rq.op == KVT_OP_PUT || rq.op == KVT_OP_GET || rq.op == KVT_OP_RESERVE ||
                rq.op == KVT_OP_HOLD)
                FUZZ_CHECK(!(rq.arg0 & ~KVT_PROTO_IO_FLAGS), "flags %#x", rq.arg0);
            if (rq.op == KVT_OP_HOLD)
                FUZZ_CHECK(!rq.arg1 && !(rq.arg0 & KVT_IO_DURABLE), "hold args");
            if (rq.op == KVT_OP_UNHOLD)
                FUZZ_CHECK(!rq.n && !rq.arg0 && !rq.arg1, "UNHOLD with arguments");
            if (rq.op != KVT_OP_FLUSH && rq.op != KVT_OP_CLEAR && rq.op != KVT_OP_STATS &&
                rq.op != KVT_OP_UNHOLD)
                FUZZ_CHECK(rq.n > 0, "op %u with no keys", rq.op);
        }
    }
    free(msg);
    return 0;
}
