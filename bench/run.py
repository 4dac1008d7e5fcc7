"""Running the benchmark: suites of runs, each on a fresh server with its agents.

``python -m bench --suite full`` (``make bench``) runs everything and writes
``bench/results/<suite>-<time>.json`` and its plots; ``--suite small`` is the
quick configuration CI runs.  Every run starts its own ``python wsgi.py`` on
a free loopback port, drives it with generator processes, and stops both.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from . import plot, processes, registry_ops, report
from .processes import (
    ROOT,
    GeneratorProcess,
    ServerProcess,
    dibs_server,
    load_average,
    raise_file_limit,
)
from .progress import Progress

RESULTS = ROOT / "bench" / "results"
IDLE_SECONDS = 2.0
SWEEP_P99_MS = 100.0


@dataclasses.dataclass
class FloorRun:
    """One run: ``agents``, ``per_page`` to a page, ``rate`` navigations a second."""

    mode: str
    agents: int
    rate: float
    duration: float
    per_page: int = 2
    generators: int = 1
    drain: float = 10.0

    @property
    def label(self) -> str:
        return f"[{self.mode} N={self.agents} R={self.rate:g}/s]"


def _modes(agents: int, rate: float, duration: float) -> list[FloorRun]:
    runs = [
        FloorRun("modern", agents, rate, duration),
        FloorRun("legacy", agents, rate, duration),
    ]
    # The whole-map scope sends every page to every agent on every change:
    # past a few hundred agents even connecting them takes minutes.
    if agents <= 500:
        runs.append(FloorRun("legacy-all", agents, rate, duration))
    return runs


SUITES: dict[str, dict[str, Any]] = {
    "small": {
        "groups": {
            "modes": [
                FloorRun("modern", 200, 50, 3, drain=10),
                FloorRun("legacy", 200, 20, 3, drain=10),
                FloorRun("legacy-all", 60, 10, 3, drain=10),
            ],
        },
        "sweeps": {},
        "ceiling": {"group": "modes"},
        "registry": {"seconds": 0.1, "connections": 200},
    },
    "full": {
        "groups": {
            "scale": [
                FloorRun("modern", n, 100, 20) for n in (1000, 2000, 5000, 10000)
            ],
            "modes": [run for n in (250, 500, 1000, 2000) for run in _modes(n, 20, 15)],
        },
        "sweeps": {
            "sweep": [
                FloorRun("modern", 2000, rate, 10)
                for rate in (250, 500, 750, 1000, 1250, 1500, 2000, 2500)
            ],
        },
        "ceiling": {"group": "sweep"},
        "registry": {"seconds": 1.0, "connections": 1000},
    },
}


def split(spec: FloorRun) -> list[dict[str, Any]]:
    """Split the agents and pages of a run between its generators, by whole pages."""
    pages = math.ceil(spec.agents / spec.per_page)
    generators = 1 if spec.mode == "legacy-all" else max(1, min(spec.generators, pages))
    configs, first_page = [], 0
    for k in range(generators):
        share = pages // generators + (k < pages % generators)
        first_agent = first_page * spec.per_page
        agents = min(spec.agents, (first_page + share) * spec.per_page) - first_agent
        configs.append(
            {
                "mode": spec.mode,
                "host": "127.0.0.1",
                "first_agent": first_agent,
                "agents": agents,
                "first_page": first_page,
                "pages": share,
                "per_page": spec.per_page,
                "rate": spec.rate * share / pages,
                "duration": spec.duration,
                "drain_seconds": spec.drain,
                "seed": 1000 + k,
                "correct_timeout": 60 + spec.agents / 50,
            }
        )
        first_page += share
    return configs


def gather(
    generators: list[GeneratorProcess],
    name: str,
    timeout: float,
    show: Any,
) -> list[dict[str, Any]]:
    """Wait for event ``name`` from every generator, drawing progress meanwhile."""
    deadline = time.monotonic() + timeout
    events: list[dict[str, Any] | None] = [None] * len(generators)
    while None in events:
        for i, generator in enumerate(generators):
            if events[i] is None and not generator.events.empty():
                events[i] = generator.wait(name, 1)
        if time.monotonic() > deadline:
            raise RuntimeError(f"generators gave no {name!r} within {timeout:.0f} s")
        show()
        time.sleep(0.1)
    return events


def run_floor(spec: FloorRun, logs: Path) -> dict[str, Any]:
    """Run one floor: start a server, connect the agents, navigate, measure."""
    progress = Progress(spec.label)
    slug = f"{spec.mode}-{spec.agents}-{spec.rate:g}"
    settings = {"DIBS_LEGACY_SCOPE": "all" if spec.mode == "legacy-all" else "page"}
    record: dict[str, Any] = {**dataclasses.asdict(spec), "load_before": load_average()}
    server = dibs_server(settings, logs / f"server-{slug}.log").start()
    generators: list[GeneratorProcess] = []
    try:
        time.sleep(0.5)
        rss_base = server.rss()
        configs = split(spec)
        for k, config in enumerate(configs):
            config["port"] = server.port
            log = logs / f"generator-{slug}-{k}.log"
            generators.append(GeneratorProcess(["bench.agents"], config, log))

        def show_connect() -> None:
            phase = generators[0].progress.get("phase", "start")
            done = sum(g.progress.get("done", 0) for g in generators)
            progress.show(phase, done, spec.agents)

        ready = gather(generators, "ready", 60 + spec.agents / 20, show_connect)
        rss_loaded = server.rss()
        cpu_before_idle = server.cpu_seconds()
        time.sleep(IDLE_SECONDS)
        idle_cpu = server.cpu_seconds() - cpu_before_idle

        navigations = round(spec.rate * spec.duration)

        def show_navigate() -> None:
            phase = generators[0].progress.get("phase", "navigate")
            if phase not in ("navigate", "drain"):
                phase = "navigate"
                done = 0
            else:
                done = sum(g.progress.get("done", 0) for g in generators)
            delivered = sum(g.progress.get("delivered", 0) for g in generators)
            progress.show(phase, done, navigations, f"delivered {delivered}")

        server_cpu = server.cpu_seconds()
        generator_cpu = sum(g.cpu_seconds() for g in generators)
        machine_cpu = busy_cpu_seconds()
        started = time.monotonic()
        for generator in generators:
            generator.send("navigate")
        results = gather(
            generators, "result", spec.duration + spec.drain + 60, show_navigate
        )
        wall = time.monotonic() - started
        server_cpu = server.cpu_seconds() - server_cpu
        generator_cpu = sum(g.cpu_seconds() for g in generators) - generator_cpu
        others_cpu = busy_cpu_seconds() - machine_cpu - server_cpu - generator_cpu
        record.update(
            summarize(ready, results, wall, server_cpu, generator_cpu, idle_cpu)
        )
        # What the rest of the machine (other people's work) took meanwhile:
        # the figures of a run that shared its cores are worth less.
        record["others_cpu_percent"] = round(100 * max(0.0, others_cpu) / wall, 1)
        record["server"].update(
            rss_base_bytes=rss_base,
            rss_loaded_bytes=rss_loaded,
            rss_after_bytes=server.rss(),
            rss_per_connection_bytes=(rss_loaded - rss_base)
            / max(1, record["connected"]),
            alive=server.alive(),
        )
    finally:
        for generator in generators:
            generator.stop()
        server.stop()
    record["load_after"] = load_average()
    progress.done(one_line(record))
    return record


def busy_cpu_seconds() -> float:
    """Return the CPU time every process on the machine has used, all cores."""
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def summarize(
    ready: list[dict[str, Any]],
    results: list[dict[str, Any]],
    wall: float,
    server_cpu: float,
    generator_cpu: float,
    idle_cpu: float,
) -> dict[str, Any]:
    """Merge what the generators measured into the figures of one run."""

    def total(key: str) -> int:
        return sum(result[key] for result in results)

    latencies = [value for result in results for value in result["latencies_ms"]]
    delivered = total("delivered")
    navigations = max(1, total("navigations"))
    send_seconds = max(result["send_seconds"] for result in results)
    return {
        "connect_seconds": max(event["connect_seconds"] for event in ready),
        "correct_seconds": max(event["correct_seconds"] for event in ready),
        "connected": sum(event["connected"] for event in ready),
        "connect_errors": sum(event["connect_errors"] for event in ready),
        "correct": sum(event["correct"] for event in ready),
        "navigations": total("navigations"),
        "skipped": total("skipped"),
        "expected": total("expected"),
        "delivered": delivered,
        "lost": total("lost"),
        "disconnects": total("disconnects"),
        "errors": total("errors"),
        "correct_after": total("correct_after"),
        "latency_ms": report.latency_summary(latencies),
        # When the slowest updates arrived, to tell a stall from a slow floor.
        "slowest": sorted(
            (pair for result in results for pair in result["slowest"]),
            key=lambda pair: -pair[1],
        )[:200],
        "bytes_per_navigation": (total("bytes_in") + total("bytes_out")) / navigations,
        "message_bytes": total("payload_bytes") / max(1, delivered),
        "delivered_per_second": delivered / send_seconds,
        "nav_seconds": wall,
        "server": {
            "cpu_seconds": round(server_cpu, 3),
            "cpu_percent": 100 * server_cpu / wall,
            "idle_cpu_percent": 100 * idle_cpu / IDLE_SECONDS,
            "cpu_us_per_message": 1e6 * server_cpu / max(1, delivered),
            # Without the background work an idle floor costs (pings, sweeps).
            "net_cpu_us_per_message": 1e6
            * max(0.0, server_cpu - idle_cpu / IDLE_SECONDS * wall)
            / max(1, delivered),
        },
        "generator": {
            "processes": len(results),
            "cpu_seconds": round(generator_cpu, 3),
            "cpu_percent": 100 * generator_cpu / wall,
            "connect_cpu_seconds": round(
                sum(event["cpu_seconds"] for event in ready), 3
            ),
        },
    }


def one_line(record: dict[str, Any]) -> str:
    """Return the summary line printed when a run ends."""
    latency = record["latency_ms"]
    return (
        f"connect {record['connect_seconds']:.1f}s "
        f"correct {record['correct_seconds']:.1f}s "
        f"p50 {latency['p50']} p99 {latency['p99']} max {latency['max']} ms "
        f"delivered {record['delivered']}/{record['expected']} "
        f"disc {record['disconnects']} "
        f"cpu {record['server']['cpu_us_per_message']:.0f}us/msg "
        f"{record['server']['rss_per_connection_bytes'] / 1024:.1f}KB/conn "
        f"gen {record['generator']['cpu_percent']:.0f}% "
        f"others {record['others_cpu_percent']:.0f}%"
    )


def passed(record: dict[str, Any]) -> bool:
    """Tell whether a sweep step held: p99 under the bar, nothing lost or dropped."""
    return (
        "error" not in record
        and record["delivered"] == record["expected"]
        and record["disconnects"] == 0
        and record["skipped"] == 0
        and record["latency_ms"]["p99"] < SWEEP_P99_MS
    )


def run_ceiling(compared: dict[str, Any], logs: Path) -> dict[str, Any]:
    """Send the messages a Dibs run delivered, of the same size, with a bare server."""
    connections = compared["agents"]
    messages = compared["delivered"]
    size = round(compared["message_bytes"])
    progress = Progress(f"[ceiling N={connections} M={messages}]")
    command = [sys.executable, "-m", "bench.ceiling", "serve"]
    server = ServerProcess(command, {}, logs / "ceiling-server.log").start()
    time.sleep(0.5)
    rss_base = server.rss()
    config = {"host": "127.0.0.1", "port": server.port, "connections": connections}
    config.update(messages=messages, size=size)
    driver = GeneratorProcess(
        ["bench.ceiling", "drive"], config, logs / "ceiling-driver.log"
    )
    try:

        def show() -> None:
            phase = driver.progress.get("phase", "start")
            total = connections if phase == "connect" else messages
            progress.show(phase, driver.progress.get("done", 0), total)

        gather([driver], "ready", 60 + connections / 20, show)
        rss_loaded = server.rss()
        cpu = server.cpu_seconds()
        driver.send("navigate")
        (bare,) = gather([driver], "result", 120, show)
        cpu = server.cpu_seconds() - cpu
    finally:
        driver.stop()
        server.stop()

    bare["messages_per_second"] = bare["received"] / max(bare["seconds"], 1e-9)
    bare["cpu_us_per_message"] = 1e6 * cpu / max(1, bare["received"])
    bare["rss_per_connection_bytes"] = (rss_loaded - rss_base) / connections
    dibs = {
        "label": f"{compared['mode']}, {connections} agents, "
        f"{compared['rate']:g} nav/s",
        "delivered": compared["delivered"],
        "size": size,
        "messages_per_second": compared["delivered_per_second"],
        "cpu_us_per_message": compared["server"]["cpu_us_per_message"],
        "rss_per_connection_bytes": compared["server"]["rss_per_connection_bytes"],
    }
    ceiling = {
        "bare": bare,
        "dibs": dibs,
        "fraction_of_ceiling": dibs["messages_per_second"]
        / bare["messages_per_second"],
        "cpu_ratio": dibs["cpu_us_per_message"] / max(bare["cpu_us_per_message"], 1e-9),
        "dibs_capacity_per_core": 1e6 / dibs["cpu_us_per_message"],
        "bare_capacity_per_core": 1e6 / max(bare["cpu_us_per_message"], 1e-9),
    }
    progress.done(
        f"bare {bare['messages_per_second']:.0f} msg/s "
        f"{bare['cpu_us_per_message']:.1f}us/msg; "
        f"Dibs {dibs['cpu_us_per_message']:.1f}us/msg"
    )
    return ceiling


def safe_floor(spec: FloorRun, logs: Path) -> dict[str, Any]:
    """Run one floor; a failed run is recorded with its error, not raised."""
    try:
        return run_floor(spec, logs)
    except Exception as error:  # noqa: BLE001 - one bad run must not lose the rest
        sys.stderr.write(f"{spec.label} failed: {error}\n")
        return {**dataclasses.asdict(spec), "error": str(error)}


def machine() -> dict[str, Any]:
    """Describe the machine the figures come from."""
    import os

    import psutil

    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def commit() -> str:
    """Return the checked-out commit, if this is a git checkout."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_suite(
    suite: dict[str, Any], only: set[str] | None, logs: Path
) -> dict[str, Any]:
    """Run every selected part of ``suite``; return the results document."""
    results: dict[str, Any] = {
        "machine": machine(),
        "commit": commit(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "file_limit": raise_file_limit(),
        "load_before": load_average(),
        "groups": {},
    }
    for name, runs in suite["groups"].items():
        if only is None or name in only:
            results["groups"][name] = [safe_floor(spec, logs) for spec in runs]
    for name, runs in suite["sweeps"].items():
        if only is None or name in only:
            results["groups"][name] = sweep(runs, logs)

    ceiling = suite.get("ceiling")
    if ceiling and (only is None or "ceiling" in only):
        runs = results["groups"].get(ceiling["group"], [])
        compared = best([run for run in runs if run["mode"] == "modern"])
        if compared is not None:
            results["ceiling"] = run_ceiling(compared, logs)
    registry = suite.get("registry")
    if registry and (only is None or "registry" in only):
        results["registry"] = registry_ops.run(**registry)
    results["load_after"] = load_average()
    return results


def sweep(runs: list[FloorRun], logs: Path) -> list[dict[str, Any]]:
    """Run steps of rising rate until one fails to hold."""
    records = []
    for spec in runs:
        records.append(safe_floor(spec, logs))
        if not passed(records[-1]):
            break
    return records


def best(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Return the run that delivered most per second while holding (else the first)."""
    held = [record for record in records if "error" not in record and passed(record)]
    if held:
        return max(held, key=lambda record: record["delivered_per_second"])
    usable = [record for record in records if "error" not in record]
    return usable[0] if usable else None


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--suite", choices=sorted(SUITES), default="full")
    parser.add_argument(
        "--only", help="comma list of parts to run: group names, ceiling, registry"
    )
    parser.add_argument("--mode", choices=("modern", "legacy", "legacy-all"))
    parser.add_argument("--agents", type=int, help="run one floor of this many agents")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--per-page", type=int, default=2)
    parser.add_argument("--generators", type=int, default=1)
    parser.add_argument("--out", type=Path, help="results file (JSON)")
    parser.add_argument("--plots", type=Path, help="directory for the PNG plots")
    parser.add_argument(
        "--server-command",
        help="start Dibs with this instead of 'python wsgi.py', e.g. under a "
        "profiler that runs in the server's own process",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark as the command line asks; write JSON and plots."""
    args = parse(argv)
    if args.server_command:
        processes.DIBS_COMMAND = shlex.split(args.server_command)
    suite = SUITES[args.suite]
    if args.agents:
        spec = FloorRun(
            args.mode or "modern",
            args.agents,
            args.rate,
            args.duration,
            per_page=args.per_page,
            generators=args.generators,
        )
        suite = {
            "groups": {"custom": [spec]},
            "sweeps": {},
            "ceiling": {"group": "custom"},
        }
    for spec in [run for runs in suite["groups"].values() for run in runs]:
        spec.generators = max(spec.generators, args.generators)

    RESULTS.mkdir(parents=True, exist_ok=True)
    name = f"{'custom' if args.agents else args.suite}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = args.out or RESULTS / f"{name}.json"
    logs = RESULTS / "logs" / name
    logs.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(",")) if args.only else None

    results = run_suite(suite, only, logs)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    plots = plot.draw(results, args.plots or out.parent, prefix=out.stem)
    print(report.tables(results))
    print(f"\nresults: {out}")
    for path in plots:
        print(f"plot: {path}")
