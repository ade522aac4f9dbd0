"""test_events.py — kvtier.events through the binding: the exact sequence on a virtual clock, and the eventfd with select()."""
import os
import select

import kvtier
from kvtier import events
from kvtier.store import Tier

MS = 1_000_000


def key(i):
    return i.to_bytes(4, "little") + bytes(11) + b"\xe8"


def test_exact_sequence_on_a_virtual_clock():
    with kvtier.Store(1024, dram_bytes=3 * 1024, policy="lru", ttl_ms=100,
                      manual_clock=True, hugepages=0) as s:
        events.enable(s, capacity=8)
        fd = events.fd(s)
        assert select.select([fd], [], [], 0)[0] == []
        for i in range(4):  # the 4th evicts 0
            s.clock_set((i + 1) * MS)
            s.put([key(i)], [bytes(1024)])
        assert select.select([fd], [], [], 0)[0] == [fd]
        os.read(fd, 8)
        s.clock_set(50 * MS)
        assert s.remove([key(2), key(9)]) == 1
        s.clock_set(103 * MS)
        assert s.expire() == 1  # 1 was put at 2 ms: 101 ms idle
        got = events.take(s)
        assert got.overflow == 0
        assert got.events == [
            events.Event("evicted", key(0), Tier.DRAM, Tier.NONE, 4 * MS),
            events.Event("removed", key(2), Tier.NONE, Tier.NONE, 50 * MS),
            events.Event("expired", key(1), Tier.DRAM, Tier.NONE, 103 * MS),
        ]
        assert events.take(s).events == []


def test_errors():
    with kvtier.Store(1024, dram_bytes=4096) as s:
        try:
            events.take(s)
        except kvtier.EINVAL:
            pass
        else:
            raise AssertionError("take before enable")
        events.enable(s, 4)
        try:
            events.enable(s, 4)
        except kvtier.EINVAL:
            pass
        else:
            raise AssertionError("enable twice")
