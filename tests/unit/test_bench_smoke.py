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
import os
import shutil
import subprocess
import sys
import tempfile

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
             "get_ratio_p10": NUM, "get_ratio_p90": NUM, "pairs": int, "pooled_batches": int,
             "open_ms": NUM, "open_touch_ms": int}
MICRO_OPEN = {"config": {"tier": str, "mode": str, "total_bytes": int, "runs": int,
                         "hugepages": int, "statistic": str},
              "results": list}
MICRO_OPEN_ROW = {"copy_threads": int, "open_wall_ms": NUM, "open_ms": NUM, "mmap_ms": NUM,
                  "touch_ms": NUM, "thp_scan_ms": NUM, "touch_threads": int, "thp_bytes": int,
                  "arena_bytes": int}
MICRO = {"config": {"tier": str, "total_bytes": int, "batch_bytes": int, "runs": int,
                    "statistic": str},
         "results": list}
NVME_CONFIG = {"tier": str, "mode": str, "dir": str, "filesystem": str, "device": str,
               "runs": int}
NVME = {"config": dict(NVME_CONFIG, total_bytes=int, store=str, caller_buffers=str, raw=str,
                       raw_fixed=bool, raw_sum=str, raw_sum_run=bool, raw_sum_helpers=int, hash=str,
                       anchor_threads=int, page_touch_gb_per_s=NUM,
                       big_queue_depth=int, demote_dram_bytes=int, statistic=str),
        "results": list, "anchor": list, "demote": list, "overhead": list}
NVME_ROW = {"block_bytes": int, "queue_depth": int, "slot_bytes": int, "blocks_per_run": int,
            "run_bytes": int, "put_gb_per_s": NUM, "put_raw_gb_per_s": NUM,
            "put_raw_fixed_gb_per_s": NUM, "put_ratio": NUM, "put_ratio_p10": NUM,
            "put_ratio_p90": NUM, "put_ratio_fixed": NUM, "get_gb_per_s": NUM,
            "get_raw_gb_per_s": NUM, "get_raw_fixed_gb_per_s": NUM, "get_ratio": NUM,
            "get_ratio_p10": NUM, "get_ratio_p90": NUM, "get_ratio_fixed": NUM,
            "put_cpu_s_per_gb": NUM, "put_raw_cpu_s_per_gb": NUM,
            "put_raw_fixed_cpu_s_per_gb": NUM, "get_cpu_s_per_gb": NUM,
            "get_raw_cpu_s_per_gb": NUM, "get_raw_fixed_cpu_s_per_gb": NUM, "pairs": int,
            "staged_blocks": int, "fixed_host": int, "resubmits": int,
            "raw_fixed_transfers": int, "raw_resubmits": int,
            "put_raw_sum_gb_per_s": NUM, "put_ratio_sum": NUM, "put_ratio_sum_p10": NUM,
            "put_ratio_sum_p90": NUM, "put_raw_sum_cpu_s_per_gb": NUM,
            "get_raw_sum_gb_per_s": NUM, "get_ratio_sum": NUM, "get_ratio_sum_p10": NUM,
            "get_ratio_sum_p90": NUM, "get_raw_sum_cpu_s_per_gb": NUM,
            "put_run_delay_ms": NUM, "put_raw_run_delay_ms": NUM,
            "put_raw_sum_run_delay_ms": NUM, "get_run_delay_ms": NUM,
            "get_raw_run_delay_ms": NUM, "get_raw_sum_run_delay_ms": NUM,
            "hash_cpu_s_per_gb": NUM, "put_cpu_vs_raw_hash": NUM, "get_cpu_vs_raw_hash": NUM}
NVME_ANCHOR = {"block_bytes": int, "threads": int, "queue_depth": int, "blocks_per_run": int,
               "put_page_cache_gb_per_s": NUM, "put_writeback_gb_per_s": NUM,
               "get_cold_gb_per_s": NUM, "get_warm_gb_per_s": NUM, "cold_resident_pages": int,
               "kvtier_put_gb_per_s": NUM, "kvtier_get_gb_per_s": NUM, "get_vs_cold": NUM,
               "get_vs_cold_p10": NUM, "get_vs_cold_p90": NUM, "get_vs_warm": NUM,
               "put_vs_writeback": NUM, "pairs": int}
NVME_DEMOTE = {"block_bytes": int, "dram_bytes": int, "queue_depth": int, "blocks_per_run": int,
               "demotions_per_run": NUM, "put_gb_per_s": NUM, "raw_qd1_gb_per_s": NUM,
               "raw_gb_per_s": NUM, "ratio_qd1": NUM, "ratio": NUM, "raw_registered": bool,
               "pairs": int, "raw_writes": int}
NVME_OVERHEAD = {"block_bytes": int, "slot_bytes": int, "overhead": NUM}
NVME_RECOVERY = {"config": dict(NVME_CONFIG, queue_depth=int, statistic=str),
                 "recovery": list, "overhead": list}
NVME_RECOVERY_ROW = {"blocks": int, "block_bytes": int, "slot_bytes": int, "file_bytes": int,
                     "queue_depth": int, "create_ms": NUM, "fill_s": NUM,
                     "fill_blocks_per_s": NUM, "close_ms": NUM, "open_ms": NUM,
                     "open_ms_min": NUM, "open_ms_max": NUM, "recovery_ms": NUM,
                     "headers_per_s": (int, float, type(None)), "recovered": int, "reopens": int}
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


def test_micro_open_only():
    for extra in ([], ["--no-hugepages"]):
        args = ["micro", "--open-only", "--copy-threads", "1,3", "--total-bytes", "5M",
                "--runs", "2", "--json"] + extra
        p = run(args)
        o = load_json(p, args)
        if o is None:
            return
        check_fields(o, HEADER, "micro --open-only")
        check_fields(o, MICRO_OPEN, "micro --open-only")
        rows = o.get("results", [])
        if [r.get("copy_threads") for r in rows] != [1, 3]:
            fail(f"micro --open-only: rows {rows}, wanted copy threads 1 and 3")
        for i, r in enumerate(rows):
            check_fields(r, MICRO_OPEN_ROW, f"micro --open-only.results[{i}]")
        if FAILURES:
            return
        if o["config"]["hugepages"] != (0 if extra else 1):
            fail(f"micro --open-only {extra}: config.hugepages {o['config']['hugepages']}")
        for r in rows:
            if r["arena_bytes"] != 4 << 20:  # two 2 MiB slots in 5 MiB
                fail(f"micro --open-only: arena {r['arena_bytes']} bytes, wanted 4 MiB")
            if extra and r["thp_bytes"] != 0:
                fail("micro --open-only --no-hugepages: thp_bytes not 0")
            if not r["touch_ms"] <= r["open_ms"] or r["touch_threads"] < 1:
                fail(f"micro --open-only: touch {r['touch_ms']} ms of open {r['open_ms']} ms, "
                     f"{r['touch_threads']} threads")


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


LAYERS = {
    "config": {"tier": str, "blocks": int, "layers": int, "frag_bytes": int, "runs": int,
               "statistic": str},
    "first_layer_us": NUM, "first_layer_us_min": NUM, "first_layer_us_max": NUM,
    "whole_block_us": NUM, "whole_block_us_min": NUM, "whole_block_us_max": NUM, "ratio": NUM,
    "layered_put_us": NUM, "whole_put_us": NUM, "put_ratio": NUM,
}


def test_layers():
    args = ["layers", "--blocks", "8", "--layers", "32", "--frag-bytes", "1024", "--runs", "2",
            "--json"]
    p = run(args)
    o = load_json(p, args)
    if o is None:
        return
    check_fields(o, HEADER, "layers")
    check_fields(o, LAYERS, "layers")
    if not FAILURES:
        positive(o, ("first_layer_us",))
        positive(o, ("whole_block_us",))
    run(["layers", "--blocks", "0"], want_rc=2)


def nvme_unavailable(p):
    """The reason the NVMe tier can't run here (no io_uring build, no
    O_DIRECT), or None: then the bench must have worked."""
    if p.returncode == 1 and any(w in p.stderr for w in ("not built", "built without", "O_DIRECT", "direct I/O",
                                                          "memory filesystem")):
        return p.stderr.strip().splitlines()[-1]
    return None


def test_micro_nvme():
    # O_DIRECT needs a real filesystem: the build tree, never /tmp (tmpfs on some hosts).
    root = os.environ.get("KVT_BUILD_ROOT", os.getcwd())
    d = tempfile.mkdtemp(prefix="bench-smoke-nvme-", dir=root)
    try:
        args = ["micro", "--tier", "nvme", "--block-bytes", "256K", "--qd", "4",
                "--total-bytes", "2M", "--runs", "2", "--anchor-threads", "2",
                "--dram-bytes", "256K", "--dir", d, "--json"]
        p = subprocess.run([BENCH] + args, capture_output=True, text=True, timeout=100)
        why = nvme_unavailable(p)
        if why:
            print(f"skip test_micro_nvme: {why}")
            return
        if p.returncode != 0:
            fail(f"{args}: exit {p.returncode}; stderr: {p.stderr.strip()}")
        o = load_json(p, args)
        if o is None:
            return
        check_fields(o, HEADER, "micro-nvme")
        check_fields(o, NVME, "micro-nvme")
        parts = {"results": NVME_ROW, "anchor": NVME_ANCHOR, "demote": NVME_DEMOTE,
                 "overhead": NVME_OVERHEAD}
        for part, spec in parts.items():
            rows = o.get(part, [])
            if len(rows) != 1:
                fail(f"micro-nvme: {len(rows)} {part} rows, wanted 1")
            for i, r in enumerate(rows):
                if not o["config"].get("raw_fixed", True):
                    spec = {k: v for k, v in spec.items() if "fixed" not in k}
                check_fields(r, spec, f"micro-nvme.{part}[{i}]")
        if not FAILURES:
            r = o["results"][0]
            if (r["block_bytes"], r["queue_depth"], r["blocks_per_run"]) != (262144, 4, 8):
                fail(f"micro-nvme: row {r['block_bytes']}/{r['queue_depth']}/"
                     f"{r['blocks_per_run']}, wanted 262144/4/8")
            for f in ("put_gb_per_s", "put_raw_gb_per_s", "get_gb_per_s", "get_raw_gb_per_s",
                      "put_raw_sum_gb_per_s", "get_raw_sum_gb_per_s"):
                positive(r, (f,))
            for f in ("put_run_delay_ms", "put_raw_run_delay_ms", "put_raw_sum_run_delay_ms",
                      "get_run_delay_ms", "get_raw_run_delay_ms", "get_raw_sum_run_delay_ms"):
                if r[f] is not None and not 0 <= r[f] < 60000:
                    fail(f"micro-nvme: {f} = {r[f]} ms, not a wait within a pass")
            # CPU per GB: the checksum alone costs something, and each budget ratio is
            # kvtier's CPU over the raw loop's plus the checksum's, as documented
            if not 0 < r["hash_cpu_s_per_gb"] < 60:
                fail(f"micro-nvme: checksum alone {r['hash_cpu_s_per_gb']} CPU s/GB")
            for op in ("put", "get"):
                want = r[f"{op}_cpu_s_per_gb"] / (r[f"{op}_raw_cpu_s_per_gb"] +
                                                   r["hash_cpu_s_per_gb"])
                if abs(r[f"{op}_cpu_vs_raw_hash"] - want) > 1e-3 * want:  # JSON keeps 5 digits
                    fail(f"micro-nvme: {op}_cpu_vs_raw_hash {r[f'{op}_cpu_vs_raw_hash']}, "
                         f"wanted {want}")
            if not r["put_ratio_sum_p10"] <= r["put_ratio_sum"] <= r["put_ratio_sum_p90"]:
                fail("micro-nvme: put ratio to the checksumming raw loop inconsistent")
            if r["pairs"] != 2 or not r["get_ratio_p10"] <= r["get_ratio"] <= r["get_ratio_p90"]:
                fail("micro-nvme: pairs or get ratio percentiles inconsistent")
            if o["overhead"][0]["slot_bytes"] != 262144 + 4096:
                fail("micro-nvme: slot bytes are not block + one 4 KiB header unit")
            a = o["anchor"][0]
            if a["cold_resident_pages"] != 0:
                fail(f"micro-nvme: {a['cold_resident_pages']} pages cached before a cold read")
            positive(a, ("get_cold_gb_per_s",))
            if o["demote"][0]["dram_bytes"] != 262144 or o["demote"][0]["demotions_per_run"] < 1:
                fail("micro-nvme: the demotion row did not demote")
            # like with like: the raw side writes as many blocks as kvtier demoted
            dm = o["demote"][0]
            if dm["raw_writes"] != round(dm["demotions_per_run"]):
                fail(f"micro-nvme: the raw side wrote {dm['raw_writes']} blocks per pass, "
                     f"kvtier demoted {dm['demotions_per_run']}")
        args = ["micro", "--tier", "nvme", "--recovery", "--recovery-blocks", "64",
                "--runs", "2", "--dir", d, "--json"]
        p = run(args)
        o = load_json(p, args)
        if o is not None:
            check_fields(o, HEADER, "micro-nvme-recovery")
            check_fields(o, NVME_RECOVERY, "micro-nvme-recovery")
            rows = o.get("recovery", [])
            for i, r in enumerate(rows):
                check_fields(r, NVME_RECOVERY_ROW, f"micro-nvme-recovery.recovery[{i}]")
            if len(rows) != 1 or rows[0].get("recovered") != 64 or rows[0].get("reopens") != 2:
                fail("micro-nvme-recovery: wanted one row, 64 blocks recovered, 2 reopens")
        left = os.listdir(d)
        if left:
            fail(f"micro-nvme: files left behind in --dir: {left}")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_close():
    """kvtier-bench close: every block written down at close comes back."""
    root = os.environ.get("KVT_BUILD_ROOT", os.getcwd())
    d = tempfile.mkdtemp(prefix="bench-smoke-close-", dir=root)
    try:
        args = ["close", "--dram", "4M", "--block-bytes", "64K", "--runs", "2", "--qd", "8",
                "--dir", d, "--json"]
        p = subprocess.run([BENCH] + args, capture_output=True, text=True, timeout=100)
        why = nvme_unavailable(p)
        if why:
            print(f"skip test_close: {why}")
            return
        if p.returncode != 0:
            fail(f"{args}: exit {p.returncode}; stderr: {p.stderr.strip()}")
            return
        o = load_json(p, args)
        if o is None:
            return
        check_fields(o, HEADER, "close")
        check_fields(o, {"config": {"blocks": int, "block_bytes": int, "slot_bytes": int,
                                    "raw": str}, "close_s": float,
                         "raw_write_sync_s": float, "ratio": float, "reopen_s": float,
                         "recovered_last_run": int, "missing": int, "wrong": int}, "close")
        if not FAILURES:
            if o["config"]["blocks"] != 64 or o["recovered_last_run"] != 64:
                fail(f"close: {o['recovered_last_run']} of {o['config']['blocks']} recovered, wanted 64")
            if o["missing"] or o["wrong"]:
                fail(f"close: {o['missing']} missing, {o['wrong']} wrong")
            # what kvtier writes per block, next to the raw loop's payload-only writes
            # (one header unit: 512 bytes below 256 KiB blocks, docs/nvme-format.md)
            unit = 512 if o["config"]["block_bytes"] < 256 << 10 else 4096
            if o["config"]["slot_bytes"] != o["config"]["block_bytes"] + unit:
                fail(f"close: slot bytes {o['config']['slot_bytes']} for blocks of "
                     f"{o['config']['block_bytes']}")
        if os.listdir(d):
            fail(f"close: left files behind: {os.listdir(d)}")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_usage_errors():
    for args in (["--no-such-flag"], ["nosuchcommand"], ["mixed", "--no-such-flag"],
                 ["micro", "--tier", "tape"], ["micro", "--block-bytes", "12x"],
                 ["micro", "--tier", "nvme", "--qd", "0"],
                 ["micro", "--tier", "nvme", "--block-bytes", "1000"],
                 ["index", "--keys"], ["index", "--keys", "0"], ["mixed", "--quick=1"]):
        p = run(args, want_rc=2)
        if not p.stderr.strip():
            fail(f"{args}: no message on stderr")
        if p.stdout.strip():
            fail(f"{args}: wrote to stdout on a usage error")
    for args in (["--help"], ["micro", "--help"], ["micro", "--tier", "nvme", "--help"],
                 ["index", "--help"], ["mixed", "--help"]):
        p = run(args)
        if "usage" not in p.stdout:
            fail(f"{args}: no usage text")


def main():
    for t in (test_usage_errors, test_mixed, test_micro, test_micro_open_only, test_micro_nvme, test_index, test_layers,
              test_close):
        before = len(FAILURES)
        t()
        print(("ok  " if len(FAILURES) == before else "FAIL") + " " + t.__name__)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
