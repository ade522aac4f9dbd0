"""events.py — the store's event stream (kvt_events_enable, kvt_events_take, kvt_events_fd): blocks leaving by eviction, expiry or removal.

    from kvtier import events
    events.enable(store, capacity=65536)
    for ev in events.take(store).events:
        print(ev.kind, ev.key.hex(), ev.tier, ev.to, ev.time_ns)

Functions of a Store rather than methods, so that this stays one file.
"""
import ctypes
from collections import namedtuple

from ._lib import lib
from .errors import check

EVICTED, EXPIRED, REMOVED = 1, 2, 3  # kvt_event_kind
KINDS = {EVICTED: "evicted", EXPIRED: "expired", REMOVED: "removed"}


class _Event(ctypes.Structure):
    """kvt_event (32 bytes, fixed layout)."""
    _fields_ = [("key", ctypes.c_uint8 * 16), ("time_ns", ctypes.c_uint64),
                ("kind", ctypes.c_uint8), ("tier", ctypes.c_uint8), ("to", ctypes.c_uint8),
                ("reserved", ctypes.c_uint8 * 5)]


assert ctypes.sizeof(_Event) == 32

#: One block leaving: kind "evicted", "expired" or "removed"; key (16
#: bytes); tier it left (Tier.NONE for a removal: every tier); to: the tier
#: it is demoted to, or Tier.NONE; time_ns on the store's clock.
Event = namedtuple("Event", "kind key tier to time_ns")
#: take()'s answer: the events, and how many were dropped (queue full)
#: since the last take that asked.
Taken = namedtuple("Taken", "events overflow")


def enable(store, capacity=65536):
    """Turns the stream on (once per store), queueing up to `capacity`."""
    check(lib.kvt_events_enable(store._h(), int(capacity)))


def take(store, max_events=4096):
    """Taken(events, overflow): up to max_events, oldest first."""
    out = (_Event * max(int(max_events), 1))()
    overflow = ctypes.c_uint64()
    n = check(lib.kvt_events_take(store._h(), out, int(max_events), ctypes.byref(overflow)))
    # Tier indices as the store's instance names (Tier members for the usual ones).
    return Taken([Event(KINDS.get(e.kind, str(e.kind)), bytes(e.key), store._tier_of(e.tier),
                        store._tier_of(e.to), e.time_ns) for e in out[:n]], overflow.value)


def fd(store):
    """The eventfd signalled when an event enters an empty queue (owned by
    the store): read it, then take() until no events come back."""
    return check(lib.kvt_events_fd(store._h()))
