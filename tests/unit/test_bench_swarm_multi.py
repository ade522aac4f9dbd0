#!/usr/bin/env python3
# test_bench_swarm_multi.py — kvtier-bench swarm --procs and --nodes at tiny sizes: the JSON and CSV schema, shared >= private and DRAM+cluster >= DRAM-only by construction, nothing left behind.
"""Usage: test_bench_swarm_multi.py PATH/TO/kvtier-bench [PATH/TO/plot.py]

Seconds, not a benchmark. The workloads are built so the order must hold:
with a DRAM big enough that nothing is evicted, the shared store hits every
block any earlier request offered (it never forgets), while N private stores
miss the blocks a session left on another process; with a tiny DRAM per
node, the cluster tier keeps what every node put.
"""
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time

import build_has

BENCH = sys.argv[1] if len(sys.argv) > 1 else "kvtier-bench"
PLOT = sys.argv[2] if len(sys.argv) > 2 else None
FAILURES = []
NUM = (int, float)
HEADER = {"bench": str, "schema": int, "kvtier_version": str, "date": str, "cpu_model": str,
          "cpus": int, "loadavg_1m": NUM, "buildtype": str, "config": dict, "rows": list}
CONFIG = {"mode": str, "split": str, "model": str, "agents": int, "duration_s": NUM,
          "seed": int, "block_tokens": int, "block_bytes": int, "dram_bytes": int,
          "nvme_bytes": int, "epoch_s": NUM, "routing": str, "profile": str,
          "gpus_per_node": int, "slo_ms": NUM, "small_defaults": str}
ROW = {"n": int, "store": str, "agents": int, "requests": int, "blocks": int,
       "hit_blocks": int, "seen_blocks": int,
       "hit_ratio": NUM, "seen_ratio": NUM, "hit_dram": int, "hit_nvme": int,
       "hit_cluster": int, "ttft_p50_ms": NUM, "ttft_p95_ms": NUM, "within_slo": NUM,
       "goodput_rps": NUM, "reprefills": int, "verify_errors": int, "get_short": int,
       "epochs": int, "dram_bytes_each": int, "nvme_bytes_each": int, "wall_s": NUM}
CSV_COLS = ["mode", "store", "n", "agents", "knee_agents", "duration_s", "requests", "blocks",
            "hit_ratio", "seen_ratio", "hit_dram", "hit_nvme", "hit_cluster", "ttft_p50_ms",
            "ttft_p95_ms", "within_slo", "goodput_rps", "reprefills", "verify_errors",
            "get_short", "epochs", "dram_bytes_each", "nvme_bytes_each", "wall_s"]
SMALL = ["--agents", "8", "--duration", "4m", "--seed", "3"]


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what)


def run(args, tmp, want=0):
    env = dict(os.environ, TMPDIR=tmp)
    p = subprocess.run([BENCH, "swarm", "--dir", tmp] + args, env=env, capture_output=True,
                       text=True, timeout=90)
    check(p.returncode == want,
          f"swarm {' '.join(args)}: exit {p.returncode}, wanted {want}: {p.stderr[-600:]}")
    return p


def types(obj, schema, where):
    for k, t in schema.items():
        check(k in obj, f"{where}: no '{k}'")
        if k in obj:
            check(isinstance(obj[k], t) and not isinstance(obj[k], bool),
                  f"{where}.{k}: {type(obj[k]).__name__}")


def rows_of(p, where):
    try:
        j = json.loads(p.stdout)
    except ValueError:
        check(False, f"{where}: not JSON: {p.stdout[:200]}")
        return None, {}
    types(j, HEADER, where)
    types(j.get("config", {}), CONFIG, where + ".config")
    out = {}
    for r in j.get("rows", []):
        types(r, ROW, f"{where}.rows[{r.get('n')},{r.get('store')}]")
        check(r.get("verify_errors") == 0, f"{where}: wrong bytes {r}")
        check(0 <= r["hit_blocks"] <= r["seen_blocks"] <= r["blocks"],
              f"{where}: hits above what was seen: {r}")
        check(r["hit_dram"] + r["hit_nvme"] + r["hit_cluster"] == r["hit_blocks"],
              f"{where}: tiers do not add up: {r}")
        check(r["requests"] > 0, f"{where}: no requests: {r}")
        out[(r["n"], r["store"])] = r
    return j, out


def left_behind(tmp, keep=()):
    return [f for f in os.listdir(tmp) if f not in keep]


def test_procs():
    """Nothing evicted: shared hits all it saw; private stores miss across processes."""
    with tempfile.TemporaryDirectory(prefix="kvt-smp-") as tmp:
        # --epoch 0: one request at a time in arrival order, so the served
        # store sees every earlier put (with epochs, requests of one epoch on
        # two processes race, and "hits exactly what was seen" would not hold).
        p = run(["--procs-list", "1,2,4", "--dram-bytes", "256M", "--epoch", "0", "--json"]
                + SMALL, tmp)
        j, rows = rows_of(p, "procs")
        if not j:
            return
        check(j["bench"] == "swarm-procs" and j["config"]["split"] == "procs", "procs: names")
        check(sorted(rows) == [(n, s) for n in (1, 2, 4) for s in ("private", "shared")],
              f"procs: rows {sorted(rows)}")
        for n in (1, 2, 4):
            sh, pr = rows.get((n, "shared")), rows.get((n, "private"))
            if not sh or not pr:
                continue
            check(sh["requests"] == pr["requests"] and sh["blocks"] == pr["blocks"],
                  f"procs N={n}: the same workload")
            check(sh["hit_blocks"] == sh["seen_blocks"],
                  f"procs N={n}: shared forgot blocks: {sh['hit_blocks']} < {sh['seen_blocks']}")
            check(sh["hit_blocks"] >= pr["hit_blocks"], f"procs N={n}: shared < private")
            check(sh["reprefills"] == 0, f"procs N={n}: shared re-prefilled")
            check(sh["epochs"] == sh["requests"], f"procs N={n}: --epoch 0 is a step per request")
            check(sh["dram_bytes_each"] == 256 << 20 and
                  pr["dram_bytes_each"] == (256 << 20) // n, f"procs N={n}: capacities")
        if (1, "shared") in rows and (1, "private") in rows:
            check(rows[(1, "shared")]["hit_blocks"] == rows[(1, "private")]["hit_blocks"],
                  "procs N=1: one process, one store: shared and private differ")
        if (2, "shared") in rows and (2, "private") in rows:
            check(rows[(2, "shared")]["hit_blocks"] > rows[(2, "private")]["hit_blocks"],
                  "procs N=2: sessions revisit on the other process, yet private hit as much")
        check(not left_behind(tmp), f"procs: left behind {left_behind(tmp)}")


def test_nodes():
    """A tiny DRAM per node: the cluster tier keeps what any node put."""
    with tempfile.TemporaryDirectory(prefix="kvt-smn-") as tmp:
        cl = os.path.join(tmp, "cluster")
        os.mkdir(cl)
        # The cluster tier writes a file per block: few, small blocks keep this short.
        p = run(["--nodes-list", "1,2", "--cluster-dir", cl, "--dram-bytes", "1M",
                 "--nvme-bytes", "2M", "--block-bytes", "1K", "--epoch", "0", "--json", "--agents", "4",
                 "--duration", "3m", "--seed", "3"], tmp)
        j, rows = rows_of(p, "nodes")
        if not j:
            return
        check(j["bench"] == "swarm-nodes" and j["config"]["split"] == "nodes", "nodes: names")
        stores = ("dram", "dram+cluster", "dram+nvme")
        check(sorted(rows) == [(n, s) for n in (1, 2) for s in stores], f"nodes: rows {sorted(rows)}")
        for n in (1, 2):
            d, c, v = (rows.get((n, s)) for s in ("dram", "dram+cluster", "dram+nvme"))
            if not d or not c or not v:
                continue
            check(c["hit_blocks"] >= d["hit_blocks"], f"nodes N={n}: DRAM+cluster < DRAM only")
            check(d["hit_nvme"] == 0 and d["hit_cluster"] == 0, f"nodes N={n}: dram-only tiers")
            check(v["hit_cluster"] == 0 and c["hit_nvme"] == 0, f"nodes N={n}: tiers mixed up")
            check(v["nvme_bytes_each"] == 2 << 20 and d["nvme_bytes_each"] == 0,
                  f"nodes N={n}: NVMe capacities")
        if (2, "dram+cluster") in rows and (2, "dram") in rows:
            c, d = rows[(2, "dram+cluster")], rows[(2, "dram")]
            check(c["hit_cluster"] > 0, "nodes N=2: no cluster hits")
            check(c["hit_blocks"] > d["hit_blocks"], "nodes N=2: the cluster tier added no hits")
        check(not left_behind(cl), f"nodes: the cluster run directory stayed: {left_behind(cl)}")
        check(not left_behind(tmp, ("cluster",)), f"nodes: left behind {left_behind(tmp)}")


def test_nodes_ramp():
    """The ramp reuses the knee search: each row is the knee's run (or the first step's)."""
    with tempfile.TemporaryDirectory(prefix="kvt-smr-") as tmp:
        cl = os.path.join(tmp, "cluster")
        os.mkdir(cl)
        p = run(["--nodes", "2", "--mode", "ramp", "--agents", "6", "--ramp-start", "2",
                 "--ramp-step", "2m", "--ramp-warm", "30", "--block-bytes", "1K",
                 "--dram-bytes", "1M", "--nvme-bytes", "2M", "--cluster-dir", cl,
                 "--json"], tmp)
        j, rows = rows_of(p, "ramp")
        if not j:
            return
        check(j["config"]["mode"] == "ramp", "ramp: config.mode")
        check(len(rows) == 3, f"ramp: rows {sorted(rows)}")
        for (n, s), r in rows.items():
            for k in ("knee_agents", "ramp_steps", "judged", "judged_p95_ms"):
                check(k in r, f"ramp {s}: no '{k}'")
            if "knee_agents" not in r:
                continue
            check(1 <= r["ramp_steps"] <= 16, f"ramp {s}: steps {r['ramp_steps']}")
            check(r["knee_agents"] <= 6, f"ramp {s}: knee above --agents")
            if r["knee_agents"]:
                check(r["agents"] == r["knee_agents"], f"ramp {s}: the row is not the knee's run")
                check(r["judged_p95_ms"] <= j["config"]["slo_ms"], f"ramp {s}: knee missed the SLO")


def test_csv_and_plot():
    with tempfile.TemporaryDirectory(prefix="kvt-smc-") as tmp:
        p = run(["--procs", "2", "--csv"] + SMALL, tmp)
        r = list(csv.reader(io.StringIO(p.stdout)))
        check(r and r[0] == CSV_COLS, f"csv: columns {r[:1]}")
        check(len(r) == 3 and {x[1] for x in r[1:]} == {"shared", "private"}, f"csv: rows {r}")
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        p = run(["--procs-list", "1,2", "--out", out, "--json"] + SMALL, tmp)
        check(os.path.exists(os.path.join(out, "swarm-procs.csv")), "--out: no swarm-procs.csv")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("  (no matplotlib: the charts are not checked)")
            return
        for k in ("hit", "goodput"):
            f = os.path.join(out, f"swarm-procs-{k}.png")
            check(os.path.exists(f) and os.path.getsize(f) > 1000, f"--out: no {f}")


def test_usage_errors():
    with tempfile.TemporaryDirectory(prefix="kvt-smu-") as tmp:
        for args in (["--procs", "0"], ["--procs", "2", "--nodes", "2"], ["--nodes", "2"],
                     ["--procs-list", "1,x"], ["--procs", "2", "--procs-list", "1,2"],
                     ["--procs", "2", "--epoch", "x"], ["--procs", "2", "--mode", "ramp"],
                     ["--nodes", "2", "--cluster-dir", os.path.join(tmp, "missing")]):
            p = run(args + SMALL, tmp, want=2)
            check("Try 'kvtier-bench swarm --help'" in p.stderr or "cannot make" in p.stderr,
                  f"{args}: no hint: {p.stderr[-200:]}")


def main():
    if not build_has.nvme_tier(BENCH):
        print("skip: libkvtier was built without io_uring (the NVMe and cluster tiers)")
        return 77
    for t in (test_usage_errors, test_procs, test_nodes, test_nodes_ramp, test_csv_and_plot):
        before = len(FAILURES)
        t0 = time.time()
        t()
        print(("ok  " if len(FAILURES) == before else "FAIL") +
              f" {t.__name__} ({time.time() - t0:.1f} s)")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
