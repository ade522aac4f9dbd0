"""test_sglang_driver.py — drives kvtier.integrations.sglang exactly as SGLang's HiCache calls a storage backend.

Engine source: sgl-project/sglang at 001067fffe33427bee0ed2f007fb7551a1d76b44.
  [F] python/sglang/srt/mem_cache/storage/backend_factory.py
      StorageBackendFactory.create_backend / _create_dynamic_backend /
      _load_backend_class: import module_path, issubclass(HiCacheStorage),
      backend_class(storage_config, kwargs).
  [C] python/sglang/srt/managers/cache_controller.py
      attach_storage_backend: create_backend(...), then
        register_mem_pool_host(storage_host_pool); zero-copy page functions
        when extra_config["interface_v1"] is set for the dynamic backend.
      _storage_hit_query (prefetch thread): batch_exists per 128 page keys
        (STORAGE_BATCH_SIZE), stopping at the first short batch.
      _page_transfer / _page_transfer_kv_batch (prefetch I/O thread): per
        batch, _page_get_zero_copy -> batch_get_v1(keys, host_indices,
        extra_info) -> [bool], or _generic_page_get -> batch_get(keys,
        [dummy flat page per key]) -> [tensor|None], then
        set_from_flat_data_page(host_indices[i * page_size], page).
      _page_backup (backup thread): per batch, _page_set_zero_copy ->
        all(batch_set_v1(...)), or _generic_page_set -> batch_set(keys,
        [get_data_page(host_indices[i * page_size])]) -> bool.
The host pool is an MHA pool (memory_pool_host.py's MHATokenToKVPoolHost,
layouts layer_first and page_first) restated with torch CPU tensors. Bytes
and hit counts are checked against a dict of the pages written.
"""
import hashlib
import importlib
import queue
import sys
import threading
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import engine_fakes  # noqa: E402

engine_fakes.install_sglang()
from sglang.srt.mem_cache.hicache_storage import (HiCacheStorage,  # noqa: E402
                                                  HiCacheStorageConfig,
                                                  HiCacheStorageExtraInfo)

STORAGE_BATCH_SIZE = 128  # hicache_storage.py
PAGE_SIZE = 4
LAYERS, HEADS, DIM = 3, 2, 8


class HostPool:
    """An MHA host KV pool: kv_buffer of (2, layers, tokens, heads, dim)
    (layer_first) or (2, tokens, layers, heads, dim) (page_first)."""

    def __init__(self, pages, layout):
        self.page_size = PAGE_SIZE
        self.layout = layout
        self.size = pages * PAGE_SIZE
        self.dtype = torch.float16
        shape = (2, LAYERS, self.size, HEADS, DIM) if layout == "layer_first" else \
            (2, self.size, LAYERS, HEADS, DIM)
        self.kv_buffer = torch.zeros(shape, dtype=self.dtype)

    def page(self, index):
        """The page's tokens as a (2, layers, page, heads, dim) copy."""
        if self.layout == "layer_first":
            return self.kv_buffer[:, :, index:index + PAGE_SIZE].clone()
        return self.kv_buffer[:, index:index + PAGE_SIZE].transpose(1, 2).clone()

    def fill(self, index, gen):
        t = self.kv_buffer[:, :, index:index + PAGE_SIZE] if self.layout == "layer_first" \
            else self.kv_buffer[:, index:index + PAGE_SIZE]
        t.copy_(torch.randn(t.shape, generator=gen).to(self.dtype))

    def get_dummy_flat_data_page(self):
        return torch.zeros(2 * LAYERS * PAGE_SIZE * HEADS * DIM, dtype=self.dtype)

    def get_data_page(self, index, flat=True):
        index = int(index)
        if self.layout == "layer_first":
            data = self.kv_buffer[:, :, index:index + PAGE_SIZE]
        else:
            data = self.kv_buffer[:, index:index + PAGE_SIZE]
        return data.flatten() if flat else data

    def set_from_flat_data_page(self, index, data_page):
        index = int(index)
        if self.layout == "layer_first":
            self.kv_buffer[:, :, index:index + PAGE_SIZE] = data_page.reshape(
                2, LAYERS, PAGE_SIZE, HEADS, DIM)
        else:
            self.kv_buffer[:, index:index + PAGE_SIZE] = data_page.reshape(
                2, PAGE_SIZE, LAYERS, HEADS, DIM)

    def get_page_buffer_meta(self, indices):
        """Pointers per page: page_first one K and one V run per page;
        layer_first one K and one V run per layer of each page."""
        assert len(indices) % self.page_size == 0
        item = self.dtype.itemsize if hasattr(self.dtype, "itemsize") else 2
        base = self.kv_buffer.data_ptr()
        v_offset = LAYERS * self.size * HEADS * DIM * item
        idx = indices.tolist()
        ptrs = []
        if self.layout == "page_first":
            for i in range(0, len(idx), PAGE_SIZE):
                k = base + idx[i] * LAYERS * HEADS * DIM * item
                ptrs += [k, k + v_offset]
            size = LAYERS * item * PAGE_SIZE * HEADS * DIM
        else:
            for i in range(0, len(idx), PAGE_SIZE):
                for layer in range(LAYERS):
                    k = base + (idx[i] * HEADS * DIM + layer * self.size * HEADS * DIM) * item
                    ptrs += [k, k + v_offset]
            size = PAGE_SIZE * HEADS * DIM * item
        return ptrs, [size] * len(ptrs)


def create_backend(storage_config, mem_pool_host):
    """[F] create_backend("dynamic", ...) then [C] register_mem_pool_host."""
    cfg = storage_config.extra_config
    for field in ("backend_name", "module_path", "class_name"):
        assert field in cfg
    module = importlib.import_module(cfg["module_path"])
    cls = getattr(module, cfg["class_name"])
    assert issubclass(cls, HiCacheStorage)
    backend = cls(storage_config, {})
    backend.register_mem_pool_host(mem_pool_host)
    return backend


class Controller:
    """The storage half of HiCacheController [C], its threads included."""

    def __init__(self, backend, pool, zero_copy):
        self.backend, self.pool, self.page_size = backend, pool, PAGE_SIZE
        self.zero_copy = zero_copy

    def page_get(self, hashes, host_indices, extra_info):
        if self.zero_copy:  # _page_get_zero_copy
            results = self.backend.batch_get_v1(hashes, host_indices, extra_info)
            assert isinstance(results, list) and all(isinstance(r, bool) for r in results)
            inc = 0
            for r in results:
                if not r:
                    break
                inc += 1
            return inc
        dummy = [self.pool.get_dummy_flat_data_page() for _ in hashes]  # _generic_page_get
        page_data = self.backend.batch_get(hashes, dummy)
        if page_data is None:
            return 0
        count = 0
        for i in range(len(hashes)):
            if page_data[i] is None:
                break
            self.pool.set_from_flat_data_page(host_indices[i * self.page_size], page_data[i])
            count += 1
        return count

    def page_set(self, hashes, host_indices, extra_info):
        if self.zero_copy:  # _page_set_zero_copy
            return all(self.backend.batch_set_v1(hashes, host_indices, extra_info))
        data = [self.pool.get_data_page(host_indices[i * self.page_size])
                for i in range(len(hashes))]  # _generic_page_set
        ok = self.backend.batch_set(hashes, data)
        assert isinstance(ok, bool)
        return ok

    def hit_query(self, page_hashes):  # _storage_hit_query
        hash_value, count = [], 0
        for start in range(0, len(page_hashes), STORAGE_BATCH_SIZE):
            batch = page_hashes[start:start + STORAGE_BATCH_SIZE]
            hit = self.backend.batch_exists(batch, HiCacheStorageExtraInfo(prefix_keys=None))
            assert isinstance(hit, int)
            hash_value.extend(batch[:hit])
            count += hit * self.page_size
            if hit < len(batch):
                break
        return hash_value, count

    def transfer(self, hash_value, host_indices):  # _page_transfer
        done = 0
        for i in range(0, len(hash_value), STORAGE_BATCH_SIZE):
            batch = hash_value[i:i + STORAGE_BATCH_SIZE]
            idx = host_indices[i * self.page_size:(i + len(batch)) * self.page_size]
            hit = self.page_get(batch, idx, HiCacheStorageExtraInfo(prefix_keys=None))
            done += hit
            if hit != len(batch):
                break
        return done

    def backup(self, hash_value, host_indices):  # _page_backup
        done = 0
        for i in range(0, len(hash_value), STORAGE_BATCH_SIZE):
            batch = hash_value[i:i + STORAGE_BATCH_SIZE]
            idx = host_indices[i * self.page_size:(i + len(batch)) * self.page_size]
            if not self.page_set(batch, idx, HiCacheStorageExtraInfo(prefix_keys=None)):
                break
            done += len(batch)
        return done


def page_hashes(tokens, last=None):
    """Chained sha256 hex per page, as SGLang's get_hash_str produces them."""
    out = []
    for i in range(0, len(tokens) - len(tokens) % PAGE_SIZE, PAGE_SIZE):
        h = hashlib.sha256()
        if last:
            h.update(bytes.fromhex(last))
        h.update(b"".join(t.to_bytes(4, "little") for t in tokens[i:i + PAGE_SIZE]))
        last = h.hexdigest()
        out.append(last)
    return out


def config(zero_copy, **kw):
    extra = {"backend_name": "kvtier", "module_path": "kvtier.integrations.sglang",
             "class_name": "KvtierHiCacheStorage", "kvtier_dram_bytes": 4 << 20}
    if zero_copy:
        extra["interface_v1"] = 1
    base = dict(tp_rank=0, tp_size=1, pp_rank=0, pp_size=1, attn_cp_rank=0, attn_cp_size=1,
                is_mla_model=False, enable_storage_metrics=False,
                is_page_first_layout=False, model_name="Qwen/Qwen3-8B", extra_config=extra)
    base.update(kw)
    return HiCacheStorageConfig(**base)


def in_thread(fn, *args):
    """Runs fn on its own thread, as SGLang's storage threads do."""
    out = queue.Queue()
    t = threading.Thread(target=lambda: out.put(fn(*args)))
    t.start()
    return t, out


@pytest.mark.parametrize("layout", ["layer_first", "page_first"])
@pytest.mark.parametrize("zero_copy", [False, True], ids=["generic", "interface_v1"])
def test_backup_then_prefetch(layout, zero_copy):
    pool = HostPool(pages=512, layout=layout)
    backend = create_backend(config(zero_copy, is_page_first_layout=layout == "page_first"),
                             pool)
    ctl = Controller(backend, pool, zero_copy)
    gen = torch.Generator().manual_seed(1)
    reference = {}  # page key -> the page's (2, layers, page, heads, dim) tensor

    # Request A: 150 pages (two storage batches) in host pages 0..149.
    tokens_a = list(range(150 * PAGE_SIZE))
    keys_a = page_hashes(tokens_a)
    idx_a = torch.arange(0, 150 * PAGE_SIZE)
    for p in range(150):
        pool.fill(p * PAGE_SIZE, gen)
        reference[keys_a[p]] = pool.page(p * PAGE_SIZE)
    t, out = in_thread(ctl.backup, keys_a, idx_a)
    t.join()
    assert out.get() == 150

    # Request C is backed up while request B (A's first 140 pages and 10
    # new ones) prefetches: backup thread and prefetch threads at once.
    tokens_c = [10**6 + i for i in range(20 * PAGE_SIZE)]
    keys_c = page_hashes(tokens_c)
    idx_c = torch.arange(150 * PAGE_SIZE, 170 * PAGE_SIZE)
    for p in range(20):
        pool.fill((150 + p) * PAGE_SIZE, gen)
        reference[keys_c[p]] = pool.page((150 + p) * PAGE_SIZE)
    tokens_b = tokens_a[:140 * PAGE_SIZE] + [2 * 10**6 + i for i in range(10 * PAGE_SIZE)]
    keys_b = page_hashes(tokens_b)
    expect_hits = next((i for i, k in enumerate(keys_b) if k not in reference), len(keys_b))
    assert expect_hits == 140
    tc, out_c = in_thread(ctl.backup, keys_c, idx_c)
    tq, out_q = in_thread(ctl.hit_query, keys_b)
    tq.join()
    hash_value, hit_tokens = out_q.get()
    assert hit_tokens == expect_hits * PAGE_SIZE
    assert hash_value == keys_b[:expect_hits]
    idx_b = torch.arange(200 * PAGE_SIZE, (200 + expect_hits) * PAGE_SIZE)
    ti, out_i = in_thread(ctl.transfer, hash_value, idx_b)
    ti.join()
    tc.join()
    assert out_i.get() == expect_hits
    assert out_c.get() == 20
    for p, key in enumerate(hash_value):
        assert torch.equal(pool.page((200 + p) * PAGE_SIZE), reference[key]), p
    assert torch.count_nonzero(pool.page((200 + expect_hits) * PAGE_SIZE)) == 0

    # C, backed up concurrently, reads back whole.
    _, hits = ctl.hit_query(keys_c)
    assert hits == 20 * PAGE_SIZE
    assert ctl.transfer(keys_c, torch.arange(400 * PAGE_SIZE, 420 * PAGE_SIZE)) == 20
    for p, key in enumerate(keys_c):
        assert torch.equal(pool.page((400 + p) * PAGE_SIZE), reference[key])

    # Misses: a key never written, exists() and batch_exists() of a gap.
    assert backend.exists(keys_a[0]) and not backend.exists(keys_b[-1])
    assert backend.batch_exists([keys_a[0], keys_b[-1], keys_a[1]]) == 1
    assert backend.batch_exists([]) == 0
    assert isinstance(backend.get_stats(), dict)
    backend.clear()
    assert backend.batch_exists(keys_a) == 0
    backend.close()


def test_single_get_set_and_keys_per_rank():
    pool = HostPool(pages=8, layout="layer_first")
    b0 = create_backend(config(False, tp_rank=0, tp_size=2), pool)
    b1 = create_backend(config(False, tp_rank=1, tp_size=2), pool)
    page = torch.arange(pool.get_dummy_flat_data_page().numel(), dtype=torch.float16)
    assert b0.set("k", page) is True
    got = b0.get("k")
    assert torch.equal(got, page)
    assert b0.get("missing") is None
    # Each TP rank holds its own heads: same page key, another kvtier key.
    assert b0._keys(["k"]) != b1._keys(["k"])
    m0 = create_backend(config(False, tp_rank=0, tp_size=2, is_mla_model=True), pool)
    m1 = create_backend(config(False, tp_rank=1, tp_size=2, is_mla_model=True), pool)
    assert m0._keys(["k"]) == m1._keys(["k"])  # MLA: one copy for every rank
    for b in (b0, b1, m0, m1):
        b.close()


class StatePool:
    """A per-page state pool (Mamba/SWA-like): page_size 1, one flat state
    per index."""

    def __init__(self, slots, state_elems):
        self.page_size = 1
        self.buf = torch.zeros(slots, state_elems, dtype=torch.float32)

    def get_dummy_flat_data_page(self):
        return torch.zeros(self.buf.shape[1], dtype=torch.float32)

    def get_data_page(self, index, flat=True):
        return self.buf[int(index)]

    def set_from_flat_data_page(self, index, data_page):
        self.buf[int(index)] = data_page


def test_v2_pools_exists_get_set():
    """batch_exists_v2 / batch_get_v2 / batch_set_v2 (hicache_storage.py
    HiCacheStorage; the hit policies as documented there), against sets of
    the pages each pool was given."""
    from sglang.srt.mem_cache.hicache_storage import PoolHitPolicy, PoolName, PoolTransfer

    kv = HostPool(pages=32, layout="layer_first")
    mamba, indexer = StatePool(32, 24), StatePool(32, 8)
    backend = create_backend(config(False), kv)
    backend.register_mem_host_pool_v2(kv, PoolName.KV)
    backend.register_mem_host_pool_v2(mamba, PoolName.MAMBA)
    backend.register_mem_host_pool_v2(indexer, PoolName.INDEXER)
    ctl = Controller(backend, kv, False)
    gen = torch.Generator().manual_seed(3)
    keys = page_hashes(list(range(10 * PAGE_SIZE)))
    for p in range(10):
        kv.fill(p * PAGE_SIZE, gen)
    assert ctl.backup(keys, torch.arange(0, 10 * PAGE_SIZE)) == 10
    mamba.buf.copy_(torch.randn(mamba.buf.shape, generator=gen))
    indexer.buf.copy_(torch.randn(indexer.buf.shape, generator=gen))
    has = {"mamba": {keys[3], keys[7]}, "indexer": set(keys[:5])}
    ref = {("mamba", keys[3]): mamba.buf[3].clone(), ("mamba", keys[7]): mamba.buf[7].clone()}
    out = backend.batch_set_v2([
        PoolTransfer(name=PoolName.MAMBA, host_indices=torch.tensor([3, 7]),
                     keys=[keys[3], keys[7]]),
        PoolTransfer(name=PoolName.INDEXER, host_indices=torch.arange(5), keys=keys[:5])])
    assert out == {"mamba": [True, True], "indexer": [True] * 5}

    def expect(probe, pool, policy, trailing):
        """The hit policies, computed from the sets."""
        kv_pages = next((i for i, k in enumerate(probe) if k not in keys), len(probe))
        if policy == PoolHitPolicy.ALL_PAGES:
            b = next((i for i in range(kv_pages) if probe[i] not in has[pool]), kv_pages)
        else:
            b = next((n for n in range(kv_pages, 0, -1)
                      if all(probe[i] in has[pool] for i in range(max(0, n - trailing), n))), 0)
        return kv_pages, b

    probe = keys + ["absent"]
    for pool, policy, trailing in (("mamba", PoolHitPolicy.TRAILING_PAGES, 1),
                                   ("mamba", PoolHitPolicy.TRAILING_PAGES, 2),
                                   ("indexer", PoolHitPolicy.ALL_PAGES, 1),
                                   ("indexer", PoolHitPolicy.TRAILING_PAGES, 3)):
        name = PoolName(pool)
        r = backend.batch_exists_v2(probe, [PoolTransfer(name=name, keys=["x"] * trailing,
                                                         hit_policy=policy)])
        kv_pages, boundary = expect(probe, pool, policy, trailing)
        assert r.kv_hit_pages == min(kv_pages, boundary), (pool, policy, trailing)
        assert r.extra_pool_hit_pages == {"kv": kv_pages, **({pool: boundary} if boundary
                                                             else {})}
    assert backend.batch_exists_v2(["absent"]).kv_hit_pages == 0

    # Read the Mamba states back into other slots; a missing one is False.
    before_21 = mamba.buf[21].clone()
    got = backend.batch_get_v2([PoolTransfer(name=PoolName.MAMBA,
                                             host_indices=torch.tensor([20, 21, 22]),
                                             keys=[keys[7], keys[5], keys[3]])])
    assert got == {"mamba": [True, False, True]}
    assert torch.equal(mamba.buf[20], ref[("mamba", keys[7])])
    assert torch.equal(mamba.buf[22], ref[("mamba", keys[3])])
    assert torch.equal(mamba.buf[21], before_21)  # the missing page: slot left as it was
    bad = backend.batch_get_v2([PoolTransfer(name=PoolName.MAMBA,
                                             host_indices=torch.tensor([1]), keys=keys[:2])])
    assert bad == {"mamba": [False, False]}  # indices of the wrong length
    backend.close()
