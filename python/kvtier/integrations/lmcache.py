"""lmcache.py — an LMCache remote connector on a kvtier Store.

Written against LMCache (LMCache/LMCache) as these files have it:
  lmcache/v1/storage_backend/connector/base_connector.py @01712fbd51d033060d6a8851c06de0ebf351f74e
      RemoteConnector: async exists/get/put/list/close, exists_sync,
      batched_get, batched_put, batched_async_contains, remove_sync
  lmcache/v1/storage_backend/connector/external_adapter.py @0c4184dab7b7ff92a1b1aae12124ef357848f4c8
      the "external://" URL: connector_class(loop=, local_cpu_backend=, config=)
  lmcache/v1/storage_backend/remote_backend.py @009eca101c71ae583489ed4bc616c589f2edcdf7
      the caller: coroutines run on LMCache's event loop thread
      (asyncio.run_coroutine_threadsafe), exists_sync from other threads.
Enable it with, in the LMCache configuration,

    remote_url: "external://localhost:0/kvtier.integrations.lmcache/?connector_name=KvtierConnector"
    remote_serde: "naive"
    extra_config: {"kvtier_dram_bytes": 68719476736}

A chunk is one kvtier block of the full chunk's size (from the engine
metadata's kv_shape and kv_dtype, or extra_config "kvtier_chunk_bytes");
a partial last chunk is stored padded, its true size and shape kept in
this process (so after a restart on a persistent tier partial chunks are
not found: a miss, never wrong bytes). Keys: CacheEngineKey folded under a
namespace of its model, format, dtype, worker and tags (keyfold).
"""
import math
import threading

from . import keyfold
from ._store import open_store

try:
    from lmcache.v1.storage_backend.connector.base_connector import RemoteConnector as _Base
except ImportError:  # LMCache absent: importable for docs; the driver installs a stand-in
    _Base = object

_DTYPE_BYTES = {"float16": 2, "half": 2, "bfloat16": 2, "float32": 4, "float": 4,
                "float64": 8, "uint8": 1, "int8": 1, "float8_e4m3fn": 1, "float8_e5m2": 1}


def _meta(memory_obj):
    meta = getattr(memory_obj, "metadata", None)
    return meta if meta is not None else memory_obj.meta


class KvtierConnector(_Base):
    """RemoteConnector on kvtier. Its coroutines run on LMCache's event
    loop and await kvtier tickets, so the loop is never blocked by a copy."""

    def __init__(self, loop=None, local_cpu_backend=None, config=None, url=None, **_):
        self.loop = loop
        self.local_cpu_backend = local_cpu_backend
        self.config = config
        extra = dict(getattr(config, "extra_config", None) or {})
        metadata = getattr(local_cpu_backend, "metadata", None)
        chunk = extra.get("kvtier_chunk_bytes")
        if chunk is None:
            if metadata is None:
                raise ValueError("kvtier: no engine metadata; set extra_config "
                                 "kvtier_chunk_bytes")
            dtype = str(metadata.kv_dtype).replace("torch.", "")
            chunk = _DTYPE_BYTES[dtype] * math.prod(int(d) for d in metadata.kv_shape)
        self.chunk_bytes = int(chunk)
        self.store = open_store(self.chunk_bytes, 1, extra)
        self._lock = threading.Lock()
        self._partial = {}  # kvtier key -> (nbytes, shape, dtype, fmt) of a short chunk
        self._full_meta = None
        self._ns = {}

    # ------------------------------------------------------------ keys

    def _key(self, key):
        tags = getattr(key, "tags", None) or getattr(key, "request_configs", None)
        ident = (key.model_name, key.world_size, key.worker_id, getattr(key, "fmt", None),
                 str(getattr(key, "dtype", None)),
                 tuple(dict(tags).items()) if tags else None)
        ns = self._ns.get(ident)
        if ns is None:
            ns = self._ns[ident] = keyfold.lmcache_key_namespace(key)
        return keyfold.fold(ns, keyfold.lmcache_bytes(key.chunk_hash))

    # ------------------------------------------------------------ queries

    def exists_sync(self, key):
        return self.store.contains([self._key(key)])[0] == 1

    async def exists(self, key):
        return self.exists_sync(key)

    def support_batched_async_contains(self):
        return True

    async def batched_async_contains(self, lookup_id, keys, pin=False):
        """Leading keys held (kvt_lookup); pin: leased until a get."""
        if not keys:
            return 0
        lease = 30000 if pin else 0
        return self.store.lookup([self._key(k) for k in keys], lease_ms=lease)[0]

    def remove_sync(self, key):
        k = self._key(key)
        with self._lock:
            self._partial.pop(k, None)
        return self.store.remove([k]) == 1

    async def list(self):
        # kvtier keeps no names, only 16-byte keys: nothing to list.
        return []

    # ------------------------------------------------------------ data

    async def put(self, key, memory_obj):
        await self.batched_put([key], [memory_obj])

    def support_batched_put(self):
        return True

    async def batched_put(self, keys, memory_objs):
        kkeys, bufs = [], []
        for key, obj in zip(keys, memory_objs):
            data = obj.byte_array
            meta = _meta(obj)
            k = self._key(key)
            n = len(data)
            if n > self.chunk_bytes:
                raise ValueError(f"kvtier: chunk of {n} bytes > {self.chunk_bytes}")
            if n < self.chunk_bytes:  # a partial last chunk: padded, its size kept here
                padded = bytearray(self.chunk_bytes)
                padded[:n] = data
                data = padded
                with self._lock:
                    self._partial[k] = (n, tuple(meta.shape), meta.dtype, meta.fmt)
            else:
                self._full_meta = (tuple(meta.shape), meta.dtype, meta.fmt)
            kkeys.append(k)
            bufs.append(data)
        if kkeys:
            await self.store.put(kkeys, bufs, wait=False)

    async def get(self, key):
        return (await self.batched_get([key]))[0]

    def support_batched_get(self):
        return True

    async def batched_get(self, keys):
        """One MemoryObj per key, allocated from LMCache's CPU backend, or
        None for a key not held (and every key after a failed allocation)."""
        out, kkeys, dests, fills = [], [], [], []
        for key in keys:
            k = self._key(key)
            with self._lock:
                partial = self._partial.get(k)
            if partial is not None:
                nbytes, shape, dtype, fmt = partial
            elif self._full_meta is not None:
                nbytes, (shape, dtype, fmt) = self.chunk_bytes, self._full_meta
            else:
                out.append(None)
                continue
            obj = self.local_cpu_backend.allocate(shape, dtype, fmt)
            if obj is None:
                out.append(None)
                continue
            dest = obj.byte_array if nbytes == self.chunk_bytes else bytearray(self.chunk_bytes)
            out.append(obj)
            kkeys.append(k)
            dests.append(dest)
            fills.append((len(out) - 1, obj, nbytes, dest))
        if kkeys:
            result = await self.store.get(kkeys, dests, wait=False)
            for (i, obj, nbytes, dest), k, status in zip(fills, kkeys, result.status):
                if status != 0:
                    if hasattr(obj, "ref_count_down"):
                        obj.ref_count_down()
                    out[i] = None
                    with self._lock:  # gone from kvtier: its size is of no use now
                        self._partial.pop(k, None)
                elif nbytes != self.chunk_bytes:
                    obj.byte_array[:nbytes] = dest[:nbytes]
        return out

    async def close(self):
        self.store.close()
