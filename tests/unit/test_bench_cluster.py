#!/usr/bin/env python3
# test_bench_cluster.py — `kvtier-bench micro --tier cluster` at a tiny size: exit codes, the JSON fields docs/bench.md lists, the CSV, nothing left in the directory.
"""Usage: test_bench_cluster.py PATH/TO/kvtier-bench

A smoke test, not a benchmark: a temporary directory in the build tree (a real
filesystem, so O_DIRECT is probed there), one block size, one run, short
lookup prefixes. Exits 77 (skipped) where the cluster tier is not built."""
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

BENCH = sys.argv[1] if len(sys.argv) > 1 else "kvtier-bench"

CONFIG = {"dir": str, "fs_type": str, "direct_io": bool, "rename_noreplace": bool,
          "queue_depth": int, "total_bytes": int, "runs": int, "anchor": bool,
          "lookup_block_bytes": int}
POSITIVE = ("put_gb_per_s", "get_gb_per_s", "raw_put_gb_per_s", "raw_get_gb_per_s",
            "put_vs_raw", "get_vs_raw", "anchor_put_cache_gb_per_s", "anchor_put_gb_per_s",
            "anchor_get_cold_gb_per_s", "anchor_get_warm_gb_per_s", "put_vs_anchor",
            "get_vs_anchor", "get_vs_anchor_warm", "cpu_put_gb_per_s", "cpu_get_gb_per_s",
            "put_vs_raw_serial", "get_vs_raw_serial")
SPREADS = (("put_vs_raw", "put_vs_raw_p10", "put_vs_raw_p90"),
           ("get_vs_raw", "get_vs_raw_p10", "get_vs_raw_p90"),
           ("get_vs_anchor", "get_vs_anchor_p10", "get_vs_anchor_p90"))


def run(args):
    return subprocess.run([BENCH] + args, capture_output=True, text=True, timeout=100)


def number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def main():
    root = os.environ.get("KVT_BUILD_ROOT", os.getcwd())
    d = tempfile.mkdtemp(prefix="bench-cluster-", dir=root)
    bad = []
    try:
        base = ["micro", "--tier", "cluster", "--dir", d, "--block-bytes", "256K",
                "--total-bytes", "1M", "--runs", "2", "--qd", "4", "--anchor-threads", "2",
                "--lookup-prefixes", "4,10", "--lookup-reps", "3"]
        p = run(base + ["--json"])
        if p.returncode == 1 and any(w in p.stderr for w in ("no tier kind", "built without")):
            print("skip:", p.stderr.strip().splitlines()[-1])
            return 77
        if p.returncode != 0:
            print(f"FAIL {base}: exit {p.returncode}; stderr: {p.stderr.strip()}")
            return 1
        o = json.loads(p.stdout)
        if o.get("bench") != "micro" or o.get("tier") != "cluster":
            bad.append(f"bench/tier: {o.get('bench')} {o.get('tier')}")
        if not number(o.get("loadavg_1m")):
            bad.append(f"loadavg_1m = {o.get('loadavg_1m')}")
        cfg = o.get("config", {})
        for k, t in CONFIG.items():
            if not isinstance(cfg.get(k), t):
                bad.append(f"config.{k} = {cfg.get(k)!r}, wanted {t.__name__}")
        if cfg.get("dir") != d or cfg.get("queue_depth") != 4 or cfg.get("runs") != 2:
            bad.append(f"config echoes the flags wrongly: {cfg}")
        rows = o.get("rows", [])
        if len(rows) != 1:
            bad.append(f"{len(rows)} rows, wanted 1")
        for r in rows:
            if r.get("block_bytes") != 256 << 10 or r.get("blocks") != 4 or r.get("pairs") != 2:
                bad.append(f"row sizes: {r}")
            if r.get("file_bytes") != 4096 + (256 << 10):
                bad.append(f"file_bytes = {r.get('file_bytes')}")
            for f in POSITIVE:
                if not number(r.get(f)) or not r[f] > 0:
                    bad.append(f"rows[0].{f} = {r.get(f)}")
            for mid, lo, hi in SPREADS:
                if all(number(r.get(k)) for k in (mid, lo, hi)) and not r[lo] <= r[mid] <= r[hi]:
                    bad.append(f"{mid} outside its spread: {r[lo]} {r[mid]} {r[hi]}")
            if r.get("corrupt") != 0 or r.get("publish_races_lost") != 0:
                bad.append(f"corrupt/races: {r.get('corrupt')} {r.get('publish_races_lost')}")
        lk = o.get("lookup", [])
        want = [(4, 4, False), (4, 2, True), (10, 10, False), (10, 5, True)]
        got = [(r.get("prefix"), r.get("held"), r.get("half_held")) for r in lk]
        if got != want:
            bad.append(f"lookup rows {got}, wanted {want}")
        for r in lk:
            # All held: every key asked. Half held: the held keys and at least
            # the first miss; none begun after it, so never more than the prefix.
            n, held, st = r.get("prefix"), r.get("held"), r.get("statx_per_lookup")
            ok_statx = st == n if held == n else (isinstance(st, int) and held < st <= n)
            if r.get("lookups") != 3 or not ok_statx:
                bad.append(f"lookup counts: {r}")
            if not (number(r.get("p50_us")) and number(r.get("p99_us"))
                    and 0 < r["p50_us"] <= r["p99_us"]):
                bad.append(f"lookup latency: {r}")
        if os.listdir(d):
            bad.append(f"left in the directory: {os.listdir(d)}")

        # CSV: the throughput rows, a blank line, the lookup rows.
        p = run(base + ["--csv", "--no-anchor"])
        parts = p.stdout.split("\n\n")
        if p.returncode != 0 or len(parts) != 2:
            bad.append(f"--csv: exit {p.returncode}, {len(parts)} sections: {p.stdout!r}")
        else:
            head, *lines = parts[0].strip().splitlines()
            if not head.startswith("block_bytes,") or "put_vs_raw" not in head or len(lines) != 1:
                bad.append(f"--csv throughput: {parts[0]!r}")
            lhead, *llines = parts[1].strip().splitlines()
            if not lhead.startswith("prefix,") or len(llines) != 4:
                bad.append(f"--csv lookup: {parts[1]!r}")

        # Text, and refused flags.
        p = run(base + ["--no-lookup"])
        if p.returncode != 0 or "put/raw" not in p.stdout or "O_DIRECT" not in p.stdout:
            bad.append(f"text: exit {p.returncode}: {p.stdout!r} {p.stderr!r}")
        for extra in (["--runs", "0"], ["--block-bytes", "1000"], ["--qd", "0"],
                      ["--json", "--csv"]):
            p = run(base + extra)
            if p.returncode != 2:
                bad.append(f"{extra}: exit {p.returncode}, wanted 2 (usage)")
        p = run(["micro", "--tier", "cluster", "--dir", os.path.join(d, "missing")])
        if p.returncode != 2:
            bad.append(f"missing --dir: exit {p.returncode}, wanted 2")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    for b in bad:
        print("FAIL", b)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
