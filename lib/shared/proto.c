/* proto.c — checking the messages a kvtier server receives (docs/shared.md). */
#include "shared/proto.h"

#include <string.h>

static int refuse(const char **why, const char *reason)
{
    *why = reason;
    return KVT_EINVAL;
}

/* Whether op carries keys, and slots after them. */
static int op_has_slots(uint16_t op)
{
    return op == KVT_OP_PUT || op == KVT_OP_GET;
}

static int op_takes_keys(uint16_t op)
{
    return (op >= KVT_OP_LOOKUP && op <= KVT_OP_FLUSH && op != KVT_OP_CLEAR) ||
           op == KVT_OP_RESERVE || op == KVT_OP_HOLD;
}

size_t kvt__proto_reply_payload(uint16_t op, uint32_t n)
{
    switch (op) {
    case KVT_OP_LOOKUP:
    case KVT_OP_CONTAINS:
        return n;
    case KVT_OP_RELEASE:
    case KVT_OP_PUT:
    case KVT_OP_GET:
    case KVT_OP_FLUSH:
    case KVT_OP_COMMIT:
        return (size_t)n * sizeof(int32_t);
    case KVT_OP_RESERVE:
    case KVT_OP_HOLD:
        return (size_t)n * (sizeof(int32_t) + sizeof(uint64_t));
    default:
        return 0;
    }
}

uint32_t kvt__proto_slot(const kvt__request *r, uint32_t i)
{
    const uint8_t *p = r->slots + (size_t)i * 4;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int kvt__proto_parse_request(const void *buf, size_t len, uint32_t nslots, int handshaken,
                             kvt__request *out, const char **why)
{
    static const char *none = "";
    *why = none;
    memset(out, 0, sizeof *out);
    if (!buf || len < sizeof(kvt__msg_hdr))
        return refuse(why, "shorter than a header");
    if (len > KVT_PROTO_MAX_MSG)
        return refuse(why, "longer than the largest message");
    kvt__msg_hdr h;
    memcpy(&h, buf, sizeof h); /* the packet may sit at any alignment */
    if (h.magic != KVT_PROTO_MAGIC)
        return refuse(why, "bad magic");
    if (h.reserved)
        return refuse(why, "reserved field is not zero");
    out->op = h.op;
    out->seq = h.seq;
    out->n = h.n;
    out->arg0 = h.arg0;
    out->arg1 = h.arg1;
    size_t body = len - sizeof h;
    const uint8_t *p = (const uint8_t *)buf + sizeof h;

    if (!handshaken) {
        if (h.op != KVT_OP_HELLO)
            return refuse(why, "first message is not HELLO");
        if (h.n || body != sizeof(kvt__hello))
            return refuse(why, "HELLO of the wrong length");
        memcpy(&out->hello_copy, p, sizeof out->hello_copy);
        out->hello = &out->hello_copy;
        return 0;
    }
    if (h.op == KVT_OP_HELLO)
        return refuse(why, "HELLO twice");
    if (h.op < KVT_OP_LOOKUP || h.op >= KVT_OP_COUNT_)
        return refuse(why, "unknown op");
    if (h.op == KVT_OP_COMMIT) { /* n counts the reservation's keys; no body */
        if (h.n == 0 || h.n > KVT_PROTO_MAX_KEYS || body || h.arg0 > 1 || h.arg1)
            return refuse(why, "bad COMMIT");
        return 0;
    }
    if (!op_takes_keys(h.op)) {
        if (h.n || body || h.arg0 || h.arg1)
            return refuse(why, "arguments to an op that takes none");
        return 0;
    }
    if (h.n > KVT_PROTO_MAX_KEYS)
        return refuse(why, "too many keys");
    if (h.n == 0 && h.op != KVT_OP_FLUSH)
        return refuse(why, "no keys");
    size_t per_key = sizeof(kvt_key) + (op_has_slots(h.op) ? 4u : 0u);
    if (body != (size_t)h.n * per_key)
        return refuse(why, "body length does not match the key count");
    out->keys = (const kvt_key *)(const void *)p;
    switch (h.op) {
    case KVT_OP_LOOKUP:
        if (h.arg0 > INT32_MAX || h.arg1)
            return refuse(why, "bad lease or argument");
        break;
    case KVT_OP_PIN:
        if (h.arg0 == 0 || h.arg0 > INT32_MAX || h.arg1)
            return refuse(why, "bad lease or argument");
        break;
    case KVT_OP_RESERVE:
    case KVT_OP_HOLD:
        if (h.arg0 & ~KVT_PROTO_IO_FLAGS)
            return refuse(why, "unknown I/O flags");
        if (h.op == KVT_OP_HOLD && (h.arg1 || (h.arg0 & KVT_IO_DURABLE)))
            return refuse(why, "put-only argument on a hold");
        break;
    case KVT_OP_PUT:
    case KVT_OP_GET:
        if (h.arg0 & ~KVT_PROTO_IO_FLAGS)
            return refuse(why, "unknown I/O flags");
        if (h.op == KVT_OP_GET && (h.arg1 || (h.arg0 & KVT_IO_DURABLE)))
            return refuse(why, "put-only argument on a get");
        out->slots = p + (size_t)h.n * sizeof(kvt_key);
        for (uint32_t i = 0; i < h.n; i++)
            if (kvt__proto_slot(out, i) >= nslots)
                return refuse(why, "staging slot out of range");
        break;
    default:
        if (h.arg0 || h.arg1)
            return refuse(why, "arguments to an op that takes none");
    }
    return 0;
}
