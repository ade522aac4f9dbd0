"""test_vllm_shared.py — the vLLM offloading spec across processes
(`kvtier_socket`): the scheduler-side manager in this process, each rank's
worker-side handler in a process of its own (multiprocessing, spawn), all
connected to one kvtierd.

Engine calls as in test_vllm_driver.py ([S] scheduler.py and [W] worker.py at
the commits cited there). With a multiprocess executor vLLM builds the spec
once in the scheduler (get_manager) and once in each worker (get_handlers,
with parallel_config.rank set by the Worker), and sends the manager's
load/store specs to every worker pickled in the connector metadata: the
pipes below stand in for that. Bytes are checked against what each worker
process reports it stored (a dict per rank), hit counts against the blocks
every rank stored.
"""
import multiprocessing
import os
import sys
import tempfile
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "shared"))
import engine_fakes  # noqa: E402
from kvtierd_proc import running_kvtierd  # noqa: E402

engine_fakes.install_vllm()
from test_vllm_driver import (GPU_BLOCK, HEADS, DIM, LAYERS, block_hashes,  # noqa: E402
                              canonical_caches, gpu_block, make_spec)
from vllm.v1.kv_offload.mediums import GPULoadStoreSpec  # noqa: E402
from vllm.v1.kv_offload.worker.worker import OffloadingWorker  # noqa: E402

BUILD_ROOT = os.environ.get("KVT_BUILD_ROOT", "build")
KVTIERD = os.path.join(BUILD_ROOT, "tools", "kvtierd")
PAGE = GPU_BLOCK * HEADS * DIM * 2   # bytes of one canonical tensor's GPU block
FRAGS = 2 * LAYERS                   # K and V of each layer (block_size_factor 1)
TIMEOUT = 120


def shared_spec(socket_path, world, rank):
    spec = make_spec(1, f"shared-{rank}")
    spec.extra_config["kvtier_socket"] = socket_path
    parallel = spec.vllm_config.parallel_config
    parallel.world_size, parallel.rank, parallel.tensor_parallel_size = world, rank, world
    return type(spec)(spec.vllm_config, spec.kv_cache_config)


def worker_main(socket_path, world, rank, fill_seed, conn):
    """One rank's worker process: [W] get_handlers + register_handler, then
    transfer_async / get_finished / wait for each job the pipe brings; the
    reply is the job's success and the bytes of its GPU blocks."""
    spec = shared_spec(socket_path, world, rank)
    layers, caches = canonical_caches()
    if fill_seed is not None:
        gen = torch.Generator().manual_seed(fill_seed)
        for kv in layers:
            kv.copy_(torch.randn(kv.shape, generator=gen).to(kv.dtype))
    worker = OffloadingWorker()
    for src_cls, dst_cls, handler in spec.get_handlers(caches):
        worker.register_handler(src_cls, dst_cls, handler)
    job = 0
    while True:
        msg = conn.recv()
        if msg is None:
            conn.close()
            return
        op, kvtier_spec, ids = msg
        job += 1
        gpu = GPULoadStoreSpec(ids, group_sizes=(len(ids),),
                               block_indices=(0,) if op == "load" else None)
        pair = (gpu, kvtier_spec) if op == "store" else (kvtier_spec, gpu)
        assert worker.transfer_async(job, pair) is True
        worker.wait({job})
        results = worker.get_finished()
        ok = [r.job_id for r in results] == [job] and results[0].success
        conn.send((ok, [gpu_block(caches, i) for i in ids]))


class Workers:
    """One process per rank (spawn: nothing of this process is inherited)."""

    def __init__(self, socket_path, world, fill_seeds):
        ctx = multiprocessing.get_context("spawn")
        self.conns, self.procs = [], []
        for rank in range(world):
            ours, theirs = ctx.Pipe()
            p = ctx.Process(target=worker_main,
                            args=(socket_path, world, rank, fill_seeds[rank], theirs))
            p.start()
            theirs.close()
            self.conns.append(ours)
            self.procs.append(p)

    def run(self, rank, op, kvtier_spec, ids):
        self.conns[rank].send((op, kvtier_spec, ids))
        assert self.conns[rank].poll(TIMEOUT), f"rank {rank} did not answer"
        ok, blocks = self.conns[rank].recv()
        assert ok
        return blocks

    def close(self):
        for conn, p in zip(self.conns, self.procs):
            conn.send(None)
            p.join(TIMEOUT)
            assert p.exitcode == 0
            conn.close()


@pytest.fixture
def daemon():
    if not os.path.exists(KVTIERD):
        pytest.skip("kvtierd not built")
    d = tempfile.mkdtemp(prefix="kvtierd-vllm-")
    path = os.path.join(d, "kv.sock")
    args = ["--block-bytes", str(PAGE * FRAGS), "--frags", str(FRAGS),
            "--dram", str(256 * PAGE * FRAGS)]
    with running_kvtierd(KVTIERD, path, args, tries=1000):
        yield path


@pytest.mark.parametrize("world", [1, 2])
def test_store_in_workers_lookup_in_scheduler(daemon, world):
    spec = shared_spec(daemon, world, 0)
    manager = spec.get_manager()
    ha = block_hashes(list(range(6 * GPU_BLOCK)), GPU_BLOCK)
    ids_a = list(range(6))
    # [S] get_num_new_matched_tokens before anything is offloaded.
    manager.touch(iter(ha))
    assert manager.lookup(iter(ha)) == 0

    # [S] _get_reqs_to_store, then each rank's worker stores its own shard.
    out = manager.prepare_store(list(ha))
    assert out is not None and out.block_hashes_to_store == ha
    manager.touch(iter(ha))
    storers = Workers(daemon, world, [100 + r for r in range(world)])
    reference = []  # per rank: block hash -> the bytes that rank stored
    try:
        for rank in range(world):
            blocks = storers.run(rank, "store", out.store_spec, ids_a)
            reference.append(dict(zip(ha, blocks)))
            if rank < world - 1:  # a block is offloaded once every rank holds it
                assert manager.lookup(iter(ha)) == 0
                assert manager.prepare_store(list(ha)).block_hashes_to_store == ha
    finally:
        storers.close()
    manager.complete_store(set(out.block_hashes_to_store))
    events = list(manager.take_events())
    assert len(events) == 1 and sorted(events[0].block_hashes) == sorted(ha)
    assert not events[0].removed
    if world > 1:  # different shards: a collision would make one rank read another's bytes
        assert all(reference[0][h] != reference[1][h] for h in ha)

    # The scheduler sees the blocks the worker processes stored (those are gone).
    assert manager.lookup(iter(ha)) == 6
    assert manager.prepare_store(list(ha)).block_hashes_to_store == []

    # Request B: A's first 4 blocks and 2 new, loaded by fresh worker processes.
    hb = block_hashes(list(range(4 * GPU_BLOCK)) + [10**6 + i for i in range(2 * GPU_BLOCK)],
                      GPU_BLOCK)
    manager.touch(iter(hb))
    hits = manager.lookup(iter(hb))
    assert hits == 4
    src = manager.prepare_load(list(hb[:hits]))
    ids_b = list(range(32, 32 + hits))
    loaders = Workers(daemon, world, [None] * world)
    try:
        for rank in range(world):
            got = loaders.run(rank, "load", src, ids_b)
            assert got == [reference[rank][h] for h in hb[:hits]]
    finally:
        loaders.close()
    manager.complete_load(set(hb[:hits]))

    # A failed store forgets the blocks on every rank.
    manager.complete_store(ha[:1], success=False)
    assert manager.lookup(iter(ha)) == 0
    assert manager.lookup(iter(ha[1:])) == 5


def test_without_socket_still_refuses_several_workers():
    spec = make_spec(1, "multi-shared")
    spec.vllm_config.parallel_config.world_size = 2
    with pytest.raises(NotImplementedError, match="kvtier_socket"):
        type(spec)(spec.vllm_config, spec.kv_cache_config)
