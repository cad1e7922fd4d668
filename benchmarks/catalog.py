"""Benchmark of the catalog's scale: 100 generated feature groups beside the real 4-group registry.

Why: the seed's platform ran about 100 features, so the code location must still load in under 5 s and
`featctl list` answer in under 2 s with 100 groups. The groups are made by `featctl new`'s own scaffold
(assets.scaffold) into a temporary copy of assets/, cycling through every (entity, source) pair the
contracts allow, one in ten with a stream job. Measured for the baseline (the project's registry) and
the catalog (project + 100 generated), taking turns run by run, each the median of --repeats runs, as
wall time and as CPU time (user + system, of the subprocess and its children): other jobs on a shared
2-core machine stretch the wall time, and `featctl list` reads the Dagster instance in a second process,
so its wall time needs a free core. The load average is printed with the table.

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
from collections.abc import Callable
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


def _timed_subprocess(command: list[str], env: dict, check_output: str | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of `command` in the project directory, which must succeed."""
    started, cpu_before = time.perf_counter(), _children_cpu()
    done = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - started, _children_cpu() - cpu_before
    if done.returncode != 0 or (check_output and check_output not in done.stdout):
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return wall, cpu


def _timed_call(action: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call of `action` in this process."""
    started, cpu_before = time.perf_counter(), time.process_time()
    action()
    return time.perf_counter() - started, time.process_time() - cpu_before


def record_publishes(data_dir: Path, registry: Registry) -> None:
    """Give the Dagster instance under `data_dir` one materialization of every group's online asset."""
    import dagster as dg

    from orchestration.runs import dagster_instance

    instance = dagster_instance(load_settings(data_dir=data_dir))
    for name in registry.groups:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=["online", name], partition=PARTITION))


def timed_runs(registry: Registry, scratch: Path) -> dict[str, Callable[[], tuple[float, float]]]:
    """One timed run of each figure for `registry`, as calls, so the two registries' runs can take turns."""
    from orchestration.factory import build_definitions

    bin_dir = Path(sys.executable).parent
    base = {**os.environ, "FP_REGISTRY_DIR": str(registry.root)}
    empty = {**base, "FP_DATA_DIR": str(scratch / "empty")}
    with_events = {**base, "FP_DATA_DIR": str(scratch / "events")}
    record_publishes(scratch / "events", registry)
    settings = load_settings(data_dir=scratch / "empty", registry_dir=registry.root)
    featctl_list = [str(bin_dir / "featctl"), "list"]
    return {
        "code location load": lambda: _timed_subprocess([sys.executable, "-c", "import orchestration.definitions"],
                                                        empty),
        "dg check defs": lambda: _timed_subprocess([str(bin_dir / "dg"), "check", "defs"], empty,
                                                   "All definitions loaded successfully"),
        "featctl list (empty)": lambda: _timed_subprocess(featctl_list, empty, sorted(registry.groups)[-1]),
        "featctl list (events)": lambda: _timed_subprocess(featctl_list, with_events, f"ds={PARTITION}"),
        "load_registry": lambda: _timed_call(lambda: load_registry(registry.root)),
        "build_definitions": lambda: _timed_call(lambda: build_definitions(registry, settings).resolve_asset_graph()),
    }


def main() -> None:
    """Generate the catalog, measure it and the baseline taking turns, print the table with the targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=100, help="Generated feature groups.")
    parser.add_argument("--repeats", type=int, default=5, help="Runs per figure (the median is reported).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fp-bench-catalog-") as tmp:
        scratch = Path(tmp)
        started = time.perf_counter()
        catalog = generate_catalog(scratch / "assets", args.groups)
        _progress(f"generated {args.groups} groups in {time.perf_counter() - started:.1f} s")
        registries = {"baseline": load_registry(DEFAULT_ROOT), "catalog": catalog}
        runs = {label: timed_runs(registry, scratch / label) for label, registry in registries.items()}
        samples = {label: {name: [] for name in runs[label]} for label in runs}
        load_before = os.getloadavg()[0]
        for repeat in range(args.repeats):
            _progress(f"round {repeat + 1}/{args.repeats}")
            for name in runs["catalog"]:
                for label in runs:  # the two registries take turns, so both see the same machine load
                    samples[label][name].append(runs[label][name]())
        load_after = os.getloadavg()[0]
    streams = sum(1 for g in catalog.groups.values() if g.stream)
    features = sum(len(g.features) for g in catalog.groups.values())
    print(f"\ncatalog: {len(catalog.groups)} groups ({args.groups} generated; {streams} with a stream job), "
          f"{features} features; baseline: {len(registries['baseline'].groups)} groups; median of {args.repeats} "
          f"runs; load average {load_before:.2f} before, {load_after:.2f} after (2 cores: above 2 means waiting)")
    print(f"{'seconds':<24}{'baseline wall':>14}{'cpu':>7}{'catalog wall':>14}{'cpu':>7}{'target':>8}  result")
    for name, catalog_samples in samples["catalog"].items():
        base_wall, base_cpu = (statistics.median(v) for v in zip(*samples["baseline"][name]))
        wall, cpu = (statistics.median(v) for v in zip(*catalog_samples))
        target = TARGETS.get(name)
        verdict = "" if target is None else ("pass" if wall < target else "FAIL")
        print(f"{name:<24}{base_wall:>14.2f}{base_cpu:>7.2f}{wall:>14.2f}{cpu:>7.2f}"
              f"{'' if target is None else f'< {target:.0f}':>8}  {verdict}")


if __name__ == "__main__":
    main()
