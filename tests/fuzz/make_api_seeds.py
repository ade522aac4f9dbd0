#!/usr/bin/env python3
"""Writes seed programs for fuzz_api.c into DIR (usage: make_api_seeds.py DIR).

Each seed is a byte string in fuzz_api.c's encoding (one opcode byte, then
the call's arguments as that file reads them); this script mirrors the
decoder, so keep the two in step. The seeds give libFuzzer working stores
to mutate from: DRAM only, DRAM over NVMe, write-through, faults, TTL on the
manual clock, async calls and tickets, every policy, the error paths.
"""
import os
import struct
import sys

# opcodes (LLVMFuzzerTestOneInput's switch, byte % 20)
SET, TIER, STR, CLOCKFN, OPEN, CLOSE = 0, 2, 4, 5, 6, 7
PUT, GET, WAIT, KEYS, CLOCK, STATS, MISC = 8, 10, 12, 13, 15, 16, 17
# kvt_option / kvt_tier_option / kvt_tier_str_option / tiers
BLOCK_BYTES, BLOCK_TOKENS, FRAGS, WORKERS, COPY, INFLIGHT, MANUAL, KEYMODE = 1, 2, 3, 4, 5, 6, 7, 8
CAP, TTL, VICTIMS, ADMIT, ADMIT_AFTER, NUMA, QD, SQPOLL, RECREATE, DEVICE, HUGE = range(1, 12)
POLICY, PATH, FAULTS = 1, 2, 3
HBM, DRAM, NVME = 0, 1, 2
INTERESTING = {0: 0, 1: 1, -1: 2, 2: 3, 3: 4, 7: 5, 16: 6, 64: 7, 100: 8, 255: 9, 256: 10,
               4095: 11, 4096: 12, 4097: 13, 8192: 14, 65535: 15, 65536: 16, 1 << 20: 17}


def u16(v): return struct.pack('<H', v)
def u32(v): return struct.pack('<I', v & 0xffffffff)
def u64(v): return struct.pack('<Q', v & 0xffffffffffffffff)


def val(v):
    """A value() encoding of v: an interesting constant, a small one, or raw."""
    if v in INTERESTING:
        return bytes([2, INTERESTING[v]])
    if 0 <= v < 256:
        return bytes([1, v])
    if v > 0 and v & (v - 1) == 0:
        return bytes([7, v.bit_length() - 1])
    return bytes([0]) + u64(v)


def blocks(k): return bytes([3, k - 1])      # k * block bytes
def slots(k): return bytes([4, k - 1])       # k * NVMe slot bytes


def cset(opt, v): return bytes([SET, opt]) + (v if isinstance(v, bytes) else val(v))
def tier(t, opt, v): return bytes([TIER, t, opt]) + (v if isinstance(v, bytes) else val(v))
def policy(t, i): return bytes([STR, t, POLICY, 2, i])      # prefix, lru, s3fifo, sieve
def path(i=0): return bytes([STR, NVME, PATH, 2, i])        # a, b, dir, bad, ""
def faults(i): return bytes([STR, NVME, FAULTS, 2, i])
def faults_text(s): return bytes([STR, NVME, FAULTS, 1, len(s)]) + s
def open_(how=1): return bytes([OPEN, how])
def close(how=2): return bytes([CLOSE, how])


def opts(parent=None, flags=None, retain=None, frags_same=False):
    a = 1 | (4 if parent is not None else 0)
    b = (8 if flags is not None else 0) | (64 if retain is not None else 0) | (128 if frags_same else 0)
    if flags is not None and flags != 1:
        b |= 16
    out = bytes([a, b])
    if flags is not None and flags != 1:
        out += u32(flags)
    if retain is not None:
        out += u32(retain)
    if frags_same:
        out += bytes([1])
    if parent is not None:
        out += bytes([parent])
    return out


def io(op, keys, variants=None, status=True, async_=False, layout=0, o=None):
    """put/get of keys (pool indices), sync or async, with a status array."""
    shape = (1 if status else 0) | (8 if o is not None or status else 0)
    n = len(keys)
    nb = bytes([n]) if n < 9 else bytes([0x80 | n])
    out = bytes([op, 1 if async_ else 0, shape]) + nb + bytes(keys) + bytes([layout])
    out += bytes(variants or [0] * n)
    if shape & 8:
        out += o if o is not None else opts()
    return out


def keys_call(which, keys, lease=None, tiers=False, status=False, extra=0):
    shape = (2 if lease is not None else 0) | (16 if tiers else 0) | (32 if status else 0) | extra
    n = len(keys)
    out = bytes([KEYS, which, n, shape]) + bytes(keys)
    if lease is not None:
        out += bytes([lease])
    return out


def lookup(keys, lease=None): return keys_call(0, keys, lease, tiers=True)
def pin(keys, lease=200): return keys_call(1, keys, lease)
def release(keys): return keys_call(2, keys, status=True)
def remove(keys): return keys_call(3, keys)
def contains(keys): return keys_call(0, keys, tiers=True, extra=64)
def touch(keys): return keys_call(1, keys, extra=64)
def clear(): return keys_call(3, [0], extra=128 | 8)
def wait(i=0, timeout=-1):
    how = 0 if timeout < 0 else (1 if timeout == 0 else 2)
    return bytes([WAIT, how] + ([timeout] if how == 2 else []) + [i])
def poll(i=0): return bytes([WAIT, 16 | 1, i])
def clock_set_ms(ms): return bytes([CLOCK, 0]) + u16(ms)           # manual_now + ms
def clock_now(): return bytes([CLOCK, 1])
def stats(): return bytes([STATS, 1])
def stat_seen(i=0): return bytes([STATS, 2, i])
def expire(): return bytes([MISC, 0])
def eventfd(): return bytes([MISC, 1])


def dram_store(bb=4096, nblocks=16, manual=True):
    s = cset(BLOCK_BYTES, bb) + tier(DRAM, CAP, blocks(nblocks))
    return s + (cset(MANUAL, 1) if manual else b'')


K = list(range(8))
seeds = {
    'dram-basic': dram_store() + open_() + io(PUT, K[:4], [0, 1, 2, 3]) + io(GET, K[:4])
    + lookup(K[:5]) + pin(K[:2]) + release(K[:3]) + remove([1]) + io(GET, K[:4]) + stats()
    + stat_seen(0) + clock_now() + close(),
    'dram-evict-lru': dram_store(nblocks=3) + policy(DRAM, 1) + open_()
    + io(PUT, K[:6], [1] * 6) + io(GET, K[:6]) + pin([4]) + io(PUT, [6, 7]) + io(GET, K) + close(),
    'dram-s3fifo-sieve': dram_store(bb=1000, nblocks=4) + policy(DRAM, 2) + open_()
    + io(PUT, K) + io(GET, [0, 0, 1]) + close() + policy(DRAM, 3) + open_(2) + io(PUT, K)
    + io(GET, K[::-1]) + close(),
    'async-tickets': dram_store() + cset(WORKERS, 2) + open_() + io(PUT, K, async_=True)
    + io(GET, K[:4], async_=True) + wait(0) + poll(0) + eventfd() + wait(0, 5)
    + io(PUT, [9, 10], async_=True) + close(),
    'async-parent': dram_store() + open_()
    + io(PUT, [0, 1, 2], async_=True, o=opts(parent=5)) + wait(0) + io(GET, [0, 1, 2]) + close(),
    'nvme-demote-promote': cset(BLOCK_BYTES, 4096) + cset(FRAGS, 2) + tier(DRAM, CAP, blocks(2))
    + tier(NVME, CAP, slots(6)) + path(0) + cset(MANUAL, 1) + open_() + io(PUT, K[:5], layout=0)
    + io(GET, K[:5], layout=1) + lookup(K[:5]) + remove([2]) + close() + open_(2)
    + io(GET, K[:5], layout=2) + stats() + close(),
    'nvme-write-through': cset(BLOCK_BYTES, 8192) + tier(DRAM, CAP, blocks(4))
    + tier(NVME, CAP, slots(8)) + tier(NVME, ADMIT, 1) + path(0) + open_() + io(PUT, K[:6])
    + io(GET, K[:6], o=opts(flags=1)) + close() + open_() + io(GET, K[:6]) + close(),
    'nvme-faults-torn': cset(BLOCK_BYTES, 4096) + tier(NVME, CAP, slots(4)) + path(0) + faults(1)
    + open_() + io(PUT, K[:4]) + io(GET, K[:4]) + io(GET, K[:4]) + stats() + close(),
    'nvme-faults-spec': cset(BLOCK_BYTES, 2000) + tier(NVME, CAP, slots(3)) + path(1)
    + faults_text(b'short=0.3,partial=0.3,eio=0.1,seed=7') + open_() + io(PUT, K[:3])
    + io(GET, K[:3]) + close(),
    'nvme-direct-128k': cset(BLOCK_BYTES, 131072) + tier(NVME, CAP, slots(2)) + path(0)
    + tier(NVME, QD, 4) + open_() + io(PUT, [0, 1], layout=2) + io(GET, [0, 1], layout=2)
    + io(GET, [1], layout=0) + close(),
    'nvme-geometry-recreate': cset(BLOCK_BYTES, 4096) + tier(NVME, CAP, slots(2)) + path(0)
    + open_() + io(PUT, [0]) + close() + bytes([MISC, 9, 0]) + cset(BLOCK_BYTES, 8192)
    + tier(NVME, CAP, slots(2)) + path(0) + open_() + tier(NVME, RECREATE, 1) + open_()
    + io(GET, [0]) + close(),
    'ttl-manual-clock': dram_store() + tier(DRAM, TTL, 10) + open_() + io(PUT, K[:3])
    + clock_set_ms(5) + io(GET, [0]) + clock_set_ms(8) + expire() + lookup([0, 1])
    + pin([0], 1) + clock_set_ms(20) + lookup([0]) + close(),
    'ttl-demote-nvme': cset(BLOCK_BYTES, 4096) + cset(MANUAL, 1) + tier(DRAM, CAP, blocks(4))
    + tier(DRAM, TTL, 3) + tier(NVME, CAP, slots(4)) + tier(NVME, TTL, 50) + path(0) + open_()
    + io(PUT, K[:4]) + clock_set_ms(10) + expire() + lookup(K[:4]) + io(GET, K[:4])
    + clock_set_ms(100) + expire() + close(),
    'admit-after-n': dram_store(nblocks=2) + tier(DRAM, ADMIT, 2) + tier(DRAM, ADMIT_AFTER, 2)
    + tier(NVME, CAP, slots(4)) + path(0) + open_() + io(PUT, K[:3]) + io(GET, K[:3])
    + io(GET, K[:3]) + lookup(K[:3]) + close(),
    'contains-touch-clear': dram_store(nblocks=2) + tier(NVME, CAP, slots(4)) + path(0) + open_()
    + io(PUT, [0, 2]) + contains([0, 1, 2]) + touch([0, 1]) + io(PUT, [3])
    + contains([0, 1, 2, 3]) + clear() + lookup([0]) + contains([0, 2, 3]) + io(PUT, [4])
    + io(GET, [4]) + close(),
    'retain-and-drop': dram_store(nblocks=2) + tier(DRAM, VICTIMS, 1) + open_()
    + io(PUT, [0], o=opts(retain=100)) + io(PUT, [1, 2, 3]) + lookup([0, 1, 2, 3]) + close(),
    'errors': bytes([PUT, 0, 0, 1]) + open_() + cset(BLOCK_BYTES, 0) + cset(FRAGS, 3) + cset(99, 5)
    + cset(BLOCK_BYTES, 4096) + open_() + cset(FRAGS, 1) + tier(DRAM, CAP, 100) + open_()
    + tier(NVME, CAP, slots(1)) + open_() + path(2) + open_() + path(3) + open_() + path(4)
    + bytes([STR, DRAM, POLICY, 1, 4]) + b'nope' + open_(0) + close(0) + close(1)
    + tier(DRAM, CAP, blocks(2)) + tier(HBM, CAP, blocks(2)) + tier(NVME, CAP, 0) + open_()
    + io(PUT, [0], o=opts(flags=0x80)) + io(GET, [0], o=opts(frags_same=True))
    + bytes([PUT, 0, 2, 1, 0, 0, 0]) + bytes([GET, 0, 4, 0, 0]) + wait(0) + close(1) + close(),
    'keys-and-codes': bytes([MISC, 3, 0, 0x97, MISC, 3, 1]) + u32(12345)
    + bytes([MISC, 4, 2, 12, 0])
    + bytes([MISC, 5, 2, 0, 1, 3, 0x61, 0x62, 0x63, 0, 5, 4, 0, 0, 0, 1, 0, 1, 2])
    + bytes([MISC, 6, 4, 0, 1, 0, 2, 0, 3, 0, 4, 0, 2, 8, 0, 0, 1, 3, 1])
    + bytes([MISC, 7, 0, 3])
    + bytes([MISC, 8, 2]) + bytes(range(16)) + dram_store() + open_() + io(PUT, [18, 19])
    + io(GET, [18, 19]) + close(),
}

out = sys.argv[1] if len(sys.argv) > 1 else '.'
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, 'seed-' + name), 'wb') as f:
        f.write(data)
    print(os.path.join(out, 'seed-' + name), len(data))
