"""_store.py — the one place the adapters open a Store and move blocks by raw pointers.

Engines describe their buffers as raw addresses (SGLang's
get_page_buffer_meta, vLLM's canonical block tensors): these go to
kvt_put/kvt_get as one pointer table, with no Python object per fragment.
"""
import ctypes

from .._lib import IoOpts, lib
from ..errors import check
from ..keys import pack
from ..store import Store

MEM_HOST = 0
MEM_CUDA = 1

# Options an engine's configuration may set, as the Store constructor names them.
STORE_OPTIONS = ("dram_bytes", "hbm_bytes", "nvme_bytes", "nvme_path", "policy", "ttl_ms",
                 "victims", "admit", "admit_after", "workers", "copy_threads",
                 "max_inflight", "close_flush_ms", "recreate", "manual_clock")


def open_store(block_bytes, frags, config):
    """A Store for blocks of block_bytes in `frags` fragments. config: a
    dict of engine configuration; its keys "kvtier_<option>" (or a nested
    dict under "kvtier") set the Store options named in STORE_OPTIONS.
    Default: 1 GiB of DRAM. All adapters open their store here, so a change
    of the Store constructor is made once."""
    config = dict(config or {})
    opts = dict(config.get("kvtier") or {})
    for name in STORE_OPTIONS:
        if f"kvtier_{name}" in config:
            opts[name] = config[f"kvtier_{name}"]
    unknown = set(opts) - set(STORE_OPTIONS)
    if unknown:
        raise ValueError(f"unknown kvtier options {sorted(unknown)} (known: {STORE_OPTIONS})")
    if not any(opts.get(k) for k in ("dram_bytes", "hbm_bytes", "nvme_bytes")):
        opts["dram_bytes"] = 1 << 30
    for k in ("dram_bytes", "hbm_bytes", "nvme_bytes"):
        if opts.get(k):  # capacities in whole blocks
            opts[k] = max(int(opts[k]) // block_bytes, 1) * block_bytes
    return Store(int(block_bytes), frags=int(frags), **opts)


def io_pointers(store, op, keys, ptrs, mem_kind=MEM_HOST, device=0, stream=None):
    """kvt_put (op "put") or kvt_get ("get") of keys from/into raw addresses:
    ptrs holds len(keys) * store.frags ints (block-major). Returns the
    per-block status list (0 or a negative KVT_E* code). Synchronous."""
    raw, n = pack(keys)
    if n == 0:
        return []
    if len(ptrs) != n * store.frags:
        raise ValueError(f"{len(ptrs)} pointers for {n} blocks of {store.frags} fragments")
    table = (ctypes.c_void_p * len(ptrs))(*[int(p) for p in ptrs])
    status = (ctypes.c_int32 * n)()
    opts = IoOpts(size=ctypes.sizeof(IoOpts), mem_kind=mem_kind, device=device,
                  stream=stream, status=ctypes.addressof(status))
    fn = lib.kvt_put if op == "put" else lib.kvt_get
    check(fn(store._h(), raw, n, table, ctypes.byref(opts), None))
    return list(status)


_EINPROGRESS = -12  # KVT_EINPROGRESS
_ETIMEDOUT = -11    # KVT_ETIMEDOUT


class PendingIO:
    """An asynchronous io_pointers: keeps the pointer table, keys and status
    alive until the ticket is collected by poll() or wait()."""

    def __init__(self, store, op, keys, ptrs, mem_kind=MEM_HOST, device=0, stream=None):
        self.store = store
        self.raw, self.n = pack(keys)
        if len(ptrs) != self.n * store.frags:
            raise ValueError(f"{len(ptrs)} pointers for {self.n} blocks of {store.frags} "
                             "fragments")
        self._table = (ctypes.c_void_p * max(len(ptrs), 1))(*[int(p) for p in ptrs])
        self._status = (ctypes.c_int32 * max(self.n, 1))()
        self._opts = IoOpts(size=ctypes.sizeof(IoOpts), mem_kind=mem_kind, device=device,
                            stream=stream, status=ctypes.addressof(self._status))
        self.result = None  # per-block status once collected
        self.error = 0      # the call's own code, if it failed as a whole
        if self.n == 0:
            self.result = []
            return
        ticket = ctypes.c_uint64()
        fn = lib.kvt_put if op == "put" else lib.kvt_get
        check(fn(store._h(), self.raw, self.n, self._table, ctypes.byref(self._opts),
                 ctypes.byref(ticket)))
        self.ticket = ticket.value

    def _collect(self, rc):
        if rc in (_EINPROGRESS, _ETIMEDOUT):
            return False
        if rc < 0:
            self.error = rc
            self.result = [rc] * self.n
        else:
            self.result = list(self._status[:self.n])
        return True

    def poll(self):
        """True once complete (then .result holds the per-block status)."""
        if self.result is not None:
            return True
        return self._collect(lib.kvt_poll(self.store._h(), self.ticket))

    def wait(self):
        if self.result is None:
            self._collect(lib.kvt_wait(self.store._h(), self.ticket, -1))
        return self.result
