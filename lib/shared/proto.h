/*
 * proto.h — the kvtier shared-store protocol, version 1 (docs/shared.md).
 *
 * One message per SOCK_SEQPACKET packet, little-endian, every message opening
 * with kvt__msg_hdr. The server parses each request with
 * kvt__proto_parse_request(), which trusts nothing: a message it refuses
 * closes that connection only. Bytes of blocks never cross the socket: they
 * lie in a staging memfd the server passes at the handshake (SCM_RIGHTS),
 * and requests name the staging slots that hold them.
 */
#ifndef KVT_SHARED_PROTO_H
#define KVT_SHARED_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "kvtier.h"

#define KVT_PROTO_MAGIC 0x5054564bu /* "KVTP" as little-endian bytes */
#define KVT_PROTO_VERSION 2u
/* The oldest version a server still answers (with the staging path only). */
#define KVT_PROTO_VERSION_MIN 1u
/* The largest message either side sends or accepts. */
#define KVT_PROTO_MAX_MSG (128u * 1024u)
/* Keys in one request; the client splits larger calls. */
#define KVT_PROTO_MAX_KEYS 4096u

enum kvt__op {
    KVT_OP_HELLO = 1,    /* client: version in arg0, body kvt__hello */
    KVT_OP_WELCOME = 2,  /* server: rc in arg0, message length in arg1, body kvt__welcome */
    KVT_OP_LOOKUP = 3,   /* n keys; arg0 lease_ms; reply: tiers u8[n] */
    KVT_OP_CONTAINS = 4, /* n keys; reply: tiers u8[n] */
    KVT_OP_TOUCH = 5,    /* n keys */
    KVT_OP_PIN = 6,      /* n keys; arg0 lease_ms */
    KVT_OP_RELEASE = 7,  /* n keys; reply: status i32[n] */
    KVT_OP_PUT = 8,      /* n keys, n u32 slots; arg0 flags, arg1 retain_s; reply: status i32[n] */
    KVT_OP_GET = 9,      /* n keys, n u32 slots; arg0 flags; reply: status i32[n] */
    KVT_OP_REMOVE = 10,  /* n keys */
    KVT_OP_CLEAR = 11,   /* no keys */
    KVT_OP_FLUSH = 12,   /* n keys (0: everything held only above); reply: status i32[n] */
    KVT_OP_STATS = 13,   /* no keys; reply: n entries {u64 value, u16 len, name[len]} */
    /* Version 2, zero-copy through the shared DRAM arena: */
    KVT_OP_RESERVE = 14, /* n keys; arg0 flags, arg1 retain_s; reply: status i32[n], offset u64[n] */
    KVT_OP_COMMIT = 15,  /* n = the reservation's keys, no body; arg0 0 commit, 1 abort;
                            reply: status i32[n] */
    KVT_OP_HOLD = 16,    /* n keys; arg0 flags (NO_PROMOTE); reply: status i32[n], offset u64[n] */
    KVT_OP_UNHOLD = 17,  /* no keys: releases every block HOLD gave; no reply */
    KVT_OP_COUNT_ = 18,
    KVT_OP_REPLY = 0x80 /* or'ed into a request's op in its reply */
};

/* 24 bytes. In a reply: op = request op | KVT_OP_REPLY, seq and n echoed
 * (n = entries for STATS), arg0 = the call's result (int32), arg1 = bytes of
 * the error message that ends the reply (0 when none). */
typedef struct kvt__msg_hdr {
    uint32_t magic;
    uint16_t op;
    uint16_t reserved; /* 0 */
    uint32_t seq;
    uint32_t n;
    uint32_t arg0;
    uint32_t arg1;
} kvt__msg_hdr;

/* HELLO's body: what the client expects (0: whatever the server has). */
typedef struct kvt__hello {
    uint64_t block_bytes;
    uint32_t frags;
    uint32_t staging_blocks; /* wished for; the server decides */
} kvt__hello;

/* WELCOME's body; the staging memfd rides along when arg0 is 0. Version
 * 2 adds a u64 after the tier list: the shared arena's bytes, 0 when there
 * is none; when not 0 the arena's memfd rides along as a second fd. */
typedef struct kvt__welcome {
    uint32_t version;
    uint32_t frags;
    uint64_t block_bytes;
    uint32_t staging_blocks;
    uint32_t max_keys;
    uint32_t ntiers; /* kvt__tier_info entries after this struct (<= KVT_MAX_TIERS) */
    uint32_t reserved;
} kvt__welcome;

/* The served store's tier instances, fastest first: lookups report their
 * indexes, and a client names them as the server does. */
typedef struct kvt__tier_info {
    char name[KVT_TIER_NAME_MAX]; /* NUL-terminated */
    int32_t available;            /* kvt_store_tier_available's answer */
    uint32_t reserved;
} kvt__tier_info;

/* A request as the server understands it; pointers into the message. */
typedef struct kvt__request {
    uint16_t op;
    uint32_t seq;
    uint32_t n;
    uint32_t arg0, arg1;
    const kvt_key *keys;    /* n; unaligned-safe: kvt_key is bytes */
    const uint8_t *slots;   /* n little-endian u32 (PUT, GET), else NULL */
    const kvt__hello *hello; /* HELLO only; copied, aligned */
    kvt__hello hello_copy;
} kvt__request;

/* Flags a client may send with PUT/GET; the rest are refused. */
#define KVT_PROTO_IO_FLAGS ((uint32_t)(KVT_IO_NO_PROMOTE | KVT_IO_DURABLE))

/* Per-key outcomes of RESERVE and HOLD besides 0 (copy at the offset) and
 * KVT_E* codes: already held (RESERVE: nothing to copy), or not through
 * the arena (send it on the staging path: PUT, GET). */
#define KVT_PROTO_ZC_HELD 1
#define KVT_PROTO_ZC_STAGE 2

/* Checks one received message and fills *out. nslots bounds the slot ids of
 * PUT and GET (0 before the handshake). handshaken says whether HELLO is
 * expected (0) or data requests (1). Returns 0, or KVT_EINVAL with a static
 * reason in *why. Pure: no allocation, reads only buf[0..len). */
int kvt__proto_parse_request(const void *buf, size_t len, uint32_t nslots, int handshaken,
                             kvt__request *out, const char **why);

/* Slot i of a parsed PUT/GET. */
uint32_t kvt__proto_slot(const kvt__request *r, uint32_t i);

/* Bytes of a reply's per-key payload for op with n keys (tiers or status),
 * 0 for ops whose reply has none. */
size_t kvt__proto_reply_payload(uint16_t op, uint32_t n);

#endif
