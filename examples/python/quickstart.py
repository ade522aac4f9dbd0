#!/usr/bin/python3
"""quickstart.py — a tour of the kvtier Python binding: namespace, keys, store, put, lookup, get, stats.

From the source tree:  PYTHONPATH=python /usr/bin/python3 examples/python/quickstart.py
"""
import os

import kvtier

ns = kvtier.Namespace(model="demo-model", layout="bf16;B=16")    # what makes caches differ
tokens = list(range(1000, 1070))                                  # 70 tokens: 4 full blocks of 16
keys = kvtier.keys(tokens, ns, block_tokens=16)                   # one 16-byte key per full block
blocks = [os.urandom(4096) for _ in keys]                         # stand-ins for KV data

with kvtier.Store(block_bytes=4096, dram_bytes=64 * 4096) as store:
    print("stored", store.put(keys, blocks))
    hits, tiers = store.lookup(keys)                              # longest cached prefix
    print(f"hits {hits} of {len(keys)}, tiers {[t.name for t in tiers]}")
    out = bytearray(hits * 4096)                                  # any writable buffer
    got = store.get(keys[:hits], out)
    assert got == hits and bytes(out) == b"".join(blocks[:hits]), got.status
    print("bytes match; dram.used_blocks =", store.stats()["dram.used_blocks"])
