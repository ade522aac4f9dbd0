"""store.py — Store (kvt_config_* + kvt_open and the store calls), Ticket (kvt_wait/kvt_poll, futures, await), Tier, IoResult."""
import concurrent.futures
import ctypes
import enum
import threading
import time
import weakref

from . import _buffers
from ._buffers import Holds, pointers
from ._watch import Watcher
from .layers import Layers
from ._lib import CLOCK_FN, STAT_FN, IoOpts, lib
from .errors import BY_NAME, KvtierError, check, closed_error, make_error
from .keys import _one_key, key_mode as _key_mode, pack


class Tier(str, enum.Enum):
    """Tier instance names as lookups report them: a store's instances are
    named after their kind unless named otherwise ("nvme1" for a second
    NVMe file). Lookup results hold these members for the usual names, the
    plain name for others, and Tier.NONE for keys not held."""
    HBM = "hbm"
    DRAM = "dram"
    NVME = "nvme"
    NONE = "none"  # lookup: not held


_TIER_NONE = 255  # KVT_TIER_NONE
_KINDS = ("hbm", "dram", "nvme")  # the built-in kinds, fastest first

# kvt_option
_OPT_BLOCK_BYTES, _OPT_BLOCK_TOKENS, _OPT_FRAGS, _OPT_WORKERS = 1, 2, 3, 4
_OPT_COPY_THREADS, _OPT_MAX_INFLIGHT, _OPT_MANUAL_CLOCK, _OPT_KEY_MODE = 5, 6, 7, 8
_OPT_CLOSE_FLUSH_MS = 9
# Tier options that take strings (kvt_config_tier_set_str); the rest take integers.
_STR_OPTIONS = ("policy", "path", "faults")

VICTIMS = {"demote": 0, "drop": 1}                               # kvt_victims
ADMIT = {"write_back": 0, "write_through": 1, "after_n": 2}     # kvt_admit
IO_NO_PROMOTE = 1
IO_STREAM_WAIT = 2
IO_DURABLE = 4

_ETIMEDOUT = BY_NAME["ETIMEDOUT"].code
_EINPROGRESS = BY_NAME["EINPROGRESS"].code
_ENODEV = BY_NAME["ENODEV"].code
_EBUSY = BY_NAME["EBUSY"].code


def _tier_name(t):
    """A tier given as a Tier or a name: its instance name."""
    return t.value if isinstance(t, Tier) else str(t)


class IoResult(int):
    """The count a call returns (blocks stored/copied/released), with
    `status`: one int per block, 0 or a negative KVT_E* code (e.g.
    kvtier.ENOENT.code for a block get did not find)."""

    def __new__(cls, count, status):
        self = super().__new__(cls, count)
        self.status = status
        return self

    def __repr__(self):
        return f"IoResult({int(self)}, status={self.status!r})"

    __str__ = int.__repr__


class Ticket:
    """An asynchronous put or get. Its buffers stay held (and referenced)
    until it completes and is collected by wait(), poll(), done, or the
    store's watcher thread (future(), await)."""

    def __init__(self, store, tid, op, n, status, holds):
        self._store = store
        self._id = tid
        self.op = op
        self.n = n
        self._status = status
        self._holds = holds
        self._finished = False
        self._result = None
        self._error = None
        self._lock = threading.Lock()  # one collector at a time (kvt_wait consumes)
        self._future = None

    @property
    def id(self):
        """The kvt_ticket value."""
        return self._id

    def _finish(self, rc):
        self._finished = True
        self._store._pending.pop(self._id, None)
        self._holds.release()
        if rc < 0:
            self._error = make_error(rc)
        else:
            self._result = IoResult(rc, list(self._status))

    def _outcome(self):
        if self._error is not None:
            raise self._error
        return self._result

    def _closed(self):
        self._finished = True
        self._error = closed_error()
        self._error.message += (" before this ticket was waited for "
                                "(its operation ran to completion)")

    def _resolve(self):
        """Hands a finished ticket's outcome to its future, if it has one."""
        f = self._future
        if f is None or f.done() or not self._finished:
            return
        try:
            if self._error is not None:
                f.set_exception(self._error)
            else:
                f.set_result(self._result)
        except concurrent.futures.InvalidStateError:
            pass  # another thread resolved it first, with the same outcome

    @staticmethod
    def _timed_out():
        return make_error(_ETIMEDOUT, BY_NAME["ETIMEDOUT"].description)

    def wait(self, timeout_ms=-1):
        """Waits for completion (-1: forever) and returns the IoResult; raises
        the operation's error, or kvtier.ETIMEDOUT (still pending)."""
        forever = timeout_ms is None or timeout_ms < 0
        deadline = None if forever else time.monotonic() + int(timeout_ms) / 1000
        while True:  # in slices, so that Ctrl-C gets through
            with self._lock:
                if self._finished:
                    break
                future = self._future
                if future is None:
                    h = self._store._ptr
                    if h is None:
                        self._closed()
                        break
                    left = 200 if forever else \
                        max(0, min(200, round((deadline - time.monotonic()) * 1000)))
                    rc = lib.kvt_wait(h, self._id, left)
                    if rc != _ETIMEDOUT:
                        self._finish(rc)
                        break
            if future is not None:  # the watcher thread collects it
                try:
                    future.result(None if forever else max(0.0, deadline - time.monotonic()))
                except concurrent.futures.TimeoutError:
                    raise self._timed_out() from None
                except KvtierError:
                    pass  # raised below, by _outcome()
                break
            if not forever and time.monotonic() >= deadline:
                raise self._timed_out()
        self._resolve()
        return self._outcome()

    def poll(self):
        """The IoResult if complete (raising the operation's error), else None."""
        with self._lock:
            if not self._finished:
                h = self._store._ptr
                if h is None:
                    self._closed()
                else:
                    rc = lib.kvt_poll(h, self._id)
                    if rc == _EINPROGRESS:
                        return None
                    self._finish(rc)
        self._resolve()
        return self._outcome()

    def future(self):
        """A concurrent.futures.Future of this ticket's IoResult (the same one
        on every call), resolved by the store's watcher thread (started on
        first use, one per store) or by whichever of wait()/poll() sees
        completion first; its exception is the operation's kvtier error. It
        is running from the start: cancel() returns False, since an issued
        operation cannot be called back; the buffers stay held until the
        operation completes, whatever happens to the future."""
        with self._lock:
            if self._future is None:
                f = concurrent.futures.Future()
                f.set_running_or_notify_cancel()
                self._future = f
                if not self._finished:
                    store = self._store
                    if store._ptr is None or not store._watch().add(self):
                        self._closed()
        self._resolve()
        return self._future

    def __await__(self):
        """`await ticket` (asyncio): the IoResult, or the operation's error.
        Cancelling the awaiting task leaves the operation running and its
        buffers held until it completes."""
        import asyncio  # only for await: keeps `import kvtier` light
        return asyncio.wrap_future(self.future()).__await__()

    @property
    def done(self):
        """Whether the operation completed (polls; never raises)."""
        if not self._finished:
            try:
                self.poll()
            except KvtierError:
                pass
        return self._finished

    def __del__(self):
        store = getattr(self, "_store", None)
        if store is not None and not self._finished and store._ptr is not None:
            store._orphans.append(self._id)  # reaped by the store's next async call

    def __repr__(self):
        state = "done" if self._finished else "pending"
        return f"<kvtier.Ticket {self._id:#x} {self.op} of {self.n} blocks, {state}>"


def slot_bytes(kind, block_bytes):
    """Bytes one block takes in a slot of tier kind `kind` (kvt_slot_bytes):
    the tier's capacity must be a whole multiple of it. kvtier.ENOTSUP when
    this build has no such kind."""
    out = ctypes.c_uint64()
    check(lib.kvt_slot_bytes(str(kind).encode("utf-8"), int(block_bytes), ctypes.byref(out)))
    return out.value


def nvme_slot_bytes(block_bytes):
    """slot_bytes("nvme", block_bytes)."""
    return slot_bytes("nvme", block_bytes)


def _set_tier_option(cfg, tier, name, v):
    """One option of tier instance `tier` (kvt_config_tier_set / _str)."""
    if name in _STR_OPTIONS:
        check(lib.kvt_config_tier_set_str(cfg, tier, name.encode("utf-8"),
                                          None if v is None else str(v).encode("utf-8")))
        return
    if name == "victims" and isinstance(v, str):
        v = VICTIMS[v]
    elif name == "admit" and isinstance(v, str):
        v = ADMIT[v]
    check(lib.kvt_config_tier_set(cfg, tier, name.encode("utf-8"), int(v)))


def add_tier(cfg, kind, name=None, **options):
    """Adds a tier instance of `kind` to config handle cfg (kvt_config_add_tier)
    with its options ("capacity", "ttl_ms", "policy", "path", ...: the C
    names; victims and admit also by name); returns its index."""
    t = check(lib.kvt_config_add_tier(cfg, str(kind).encode("utf-8"),
                                      None if name is None else str(name).encode("utf-8")))
    for o, v in options.items():
        _set_tier_option(cfg, t, o, v)
    return t


def _close_store(ptr, pending, keep, watch):
    """Runs once per store: from Store.close(), garbage collection or exit.
    Tickets with a future are waited for first, so that their futures get
    their real outcome."""
    if watch:
        watch[0].stop(drain=True)
    rc = lib.kvt_close(ptr)
    for holds in list(pending.values()):
        holds.release()
    pending.clear()
    keep.clear()
    return rc


class Store:
    """An open kvtier store (kvt_open). Arguments map to the C setters:

    block_bytes      KVT_OPT_BLOCK_BYTES (required)
    frags            KVT_OPT_FRAGS (default 1)
    block_tokens     KVT_OPT_BLOCK_TOKENS
    workers, copy_threads, max_inflight    KVT_OPT_WORKERS, _COPY_THREADS, _MAX_INFLIGHT
    close_flush_ms   KVT_OPT_CLOSE_FLUSH_MS (0: close drops blocks only in DRAM/HBM)
    manual_clock     KVT_OPT_MANUAL_CLOCK (time moves only by clock_set())
    key_mode         KVT_OPT_KEY_MODE: "xxh3-128" (default) or "blake2b-128", the
                     mode of the keys this store is given (a declaration: see
                     docs/key-spec.md); the stat "key_mode" reads it back
    clock            kvt_config_set_clock: a callable returning monotonic ns
                     (called from the library's threads, holding the GIL: slow)
    hbm_bytes, dram_bytes, nvme_bytes      tier option "capacity" of each kind
    nvme_path        option "path" of the NVMe tier
    policy           option "policy" ("lru", "sieve", "s3fifo", "prefix", "default")
    ttl_ms           option "ttl_ms"
    victims          option "victims": "demote" or "drop"
    admit            option "admit": "write_back", "write_through" or "after_n"
    admit_after      option "admit_after"
    faults           option "faults" (test builds)
    numa_node, hugepages                   DRAM options
    queue_depth, sqpoll, recreate          NVMe options
    device           HBM option "device"
    tiers            instead of the per-kind arguments above: the tier
                     instances in order, fastest first, each a dict
                     {"kind": "nvme", "name": None, "capacity": ..., "path": ...}
                     with the C option names (add_tier); two of a kind work

    policy, ttl_ms, victims, admit, admit_after and faults take one value for
    every tier with a capacity, or a dict {"dram": v, "nvme": w} (Tier keys
    work too). None leaves the library's default. The per-kind arguments add
    the instances "hbm", "dram", "nvme" (fastest first) that get a capacity
    or an option; lookups report them as Tier.HBM, Tier.DRAM, Tier.NVME.
    """

    def __init__(self, block_bytes, *, frags=1, block_tokens=None, hbm_bytes=0, dram_bytes=0,
                 nvme_bytes=0, nvme_path=None, policy=None, ttl_ms=None, victims=None,
                 admit=None, admit_after=None, faults=None, numa_node=None, hugepages=None,
                 queue_depth=None, sqpoll=None, recreate=None, device=None, workers=None,
                 copy_threads=None, max_inflight=None, manual_clock=False, clock=None,
                 key_mode=None, close_flush_ms=None, tiers=None):
        self._ptr = None
        self._pending = {}   # ticket id -> Holds of its buffers
        self._orphans = []   # ids of tickets collected while pending
        self._keep = []      # the clock callback, alive until kvt_close
        self._watcher = []   # [Watcher] once a ticket's future() was asked for
        self._watch_lock = threading.Lock()
        cfg = ctypes.c_void_p()
        check(lib.kvt_config_new(ctypes.byref(cfg)))
        try:
            self._configure(cfg, locals())
            ptr = ctypes.c_void_p()
            check(lib.kvt_open(cfg, ctypes.byref(ptr)))
        finally:
            lib.kvt_config_free(cfg)
        self._ptr = ptr.value
        self.block_bytes = int(block_bytes)
        self.frags = int(frags)
        self.block_tokens = block_tokens
        self._fin = weakref.finalize(self, _close_store, self._ptr, self._pending, self._keep,
                                     self._watcher)

    def _configure(self, cfg, a):
        def opt(o, v):
            check(lib.kvt_config_set(cfg, o, int(v)))

        opt(_OPT_BLOCK_BYTES, a["block_bytes"])
        opt(_OPT_FRAGS, a["frags"])
        for o, name in ((_OPT_BLOCK_TOKENS, "block_tokens"), (_OPT_WORKERS, "workers"),
                        (_OPT_COPY_THREADS, "copy_threads"), (_OPT_MAX_INFLIGHT, "max_inflight"),
                        (_OPT_CLOSE_FLUSH_MS, "close_flush_ms")):
            if a[name] is not None:
                opt(o, a[name])
        if a["manual_clock"]:
            opt(_OPT_MANUAL_CLOCK, 1)
        if a["key_mode"] is not None:
            opt(_OPT_KEY_MODE, _key_mode(a["key_mode"]))
        if a["clock"] is not None:
            user_clock = a["clock"]
            cb = CLOCK_FN(lambda _user: int(user_clock()))
            self._keep.append(cb)
            check(lib.kvt_config_set_clock(cfg, cb, None))

        if a["tiers"] is not None:
            for spec in a["tiers"]:
                spec = dict(spec)
                add_tier(cfg, spec.pop("kind"), spec.pop("name", None), **spec)
            return

        # The per-kind arguments: options for each kind, then one instance
        # per kind that has any, fastest first.
        caps = {"hbm": a["hbm_bytes"], "dram": a["dram_bytes"], "nvme": a["nvme_bytes"]}
        on = [k for k in _KINDS if caps[k]]
        opts = {k: {} for k in _KINDS}

        def per_tier(value):
            if value is None:
                return {}
            if isinstance(value, dict):
                return {_tier_name(t).lower(): v for t, v in value.items()}
            return {k: value for k in on}

        for k in on:
            opts[k]["capacity"] = caps[k]
        if a["nvme_path"] is not None:
            opts["nvme"]["path"] = a["nvme_path"]
        for name in ("policy", "faults", "ttl_ms", "victims", "admit", "admit_after"):
            for k, v in per_tier(a[name]).items():
                if k not in opts:
                    raise ValueError(f"unknown tier {k!r} (hbm, dram, nvme)")
                opts[k][name] = v
        for k, name in (("dram", "numa_node"), ("dram", "hugepages"), ("nvme", "queue_depth"),
                        ("nvme", "sqpoll"), ("nvme", "recreate"), ("hbm", "device")):
            if a[name] is not None:
                opts[k][name] = a[name]
        for k in _KINDS:
            if opts[k]:
                add_tier(cfg, k, None, **opts[k])

    # ------------------------------------------------------------ lifetime

    def close(self):
        """Closes the store (kvt_close): waits for operations in flight. Safe
        to call twice. Tickets not yet waited for then raise kvtier.ECLOSED."""
        if self._ptr is None:
            return
        self._ptr = None
        check(self._fin())

    @property
    def closed(self):
        return self._ptr is None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        state = "closed" if self._ptr is None else f"at {self._ptr:#x}"
        return f"<kvtier.Store block_bytes={self.block_bytes} frags={self.frags} {state}>"

    def _h(self):
        h = self._ptr
        if h is None:
            raise closed_error()
        return h

    def _watch(self):
        """The store's watcher thread (Ticket.future()), started on first use."""
        with self._watch_lock:
            if not self._watcher:
                self._watcher.append(Watcher(self._h(), _EINPROGRESS))
            return self._watcher[0]

    # ------------------------------------------------------------ queries

    def lookup(self, keys, lease_ms=0):
        """(hits, tiers): how many leading keys are held, and for each key the
        fastest Tier holding it (Tier.NONE from the first miss on). lease_ms > 0
        pins the hits until release() or the lease ends."""
        raw, n = pack(keys)
        tiers = (ctypes.c_uint8 * max(n, 1))()
        hits = check(lib.kvt_lookup(self._h(), raw, n, tiers, int(lease_ms)))
        return hits, [self._tier_of(t) for t in tiers[:n]]

    def contains(self, keys):
        """(held, tiers): how many of the keys are held, and for each key the
        fastest Tier holding it or Tier.NONE, past misses (unlike lookup).
        Not an access; pins nothing."""
        raw, n = pack(keys)
        tiers = (ctypes.c_uint8 * max(n, 1))()
        held = check(lib.kvt_contains(self._h(), raw, n, tiers))
        return held, [self._tier_of(t) for t in tiers[:n]]

    def _tier_of(self, index):
        """A lookup's tier index as its instance name (a Tier member for the
        usual names), or Tier.NONE."""
        if index == _TIER_NONE:
            return Tier.NONE
        name = lib.kvt_store_tier_name(self._h(), index).decode("utf-8")
        try:
            return Tier(name)
        except ValueError:
            return name

    def tier_names(self):
        """The store's tier instance names, fastest first (kvt_store_tier_name)."""
        h = self._h()
        count = check(lib.kvt_store_tier_count(h))
        return [lib.kvt_store_tier_name(h, t).decode("utf-8") for t in range(count)]

    def touch(self, keys):
        """Counts an access to each held key without copying it (recency,
        idle TTL, admit-after-N); returns how many were held."""
        raw, n = pack(keys)
        return check(lib.kvt_touch(self._h(), raw, n))

    def pin(self, keys, lease_ms):
        """Pins present keys for lease_ms (all or nothing: kvtier.ENOENT)."""
        raw, n = pack(keys)
        return check(lib.kvt_pin(self._h(), raw, n, int(lease_ms)))

    def release(self, keys):
        """Releases one pin per key: IoResult(released, status), with
        kvtier.ENOTPINNED.code for keys without a live pin."""
        raw, n = pack(keys)
        status = (ctypes.c_int32 * max(n, 1))()
        rc = check(lib.kvt_release(self._h(), raw, n, status))
        return IoResult(rc, list(status[:n]))

    def remove(self, keys):
        """Forgets keys in every tier; returns how many were held."""
        raw, n = pack(keys)
        return check(lib.kvt_remove(self._h(), raw, n))

    def remove_group(self, group):
        """Removes every block whose last put named `group` (> 0); returns
        how many were held (kvt_remove_group)."""
        return check(lib.kvt_remove_group(self._h(), int(group)))

    def clear(self):
        """Removes every block, as final as remove() of every key; returns
        how many were held. Puts running at the same time may stay stored."""
        return check(lib.kvt_clear(self._h()))

    def flush(self, keys=None):
        """Makes blocks durable (kvt_flush): written down to the persistent
        tier where they are not there yet, then flushed. keys=None: every
        block held only above it; returns the number written. With keys:
        IoResult(durable, status), kvtier.ENOENT.code for a key not held."""
        if keys is None:
            return check(lib.kvt_flush(self._h(), None, 0, None))
        raw, n = pack(keys)
        status = (ctypes.c_int32 * max(n, 1))()
        rc = check(lib.kvt_flush(self._h(), raw, n, status))
        return IoResult(rc, list(status[:n]))

    def expire(self):
        """Applies idle TTLs now; returns blocks that left a tier."""
        return check(lib.kvt_expire(self._h()))

    def now(self):
        """The store's clock, ns."""
        return lib.kvt_clock_now(self._h())

    def clock_set(self, now_ns):
        """Sets a manual clock (manual_clock=True); it may not go back."""
        check(lib.kvt_clock_set(self._h(), int(now_ns)))

    def tier_available(self, tier):
        """True if the tier (a name, a Tier, or an instance index) is open in
        this store; False if not configured or configured but unavailable
        here (HBM without a GPU)."""
        if isinstance(tier, str):
            rc = lib.kvt_store_tier_find(self._h(), _tier_name(tier).encode("utf-8"))
            if rc == BY_NAME["ENOENT"].code:
                return False
            tier = check(rc)
        rc = lib.kvt_store_tier_available(self._h(), int(tier))
        if rc == _ENODEV:
            return False
        return check(rc) == 1

    def eventfd(self):
        """An eventfd (owned by the store) readable when tickets complete."""
        return check(lib.kvt_eventfd(self._h()))

    def stats(self):
        """{name: value} of every statistic (kvt_stats)."""
        out = {}

        def visit(name, value, _user):
            out[name.decode("utf-8", "replace")] = value

        check(lib.kvt_stats(self._h(), STAT_FN(visit), None))
        return out

    def stat(self, name):
        """One statistic (kvtier.ENOENT for unknown names)."""
        v = ctypes.c_uint64()
        check(lib.kvt_stat(self._h(), name.encode("utf-8"), ctypes.byref(v)))
        return v.value

    # ------------------------------------------------------------ data

    def put(self, keys, buffers, *, wait=True, retain_s=0, parent=None, stream=None,
            durable=False, group=0, frag_range=None):
        """Stores blocks. buffers: a kvtier.Layers with one block index per
        key (one array per fragment position; the fast path), one object of
        len(keys) * block_bytes, or a list with one entry per key: an object
        of block_bytes or a list of `frags` objects of block_bytes / frags.
        Objects: anything with the buffer protocol (bytes, bytearray,
        memoryview, numpy) or a torch tensor (CPU or CUDA). Returns
        IoResult(stored, status); wait=False returns a Ticket instead.
        parent: the key before keys[0]. durable: KVT_IO_DURABLE (complete
        once on the persistent tier and flushed). group: kvt_io_opts.group,
        for remove_group() (0: none, and clears the keys' group).
        frag_range=(first, count): a layer-wise save of fragments first ..
        first+count-1 of each block, buffers laid out as for get's range;
        a block becomes visible once all its fragments are put (kvt_put,
        docs/engines.md). Host memory, a store with a DRAM tier."""
        return self._io(lib.kvt_put, "put", keys, buffers, False, wait,
                        IO_DURABLE if durable else 0, stream, retain_s, parent, group,
                        frag_range=frag_range)

    def get(self, keys, buffers, *, wait=True, no_promote=False, stream=None,
            stream_wait=False, frag_range=None):
        """Copies blocks into writable buffers (laid out as for put). Returns
        IoResult(copied, status); a missing block has kvtier.ENOENT.code in
        status and its buffer is left as it was. wait=False returns a Ticket.
        frag_range=(first, count): only fragments first .. first+count-1 of
        each block (a layer-wise load; kvt_io_opts.frag_first/frag_count):
        buffers then hold `count` fragments per block, laid out as for a
        block of count fragments, except a kvtier.Layers, which keeps all
        its arrays and has those of the range written. Host memory only."""
        flags = (IO_NO_PROMOTE if no_promote else 0) | (IO_STREAM_WAIT if stream_wait else 0)
        return self._io(lib.kvt_get, "get", keys, buffers, True, wait, flags, stream, 0, None,
                        frag_range=frag_range)

    async def aput(self, keys, buffers, **kw):
        """put() for asyncio: issues the put at once and awaits its ticket."""
        return await self.put(keys, buffers, wait=False, **kw)

    async def aget(self, keys, buffers, **kw):
        """get() for asyncio: issues the get at once and awaits its ticket."""
        return await self.get(keys, buffers, wait=False, **kw)

    def _reap(self, block=False):
        """Collects tickets that were dropped while pending: those complete
        (all of them with block=True, waiting)."""
        h = self._ptr
        while self._orphans and h is not None:
            tid = self._orphans.pop()
            rc = lib.kvt_wait(h, tid, -1) if block else lib.kvt_poll(h, tid)
            if rc == _EINPROGRESS:
                self._orphans.insert(0, tid)
                break
            holds = self._pending.pop(tid, None)
            if holds is not None:
                holds.release()

    def _range(self, frag_range):
        """(first, count) checked against the store's fragments; (0, 0) for None."""
        if frag_range is None:
            return 0, 0
        first, count = (int(v) for v in frag_range)
        if first < 0 or count < 1 or first + count > self.frags:
            raise ValueError(f"frag_range {tuple(frag_range)}: not a range of the store's "
                             f"{self.frags} fragments per block")
        return first, count

    def _io(self, fn, op, keys, buffers, writable, wait, flags, stream, retain_s, parent,
            group=0, frag_range=None):
        h = self._h()
        first, count = self._range(frag_range)
        # With a range, a block of the caller's buffers is its `count` fragments.
        frags = count or self.frags
        frag_bytes = self.block_bytes // self.frags
        if self._orphans:
            self._reap()
        raw, n = pack(keys)
        holds = Holds()
        try:
            if isinstance(buffers, Layers):
                table, kind, device = buffers.pointers(n, self.frags, self.block_bytes,
                                                       writable, (first, count))
                holds.keep((buffers, table))
                ptrs = table.ctypes.data if n else (ctypes.c_void_p * 1)()
            elif n:
                ptrs, kind, device = pointers(buffers, n, frags, frags * frag_bytes,
                                              writable, holds)
            else:
                ptrs, kind, device = (ctypes.c_void_p * 1)(), _buffers.MEM_HOST, 0
            status = (ctypes.c_int32 * max(n, 1))()
            opts = IoOpts(size=ctypes.sizeof(IoOpts), mem_kind=kind, device=device, flags=flags,
                          retain_s=int(retain_s), frags=0, status=ctypes.addressof(status),
                          group=int(group), frag_first=first, frag_count=count)
            if kind == _buffers.MEM_CUDA and stream is None:
                stream = _buffers.current_stream(device)
            opts.stream = _buffers.stream_handle(stream) or None
            if parent is not None:
                opts.parent = holds.buffer(_one_key(parent), False, "parent")[0]
            holds.keep((raw, ptrs, status, opts))
            if wait:
                rc = check(fn(h, raw, n, ptrs, ctypes.byref(opts), None))
                return IoResult(rc, list(status[:n]))
            ticket = ctypes.c_uint64()
            rc = fn(h, raw, n, ptrs, ctypes.byref(opts), ctypes.byref(ticket))
            if rc == _EBUSY and self._orphans:  # our own dropped tickets fill the queue
                self._reap(block=True)
                rc = fn(h, raw, n, ptrs, ctypes.byref(opts), ctypes.byref(ticket))
            check(rc)
            self._pending[ticket.value] = holds
        except BaseException:
            holds.release()
            raise
        finally:
            if wait:
                holds.release()
        return Ticket(self, ticket.value, op, n, status, holds)
