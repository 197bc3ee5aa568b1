#!/usr/bin/env python3
"""Turns divan's output into Markdown tables with each median's ratio to
the baseline measured in the same run.

    cargo bench --bench dedup | python3 benches/ratios.py
    cargo bench --bench parse | python3 benches/ratios.py

Baselines: in `benches/dedup.rs`, the `floor` (a HashSet on one thread) of
the same group and size (`full_store` against the `new_id` floor at
100,000 keys); in `benches/parse.rs`, `id_only_serde` of the same body size.
"""

import re
import sys

UNITS = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}


def nanos(text):
    match = re.match(r"\s*([0-9.]+)\s*(ps|ns|µs|us|ms|s)\b", text)
    return float(match.group(1)) * UNITS[match.group(2)] if match else None


def rows(lines):
    """(path, median in ns) for every measured row of a divan tree."""
    stack = []
    for line in lines:
        line = line.rstrip("\n")
        # The tree's own "│" precede the branch; the columns follow it.
        branch = max(line.find("├─ "), line.find("╰─ "))
        if branch < 0:
            continue
        depth = branch // 3
        cells = line[branch + 3 :].split("│")
        name = cells[0].split()[0]
        del stack[depth:]
        stack.append(name)
        if len(cells) > 2:
            median = nanos(cells[2])
            if median is not None:
                yield list(stack), median


def fmt(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.3g} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.4g} µs"
    return f"{ns:.4g} ns"


def main():
    measured = list(rows(sys.stdin))
    medians = {tuple(path): ns for path, ns in measured}
    groups = {}
    for path, ns in measured:
        groups.setdefault(path[0], []).append((path[1:], ns))
    for group, entries in groups.items():
        print(f"\n### {group}\n")
        print("| benchmark | median | ratio | baseline |")
        print("|---|---|---|---|")
        for rest, ns in entries:
            base_path = baseline(group, rest)
            base = medians.get(base_path) if base_path else None
            ratio = f"{ns / base:.2f}x" if base else "-"
            base_name = "/".join(base_path) if base else "-"
            print(f"| {' '.join(rest)} | {fmt(ns)} | {ratio} | {base_name} |")


def baseline(group, rest):
    if group == "full_store":
        return ("new_id", "floor", "100000")
    if group in ("task_event", "id_extraction", "id_only_serde"):
        return ("id_only_serde", rest[-1])
    if group == "maintenance":
        return None
    size = next((part for part in rest if part.isdigit()), None)
    return (group, "floor", size) if size else None


if __name__ == "__main__":
    main()
