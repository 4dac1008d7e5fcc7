"""The plots: latency and memory against the number of agents, latency against rate.

``python -m bench.plot RESULTS_JSON [DIRECTORY [PREFIX]]`` redraws them from a
results file.  matplotlib is imported only here, with a backend that needs no display.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any


def _series(results: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Group successful runs by (group, mode, rate), each sorted by agents."""
    series: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for group, runs in results["groups"].items():
        for run in runs:
            if "error" not in run and group != "sweep":
                series[f"{run['mode']}, {run['rate']:g} nav/s"].append(run)
    return {
        name: sorted(runs, key=lambda run: run["agents"])
        for name, runs in series.items()
    }


def draw(results: dict[str, Any], directory: Path, prefix: str = "bench") -> list[Path]:
    """Write the PNG plots of ``results`` into ``directory``; return their paths.

    Without matplotlib (``requirements-bench.txt``) it draws nothing and says so.
    """
    try:
        import matplotlib
    except ImportError:
        sys.stderr.write("no plots: install requirements-bench.txt for matplotlib\n")
        return []

    matplotlib.use("Agg")
    from matplotlib import pyplot

    directory.mkdir(parents=True, exist_ok=True)
    series = _series(results)
    written = []
    if series:
        figure, (latency, memory) = pyplot.subplots(1, 2, figsize=(10, 4))
        for name, runs in series.items():
            agents = [run["agents"] for run in runs]
            latency.plot(
                agents, [r["latency_ms"]["p99"] for r in runs], "o-", label=name
            )
            memory.plot(
                agents,
                [r["server"]["rss_per_connection_bytes"] / 1024 for r in runs],
                "o-",
                label=name,
            )
        latency.set(
            xlabel="agents", ylabel="p99 latency (ms)", xscale="log", yscale="log"
        )
        latency.set_title("navigation to presence, p99")
        memory.set(
            xlabel="agents", ylabel="server RSS per connection (KB)", xscale="log"
        )
        memory.set_title("resident memory per connection")
        memory.set_ylim(bottom=0)
        memory.axhline(40, color="grey", linestyle=":", label="target 40 KB")
        for axes in (latency, memory):
            axes.grid(True, which="both", alpha=0.3)
            axes.legend(fontsize=8)
        figure.tight_layout()
        written.append(_save(figure, directory / f"{prefix}-scale.png"))

    sweep = [run for run in results["groups"].get("sweep", []) if "error" not in run]
    if sweep:
        figure, axes = pyplot.subplots(figsize=(5, 4))
        rates = [run["rate"] for run in sweep]
        for key in ("p50", "p99"):
            axes.plot(rates, [run["latency_ms"][key] for run in sweep], "o-", label=key)
        axes.axhline(100, color="grey", linestyle=":", label="100 ms")
        axes.set(xlabel="navigations per second", ylabel="latency (ms)", yscale="log")
        axes.set_title(f"{sweep[0]['agents']} agents, rising rate")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
        figure.tight_layout()
        written.append(_save(figure, directory / f"{prefix}-sweep.png"))
    return written


def _save(figure: Any, path: Path) -> Path:
    from matplotlib import pyplot

    figure.savefig(path, dpi=80)
    pyplot.close(figure)
    return path


def main() -> None:
    """Draw the plots of the results file named on the command line."""
    source = Path(sys.argv[1])
    directory = Path(sys.argv[2]) if len(sys.argv) > 2 else source.parent
    prefix = sys.argv[3] if len(sys.argv) > 3 else source.stem
    for path in draw(json.loads(source.read_text()), directory, prefix=prefix):
        print(path)


if __name__ == "__main__":
    main()
