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
from ._store import io_pointers, open_store

try:  # the factory checks issubclass(cls, HiCacheStorage)
    from sglang.srt.mem_cache.hicache_storage import HiCacheStorage as _Base
except ImportError:  # SGLang not installed: still importable, for tests and docs
    _Base = object


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

    def _keys(self, keys):
        return keyfold.sglang_keys(self.ns, keys)

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

    def exists(self, key):
        return self.store.contains(self._keys([key]))[0] == 1

    def batch_exists(self, keys, extra_info=None):
        """The number of leading keys held (cache_controller.py,
        _storage_hit_query): kvt_lookup, which stops at the first miss."""
        if not keys:
            return 0
        return self.store.lookup(self._keys(keys))[0]

    def clear(self):
        if self.store is not None:
            self.store.clear()

    def get_stats(self):
        return None if self.store is None else self.store.stats()

    def close(self):
        """Called by detach_storage_backend (cache_controller.py) when present."""
        with self._lock:
            if self.store is not None:
                self.store.close()
                self.store = None
