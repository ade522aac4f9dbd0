"""test_lmcache_driver.py — drives kvtier.integrations.lmcache exactly as LMCache's RemoteBackend calls a remote connector.

Engine source (LMCache/LMCache; the commit per file, as docs/engines.md explains):
  [E] lmcache/v1/storage_backend/connector/external_adapter.py @0c4184da:
      "external://host:0/<module>/?connector_name=<Class>": import_module,
      issubclass(RemoteConnector), connector_class(loop=, local_cpu_backend=,
      config=).
  [R] lmcache/v1/storage_backend/remote_backend.py @009eca10 (RemoteBackend):
      contains: run_coroutine_threadsafe(connection.exists(key), loop).result(),
        or connection.exists_sync(key) with extra_config use_exists_sync;
      submit_put_task: run_coroutine_threadsafe(connection.put(key, obj));
      batched_submit_put_task: connection.batched_put(keys, objs) when
        support_batched_put(), else one put per key;
      get_blocking: connection.get(key) -> MemoryObj or None;
      batched_get_blocking: connection.batched_get(keys) when
        support_batched_get(), results asserted to be one per key;
      batched_async_contains: awaited on the loop -> int.
  The serde is "naive": objects pass through unchanged.
The engine's event loop runs in its own thread; callers are other threads.
Bytes and hit counts are checked against a dict.
"""
import asyncio
import importlib
import sys
import threading
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import engine_fakes  # noqa: E402

engine_fakes.install_lmcache()
from lmcache.v1.storage_backend.connector.base_connector import RemoteConnector  # noqa: E402

LAYERS, CHUNK, HIDDEN = 2, 16, 32
KV_SHAPE = (LAYERS, 2, CHUNK, 4, HIDDEN // 4)  # metadata.kv_shape


class MemoryObj:
    """A TensorMemoryObj: a tensor, its bytes, metadata (shape, dtype, fmt)."""

    def __init__(self, shape, dtype, fmt):
        self.tensor = torch.zeros(shape, dtype=dtype)
        self.metadata = SimpleNamespace(shape=torch.Size(shape), dtype=dtype, fmt=fmt)
        self.refs = 1

    @property
    def byte_array(self):
        return memoryview(self.tensor.numpy()).cast("B")

    def ref_count_up(self):
        self.refs += 1

    def ref_count_down(self):
        self.refs -= 1


class CPUBackend:
    def __init__(self, fail_after=None):
        self.metadata = SimpleNamespace(kv_shape=KV_SHAPE, kv_dtype=torch.float16,
                                        world_size=2, worker_id=1, use_mla=False)
        self.allocated = 0
        self.fail_after = fail_after

    def allocate(self, shape, dtype, fmt):
        if self.fail_after is not None and self.allocated >= self.fail_after:
            return None
        self.allocated += 1
        return MemoryObj(shape, dtype, fmt)


def chunk_shape(tokens):  # KV_2LTD: [2, layers, tokens, hidden]
    return (2, LAYERS, tokens, HIDDEN)


class Backend:
    """RemoteBackend's calls [R] on a loop thread."""

    def __init__(self, url, cpu):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.config = SimpleNamespace(extra_config={"kvtier_dram_bytes": 4 << 20},
                                      remote_url=url, remote_serde="naive")
        parsed = urllib.parse.urlparse(url)  # [E]
        module = importlib.import_module(parsed.path.strip("/"))
        cls = getattr(module, urllib.parse.parse_qs(parsed.query)["connector_name"][0])
        assert issubclass(cls, RemoteConnector)
        self.connection = cls(loop=self.loop, local_cpu_backend=cpu, config=self.config)

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def contains(self, key):
        return self.run(self.connection.exists(key))

    def submit_put_task(self, key, obj):
        obj.ref_count_up()
        obj.ref_count_down()
        return asyncio.run_coroutine_threadsafe(self.connection.put(key, obj), self.loop)

    def batched_submit_put_task(self, keys, objs):
        if self.connection.support_batched_put():
            return asyncio.run_coroutine_threadsafe(self.connection.batched_put(keys, objs),
                                                    self.loop)
        return [self.submit_put_task(k, o) for k, o in zip(keys, objs)]

    def get_blocking(self, key):
        return self.run(self.connection.get(key))

    def batched_get_blocking(self, keys):
        assert self.connection.support_batched_get()
        objs = self.run(self.connection.batched_get(keys))
        assert len(objs) == len(keys)
        return objs

    def batched_async_contains(self, lookup_id, keys, pin=False):
        async def call():
            assert self.connection.support_batched_async_contains()
            return await asyncio.wait_for(
                self.connection.batched_async_contains(lookup_id, keys, pin), 30)
        return self.run(call())

    def close(self):
        self.run(self.connection.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


URL = "external://localhost:0/kvtier.integrations.lmcache/?connector_name=KvtierConnector"


def key(chunk_hash, worker_id=1, model="mistralai/Mistral-7B"):
    return engine_fakes.CacheEngineKey("vllm", model, 2, worker_id, chunk_hash, torch.float16)


def filled(tokens, seed):
    obj = MemoryObj(chunk_shape(tokens), torch.float16, 1)
    gen = torch.Generator().manual_seed(seed)
    obj.tensor.copy_(torch.randn(obj.tensor.shape, generator=gen).to(torch.float16))
    return obj


def test_put_contains_get():
    cpu = CPUBackend()
    be = Backend(URL, cpu)
    reference = {}  # CacheEngineKey -> bytes
    keys = [key(h) for h in (11, -22, 2**63 + 5, 44)]
    objs = [filled(CHUNK, i) for i in range(3)] + [filled(5, 3)]  # last chunk partial
    f = be.batched_submit_put_task(keys[:2], objs[:2])
    f.result(30)
    futures = [be.submit_put_task(k, o) for k, o in zip(keys[2:], objs[2:])]
    for fut in futures:
        fut.result(30)
    for k, o in zip(keys, objs):
        reference[k] = bytes(o.byte_array)

    assert all(be.contains(k) for k in keys)
    assert not be.contains(key(99))
    assert not be.contains(key(11, worker_id=0))  # another worker's shard
    assert be.connection.exists_sync(keys[0])
    probe = keys[:3] + [key(99)] + keys[3:]
    expect = next(i for i, k in enumerate(probe) if k not in reference)
    assert be.batched_async_contains("req-1", probe, pin=True) == expect == 3

    got = be.batched_get_blocking(keys + [key(99)])
    assert got[-1] is None
    for k, o in zip(keys, got):
        assert bytes(o.byte_array) == reference[k]
        assert tuple(o.metadata.shape) == tuple(objs[keys.index(k)].metadata.shape)
    single = be.get_blocking(keys[3])
    assert bytes(single.byte_array) == reference[keys[3]]
    assert be.get_blocking(key(123)) is None

    assert be.connection.remove_sync(keys[0]) is True
    assert not be.contains(keys[0])
    assert be.run(be.connection.list()) == []
    be.close()


def test_allocation_failure_is_a_miss():
    cpu = CPUBackend(fail_after=1)
    be = Backend(URL, cpu)
    keys = [key(1), key(2)]
    be.batched_submit_put_task(keys, [filled(CHUNK, 1), filled(CHUNK, 2)]).result(30)
    got = be.batched_get_blocking(keys)
    assert got[0] is not None and got[1] is None
    be.close()
