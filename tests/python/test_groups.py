"""test_groups.py — Store.put(group=) and Store.remove_group through the binding, against a dict of what each key's last put said."""
import random

import pytest

import kvtier


def key(i):
    return ((i + 1) * 0x9E3779B97F4A7C15 % 2**64).to_bytes(8, "little") + i.to_bytes(8, "little")


def test_random_puts_and_group_removals():
    rng = random.Random(20)
    with kvtier.Store(256, dram_bytes=512 * 256, hugepages=0) as s:
        group_of = {}  # key index -> group of its last put (0: none); all stay held
        for _ in range(60):
            idx = rng.sample(range(400), rng.randrange(1, 20))
            g = rng.choice([0, 1, 2, 3])
            res = s.put([key(i) for i in idx], [bytes(256)] * len(idx), group=g,
                        wait=rng.random() < 0.5)
            if isinstance(res, kvtier.Ticket):
                res = res.wait()
            assert res == len(idx)
            for i in idx:
                group_of[i] = g
            if rng.random() < 0.2:
                victim = rng.choice([1, 2, 3])
                want = sorted(i for i, gg in group_of.items() if gg == victim)
                assert s.remove_group(victim) == len(want)
                for i in want:
                    del group_of[i]
                held, _ = s.contains([key(i) for i in want] or [key(10**6)])
                assert held == 0
        held, _ = s.contains([key(i) for i in sorted(group_of)])
        assert held == len(group_of)
        with pytest.raises(kvtier.EINVAL):
            s.remove_group(0)
