#!/usr/bin/env python3
# test_bench_default.py — the default run's ceilings compare like with like, checked against counts the ceilings do not produce themselves.
"""Usage: test_bench_default.py PATH/TO/kvtier-bench

Issue 19: the default run's first table once set kvtier's NVMe gets
(with promotion) next to a raw loop reading random offsets of the whole
2 GiB file, most of them never written (the filesystem answers those with
zeros, without the device). This test runs the default run at --quick sizes
and checks, from the JSON and the text:

- every row names the operation both sides did, and it is the same;
- the NVMe raw loops read only slots kvtier wrote: each raw read found
  kvtier's header and key for its slot; no more distinct slots than the
  store held in NVMe; and no more written slots than the store's own
  counters say it wrote (an independent count: the tier's nvme.bytes_written);
- the get without promotion wrote nothing on either side; the promoting get
  and its raw loop wrote as many slots per block;
- each ratio is the one its row describes, and the machine facts the
  comparisons depend on (memcpy GB/s, O_DIRECT read GB/s of the written
  slots) are printed next to the table and agree with the rows.

A smoke test, not a benchmark: numbers are only checked for consistency.
"""
import json
import os
import subprocess
import sys
import tempfile

BENCH = sys.argv[1] if len(sys.argv) > 1 else "kvtier-bench"
FAILURES = []


def fail(msg):
    FAILURES.append(msg)
    print("FAIL:", msg)


def run(args):
    return subprocess.run([BENCH] + args, capture_output=True, text=True, timeout=300)


def close(a, b, rel):
    return abs(a - b) <= rel * max(abs(a), abs(b), 1e-12)


def check_json(o):
    c = o["ceilings"]
    rows = {r["row"]: r for r in c["rows"]}
    if list(rows) != ["dram_get", "dram_put", "nvme_get", "nvme_get_promote"]:
        fail(f"ceiling rows {list(rows)}")
        return
    n = c["nvme"]
    if not n["measured"]:
        fail(f"NVMe rows not measured: {n['why_not']}")
        return
    bb = o["config"]["block_bytes"]
    slot = n["slot_bytes"]
    for name, r in rows.items():
        lib, top = r["kvtier"], r["ceiling"]
        # the JSON names the compared operation, the same on both sides
        if not lib["work"] or lib["work"] != top["work"]:
            fail(f"{name}: kvtier does {lib['work']!r}, its ceiling {top['work']!r}")
        if not r["ceiling_is"]:
            fail(f"{name}: the row does not say what its ceiling is")
        if top["rate"] > 0 and r["ratio_is"] == "kvtier rate / ceiling rate" and \
                not close(r["ratio"], lib["rate"] / top["rate"], 1e-3):
            fail(f"{name}: ratio {r['ratio']} is not {lib['rate']} / {top['rate']}")
    # Written slots: what the header scan found cannot exceed what the
    # store wrote (bytes_written counts whole-slot writes, or at least the
    # payload of each); resident ones are a subset of the written ones.
    written_bytes = o["tiers"]["nvme"]["bytes_written"]
    if not 0 < n["slots_written"] * bb <= written_bytes:
        fail(f"{n['slots_written']} slots hold a header, but the store wrote only "
             f"{written_bytes} bytes of {bb}-byte blocks")
    if not 0 < n["slots_resident"] <= n["slots_written"] <= n["slots"]:
        fail(f"slots: resident {n['slots_resident']}, written {n['slots_written']}, "
             f"file {n['slots']}")
    if not 0 < n["slots_resident_after_promotion"] <= n["slots"]:
        fail(f"slots resident after promotion: {n['slots_resident_after_promotion']}")
    for name, resident in (("nvme_get", n["slots_resident"]),
                           ("nvme_get_promote", n["slots_resident_after_promotion"])):
        lib, top = rows[name]["kvtier"], rows[name]["ceiling"]
        # the raw loop read only slots kvtier wrote, each found kvtier's header and key
        if top["reads_verified"] != top["blocks"] or top["blocks"] <= 0:
            fail(f"{name}: {top['reads_verified']} of {top['blocks']} raw reads found "
                 "kvtier's header and key")
        if not 0 < top["distinct_slots_read"] <= resident:
            fail(f"{name}: raw loop read {top['distinct_slots_read']} distinct slots, "
                 f"{resident} hold blocks in NVMe")
        if lib["blocks_returned"] != lib["blocks"]:
            fail(f"{name}: kvtier returned {lib['blocks_returned']} of {lib['blocks']}")
        for k in ("slot_bytes", "queue_depth", "block_bytes"):
            if lib[k] != top[k]:
                fail(f"{name}: {k} {lib[k]} vs {top[k]}")
        if lib["slot_bytes"] != slot:
            fail(f"{name}: slot bytes {lib['slot_bytes']}, the file's {slot}")
        for k in ("reads_per_block", "writes_per_block"):
            if abs(lib[k] - top[k]) > 0.02:
                fail(f"{name}: {k}: kvtier {lib[k]}, raw {top[k]}")
        if not close(lib["blocks_per_call"], top["blocks_per_call"], 0.05):
            fail(f"{name}: blocks per call {lib['blocks_per_call']} vs {top['blocks_per_call']}")
    g = rows["nvme_get"]
    # a get without promotion next to raw reads: neither side writes
    if g["kvtier"]["writes_per_block"] != 0 or g["ceiling"]["writes_per_block"] != 0:
        fail(f"nvme_get: writes per block {g['kvtier']['writes_per_block']}, "
             f"{g['ceiling']['writes_per_block']}: not a read next to a read")
    # the machine facts agree with the rows they explain
    m = c["machine"]
    if not close(m["nvme_read_gb_per_s"], g["ceiling"]["rate"] * slot / 1e9, 1e-3):
        fail(f"machine nvme_read_gb_per_s {m['nvme_read_gb_per_s']} is not the raw read row's")
    if not close(m["memcpy_gb_per_s"], rows["dram_get"]["ceiling"]["rate"], 1e-3):
        fail(f"machine memcpy_gb_per_s {m['memcpy_gb_per_s']} is not the DRAM get row's")


def check_text(out):
    lines = out.splitlines()
    try:
        head = next(i for i, l in enumerate(lines) if "next to their ceilings" in l)
    except StopIteration:
        fail("text: no ceilings table")
        return
    block = "\n".join(lines[head:head + 14])
    for want in ("NVMe -> engine (get, no promotion)", "raw reads of the same",
                 "NVMe -> engine + DRAM (get, promotion)", "raw reads + writes",
                 "machine      memcpy", "machine      O_DIRECT reads of written slots",
                 "read only slots kvtier wrote"):
        if want not in block:
            fail(f"text: the ceilings table lacks {want!r}:\n{block}")


def main():
    with tempfile.TemporaryDirectory() as d:
        args = ["--quick", "--dir", d, "--no-ramp", "--no-ttl"]
        p = run(args + ["--json"])
        if p.returncode != 0:
            fail(f"{args} --json: exit {p.returncode}: {p.stderr.strip()[-400:]}")
        else:
            try:
                check_json(json.loads(p.stdout))
            except (ValueError, KeyError, TypeError) as e:
                fail(f"{args} --json: {type(e).__name__}: {e}")
        p = run(args)
        if p.returncode != 0:
            fail(f"{args}: exit {p.returncode}: {p.stderr.strip()[-400:]}")
        else:
            check_text(p.stdout)
        if os.listdir(d):
            fail(f"left {os.listdir(d)} in --dir")
    if FAILURES:
        print(f"{len(FAILURES)} failure(s)")
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
