"""test_binding.py — the Python binding (python/kvtier) against libkvtier: bytes, keys, errors, tickets, stats, ABI.

Run by `meson test --suite python`; by hand, from the source root:
    KVTIER_LIBRARY=build/lib/libkvtier.so KVT_BUILD_ROOT=build PYTHONPATH=python \
        /usr/bin/python3 -m pytest -q tests/python/test_binding.py
Random tests print their seed (set KVT_SEED=N to repeat one).
"""
import array
import ctypes
import os
import random
import re
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xxhash

import kvtier
from kvtier import _lib
from kvtier.errors import check

SOURCE_ROOT = Path(os.environ.get("KVT_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
BUILD_ROOT = os.environ.get("KVT_BUILD_ROOT")
HEADER = SOURCE_ROOT / "include" / "kvtier.h"
BLOCK = 4096


@pytest.fixture
def rng():
    seed = int(os.environ.get("KVT_SEED", random.randrange(1 << 32)))
    print(f"seed {seed} (KVT_SEED={seed} repeats it)")
    return random.Random(seed)


def rand_bytes(rng, n):
    return rng.getrandbits(8 * n).to_bytes(n, "little")


def dram_store(blocks=64, frags=1, **kw):
    return kvtier.Store(block_bytes=BLOCK, frags=frags, dram_bytes=blocks * BLOCK,
                        hugepages=False, **kw)


def some_keys(n, salt=b"t"):
    return kvtier.keys(list(range(n * 4)), kvtier.Namespace(salt=salt), 4)


# ------------------------------------------------------------------ NVMe

@pytest.fixture
def nvme_path(tmp_path, request):
    base = Path(BUILD_ROOT) / "python-tests" if BUILD_ROOT else tmp_path
    base.mkdir(parents=True, exist_ok=True)
    path = base / f"nvme-{os.getpid()}-{request.node.name}.kvt"
    if path.exists():
        path.unlink()
    yield str(path)
    if path.exists():
        path.unlink()


def open_nvme(path, blocks, frags=1, dram_blocks=0, **kw):
    try:
        slot = kvtier.nvme_slot_bytes(BLOCK)
        assert slot >= BLOCK and slot % 512 == 0  # whole 512-byte units (docs/nvme-format.md)
        return kvtier.Store(block_bytes=BLOCK, frags=frags, dram_bytes=dram_blocks * BLOCK,
                            nvme_path=path, nvme_bytes=blocks * slot, hugepages=False, **kw)
    except (kvtier.ENOTSUP, kvtier.ENODEV, kvtier.ENODIRECT) as e:
        pytest.skip(f"NVMe tier unavailable in this build or filesystem: {e}")


def test_nvme_capacity_must_be_whole_slots(nvme_path):
    try:
        slot = kvtier.nvme_slot_bytes(BLOCK)
    except kvtier.ENOTSUP as e:
        pytest.skip(f"built without the NVMe tier: {e}")
    with pytest.raises(kvtier.ECAPACITY):
        kvtier.Store(block_bytes=BLOCK, nvme_path=nvme_path, nvme_bytes=4 * slot + 4096)
    with pytest.raises(kvtier.ESIZE):
        kvtier.nvme_slot_bytes(0)


# ------------------------------------------------------------------ round trips

def layouts(rng, n, frags):
    """(name, source buffers, expected block bytes) in every accepted form."""
    blocks = [rand_bytes(rng, BLOCK) for _ in range(n)]
    fb = BLOCK // frags
    split = [[b[f * fb:(f + 1) * fb] for f in range(frags)] for b in blocks]
    yield "bytes per block", blocks, blocks
    yield "bytearray per block", [bytearray(b) for b in blocks], blocks
    yield "memoryview per block", [memoryview(bytearray(b)) for b in blocks], blocks
    yield "numpy per block", [np.frombuffer(b, dtype=np.float32).copy() for b in blocks], blocks
    yield "one batch buffer", b"".join(blocks), blocks
    yield "numpy batch 2-d", np.frombuffer(b"".join(blocks), np.uint8).reshape(n, BLOCK).copy(), \
        blocks
    yield "bytes fragments", split, blocks
    yield "memoryview slices of one bytes (fragments)", \
        [[memoryview(b)[f * fb:(f + 1) * fb] for f in range(frags)] for b in blocks], blocks
    yield "numpy fragments", [[np.frombuffer(x, np.uint8).copy() for x in s] for s in split], blocks


def check_round_trip(store, rng, frags, tag, n=6):
    for i, (name, src, want) in enumerate(layouts(rng, n, frags)):
        keys = some_keys(n, salt=f"{tag}-{i}".encode())
        put = store.put(keys, src)
        assert (int(put), put.status) == (n, [0] * n), name
        # destinations in the other forms, poisoned first
        fb = BLOCK // frags
        dst_blocks = [bytearray(b"\xa5" * BLOCK) for _ in range(n)]
        got = store.get(keys, dst_blocks)
        assert (int(got), got.status) == (n, [0] * n), name
        assert [bytes(b) for b in dst_blocks] == want, f"{name}: bytes differ (per block)"
        dst_np = np.full((n, BLOCK), 0x5A, np.uint8)
        assert store.get(keys, dst_np) == n
        assert dst_np.tobytes() == b"".join(want), f"{name}: bytes differ (batch)"
        frag_dst = [[np.full(fb, 0x3C, np.uint8) for _ in range(frags)] for _ in range(n)]
        assert store.get(keys, frag_dst) == n
        assert [b"".join(f.tobytes() for f in blk) for blk in frag_dst] == want, \
            f"{name}: bytes differ (fragments)"


@pytest.mark.parametrize("frags", [1, 4])
def test_round_trip_dram_every_buffer_kind(rng, frags):
    with dram_store(blocks=512, frags=frags) as s:
        assert s.tier_available("dram") and s.tier_available(kvtier.Tier.DRAM)
        check_round_trip(s, rng, frags, f"dram{frags}")
        assert s.stat("dram.used_blocks") == 9 * 6


@pytest.mark.parametrize("frags", [1, 4])
def test_round_trip_nvme_only(rng, nvme_path, frags):
    with open_nvme(nvme_path, 64, frags=frags) as s:
        assert s.tier_available("nvme") and not s.tier_available("dram")
        check_round_trip(s, rng, frags, f"nvme{frags}")
        hits, tiers = s.lookup(some_keys(6, salt=f"nvme{frags}-0".encode()))
        assert hits == 6 and tiers == [kvtier.Tier.NVME] * 6


@pytest.mark.parametrize("admit", ["write_back", "write_through"])
def test_nvme_demotion_and_warm_reopen(rng, nvme_path, admit):
    n = 16
    blocks = [rand_bytes(rng, BLOCK) for _ in range(n)]
    keys = some_keys(n, salt=b"warm")
    with open_nvme(nvme_path, 32, dram_blocks=4, admit={"nvme": admit}) as s:
        for i in range(0, n, 4):  # a put batch must fit the top tier (DRAM: 4 blocks)
            r = s.put(keys[i:i + 4], blocks[i:i + 4])
            assert (int(r), r.status) == (4, [0] * 4), f"blocks {i}.."
            if admit == "write_through":
                # DRAM blocks can't be evicted while their background copy runs
                # (a put meanwhile gets KVT_EFULL): wait for the copies.
                deadline = time.monotonic() + 10
                while s.stat("nvme.writethrough_in") < i + 4 and time.monotonic() < deadline:
                    time.sleep(0.001)
                assert s.stat("nvme.writethrough_in") == i + 4
        hits, tiers = s.lookup(keys)
        assert hits == n
        assert tiers.count(kvtier.Tier.DRAM) == 4 and tiers.count(kvtier.Tier.NVME) == 12
        dst = bytearray(n * BLOCK)
        assert s.get(keys, dst, no_promote=True) == n
        assert bytes(dst) == b"".join(blocks)
    # A clean close writes what only DRAM held down (KVT_OPT_CLOSE_FLUSH_MS):
    # the reopened file holds all 16.
    on_media = [True] * n
    with open_nvme(nvme_path, 32, dram_blocks=4) as s:
        dst = [bytearray(b"\xa5" * BLOCK) for _ in range(n)]
        r = s.get(keys, dst)
        assert r.status == [0 if m else kvtier.ENOENT.code for m in on_media]
        for i in range(n):
            assert bytes(dst[i]) == (blocks[i] if on_media[i] else b"\xa5" * BLOCK), f"block {i}"


def test_flush_and_durable_puts(rng, nvme_path):
    n = 12
    blocks = [rand_bytes(rng, BLOCK) for _ in range(n)]
    keys = some_keys(n, salt=b"durable")
    with open_nvme(nvme_path, 64, dram_blocks=32, close_flush_ms=0) as s:
        assert s.put(keys[:4], blocks[:4]).status == [0] * 4
        assert s.stat("nvme.used_blocks") == 0  # write-back: in DRAM only
        r = s.flush(keys[:5])
        assert (int(r), r.status) == (4, [0] * 4 + [kvtier.ENOENT.code])
        r = s.put(keys[4:8], blocks[4:8], durable=True)
        assert (int(r), r.status) == (4, [0] * 4)
        t = s.put(keys[8:10], blocks[8:10], durable=True, wait=False)
        assert int(t.wait()) == 2
        assert s.put(keys[10:], blocks[10:]).status == [0, 0]
        assert s.flush() == 2  # everything else: the last two
        assert s.stat("flush_written") == 12 and s.stat("nvme.used_blocks") == 12
        assert s.remove(keys[:2]) == 2
    # close_flush_ms=0 wrote nothing more at close: what was flushed is back.
    with open_nvme(nvme_path, 64, dram_blocks=32) as s:
        hits, _ = s.lookup(keys[2:])
        assert hits == n - 2 and s.lookup(keys[:2])[0] == 0
        dst = [bytearray(BLOCK) for _ in range(n - 2)]
        assert s.get(keys[2:], dst, no_promote=True) == n - 2
        assert [bytes(d) for d in dst] == blocks[2:]


def test_durable_needs_a_persistent_tier(rng):
    with dram_store() as s:
        with pytest.raises(kvtier.ENOTSUP):
            s.put(some_keys(1), [b"x" * BLOCK], durable=True)
        with pytest.raises(kvtier.ENOTSUP):
            s.flush()


def test_poisoned_destinations_stay_for_missing_blocks(rng):
    with dram_store() as s:
        keys = some_keys(5, salt=b"poison")
        blocks = [rand_bytes(rng, BLOCK) for _ in range(5)]
        assert s.put(keys[1:2] + keys[3:4], [blocks[1], blocks[3]]) == 2
        dst = [bytearray(b"\xa5" * BLOCK) for _ in range(5)]
        r = s.get(keys, dst)
        enoent = kvtier.ENOENT.code
        assert (int(r), r.status) == (2, [enoent, 0, enoent, 0, enoent])
        for i in (0, 2, 4):
            assert dst[i] == b"\xa5" * BLOCK, f"missing block {i} was written"
        assert (bytes(dst[1]), bytes(dst[3])) == (blocks[1], blocks[3])
        assert s.lookup(keys) == (0, [kvtier.Tier.NONE] * 5)
        assert s.lookup(keys[1:]) == (1, [kvtier.Tier.DRAM] + [kvtier.Tier.NONE] * 3)


def test_blocks_are_immutable_and_remove_forgets():
    with dram_store() as s:
        keys = some_keys(2, salt=b"imm")
        assert s.put(keys, [b"\x01" * BLOCK, b"\x02" * BLOCK]) == 2
        assert s.put(keys[:1], [b"\x09" * BLOCK]) == 1
        out = bytearray(BLOCK)
        s.get(keys[:1], [out])
        assert out == b"\x01" * BLOCK
        assert s.stat("put_present") == 1
        more = kvtier.keys(range(8), keys[1], 4)  # the chain continued after keys[1]
        r = s.put(more, [b"\x03" * BLOCK, b"\x04" * BLOCK], parent=keys[1], retain_s=5)
        assert (int(r), r.status) == (2, [0, 0])
        assert s.remove(list(keys) + [b"\x00" * 16]) == 2
        assert s.lookup(keys)[0] == 0


def test_tier_instances_by_list():
    """tiers=[...]: instances in order, options by their C names, a kind twice."""
    tiers = [{"kind": "dram", "capacity": 4 * BLOCK, "hugepages": 0, "victims": "demote"},
             {"kind": "dram", "name": "slow", "capacity": 16 * BLOCK, "hugepages": 0}]
    with kvtier.Store(block_bytes=BLOCK, tiers=tiers) as s:
        assert s.tier_names() == ["dram", "slow"]
        assert s.tier_available("slow") and s.tier_available(1) and not s.tier_available("nvme")
        keys = some_keys(8, salt=b"two-drams")
        for i in range(8):
            assert s.put(keys[i:i + 1], [bytes([i]) * BLOCK]) == 1
        hits, where = s.lookup(keys)
        assert hits == 8
        assert where.count(kvtier.Tier.DRAM) == 4 and where.count("slow") == 4
        out = bytearray(BLOCK)
        s.get(keys[:1], [out])
        assert out == bytes([0]) * BLOCK
        assert s.stat("slow.used_blocks") >= 3
    with pytest.raises(kvtier.EINVAL):
        kvtier.Store(block_bytes=BLOCK, tiers=[{"kind": "dram", "capacity": BLOCK,
                                                 "queue_depth": 4}])
    with pytest.raises(kvtier.ENOTSUP):
        kvtier.Store(block_bytes=BLOCK, tiers=[{"kind": "floppy", "capacity": BLOCK}])
    assert kvtier.slot_bytes("dram", BLOCK) == BLOCK


def test_contains_touch_and_clear():
    with dram_store(blocks=4, manual_clock=True, policy="lru") as s:
        keys = some_keys(6, salt=b"ctc")
        assert s.put(keys[0:6:2], [bytearray(BLOCK)] * 3) == 3
        D, N = kvtier.Tier.DRAM, kvtier.Tier.NONE
        assert s.contains(keys) == (3, [D, N, D, N, D, N])
        assert s.lookup(keys)[0] == 1
        assert s.put(keys[1:2], [bytearray(BLOCK)]) == 1  # full: 0, 2, 4, 1 in LRU order
        assert s.touch([keys[0], keys[3]]) == 1
        assert s.put(keys[5:6], [bytearray(BLOCK)]) == 1
        assert s.contains(keys)[1] == [D, D, N, N, D, D], "2 went, not the touched 0"
        assert s.clear() == 4
        assert s.contains(keys) == (0, [N] * 6)
        assert s.stat("dram.used_blocks") == 0
        with pytest.raises(kvtier.ESIZE):
            s.contains([])


def test_buffer_shape_errors():
    with dram_store(frags=2) as s:
        keys = some_keys(2, salt=b"shape")
        with pytest.raises(ValueError, match="expected 4096"):
            s.put(keys, [b"x" * BLOCK, b"x" * (BLOCK - 1)])
        with pytest.raises(ValueError, match="3 fragments"):
            s.put(keys, [[b"x" * 2048] * 3, b"x" * BLOCK])
        with pytest.raises(ValueError, match="1 buffers for 2 keys"):
            s.put(keys, [b"x" * BLOCK])
        with pytest.raises(ValueError, match="contiguous"):
            s.put(keys, np.zeros((2, 2 * BLOCK), np.uint8)[:, ::2])
        with pytest.raises(TypeError, match="read-only"):
            s.get(keys, [b"x" * BLOCK, bytearray(BLOCK)])
        frozen = np.zeros((2, BLOCK), np.uint8)
        frozen.flags.writeable = False
        with pytest.raises(TypeError, match="read-only"):
            s.get(keys, frozen)
        assert s.put(keys, frozen) == 2, "read-only memory is fine for put"
        assert s.remove(keys) == 2
        with pytest.raises(TypeError, match="neither a buffer nor a tensor"):
            s.put(keys, [1234, b"x" * BLOCK])
        assert s.stat("put_blocks") == 2, "a refused call must not reach the library"


# ------------------------------------------------------------------ tensors (duck-typed)

class FakeDevice:
    def __init__(self, type_, index=None):
        self.type, self.index = type_, index


class FakeTensor:
    """Quacks like a torch tensor: CPU ones wrap a numpy array's memory."""

    def __init__(self, arr, device="cpu", index=None, contiguous=True):
        self.arr, self.device, self._contig = arr, FakeDevice(device, index), contiguous

    def data_ptr(self):
        return self.arr.ctypes.data

    def element_size(self):
        return self.arr.itemsize

    def numel(self):
        return self.arr.size

    def is_contiguous(self):
        return self._contig

    def get_device(self):
        return self.device.index if self.device.index is not None else -1


def test_tensor_duck_typing_cpu_and_cuda(rng):
    with dram_store(frags=2) as s:
        keys = some_keys(3, salt=b"tensor")
        src = np.frombuffer(rand_bytes(rng, 3 * BLOCK), np.float16).reshape(3, -1).copy()
        assert s.put(keys, [FakeTensor(src[i]) for i in range(3)]) == 3
        dst = np.zeros_like(src)
        halves = [[FakeTensor(dst[i, :BLOCK // 4]), FakeTensor(dst[i, BLOCK // 4:])]
                  for i in range(3)]
        assert s.get(keys, halves) == 3
        assert dst.tobytes() == src.tobytes()
        with pytest.raises(ValueError, match="not contiguous"):
            s.put(keys[:1], [FakeTensor(src[0], contiguous=False)])


class RecordingLib:
    """The real library, except that kvt_get/kvt_put record their options."""

    def __init__(self, real):
        self.real, self.calls = real, []

    def __getattr__(self, name):
        return getattr(self.real, name)

    def _io(self, h, keys, n, ptrs, opts, ticket):
        o = opts._obj
        self.calls.append({"n": n, "mem_kind": o.mem_kind, "device": o.device,
                           "stream": o.stream, "flags": o.flags,
                           "ptrs": [ptrs[i] for i in range(len(ptrs))]})
        return n

    kvt_get = kvt_put = _io


def test_cuda_tensors_pass_device_and_stream(monkeypatch):
    import kvtier.store
    fake = RecordingLib(kvtier.store.lib)
    monkeypatch.setattr(kvtier.store, "lib", fake)
    # torch.cuda.current_stream(device).cuda_stream, as the binding sees it
    streams = {1: 0x5151}
    torch = type(sys)("torch")
    torch.cuda = type(sys)("torch.cuda")
    torch.cuda.current_stream = lambda dev: type("S", (), {"cuda_stream": streams[dev]})
    monkeypatch.setitem(sys.modules, "torch", torch)
    gpu = np.zeros((2, BLOCK), np.uint8)
    with dram_store(frags=2) as s:
        keys = some_keys(2, salt=b"cuda")
        tensors = [FakeTensor(gpu[i], device="cuda", index=1) for i in range(2)]
        assert s.get(keys, tensors) == 2
        assert s.put(keys, tensors, stream=type("S", (), {"cuda_stream": 0x777})()) == 2
        assert s.get(keys, tensors, stream=0x999, stream_wait=True, no_promote=True) == 2
        base = gpu.ctypes.data
        want_ptrs = [base, base + BLOCK // 2, base + BLOCK, base + BLOCK + BLOCK // 2]
        assert [(c["mem_kind"], c["device"], c["stream"], c["flags"], c["ptrs"])
                for c in fake.calls] == [(1, 1, 0x5151, 0, want_ptrs),
                                         (1, 1, 0x777, 0, want_ptrs),
                                         (1, 1, 0x999, 3, want_ptrs)]
        with pytest.raises(ValueError, match="host memory or all on one CUDA device"):
            s.get(keys, [tensors[0], FakeTensor(gpu[1])])
        with pytest.raises(ValueError, match="host memory or all on one CUDA device"):
            s.get(keys, [tensors[0], FakeTensor(gpu[1], device="cuda", index=0)])


# ------------------------------------------------------------------ keys vs the spec

def spec_ns_key(fields):
    buf = b"kvtier-ns-v1" + b"".join(bytes([t]) + struct.pack("<I", len(v)) + v for t, v in fields)
    return xxhash.xxh3_128_intdigest(buf).to_bytes(16, "big")


def spec_chain(parent, tokens, b):
    out = []
    for i in range(len(tokens) // b):
        parent = xxhash.xxh3_128_intdigest(
            parent + struct.pack(f"<{b}I", *tokens[i * b:(i + 1) * b])).to_bytes(16, "big")
        out.append(parent)
    return out


def test_keys_match_independent_xxhash_implementation(rng):
    for case in range(200):
        fields = [(rng.randrange(256), rand_bytes(rng, rng.choice([0, 1, 7, 40])))
                  for _ in range(rng.randrange(5))]
        b = rng.choice([1, 2, 3, 16, 64])
        tokens = [rng.choice([0, 1, 2 ** 31, 2 ** 32 - 1, rng.randrange(2 ** 32)])
                  for _ in range(rng.randrange(0, 5 * b + 3))]
        ns = kvtier.Namespace(fields=fields)
        want_ns = spec_ns_key(fields)
        assert ns.key == want_ns == kvtier.ns_key(fields), f"case {case}"
        want = spec_chain(want_ns, tokens, b)
        forms = {
            "list": tokens,
            "array": array.array("I", tokens),
            "numpy u32": np.array(tokens, dtype=np.uint32),
            "numpy i64": np.array(tokens, dtype=np.int64),
            "numpy >u4 strided": np.repeat(np.array(tokens, dtype=">u4"), 2)[::2],
            "memoryview": memoryview(array.array("I", tokens)),
            "tuple": tuple(tokens),
        }
        for name, form in forms.items():
            got = kvtier.keys(form, ns, b)
            assert isinstance(got, kvtier.Keys) and got == want, f"case {case} {name}"
        # continuing a chain from any key gives the rest of the same chain
        if len(want) >= 2:
            k = rng.randrange(1, len(want))
            assert kvtier.keys(tokens[k * b:], want[k - 1], b) == want[k:], f"case {case}"


def test_namespace_named_fields_and_values():
    ns = kvtier.Namespace(model="m", layout=b"bf16", rank=3, adapter="", salt="s",
                          fields=[(255, "x")])
    want = [(1, b"m"), (2, b"bf16"), (3, b"3"), (4, b""), (5, b"s"), (255, b"x")]
    assert list(ns.fields) == want and ns.key == spec_ns_key(want) == bytes(ns)
    assert kvtier.Namespace().key == spec_ns_key([]) == kvtier.ns_key([])
    # the documented vector (docs/key-spec.md, empty-value-field)
    ns = kvtier.Namespace(model="m", adapter="")
    assert ns.key.hex() == "80db8af880ac229bc12b20581c9e355e"
    assert ns.keys([7, 8, 9], 1).hex() == ["28c63ed52cfd7ba3ac93de90dc95997e",
                                           "cc5382998d13b5a497b929d892c28d1e",
                                           "f8a23a93677b3d925d8c458ee8e34e7f"]
    assert kvtier.key_hex(ns.key) == ns.key.hex()
    with pytest.raises(kvtier.EINVAL):
        kvtier.Namespace(fields=[(256, "x")])
    with pytest.raises(kvtier.ESIZE):
        kvtier.keys([1, 2, 3], None, 0)
    with pytest.raises(ValueError):
        kvtier.keys([-1], None, 1)
    with pytest.raises(ValueError):
        kvtier.keys(np.array([2 ** 32], dtype=np.int64), None, 1)
    assert len(kvtier.keys(range(15), None, 16)) == 0


def test_keys_container():
    k = kvtier.keys(range(40), None, 4)
    assert len(k) == 10 and len(k.raw) == 160 and k[-1] == k[9] and k[2:5] == list(k)[2:5]
    assert kvtier.Keys(list(k)) == k and kvtier.Keys(k.raw) == k and k[::2] == list(k)[::2]
    with pytest.raises(ValueError):
        kvtier.Keys(b"x" * 17)
    with pytest.raises(IndexError):
        k[10]


# ------------------------------------------------------------------ errors

def header_error_table():
    text = HEADER.read_text()
    table = re.search(r"#define KVT_ERROR_TABLE\(X\)(.*?)\n\n", text, re.S).group(1)
    rows = re.findall(r'X\((KVT_\w+),\s*(-?\d+),\s*"((?:[^"\\]|\\.)*)"\)', table)
    assert len(rows) >= 30
    return [(name, int(value), msg) for name, value, msg in rows]


def test_every_error_code_has_its_own_class():
    rows = header_error_table()
    errors = [r for r in rows if r[1] != 0]
    assert set(kvtier.BY_CODE) == {v for _, v, _ in errors}, "binding and header disagree"
    classes = set()
    for name, value, msg in errors:
        cls = kvtier.error_class(value)
        assert cls.__name__ == name[len("KVT_"):] and cls.symbol == name
        assert cls.code == value and cls.description == msg
        assert issubclass(cls, kvtier.KvtierError) and getattr(kvtier, cls.__name__) is cls
        classes.add(cls)
        e = cls(value, "detail")
        assert e.code == value and str(e) == f"{name} ({value}): detail"
    assert len(classes) == len(errors), "two codes share a class"
    assert kvtier.error_class(-999) is kvtier.KvtierError


def raises(cls, fn, *a, **kw):
    with pytest.raises(kvtier.KvtierError) as info:
        fn(*a, **kw)
    assert type(info.value) is cls, f"{type(info.value).__name__}: {info.value}"
    assert info.value.code == cls.code and info.value.message.startswith(cls.description)
    return info.value


def test_real_failures_raise_their_class(tmp_path):
    e = raises(kvtier.ESIZE, kvtier.Store, block_bytes=0, dram_bytes=BLOCK)
    assert "block bytes" in e.message, "the message carries kvt_last_error detail"
    raises(kvtier.EFRAGS, kvtier.Store, block_bytes=BLOCK, frags=3, dram_bytes=BLOCK)
    raises(kvtier.EPOLICY, kvtier.Store, block_bytes=BLOCK, dram_bytes=BLOCK,
           policy="no-such-policy")
    raises(kvtier.ENOTIER, kvtier.Store, block_bytes=BLOCK)
    raises(kvtier.ECAPACITY, kvtier.Store, block_bytes=BLOCK, dram_bytes=BLOCK - 1)
    raises(kvtier.EPATH, kvtier.Store, block_bytes=BLOCK, nvme_bytes=1 << 20)
    with dram_store(blocks=4, max_inflight=2) as s:
        keys = some_keys(2, salt=b"err")
        raises(kvtier.ESIZE, s.lookup, [])
        raises(kvtier.ENOENT, s.pin, keys, 100)
        raises(kvtier.ENOENT, s.stat, "no.such.stat")
        raises(kvtier.ENOTSUP, s.clock_set, 10)
        raises(kvtier.EINVAL, s.tier_available, 7)
        r = s.release(keys)
        assert (int(r), r.status) == (0, [kvtier.ENOTPINNED.code] * 2)
        raises(kvtier.ETICKET, lambda: check(_lib.lib.kvt_wait(s._ptr, 12345, 0)))
        buf = bytearray(BLOCK)
        t1 = s.put(keys[:1], [buf], wait=False)
        t2 = s.put(keys[:1], [buf], wait=False)
        raises(kvtier.EBUSY, s.put, keys[:1], [buf], wait=False)
        assert t1.wait() == 1 and t2.wait() == 1
        t1_id = t1.id
        raises(kvtier.ETICKET, lambda: check(_lib.lib.kvt_poll(s._ptr, t1_id)))
    raises(kvtier.ECLOSED, s.lookup, keys)
    with dram_store(manual_clock=True) as s:
        s.clock_set(100)
        raises(kvtier.EINVAL, s.clock_set, 99)


# ------------------------------------------------------------------ async

def test_async_tickets_and_eventfd(rng):
    n = 16
    with dram_store(blocks=64, frags=2) as s:
        keys = some_keys(n, salt=b"async")
        src = np.frombuffer(rand_bytes(rng, n * BLOCK), np.uint8).reshape(n, BLOCK).copy()
        efd = s.eventfd()
        assert efd >= 0
        t = s.put(keys, src, wait=False)
        assert isinstance(t, kvtier.Ticket) and t.op == "put"
        assert select.select([efd], [], [], 5)[0] == [efd], "eventfd must wake up"
        assert struct.unpack("<Q", os.read(efd, 8))[0] >= 1
        r = t.poll()
        assert (int(r), r.status) == (n, [0] * n) and t.done
        assert t.wait() is r and t.poll() is r, "a collected ticket keeps its result"
        dst = bytearray(b"\xa5" * (n * BLOCK))
        g = s.get(keys, dst, wait=False)
        with pytest.raises(BufferError):
            dst.extend(b"x")  # held by the pending ticket (or until collected)
        assert g.wait(timeout_ms=5000) == n
        dst.extend(b"x")  # released on completion
        assert bytes(dst[:-1]) == src.tobytes()
        missing = s.get(some_keys(2, salt=b"none"), [bytearray(BLOCK)] * 2, wait=False)
        assert missing.wait().status == [kvtier.ENOENT.code] * 2
        assert s.stat("tickets_pending") == 0


def test_dropped_tickets_are_reaped():
    with dram_store(blocks=4, max_inflight=2) as s:
        keys = some_keys(1, salt=b"reap")
        for _ in range(20):  # more than max_inflight, never waited for
            s.put(keys, [bytearray(BLOCK)], wait=False)
            s.lookup(keys)
        assert s.lookup(keys)[0] == 1


def test_pending_ticket_after_close_raises_eclosed():
    s = dram_store(blocks=256)
    keys = some_keys(128, salt=b"close")
    t = s.put(keys, bytearray(128 * BLOCK), wait=False)
    s.close()
    s.close()  # idempotent
    assert t.done
    with pytest.raises(kvtier.ECLOSED):
        t.wait()


# ------------------------------------------------------------------ time, stats

def test_manual_clock_ttl_and_leases():
    with dram_store(blocks=2, manual_clock=True, ttl_ms=1000) as s:
        s.clock_set(1_000_000)
        assert s.now() == 1_000_000
        keys = some_keys(3, salt=b"ttl")
        assert s.put(keys[:2], [bytearray(BLOCK)] * 2) == 2
        assert s.lookup(keys[:2], lease_ms=50) == (2, [kvtier.Tier.DRAM] * 2)
        r = s.put(keys[2:], [bytearray(BLOCK)])
        assert (int(r), r.status) == (0, [kvtier.EFULL.code]), "leased blocks are not evicted"
        s.clock_set(1_000_000 + 50_000_000)
        assert s.put(keys[2:], [bytearray(BLOCK)]) == 1, "the lease ended"
        s.clock_set(1_000_000 + 2_000_000_000)
        assert s.expire() == 2 and s.lookup(keys[2:])[0] == 0
        assert s.stat("dram.expirations") == 2


def test_clock_callback():
    now = [5_000]
    with dram_store(clock=lambda: now[0]) as s:
        assert s.now() == 5_000
        now[0] = 777_000
        assert s.now() == 777_000


def test_stats_contents():
    with dram_store(blocks=8) as s:
        keys = some_keys(4, salt=b"stats")
        s.put(keys[:3], bytearray(3 * BLOCK))
        s.lookup(keys)
        s.get(keys, [bytearray(BLOCK) for _ in range(4)])
        st = s.stats()
        want = {"put_blocks": 3, "put_stored": 3, "lookups": 1, "lookup_blocks": 4,
                "lookup_hit_blocks": 3, "get_blocks": 4, "get_hit_blocks": 3,
                "get_miss_blocks": 1, "dram.capacity_blocks": 8, "dram.used_blocks": 3,
                "dram.hits": 3, "tickets_pending": 0}
        assert {k: st.get(k) for k in want} == want
        assert all(isinstance(k, str) and isinstance(v, int) for k, v in st.items())
        assert not any(k.startswith(("nvme.", "hbm.")) for k in st)
        for name in want:
            assert s.stat(name) == st[name]


# ------------------------------------------------------------------ ABI consistency

C_SCALARS = {  # C type -> (bytes, signed)
    "int": (4, True), "int32_t": (4, True), "int64_t": (8, True), "uint32_t": (4, False),
    "uint64_t": (8, False), "size_t": (8, False), "kvt_ticket": (8, False),
    "kvt_option": (4, True), "kvt_tier": (4, True), "kvt_tier_option": (4, True),
    "kvt_tier_str_option": (4, True), "void": (0, None),
}
C_CALLBACKS = {"kvt_clock_fn", "kvt_stat_fn"}


def header_prototypes():
    text = re.sub(r"/\*.*?\*/", " ", HEADER.read_text(), flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    protos = {}
    for ret, name, args in re.findall(r"KVT_API\s+([^;{}()]*?)\b(kvt_\w+)\s*\(([^()]*)\)\s*;",
                                      text):
        params = [" ".join(a.split()) for a in args.split(",")]
        if params == ["void"]:
            params = []
        protos[name] = (" ".join(ret.split()), params)
    return protos


def c_kind(decl):
    """'ptr' or (bytes, signed) of a C declaration (type [name])."""
    if "*" in decl or "[" in decl:
        return "ptr"
    words = decl.replace("const ", "").split()
    if words[0] in C_CALLBACKS:
        return "ptr"
    return C_SCALARS[words[0]]


def ctypes_kind(t):
    if t is None:
        return (0, None)
    if issubclass(t, (ctypes._Pointer, ctypes.c_void_p, ctypes.c_char_p, ctypes._CFuncPtr)):
        return "ptr"
    return (ctypes.sizeof(t), t(-1).value < 0)


def test_binding_declares_every_header_function_with_matching_types():
    protos = header_prototypes()
    assert len(protos) >= 30
    assert set(protos) == set(_lib.PROTOTYPES), "binding and header list different functions"
    for name, (ret, params) in protos.items():
        restype, argtypes = _lib.PROTOTYPES[name]
        assert len(argtypes) == len(params), f"{name}: {len(argtypes)} args, header {params}"
        assert ctypes_kind(restype) == c_kind(ret), f"{name} returns {ret}"
        for i, (p, t) in enumerate(zip(params, argtypes)):
            assert ctypes_kind(t) == c_kind(p), f"{name} argument {i}: {p} vs {t}"
        fn = getattr(_lib.lib, name)
        assert fn.argtypes == argtypes and fn.restype == restype
        # CDLL functions release the GIL during the call (PyDLL ones would not)
        assert not fn._flags_ & ctypes._FUNCFLAG_PYTHONAPI
    assert kvtier.library_version == "%d.%d.%d" % tuple(
        int(re.search(rf"#define KVT_VERSION_{p}\s+(\d+)", HEADER.read_text()).group(1))
        for p in ("MAJOR", "MINOR", "PATCH"))


def test_io_opts_layout_matches_header():
    # kvt_io_opts: u32 size, u32 mem_kind, i32 device, u32 flags, void *stream,
    # u32 retain_s, u32 frags, const kvt_key *parent, int32_t *status (48 bytes,
    # the first version), then u64 group (issue 20), then u32 frag_first and
    # u32 frag_count (issue 20, layer-wise gets)
    o = _lib.IoOpts
    assert ctypes.sizeof(o) == 64
    assert [o.stream.offset, o.retain_s.offset, o.parent.offset, o.status.offset] == [16, 24, 32, 40]
    assert o.group.offset == 48
    assert [o.frag_first.offset, o.frag_count.offset] == [56, 60]
    assert ctypes.sizeof(_lib.NsField) == 16 and _lib.NsField.data.offset == 8


def test_io_opts_size_from_a_newer_header():
    # A caller built against a newer kvtier.h passes a bigger kvt_io_opts:
    # accepted while every byte this library does not know is zero, else
    # KVT_ESIZE naming the byte (copy_struct_from_user rules); > 4096 unread.
    class Newer(ctypes.Structure):
        _fields_ = [("o", _lib.IoOpts), ("extra", ctypes.c_uint64)]

    s = dram_store(4)
    block = (ctypes.c_char * BLOCK)()
    ptrs = (ctypes.c_void_p * 1)(ctypes.addressof(block))
    key = (ctypes.c_uint8 * 16)(*range(16))
    status = (ctypes.c_int32 * 1)(7)
    n = Newer()
    n.o.size = ctypes.sizeof(Newer)
    n.o.status = ctypes.addressof(status)
    opts = ctypes.cast(ctypes.pointer(n), ctypes.POINTER(_lib.IoOpts))
    put = _lib.lib.kvt_put
    assert put(s._h(), key, 1, ptrs, opts, None) == 1, _lib.last_error()
    assert status[0] == 0
    n.extra = 1 << 40
    assert put(s._h(), key, 1, ptrs, opts, None) == kvtier.ESIZE.code
    assert "opts->size" in _lib.last_error() and \
        f"byte {ctypes.sizeof(_lib.IoOpts) + 5}" in _lib.last_error()
    n.extra = 0
    first = _lib.IoOpts.group.offset  # the size of the first kvt_io_opts
    for size, cls in ((0, kvtier.EINVAL), (first - 1, kvtier.EINVAL),
                      (4097, kvtier.ESIZE), (0xFFFFFFFF, kvtier.ESIZE)):
        n.o.size = size
        assert put(s._h(), key, 1, ptrs, opts, None) == cls.code, size
    s.close()


# ------------------------------------------------------------------ examples

def run_ok(cmd, **kw):
    env = dict(os.environ, PYTHONPATH=str(SOURCE_ROOT / "python"), KVTIER_LIBRARY=_lib.path)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, **kw)
    assert r.returncode == 0, f"{cmd} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def test_quickstart_runs():
    out = run_ok([sys.executable, str(SOURCE_ROOT / "examples" / "python" / "quickstart.py")])
    assert "hits 4 of 4" in out, out


def test_transformers_offload_runs_or_skips():
    out = run_ok([sys.executable,
                  str(SOURCE_ROOT / "examples" / "python" / "transformers_offload.py")])
    assert out.startswith("skipped: ") or "ok:" in out, out


def test_paged_engine_runs():
    if not BUILD_ROOT:
        pytest.skip("KVT_BUILD_ROOT is not set (meson test sets it)")
    exe = Path(BUILD_ROOT) / "examples" / "paged_engine"
    if not exe.exists():
        pytest.skip(f"{exe} was not built (-Dexamples=false?)")
    out = run_ok([str(exe)])
    assert "all pages verified" in out, out
