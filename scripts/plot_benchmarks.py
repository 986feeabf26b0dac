#!/usr/bin/env python3
"""Plots and tables for BENCHMARKS.md, from the benches' own output.

Reads criterion's estimates of `cargo bench --bench layer` (the median of each
benchmark, under target/criterion) and the rounds of `cargo bench --bench http`
(the CSV it writes when TOWER_CIS_BENCH_CSV is set), writes two SVG plots (benchmarks_*.svg) next
to BENCHMARKS.md and prints the Markdown tables to stdout.

    TOWER_CIS_BENCH_CSV=target/bench-http.csv cargo bench --bench http
    cargo bench --bench layer
    python3 scripts/plot_benchmarks.py [--criterion target/criterion] \
        [--http target/bench-http.csv] [--out .]

Standard library only (no matplotlib): the SVG is written by hand.
"""

import argparse
import html
import csv
import json
import math
import os
import sys

STACKS = [
    ("bare", "bare", "#888888"),
    ("tower_http_bearer", "tower-http bearer", "#2ca02c"),
    ("naive_rwlock_hashmap", "naive RwLock<HashMap>", "#ff7f0e"),
    ("tower_sessions_memory_store", "tower-sessions MemoryStore (refresh)", "#d62728"),
    ("session_auth_memory_store", "tower-cis SessionAuthLayer + MemoryStore", "#1f77b4"),
]


def read_layer(root):
    """{(sessions, stack, threads): median ns}"""
    figures = {}
    if not os.path.isdir(root):
        return figures
    for group in os.listdir(root):
        if not group.startswith("sessions="):
            continue
        sessions = int(group.split("=", 1)[1])
        for stack, _, _ in STACKS:
            for threads in (1, 2):
                path = os.path.join(root, group, stack, str(threads), "new", "estimates.json")
                if os.path.exists(path):
                    with open(path) as f:
                        figures[(sessions, stack, threads)] = json.load(f)["median"]["point_estimate"]
    return figures


def read_http(path):
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def fmt_sessions(n):
    return "1M" if n == 1_000_000 else "10k" if n == 10_000 else str(n)


def svg_cost(figures, out):
    """Added cost over bare (ns, log scale) vs live sessions (log scale), one panel per thread count."""
    sessions = sorted({s for s, _, _ in figures})
    if not sessions:
        return False
    width, height, margin = 980, 440, 70
    panel_w = (width - 2 * margin - 40) / 2
    added = {}
    for (s, stack, t), ns in figures.items():
        if stack != "bare" and (s, "bare", t) in figures:
            added[(s, stack, t)] = max(ns - figures[(s, "bare", t)], 1.0)
    if not added:
        return False
    lo = 10 ** math.floor(math.log10(min(added.values())))
    hi = 10 ** math.ceil(math.log10(max(added.values())))
    xs_lo, xs_hi = math.log10(min(sessions)), math.log10(max(sessions)) or 1.0

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="15">'
        "Added cost per request over bare (median ns, log; below 1 ns drawn at 1) vs live sessions</text>",
    ]
    top, bottom = 45, height - 110
    for p, threads in enumerate((1, 2)):
        x0 = margin + p * (panel_w + 40)

        def x(s):
            span = xs_hi - xs_lo
            return x0 + (math.log10(s) - xs_lo) / span * panel_w if span else x0 + panel_w / 2

        def y(v):
            return bottom - (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (bottom - top)

        parts.append(f'<rect x="{x0}" y="{top}" width="{panel_w}" height="{bottom - top}" fill="none" stroke="#333"/>')
        parts.append(
            f'<text x="{x0 + panel_w / 2}" y="{top - 6}" text-anchor="middle">'
            f"{threads} thread{'s' if threads > 1 else ''}</text>"
        )
        decade = lo
        while decade <= hi:
            parts.append(f'<line x1="{x0}" x2="{x0 + panel_w}" y1="{y(decade)}" y2="{y(decade)}" stroke="#ddd"/>')
            parts.append(f'<text x="{x0 - 5}" y="{y(decade) + 4}" text-anchor="end">{decade:g}</text>')
            decade *= 10
        for s in sessions:
            parts.append(f'<text x="{x(s)}" y="{bottom + 16}" text-anchor="middle">{fmt_sessions(s)}</text>')
        for stack, label, colour in STACKS[1:]:
            points = [(x(s), y(added[(s, stack, threads)])) for s in sessions if (s, stack, threads) in added]
            if not points:
                continue
            path = " ".join(f"{px:.1f},{py:.1f}" for px, py in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
            for px, py in points:
                parts.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{colour}"/>')
    for i, (_, label, colour) in enumerate(STACKS[1:]):
        lx = margin + (i % 2) * 420
        ly = height - 70 + (i // 2) * 18
        parts.append(f'<rect x="{lx}" y="{ly - 9}" width="14" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{lx + 20}" y="{ly}">{html.escape(label)}</text>')
    parts.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(parts) + "\n")
    return True


def svg_http(rounds, out):
    """Per round: layer throughput and p99 as a ratio to bare."""
    if not rounds:
        return False
    width, height, margin = 640, 360, 60
    top, bottom = 50, height - 70
    n = len(rounds)
    plot_w = width - 2 * margin
    ratios = [(r["layer_rps"] / r["bare_rps"], r["bare_p99_us"] / r["layer_p99_us"]) for r in rounds]
    hi = max(1.1, max(max(a, b) for a, b in ratios) * 1.05)

    def y(v):
        return bottom - v / hi * (bottom - top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">'
        "HTTP on loopback: SessionAuthLayer relative to bare, per round</text>",
    ]
    for tick in [i / 10 for i in range(0, int(hi * 10) + 1, 2)]:
        parts.append(f'<line x1="{margin}" x2="{width - margin}" y1="{y(tick)}" y2="{y(tick)}" stroke="#ddd"/>')
        parts.append(f'<text x="{margin - 5}" y="{y(tick) + 4}" text-anchor="end">{tick * 100:.0f} %</text>')
    parts.append(
        f'<line x1="{margin}" x2="{width - margin}" y1="{y(0.95)}" y2="{y(0.95)}" '
        'stroke="#d62728" stroke-dasharray="5,4"/>'
    )
    parts.append(f'<text x="{width - margin}" y="{y(0.95) - 4}" text-anchor="end" fill="#d62728">95 % target</text>')
    slot = plot_w / n
    for i, (throughput, latency) in enumerate(ratios):
        bx = margin + i * slot + slot * 0.15
        bw = slot * 0.33
        parts.append(
            f'<rect x="{bx:.1f}" y="{y(throughput):.1f}" width="{bw:.1f}" '
            f'height="{bottom - y(throughput):.1f}" fill="#1f77b4"/>'
        )
        parts.append(
            f'<rect x="{bx + bw:.1f}" y="{y(latency):.1f}" width="{bw:.1f}" '
            f'height="{bottom - y(latency):.1f}" fill="#9ecae1"/>'
        )
        parts.append(f'<text x="{bx + bw:.1f}" y="{bottom + 16}" text-anchor="middle">round {i + 1}</text>')
    parts.append(f'<rect x="{margin}" y="{height - 35}" width="14" height="10" fill="#1f77b4"/>')
    parts.append(f'<text x="{margin + 20}" y="{height - 26}">throughput, layer / bare</text>')
    parts.append(f'<rect x="{margin + 230}" y="{height - 35}" width="14" height="10" fill="#9ecae1"/>')
    parts.append(f'<text x="{margin + 250}" y="{height - 26}">p99 latency, bare / layer (higher is better)</text>')
    parts.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(parts) + "\n")
    return True


def tables(figures, rounds):
    lines = []
    sessions = sorted({s for s, _, _ in figures})
    if sessions:
        lines.append("| stack | threads | " + " | ".join(f"{fmt_sessions(s)} sessions" for s in sessions) + " |")
        lines.append("|---|---|" + "---|" * len(sessions))
        for stack, label, _ in STACKS:
            for threads in (1, 2):
                cells = []
                for s in sessions:
                    ns = figures.get((s, stack, threads))
                    base = figures.get((s, "bare", threads))
                    if ns is None:
                        cells.append("–")
                    elif stack == "bare" or base is None:
                        cells.append(f"{ns:.0f} ns")
                    else:
                        cells.append(f"{ns:.0f} ns ({ns - base:+.0f})")
                lines.append(f"| {label} | {threads} | " + " | ".join(cells) + " |")
    if rounds:
        lines.append("")
        lines.append("| round | bare req/s | layer req/s | throughput ratio | bare p99 | layer p99 | p99 ratio |")
        lines.append("|---|---|---|---|---|---|---|")
        for r in rounds:
            lines.append(
                f"| {r['round']:.0f} | {r['bare_rps']:.0f} | {r['layer_rps']:.0f} | "
                f"{r['layer_rps'] / r['bare_rps'] * 100:.1f} % | {r['bare_p99_us']:.0f} µs | "
                f"{r['layer_p99_us']:.0f} µs | {r['layer_p99_us'] / r['bare_p99_us']:.2f}x |"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--criterion", default="target/criterion")
    parser.add_argument("--http", default="target/bench-http.csv")
    parser.add_argument("--out", default=".")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    figures = read_layer(args.criterion)
    rounds = read_http(args.http)
    if svg_cost(figures, os.path.join(args.out, "benchmarks_layer_cost.svg")):
        print(f"wrote {args.out}/benchmarks_layer_cost.svg", file=sys.stderr)
    if svg_http(rounds, os.path.join(args.out, "benchmarks_http_ratio.svg")):
        print(f"wrote {args.out}/benchmarks_http_ratio.svg", file=sys.stderr)
    print(tables(figures, rounds))


if __name__ == "__main__":
    main()
