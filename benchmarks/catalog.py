"""Benchmark of the catalog's scale: 100 generated feature groups beside the real 4-group registry.

Why: the seed's platform ran about 100 features, so the code location must still load in under 5 s and
`featctl list` answer in under 2 s with 100 groups. The groups are made by `featctl new`'s own scaffold
(assets.scaffold) into a temporary copy of assets/, cycling through every (entity, source) pair the
contracts allow, one in ten with a stream job. Measured for the baseline (the project's registry) and
the catalog (project + 100 generated), each the median of --repeats runs, as wall time and as CPU time
(user + system, of the subprocess and its children): other jobs on a shared 2-core machine stretch the
wall time, and `featctl list` reads the Dagster instance in a second process, so its wall time needs a
free core.

  code location load     a fresh `python -c "import orchestration.definitions"` (what `dagster dev` and
                         `dg` import), FP_REGISTRY_DIR pointed at the registry: interpreter, imports,
                         registry load and build_definitions
  dg check defs          the Dagster CLI's own check of the project (a subprocess of its own)
  featctl list (empty)   `featctl list` as a subprocess on a fresh FP_DATA_DIR: no Dagster instance yet
  featctl list (events)  `featctl list` once the instance holds a materialization of every online asset
  load_registry          in this process: reading and validating the folders
  build_definitions      in this process: the Definitions object, plus resolving its asset graph

    .venv/bin/python benchmarks/catalog.py [--groups N] [--repeats N]
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from assets.registry import DEFAULT_ROOT, Registry, load_registry
from assets.scaffold import NewGroup, scaffold_group
from infra.settings import PROJECT_ROOT, load_settings

TARGETS = {"code location load": 5.0, "featctl list (empty)": 2.0, "featctl list (events)": 2.0}
PARTITION = "2026-01-09"
STREAM_EVERY = 10  # one generated group in ten also has a stream job


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def generate_catalog(root: Path, count: int) -> Registry:
    """A copy of the project's registry under `root` with `count` generated groups added; the loaded registry."""
    import shutil

    shutil.copytree(DEFAULT_ROOT, root, ignore=shutil.ignore_patterns("__pycache__"))
    registry = load_registry(root)
    pairs = [(entity, source.name) for source in registry.sources.values() for entity in source.entity_keys]
    for index, (entity, source) in zip(range(count), itertools.cycle(pairs)):
        name = f"b{index:03d}_{entity}_{source.split('_')[0]}"
        scaffold_group(registry, NewGroup(name, entity, source, stream=index % STREAM_EVERY == 0))
    return load_registry(root)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _median_subprocess(command: list[str], env: dict, repeats: int,
                       check_output: str | None = None) -> tuple[float, float]:
    """Median (wall, CPU) seconds of `repeats` runs of `command` in the project directory; each must succeed."""
    wall, cpu = [], []
    for _ in range(repeats):
        started, cpu_before = time.perf_counter(), _children_cpu()
        done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
        wall.append(time.perf_counter() - started)
        cpu.append(_children_cpu() - cpu_before)
        if done.returncode != 0 or (check_output and check_output not in done.stdout):
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return statistics.median(wall), statistics.median(cpu)


def _median_in_process(action, repeats: int) -> tuple[float, float]:
    """Median (wall, CPU) seconds of `repeats` calls of `action` in this process."""
    wall, cpu = [], []
    for _ in range(repeats):
        started, cpu_before = time.perf_counter(), time.process_time()
        action()
        wall.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_before)
    return statistics.median(wall), statistics.median(cpu)


def record_publishes(data_dir: Path, registry: Registry) -> None:
    """Give the Dagster instance under `data_dir` one materialization of every group's online asset."""
    import dagster as dg

    from orchestration.runs import dagster_instance

    instance = dagster_instance(load_settings(data_dir=data_dir))
    for name in registry.groups:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=["online", name], partition=PARTITION))


def measure(registry: Registry, repeats: int, scratch: Path) -> dict[str, tuple[float, float]]:
    """Every figure of the table for one registry."""
    from orchestration.factory import build_definitions

    last_group = sorted(registry.groups)[-1]
    base = {**os.environ, "FP_REGISTRY_DIR": str(registry.root)}
    empty = {**base, "FP_DATA_DIR": str(scratch / "empty")}
    figures = {}
    _progress(f"  code location load ({len(registry.groups)} groups)")
    figures["code location load"] = _median_subprocess(
        [sys.executable, "-c", "import orchestration.definitions"], empty, repeats)
    _progress("  dg check defs")
    figures["dg check defs"] = _median_subprocess([str(Path(sys.executable).parent / "dg"), "check", "defs"], empty,
                                            repeats, check_output="All definitions loaded successfully")
    featctl = [str(Path(sys.executable).parent / "featctl"), "list"]
    _progress("  featctl list")
    figures["featctl list (empty)"] = _median_subprocess(featctl, empty, repeats, check_output=last_group)
    record_publishes(scratch / "events", registry)
    figures["featctl list (events)"] = _median_subprocess(featctl, {**base, "FP_DATA_DIR": str(scratch / "events")},
                                                    repeats, check_output=f"ds={PARTITION}")
    _progress("  in process")
    figures["load_registry"] = _median_in_process(lambda: load_registry(registry.root), repeats)
    settings = load_settings(data_dir=scratch / "empty", registry_dir=registry.root)
    figures["build_definitions"] = _median_in_process(
        lambda: build_definitions(registry, settings).resolve_asset_graph(), repeats)
    return figures


def main() -> None:
    """Generate the catalog, measure it and the baseline, print the table with the targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100, help="Generated feature groups.")
    parser.add_argument("--repeats", type=int, default=5, help="Runs per figure (the median is reported).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fp-bench-catalog-") as tmp:
        scratch = Path(tmp)
        started = time.perf_counter()
        catalog = generate_catalog(scratch / "assets", args.groups)
        _progress(f"generated {args.groups} groups in {time.perf_counter() - started:.1f} s")
        baseline = load_registry(DEFAULT_ROOT)
        figures = {}
        for label, registry in (("baseline", baseline), ("catalog", catalog)):
            _progress(f"{label}: {len(registry.groups)} groups")
            figures[label] = measure(registry, args.repeats, scratch / label)
    streams = sum(1 for g in catalog.groups.values() if g.stream)
    features = sum(len(g.features) for g in catalog.groups.values())
    print(f"\ncatalog: {len(catalog.groups)} groups ({args.groups} generated, {streams} with a stream job), "
          f"{features} features; baseline: {len(baseline.groups)} groups; median of {args.repeats} runs; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'seconds':<24}{'baseline wall':>14}{'cpu':>7}{'catalog wall':>14}{'cpu':>7}{'target':>8}  result")
    for name in figures["catalog"]:
        (base_wall, base_cpu), (wall, cpu) = figures["baseline"][name], figures["catalog"][name]
        target = TARGETS.get(name)
        verdict = "" if target is None else ("pass" if wall < target else "FAIL")
        print(f"{name:<24}{base_wall:>14.2f}{base_cpu:>7.2f}{wall:>14.2f}{cpu:>7.2f}"
              f"{'' if target is None else f'< {target:.0f}':>8}  {verdict}")


if __name__ == "__main__":
    main()
