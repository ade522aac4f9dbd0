#!/usr/bin/python3
# plot.py — draws `kvtier-bench sweep --csv` files: hit ratio vs capacity per policy, hit ratio vs TTL, DRAM/NVMe split.
"""Usage: plot.py SWEEP.csv [SWEEP.csv ...] [--out DIR] [--prefix NAME]

For each trace (the CSV's `trace` column) it writes, when the data has them:
  <prefix><trace>-capacity.png  hit ratio vs DRAM capacity, one line per policy
                                (rows without TTL and without NVMe); the
                                unlimited store's ratio as a dashed line
  <prefix><trace>-ttl.png       hit ratio vs TTL (log scale, "inf" at the
                                right), one line per policy and capacity, and
                                the re-prefills per session due to expiry
  <prefix><trace>-tiers.png     DRAM and NVMe hits stacked, per NVMe capacity
Needs matplotlib (Agg backend: no display). Prints the files it wrote.
"""
import argparse
import csv
import math
import os
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 (the backend must be chosen first)

POLICY_ORDER = ["lru", "sieve", "s3fifo", "prefix", "default"]


def load(paths):
    rows = []
    for p in paths:
        with open(p, newline="") as f:
            for r in csv.DictReader(f):
                r["capacity_blocks"] = int(r["capacity_blocks"])
                r["capacity_unlimited"] = r["capacity_unlimited"] == "1"
                r["nvme_capacity_blocks"] = int(r["nvme_capacity_blocks"])
                r["ttl"] = math.inf if r["ttl_s"] == "inf" else float(r["ttl_s"])
                for k in ("hit_ratio", "hit_ratio_unlimited", "expiry_reprefills_per_session"):
                    r[k] = float(r[k])
                for k in ("total_blocks", "dram_hits", "nvme_hits"):
                    r[k] = int(r[k])
                rows.append(r)
    return rows


def policy_key(p):
    return (POLICY_ORDER.index(p) if p in POLICY_ORDER else len(POLICY_ORDER), p)


def fname(out, prefix, trace, what):
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in trace)
    return os.path.join(out, f"{prefix}{safe}-{what}.png")


def capacity_plot(trace, rows, path):
    pts = [r for r in rows if r["ttl"] == math.inf and r["nvme_capacity_blocks"] == 0
           and not r["capacity_unlimited"]]
    caps = sorted({r["capacity_blocks"] for r in pts})
    if len(caps) < 2:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    by = defaultdict(list)
    for r in pts:
        by[r["policy"]].append((r["capacity_blocks"], 100 * r["hit_ratio"]))
    for pol in sorted(by, key=policy_key):
        xy = sorted(by[pol])
        ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o", label=pol)
    unl = 100 * rows[0]["hit_ratio_unlimited"]
    ax.axhline(unl, color="gray", linestyle="--", linewidth=1)
    ax.text(caps[0], unl, f" unlimited store {unl:.2f}%", va="top", color="gray", fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("DRAM capacity (blocks)")
    ax.set_ylabel("block hit ratio (%)")
    ax.set_title(f"{trace}: hit ratio vs capacity (no TTL, DRAM only)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(title="policy")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def ttl_plot(trace, rows, path):
    pts = [r for r in rows if r["nvme_capacity_blocks"] == 0]
    ttls = sorted({r["ttl"] for r in pts})
    if len(ttls) < 2:
        return False
    finite = [t for t in ttls if t != math.inf]
    # "inf" sits one decade right of the longest finite TTL, labelled as such.
    inf_x = (max(finite) if finite else 1) * 10

    def x_of(t):
        return inf_x if t == math.inf else t

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    by = defaultdict(list)
    for r in pts:
        cap = "unlimited" if r["capacity_unlimited"] else str(r["capacity_blocks"])
        by[(r["policy"], cap)].append((x_of(r["ttl"]), 100 * r["hit_ratio"],
                                       r["expiry_reprefills_per_session"]))
    # Only points swept over TTL make a curve (a capacity sweep in the same
    # CSVs adds single no-TTL points).
    by = {k: v for k, v in by.items() if len({x for x, _, _ in v}) > 1}
    if not by:
        plt.close(fig)
        return False
    multi_pol = len({p for p, _ in by}) > 1
    for (pol, cap) in sorted(by, key=lambda k: (policy_key(k[0]), k[1])):
        xy = sorted(by[(pol, cap)])
        label = f"{pol}, {cap} blocks" if multi_pol else f"{cap} blocks"
        ax.plot([x for x, _, _ in xy], [y for _, y, _ in xy], marker="o", label=label)
        ax2.plot([x for x, _, _ in xy], [z for _, _, z in xy], marker="o", label=label)
    for a in (ax, ax2):
        a.set_xscale("log")
        ticks = finite + [inf_x]
        a.set_xticks(ticks)
        a.set_xticklabels([f"{t:g}" for t in finite] + ["inf"])
        a.minorticks_off()
        a.set_xlabel("idle TTL (s)")
        a.grid(True, alpha=0.3)
    ax.set_ylabel("block hit ratio (%)")
    ax.set_title(f"{trace}: hit ratio vs TTL")
    ax2.set_ylabel("requests re-prefilled due to expiry\nper session (= per trace file)")
    ax2.set_title("re-prefills due to expiry")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def tiers_plot(trace, rows, path):
    pts = [r for r in rows if r["nvme_capacity_blocks"] > 0 and r["ttl"] == math.inf]
    if not pts:
        return False
    pts.sort(key=lambda r: (policy_key(r["policy"]), r["capacity_blocks"],
                            r["nvme_capacity_blocks"]))
    labels = [f"{r['policy']}\nDRAM {r['capacity_blocks']}\nNVMe {r['nvme_capacity_blocks']}"
              for r in pts]
    dram = [100 * r["dram_hits"] / r["total_blocks"] for r in pts]
    nvme = [100 * r["nvme_hits"] / r["total_blocks"] for r in pts]
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(pts) + 2), 4.5))
    xs = range(len(pts))
    ax.bar(xs, dram, label="from DRAM")
    ax.bar(xs, nvme, bottom=dram, label="from NVMe")
    unl = 100 * pts[0]["hit_ratio_unlimited"]
    ax.axhline(unl, color="gray", linestyle="--", linewidth=1)
    ax.text(-0.4, unl, f"unlimited store {unl:.2f}%", va="bottom", color="gray", fontsize=8)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("block hit ratio (%)")
    ax.set_title(f"{trace}: hits per tier (capacities in blocks)")
    ax.legend()
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="+", help="files written by kvtier-bench sweep --csv")
    ap.add_argument("--out", default=".", help="directory for the PNG files (default .)")
    ap.add_argument("--prefix", default="", help="prepended to every file name")
    a = ap.parse_args(argv)
    try:
        rows = load(a.csv)
    except (OSError, KeyError, ValueError) as e:
        print(f"plot.py: cannot read the CSV: {e!r}", file=sys.stderr)
        return 2
    if not rows:
        print("plot.py: no rows", file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    traces = defaultdict(list)
    for r in rows:
        traces[r["trace"]].append(r)
    wrote = 0
    for trace, rs in traces.items():
        for what, fn in (("capacity", capacity_plot), ("ttl", ttl_plot), ("tiers", tiers_plot)):
            path = fname(a.out, a.prefix, trace, what)
            if fn(trace, rs, path):
                print(path)
                wrote += 1
    if not wrote:
        print("plot.py: nothing to draw (need 2+ capacities, 2+ TTLs, or NVMe rows)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
