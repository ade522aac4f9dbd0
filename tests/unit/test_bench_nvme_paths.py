#!/usr/bin/env python3
# test_bench_nvme_paths.py — `kvtier-bench micro --tier nvme --paths A,B` at a tiny size: exit code, JSON fields, the devices' files.
"""Usage: test_bench_nvme_paths.py PATH/TO/kvtier-bench

A smoke test, not a benchmark: two files in the build tree (O_DIRECT needs a
real filesystem), one block size, one run. Exits 77 (skipped) where the NVMe
tier can't run."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

BENCH = sys.argv[1] if len(sys.argv) > 1 else "kvtier-bench"


def main():
    root = os.environ.get("KVT_BUILD_ROOT", os.getcwd())
    d = tempfile.mkdtemp(prefix="bench-nvme-paths-", dir=root)
    try:
        paths = ",".join(os.path.join(d, f"dev{i}") for i in range(2))
        args = ["micro", "--tier", "nvme", "--paths", paths, "--block-bytes", "256K",
                "--qd", "4", "--total-bytes", "2M", "--runs", "1", "--json"]
        p = subprocess.run([BENCH] + args, capture_output=True, text=True, timeout=100)
        if p.returncode == 1 and any(w in p.stderr for w in ("built without", "not built",
                                                              "O_DIRECT", "direct I/O")):
            print("skip:", p.stderr.strip().splitlines()[-1])
            return 77
        if p.returncode != 0:
            print(f"FAIL {args}: exit {p.returncode}; stderr: {p.stderr.strip()}")
            return 1
        o = json.loads(p.stdout)
        bad = []
        if o.get("mode") != "paths" or o.get("devices") != 2 or len(o.get("rows", [])) != 1:
            bad.append(f"mode/devices/rows: {o.get('mode')} {o.get('devices')} {o.get('rows')}")
        for r in o.get("rows", []):
            for f in ("put_gb_per_s", "get_gb_per_s", "raw_sum_put_gb_per_s",
                      "raw_sum_get_gb_per_s", "raw_together_put_gb_per_s",
                      "raw_together_get_gb_per_s"):
                if not isinstance(r.get(f), (int, float)) or not r[f] > 0:
                    bad.append(f"{f} = {r.get(f)}")
        for i in range(2):
            if not os.path.exists(os.path.join(d, f"dev{i}")):
                bad.append(f"dev{i} was not created")
        for b in bad:
            print("FAIL", b)
        return 1 if bad else 0
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
