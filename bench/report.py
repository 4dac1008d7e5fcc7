"""Figures and tables: percentiles, and the Markdown tables of a results file.

``python -m bench.report RESULTS_JSON`` prints the tables docs/benchmarks.md
shows.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any


def percentile(sorted_values: list[float], share: float) -> float:
    """Return the nearest-rank percentile ``share`` (0-1) of sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def latency_summary(latencies_ms: list[float]) -> dict[str, float]:
    """Return p50, p90, p99, max and mean of latencies in milliseconds."""
    values = sorted(latencies_ms)
    summary = {
        name: round(percentile(values, share), 2)
        for name, share in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))
    }
    summary["max"] = round(values[-1], 2) if values else math.nan
    summary["mean"] = round(sum(values) / len(values), 2) if values else math.nan
    return summary


def _kb(value: float) -> str:
    return f"{value / 1024:.1f}"


def floor_table(runs: list[dict[str, Any]]) -> str:
    """Return the Markdown table of floor runs, one line per run."""
    lines = [
        "| mode | agents | nav/s | connect s | correct s | p50 ms | p90 ms | p99 ms "
        "| max ms | delivered/expected | disc. | B/nav | server CPU % | µs/msg "
        "| RSS MB | KB/conn | gen CPU % | others CPU % | load |",
        "|" + "---|" * 19,
    ]
    for run in runs:
        if "error" in run:
            lines.append(
                f"| {run['mode']} | {run['agents']} | {run['rate']:g} "
                f"| failed: {run['error'][:120]} |"
            )
            continue
        latency = run["latency_ms"]
        server = run["server"]
        lines.append(
            f"| {run['mode']} | {run['agents']} | {run['rate']:g} "
            f"| {run['connect_seconds']:.1f} | {run['correct_seconds']:.1f} "
            f"| {latency['p50']} | {latency['p90']} | {latency['p99']} "
            f"| {latency['max']} "
            f"| {run['delivered']}/{run['expected']} | {run['disconnects']} "
            f"| {run['bytes_per_navigation']:.0f} | {server['cpu_percent']:.0f} "
            f"| {server['cpu_us_per_message']:.0f} "
            f"| {server['rss_loaded_bytes'] / 2**20:.0f} "
            f"| {_kb(server['rss_per_connection_bytes'])} "
            f"| {run['generator']['cpu_percent']:.0f} "
            f"| {run.get('others_cpu_percent', float('nan')):.0f} "
            f"| {run['load_before'][0]:.2f} |"
        )
    return "\n".join(lines)


def ceiling_table(ceiling: dict[str, Any]) -> str:
    """Return the Markdown table comparing Dibs with the bare websocket server."""
    bare, dibs = ceiling["bare"], ceiling["dibs"]
    return "\n".join(
        [
            "| server | messages | bytes each | messages/s | server µs/msg | KB/conn |",
            "|---|---|---|---|---|---|",
            f"| bare gevent-websocket | {bare['received']} | {bare['size']} "
            f"| {bare['messages_per_second']:.0f} | {bare['cpu_us_per_message']:.1f} "
            f"| {_kb(bare['rss_per_connection_bytes'])} |",
            f"| Dibs ({dibs['label']}) | {dibs['delivered']} | {dibs['size']} "
            f"| {dibs['messages_per_second']:.0f} | {dibs['cpu_us_per_message']:.1f} "
            f"| {_kb(dibs['rss_per_connection_bytes'])} |",
            "",
            f"Dibs' delivered messages/s at that load: "
            f"{ceiling['fraction_of_ceiling']:.1%} of the bare server's; "
            f"CPU per message: {ceiling['cpu_ratio']:.1f}x the bare server's.",
        ]
    )


def registry_table(registry: dict[str, Any]) -> str:
    """Return the Markdown table of registry operations per second."""
    lines = ["| registry | " + " | ".join(_operations(registry)) + " |"]
    lines.append("|---|" + "---|" * len(_operations(registry)))
    for name in ("memory", "redis"):
        figures = registry.get(name)
        if figures is None:
            continue
        if "skipped" in figures:
            lines.append(f"| {name} | skipped: {figures['skipped']} |")
            continue
        cells = []
        for operation in _operations(registry):
            cell = f"{figures[operation]['ops_per_second']:,}"
            trips = figures[operation].get("round_trips_per_op")
            if trips is not None:
                cell += f" ({trips:g} RTT)"
            cells.append(cell)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _operations(registry: dict[str, Any]) -> list[str]:
    return list(registry["memory"])


def tables(results: dict[str, Any]) -> str:
    """Return every table of a results file, with headings."""
    parts = [
        f"load before/after: {results['load_before']} / {results.get('load_after')}"
    ]
    for group, runs in results["groups"].items():
        parts += [f"\n### {group}\n", floor_table(runs)]
    if results.get("ceiling"):
        parts += ["\n### ceiling\n", ceiling_table(results["ceiling"])]
    if results.get("registry"):
        parts += ["\n### registry\n", registry_table(results["registry"])]
    return "\n".join(parts)


def main() -> None:
    """Print the tables of the results file named on the command line."""
    with open(sys.argv[1]) as file:
        print(tables(json.load(file)))


if __name__ == "__main__":
    main()
