"""test_vllm_driver.py — drives kvtier.integrations.vllm exactly as vLLM's OffloadingConnector calls an offloading spec.

Engine source (vllm-project/vllm; the commit per file, as docs/engines.md explains):
  [FA] vllm/v1/kv_offload/factory.py: spec_name / spec_module_path ->
       importlib.import_module, issubclass(spec_cls, OffloadingSpec),
       spec_cls(vllm_config, kv_cache_config).
  [S]  vllm/distributed/kv_transfer/kv_connector/v1/offloading/scheduler.py
       @0072b0b7443bdddf17824c78d4feae8e1fc12fb4:
       get_num_new_matched_tokens: manager.touch(all block hashes), then
         manager.lookup(hashes from start_block_idx) -> int (None: retry);
       update_state_after_alloc: manager.prepare_load(list of hashes) ->
         src spec; dst GPULoadStoreSpec(block ids, group_sizes, block_indices);
       _get_reqs_to_store: manager.prepare_store(new hashes) -> output or
         None; manager.touch(hashes up to num_blocks); src
         GPULoadStoreSpec(ids of blocks to store, group_sizes), dst
         output.store_spec;
       update_connector_output: complete_store(set of hashes) for finished
         sending, complete_load(set) for finished receiving;
       take_events: manager.take_events() -> OffloadingEvent.
  [W]  vllm/v1/kv_offload/worker/worker.py @06bb4a63a14b5b1f34ad9455e8e4aa017ee6e0f3:
       OffloadingWorker.register_handler(src_cls, dst_cls, handler) for each
       get_handlers() tuple; transfer_async(job_id, (src, dst)) -> bool;
       get_finished() -> [TransferResult]; wait(job_ids).
With the "uni" executor, scheduler and worker calls come from one thread,
in this order, one engine step after another. Bytes and hit counts are
checked against a dict of what was stored.
"""
import hashlib
import importlib
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import engine_fakes  # noqa: E402

engine_fakes.install_vllm()
from vllm.v1.kv_offload.mediums import GPULoadStoreSpec  # noqa: E402
from vllm.v1.kv_offload.spec import (CanonicalKVCaches, CanonicalKVCacheTensor,  # noqa: E402
                                     OffloadingSpec)
from vllm.v1.kv_offload.worker.worker import OffloadingWorker  # noqa: E402

GPU_BLOCK = 16
LAYERS, HEADS, DIM = 3, 2, 8
NUM_GPU_BLOCKS = 64


def make_spec(factor, engine_id):
    extra = {"spec_name": "KvtierOffloadingSpec", "spec_module_path": "kvtier.integrations.vllm",
             "kvtier_dram_bytes": 8 << 20}
    if factor > 1:
        extra["block_size"] = GPU_BLOCK * factor
    vllm_config = SimpleNamespace(
        kv_transfer_config=SimpleNamespace(kv_connector_extra_config=extra, engine_id=engine_id),
        cache_config=SimpleNamespace(block_size=GPU_BLOCK),
        model_config=SimpleNamespace(model="meta-llama/Llama-3.1-8B"),
        parallel_config=SimpleNamespace(world_size=1),
        kv_events_config=SimpleNamespace(enable_kv_cache_events=True))
    kv_cache_config = SimpleNamespace(kv_cache_groups=[
        SimpleNamespace(kv_cache_spec=SimpleNamespace(block_size=GPU_BLOCK))])
    # [FA]
    module = importlib.import_module(extra["spec_module_path"])
    spec_cls = getattr(module, extra["spec_name"])
    assert issubclass(spec_cls, OffloadingSpec)
    return spec_cls(vllm_config, kv_cache_config)


def canonical_caches():
    """Per layer a FlashAttention-shaped cache (2, blocks, block, heads, dim),
    split into K and V tensors of (blocks, page bytes) int8, as the worker's
    register_kv_caches canonicalises them."""
    layers = [torch.zeros(2, NUM_GPU_BLOCKS, GPU_BLOCK, HEADS, DIM, dtype=torch.float16)
              for _ in range(LAYERS)]
    tensors = []
    for kv in layers:
        for half in (kv[0], kv[1]):
            t = half.view(torch.int8).reshape(NUM_GPU_BLOCKS, -1)
            assert t.data_ptr() == half.data_ptr()
            tensors.append(CanonicalKVCacheTensor(t, t.shape[1]))
    return layers, CanonicalKVCaches(tensors, [[]])


def gpu_block(caches, block_id):
    return b"".join(bytes(t.tensor[block_id].numpy().tobytes()) for t in caches.tensors)


def block_hashes(tokens, block):
    out, last = [], b""
    for i in range(0, len(tokens) - len(tokens) % block, block):
        last = hashlib.sha256(last + repr(tokens[i:i + block]).encode()).digest()
        out.append(last)
    return out


class Engine:
    """Scheduler side [S] and worker side [W] of one engine, one thread."""

    def __init__(self, factor, engine_id):
        self.factor = factor
        self.spec = make_spec(factor, engine_id)
        self.manager = self.spec.get_manager()
        self.layers, self.caches = canonical_caches()
        self.worker = OffloadingWorker()
        for src_cls, dst_cls, handler in self.spec.get_handlers(self.caches):
            self.worker.register_handler(src_cls, dst_cls, handler)
        self.job = 0

    def run_job(self, spec):
        self.job += 1
        assert self.worker.transfer_async(self.job, spec) is True
        finished = []
        for _ in range(2000):  # one get_finished per engine step
            finished += self.worker.get_finished()
            if finished:
                break
        else:
            self.worker.wait({self.job})
            finished += self.worker.get_finished()
        assert [r.job_id for r in finished] == [self.job]
        return finished[0]

    def store(self, hashes, gpu_ids):
        """_get_reqs_to_store + a store job + update_connector_output."""
        out = self.manager.prepare_store(list(hashes))
        assert out is not None
        self.manager.touch(iter(hashes))
        todo = set(out.block_hashes_to_store)
        ids = [gpu_ids[i * self.factor + k] for i, h in enumerate(hashes) if h in todo
               for k in range(self.factor)]
        if todo:
            result = self.run_job((GPULoadStoreSpec(ids, group_sizes=(len(ids),)),
                                   out.store_spec))
            assert result.success
            assert result.transfer_size == len(todo) * self.factor * 2 * LAYERS * \
                GPU_BLOCK * HEADS * DIM * 2
        self.manager.complete_store(todo)
        return out

    def load(self, hashes, start_block_idx, gpu_ids):
        """get_num_new_matched_tokens + update_state_after_alloc + a load
        job + update_connector_output. Returns the hit count."""
        self.manager.touch(iter(hashes))
        hits = self.manager.lookup(iter(hashes[start_block_idx:]))
        assert isinstance(hits, int)
        if hits == 0:
            return 0
        load = hashes[start_block_idx:start_block_idx + hits]
        src = self.manager.prepare_load(list(load))
        dst = GPULoadStoreSpec(gpu_ids[:hits * self.factor], group_sizes=(hits * self.factor,),
                               block_indices=(start_block_idx * self.factor,))
        assert self.run_job((src, dst)).success
        self.manager.complete_load(set(load))
        return hits


@pytest.mark.parametrize("factor", [1, 2])
def test_store_then_load(factor):
    eng = Engine(factor, f"driver-{factor}")
    gen = torch.Generator().manual_seed(factor)
    for kv in eng.layers:
        kv.copy_(torch.randn(kv.shape, generator=gen).to(kv.dtype))
    block = GPU_BLOCK * factor
    reference = {}  # block hash -> bytes of its GPU blocks, fragment order

    # Request A: 6 offloaded blocks in GPU blocks 0.. (factor per block).
    tokens_a = list(range(6 * block))
    ha = block_hashes(tokens_a, block)
    ids_a = list(range(6 * factor))
    assert eng.load(ha, 0, ids_a) == 0  # nothing offloaded yet
    out = eng.store(ha, ids_a)
    assert out.block_hashes_to_store == ha and out.block_hashes_evicted == []
    for i, h in enumerate(ha):
        reference[h] = [gpu_block(eng.caches, ids_a[i * factor + k]) for k in range(factor)]
    # Stored again: nothing to do.
    assert eng.manager.prepare_store(ha).block_hashes_to_store == []
    events = list(eng.manager.take_events())
    # complete_store gets a set ([S] update_connector_output): order is not kept
    assert len(events) == 1 and sorted(events[0].block_hashes) == sorted(ha)
    assert not events[0].removed
    assert events[0].medium == "KVTIER" and events[0].block_size == block
    assert list(eng.manager.take_events()) == []

    # Request B: A's first 4 blocks and 2 new; the GPU copy is gone.
    for kv in eng.layers:
        kv.zero_()
    tokens_b = tokens_a[:4 * block] + [10**6 + i for i in range(2 * block)]
    hb = block_hashes(tokens_b, block)
    expect = next((i for i, h in enumerate(hb) if h not in reference), len(hb))
    assert expect == 4
    ids_b = list(range(32, 32 + 6 * factor))
    hits = eng.load(hb, 0, ids_b)
    assert hits == expect
    for i in range(hits):
        for k in range(factor):
            assert gpu_block(eng.caches, ids_b[i * factor + k]) == reference[hb[i]][k]
    assert gpu_block(eng.caches, ids_b[hits * factor]) == bytes(len(reference[hb[0]][0]))

    # A load that starts after blocks the GPU still holds (start_block_idx 2).
    ids_c = list(range(48, 48 + 4 * factor))
    assert eng.load(hb, 2, ids_c) == 2
    for i in range(2):
        for k in range(factor):
            assert gpu_block(eng.caches, ids_c[i * factor + k]) == reference[hb[2 + i]][k]

    # A failed store forgets its blocks.
    eng.manager.complete_store(hb[4:], success=False)
    eng.manager.complete_store(ha[:1], success=False)
    assert eng.manager.lookup(ha) == 0
    eng.worker.wait(set())


def test_refuses_several_workers():
    spec = make_spec(1, "multi")
    spec.vllm_config.parallel_config.world_size = 2
    with pytest.raises(NotImplementedError, match="node-shared"):
        type(spec)(spec.vllm_config, spec.kv_cache_config)


def test_manager_before_worker():
    # The scheduler may ask before the worker registered its caches.
    spec = make_spec(1, "early")
    mgr = spec.get_manager()
    h = block_hashes(list(range(32)), GPU_BLOCK)
    assert mgr.lookup(h) == 0
    assert mgr.prepare_store(h) is None


def test_evictions_reach_vllm_as_removed_events():
    """[S] take_events after stores that overflow a small store: the blocks
    kvtier evicted (LRU: the oldest stored) come back as a removed event."""
    block_bytes = 2 * LAYERS * GPU_BLOCK * HEADS * DIM * 2  # K and V of each layer
    spec = make_spec(1, "events")
    spec.extra_config.update(kvtier_dram_bytes=8 * block_bytes, kvtier_policy="lru")
    eng = Engine.__new__(Engine)
    eng.factor, eng.spec = 1, spec
    eng.manager = spec.get_manager()
    eng.layers, eng.caches = canonical_caches()
    eng.worker = OffloadingWorker()
    for src_cls, dst_cls, handler in spec.get_handlers(eng.caches):
        eng.worker.register_handler(src_cls, dst_cls, handler)
    eng.job = 0
    ha = block_hashes(list(range(6 * GPU_BLOCK)), GPU_BLOCK)
    hc = block_hashes([10**6 + i for i in range(6 * GPU_BLOCK)], GPU_BLOCK)
    eng.store(ha, list(range(6)))
    assert [e.removed for e in eng.manager.take_events()] == [False]
    eng.store(hc, list(range(6, 12)))  # 12 blocks into 8: the 4 oldest go
    events = list(eng.manager.take_events())
    assert [e.removed for e in events] == [False, True]
    assert sorted(events[1].block_hashes) == sorted(ha[:4])
    assert events[1].medium == "KVTIER"
    assert eng.manager.lookup(ha[4:]) == 2 and eng.manager.lookup(hc) == 6
    assert list(eng.manager.take_events()) == []
