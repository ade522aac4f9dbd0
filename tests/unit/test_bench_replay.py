#!/usr/bin/env python3
# test_bench_replay.py — kvtier-bench replay and sweep on small generated traces: fields, exact hit counts against a Python reference, CSV, plots, errors.
"""Usage: test_bench_replay.py PATH/TO/kvtier-bench [PATH/TO/plot.py]

Writes its own traces (a Mooncake JSONL of a few hundred requests and two
WEKA sessions, one with a subagent) into a temporary directory, and replays
the subset of the real traces shipped in tests/data/traces, so it runs
without ../shared/traces. The hit counts are checked exactly against a
reference written here (an LRU of hash ids with an idle TTL, the replay
semantics of docs/bench.md), which shares nothing with the bench.
"""
import csv
import json
import math
import os
import random
import subprocess
import sys
import tempfile

import build_has

BENCH = sys.argv[1] if len(sys.argv) > 1 else "kvtier-bench"
PLOT = sys.argv[2] if len(sys.argv) > 2 else None
FAILURES = []
NUM = (int, float)

REPLAY = {
    "config": {"traces": list, "policy": str, "capacity_blocks": int, "capacity_unlimited": bool,
               "nvme_capacity_blocks": int, "tiers": str, "block_bytes": int,
               "bytes_scaled": bool, "verify": bool, "put_batch": int, "clock": str},
    "requests": int, "sessions": int, "streams": int, "unique_blocks": int,
    "trace_seconds": NUM, "total_blocks": int, "hit_blocks": int, "hit_ratio": NUM,
    "seen_blocks": int, "hit_ratio_unlimited": NUM, "dram_hits": int, "nvme_hits": int,
    "expiry_reprefills": int, "expiry_reprefill_blocks": int,
    "expiry_reprefills_per_session": NUM, "expiry_baseline": str,
    "store": {"dram_evictions": int, "nvme_evictions": int, "dram_expirations": int,
              "nvme_expirations": int, "nvme_demotions_in": int, "dram_promotions_in": int,
              "lookup_nvme_blocks": int, "put_rejected": int, "put_present": int,
              "get_short": int, "verify_errors": int},
    "parse_s": NUM, "wall_s": NUM,
}
CSV_COLUMNS = ("trace,formats,policy,capacity_blocks,capacity_unlimited,nvme_capacity_blocks,"
               "ttl_s,block_bytes,requests,sessions,total_blocks,hit_blocks,hit_ratio,"
               "hit_ratio_unlimited,dram_hits,nvme_hits,expiry_reprefills,"
               "expiry_reprefill_blocks,expiry_reprefills_per_session,expiry_baseline,"
               "dram_evictions,nvme_evictions,dram_expirations,nvme_expirations,put_rejected,"
               "verify_errors,wall_s").split(",")


def fail(msg):
    FAILURES.append(msg)
    print("FAIL:", msg)


def run(args, want_rc=0):
    p = subprocess.run([BENCH] + args, capture_output=True, text=True, timeout=100)
    if p.returncode != want_rc:
        fail(f"{args}: exit {p.returncode}, wanted {want_rc}; stderr: {p.stderr.strip()}")
    return p


def check_fields(obj, spec, where):
    for name, kind in spec.items():
        if name not in obj:
            fail(f"{where}: no field '{name}'")
            continue
        v = obj[name]
        if isinstance(kind, dict):
            check_fields(v, kind, f"{where}.{name}") if isinstance(v, dict) else \
                fail(f"{where}.{name}: not an object")
            continue
        ok = isinstance(v, bool) if kind is bool else \
            not isinstance(v, bool) and isinstance(v, kind)
        if not ok:
            fail(f"{where}.{name}: {v!r} is not {kind}")


def replay_json(args):
    p = run(["replay"] + args + ["--json"])
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        fail(f"replay {args}: stdout is not JSON: {e}: {p.stdout[:200]!r}")
        return None


# ------------------------------------------------------------- the traces

def make_mooncake(path, rng):
    """300 requests of 25 conversations over a shared 3-block prefix; each
    turn appends 1-3 blocks; 0-20 s between requests. Ids are prefix ids:
    one id per (conversation, position)."""
    next_id = 3
    convs = [[] for _ in range(25)]
    t_ms = 0
    reqs = []
    with open(path, "w") as f:
        for _ in range(300):
            c = rng.randrange(25)
            for _ in range(rng.randint(1, 3)):
                convs[c].append(next_id)
                next_id += 1
            ids = [0, 1, 2] + convs[c]
            if rng.random() < 0.2:   # a request that branches off an older turn
                ids = ids[:rng.randint(1, len(ids))]
            f.write(json.dumps({"timestamp": t_ms, "input_length": 512 * len(ids) - 100,
                                "output_length": 10, "hash_ids": ids}) + "\n")
            reqs.append((t_ms * 1000000, 0, ids))  # ns, as the store's clock
            t_ms += rng.randint(0, 20000)
    return reqs


def make_weka(path, rng, subagent):
    """A session of 30 requests (ids from 1, as in every file: hash_id_scope
    local), think times of 1-200 s, and optionally a subagent (its own ids
    and clock, starting at its `t`)."""
    def session(n, t0):
        ids, out, t = [], [], t0
        for _ in range(n):
            ids = ids + list(range(len(ids) + 1, len(ids) + 1 + rng.randint(1, 4)))
            out.append({"t": round(t, 3), "type": "n", "in": 64 * len(ids), "out": 5,
                        "hash_ids": list(ids), "api_time": 1.0, "think_time": 0.0})
            t += rng.uniform(1, 200)
        return out
    reqs = session(30, 0.0)
    if subagent:
        sub = {"t": 123.456, "type": "subagent", "agent_id": "x", "requests": session(10, 0.0)}
        reqs.insert(5, sub)
    with open(path, "w") as f:
        json.dump({"id": os.path.basename(path), "block_size": 64, "hash_id_scope": "local",
                   "tool_tokens": 1, "system_tokens": 1, "requests": reqs}, f)
    return reqs


def ns(seconds):
    return int(round(seconds * 1e9))


def weka_streams(docs):
    """The documented order: streams in file order, a session before its
    subagents; times absolute (subagent t + request t); merged by time, then
    stream, then file order."""
    out, stream = [], 0
    for reqs in docs:
        own = stream
        stream += 1
        for r in reqs:
            if r["type"] == "subagent":
                s = stream
                stream += 1
                for q in r["requests"]:
                    out.append((ns(r["t"]) + ns(q["t"]), s, len(out), q["hash_ids"]))
            else:
                out.append((ns(r["t"]), own, len(out), r["hash_ids"]))
    out.sort(key=lambda x: (x[0], x[1], x[2]))
    return [(t, s, ids) for t, s, _, ids in out]


def reference(reqs, cap, ttl):
    """LRU of (stream, id) with an idle TTL (seconds; times in ns): per
    request, expire (idle > ttl), h = leading ids held, ids 0..h-1 used, ids
    h..n-1 added in order (a held one left alone), the least recently used
    leaving when full."""
    held = {}      # key -> last use; insertion order of a dict = LRU order
    hits = total = 0
    ttl_ns = ns(ttl) if ttl else 0
    for t, s, ids in reqs:
        if ttl:
            for k in [k for k, u in held.items() if t - u > ttl_ns]:
                del held[k]
        keys = [(s, i) for i in ids]
        h = 0
        while h < len(keys) and keys[h] in held:
            h += 1
        for k in keys[:h]:
            del held[k]
            held[k] = t
        for k in keys[h:]:
            if k in held:
                continue
            if cap and len(held) == cap:
                del held[next(iter(held))]
            held[k] = t
        hits += h
        total += len(keys)
    return hits, total


# ------------------------------------------------------------------ tests

def test_replay(d):
    rng = random.Random(7)
    moon = os.path.join(d, "small.jsonl")
    mreqs = make_mooncake(moon, rng)
    for cap, ttl in ((40, None), (150, None), (150, 30), (0, 60)):
        args = ["--trace", moon, "--capacity-blocks", str(cap), "--policy", "lru"]
        if ttl:
            args += ["--ttl", str(ttl)]
        o = replay_json(args)
        if o is None:
            continue
        check_fields(o, REPLAY, "replay")
        want_hits, want_total = reference(mreqs, cap, ttl)
        if (o.get("hit_blocks"), o.get("total_blocks")) != (want_hits, want_total):
            fail(f"mooncake cap {cap} ttl {ttl}: {o.get('hit_blocks')}/{o.get('total_blocks')}"
                 f" hits, reference {want_hits}/{want_total}")
        if o.get("dram_hits") != o.get("hit_blocks") or o.get("nvme_hits") != 0:
            fail(f"mooncake cap {cap}: per-tier hits {o.get('dram_hits')}+{o.get('nvme_hits')}")
        if o.get("requests") != 300 or o["config"]["traces"][0].get("format") != "mooncake":
            fail("mooncake: requests or format wrong")
        if ttl and cap == 0:
            seen_hits, _ = reference(mreqs, 0, None)
            lost = seen_hits - want_hits
            if o.get("expiry_baseline") != "seen" or o.get("expiry_reprefill_blocks") != lost:
                fail(f"unlimited + ttl: expiry {o.get('expiry_reprefill_blocks')} blocks via "
                     f"{o.get('expiry_baseline')}, reference {lost} blocks")

    # One block per kvt_put: LRU can't tell (a request's new blocks are never its victims).
    o = replay_json(["--trace", moon, "--capacity-blocks", "40", "--policy", "lru",
                     "--put-batch", "1"])
    if o is not None and o.get("hit_blocks") != reference(mreqs, 40, None)[0]:
        fail(f"--put-batch 1: {o.get('hit_blocks')} hits, reference {reference(mreqs, 40, None)[0]}")

    # Two WEKA sessions with overlapping ids (namespaces), one subagent.
    w1, w2 = os.path.join(d, "w", "trace_a.json"), os.path.join(d, "w", "trace_b.json")
    os.makedirs(os.path.dirname(w1))
    docs = [make_weka(w1, rng, True), make_weka(w2, rng, False)]
    wreqs = weka_streams(docs)
    for cap, ttl in ((0, None), (0, 100), (60, None)):
        args = ["--trace", os.path.dirname(w1), "--capacity-blocks", str(cap), "--policy", "lru"]
        if ttl:
            args += ["--ttl", str(ttl)]
        o = replay_json(args)
        if o is None:
            continue
        want_hits, want_total = reference(wreqs, cap, ttl)
        if (o.get("hit_blocks"), o.get("total_blocks")) != (want_hits, want_total):
            fail(f"weka cap {cap} ttl {ttl}: {o.get('hit_blocks')}/{o.get('total_blocks')} hits,"
                 f" reference {want_hits}/{want_total}")
        if (o.get("sessions"), o.get("streams"), o.get("requests")) != (2, 3, 70):
            fail(f"weka: sessions/streams/requests {o.get('sessions')}/{o.get('streams')}/"
                 f"{o.get('requests')}, wanted 2/3/70")
        if ttl and o.get("expiry_reprefills", 0) <= 0:
            fail("weka with a 100 s TTL: no re-prefills due to expiry counted")

    # Two tiers: DRAM 20 + NVMe 200 blocks; the file goes away at exit.
    nd = os.path.join(d, "nvme")
    os.makedirs(nd)
    nvme = build_has.nvme_tier(BENCH)
    if not nvme:
        print("skip: the two-tier replay (libkvtier built without the NVMe tier)")
    o = None if not nvme else replay_json(
        ["--trace", moon, "--capacity-blocks", "20", "--nvme-capacity-blocks", "200",
         "--policy", "lru", "--dir", nd])
    if o is not None:
        check_fields(o, REPLAY, "replay nvme")
        if o.get("dram_hits", 0) + o.get("nvme_hits", 0) != o.get("hit_blocks"):
            fail(f"nvme: dram {o.get('dram_hits')} + nvme {o.get('nvme_hits')} hits != "
                 f"{o.get('hit_blocks')}")
        if o.get("nvme_hits", 0) <= 0 or o["store"].get("verify_errors") != 0:
            fail("nvme: no NVMe hits, or wrong bytes")
        if os.listdir(nd):
            fail(f"nvme: files left in --dir: {os.listdir(nd)}")

    # The human form.
    p = run(["replay", "--trace", moon, "--capacity-blocks", "50"])
    for word in ("hit", "from DRAM", "unlimited store", "scaled"):
        if word not in p.stdout:
            fail(f"replay text lacks '{word}'")
    return moon, mreqs


def test_shipped():
    """The subset of the real traces in tests/data/traces (always present):
    the first 1,000 Mooncake conversation requests and four WEKA sessions,
    replayed by the bench and by the reference above."""
    sub = os.environ.get("KVT_TRACES_SUBSET") or os.path.join(
        os.environ.get("KVT_SOURCE_ROOT", "."), "tests", "data", "traces")
    moon = os.path.join(sub, "conversation_head1000.jsonl")
    wdir = os.path.join(sub, "weka")
    if not os.path.isfile(moon) or not os.path.isdir(wdir):
        fail(f"{sub}: the shipped trace subset is missing (it is part of the repository)")
        return
    with open(moon) as f:
        mreqs = [(r["timestamp"] * 1000000, 0, r["hash_ids"]) for r in map(json.loads, f)]
    for cap, ttl in ((1000, None), (4000, None), (1000, 30)):
        args = ["--trace", moon, "--capacity-blocks", str(cap), "--policy", "lru"]
        if ttl:
            args += ["--ttl", str(ttl)]
        o = replay_json(args)
        want = reference(mreqs, cap, ttl)
        if o is not None and (o.get("hit_blocks"), o.get("total_blocks")) != want:
            fail(f"shipped conversation cap {cap} ttl {ttl}: {o.get('hit_blocks')}/"
                 f"{o.get('total_blocks')} hits, reference {want[0]}/{want[1]}")
    docs = []
    for name in sorted(os.listdir(wdir)):
        with open(os.path.join(wdir, name)) as f:
            docs.append(json.load(f)["requests"])
    wreqs = weka_streams(docs)
    for cap, ttl in ((0, None), (2000, None), (0, 60)):
        args = ["--trace", wdir, "--capacity-blocks", str(cap), "--policy", "lru"]
        if ttl:
            args += ["--ttl", str(ttl)]
        o = replay_json(args)
        want = reference(wreqs, cap, ttl)
        if o is not None and (o.get("hit_blocks"), o.get("total_blocks")) != want:
            fail(f"shipped weka cap {cap} ttl {ttl}: {o.get('hit_blocks')}/"
                 f"{o.get('total_blocks')} hits, reference {want[0]}/{want[1]}")
        if o is not None and (o.get("sessions"), o.get("requests")) != (len(docs), len(wreqs)):
            fail(f"shipped weka: {o.get('sessions')} sessions, {o.get('requests')} requests, "
                 f"wanted {len(docs)}, {len(wreqs)}")


def test_sweep(d, moon, mreqs):
    out = os.path.join(d, "sweep.csv")
    args = ["sweep", "--trace", moon, "--policy", "lru,prefix", "--capacity-blocks", "40,150",
            "--ttl", "30,inf", "--csv", out, "--label", "small"]
    run(args)
    try:
        with open(out, newline="") as f:
            rdr = csv.DictReader(f)
            cols, rows = rdr.fieldnames, list(rdr)
    except OSError as e:
        fail(f"sweep: no CSV: {e}")
        return None
    if cols != CSV_COLUMNS:
        fail(f"sweep: CSV columns {cols}")
        return None
    if len(rows) != 8:
        fail(f"sweep: {len(rows)} rows, wanted 2 policies x 2 capacities x 2 TTLs = 8")
    for r in rows:
        if r["policy"] != "lru":
            continue
        ttl = None if r["ttl_s"] == "inf" else float(r["ttl_s"])
        want, total = reference(mreqs, int(r["capacity_blocks"]), ttl)
        if (int(r["hit_blocks"]), int(r["total_blocks"])) != (want, total):
            fail(f"sweep lru {r['capacity_blocks']} ttl {r['ttl_s']}: {r['hit_blocks']}, "
                 f"reference {want}")
        if not math.isclose(float(r["hit_ratio"]), want / total, abs_tol=1e-6):
            fail("sweep: hit_ratio is not hit_blocks / total_blocks")
    # The TTL rows' expiry counts use the no-TTL row of the same point.
    for r in rows:
        if r["ttl_s"] != "inf" and r["expiry_baseline"] != "no-ttl run":
            fail(f"sweep: baseline {r['expiry_baseline']!r} for a bounded store")
    p = run(["sweep", "--trace", moon, "--policy", "lru", "--capacity-blocks", "40",
             "--json"])
    try:
        o = json.loads(p.stdout)
        if len(o.get("results", [])) != 1 or o.get("bench") != "sweep":
            fail("sweep --json: wrong results")
    except json.JSONDecodeError:
        fail("sweep --json: not JSON")
    return out


def test_plot(d, csv_path):
    if not PLOT or not csv_path:
        return
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("skip plot.py: matplotlib is not installed")
        return
    pd = os.path.join(d, "plots")
    p = subprocess.run([sys.executable, PLOT, csv_path, "--out", pd], capture_output=True,
                       text=True, timeout=100)
    if p.returncode != 0:
        fail(f"plot.py: exit {p.returncode}: {p.stderr.strip()}")
        return
    for name in ("small-capacity.png", "small-ttl.png"):
        f = os.path.join(pd, name)
        if not os.path.exists(f) or os.path.getsize(f) < 1000:
            fail(f"plot.py: no {name}")


def test_errors(d):
    bad = os.path.join(d, "bad.jsonl")
    with open(bad, "w") as f:
        f.write('{"timestamp": 0, "hash_ids": [1, 2, 3]}\n{"timestamp": 5, "hash_ids": [1, -2]}\n')
    neither = os.path.join(d, "neither.json")
    with open(neither, "w") as f:
        f.write('{"foo": 1}')
    good = os.path.join(d, "ok.jsonl")
    with open(good, "w") as f:
        f.write('{"timestamp": 0, "hash_ids": [1]}\n')
    for args, word in ((["replay", "--trace", os.path.join(d, "nope.jsonl"),
                         "--capacity-blocks", "10"], "nope.jsonl"),
                       (["replay", "--trace", bad, "--capacity-blocks", "10"], "line 2"),
                       (["replay", "--trace", neither, "--capacity-blocks", "10"], "neither"),
                       (["replay", "--capacity-blocks", "10"], "--trace"),
                       (["replay", "--trace", good], "--capacity-blocks"),
                       (["replay", "--trace", good, "--capacity-blocks", "10", "--policy", "xyz"],
                        "xyz"),
                       (["replay", "--trace", good, "--capacity-blocks", "10", "--ttl", "soon"],
                        "--ttl"),
                       (["replay", "--trace", good, "--capacity-blocks", "10", "--tiers", "hbm"],
                        "--tiers"),
                       (["replay", "--trace", good, "--capacity-blocks", "10", "--tiers",
                         "dram,nvme"], "nvme"),
                       (["sweep", "--trace", good, "--policy", "lru,xyz"], "xyz"),
                       (["sweep", "--trace", good, "--capacity-blocks", "1k0"], "1k0")):
        p = run(args, want_rc=2)
        if word not in p.stderr:
            fail(f"{args}: stderr lacks '{word}': {p.stderr.strip()!r}")
        if p.stdout.strip():
            fail(f"{args}: wrote to stdout on an error")
    for args in (["replay", "--help"], ["sweep", "--help"]):
        if "usage" not in run(args).stdout:
            fail(f"{args}: no usage text")


def main():
    with tempfile.TemporaryDirectory(prefix="kvt-replay-") as d:
        before = len(FAILURES)
        moon, mreqs = test_replay(d)
        print(("ok  " if len(FAILURES) == before else "FAIL") + " test_replay")
        before = len(FAILURES)
        test_shipped()
        print(("ok  " if len(FAILURES) == before else "FAIL") + " test_shipped")
        before = len(FAILURES)
        csv_path = test_sweep(d, moon, mreqs)
        print(("ok  " if len(FAILURES) == before else "FAIL") + " test_sweep")
        before = len(FAILURES)
        test_plot(d, csv_path)
        print(("ok  " if len(FAILURES) == before else "FAIL") + " test_plot")
        before = len(FAILURES)
        test_errors(d)
        print(("ok  " if len(FAILURES) == before else "FAIL") + " test_errors")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
