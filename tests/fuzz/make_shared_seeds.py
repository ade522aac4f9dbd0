#!/usr/bin/python3
"""make_shared_seeds.py — writes corpus/shared/: valid and broken messages of
the shared-store protocol (docs/shared.md) in fuzz_shared.c's input format
(staging slots byte, handshaken byte, message). Run from tests/fuzz/."""
import os
import struct

MAGIC = 0x5054564B
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "shared")


def hdr(op, n=0, a0=0, a1=0, seq=1, magic=MAGIC, reserved=0):
    return struct.pack("<IHHIIII", magic, op, reserved, seq, n, a0, a1)


def keys(n):
    return b"".join(bytes([i % 256]) * 16 for i in range(n))


def slots(*ids):
    return b"".join(struct.pack("<I", i) for i in ids)


seeds = {
    "hello": (0, 0, hdr(1, a0=1) + struct.pack("<QII", 4096, 1, 8)),
    "hello-v2": (0, 0, hdr(1, a0=2) + struct.pack("<QII", 0, 0, 0)),
    "hello-short": (0, 0, hdr(1, a0=1) + b"\0" * 4),
    "lookup": (8, 1, hdr(3, n=2, a0=500) + keys(2)),
    "contains": (8, 1, hdr(4, n=3) + keys(3)),
    "pin-zero-lease": (8, 1, hdr(6, n=1) + keys(1)),
    "release": (8, 1, hdr(7, n=1) + keys(1)),
    "put": (8, 1, hdr(8, n=2, a0=4, a1=10) + keys(2) + slots(0, 7)),
    "get-slot-out": (8, 1, hdr(9, n=2) + keys(2) + slots(1, 8)),
    "get-durable": (8, 1, hdr(9, n=1, a0=4) + keys(1) + slots(0)),
    "remove-count-lies": (8, 1, hdr(10, n=100000) + keys(2)),
    "clear": (8, 1, hdr(11)),
    "flush-all": (8, 1, hdr(12)),
    "stats": (8, 1, hdr(13)),
    "stats-args": (8, 1, hdr(13, a0=1)),
    "unknown-op": (8, 1, hdr(200, n=1) + keys(1)),
    "bad-magic": (8, 1, hdr(3, n=1, magic=0x12345678) + keys(1)),
    "reserved": (8, 1, hdr(3, n=1, reserved=1) + keys(1)),
    "truncated": (8, 1, hdr(3, n=1)[:10]),
    "hello-twice": (8, 1, hdr(1, a0=1) + struct.pack("<QII", 0, 0, 0)),
    # protocol v2, zero copy
    "reserve": (8, 1, hdr(14, n=2, a0=4, a1=10) + keys(2)),
    "reserve-bad-flags": (8, 1, hdr(14, n=1, a0=1 << 20) + keys(1)),
    "commit": (8, 1, hdr(15, n=2)),
    "commit-abort": (8, 1, hdr(15, n=2, a0=1)),
    "commit-with-body": (8, 1, hdr(15, n=1) + keys(1)),
    "commit-huge": (8, 1, hdr(15, n=100000)),
    "hold": (8, 1, hdr(16, n=3, a0=1) + keys(3)),
    "hold-durable": (8, 1, hdr(16, n=1, a0=4) + keys(1)),
    "unhold": (8, 1, hdr(17)),
    "unhold-args": (8, 1, hdr(17, n=1) + keys(1)),
}

os.makedirs(OUT, exist_ok=True)
for name, (nslots, hs, msg) in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([nslots, hs]) + msg)
