"""vllm.py — a vLLM offloading spec (OffloadingConnector) on a kvtier Store,
in-process or, with `kvtier_socket`, across processes through a node-shared store.

Written against vLLM's kv_offload interface as these files have it
(docs/engines.md says why the commits differ: the interface moves weekly):
  vllm/v1/kv_offload/spec.py          @0072b0b7443bdddf17824c78d4feae8e1fc12fb4
      OffloadingSpec(vllm_config, kv_cache_config), get_manager(),
      get_handlers(kv_caches: CanonicalKVCaches)
  vllm/v1/kv_offload/abstract.py      @00d169bfa55967fc48d6f1b08cfc929c1cce3545
      OffloadingManager, LoadStoreSpec, PrepareStoreOutput, OffloadingEvent
  vllm/v1/kv_offload/mediums.py       @0c2bbc477d0d615ee4d2581bbdfa966054db20f0
      GPULoadStoreSpec(block_ids, group_sizes, block_indices)
  vllm/v1/kv_offload/worker/worker.py @06bb4a63a14b5b1f34ad9455e8e4aa017ee6e0f3
      OffloadingHandler.transfer_async / get_finished / wait, TransferResult
  vllm/distributed/kv_transfer/kv_connector/v1/offloading/scheduler.py
                                      @0072b0b7443bdddf17824c78d4feae8e1fc12fb4
      the scheduler side's calls (touch, lookup, prepare_load, prepare_store,
      complete_store, complete_load, take_events)
Enable it with

    --kv-transfer-config '{"kv_connector": "OffloadingConnector",
        "kv_role": "kv_both", "kv_connector_extra_config": {
        "spec_name": "KvtierOffloadingSpec",
        "spec_module_path": "kvtier.integrations.vllm",
        "kvtier_dram_bytes": 68719476736}}'

Without `kvtier_socket`: the scheduler-side manager and the worker-side
handlers share one Store through a registry in this module, which holds
when the worker runs in the scheduler's process (tensor_parallel_size=1
with the "uni" executor); world_size > 1 is refused rather than silently
giving each process its own cache.

With `kvtier_socket` (the path of a kvtierd or kvt_serve socket): the
manager and every handler connect to that server on their own
(kvtier.connect), so worker processes may be many. Each rank folds the
block hashes under its own namespace (the rank is part of the key, as
keyfold.vllm_namespace does for tensor and pipeline ranks), so the ranks'
fragments never collide; the manager asks for the keys of every rank and
counts a block as offloaded only when all ranks hold it.
"""
import threading
import time

from .. import events as kvt_events
from . import keyfold
from ..errors import KvtierError
from ..keys import Keys
from ..shared import connect
from ..store import Tier
from ._store import MEM_CUDA, MEM_HOST, PendingIO, open_store

try:
    from vllm.v1.kv_offload.abstract import LoadStoreSpec as _LoadStoreSpec
    from vllm.v1.kv_offload.abstract import OffloadingEvent, OffloadingManager as _Manager
    from vllm.v1.kv_offload.abstract import PrepareStoreOutput
    from vllm.v1.kv_offload.mediums import GPULoadStoreSpec
    from vllm.v1.kv_offload.spec import OffloadingSpec as _Spec
    from vllm.v1.kv_offload.worker.worker import OffloadingHandler as _Handler
    from vllm.v1.kv_offload.worker.worker import TransferResult
except ImportError:  # vLLM absent: importable for docs; the drivers install stand-ins
    _LoadStoreSpec = _Manager = _Spec = _Handler = object
    OffloadingEvent = PrepareStoreOutput = TransferResult = GPULoadStoreSpec = None

MEDIUM = "KVTIER"
DEFAULT_LEASE_MS = 60000
EVENT_QUEUE = 65536  # kvtier events queued between two take_events
EVENT_TAKE = 1024    # taken per call

# engine id -> {"store": Store or None, "lock": Lock}: what the manager and
# the handlers of one engine share (one process).
_registry = {}
_registry_lock = threading.Lock()


def _shared(engine_id):
    with _registry_lock:
        return _registry.setdefault(engine_id, {"store": None, "lock": threading.Lock()})


PIN_BATCH = 4096  # keys per kvt_pin on a connected store (docs/shared.md)


def _connected(path):
    """The shared state of one process's connection: the store is opened on
    first use, so a server that starts after the engine is still found."""
    return {"store": None, "lock": threading.Lock(), "socket": path}


def _rank_namespaces(model, layout, world, tp_size):
    """One namespace per rank (rank = pp_rank * tp_size + tp_rank, vLLM's
    order); with one rank exactly the in-process namespace."""
    tp_size = max(1, min(int(tp_size), world))
    pp_size = max(1, world // tp_size)
    return [keyfold.vllm_namespace(model, tp_rank=r % tp_size, tp_size=tp_size,
                                   pp_rank=r // tp_size, pp_size=pp_size, layout=layout)
            for r in range(world)]


class KvtierLoadStoreSpec(_LoadStoreSpec):
    """Where offloaded blocks are: their kvtier keys (a kvtier.Keys) and,
    across processes, their block hashes, which each rank's handler folds
    under its own namespace."""

    def __init__(self, keys, hashes=None):
        self.keys = keys
        self.hashes = hashes

    @staticmethod
    def medium():
        return MEDIUM

    def __repr__(self):
        return f"KvtierLoadStoreSpec({len(self.keys)} blocks)"


class KvtierOffloadingManager(_Manager):
    """The scheduler side: which blocks are offloaded. Called from the
    scheduler's thread only (scheduler.py)."""

    def __init__(self, shared, ns, block_size, lease_ms=DEFAULT_LEASE_MS,
                 enable_events=False, rank_ns=None):
        self._shared = shared
        self.ns = ns
        # Across processes: the namespaces of all ranks (a block is offloaded
        # when each rank holds its part); None in-process.
        self.rank_ns = rank_ns
        self.block_size = block_size
        self.lease_ms = lease_ms
        self.enable_events = enable_events
        self._events = []
        self._hash_of = {}  # kvtier key -> block hash of blocks stored (events on)
        self._stream_on = False

    def _store(self):
        if self.rank_ns is not None:
            return self._connect()
        store = self._shared["store"]
        if store is not None and self.enable_events and not self._stream_on:
            try:
                kvt_events.enable(store, EVENT_QUEUE)
            except KvtierError:  # on already: another manager of this store
                pass
            self._stream_on = True
        return store

    def _connect(self):
        """The manager's own connection; None while no server answers (the
        scheduler asks again next step). kvtier's event stream is not in the
        connection protocol yet, so no removed events across processes."""
        if self._shared["store"] is None:
            try:
                self._shared["store"] = connect(self._shared["socket"])
            except (KvtierError, OSError):
                return None
        return self._shared["store"]

    def _keys(self, block_hashes):
        # BlockHash is bytes; with one KV cache group (or the offloaded block
        # covering all groups) the group index is 0.
        return keyfold.vllm_keys(self.ns, [bytes(h) for h in block_hashes])

    def _all_keys(self, block_hashes):
        """Every rank's keys of the blocks, rank after rank (one Keys)."""
        if self.rank_ns is None:
            return self._keys(block_hashes)
        hashes = [bytes(h) for h in block_hashes]
        return Keys(b"".join(keyfold.vllm_keys(ns, hashes).raw for ns in self.rank_ns))

    def _held(self, store, block_hashes):
        """Per block: whether every rank holds it (kvt_contains)."""
        n = len(block_hashes)
        _, tiers = store.contains(self._all_keys(block_hashes))
        return [all(tiers[r * n + i] != Tier.NONE for r in range(len(self.rank_ns or [0])))
                for i in range(n)]

    def lookup(self, block_hashes):
        """Leading offloaded blocks (kvt_lookup; across processes the fewest
        leading blocks any rank holds). Pins nothing: vLLM asks again every
        step while a request waits."""
        store = self._store()
        block_hashes = list(block_hashes)
        if store is None or not block_hashes:
            return 0
        if self.rank_ns is None:
            return store.lookup(self._keys(block_hashes))[0]
        hashes = [bytes(h) for h in block_hashes]
        return min(store.lookup(keyfold.vllm_keys(ns, hashes))[0] for ns in self.rank_ns)

    def prepare_load(self, block_hashes):
        """Pins the blocks (kvt_pin, lease_ms at most) until complete_load
        releases them. A block evicted since lookup() (nothing pins between
        the two) makes the pin fail: the load then reports failure."""
        block_hashes = list(block_hashes)
        keys = self._keys(block_hashes)
        store = self._store()
        pins = self._all_keys(block_hashes)
        if store is not None and len(pins):
            step = PIN_BATCH if self.rank_ns is not None else len(pins)
            for i in range(0, len(pins), step):
                try:
                    store.pin(pins[i:i + step], self.lease_ms)
                except KvtierError:
                    pass
        if self.rank_ns is None:
            return KvtierLoadStoreSpec(keys)
        return KvtierLoadStoreSpec(keys, [bytes(h) for h in block_hashes])

    def touch(self, block_hashes):
        store = self._store()
        keys = self._all_keys(block_hashes)
        if store is not None and len(keys):
            store.touch(keys)

    def complete_load(self, block_hashes):
        store = self._store()
        keys = self._all_keys(block_hashes)
        if store is not None and len(keys):
            store.release(keys)

    def prepare_store(self, block_hashes):
        """The blocks not held yet are to be stored; None while the worker
        has not opened the store (no room can be promised)."""
        store = self._store()
        if store is None:
            return None
        block_hashes = list(block_hashes)
        keys = self._keys(block_hashes)
        if len(keys) == 0:
            return PrepareStoreOutput(block_hashes_to_store=[],
                                      store_spec=KvtierLoadStoreSpec(keys),
                                      block_hashes_evicted=[])
        if self.rank_ns is None:
            _, tiers = store.contains(keys)
            todo = [i for i, t in enumerate(tiers) if t == Tier.NONE]
            hashes = None
        else:  # a block some rank lacks is stored again by every rank
            todo = [i for i, held in enumerate(self._held(store, block_hashes)) if not held]
            hashes = [bytes(block_hashes[i]) for i in todo]
        return PrepareStoreOutput(
            block_hashes_to_store=[block_hashes[i] for i in todo],
            store_spec=KvtierLoadStoreSpec(Keys(b"".join(keys[i] for i in todo)), hashes),
            # kvtier evicts on its own, when a later put needs room; the
            # evictions reach vLLM as events once kvtier has an event stream.
            block_hashes_evicted=[])

    def complete_store(self, block_hashes, success=True):
        block_hashes = list(block_hashes)
        store = self._store()
        if store is None or not block_hashes:
            return
        keys = self._keys(block_hashes)
        if not success:
            store.remove(self._all_keys(block_hashes))
            return
        if self.enable_events and self.rank_ns is not None:
            stored = [h for h, held in zip(block_hashes, self._held(store, block_hashes))
                      if held]
            if stored:
                self._events.append(OffloadingEvent(block_hashes=stored,
                                                    block_size=self.block_size,
                                                    medium=MEDIUM, removed=False))
        elif self.enable_events:
            _, tiers = store.contains(keys)
            stored = [h for h, t in zip(block_hashes, tiers) if t != Tier.NONE]
            for k, h, t in zip(keys, block_hashes, tiers):
                if t != Tier.NONE:
                    self._hash_of[k] = h
            if stored:
                self._events.append(OffloadingEvent(block_hashes=stored,
                                                    block_size=self.block_size,
                                                    medium=MEDIUM, removed=False))

    def _left(self):
        """Block hashes that left kvtier since the last call: evicted or
        expired without a demotion, or removed (kvtier's event stream)."""
        store = self._store()
        if store is None or not self._stream_on:
            return []
        gone = []
        while True:
            taken = kvt_events.take(store, EVENT_TAKE)
            for ev in taken.events:
                if ev.kind == "removed" or ev.to == Tier.NONE:
                    h = self._hash_of.pop(ev.key, None)
                    if h is not None:
                        gone.append(h)
            if len(taken.events) < EVENT_TAKE:
                return gone

    def take_events(self):
        events, self._events = self._events, []
        yield from events
        gone = self._left()
        if gone:
            yield OffloadingEvent(block_hashes=gone, block_size=self.block_size,
                                  medium=MEDIUM, removed=True)


class KvtierOffloadingHandler(_Handler):
    """The worker side: copies between vLLM's canonical KV cache tensors and
    the store, in both directions (GPU -> KVTIER stores, KVTIER -> GPU
    loads). One kvtier fragment per canonical tensor per GPU block."""

    def __init__(self, shared, kv_caches, block_size_factor, config, ns=None):
        # ns: this rank's namespace across processes (keys are folded here
        # from the specs' block hashes); None in-process (the specs' keys).
        self.ns = ns
        tensors = [t.tensor for t in kv_caches.tensors]
        pages = {int(t.page_size_bytes) for t in kv_caches.tensors}
        if len(pages) != 1:
            raise ValueError(f"kvtier: canonical KV tensors of unequal page sizes {pages}")
        self.page_bytes = pages.pop()
        self.factor = int(block_size_factor)
        self.bases = [int(t.data_ptr()) for t in tensors]
        self.strides = [int(t.stride(0)) * int(t.element_size()) for t in tensors]
        dev = tensors[0].device
        self.mem_kind = MEM_CUDA if getattr(dev, "type", "cpu") == "cuda" else MEM_HOST
        self.device = (dev.index or 0) if self.mem_kind == MEM_CUDA else 0
        frags = len(tensors) * self.factor
        with shared["lock"]:
            if shared["store"] is None and shared.get("socket"):
                # The server's geometry must be this worker's (else EGEOMETRY).
                shared["store"] = connect(shared["socket"], block_bytes=self.page_bytes * frags,
                                          frags=frags)
            elif shared["store"] is None:
                shared["store"] = open_store(self.page_bytes * frags, frags, config)
        self.store = shared["store"]
        self._jobs = {}  # job_id -> (PendingIO, bytes, start time, transfer type)

    def _pointers(self, gpu_spec, nblocks):
        ids = [int(b) for b in gpu_spec.block_ids]
        if len(getattr(gpu_spec, "group_sizes", [len(ids)])) != 1:
            raise ValueError("kvtier: one KV cache group only")
        indices = getattr(gpu_spec, "block_indices", None)
        if indices is not None and indices[0] % self.factor:
            raise ValueError("kvtier: a load starting inside an offloaded block")
        if len(ids) != nblocks * self.factor:
            raise ValueError(f"kvtier: {len(ids)} GPU blocks for {nblocks} offloaded blocks")
        ptrs = []
        for i in range(nblocks):
            for base, stride in zip(self.bases, self.strides):
                for k in range(self.factor):
                    ptrs.append(base + ids[i * self.factor + k] * stride)
        return ptrs

    def _stream(self):
        if self.mem_kind != MEM_CUDA:
            return None
        import torch  # CUDA tensors: order after the work queued on the current stream
        return torch.cuda.current_stream(self.device).cuda_stream

    def transfer_async(self, job_id, spec):
        src, dst = spec
        if src.medium() == MEDIUM:
            op, keys, gpu = "get", src.keys, dst
        else:
            op, keys, gpu = "put", dst.keys, src
        if self.ns is not None:
            keys = keyfold.vllm_keys(self.ns, (dst if op == "put" else src).hashes)
        ptrs = self._pointers(gpu, len(keys))
        io = PendingIO(self.store, op, keys, ptrs, self.mem_kind, self.device, self._stream())
        self._jobs[job_id] = (io, len(keys) * self.store.block_bytes, time.perf_counter(),
                              (src.medium(), dst.medium()))
        return True

    def _result(self, job_id):
        io, size, start, kind = self._jobs.pop(job_id)
        return TransferResult(job_id=job_id, success=all(s == 0 for s in io.result),
                              transfer_size=size, transfer_time=time.perf_counter() - start,
                              transfer_type=kind)

    def get_finished(self):
        done = [j for j, (io, *_rest) in self._jobs.items() if io.poll()]
        return [self._result(j) for j in done]

    def wait(self, job_ids):
        for j in job_ids:
            if j in self._jobs:
                self._jobs[j][0].wait()

    def shutdown(self):
        for io, *_rest in self._jobs.values():
            io.wait()


class KvtierOffloadingSpec(_Spec):
    """OffloadingSpec: vLLM's OffloadingSpecFactory builds it as
    spec_cls(vllm_config, kv_cache_config) from spec_module_path."""

    def __init__(self, vllm_config, kv_cache_config):
        super().__init__(vllm_config, kv_cache_config)
        parallel = getattr(vllm_config, "parallel_config", None)
        world = int(getattr(parallel, "world_size", 1) or 1)
        socket_path = self.extra_config.get("kvtier_socket")
        if world > 1 and not socket_path:
            raise NotImplementedError(
                "kvtier: without kvtier_socket the vLLM adapter runs in-process only "
                "(world_size 1); several workers need kvtier's node-shared store: set "
                "kvtier_socket to a kvtierd or kvt_serve socket")
        if len(self.gpu_block_size) != 1:
            raise NotImplementedError("kvtier: one KV cache group only")
        model = getattr(getattr(vllm_config, "model_config", None), "model", "") or ""
        layout = self.extra_config.get("kvtier_layout")
        self.ns = keyfold.vllm_namespace(model, layout=layout)
        self.rank_ns = None
        if socket_path:
            # The worker's rank: vLLM's Worker sets parallel_config.rank.
            self.rank_ns = _rank_namespaces(
                model, layout, world, getattr(parallel, "tensor_parallel_size", world) or world)
            rank = int(getattr(parallel, "rank", 0) or 0)
            if not 0 <= rank < world:
                raise ValueError(f"kvtier: rank {rank} outside world_size {world}")
            self.ns = self.rank_ns[rank]
            self._shared = _connected(socket_path)
        else:
            engine_id = getattr(vllm_config.kv_transfer_config, "engine_id", None)
            self._shared = _shared(engine_id if engine_id is not None else id(vllm_config))
        self._manager = None
        self._handler = None

    def get_manager(self):
        if self._manager is None:
            events = getattr(self.vllm_config, "kv_events_config", None)
            # Across processes the manager has a connection of its own, so
            # the handler's connect always checks the server's geometry.
            shared = _connected(self._shared["socket"]) if self.rank_ns else self._shared
            self._manager = KvtierOffloadingManager(
                shared, self.ns, self.offloaded_block_size,
                lease_ms=int(self.extra_config.get("kvtier_lease_ms", DEFAULT_LEASE_MS)),
                enable_events=bool(events and getattr(events, "enable_kv_cache_events",
                                                      False)),
                rank_ns=self.rank_ns)
        return self._manager

    def get_handlers(self, kv_caches, *args, **kwargs):
        if self._handler is None:
            self._handler = KvtierOffloadingHandler(self._shared, kv_caches,
                                                    self.block_size_factors[0],
                                                    self.extra_config,
                                                    self.ns if self.rank_ns else None)
        yield GPULoadStoreSpec, KvtierLoadStoreSpec, self._handler
        yield KvtierLoadStoreSpec, GPULoadStoreSpec, self._handler
