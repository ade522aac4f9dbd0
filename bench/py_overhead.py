#!/usr/bin/env python3
"""py_overhead.py — the Python binding's cost on put/get of a paged KV cache, against raw C calls.

Times put and get of BLOCKS blocks x FRAGS fragments (default 128 x 64 of
64 KiB: 512 MiB per call) through
  layers  store.put(keys, cache.at(idx)): kvtier.Layers built once, the
          pointer table made by NumPy arithmetic per call
  layers+ store.put(keys, kvtier.Layers(arrays, idx)): every array checked
          again on every call
  lists   store.put(keys, [[page views] * frags] * blocks): the nested-list
          path (the views are made once, outside the timing)
  raw     lib.kvt_put(h, keys, n, ptrs, &opts, NULL) through ctypes with a
          pointer array and options built once: the "raw C call" baseline
The source is one [pages, frag_bytes] array per fragment position (pages =
2 x blocks) and the blocks sit at scattered engine pages. Each put is
preceded (untimed) by a remove of its keys, so that every put copies. The
paths run in rotating order each round; the script prints each path's
median and its ratio to raw's, then the median of whole gets of absent keys
(the same binding work, no copy) and of building the pointer table alone
(no C call).

    PYTHONPATH=python /usr/bin/python3 bench/py_overhead.py [--frag-kib 16] [--rounds 9]

Needs about 3 x BLOCKS x FRAGS x FRAG_KIB of memory (1.5 GiB at the
defaults: the store's DRAM tier, the source and the destination).
"""
import argparse
import ctypes
import statistics
import sys
import time

import numpy as np

import kvtier
from kvtier import _buffers
from kvtier._buffers import Holds
from kvtier._lib import IoOpts, lib


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", type=int, default=128)
    ap.add_argument("--frags", type=int, default=64)
    ap.add_argument("--frag-kib", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    n, frags, frag_bytes = a.blocks, a.frags, a.frag_kib * 1024
    block_bytes = frags * frag_bytes
    pages = 2 * n
    rng = np.random.default_rng(a.seed)
    print(f"{n} blocks x {frags} fragments x {a.frag_kib} KiB = "
          f"{n * block_bytes / 2**20:.0f} MiB per call, {a.rounds} rounds; "
          f"library {kvtier.library_path}")

    src = [np.empty((pages, frag_bytes), np.uint8) for _ in range(frags)]
    dst = [np.zeros((pages, frag_bytes), np.uint8) for _ in range(frags)]
    for arr in src:
        arr[:] = rng.integers(0, 256, frag_bytes, np.uint8)  # touch every page
    idx = rng.permutation(pages)[:n]
    keys = kvtier.keys(np.arange(n * 16, dtype=np.uint32), kvtier.Namespace(salt=b"py_overhead"),
                       16)

    store = kvtier.Store(block_bytes=block_bytes, frags=frags, dram_bytes=n * block_bytes)
    h = store._ptr

    src_cache, dst_cache = kvtier.Layers(src), kvtier.Layers(dst)
    src_lists = [[src[f][i] for f in range(frags)] for i in idx]
    dst_lists = [[dst[f][i] for f in range(frags)] for i in idx]

    def raw_table(arrays):
        addrs = [arrays[f][i].ctypes.data for i in idx for f in range(frags)]
        return (ctypes.c_void_p * len(addrs))(*addrs)

    raw_src, raw_dst = raw_table(src), raw_table(dst)
    status = (ctypes.c_int32 * n)()
    opts = IoOpts(size=ctypes.sizeof(IoOpts), status=ctypes.addressof(status))
    kraw = keys.raw

    def raw_put():
        rc = lib.kvt_put(h, kraw, n, raw_src, ctypes.byref(opts), None)
        assert rc == n, rc

    def raw_get():
        rc = lib.kvt_get(h, kraw, n, raw_dst, ctypes.byref(opts), None)
        assert rc == n, rc

    paths = {
        "put": {
            "raw": raw_put,
            "layers": lambda: store.put(keys, src_cache.at(idx)),
            "layers+": lambda: store.put(keys, kvtier.Layers(src, idx)),
            "lists": lambda: store.put(keys, src_lists),
        },
        "get": {
            "raw": raw_get,
            "layers": lambda: store.get(keys, dst_cache.at(idx)),
            "layers+": lambda: store.get(keys, kvtier.Layers(dst, idx)),
            "lists": lambda: store.get(keys, dst_lists),
        },
    }
    times = {op: {p: [] for p in ps} for op, ps in paths.items()}
    for r in range(a.rounds):
        for op, ps in paths.items():
            names = list(ps)
            names = names[r % len(names):] + names[:r % len(names)]
            for p in names:
                if op == "put":
                    store.remove(keys)
                t0 = time.perf_counter()
                out = ps[p]()
                dt = time.perf_counter() - t0
                assert out is None or out == n, (op, p, out)
                times[op][p].append(dt)
    # the bytes came through (the last get of each path wrote the same blocks)
    for f in (0, frags - 1):
        assert np.array_equal(dst[f][idx], src[f][idx])

    for op in paths:
        base = statistics.median(times[op]["raw"])
        for p, ts in times[op].items():
            m = statistics.median(ts)
            print(f"{op:3} {p:8} median {m * 1e3:8.2f} ms   x{m / base:.3f} of raw   "
                  f"(+{(m - base) * 1e3:.2f} ms)")

    # whole calls that copy nothing: a get of keys not held (every block
    # KVT_ENOENT) costs the same binding work, without the copy's noise
    missing = kvtier.keys(np.arange(n * 16, dtype=np.uint32), kvtier.Namespace(salt=b"absent"),
                          16)
    mraw = missing.raw

    def raw_miss():
        rc = lib.kvt_get(h, mraw, n, raw_dst, ctypes.byref(opts), None)
        assert rc == 0, rc

    miss = {"raw": raw_miss,
            "layers": lambda: store.get(missing, dst_cache.at(idx)),
            "layers+": lambda: store.get(missing, kvtier.Layers(dst, idx)),
            "lists": lambda: store.get(missing, dst_lists)}
    mtimes = {p: [] for p in miss}
    for r in range(a.rounds * 5):
        for p in miss:
            t0 = time.perf_counter()
            miss[p]()
            mtimes[p].append(time.perf_counter() - t0)
    for p, ts in mtimes.items():
        print(f"get of absent keys {p:8} median {statistics.median(ts) * 1e3:8.3f} ms")

    # the pointer table alone, no C call
    def table_layers():
        return src_cache.at(idx).pointers(n, frags, block_bytes, False)

    def table_layers_new():
        return kvtier.Layers(src, idx).pointers(n, frags, block_bytes, False)

    def table_lists():
        holds = Holds()
        try:
            return _buffers.pointers(src_lists, n, frags, block_bytes, False, holds)
        finally:
            holds.release()

    for name, fn in (("layers", table_layers), ("layers+", table_layers_new),
                     ("lists", table_lists)):
        ts = []
        for _ in range(a.rounds):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        print(f"pointer table {name:8} median {statistics.median(ts) * 1e3:8.3f} ms")
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
