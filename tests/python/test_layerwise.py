"""test_layerwise.py — Store.get(..., frag_range=(first, count)): layer-wise
loads into flat buffers, per-fragment lists and kvtier.Layers (one layer of
many blocks), exact bytes checked against the bytes put.

Run by `meson test --suite python`; by hand, from the source root:
    KVTIER_LIBRARY=build/lib/libkvtier.so PYTHONPATH=python \
        /usr/bin/python3 -m pytest -q tests/python/test_layerwise.py
"""
import numpy as np
import pytest

import kvtier

FRAGS = 8
FRAG = 1024
BLOCK = FRAGS * FRAG


def stored(n, salt):
    """A DRAM store holding n blocks of distinct random bytes: (store, keys,
    blocks as an [n, FRAGS, FRAG] uint8 array)."""
    rng = np.random.default_rng(20)
    s = kvtier.Store(block_bytes=BLOCK, frags=FRAGS, dram_bytes=64 * BLOCK, hugepages=False)
    keys = kvtier.keys(list(range(n * 4)), kvtier.Namespace(salt=salt), 4)
    src = rng.integers(0, 256, (n, FRAGS, FRAG), np.uint8)
    assert s.put(keys, src.reshape(-1)) == n
    return s, keys, src


@pytest.mark.parametrize("first,count", [(0, 1), (5, 1), (FRAGS - 1, 1), (2, 3), (0, FRAGS)])
def test_get_range_into_flat_buffer_and_lists(first, count):
    n = 6
    s, keys, src = stored(n, b"flat")
    with s:
        flat = np.full((n, count, FRAG), 0xEE, np.uint8)
        r = s.get(keys, flat.reshape(-1), frag_range=(first, count))
        assert (int(r), r.status) == (n, [0] * n)
        assert np.array_equal(flat, src[:, first:first + count])
        lists = [[bytearray(FRAG) for _ in range(count)] for _ in range(n)]
        r = s.get(keys, lists, frag_range=(first, count), wait=False).wait()
        assert int(r) == n
        for i in range(n):
            for f in range(count):
                assert bytes(lists[i][f]) == src[i, first + f].tobytes()


def test_layers_fetch_one_layer_of_many_blocks():
    n, pages = 8, 32
    s, keys, src = stored(n, b"layers")
    with s:
        dst = [np.full((pages, FRAG), 0xEE, np.uint8) for _ in range(FRAGS)]
        idx = np.random.default_rng(3).permutation(pages)[:n]
        cache = kvtier.Layers(dst).at(idx)
        layer = 3
        r = s.get(keys, cache, frag_range=(layer, 1))
        assert (int(r), r.status) == (n, [0] * n)
        for f in range(FRAGS):
            if f == layer:
                assert np.array_equal(dst[f][idx], src[:, f]), "layer bytes differ"
            else:
                assert (dst[f] == 0xEE).all(), f"layer {f} written by a get of layer {layer}"
        # then the rest, layer by layer, gives the whole blocks
        for f in range(FRAGS):
            if f != layer:
                assert s.get(keys, cache, frag_range=(f, 1)) == n
        for f in range(FRAGS):
            assert np.array_equal(dst[f][idx], src[:, f])


def test_bad_ranges_are_refused():
    s, keys, _ = stored(1, b"bad")
    with s:
        buf = bytearray(BLOCK)
        for rng in [(FRAGS, 1), (0, 0), (-1, 1), (FRAGS - 1, 2)]:
            with pytest.raises(ValueError):
                s.get(keys, buf, frag_range=rng)


def test_put_layer_by_layer_visible_when_complete():
    """Store.put(..., frag_range=): a layer-wise save, from flat buffers and
    from a kvtier.Layers; blocks appear only after their last layer."""
    n, pages = 4, 16
    rng = np.random.default_rng(21)
    src = rng.integers(0, 256, (n, FRAGS, FRAG), np.uint8)
    s = kvtier.Store(block_bytes=BLOCK, frags=FRAGS, dram_bytes=64 * BLOCK, hugepages=False)
    with s:
        flat_keys = kvtier.keys(list(range(n * 4)), kvtier.Namespace(salt=b"rput"), 4)
        layer_keys = kvtier.keys(list(range(n * 4)), kvtier.Namespace(salt=b"rput2"), 4)
        pagesets = [np.zeros((pages, FRAG), np.uint8) for _ in range(FRAGS)]
        idx = np.arange(n) * 3
        for f in range(FRAGS):
            pagesets[f][idx] = src[:, f]
        cache = kvtier.Layers(pagesets).at(idx)
        for f in range(FRAGS):
            assert s.lookup(flat_keys)[0] == 0 and s.lookup(layer_keys)[0] == 0
            r = s.put(flat_keys, np.ascontiguousarray(src[:, f]).reshape(-1), frag_range=(f, 1))
            assert (int(r), r.status) == (n, [0] * n)
            assert int(s.put(layer_keys, cache, frag_range=(f, 1), wait=False).wait()) == n
        for ks in (flat_keys, layer_keys):
            out = np.zeros((n, FRAGS, FRAG), np.uint8)
            assert int(s.get(ks, out.reshape(-1))) == n
            assert np.array_equal(out, src)
        assert s.stat("assembled") == 2 * n
