#!/usr/bin/env python3
# test_bench_swarm.py — kvtier-bench swarm and the default run at tiny sizes: exit codes, the documented JSON fields, temp files removed (also on SIGINT).
"""Usage: test_bench_swarm.py PATH/TO/kvtier-bench

Seconds, not a benchmark: the numbers are checked for consistency (hits
never exceed blocks, tiers add up, the same seed gives the same hits), and
the JSON field names docs/bench.md documents are pinned down here.
"""
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time

import build_has

BENCH = sys.argv[1] if len(sys.argv) > 1 else "kvtier-bench"
FAILURES = []
NUM = (int, float)
HEADER = {"bench": str, "schema": int, "kvtier_version": str, "date": str,
          "cpu_model": str, "cpus": int, "loadavg_1m": NUM, "buildtype": str}
OP = {"calls": int, "blocks": int, "bytes": int, "seconds": NUM, "gb_per_s": NUM,
      "p50_us": NUM, "p99_us": NUM}
PAIRED = dict(OP, memcpy_gb_per_s=NUM, ratio=NUM, ratio_p10=NUM, ratio_p90=NUM)
WORKLOAD = {k: NUM for k in (
    "duration_s", "stagger_s", "ramp_step_s", "first_tokens_median", "first_sigma",
    "turns_median", "turns_sigma", "tool_share", "tool_append_median", "tool_append_sigma",
    "user_append_median", "user_append_sigma", "reset_rate", "reset_keep_min", "reset_keep_max",
    "output_median", "output_sigma", "tool_think_mu", "tool_think_sigma", "human_think_mu",
    "human_think_sigma", "human_think_min_s", "decode_tokens_per_s", "spawn_share",
    "sub_requests_median", "sub_requests_sigma", "sub_first_median", "sub_first_sigma")}
WORKLOAD.update({k: int for k in (
    "seed", "agents", "agent_types", "max_requests", "ramp_add", "prefix_tokens",
    "max_context_tokens", "spawn_min", "spawn_max", "sub_prefix_min", "sub_prefix_max",
    "sessions")})
WORKLOAD["cycle"] = str
FIGURE = {"value": NUM, "source": str}
PROFILE_KEYS = ("gpu_gbps", "nvme_drives", "nvme_drive_gbps", "nvme_gbps", "cluster_gbps", "gpus",
                "prefill_tps_llama_3_1_8b", "prefill_tps_llama_3_1_70b")
PROFILE = dict({"name": str, "what": str}, **{k: FIGURE for k in PROFILE_KEYS})
CONFIG = {"mode": str, "model": str, "bytes_per_token": int, "block_tokens": int,
          "block_bytes": int, "real_block_bytes": int, "bytes_scaled": bool, "byte_scale": NUM,
          "dram_bytes": int, "dram_blocks": int, "nvme_bytes": int, "nvme_slots": int,
          "nvme_slot_bytes": int, "policy": str, "dram_ttl_s": NUM, "nvme_ttl_s": NUM,
          "lease_ms": int, "promote": bool, "gpus": int, "prefill_tokens_per_s": NUM,
          "slo_ms": NUM, "profile": PROFILE, "workload": WORKLOAD}
SWARM = {
    "config": CONFIG,
    "requests": int, "sessions": int, "subagents": int, "compactions": int,
    "forced_compactions": int, "virtual_s": NUM, "wall_s": NUM, "blocks_requested": int,
    "blocks_hit": int, "hit_ratio": NUM, "hit_ratio_dram": NUM, "hit_ratio_nvme": NUM,
    "hit_ratio_unbounded": NUM,
    "tokens": {"prompt": int, "from_cache": int, "prefilled": int, "avoided_ratio": NUM},
    "ttft": {"model": str, "p50_ms": NUM, "p95_ms": NUM, "p99_ms": NUM, "mean_ms": NUM,
             "load_p50_ms": NUM, "load_p99_ms": NUM, "prefill_p50_ms": NUM,
             "queue_p50_ms": NUM, "queue_p95_ms": NUM, "slo_ms": NUM,
             "within_slo": NUM, "goodput_rps": NUM, "kind": str, "profile": str,
             "dram_gbps": NUM, "nvme_gbps": NUM, "dram_efficiency": NUM,
             "dram_efficiency_source": str, "nvme_efficiency": NUM,
             "nvme_efficiency_source": str, "load_dram_bytes": int, "load_nvme_bytes": int},
    "put": PAIRED, "get": OP, "get_dram": PAIRED, "get_nvme": OP,
    "lookup": {"calls": int, "blocks": int, "seconds": NUM, "p50_us": NUM, "p99_us": NUM,
               "keys": int, "lookups_per_s": NUM, "keys_per_s": NUM},
    "tiers": {"dram": {"hit_blocks": int, "bytes_in": int, "bytes_out": int, "evictions": int,
                       "expirations": int, "promotions_in": int},
              "nvme": {"hit_blocks": int, "bytes_in": int, "bytes_out": int,
                       "bytes_written": int, "bytes_read": int, "demotions_in": int,
                       "evictions": int, "expirations": int,
                       "demoting_put_write_gb_per_s": NUM}},
    "store": {"put_rejected": int, "put_present": int, "get_short": int, "verify_errors": int},
}
DEFAULT = dict(SWARM, quick=bool, total_wall_s=NUM,
               ceilings={"machine": {"memcpy_gb_per_s": NUM, "nvme_read_gb_per_s": NUM},
                         "nvme": {"measured": bool, "why_not": str, "slot_bytes": int,
                                  "slots": int, "slots_written": int, "slots_resident": int,
                                  "slots_resident_after_promotion": int},
                         "rows": list},
               ttl={"block_bytes": int, "runs": list},
               story={"kind": str, "profile": str, "slo_ms": NUM, "dram_real_bytes": int,
                      "nvme_real_bytes": int, "knee_dram": int, "knee_dram_nvme": int,
                      "more_agents": NUM, "measured": dict, "ramps": list})
RAMP = {"kind": str, "profile": str, "knee_agents": int, "max_agents": int,
        "first_missed_agents": int, "exhausted": bool, "capped": bool,
        "search": {"step_s": NUM, "warm_s": NUM, "start": int, "max": int, "growth": NUM,
                   "resolution": NUM, "max_steps": int, "wall_budget_s": NUM},
        "windows": list}
STEP = {"agents": int, "requests": int, "hit_ratio": NUM, "ttft_p50_ms": NUM,
        "ttft_p95_ms": NUM, "within_slo": bool, "wall_s": NUM}
SIDE = {"work": str, "block_bytes": int, "rate": NUM, "calls": int, "blocks": int,
        "blocks_per_call": NUM, "seconds": NUM}
NVME_SIDE = dict(SIDE, slot_bytes=int, queue_depth=int, reads_per_block=NUM,
                 writes_per_block=NUM)
ROW = {"row": str, "path": str, "ceiling_is": str, "unit": str, "ratio": NUM, "ratio_is": str}
TTL_ROW = {"dram_ttl_s": NUM, "nvme_ttl_s": NUM, "source": str, "hit_ratio": NUM,
           "hit_ratio_dram": NUM, "hit_ratio_nvme": NUM, "prefill_avoided_ratio": NUM,
           "dram_expirations": int, "nvme_expirations": int, "wall_s": NUM}
# Statistics of an empty sample are null (e.g. no NVMe gets in a tiny run).
MAY_BE_NULL = {"p50_us", "p99_us", "memcpy_gb_per_s", "ratio", "ratio_p10", "ratio_p90"}


def fail(msg):
    FAILURES.append(msg)
    print("FAIL:", msg)


def run(args, want_rc=0, timeout=100):
    p = subprocess.run([BENCH] + args, capture_output=True, text=True, timeout=timeout)
    if p.returncode != want_rc:
        fail(f"{args}: exit {p.returncode}, wanted {want_rc}; stderr: {p.stderr.strip()[-500:]}")
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
        if v is None and name in MAY_BE_NULL:
            continue
        ok = isinstance(v, bool) if kind is bool else \
            not isinstance(v, bool) and isinstance(v, kind)
        if not ok:
            fail(f"{where}.{name}: {v!r} is not {kind}")
        elif isinstance(v, float) and not math.isfinite(v):
            fail(f"{where}.{name}: {v!r} is not finite")


def load(p, args):
    try:
        return json.loads(p.stdout)
    except json.JSONDecodeError as e:
        fail(f"{args}: stdout is not one JSON value: {e}; first bytes: {p.stdout[:200]!r}")
        return None


def consistent(o, where):
    if o["blocks_hit"] > o["blocks_requested"]:
        fail(f"{where}: more blocks hit than requested")
    if not 0 <= o["hit_ratio"] <= o["hit_ratio_unbounded"] + 1e-12 <= 1 + 1e-12:
        fail(f"{where}: hit ratio {o['hit_ratio']} above the unbounded {o['hit_ratio_unbounded']}")
    tiers = o["tiers"]["dram"]["hit_blocks"] + o["tiers"]["nvme"]["hit_blocks"]
    if tiers != o["blocks_hit"]:
        fail(f"{where}: DRAM + NVMe hits {tiers} != blocks hit {o['blocks_hit']}")
    if o["tokens"]["from_cache"] + o["tokens"]["prefilled"] != o["tokens"]["prompt"]:
        fail(f"{where}: tokens from cache + prefilled != prompt tokens")
    if o["store"]["verify_errors"] or o["store"]["get_short"]:
        fail(f"{where}: {o['store']['verify_errors']} wrong blocks, "
             f"{o['store']['get_short']} short gets")
    if o["requests"] <= 0 or o["lookup"]["calls"] != o["requests"]:
        fail(f"{where}: {o['requests']} requests, {o['lookup']['calls']} lookups")
    t = o["ttft"]
    if not t["p50_ms"] <= t["p95_ms"] <= t["p99_ms"]:
        fail(f"{where}: TTFT percentiles out of order")


TINY = ["--agents", "3", "--duration", "20m", "--block-tokens", "256",
        "--scale-bytes", "1/4096", "--dram-bytes", "2M", "--nvme-bytes", "32M"]


def leftovers(d):
    return [f for f in os.listdir(d) if f.startswith("kvtier-bench-")]


def test_swarm_json():
    with tempfile.TemporaryDirectory() as d:
        args = ["swarm"] + TINY + ["--dir", d, "--json"]
        p = run(args)
        o = load(p, args)
        if o is None:
            return
        check_fields(o, HEADER, "swarm")
        check_fields(o, SWARM, "swarm")
        if FAILURES:
            return
        if o["bench"] != "swarm" or o["config"]["mode"] != "static":
            fail(f"swarm: bench {o['bench']!r}, mode {o['config']['mode']!r}")
        consistent(o, "swarm")
        if not o["config"]["bytes_scaled"]:
            fail("swarm: 1/4096 of the bytes is not reported as scaled")
        if o["config"]["block_bytes"] != 256 * 128 * 1024 // 4096:
            fail(f"swarm: block bytes {o['config']['block_bytes']}, wanted 8192")
        if o["tiers"]["nvme"]["hit_blocks"] == 0:
            fail("swarm: a 2 MiB DRAM tier and nothing from NVMe")
        if leftovers(d):
            fail(f"swarm: left {leftovers(d)} in --dir")
        # The same seed gives the same hits; the time does not matter.
        p2 = run(args)
        o2 = load(p2, args)
        if o2 and (o2["blocks_hit"], o2["hit_ratio_nvme"]) != (o["blocks_hit"], o["hit_ratio_nvme"]):
            fail("swarm: the same seed gave other hit counts")
    p = run(["swarm"] + TINY + ["--nvme-bytes", "0"])
    for word in ("hit ratio", "TTFT", "prefill", "put", "get", "lookup", "memcpy"):
        if word not in p.stdout:
            fail(f"swarm text report lacks '{word}'")


def check_ramp(r, where):
    if not isinstance(r, dict):
        fail(f"{where}: no 'ramp' object")
        return False
    check_fields(r, RAMP, where)
    for i, w in enumerate(r.get("windows", [])):
        # a step that judged no request reports null percentiles
        check_fields({k: v for k, v in w.items() if v is not None}, 
                     {k: t for k, t in STEP.items() if w.get(k) is not None or t is not NUM},
                     f"{where}.windows[{i}]")
    return not FAILURES


RAMP_TINY = ["swarm", "--mode", "ramp", "--agents", "6", "--ramp-start", "2", "--ramp-step", "10m",
             "--ramp-warm", "1m", "--block-tokens", "256", "--scale-bytes", "1/4096",
             "--dram-bytes", "2M", "--nvme-bytes", "0", "--no-memcpy", "--json"]


def test_ramp():
    # With an SLO nobody misses, every step passes: 2, 4, then the most
    # --agents allows.
    args = RAMP_TINY + ["--slo-ms", "1e9"]
    o = load(run(args), args)
    if o is None:
        return
    check_fields(o, SWARM, "ramp")
    r = o.get("ramp")
    if not check_ramp(r, "ramp.ramp"):
        return
    got = [w["agents"] for w in r["windows"]]
    if r["knee_agents"] != 6 or r["max_agents"] != 6 or not r["exhausted"] or got != [2, 4, 6]:
        fail(f"ramp: knee {r['knee_agents']}, exhausted {r['exhausted']}, steps {got}; "
             "wanted 6, true, [2, 4, 6]")
    if not all(w["within_slo"] for w in r["windows"]):
        fail("ramp: a step missed an SLO of 1e9 ms")
    if o["config"]["workload"]["agents"] != 6:
        fail(f"ramp: the run reported is not the knee's: {o['config']['workload']['agents']} agents")
    # An SLO nobody meets: the first step misses and the search bisects down to 1.
    args = RAMP_TINY + ["--slo-ms", "1"]
    o = load(run(args), args)
    if o is None:
        return
    r = o.get("ramp")
    if not check_ramp(r, "ramp(1 ms).ramp"):
        return
    got = [w["agents"] for w in r["windows"]]
    if r["knee_agents"] != 0 or r["first_missed_agents"] != 1 or got != [2, 1]:
        fail(f"ramp(1 ms): knee {r['knee_agents']}, first missed {r['first_missed_agents']}, "
             f"steps {got}; wanted 0, 1, [2, 1]")
    p = run(RAMP_TINY[:-1] + ["--slo-ms", "1e9"])
    for word in ("knee", "6 agents", "modelled", "profile"):
        if word not in p.stdout:
            fail(f"ramp text report lacks '{word}'")


def test_profiles():
    base = ["swarm"] + TINY + ["--nvme-bytes", "0", "--no-memcpy", "--json"]
    o = load(run(base), base)
    if o is None:
        return
    pr = o["config"]["profile"]
    if pr["name"] != "h200-pcie5" or o["config"]["gpus"] != 8 or pr["gpus"]["value"] != 8:
        fail(f"profiles: default {pr['name']} with {o['config']['gpus']} GPUs; wanted h200-pcie5, 8")
    if pr["nvme_gbps"]["value"] != pr["nvme_drives"]["value"] * pr["nvme_drive_gbps"]["value"]:
        fail("profiles: NVMe per node is not drives x rate")
    if o["ttft"]["dram_gbps"] != pr["gpu_gbps"]["value"] or o["ttft"]["dram_efficiency"] != 1:
        fail(f"profiles: DRAM loads at {o['ttft']['dram_gbps']} x {o['ttft']['dram_efficiency']}"
             f" (--no-memcpy: no efficiency measured, 1)")
    # Loads are bytes / the profile's rate: half the link, twice the load,
    # whatever this machine's memcpy did (the hits are the same: same seed).
    loads = []
    for gbps in ("10", "20"):
        args = base + ["--gpu-gbps", gbps]
        o2 = load(run(args), args)
        if o2 is None:
            return
        if o2["config"]["profile"]["gpu_gbps"] != {"value": float(gbps), "source": "--gpu-gbps"} \
                and o2["config"]["profile"]["gpu_gbps"] != {"value": int(gbps), "source": "--gpu-gbps"}:
            fail(f"profiles: --gpu-gbps {gbps} gave {o2['config']['profile']['gpu_gbps']}")
        loads.append((o2["ttft"]["load_p50_ms"], o2["ttft"]["load_p99_ms"]))
    if not loads[0][0] > 0 or not all(close(a, 2 * b, 1e-3) for a, b in zip(loads[0], loads[1])):  # JSON keeps ~5 digits
        fail(f"profiles: loads at 10 and 20 GB/s {loads}: not bytes / rate")
    args = base + ["--profile", "gb200", "--prefill-tokens-per-s", "5000"]
    o3 = load(run(args), args)
    if o3 is not None:
        if o3["config"]["gpus"] != 4 or o3["config"]["prefill_tokens_per_s"] != 5000 or \
                o3["config"]["profile"]["prefill_tps_llama_3_1_8b"]["source"] != "--prefill-tokens-per-s":
            fail(f"profiles: gb200 with --prefill-tokens-per-s 5000: {o3['config']['gpus']} GPUs, "
                 f"{o3['config']['prefill_tokens_per_s']} tok/s")
    args = ["swarm"] + TINY + ["--profile", "measured", "--json"]
    with tempfile.TemporaryDirectory() as d:
        o4 = load(run(args + ["--dir", d]), args)
    if o4 is not None:
        g = o4["config"]["profile"]["gpu_gbps"]
        if not (g["value"] > 0 and g["source"].startswith("measured in this run")) or \
                o4["config"]["gpus"] != 1:
            fail(f"profiles: measured link {g}, {o4['config']['gpus']} GPUs")
        if not o4["ttft"]["dram_efficiency_source"].startswith("measured in this run"):
            fail(f"profiles: DRAM efficiency {o4['ttft']['dram_efficiency_source']!r}")


def test_default_quick():
    with tempfile.TemporaryDirectory() as d:
        args = ["--quick", "--dir", d, "--json"]
        p = run(args)
        o = load(p, args)
        if o is None:
            return
        check_fields(o, HEADER, "default")
        check_fields(o, DEFAULT, "default")
        if FAILURES:
            return
        if o["bench"] != "default" or not o["quick"]:
            fail(f"default: bench {o['bench']!r}, quick {o['quick']!r}")
        consistent(o, "default")
        runs = o["ttl"]["runs"]
        if [(r["dram_ttl_s"], r["nvme_ttl_s"]) for r in runs] != \
                [(0, 0), (60, 60), (300, 300), (3600, 3600), (300, 3600)]:
            fail(f"default: TTL rows {[(r['dram_ttl_s'], r['nvme_ttl_s']) for r in runs]}")
        for i, r in enumerate(runs):
            check_fields(r, TTL_ROW, f"default.ttl.runs[{i}]")
        if len(runs) == 5 and not FAILURES:
            if abs(runs[0]["hit_ratio"] - o["hit_ratio"]) > 1e-12:
                fail("default: the no-TTL row is not the main run")
            # A shorter idle TTL can only lose hits (same workload, same capacities).
            h = [r["hit_ratio"] for r in runs[:4]]
            if not h[1] <= h[2] <= h[3] <= h[0] + 1e-12:
                fail(f"default: hit ratio not monotone in the TTL: {h}")
        like_with_like(o)
        st = o["story"]
        if len(st["ramps"]) != 2:
            fail(f"default: {len(st['ramps'])} ramps, wanted 2")
        for i, rp in enumerate(st["ramps"]):
            if check_ramp(rp.get("ramp"), f"default.story.ramps[{i}].ramp") and \
                    rp["ramp"]["knee_agents"] != [st["knee_dram"], st["knee_dram_nvme"]][i]:
                fail(f"default: ramp {i}'s knee is not the story's")
        if st["more_agents"] != st["knee_dram_nvme"] - st["knee_dram"]:
            fail("default: more_agents is not the difference of the knees")
        if leftovers(d):
            fail(f"default: left {leftovers(d)} in --dir")
        p = run(["--quick", "--dir", d, "--no-ttl"])
        for word in ("hit ratio", "put", "get", "lookup", "memcpy", "ceiling", "TTFT",
                     "the answer", "DRAM alone", "DRAM + NVMe", "modelled", "measured here"):
            if word not in p.stdout:
                fail(f"default text report lacks '{word}'")


def close(a, b, rel):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def like_with_like(o):
    """Each ceiling row does the library's work on the library's data: the
    same work, block size, blocks per call (and, for NVMe, queue depth and
    whole-slot reads and writes per block); the raw NVMe loop reads only
    slots kvtier wrote (each read finds kvtier's header and key for that
    slot) and no more distinct slots than the store holds in NVMe."""
    c = o["ceilings"]
    rows = c["rows"]
    bb = o["config"]["block_bytes"]
    if [r.get("row") for r in rows] != ["dram_get", "dram_put", "nvme_get", "nvme_get_promote"]:
        fail(f"default: ceiling rows {[r.get('row') for r in rows]}")
        return
    n = c["nvme"]
    if not n["measured"]:
        fail(f"default: NVMe rows not measured: {n['why_not']}")
        return
    if not 0 < n["slots_resident"] <= n["slots_written"] <= n["slots"]:
        fail(f"default: slots resident {n['slots_resident']}, written {n['slots_written']}, "
             f"in the file {n['slots']}")
    for r in rows:
        w = f"default.ceilings.{r['row']}"
        check_fields(r, ROW, w)
        nv = r["row"].startswith("nvme")
        for k in ("kvtier", "ceiling"):
            check_fields(r.get(k, {}), NVME_SIDE if nv else SIDE, f"{w}.{k}")
        if FAILURES:
            return
        lib, top = r["kvtier"], r["ceiling"]
        if lib["work"] != top["work"]:
            fail(f"{w}: kvtier does {lib['work']!r}, the ceiling {top['work']!r}")
        if not lib["block_bytes"] == top["block_bytes"] == bb:
            fail(f"{w}: block bytes {lib['block_bytes']} vs {top['block_bytes']} (run: {bb})")
        if lib["blocks"] <= 0 or top["blocks"] <= 0:
            fail(f"{w}: no blocks measured ({lib['blocks']}, {top['blocks']})")
            continue
        if not close(lib["blocks_per_call"], top["blocks_per_call"], 0.05):
            fail(f"{w}: {lib['blocks_per_call']} blocks per call vs {top['blocks_per_call']}")
        if not nv:
            # memcpy pairs: the same calls over the same blocks
            if lib["calls"] != top["calls"]:
                fail(f"{w}: {lib['calls']} calls paired with {top['calls']}")
            continue
        for k in ("slot_bytes", "queue_depth"):
            if lib[k] != top[k]:
                fail(f"{w}: {k} {lib[k]} vs {top[k]}")
        if lib["slot_bytes"] != n["slot_bytes"]:
            fail(f"{w}: slot bytes {lib['slot_bytes']} vs the file's {n['slot_bytes']}")
        # whole-slot transfers per block: kvtier's (its nvme.reads / writes) and the raw loop's
        for k in ("reads_per_block", "writes_per_block"):
            if abs(lib[k] - top[k]) > 0.02:
                fail(f"{w}: kvtier {lib[k]} {k}, the raw loop {top[k]}")
        if not 0.98 <= lib["reads_per_block"] <= 1.02:
            fail(f"{w}: kvtier read {lib['reads_per_block']} slots per block, not one")
        if top["reads_verified"] != top["blocks"]:
            fail(f"{w}: {top['blocks'] - top['reads_verified']} of {top['blocks']} raw reads "
                 "did not find the block header kvtier wrote there (an unwritten slot?)")
        if lib["blocks_returned"] != lib["blocks"]:
            fail(f"{w}: kvtier returned {lib['blocks_returned']} of {lib['blocks']} blocks")
        limit = n["slots_resident"] if r["row"] == "nvme_get" else \
            n["slots_resident_after_promotion"]
        if not 0 < top["distinct_slots_read"] <= limit:
            fail(f"{w}: raw loop read {top['distinct_slots_read']} distinct slots, "
                 f"{limit} hold blocks in NVMe")
        if r["row"] == "nvme_get" and lib["writes_per_block"] != 0:
            fail(f"{w}: a get without promotion wrote {lib['writes_per_block']} slots per block")
        if top["rate"] > 0 and not close(r["ratio"], lib["rate"] / top["rate"], 1e-3):
            fail(f"{w}: ratio {r['ratio']} is not {lib['rate']} / {top['rate']}")


def test_sigint_removes_the_file():
    with tempfile.TemporaryDirectory() as d:
        # Long enough to be interrupted: ~10 virtual hours of 3 agents.
        proc = subprocess.Popen([BENCH, "swarm", "--dir", d, "--duration", "200h"] + TINY[:2] +
                                ["--scale-bytes", "1/4096", "--dram-bytes", "2M",
                                 "--nvme-bytes", "32M", "--no-memcpy"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        t0 = time.time()
        while not leftovers(d) and time.time() - t0 < 20 and proc.poll() is None:
            time.sleep(0.01)
        if not leftovers(d):
            fail("sigint: the NVMe file never appeared")
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            fail("sigint: the run did not stop")
        if proc.returncode != -signal.SIGINT:
            fail(f"sigint: exit {proc.returncode}, wanted death by SIGINT")
        if leftovers(d):
            fail(f"sigint: left {leftovers(d)}")


def test_usage_errors():
    for args in (["swarm", "--mode", "fast"], ["swarm", "--tool-share", "2"],
                 ["swarm", "--scale-bytes", "3/2"], ["swarm", "--model", "gpt-9"],
                 ["swarm", "--duration", "soon"], ["swarm", "--cycle", "zigzag"],
                 ["swarm", "--dir", "/nonexistent/kvtier"], ["--agents", "-1"],
                 ["default", "--duration", "0"], ["--no-such-flag"],
                 ["swarm", "--profile", "h300"], ["swarm", "--gpu-gbps", "0"],
                 ["swarm", "--gpus", "1.5"], ["default", "--profile", "tpu"],
                 ["swarm", "--mode", "ramp", "--ramp-start", "0"]):
        p = run(args, want_rc=2)
        if not p.stderr.strip():
            fail(f"{args}: no message on stderr")
        if p.stdout.strip():
            fail(f"{args}: wrote to stdout on a usage error")
    for args in (["swarm", "--help"], ["default", "--help"]):
        p = run(args)
        if "usage" not in p.stdout:
            fail(f"{args}: no usage text")


def main():
    if not build_has.nvme_tier(BENCH):
        print("skip: libkvtier was built without the NVMe tier, which swarm and the "
              "default run need")
        return 77
    for t in (test_usage_errors, test_swarm_json, test_ramp, test_profiles, test_default_quick,
              test_sigint_removes_the_file):
        before = len(FAILURES)
        t0 = time.time()
        t()
        print(("ok  " if len(FAILURES) == before else "FAIL") +
              f" {t.__name__} ({time.time() - t0:.1f} s)")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
