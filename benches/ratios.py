#!/usr/bin/env python3
"""Turns divan's output into Markdown tables with each median's ratio to
the baseline measured in the same run.

    cargo bench --bench dedup | python3 benches/ratios.py
    cargo bench --bench parse | python3 benches/ratios.py

Several runs (files of saved output) give, per benchmark, the median over
the runs of its median and of its ratio, and the range of the ratios:

    for i in 1 2 3; do cargo bench --bench dedup > run$i.txt; done
    python3 benches/ratios.py run1.txt run2.txt run3.txt

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
    if len(sys.argv) > 1:
        runs = []
        for name in sys.argv[1:]:
            with open(name, encoding="utf-8") as file:
                runs.append(list(rows(file)))
    else:
        runs = [list(rows(sys.stdin))]
    # Per run: benchmark -> (median, ratio to the run's own baseline).
    results = []
    for measured in runs:
        medians = {tuple(path): ns for path, ns in measured}
        result = {}
        for path, ns in measured:
            base_path = baseline(path[0], path[1:])
            base = medians.get(base_path) if base_path else None
            result[tuple(path)] = (ns, ns / base if base else None)
        results.append(result)
    groups = {}
    for path in results[0]:
        groups.setdefault(path[0], []).append(path)
    several = len(results) > 1
    for group, paths in groups.items():
        print(f"\n### {group}\n")
        if several:
            print(f"| benchmark | median ({len(results)} runs) | ratio (median) | ratio range | baseline |")
            print("|---|---|---|---|---|")
        else:
            print("| benchmark | median | ratio | baseline |")
            print("|---|---|---|---|")
        for path in paths:
            found = [run[path] for run in results if path in run]
            ns = middle([median for median, _ in found])
            ratios = [ratio for _, ratio in found if ratio is not None]
            base_path = baseline(group, list(path[1:]))
            base_name = "/".join(base_path) if ratios else "-"
            ratio = f"{middle(ratios):.2f}x" if ratios else "-"
            name = " ".join(path[1:])
            if several:
                spread = f"{min(ratios):.2f}-{max(ratios):.2f}x" if ratios else "-"
                print(f"| {name} | {fmt(ns)} | {ratio} | {spread} | {base_name} |")
            else:
                print(f"| {name} | {fmt(ns)} | {ratio} | {base_name} |")


def middle(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


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
