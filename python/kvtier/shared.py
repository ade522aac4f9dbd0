"""shared.py — connect(): a Store served by another process (kvt_connect; docs/shared.md)."""
import ctypes
import os
import threading
import weakref

from ._lib import lib
from .errors import check
from .store import Store, _close_store


class ConnectOpts(ctypes.Structure):
    """kvt_connect_opts (include/kvtier.h)."""
    _fields_ = [("size", ctypes.c_uint32), ("timeout_ms", ctypes.c_uint32),
                ("block_bytes", ctypes.c_uint64), ("frags", ctypes.c_uint32),
                ("staging_blocks", ctypes.c_uint32), ("copy_threads", ctypes.c_uint32),
                ("reserved", ctypes.c_uint32)]


def _stat(ptr, name):
    v = ctypes.c_uint64()
    check(lib.kvt_stat(ptr, name.encode(), ctypes.byref(v)))
    return v.value


def connect(path, *, block_bytes=0, frags=0, timeout_ms=0, staging_blocks=0, copy_threads=0):
    """Connects to a kvtier server (kvtierd, or a process that called
    kvt_serve) at the unix socket `path` and returns a Store on which the data
    calls work as on a local one: lookup, contains, touch, pin, release, put,
    get (and tickets), remove, clear, flush, stats. block_bytes and frags,
    when given, must match the server's (else kvtier.EGEOMETRY); copy_threads
    (0: 2) copy a large batch into or out of the server's shared arena. Close it
    (or use `with`) when done; the server keeps the blocks."""
    opts = ConnectOpts(size=ctypes.sizeof(ConnectOpts), timeout_ms=int(timeout_ms),
                       block_bytes=int(block_bytes), frags=int(frags),
                       staging_blocks=int(staging_blocks), copy_threads=int(copy_threads))
    ptr = ctypes.c_void_p()
    check(lib.kvt_connect(os.fsencode(path), ctypes.addressof(opts), ctypes.byref(ptr)))
    s = Store.__new__(Store)
    s._ptr = ptr.value
    s._pending = {}
    s._orphans = []
    s._keep = []
    s._watcher = []
    s._watch_lock = threading.Lock()
    s.block_bytes = _stat(s._ptr, "client.block_bytes")
    s.frags = _stat(s._ptr, "client.frags")
    s.block_tokens = None
    s._fin = weakref.finalize(s, _close_store, s._ptr, s._pending, s._keep, s._watcher)
    return s


def stats_prometheus(store):
    """The store's statistics in the Prometheus text format (kvt_stats_prometheus)."""
    need = check(lib.kvt_stats_prometheus(store._h(), None, 0))
    while True:
        buf = ctypes.create_string_buffer(need + 4096)
        got = check(lib.kvt_stats_prometheus(store._h(), buf, len(buf)))
        if got < len(buf):
            return buf.value.decode()
        need = got
