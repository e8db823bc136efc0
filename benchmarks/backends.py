"""Throughput of the two worker backends (``imitate.workers``): process pool against Ray actors.

Prints, for 1 and 2 workers on each backend: demos/min recording ``--demos`` demos of a suite v1
task with 2 and with 5 cubes (``imitate.data.generate``), episodes/s evaluating an untrained
policy (``imitate.evaluation.evaluate``; it rarely finishes early, so every episode runs to its
horizon), and each Ray figure's ratio to the process pool's. Wall time of the whole call, worker
start-up included, as ``benchmarks/demos.py`` measures. One local Ray instance (``--workers``'s
largest count of CPUs) serves every Ray row; its start-up is printed once, apart. Last, the cost
of a job itself on each backend: ``--jobs`` empty jobs through 2 workers (ms per job).

    python benchmarks/backends.py [--demos 40] [--cubes 2 5] [--workers 1 2]
                                  [--episodes 4] [--eval-tasks ab] [--jobs 400]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from eval import untrained_checkpoint

from demos import task_with_cubes
from imitate.data import GenerateConfig, generate
from imitate.evaluation import EvalConfig, evaluate
from imitate.workers import BACKENDS, import_ray, job_runner


def demo_rate(layout: str, demos: int, workers: int, backend: str) -> float:
    """Demos per minute recording ``demos`` demos of ``layout`` (seed 0) into a temporary
    dataset."""
    with tempfile.TemporaryDirectory() as folder:
        config = GenerateConfig(out=Path(folder) / "d", per_task=demos, tasks=(layout,),
                                workers=workers, seed=0, shard_size=demos, backend=backend)
        summary = generate(config)
    return 60 * summary.new_demos / summary.seconds


def episode_rate(checkpoint: Path, tasks: tuple[str, ...], episodes: int, workers: int,
                 backend: str) -> float:
    """Episodes per second evaluating ``checkpoint`` on ``tasks`` (ensemble 1, eager
    attention)."""
    config = EvalConfig(checkpoint=checkpoint, tasks=tasks, episodes_per_task=episodes,
                        ensemble=1, workers=workers, fused=False, backend=backend)
    start = time.perf_counter()
    results = evaluate(config)
    return len(results) / (time.perf_counter() - start)


def _empty_state(pooled: bool) -> None:
    return None


def _echo(state: None, job: int) -> int:
    return job


def job_cost(jobs: int, backend: str) -> float:
    """Milliseconds per empty job through 2 workers (start-up excluded: a first job warms the
    workers)."""
    with job_runner(2, _empty_state, (), _echo, lambda state: None, backend=backend) as run:
        list(run(range(2)))
        start = time.perf_counter()
        done = sum(1 for _ in run(range(jobs)))
    return 1000 * (time.perf_counter() - start) / done


def rows_of(name: str, unit: str, rates: dict[tuple[str, int], float]) -> list[str]:
    """Table rows: one per (workers, backend), with the scaling against 1 worker and the ratio of
    Ray to the process pool."""
    rows = []
    for (backend, workers), rate in rates.items():
        scaling = rate / rates[(backend, 1)] if (backend, 1) in rates else 1.0
        against = rate / rates[("process", workers)] if backend == "ray" else 1.0
        rows.append(f"| {name} | {workers} | {backend} | {rate:,.2f} {unit} | {scaling:.2f}x "
                    f"| {against:.2f}x |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demos", type=int, default=40, help="demos per measurement")
    parser.add_argument("--cubes", type=int, nargs="+", default=[2, 5])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--episodes", type=int, default=4, help="episodes per eval task")
    parser.add_argument("--eval-tasks", default="ab")
    parser.add_argument("--jobs", type=int, default=400, help="empty jobs for the job cost")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as 'imitate eval' runs the policy in its own process
    ray = import_ray()
    start = time.perf_counter()
    ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING, _node_ip_address="127.0.0.1")
    print(f"local Ray instance with {max(args.workers)} CPUs started in "
          f"{time.perf_counter() - start:.1f} s (once per command; not in the rows below)")
    print("| what | workers | backend | throughput | scaling | ray / process |")
    print("|---|---:|---|---:|---:|---:|")
    for cubes in args.cubes:
        layout = task_with_cubes(cubes)
        rates = {(backend, workers): demo_rate(layout, args.demos, workers, backend)
                 for backend in BACKENDS for workers in args.workers}
        print("\n".join(rows_of(f"{cubes} cubes (`{layout}`), {args.demos} demos", "demos/min",
                                rates)), flush=True)
    tasks = tuple(t.strip() for t in args.eval_tasks.split(","))
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = untrained_checkpoint(Path(folder))
        rates = {(backend, workers): episode_rate(checkpoint, tasks, args.episodes, workers,
                                                  backend)
                 for backend in BACKENDS for workers in args.workers}
    print("\n".join(rows_of(f"eval `{args.eval_tasks}`, {args.episodes * len(tasks)} episodes",
                            "episodes/s", rates)), flush=True)
    costs: dict[str, Any] = {backend: job_cost(args.jobs, backend) for backend in BACKENDS}
    print("cost of one empty job through 2 workers: " + ", ".join(
        f"{backend} {ms:.2f} ms" for backend, ms in costs.items()))
    ray.shutdown()


if __name__ == "__main__":
    main()
