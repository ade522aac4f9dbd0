"""engine_fakes.py — the parts of each engine's modules an adapter imports, restated for the driver tests.

Only types the adapters import or the drivers construct: their fields and
abstract methods as they are in the engine's source at the commit named in
docs/engines.md. No engine code is copied; each is written from its interface.
"""
import abc
import dataclasses
import enum
import sys
import types
from typing import Any, List, Optional


def _module(name, **attrs):
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        sub = ".".join(parts[:i])
        if sub not in sys.modules:
            sys.modules[sub] = types.ModuleType(sub)
        if i > 1:
            setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], sys.modules[sub])
    mod = sys.modules[name]
    for k, v in attrs.items():
        setattr(mod, k, v)
    return mod


# ---------------------------------------------------------------- SGLang 001067ff
# python/sglang/srt/mem_cache/hicache_storage.py

@dataclasses.dataclass
class HiCacheStorageConfig:
    tp_rank: int
    tp_size: int
    pp_rank: int
    pp_size: int
    attn_cp_rank: int
    attn_cp_size: int
    is_mla_model: bool
    enable_storage_metrics: bool
    is_page_first_layout: bool
    model_name: Optional[str]
    dp_rank: int = 0
    dp_size: int = 1
    tp_lcm_size: Optional[int] = None
    should_split_heads: bool = False
    extra_config: Optional[dict] = None


@dataclasses.dataclass
class HiCacheStorageExtraInfo:
    prefix_keys: Optional[List[str]] = None
    extra_info: Optional[dict] = None


class PoolName(str, enum.Enum):
    KV = "kv"
    MAMBA = "mamba"
    SWA = "swa"
    INDEXER = "indexer"

    def __str__(self):
        return self.value


class PoolHitPolicy(str, enum.Enum):
    ALL_PAGES = "all_pages"
    TRAILING_PAGES = "trailing_pages"


@dataclasses.dataclass
class PoolTransfer:
    name: PoolName
    host_indices: Any = None
    device_indices: Any = None
    keys: Optional[List[str]] = None
    hit_policy: PoolHitPolicy = PoolHitPolicy.ALL_PAGES
    nodes_to_load: Optional[List[Any]] = None
    indices_from_pool: Optional[PoolName] = None


@dataclasses.dataclass
class PoolTransferResult:
    kv_hit_pages: int
    extra_pool_hit_pages: dict


class HiCacheStorage(abc.ABC):
    def register_mem_pool_host(self, mem_pool_host):
        self.mem_pool_host = mem_pool_host

    def register_mem_host_pool_v2(self, host_pool, host_pool_name):
        if not hasattr(self, "registered_pools"):
            self.registered_pools = {}
        self.registered_pools[host_pool_name] = host_pool

    def batch_get_v1(self, keys, host_indices, extra_info=None):
        raise NotImplementedError()

    def batch_set_v1(self, keys, host_indices, extra_info=None):
        raise NotImplementedError()

    @abc.abstractmethod
    def get(self, key, target_location=None, target_sizes=None):
        pass

    @abc.abstractmethod
    def batch_get(self, keys, target_locations=None, target_sizes=None):
        pass

    @abc.abstractmethod
    def set(self, key, value=None, target_location=None, target_sizes=None):
        pass

    @abc.abstractmethod
    def batch_set(self, keys, values=None, target_locations=None, target_sizes=None):
        pass

    @abc.abstractmethod
    def exists(self, key):
        pass

    def batch_exists(self, keys, extra_info=None):
        for i in range(len(keys)):
            if not self.exists(keys[i]):
                return i
        return len(keys)

    def clear(self):
        pass

    def get_stats(self):
        return None


def install_sglang():
    _module("sglang.srt.mem_cache.hicache_storage", HiCacheStorage=HiCacheStorage,
            HiCacheStorageConfig=HiCacheStorageConfig,
            HiCacheStorageExtraInfo=HiCacheStorageExtraInfo, PoolName=PoolName,
            PoolHitPolicy=PoolHitPolicy, PoolTransfer=PoolTransfer,
            PoolTransferResult=PoolTransferResult)


# ---------------------------------------------------------------- LMCache

@dataclasses.dataclass(order=True)
class CacheEngineKey:
    """lmcache/utils.py CacheEngineKey (v0.3 form: fmt, int chunk hash, dtype)."""
    fmt: str
    model_name: str
    world_size: int
    worker_id: int
    chunk_hash: int
    dtype: Any = None
    request_configs: Optional[dict] = None

    def __hash__(self):
        return hash((self.fmt, self.model_name, self.world_size, self.worker_id,
                     self.chunk_hash))

    def to_string(self):
        return f"{self.fmt}@{self.model_name}@{self.world_size}@{self.worker_id}@{self.chunk_hash}"


# ---------------------------------------------------------------- vLLM
# vllm/v1/kv_offload/abstract.py @00d169bf, mediums.py @0c2bbc47,
# spec.py @0072b0b7 (the part of OffloadingSpec.__init__ the adapter reads),
# worker/worker.py @06bb4a63.

class LoadStoreSpec(abc.ABC):
    @staticmethod
    @abc.abstractmethod
    def medium():
        pass


@dataclasses.dataclass
class PrepareStoreOutput:
    block_hashes_to_store: list
    store_spec: LoadStoreSpec
    block_hashes_evicted: list


@dataclasses.dataclass
class OffloadingEvent:
    block_hashes: list
    block_size: int
    medium: str
    removed: bool


class OffloadingManager(abc.ABC):
    @abc.abstractmethod
    def lookup(self, block_hashes):
        pass

    @abc.abstractmethod
    def prepare_load(self, block_hashes):
        pass

    def touch(self, block_hashes):
        return

    def complete_load(self, block_hashes):
        return

    @abc.abstractmethod
    def prepare_store(self, block_hashes):
        pass

    def complete_store(self, block_hashes, success=True):
        return

    def take_events(self):
        return ()


class GPULoadStoreSpec(LoadStoreSpec):
    def __init__(self, block_ids, group_sizes, block_indices=None):
        import numpy as np
        self.block_ids = np.array(block_ids, dtype=np.int64)
        assert sum(group_sizes) == len(block_ids)
        self.group_sizes = group_sizes
        self.block_indices = block_indices

    @staticmethod
    def medium():
        return "GPU"


@dataclasses.dataclass
class TransferResult:
    job_id: int
    success: bool
    transfer_size: Optional[int] = None
    transfer_time: Optional[float] = None
    transfer_type: Any = None


class OffloadingHandler(abc.ABC):
    @abc.abstractmethod
    def transfer_async(self, job_id, spec):
        pass

    @abc.abstractmethod
    def get_finished(self):
        pass

    @abc.abstractmethod
    def wait(self, job_ids):
        pass

    def shutdown(self):
        pass


class OffloadingWorker:
    """worker/worker.py: dispatch by (src medium, dst medium)."""

    def __init__(self):
        self.handlers = set()
        self.transfer_type_to_handler = {}

    def register_handler(self, src_cls, dst_cls, handler):
        transfer_type = (src_cls.medium(), dst_cls.medium())
        assert transfer_type not in self.transfer_type_to_handler
        self.handlers.add(handler)
        self.transfer_type_to_handler[transfer_type] = handler

    def transfer_async(self, job_id, spec):
        src, dst = spec
        handler = self.transfer_type_to_handler[(src.medium(), dst.medium())]
        return handler.transfer_async(job_id, spec)

    def get_finished(self):
        out = []
        for h in self.handlers:
            out.extend(h.get_finished())
        return out

    def wait(self, job_ids):
        for h in self.handlers:
            h.wait(job_ids)


@dataclasses.dataclass
class CanonicalKVCacheTensor:
    tensor: Any
    page_size_bytes: int


@dataclasses.dataclass
class CanonicalKVCacheRef:
    tensor_idx: int
    page_size_bytes: int


@dataclasses.dataclass
class CanonicalKVCaches:
    tensors: list
    group_data_refs: list


class OffloadingSpec(abc.ABC):
    def __init__(self, vllm_config, kv_cache_config):
        from math import lcm
        self.vllm_config = vllm_config
        self.kv_cache_config = kv_cache_config
        self.extra_config = vllm_config.kv_transfer_config.kv_connector_extra_config
        self.hash_block_size = vllm_config.cache_config.block_size
        self.gpu_block_size = tuple(g.kv_cache_spec.block_size
                                    for g in kv_cache_config.kv_cache_groups)
        self.offloaded_block_size = lcm(*self.gpu_block_size)
        block_size = self.extra_config.get("block_size")
        if block_size is not None:
            self.offloaded_block_size = int(block_size)
        self.block_size_factors = tuple(self.offloaded_block_size // b
                                        for b in self.gpu_block_size)

    @abc.abstractmethod
    def get_manager(self):
        pass

    @abc.abstractmethod
    def get_handlers(self, kv_caches):
        pass


def install_vllm():
    _module("vllm.v1.kv_offload.abstract", LoadStoreSpec=LoadStoreSpec,
            PrepareStoreOutput=PrepareStoreOutput, OffloadingEvent=OffloadingEvent,
            OffloadingManager=OffloadingManager)
    _module("vllm.v1.kv_offload.mediums", GPULoadStoreSpec=GPULoadStoreSpec)
    _module("vllm.v1.kv_offload.spec", OffloadingSpec=OffloadingSpec,
            CanonicalKVCaches=CanonicalKVCaches, CanonicalKVCacheTensor=CanonicalKVCacheTensor,
            CanonicalKVCacheRef=CanonicalKVCacheRef)
    _module("vllm.v1.kv_offload.worker.worker", OffloadingHandler=OffloadingHandler,
            TransferResult=TransferResult, OffloadingWorker=OffloadingWorker)


# ---------------------------------------------------------------- LMCache
# lmcache/v1/storage_backend/connector/base_connector.py @01712fbd

class RemoteConnector(abc.ABC):
    @abc.abstractmethod
    async def exists(self, key):
        raise NotImplementedError

    @abc.abstractmethod
    def exists_sync(self, key):
        raise NotImplementedError

    @abc.abstractmethod
    async def get(self, key):
        raise NotImplementedError

    @abc.abstractmethod
    async def put(self, key, memory_obj):
        raise NotImplementedError

    @abc.abstractmethod
    async def list(self):
        raise NotImplementedError

    @abc.abstractmethod
    async def close(self):
        raise NotImplementedError

    def support_batched_get(self):
        return False

    def support_batched_put(self):
        return False

    def support_batched_async_contains(self):
        return False

    def support_batched_contains(self):
        return False


def install_lmcache():
    _module("lmcache.v1.storage_backend.connector.base_connector",
            RemoteConnector=RemoteConnector)
