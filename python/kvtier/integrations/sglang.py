"""sglang.py — an SGLang HiCache storage backend (L3) on a kvtier Store.

Written against SGLang commit 001067fffe33427bee0ed2f007fb7551a1d76b44:
python/sglang/srt/mem_cache/hicache_storage.py (HiCacheStorage),
python/sglang/srt/mem_cache/storage/backend_factory.py (the "dynamic"
backend) and python/sglang/srt/managers/cache_controller.py (the caller).
Enable it with

    --hicache-storage-backend dynamic
    --hicache-storage-backend-extra-config '{"backend_name": "kvtier",
        "module_path": "kvtier.integrations.sglang",
        "class_name": "KvtierHiCacheStorage", "interface_v1": 1,
        "kvtier_dram_bytes": 68719476736}'

"interface_v1": 1 makes SGLang use batch_get_v1/batch_set_v1 (zero copy:
kvtier copies straight between its tiers and SGLang's host pool); without
it SGLang calls batch_get/batch_set with one flat tensor per page.

Keys: each page key (a chained sha256 hex string) is folded under a
namespace of the model and this rank (kvtier.integrations.keyfold).
"""
import threading

from . import keyfold
from ..store import Tier
from ._store import io_pointers, open_store

try:  # the factory checks issubclass(cls, HiCacheStorage)
    from sglang.srt.mem_cache.hicache_storage import HiCacheStorage as _Base
    from sglang.srt.mem_cache.hicache_storage import PoolTransferResult
except ImportError:  # SGLang not installed: still importable, for tests and docs
    _Base = object

    class PoolTransferResult:  # noqa: D101 - SGLang's, restated for use without it
        def __init__(self, kv_hit_pages, extra_pool_hit_pages):
            self.kv_hit_pages = kv_hit_pages
            self.extra_pool_hit_pages = extra_pool_hit_pages

KV_POOL = "kv"


def _nbytes(t):
    return int(t.numel()) * int(t.element_size())


class KvtierHiCacheStorage(_Base):
    """HiCacheStorage on kvtier. SGLang calls it from its prefetch, prefetch
    I/O and backup threads at the same time; a Store is thread-safe, and the
    only state here (the store, made once) is guarded by a lock."""

    def __init__(self, storage_config, kwargs=None):
        # The factory calls backend_class(storage_config, kwargs) for the
        # dynamic backend (backend_factory.py, _create_dynamic_backend).
        self.storage_config = storage_config
        self.extra_config = dict(getattr(storage_config, "extra_config", None) or {})
        self.ns = keyfold.sglang_namespace(
            storage_config.model_name, tp_rank=storage_config.tp_rank,
            tp_size=storage_config.tp_size, pp_rank=storage_config.pp_rank,
            pp_size=storage_config.pp_size, is_mla_model=storage_config.is_mla_model,
            attn_cp_rank=getattr(storage_config, "attn_cp_rank", 0),
            attn_cp_size=getattr(storage_config, "attn_cp_size", 1),
            layout=self.extra_config.get("kvtier_layout"))
        self.store = None
        self.mem_pool_host = None
        self._lock = threading.Lock()
        self.page_bytes = None
        self.frags = None
        self.registered_pools = {}
        self._pool_stores = {}  # pool name -> Store of its pages (v2 pools but KV)

    # ------------------------------------------------------------ set-up

    def register_mem_pool_host(self, mem_pool_host):
        """Called once after construction (cache_controller.py,
        attach_storage_backend). The page geometry comes from the pool:
        with interface_v1 one fragment per pointer get_page_buffer_meta
        gives for a page, else one flat page."""
        self.mem_pool_host = mem_pool_host
        import torch  # SGLang's host pools are torch tensors
        page = mem_pool_host.get_dummy_flat_data_page()
        self.page_bytes = _nbytes(page)
        self.frags = 1
        if self.extra_config.get("interface_v1"):
            ptrs, sizes = mem_pool_host.get_page_buffer_meta(
                torch.arange(mem_pool_host.page_size))
            if len(set(sizes)) != 1 or sum(sizes) != self.page_bytes:
                raise ValueError(f"kvtier: page fragments of unequal sizes {sizes} "
                                 "(kvtier needs equal fragments)")
            self.frags = len(ptrs)
        with self._lock:
            if self.store is None:
                self.store = open_store(self.page_bytes, self.frags, self.extra_config)

    def register_mem_host_pool_v2(self, host_pool, host_pool_name):
        """A pool of the v2 interface (Mamba, SWA, indexer...): its pages go
        to a store of their own size; the KV pool's to the main store."""
        self.registered_pools[str(host_pool_name)] = host_pool
        name = str(host_pool_name)
        if name in (KV_POOL, "__default__"):
            if self.mem_pool_host is None:
                self.register_mem_pool_host(host_pool)
            return
        with self._lock:
            if name not in self._pool_stores:
                page = host_pool.get_dummy_flat_data_page()
                self._pool_stores[name] = open_store(_nbytes(page), 1, self.extra_config)

    def _keys(self, keys, pool=None):
        return keyfold.sglang_keys(self.ns, keys, pool)

    def _pool_store(self, name):
        name = str(name)
        return self.store if name in (KV_POOL, "__default__") else self._pool_stores[name]

    # ------------------------------------------------------------ v1: zero copy

    def _page_pointers(self, host_indices, npages):
        ptrs, _sizes = self.mem_pool_host.get_page_buffer_meta(host_indices)
        if len(ptrs) != npages * self.frags:
            raise ValueError(f"kvtier: {len(ptrs)} page pointers for {npages} pages")
        return ptrs

    def batch_get_v1(self, keys, host_indices, extra_info=None):
        """-> [bool] per key (cache_controller.py, _page_get_zero_copy)."""
        if not keys:
            return []
        status = io_pointers(self.store, "get", self._keys(keys),
                             self._page_pointers(host_indices, len(keys)))
        return [s == 0 for s in status]

    def batch_set_v1(self, keys, host_indices, extra_info=None):
        """-> [bool] per key (cache_controller.py, _page_set_zero_copy)."""
        if not keys:
            return []
        status = io_pointers(self.store, "put", self._keys(keys),
                             self._page_pointers(host_indices, len(keys)))
        return [s == 0 for s in status]

    # ------------------------------------------------------------ generic path

    def get(self, key, target_location=None, target_sizes=None):
        """The page into target_location (a flat tensor) or a new one; None
        when absent."""
        return self.batch_get([key], [target_location] if target_location is not None
                              else None)[0]

    def batch_get(self, keys, target_locations=None, target_sizes=None):
        """-> [tensor or None]; SGLang passes one dummy flat page per key
        (cache_controller.py, _generic_page_get) and copies each into its
        pool itself."""
        if not keys:
            return []
        if target_locations is None:
            target_locations = [self.mem_pool_host.get_dummy_flat_data_page() for _ in keys]
        result = self.store.get(self._keys(keys), list(target_locations))
        return [t if s == 0 else None for t, s in zip(target_locations, result.status)]

    def set(self, key, value=None, target_location=None, target_sizes=None):
        return self.batch_set([key], [value])

    def batch_set(self, keys, values=None, target_locations=None, target_sizes=None):
        """-> True if every page is stored (cache_controller.py,
        _generic_page_set passes get_data_page(index) tensors)."""
        if not keys:
            return True
        values = [v.contiguous() for v in values]
        result = self.store.put(self._keys(keys), values)
        return all(s == 0 for s in result.status)

    # ------------------------------------------------------------ queries

    # ------------------------------------------------------------ v2: pools

    def _held(self, name, keys):
        """Per key, whether pool `name` holds its page (kvt_contains: no
        stop at the first miss)."""
        if not keys:
            return []
        store = self._pool_store(name)
        _, tiers = store.contains(self._keys(keys, name))
        return [t != Tier.NONE for t in tiers]

    def batch_exists_v2(self, keys, pool_transfers=None, extra_info=None):
        """PoolTransferResult: the longest KV prefix held, shortened to what
        every extra pool has under its hit policy: "all_pages", each page of
        the prefix; "trailing_pages", the last len(transfer.keys) pages
        before the prefix's end (hicache_storage.py, batch_exists_v2)."""
        kv = self._held(KV_POOL, keys)
        kv_pages = next((i for i, h in enumerate(kv) if not h), len(keys))
        hits = {KV_POOL: kv_pages} if kv_pages else {}
        final = kv_pages
        for transfer in pool_transfers or []:
            if final == 0:
                break
            name = str(transfer.name)
            held = self._held(name, keys[:kv_pages])
            policy = str(getattr(transfer.hit_policy, "value", transfer.hit_policy))
            if policy == "all_pages":
                boundary = next((i for i, h in enumerate(held) if not h), kv_pages)
            else:
                trailing = max(1, len(transfer.keys) if transfer.keys else 1)
                boundary = next((n for n in range(kv_pages, 0, -1)
                                 if all(held[max(0, n - trailing):n])), 0)
            if boundary:
                hits[name] = boundary
            final = min(final, boundary)
        return PoolTransferResult(final, hits)

    def _pool_io(self, transfers, put):
        results = {}
        for transfer in transfers:
            name = str(transfer.name)
            pool = self.registered_pools[name]
            keys = list(transfer.keys or [])
            page = getattr(pool, "page_size", 1) or 1
            idx = transfer.host_indices
            if idx is None or idx.numel() != len(keys) * page:
                results[name] = [False] * len(keys)
                continue
            if not keys:
                results[name] = []
                continue
            store, kkeys = self._pool_store(name), self._keys(keys, name)
            if put:
                pages = [pool.get_data_page(idx[i * page], flat=True).contiguous()
                         for i in range(len(keys))]
                status = store.put(kkeys, pages).status
            else:
                pages = [pool.get_dummy_flat_data_page() for _ in keys]
                status = store.get(kkeys, pages).status
                for i, s in enumerate(status):
                    if s == 0:
                        pool.set_from_flat_data_page(idx[i * page], pages[i])
            results[name] = [s == 0 for s in status]
        return results

    def batch_get_v2(self, transfers, extra_info=None):
        """{pool name: [bool per key]}: pages read into each pool."""
        return self._pool_io(transfers, put=False)

    def batch_set_v2(self, transfers, extra_info=None):
        """{pool name: [bool per key]}: pages stored from each pool."""
        return self._pool_io(transfers, put=True)

    # ------------------------------------------------------------ queries

    def exists(self, key):
        return self.store.contains(self._keys([key]))[0] == 1

    def batch_exists(self, keys, extra_info=None):
        """The number of leading keys held (cache_controller.py,
        _storage_hit_query): kvt_lookup, which stops at the first miss."""
        if not keys:
            return 0
        return self.store.lookup(self._keys(keys))[0]

    def clear(self):
        for store in [self.store, *self._pool_stores.values()]:
            if store is not None:
                store.clear()

    def get_stats(self):
        return None if self.store is None else self.store.stats()

    def close(self):
        """Called by detach_storage_backend (cache_controller.py) when present."""
        with self._lock:
            for store in [self.store, *self._pool_stores.values()]:
                if store is not None:
                    store.close()
            self.store = None
            self._pool_stores.clear()
