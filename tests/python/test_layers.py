"""test_layers.py — kvtier.Layers (paged per-layer arrays + block indices), ticket futures and asyncio.

Run by `meson test --suite python`; by hand, from the source root:
    KVTIER_LIBRARY=build/lib/libkvtier.so PYTHONPATH=python \
        /usr/bin/python3 -m pytest -q tests/python/test_layers.py
Random tests print their seed (set KVT_SEED=N to repeat one).
"""
import asyncio
import concurrent.futures
import gc
import os
import threading
import time
import weakref

import numpy as np
import pytest

import kvtier

BLOCK = 8192


@pytest.fixture
def rng():
    seed = int(os.environ.get("KVT_SEED", np.random.SeedSequence().entropy % (1 << 32)))
    print(f"seed {seed} (KVT_SEED={seed} repeats it)")
    return np.random.default_rng(seed)


def store(frags, blocks=256, **kw):
    return kvtier.Store(block_bytes=BLOCK, frags=frags, dram_bytes=blocks * BLOCK,
                        hugepages=False, **kw)


def some_keys(n, salt):
    return kvtier.keys(list(range(n * 4)), kvtier.Namespace(salt=salt), 4)


def paged(rng, frags, pages, dtype=np.float16):
    """One [pages, 4, heads, dim] array per fragment position, random bytes,
    each page BLOCK / frags bytes (heads and dim vary with frags)."""
    item = np.dtype(dtype).itemsize
    elems = BLOCK // frags // item
    shape = (pages, 4, 2, elems // 8)
    return [rng.integers(0, 256, (pages,) + shape[1:] + (item,), np.uint8)
            .view(dtype).reshape(shape) for _ in range(frags)]


def block_bytes(arrays, idx):
    """The bytes of each block as the store sees them: fragment f of block i is
    page idx[i] of arrays[f], fragments in order (independent of Layers)."""
    return [b"".join(a[j].tobytes() for a in arrays) for j in idx]


# ------------------------------------------------------------------ exact bytes

@pytest.mark.parametrize("frags", [1, 2, 8])
def test_layers_round_trip_exact_bytes(rng, frags):
    n, pages = 24, 64
    with store(frags) as s:
        src = paged(rng, frags, pages)
        src_idx = rng.permutation(pages)[:n]          # scattered engine pages
        keys = some_keys(n, f"rt{frags}".encode())
        cache = kvtier.Layers(src)
        r = s.put(keys, cache.at(src_idx))
        assert (int(r), r.status) == (n, [0] * n)
        want = block_bytes(src, src_idx)
        # the old batch path reads the blocks back in the store's fragment order
        batch = np.zeros((n, BLOCK), np.uint8)
        assert s.get(keys, batch) == n
        assert [bytes(b) for b in batch] == want, "put through Layers stored other bytes"
        # get into other arrays (another dtype, other pages), poisoned first
        dst = [np.full((pages, BLOCK // frags // 4), 0x5A5A5A5A, np.uint32)
               for _ in range(frags)]
        dst_idx = rng.permutation(pages)[:n]
        r = s.get(keys, kvtier.Layers(dst, dst_idx))
        assert (int(r), r.status) == (n, [0] * n)
        assert block_bytes(dst, dst_idx) == want, "get through Layers wrote other bytes"
        untouched = np.setdiff1d(np.arange(pages), dst_idx)
        for a in dst:
            assert (a[untouched] == 0x5A5A5A5A).all(), "a page outside the batch was written"


def test_layers_strided_pages_and_missing_blocks(rng):
    """K and V of one [pages, 2, ...] tensor per layer: pages strided by two."""
    frags, pages, n = 4, 16, 6
    per_frag = BLOCK // frags
    with store(frags) as s:
        kv = [rng.integers(0, 256, (pages, 2, per_frag), np.uint8) for _ in range(frags // 2)]
        arrays = [layer[:, h] for layer in kv for h in (0, 1)]  # K0 V0 K1 V1
        assert not arrays[0].flags.c_contiguous
        idx = np.array([15, 0, 7, 3, 9, 1])
        keys = some_keys(n, b"strided")
        assert s.put(keys[:3], kvtier.Layers(arrays, idx[:3])) == 3
        dkv = [np.full((pages, 2, per_frag), 0xA5, np.uint8) for _ in range(frags // 2)]
        darrays = [layer[:, h] for layer in dkv for h in (0, 1)]
        r = s.get(keys, kvtier.Layers(darrays, idx))
        enoent = kvtier.ENOENT.code
        assert (int(r), r.status) == (3, [0, 0, 0, enoent, enoent, enoent])
        assert block_bytes(darrays, idx[:3]) == block_bytes(arrays, idx[:3])
        for a in darrays:
            assert (a[idx[3:]] == 0xA5).all(), "a missing block's pages were written"


class FakeDevice:
    def __init__(self, type_, index=None):
        self.type, self.index = type_, index


class FakeTensor:
    """Quacks like a torch tensor (data_ptr, element_size, stride in elements,
    shape, device); CPU ones wrap a numpy array's memory."""

    def __init__(self, arr, device="cpu", index=None):
        self.arr, self.device = arr, FakeDevice(device, index)
        self.shape = arr.shape

    def data_ptr(self):
        return self.arr.ctypes.data

    def element_size(self):
        return self.arr.itemsize

    def stride(self):
        return tuple(st // self.arr.itemsize for st in self.arr.strides)

    def get_device(self):
        return self.device.index if self.device.index is not None else -1


def test_layers_duck_typed_tensors(rng):
    frags, pages, n = 2, 8, 5
    with store(frags) as s:
        src = paged(rng, frags, pages, np.float32)
        idx = [6, 1, 4, 0, 2]
        keys = some_keys(n, b"tensor")
        assert s.put(keys, kvtier.Layers([FakeTensor(a) for a in src], idx)) == n
        dst = [np.zeros_like(a) for a in src]
        assert s.get(keys, kvtier.Layers([FakeTensor(a[:, :]) for a in dst], idx[::-1])) == n
        assert block_bytes(dst, idx[::-1]) == block_bytes(src, idx)
        cuda = FakeTensor(src[1], device="cuda", index=0)
        with pytest.raises(ValueError, match="host memory or all on one CUDA device"):
            kvtier.Layers([FakeTensor(src[0]), cuda])
        with pytest.raises(ValueError, match="not supported"):
            kvtier.Layers([FakeTensor(src[0], device="mps")])


# ------------------------------------------------------------------ errors

def test_layers_errors_are_clear_and_reach_nothing():
    frags, pages = 2, 8
    per = BLOCK // frags
    ok = [np.zeros((pages, per // 2), np.float16) for _ in range(frags)]
    with store(frags) as s:
        keys = some_keys(3, b"errors")
        cache = kvtier.Layers(ok)
        with pytest.raises(ValueError, match="1 layer arrays, the store has 2 fragments"):
            s.put(keys, kvtier.Layers(ok[:1], [0, 1, 2]))
        with pytest.raises(ValueError, match=r"a page is 8192 bytes \(shape \(2048,\) of "
                                             r"4-byte items\).*fragments are 4096 bytes"):
            s.put(keys, kvtier.Layers([np.zeros((pages, per // 2), np.float32)] * 2, [0, 1, 2]))
        with pytest.raises(ValueError, match="a page is 2048 bytes"):
            s.put(keys, kvtier.Layers([np.zeros((pages, per // 4), np.float16)] * 2, [0, 1, 2]))
        with pytest.raises(ValueError, match="layer array 1: a page is 4096 bytes .* array 0's "
                                             "is 2048"):
            kvtier.Layers([np.zeros((pages, per // 2), np.uint8), ok[1]])
        with pytest.raises(IndexError, match=r"block_indices\[2\] = 8 is out of range: the "
                                             "layer arrays have 8 pages"):
            cache.at([0, 7, 8])
        with pytest.raises(IndexError, match=r"block_indices\[1\] = -1"):
            cache.at([0, -1, 2])
        short = [ok[0], ok[1][:5]]
        with pytest.raises(IndexError, match="have 5 pages"):
            kvtier.Layers(short, [0, 5, 1])
        with pytest.raises(TypeError, match="integers"):
            cache.at([0.0, 1.0, 2.0])
        with pytest.raises(ValueError, match="1-d"):
            cache.at([[0, 1, 2]])
        with pytest.raises(ValueError, match="2 block indices for 3 keys"):
            s.put(keys, cache.at([0, 1]))
        with pytest.raises(ValueError, match="without block indices"):
            s.put(keys, cache)
        wide = np.zeros((pages, per), np.float16)
        with pytest.raises(ValueError, match="layer array 0: a page .* is not contiguous"):
            kvtier.Layers([wide[:, ::2], ok[1]])
        with pytest.raises(ValueError, match="not contiguous"):
            kvtier.Layers([np.zeros((per // 2, pages), np.float16).T, ok[1]])
        with pytest.raises(ValueError, match="pages overlap"):
            kvtier.Layers([np.broadcast_to(ok[0][:1], ok[0].shape), ok[1]])
        with pytest.raises(ValueError, match="0-d"):
            kvtier.Layers([np.zeros((), np.float16), ok[1]])
        with pytest.raises(TypeError, match="neither a NumPy array nor a tensor"):
            kvtier.Layers([bytearray(per * pages), ok[1]])
        with pytest.raises(ValueError, match="at least one array"):
            kvtier.Layers([])
        frozen = [a.copy() for a in ok]
        frozen[1].flags.writeable = False
        with pytest.raises(TypeError, match="read-only"):
            s.get(keys, kvtier.Layers(frozen, [0, 1, 2]))
        assert s.stat("put_blocks") == 0 and s.stat("get_blocks") == 0, \
            "a refused call must not reach the library"
        assert s.put(keys, kvtier.Layers(frozen, [0, 1, 2])) == 3, "read-only is fine for put"


# ------------------------------------------------------------------ futures, asyncio

def test_future_put_get_and_wait_poll_agree(rng):
    frags, pages, n = 2, 32, 16
    s = store(frags)
    with s:
        src = paged(rng, frags, pages)
        keys = some_keys(n, b"future")
        t = s.put(keys, kvtier.Layers(src, np.arange(n)), wait=False)
        f = t.future()
        assert isinstance(f, concurrent.futures.Future) and t.future() is f
        r = f.result(timeout=10)
        assert (int(r), r.status) == (n, [0] * n)
        assert t.done and t.wait() is r and t.poll() is r
        dst = [np.zeros_like(a) for a in src]
        g = s.get(keys, kvtier.Layers(dst, np.arange(n)[::-1]), wait=False)
        assert g.wait(timeout_ms=10_000) == n      # collected by wait, then future()
        assert g.future().result(0) == n
        assert block_bytes(dst, np.arange(n)[::-1]) == block_bytes(src, np.arange(n))
        many = [s.get(keys[i:i + 1], [bytearray(BLOCK)], wait=False).future()
                for i in range(n)]
        done, _ = concurrent.futures.wait(many, timeout=10)
        assert len(done) == n and all(x.result() == 1 for x in many)
        missing = s.get(some_keys(2, b"none"), [bytearray(BLOCK)] * 2, wait=False).future()
        assert missing.result(10).status == [kvtier.ENOENT.code] * 2
        assert s.stat("tickets_pending") == 0
    watcher = s._watcher[0]._thread
    assert watcher.name == "kvtier-watcher" and not watcher.is_alive(), \
        "close must stop the watcher thread"


def test_asyncio_await_ticket_and_aput_aget(rng):
    frags, pages, n = 8, 16, 12

    async def main(s, src):
        keys = some_keys(n, b"aio")
        r = await s.aput(keys, kvtier.Layers(src, np.arange(n)))
        assert (int(r), r.status) == (n, [0] * n)
        dst = [np.zeros_like(a) for a in src]
        idx = np.arange(pages)[-n:]
        halves = await asyncio.gather(
            s.aget(keys[:n // 2], kvtier.Layers(dst, idx[:n // 2])),
            s.get(keys[n // 2:], kvtier.Layers(dst, idx[n // 2:]), wait=False))
        assert halves == [n // 2, n // 2]
        assert block_bytes(dst, idx) == block_bytes(src, np.arange(n))
        out = bytearray(n * BLOCK)
        assert await s.aget(keys, out) == n, "aget takes every buffer form"
        assert bytes(out) == b"".join(block_bytes(src, np.arange(n)))

    with store(frags) as s:
        asyncio.run(main(s, paged(rng, frags, pages)))


def test_future_of_a_ticket_pending_at_close_is_eclosed():
    s = store(1, blocks=256)
    t = s.put(some_keys(128, b"close"), bytearray(128 * BLOCK), wait=False)
    s.close()
    f = t.future()
    assert isinstance(f.exception(0), kvtier.ECLOSED)
    with pytest.raises(kvtier.ECLOSED):
        t.wait()


def test_close_resolves_pending_futures_with_their_result():
    s = store(1, blocks=256)
    f = s.put(some_keys(128, b"drain"), bytearray(128 * BLOCK), wait=False).future()
    s.close()
    assert f.done() and f.result() == 128


class Gate:
    """A clock callback that blocks the library's own threads (foreign
    threads: ctypes gives them DummyThread) while closed, so that an async
    operation stays pending for as long as a test needs."""

    def __init__(self):
        self.open = threading.Event()
        self.open.set()
        self.blocked = threading.Event()

    def __call__(self):
        if isinstance(threading.current_thread(), threading._DummyThread) \
                and not self.open.is_set():
            self.blocked.set()
            self.open.wait(30)
        return time.monotonic_ns()


def test_cancelled_future_keeps_buffers_until_completion(rng):
    gate = Gate()
    frags, pages, n = 2, 8, 4
    with store(frags, clock=gate) as s:
        src = paged(rng, frags, pages)
        keys = some_keys(n, b"cancel")
        assert s.put(keys, kvtier.Layers(src, np.arange(n))) == n

        gate.open.clear()
        dst = [np.zeros_like(a) for a in src]
        alive = weakref.ref(dst[1])
        t = s.get(keys, kvtier.Layers(dst, np.arange(n)), wait=False)
        f = t.future()
        assert gate.blocked.wait(10), "the operation never reached the gate"
        assert not f.cancel() and not f.cancelled(), "an issued operation cannot be cancelled"
        with pytest.raises(kvtier.ETIMEDOUT):
            t.wait(timeout_ms=50)
        assert t.poll() is None and not f.done()
        del dst
        gc.collect()
        assert alive() is not None, "a pending get's arrays were freed"
        gate.open.set()
        assert f.result(10) == n
        gc.collect()
        assert alive() is None, "the arrays must be let go once the ticket completed"

        async def cancelled_task():
            gate.blocked.clear()
            gate.open.clear()
            out = bytearray(n * BLOCK)
            task = asyncio.ensure_future(s.aget(keys, out))
            assert await asyncio.to_thread(gate.blocked.wait, 10), "never reached the gate"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            with pytest.raises(BufferError):
                out.extend(b"x")  # still exported: the get may write it
            gate.open.set()
            for _ in range(1000):  # the watcher collects it and lets the buffer go
                try:
                    out.extend(b"x")
                    break
                except BufferError:
                    await asyncio.sleep(0.01)
            assert len(out) == n * BLOCK + 1, "the buffer was never released"
            assert bytes(out[:-1]) == b"".join(block_bytes(src, np.arange(n)))

        asyncio.run(cancelled_task())


def test_racing_collectors_agree(rng):
    """wait(), poll() and the watcher on the same tickets from several threads:
    exactly one collects each (kvt_wait consumes it), all see its result."""
    n = 64
    with store(1, blocks=2 * n) as s:
        keys = some_keys(n, b"race")
        tickets = [s.put(keys[i:i + 1], [bytes([i]) * BLOCK], wait=False) for i in range(n)]
        errors, results = [], {}

        def worker(k):
            try:
                for i, t in enumerate(tickets):
                    if (i + k) % 3 == 0:
                        r = t.future().result(10)
                    elif (i + k) % 3 == 1:
                        r = t.wait()
                    else:
                        while (r := t.poll()) is None:
                            pass
                    results.setdefault(i, set()).add(id(r))
            except BaseException as e:  # noqa: B036 (reported below)
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(30)
        assert not errors, errors
        assert all(len(ids) == 1 for ids in results.values()) and len(results) == n
        assert all(t.future().result(0) == 1 for t in tickets)
        assert s.stat("tickets_pending") == 0


def test_a_collected_store_stops_its_watcher():
    s = store(1)
    t = s.put(some_keys(1, b"gc"), [bytearray(BLOCK)], wait=False)
    assert t.future().result(10) == 1
    thread = s._watcher[0]._thread
    assert thread.is_alive()
    del s, t
    gc.collect()
    thread.join(10)
    assert not thread.is_alive(), "the finalizer of a collected store must stop its watcher"
