#!/usr/bin/env python3
# test_bench_compare.py — kvtier-bench compare --quick: the JSON and CSV schema, knees consistent with the ramp's steps, knees and a trace's TTL curve known by construction, and the charts plot.py draws.
"""Usage: test_bench_compare.py PATH/TO/kvtier-bench PATH/TO/plot.py

Seconds, not a benchmark: the numbers are checked for consistency and the
field names docs/bench.md documents are pinned down here.
"""
import csv
import json
import math
import os
import subprocess
import sys
import tempfile

BENCH = sys.argv[1] if len(sys.argv) > 1 else "kvtier-bench"
PLOT = sys.argv[2] if len(sys.argv) > 2 else "bench/plot.py"
FAILURES = []
NUM = (int, float)
CONFIGS = ["hbm+dram", "hbm+dram+nvme", "hbm+dram+files", "hbm+dram+cluster"]
RUN_COLS = ["config", "mode", "agents", "requests", "hit_ratio", "ttft_p50_ms", "ttft_p95_ms",
            "goodput_rps", "within_slo", "wall_s"]
KNEE_COLS = ["config", "knee_agents", "first_missed_agents", "exhausted", "capped", "steps",
             "below_dram_gbps", "below_dram_efficiency", "efficiency_source"]
TTL_COLS = ["config", "ttl_s", "hit_ratio", "reprefills_per_session", "sessions", "requests"]
TOP = {"bench": str, "schema": int, "model": str, "slo_ms": NUM, "block_bytes": NUM,
       "dram_bytes": NUM, "below_dram_bytes": NUM, "hbm": str, "modelled": str,
       "measured": str, "profile": dict, "layout": dict, "runs": list, "knees": list,
       "ttl": list}
LAYOUT = {"tp": NUM, "dp": NUM, "affinity": bool, "pd": bool, "prefill_servers": NUM,
          "tp_efficiency": NUM, "hbm_bytes_per_instance": NUM, "router": str}


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what)


def run(args, tmp):
    env = dict(os.environ, TMPDIR=tmp)
    p = subprocess.run([BENCH, "compare", "--quick", "--dir", tmp] + args, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=50)
    check(p.returncode == 0, f"compare {args}: exit {p.returncode}: {p.stderr.decode()[-400:]}")
    return p


def types(obj, schema, where):
    for k, t in schema.items():
        check(k in obj, f"{where}: no '{k}'")
        if k in obj:
            check(isinstance(obj[k], t) and not isinstance(obj[k], bool) or t is bool
                  and isinstance(obj[k], bool) or t is dict and isinstance(obj[k], dict),
                  f"{where}.{k}: {type(obj[k]).__name__}")


def read_csv(path, cols):
    with open(path, newline="") as f:
        r = csv.DictReader(f)
        check(r.fieldnames == cols, f"{os.path.basename(path)} columns {r.fieldnames}")
        return list(r)


def schema_and_consistency(tmp):
    out = os.path.join(tmp, "out")
    trace = write_trace(tmp)
    p = run(["--json", "--out", out, "--no-plot", "--trace", trace], tmp)
    os.unlink(trace)
    d = json.loads(p.stdout)
    trace_ttl(d)
    types(d, TOP, "compare")
    check(d["bench"] == "compare", "bench name")
    # The cluster tier is in io_uring builds only; compare says so in "cluster".
    configs = CONFIGS if "cluster" in d else CONFIGS[:3]
    if "cluster" in d:
        check("memory grid" in d["cluster"], "the cluster note names the memory grid")
    types(d["layout"], LAYOUT, "layout")
    check("modelled" in d["hbm"], "the HBM note says it is modelled")
    with open(os.path.join(out, "compare.json")) as f:
        check(json.load(f)["runs"] == d["runs"], "compare.json is what --json printed")
    runs = read_csv(os.path.join(out, "compare.csv"), RUN_COLS)
    knees = read_csv(os.path.join(out, "knees.csv"), KNEE_COLS)
    ttl = read_csv(os.path.join(out, "ttl.csv"), TTL_COLS)
    check(len(runs) == len(d["runs"]), "one CSV line per JSON run")
    check([k["config"] for k in knees] == configs, f"knee configs {[k['config'] for k in knees]}")
    for c in configs:
        st = [r for r in d["runs"] if r["config"] == c and r["mode"] == "static"]
        ramp = [r for r in d["runs"] if r["config"] == c and r["mode"] == "ramp"]
        check(len(st) == 1 and st[0]["agents"] == 4, f"{c}: one static run of 4 agents")
        check(len(ramp) >= 1, f"{c}: ramp steps")
        kn = [k for k in d["knees"] if k["config"] == c][0]
        met = [r["agents"] for r in ramp if r["within_slo"]]
        check(kn["knee_agents"] == max(met, default=0), f"{c}: knee {kn['knee_agents']} vs {met}")
        check(kn["steps"] == len(ramp), f"{c}: steps")
        for r in st + ramp:
            check(0 <= r["hit_ratio"] <= 1, f"{c}: hit ratio {r['hit_ratio']}")
            check(r["ttft_p50_ms"] <= r["ttft_p95_ms"], f"{c}: p50 <= p95")
    # Same capacity below DRAM: the files store hits what the NVMe store hits.
    hits = {r["config"]: r["hit_ratio"] for r in d["runs"] if r["mode"] == "static"}
    # Each configuration is its own run of real stores, whose background
    # demotions race the swarm's gets: a block in flight is a miss in one run
    # and a hit in another. Same capacity below DRAM: the same hits within that.
    check(abs(hits["hbm+dram+files"] - hits["hbm+dram+nvme"]) <= 0.02, f"files and NVMe hits {hits}")
    check(hits["hbm+dram"] <= hits["hbm+dram+nvme"] + 0.02, f"a tier below DRAM adds hits {hits}")
    files = [k for k in d["knees"] if k["config"] == "hbm+dram+files"][0]
    check(0 < files["below_dram_efficiency"] <= 1, "files efficiency in (0, 1]")
    if "cluster" in d:
        # Written through on every put and not yet swept: at least the hits of
        # DRAM alone. Its rate: min(link 55, 400 GB/s per node / 8 GPUs) = 50.
        check(hits["hbm+dram+cluster"] >= hits["hbm+dram"] - 0.02, f"cluster adds hits {hits}")
        cl = [k for k in d["knees"] if k["config"] == "hbm+dram+cluster"][0]
        check(0 < cl["below_dram_efficiency"] <= 1, f"cluster efficiency {cl}")
        check(abs(cl["below_dram_gbps"] - 50) < 1e-9, f"cluster GB/s {cl}")
        check(cl["efficiency_source"], "cluster efficiency has a source")
    ttl = [t for t in ttl if t["config"] == "hbm+dram+nvme"]
    check([float(t["ttl_s"]) for t in ttl] == [60, 300, 3600, math.inf], "TTLs 1m 5m 1h inf")
    check([t["ttl_s"] for t in d["ttl"] if t["config"] == "hbm+dram+nvme"] ==
          [60, 300, 3600, None], "JSON TTL inf is null")
    hr = [float(t["hit_ratio"]) for t in ttl]
    check(hr == sorted(hr), f"hit ratio grows with the TTL {hr}")
    return out


def knees_by_construction(tmp):
    # An SLO nothing misses: every step meets it (each judges requests from
    # 2 agents up), the knee is the ramp's max.
    small = ["--agents", "2", "--duration", "1m", "--ramp-step", "1m", "--ramp-warm", "10s"]
    d = json.loads(run(["--json", "--no-ttl", "--slo-ms", "1e9", "--max-agents", "4",
                        "--ramp-start", "2", "--ramp-steps", "8"] + small, tmp).stdout)
    for k in d["knees"]:
        check(k["knee_agents"] == 4 and k["exhausted"], f"SLO 1e9: {k}")
    # An SLO nothing meets (a 1-token prefill alone takes longer): knee 0.
    d = json.loads(run(["--json", "--no-ttl", "--slo-ms", "1", "--prefill-tokens-per-s", "1"]
                       + small, tmp).stdout)
    for k in d["knees"]:
        check(k["knee_agents"] == 0 and k["first_missed_agents"] == 1, f"SLO 1 ms: {k}")


def write_trace(tmp):
    # A trace whose TTL curve is known by construction: one file (one
    # session), the same two blocks asked 120 s apart. A 60 s TTL expires
    # them (one re-prefill per session); 300 s, 1 h and none keep them.
    path = os.path.join(tmp, "two.jsonl")
    with open(path, "w") as f:
        for t in (0, 120000):
            f.write(json.dumps({"timestamp": t, "input_length": 1024, "output_length": 10,
                                "hash_ids": [0, 1]}) + "\n")
    return path


def trace_ttl(d):
    rows = {r["ttl_s"]: r for r in d["ttl"] if r["config"] == "trace:mooncake"}
    check(sorted(rows, key=lambda t: math.inf if t is None else t) == [60, 300, 3600, None],
          f"trace TTLs {list(rows)}")
    if len(rows) == 4:
        check(rows[60]["reprefills_per_session"] == 1, f"TTL 60: {rows[60]}")
        for t in (300, 3600, None):
            check(rows[t]["reprefills_per_session"] == 0, f"TTL {t}: {rows[t]}")
            check(rows[t]["hit_ratio"] > rows[60]["hit_ratio"], f"TTL {t} hits more than 60")
        check(rows[None]["sessions"] == 1 and rows[None]["requests"] == 2, f"{rows[None]}")


def layout_flags(tmp):
    # swarm takes the layout and reports it; bad layouts are usage errors.
    base = [BENCH, "swarm", "--agents", "2", "--duration", "1m", "--dram-bytes", "4M",
            "--nvme-bytes", "0", "--no-memcpy", "--dir", tmp, "--json"]
    p = subprocess.run(base + ["--tp", "2", "--pd", "--affinity", "on"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=50)
    check(p.returncode == 0, f"swarm --tp 2 --pd: exit {p.returncode}")
    if p.returncode == 0:
        lay = json.loads(p.stdout).get("layout", {})
        types(lay, LAYOUT, "swarm layout")
        check(lay.get("tp") == 2 and lay.get("dp") == 4 and lay.get("prefill_servers") == 2
              and lay.get("pd") is True and lay.get("affinity") is True
              and abs(lay.get("tp_efficiency", 0) - 0.9) < 1e-9, f"layout {lay}")
    cluster_swarm(base, tmp)
    for bad in (["--pd", "--dp", "1"], ["--affinity", "maybe"], ["--tp", "0"], ["--tp", "16"],
                ["--pd-prefill", "1"], ["--pd", "--dp", "4", "--pd-prefill", "4"],
                ["--tp-efficiency", "1.5"]):
        p = subprocess.run(base + bad, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=50)
        check(p.returncode == 2 and p.stderr, f"swarm {bad}: exit {p.returncode}, want 2")


def cluster_swarm(base, tmp):
    # swarm --cluster-dir: cluster hits counted apart, loaded at the cluster
    # rate, P/D through the cluster tier; the run's directory removed after.
    cdir = os.path.join(tmp, "cluster")
    os.mkdir(cdir)
    p = subprocess.run(base + ["--cluster-dir", cdir, "--dram-bytes", "1M", "--pd",
                               "--hbm-bytes", "1G", "--affinity", "on"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=50)
    if p.returncode != 0 and b"cluster" in p.stderr and b"no" in p.stderr.lower():
        print("skip swarm --cluster-dir: no cluster tier in this build")
    else:
        check(p.returncode == 0, f"swarm --cluster-dir: exit {p.returncode}: {p.stderr[-300:]}")
    if p.returncode == 0:
        d = json.loads(p.stdout)
        t = d.get("ttft", {})
        check(d.get("hit_ratio_cluster", 0) > 0, f"cluster hits {d.get('hit_ratio_cluster')}")
        check(abs(d.get("hit_ratio", 0) - d.get("hit_ratio_dram", 0) - d.get("hit_ratio_nvme", 0)
                  - d.get("hit_ratio_cluster", 0)) < 1e-9, "hits: DRAM + NVMe + cluster")
        check(t.get("cluster_gbps") == 50 and 0 < t.get("cluster_efficiency", 0) <= 1,
              f"cluster rate {t.get('cluster_gbps')} x {t.get('cluster_efficiency')}")
        check(t.get("load_cluster_bytes", 0) > 0, "the model loaded cluster bytes")
        check(t.get("pd_via") == "cluster" and t.get("pd_transfer_mean_ms", 0) > 0,
              f"P/D through the cluster tier {t.get('pd_via')}")
        h = d.get("hbm", {})
        check(h.get("router") == "session" and h.get("instances") == 4
              and h.get("blocks_per_instance") == 1024 ** 3 // (64 * 128 * 1024),
              f"HBM model {h}")
        check(d.get("layout", {}).get("pd_via") == "cluster", "layout's P/D path")
    check(os.listdir(cdir) == [], f"cluster run directories left: {os.listdir(cdir)}")
    os.rmdir(cdir)


def plots(tmp, out):
    try:
        subprocess.run(["/usr/bin/python3", "-c", "import matplotlib"], check=True,
                       stderr=subprocess.DEVNULL)
    except (OSError, subprocess.CalledProcessError):
        print("skip plot.py: matplotlib is not installed")
        return
    pdir = os.path.join(tmp, "png")
    p = subprocess.run(["/usr/bin/python3", PLOT, "--compare", os.path.join(out, "compare.csv"),
                        "--ttl-csv", os.path.join(out, "ttl.csv"), "--slo-ms", "2000", "--out",
                        pdir], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=50)
    check(p.returncode == 0, f"plot.py: {p.stderr.decode()[-400:]}")
    for name in ("compare-knee", "compare-hit", "compare-ttft", "compare-goodput", "ttl"):
        path = os.path.join(pdir, name + ".png")
        ok = os.path.exists(path) and os.path.getsize(path) > 1000
        if ok:
            with open(path, "rb") as f:
                ok = f.read(8) == b"\x89PNG\r\n\x1a\n"
        check(ok, f"{name}.png drawn")


def main():
    with tempfile.TemporaryDirectory() as tmp:
        out = schema_and_consistency(tmp)
        plots(tmp, out)
        knees_by_construction(tmp)
        layout_flags(tmp)
        left = [f for f in os.listdir(tmp) if f not in ("out", "png")]
        check(not left, f"temp files left: {left}")
    print("FAILED" if FAILURES else "ok", len(FAILURES))
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
