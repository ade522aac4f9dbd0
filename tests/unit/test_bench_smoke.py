#!/usr/bin/env python3
# test_bench_smoke.py — runs every kvtier-bench subcommand at tiny sizes and checks the JSON fields docs/bench.md promises.
"""Usage: test_bench_smoke.py PATH/TO/kvtier-bench

A smoke test, not a benchmark: sizes are tiny so it takes seconds, and the
numbers are only checked for being numbers in a sane range. What it pins
down is the interface: exit codes, one parseable JSON object on stdout, and
the documented field names (a rename must show up here and in the docs).
"""
import json
import math
import subprocess
import sys

BENCH = sys.argv[1] if len(sys.argv) > 1 else "kvtier-bench"
FAILURES = []

HEADER = {"bench": str, "schema": int, "kvtier_version": str, "date": str,
          "cpu_model": str, "cpus": int, "loadavg_1m": (int, float), "buildtype": str}
NUM = (int, float)
COPY_OP = {"calls": int, "blocks": int, "bytes": int, "seconds": NUM, "gb_per_s": NUM,
           "memcpy_gb_per_s": NUM, "ratio": NUM, "ratio_p10": NUM, "ratio_p90": NUM,
           "p50_us": NUM, "p99_us": NUM}
MIXED = {
    "config": {"block_bytes": int, "block_tokens": int, "dram_bytes": int, "copy_threads": int,
               "policy": str, "requests": int, "sessions": int, "system_tokens": int,
               "max_context_tokens": int, "lease_ms": int, "seed": int, "quick": bool},
    "requests": int, "wall_s": NUM, "blocks_requested": int, "blocks_hit": int,
    "hit_ratio": NUM, "hit_ratio_unbounded": NUM,
    "put": COPY_OP, "get": COPY_OP,
    "lookup": {"calls": int, "blocks": int, "seconds": NUM, "p50_us": NUM, "p99_us": NUM,
               "keys": int, "lookups_per_s": NUM, "keys_per_s": NUM},
    "hash": {"tokens": int, "seconds": NUM, "tokens_per_s": NUM},
    "store": {"evictions": int, "put_rejected": int, "copy_batches_pooled": int,
              "copy_batches_busy": int, "thp_bytes": int},
}
MICRO_ROW = {"block_bytes": int, "copy_threads": int, "blocks_per_call": int,
             "calls_per_run": int, "run_bytes": int,
             "put_gb_per_s": NUM, "put_memcpy_gb_per_s": NUM, "put_ratio": NUM,
             "put_ratio_p10": NUM, "put_ratio_p90": NUM,
             "get_gb_per_s": NUM, "get_memcpy_gb_per_s": NUM, "get_ratio": NUM,
             "get_ratio_p10": NUM, "get_ratio_p90": NUM, "pairs": int, "pooled_batches": int}
MICRO = {"config": {"tier": str, "total_bytes": int, "batch_bytes": int, "runs": int,
                    "statistic": str},
         "results": list}
INDEX = {
    "config": {"keys": int, "batch": int, "runs": int, "block_bytes": int, "statistic": str},
    "lookup": {"keys_per_s": NUM, "keys_per_s_min": NUM, "keys_per_s_max": NUM,
               "cpu_keys_per_s": NUM, "ns_per_key": NUM, "calls_per_s": NUM,
               "hits_per_run": int, "target_keys_per_s": NUM, "meets_target": bool},
    "fill": {"seconds": NUM, "blocks_per_s": NUM},
    "memory": {"index_capacity": int, "entry_bytes": int, "index_entry_bytes_per_block": NUM,
               "arena_bytes": int, "rss_open_bytes": int, "rss_fill_bytes": int,
               "overhead_bytes_per_block": NUM},
}


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
            if not isinstance(v, dict):
                fail(f"{where}.{name}: not an object")
            else:
                check_fields(v, kind, f"{where}.{name}")
            continue
        # A bool is an int to Python: keep them apart both ways.
        ok = isinstance(v, bool) if kind is bool else \
            not isinstance(v, bool) and isinstance(v, kind)
        if not ok:
            fail(f"{where}.{name}: {v!r} is not {kind}")
        elif isinstance(v, float) and not math.isfinite(v):
            fail(f"{where}.{name}: {v!r} is not finite")


def load_json(p, args):
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        fail(f"{args}: stdout is not one JSON value: {e}; first bytes: {p.stdout[:200]!r}")
        return None


def positive(obj, path):
    v = obj
    for k in path:
        v = v[k]
    if not (isinstance(v, (int, float)) and v > 0):
        fail(f"{'.'.join(map(str, path))} = {v!r}, wanted > 0")


def test_mixed():
    # Named explicitly: the no-argument run is another command's job.
    args = ["mixed", "--quick", "--requests", "25", "--json"]
    p = run(args)
    o = load_json(p, args)
    if o is None:
        return
    check_fields(o, HEADER, "mixed")
    check_fields(o, MIXED, "mixed")
    if o.get("bench") != "mixed":
        fail(f"bench is {o.get('bench')!r}")
    if not FAILURES:
        if o["requests"] != 25:
            fail(f"requests {o['requests']}, wanted 25")
        if not 0 <= o["hit_ratio"] <= o["hit_ratio_unbounded"] <= 1:
            fail(f"hit ratios {o['hit_ratio']} / {o['hit_ratio_unbounded']} out of order")
        if o["blocks_hit"] > o["blocks_requested"]:
            fail("more blocks hit than requested")
        for path in (("put", "gb_per_s"), ("put", "memcpy_gb_per_s"), ("get", "gb_per_s"),
                     ("lookup", "keys_per_s"), ("hash", "tokens_per_s")):
            positive(o, path)
        if o["put"]["bytes"] > o["put"]["blocks"] * o["config"]["block_bytes"]:
            fail("put copied more bytes than it had blocks")
    # The human form of the same run.
    p = run(["mixed", "--quick", "--requests", "5"])
    for word in ("hit ratio", "put", "get", "lookup", "memcpy"):
        if word not in p.stdout:
            fail(f"text report lacks '{word}'")


def test_micro():
    args = ["micro", "--block-bytes", "64K,256K", "--copy-threads", "1,2",
            "--total-bytes", "4M", "--batch-bytes", "1M", "--runs", "2", "--json"]
    p = run(args)
    o = load_json(p, args)
    if o is None:
        return
    check_fields(o, HEADER, "micro")
    check_fields(o, MICRO, "micro")
    rows = o.get("results", [])
    if len(rows) != 4:
        fail(f"micro: {len(rows)} results, wanted 4 (2 sizes x 2 thread counts)")
    for i, r in enumerate(rows):
        check_fields(r, MICRO_ROW, f"micro.results[{i}]")
    if len(rows) == 4 and not FAILURES:
        if [(r["block_bytes"], r["copy_threads"]) for r in rows] != \
                [(65536, 1), (262144, 1), (65536, 2), (262144, 2)]:
            fail("micro: rows not in threads-then-size order")
        for r in rows:
            if r["blocks_per_call"] * r["block_bytes"] != 1 << 20:
                fail(f"micro: {r['blocks_per_call']} blocks per 1 MiB call")
            positive(r, ("put_gb_per_s",))
            positive(r, ("get_memcpy_gb_per_s",))
            if not r["put_ratio_p10"] <= r["put_ratio"] <= r["put_ratio_p90"]:
                fail("micro: put ratio outside its own 10th-90th percentiles")
            if r["pairs"] != 2 * r["calls_per_run"]:
                fail(f"micro: {r['pairs']} pairs, wanted runs x calls = {2 * r['calls_per_run']}")


def test_index():
    args = ["index", "--keys", "20000", "--batch", "32", "--runs", "2", "--json"]
    p = run(args)
    o = load_json(p, args)
    if o is None:
        return
    check_fields(o, HEADER, "index")
    check_fields(o, INDEX, "index")
    if not FAILURES:
        if o["lookup"]["hits_per_run"] != 20000:
            fail(f"index: {o['lookup']['hits_per_run']} hits per run, wanted 20000")
        if o["memory"]["index_capacity"] < 20000:
            fail("index: capacity below the key count")
        if o["memory"]["entry_bytes"] != 64:
            fail("index: entry_bytes is not the documented 64")
        positive(o, ("lookup", "keys_per_s"))


def test_usage_errors():
    for args in (["--no-such-flag"], ["nosuchcommand"], ["mixed", "--no-such-flag"],
                 ["micro", "--tier", "tape"], ["micro", "--block-bytes", "12x"],
                 ["index", "--keys"], ["index", "--keys", "0"], ["mixed", "--quick=1"]):
        p = run(args, want_rc=2)
        if not p.stderr.strip():
            fail(f"{args}: no message on stderr")
        if p.stdout.strip():
            fail(f"{args}: wrote to stdout on a usage error")
    for args in (["--help"], ["micro", "--help"], ["index", "--help"], ["mixed", "--help"]):
        p = run(args)
        if "usage" not in p.stdout:
            fail(f"{args}: no usage text")


def main():
    for t in (test_usage_errors, test_mixed, test_micro, test_index):
        before = len(FAILURES)
        t()
        print(("ok  " if len(FAILURES) == before else "FAIL") + " " + t.__name__)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
