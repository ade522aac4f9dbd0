#!/usr/bin/env python3
# test_bench_shared.py — `kvtier-bench micro --shared` at tiny sizes: exit codes, the JSON fields docs/bench.md lists, 0 wrong bytes, nothing left behind.
"""Usage: test_bench_shared.py PATH/TO/kvtier-bench

A smoke test, not a benchmark: a few MiB per store, so it runs in seconds.
It pins down the interface (exit codes, one JSON object, the documented
fields) and what must hold on any machine: the counts add up, the
concurrent clients read back exactly the bytes they put, the servers are
gone and their sockets removed at the end.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

BENCH = sys.argv[1] if len(sys.argv) > 1 else "kvtier-bench"
FAILURES = []
NUM = (int, float)
NUM_OR_NULL = (int, float, type(None))
STR_OR_NULL = (str, type(None))

HEADER = {"bench": str, "schema": int, "kvtier_version": str, "date": str,
          "cpu_model": str, "cpus": int, "loadavg_1m": NUM, "buildtype": str}
CONFIG = {"tier": str, "mode": str, "server": str, "socket": str, "total_bytes": int,
          "batch_bytes": int, "runs": int, "copy_threads": int, "nvme_dir": STR_OR_NULL,
          "dram_shared_requested": bool, "dram_shared": bool,
          "dram_shared_why_not": STR_OR_NULL, "lookups": int, "clients": int,
          "client_bytes": int, "client_rounds": int, "seed": int, "statistic": str,
          "targets": dict}
TARGETS = {"ratio_min": NUM, "lookup_p50_us_max": NUM, "lookup_p99_us_max": NUM,
           "wrong_bytes": int}
ROW = {"block_bytes": int, "blocks_per_call": int, "calls_per_run": int, "run_bytes": int,
       "turns": int,
       "put_in_process_gb_per_s": NUM, "put_connected_gb_per_s": NUM, "put_memcpy_gb_per_s": NUM,
       "put_ratio": NUM, "put_ratio_p10": NUM, "put_ratio_p90": NUM, "put_meets_target": bool,
       "get_in_process_gb_per_s": NUM, "get_connected_gb_per_s": NUM, "get_memcpy_gb_per_s": NUM,
       "get_ratio": NUM, "get_ratio_p10": NUM, "get_ratio_p90": NUM, "get_meets_target": bool,
       "server_zero_copy_blocks": NUM_OR_NULL, "server_staged_blocks": NUM_OR_NULL}
LOOKUP = {"store": str, "block_bytes": int, "calls": int, "keys_per_call": int, "p50_us": NUM,
          "p99_us": NUM, "mean_us": NUM, "meets_target": bool}
CLIENTS = {"clients": int, "block_bytes": int, "blocks_per_round": int, "rounds": int,
           "blocks_per_call": int, "bytes": int, "seconds": NUM, "gb_per_s": NUM,
           "wrong_bytes": int, "gets_checked": int, "gets_missing": int, "puts_stored": int,
           "failed_clients": int, "server_zero_copy_blocks": NUM_OR_NULL,
           "server_staged_blocks": NUM_OR_NULL}

TINY = ["micro", "--shared", "--block-bytes", "64K,256K", "--total-bytes", "2M",
        "--batch-bytes", "512K", "--runs", "2", "--lookups", "200", "--clients", "3",
        "--client-bytes", "1M", "--client-rounds", "2"]


def fail(msg):
    FAILURES.append(msg)
    print("FAIL:", msg)


def run(args, want_rc=0, env=None):
    p = subprocess.run([BENCH] + args, capture_output=True, text=True, timeout=100, env=env)
    if want_rc is not None and p.returncode != want_rc:
        fail(f"{args}: exit {p.returncode}, wanted {want_rc}; stderr: {p.stderr.strip()}")
    return p


def check_fields(obj, spec, where):
    for name, kind in spec.items():
        if name not in obj:
            fail(f"{where}: no field {name}")
        elif isinstance(obj[name], bool) and kind in (int, NUM, NUM_OR_NULL):
            fail(f"{where}.{name}: a bool, wanted {kind}")
        elif not isinstance(obj[name], kind):
            fail(f"{where}.{name}: {obj[name]!r} is not {kind}")


def check_json(o, args_note):
    check_fields(o, HEADER, "header")
    check_fields(o, {"config": dict, "results": list, "lookup": list, "clients": dict}, "top")
    if FAILURES:
        return
    cfg = o["config"]
    check_fields(cfg, CONFIG, "config")
    check_fields(cfg.get("targets", {}), TARGETS, "config.targets")
    if o["bench"] != "micro" or cfg["mode"] != "shared" or cfg["tier"] != "dram":
        fail(f"{args_note}: bench/mode/tier {o['bench']}/{cfg['mode']}/{cfg['tier']}")
    t = cfg["targets"]
    if (t["ratio_min"], t["lookup_p50_us_max"], t["lookup_p99_us_max"], t["wrong_bytes"]) != \
            (0.9, 20, 100, 0):
        fail(f"config.targets {t}: not the issue's 90%, 20 us, 100 us, 0 wrong bytes")
    rows = o["results"]
    if [r.get("block_bytes") for r in rows] != [64 << 10, 256 << 10]:
        fail(f"results: block sizes {[r.get('block_bytes') for r in rows]}, wanted 64K, 256K")
    for i, r in enumerate(rows):
        check_fields(r, ROW, f"results[{i}]")
        if FAILURES:
            return
        if r["blocks_per_call"] * r["block_bytes"] != 512 << 10:
            fail(f"results[{i}]: {r['blocks_per_call']} blocks per 512 KiB call")
        if r["run_bytes"] != 2 << 20 or r["turns"] != 2 * r["calls_per_run"]:
            fail(f"results[{i}]: run_bytes {r['run_bytes']}, turns {r['turns']}: "
                 f"wanted 2 MiB and runs x calls")
        for op in ("put", "get"):
            if not r[f"{op}_ratio_p10"] <= r[f"{op}_ratio"] <= r[f"{op}_ratio_p90"]:
                fail(f"results[{i}]: {op} ratio outside its own 10th-90th percentiles")
            for side in ("in_process", "connected", "memcpy"):
                if not r[f"{op}_{side}_gb_per_s"] > 0:
                    fail(f"results[{i}]: {op}_{side}_gb_per_s {r[f'{op}_{side}_gb_per_s']}")
            if r[f"{op}_meets_target"] != (r[f"{op}_ratio"] >= 0.9):
                fail(f"results[{i}]: {op}_meets_target disagrees with the ratio")
    lk = o["lookup"]
    if [x.get("store") for x in lk] != ["in-process", "connected"]:
        fail(f"lookup: stores {[x.get('store') for x in lk]}")
    for i, x in enumerate(lk):
        check_fields(x, LOOKUP, f"lookup[{i}]")
        if FAILURES:
            return
        # 2 MiB of 64 KiB blocks: 32 held keys per lookup
        if x["calls"] != 200 or x["keys_per_call"] != 32 or x["block_bytes"] != 64 << 10:
            fail(f"lookup[{i}]: {x['calls']} calls of {x['keys_per_call']} keys")
        if not 0 < x["p50_us"] <= x["p99_us"]:
            fail(f"lookup[{i}]: p50 {x['p50_us']} p99 {x['p99_us']}")
        if x["meets_target"] != (x["p50_us"] <= 20 and x["p99_us"] <= 100):
            fail(f"lookup[{i}]: meets_target disagrees with p50/p99")
    c = o["clients"]
    check_fields(c, CLIENTS, "clients")
    if FAILURES:
        return
    blocks = 3 * 16 * 2  # clients x (1 MiB of 64 KiB blocks) x rounds
    if (c["clients"], c["blocks_per_round"], c["rounds"]) != (3, 16, 2):
        fail(f"clients: {c['clients']} x {c['blocks_per_round']} x {c['rounds']}")
    if c["wrong_bytes"] != 0 or c["failed_clients"] != 0:
        fail(f"clients: {c['wrong_bytes']} wrong bytes, {c['failed_clients']} failed clients")
    if c["gets_checked"] + c["gets_missing"] != blocks or c["puts_stored"] != blocks:
        fail(f"clients: {c['gets_checked']} checked + {c['gets_missing']} missing, "
             f"{c['puts_stored']} stored; wanted {blocks}")
    if c["gets_missing"] != 0:  # the server's DRAM holds two rounds of every client
        fail(f"clients: {c['gets_missing']} gets missing")
    if c["bytes"] != (c["puts_stored"] + c["gets_checked"]) * (64 << 10):
        fail(f"clients: bytes {c['bytes']}")


def leftovers(d):
    return [n for n in os.listdir(d)]


def test_json():
    d = tempfile.mkdtemp(prefix="bench-shared-")
    try:
        env = dict(os.environ, TMPDIR=d)
        p = run(TINY + ["--json"], env=env)
        if p.returncode == 0:
            try:
                o = json.loads(p.stdout)
            except ValueError as e:
                fail(f"--json: not one JSON object: {e}")
                return
            check_json(o, "--json")
            if not o["config"]["socket"].startswith(d):
                fail(f"socket {o['config']['socket']} not in $TMPDIR")
        if leftovers(d):
            fail(f"left behind in $TMPDIR: {leftovers(d)}")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_text():
    p = run(TINY + ["--clients", "2"])
    for want in ("load average", "conn/in-proc", ">= 90%", "p50 <= 20 us, p99 <= 100 us",
                 "zero-copy", "wrong bytes"):
        if want not in p.stdout:
            fail(f"text report: no '{want}'")


def test_dram_shared():
    p = run(TINY + ["--clients", "0", "--block-bytes", "64K", "--json", "--dram-shared"])
    if p.returncode != 0:
        return
    o = json.loads(p.stdout)
    cfg = o["config"]
    if "clients" in o:
        fail("--clients 0: a clients object")
    if not cfg["dram_shared_requested"]:
        fail("--dram-shared: dram_shared_requested false")
    if not cfg["dram_shared"] and (not cfg["dram_shared_why_not"] or "warning" not in p.stderr):
        fail("--dram-shared not applied, and no reason or no warning")
    if cfg["dram_shared"] and cfg["dram_shared_why_not"] is not None:
        fail("--dram-shared applied, and a reason why not")


def test_nvme():
    # O_DIRECT needs a real filesystem: the build tree, never /tmp (tmpfs on some hosts).
    root = os.environ.get("KVT_BUILD_ROOT", os.getcwd())
    d = tempfile.mkdtemp(prefix="bench-shared-nvme-", dir=root)
    try:
        p = run(TINY + ["--clients", "2", "--block-bytes", "64K", "--nvme-dir", d, "--json"],
                want_rc=None)
        if p.returncode in (1, 2) and any(w in p.stderr for w in (
                "not built", "built without", "O_DIRECT", "direct I/O", "memory filesystem",
                "no kind")):
            print("skip test_nvme:", p.stderr.strip().splitlines()[-1])
            return
        if p.returncode != 0:
            fail(f"--nvme-dir: exit {p.returncode}: {p.stderr.strip()}")
            return
        o = json.loads(p.stdout)
        if o["config"]["nvme_dir"] != d or o["clients"]["wrong_bytes"] != 0:
            fail(f"--nvme-dir: config {o['config']['nvme_dir']}, clients {o['clients']}")
        if leftovers(d):
            fail(f"--nvme-dir: files left behind: {leftovers(d)}")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_usage_errors():
    for bad in (["--runs", "0"], ["--block-bytes", "100"], ["--clients", "-1"],
                ["--lookups", "0"], ["--nvme-dir", "/nonexistent-kvtier-dir"], ["--bogus"],
                ["--socket", "/nonexistent-kvtier-dir/s.sock", "--clients", "0"]):
        run(TINY + bad, want_rc=2)


def main():
    for t in (test_usage_errors, test_json, test_text, test_dram_shared, test_nvme):
        before = len(FAILURES)
        t()
        print(("ok  " if len(FAILURES) == before else "FAIL") + " " + t.__name__)
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
