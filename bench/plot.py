#!/usr/bin/python3
# plot.py — draws `kvtier-bench sweep --csv` files: hit ratio vs capacity per policy, hit ratio vs TTL, DRAM/NVMe split.
"""Usage: plot.py SWEEP.csv [SWEEP.csv ...] [--out DIR] [--prefix NAME]
       plot.py --compare COMPARE.csv [--ttl-csv TTL.csv] [--slo-ms MS] [--out DIR] [--prefix NAME]

For each trace (the CSV's `trace` column) it writes, when the data has them:
  <prefix><trace>-capacity.png  hit ratio vs DRAM capacity, one line per policy
                                (rows without TTL and without NVMe); the
                                unlimited store's ratio as a dashed line
  <prefix><trace>-ttl.png       hit ratio vs TTL (log scale, "inf" at the
                                right), one line per policy and capacity, and
                                the re-prefills per session due to expiry
  <prefix><trace>-tiers.png     DRAM and NVMe hits stacked, per NVMe capacity
With --compare (the files `kvtier-bench compare --out DIR` writes; it calls this):
  <prefix>compare-knee.png      users sustained at the SLO, one bar per store (the
                                cluster tier's labelled "memory grid", as in the talk)
  <prefix>compare-hit.png       hit ratio vs users (the ramp's steps), one line per store
  <prefix>compare-ttft.png      TTFT p50 (dashed) and p95 (solid) vs users, the SLO dashed
  <prefix>compare-goodput.png   goodput (requests within the SLO per s) vs users
  <prefix>ttl.png               hit ratio and re-prefills per session at each TTL,
                                one line per series (the CSV's `config`)
With --swarm-multi (swarm-procs.csv / swarm-nodes.csv, `kvtier-bench swarm --procs-list
or --nodes-list ... --out DIR` writes and calls this):
  <prefix>swarm-<split>-hit.png      hit ratio vs N (processes or nodes), one line per store
                                     ("shared"/"private", or "dram"/"dram+nvme"/"dram+cluster"),
                                     the never-forgetting cache's ratio dashed
  <prefix>swarm-<split>-goodput.png  goodput (requests within the SLO per s) vs N, per store
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


CONFIG_ORDER = ["hbm+dram", "hbm+dram+files", "hbm+dram+nvme", "hbm+dram+cluster"]
# How the talk names a store on its charts: the cluster tier, one large
# tier shared by every process and node, is its "memory grid".
CONFIG_LABEL = {"hbm+dram+cluster": "hbm+dram+cluster\n(memory grid)"}


def config_label(c, one_line=False):
    label = CONFIG_LABEL.get(c, c)
    return label.replace("\n", " ") if one_line else label


def config_key(c):
    return (CONFIG_ORDER.index(c) if c in CONFIG_ORDER else len(CONFIG_ORDER), c)


def num(text):
    return math.nan if text in ("", None) else float(text)


def load_compare(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["agents"] = int(r["agents"])
        r["within_slo"] = r["within_slo"] == "1"
        for k in ("hit_ratio", "ttft_p50_ms", "ttft_p95_ms", "goodput_rps"):
            r[k] = num(r[k])
    return rows


def save(fig, ax, path, legend=True):
    ax.grid(True, alpha=0.3)
    if legend:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ramp_lines(rows):
    """Per store: its ramp steps sorted by users (a bisection runs them out of order)."""
    by = defaultdict(dict)
    for r in rows:
        if r["mode"] == "ramp":
            by[r["config"]][r["agents"]] = r
    return {c: [by[c][a] for a in sorted(by[c])] for c in sorted(by, key=config_key)}


def compare_plots(rows, out, prefix, slo_ms):
    lines = ramp_lines(rows)
    if not lines:
        return []
    wrote = []
    fig, ax = plt.subplots(figsize=(6.5, 4))
    names = list(lines)
    knees = [max([r["agents"] for r in lines[c] if r["within_slo"]], default=0) for c in names]
    bars = ax.bar([config_label(c) for c in names], knees,
                  color=["C0", "C1", "C2", "C3"][: len(names)])
    # No step missed: the search stopped (steps or wall budget) before the
    # store fell off, so its knee is a lower bound.
    open_ended = [not any(not r["within_slo"] for r in lines[c]) for c in names]
    for b, k, lower in zip(bars, knees, open_ended):
        ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"≥{k}" if lower else str(k),
                ha="center", va="bottom")
    ax.set_ylabel("users (agents) sustained at the SLO")
    ax.set_title("the knee: most agents within the TTFT p95 SLO (modelled)")
    wrote.append(save(fig, ax, os.path.join(out, f"{prefix}compare-knee.png"), legend=False))
    for what, key, label, scale in (
            ("hit", "hit_ratio", "block hit ratio (%)", 100),
            ("goodput", "goodput_rps", "goodput (requests within the SLO per s)", 1)):
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for c, rs in lines.items():
            ax.plot([r["agents"] for r in rs], [scale * r[key] for r in rs], marker="o",
                    label=config_label(c, True))
        ax.set_xlabel("users (agents)")
        ax.set_ylabel(label)
        ax.set_title(f"{label.split(' (')[0]} vs users")
        wrote.append(save(fig, ax, os.path.join(out, f"{prefix}compare-{what}.png")))
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, (c, rs) in enumerate(lines.items()):
        xs = [r["agents"] for r in rs]
        ax.plot(xs, [r["ttft_p95_ms"] for r in rs], marker="o", color=f"C{i}",
                label=f"{config_label(c, True)} p95")
        ax.plot(xs, [r["ttft_p50_ms"] for r in rs], linestyle="--", color=f"C{i}",
                label=f"{config_label(c, True)} p50")
    if slo_ms:
        ax.axhline(slo_ms, color="gray", linestyle=":", label=f"SLO {slo_ms:g} ms")
    ax.set_yscale("log")
    ax.set_xlabel("users (agents)")
    ax.set_ylabel("TTFT (ms, modelled)")
    ax.set_title("TTFT vs users")
    wrote.append(save(fig, ax, os.path.join(out, f"{prefix}compare-ttft.png")))
    return wrote


def ttl_label(t):
    if math.isinf(t):
        return "none"
    return f"{t / 3600:g} h" if t >= 3600 else f"{t / 60:g} min" if t >= 60 else f"{t:g} s"


def ttl_curve(path, out, prefix):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    by = defaultdict(list)
    for r in rows:
        by[r["config"]].append((num(r["ttl_s"]), 100 * num(r["hit_ratio"]),
                                num(r["reprefills_per_session"])))
    if not by:
        return []
    ttls = sorted({t for pts in by.values() for t, _, _ in pts})
    pos = {t: i for i, t in enumerate(ttls)}
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for c, pts in by.items():
        pts.sort()
        ax.plot([pos[t] for t, _, _ in pts], [h for _, h, _ in pts], marker="o", label=c)
        ax2.plot([pos[t] for t, _, _ in pts], [r for _, _, r in pts], marker="o", label=c)
    for a, label in ((ax, "block hit ratio (%)"), (ax2, "re-prefills per session")):
        a.set_xticks(range(len(ttls)))
        a.set_xticklabels([ttl_label(t) for t in ttls])
        a.set_xlabel("TTL")
        a.set_ylabel(label)
        a.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title("hit ratio vs TTL")
    ax2.set_title("re-prefills per session vs TTL")
    fig.tight_layout()
    p = os.path.join(out, f"{prefix}ttl.png")
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return [p]


MULTI_ORDER = ["shared", "private", "dram", "dram+nvme", "dram+cluster"]


def swarm_multi_plots(path, out, prefix):
    """Hit ratio and goodput vs N, one line per store, from a swarm --procs/--nodes CSV."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return []
    split = rows[0]["mode"]
    by = defaultdict(list)
    for r in rows:
        by[r["store"]].append((int(r["n"]), float(r["hit_ratio"]), float(r["goodput_rps"]),
                               float(r["seen_ratio"])))
    stores = sorted(by, key=lambda s: (MULTI_ORDER.index(s) if s in MULTI_ORDER else 99, s))
    what = "engine processes" if split == "procs" else "nodes"
    wrote = []
    for kind, col, label in (("hit", 1, "hit ratio (blocks)"),
                             ("goodput", 2, "goodput (requests within SLO / s)")):
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        for s in stores:
            pts = sorted(by[s])
            ax.plot([p[0] for p in pts], [p[col] for p in pts], marker="o", label=s)
        if kind == "hit":
            pts = sorted({p[0]: p for s in stores for p in by[s]}.values())
            ax.plot([p[0] for p in pts], [p[3] for p in pts], linestyle="--", color="gray",
                    label="never forgets")
            ax.set_ylim(0, 1.02)
        ns = sorted({p[0] for s in stores for p in by[s]})
        ax.set_xscale("log", base=2)
        ax.set_xticks(ns)
        ax.set_xticklabels([str(n) for n in ns])
        ax.set_xlabel(what)
        ax.set_ylabel(label)
        ax.set_title(f"agent swarm over N {what}: {label.split(' (')[0]}")
        wrote.append(save(fig, ax, os.path.join(out, f"{prefix}swarm-{split}-{kind}.png")))
    return wrote


def draw(out, plots, empty):
    """Runs plots() into the directory out and prints the files it wrote: the
    exit status 0, 1 when it drew nothing (empty says why), 2 on a bad CSV."""
    os.makedirs(out, exist_ok=True)
    try:
        wrote = plots()
    except (OSError, KeyError, ValueError) as e:
        print(f"plot.py: cannot read the CSV: {e!r}", file=sys.stderr)
        return 2
    for p in wrote:
        print(p)
    if not wrote:
        print(f"plot.py: nothing to draw ({empty})", file=sys.stderr)
        return 1
    return 0


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="*", help="files written by kvtier-bench sweep --csv")
    ap.add_argument("--out", default=".", help="directory for the PNG files (default .)")
    ap.add_argument("--prefix", default="", help="prepended to every file name")
    ap.add_argument("--compare", help="compare.csv written by kvtier-bench compare --out")
    ap.add_argument("--ttl-csv", help="ttl.csv written by kvtier-bench compare --out")
    ap.add_argument("--slo-ms", type=float, default=0, help="draw the SLO on the TTFT chart")
    ap.add_argument("--swarm-multi", help="swarm-procs.csv or swarm-nodes.csv (swarm --out)")
    a = ap.parse_args(argv)
    if a.swarm_multi:
        return draw(a.out, lambda: swarm_multi_plots(a.swarm_multi, a.out, a.prefix), "no rows")
    if a.compare or a.ttl_csv:
        def both():
            wrote = compare_plots(load_compare(a.compare), a.out, a.prefix,
                                  a.slo_ms) if a.compare else []
            return wrote + (ttl_curve(a.ttl_csv, a.out, a.prefix) if a.ttl_csv else [])
        return draw(a.out, both, "no ramp steps, no TTL rows")
    if not a.csv:
        ap.error("give sweep CSV files, or --compare / --ttl-csv")
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
