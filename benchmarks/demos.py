"""Demo generation speed: demos/min at 1 and 2 workers for 2-, 5- and 10-cube tasks.

For each cube count, a suite task with that many cubes (and about half as many stages) is recorded
``--demos`` times with ``imitate.data.generate`` into a temporary dataset, once per worker count.
Printed per row: demos/min (wall time of the whole call, pool start-up included: the default 60
demos per row make it a small share), the scaling ratio against one worker, bytes per demo on
disk, steps per demo, and for the 1-worker run (in-process) the share of wall time spent outside
physics (everything but ``Sim.step``: expert, observation and predicate
code, recording, compression, writing). Target (issue 4): 2 workers >= 1.8x one worker.
``--tasks`` names the layouts to record instead (any valid layout, e.g. the 6-stage 10-cube
``"da ec fj bghi"``); every row also gives control steps/s, the rate the expert's planner shows in.

    python benchmarks/demos.py [--demos 60] [--cubes 2 5 10 | --tasks LAYOUT ...] [--workers 1 2]
                               [--seed 0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import envs
from envs.sim import Sim
from envs.tasks import Task, parse_task
from imitate.data import GenerateConfig, generate


class PhysicsTimer:
    """Wraps ``Sim.step`` in this process to sum the seconds spent stepping physics."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._original = Sim.step

    def __enter__(self) -> PhysicsTimer:
        original = self._original

        def timed(sim: Sim, substeps: int) -> None:
            start = time.perf_counter()
            original(sim, substeps)
            self.seconds += time.perf_counter() - start

        Sim.step = timed
        return self

    def __exit__(self, *exc: object) -> None:
        Sim.step = self._original


def task_with_cubes(cubes: int) -> str:
    """The first suite v1 task with ``cubes`` cubes whose stage count is closest to ``cubes / 2``
    (suite v1: the tasks the README's figures were measured on)."""
    suite = envs.load_suite(1)
    tasks = [task for task in suite.train + suite.test if task.num_blocks == cubes]
    if not tasks:
        raise ValueError(f"no suite task with {cubes} cubes")
    return min(tasks, key=lambda task: abs(task.num_stages - cubes / 2)).layout


def tasks_to_measure(cubes: list[int], layouts: list[str] | None) -> list[Task]:
    """The tasks of the rows: ``layouts`` when given, else one suite task per cube count.
    Raises ``ValueError`` naming an invalid layout."""
    return [parse_task(text) for text in layouts or map(task_with_cubes, cubes)]


def measure(layout: str, demos: int, workers: int, seed: int) -> dict[str, float]:
    """Record ``demos`` demos of ``layout``; return rate, bytes, steps and time shares."""
    with tempfile.TemporaryDirectory() as folder, PhysicsTimer() as physics:
        config = GenerateConfig(out=Path(folder) / "d", per_task=demos, tasks=(layout,),
                                workers=workers, seed=seed, shard_size=demos)
        summary = generate(config)
        size = sum(p.stat().st_size for p in (config.out / "shards").iterdir())
    result = {"rate": 60 * summary.new_demos / summary.seconds, "bytes": size / demos,
              "steps": summary.new_steps / demos, "discarded": summary.discarded,
              "seconds": summary.seconds, "steps_per_s": summary.new_steps / summary.seconds}
    if workers == 1:  # in-process: the timer saw every physics step
        result["outside_physics"] = 1 - physics.seconds / summary.seconds
        result["expert_share"] = summary.expert_seconds / summary.seconds
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demos", type=int, default=60, help="demos per measurement")
    parser.add_argument("--cubes", type=int, nargs="+", default=[2, 5, 10])
    parser.add_argument("--tasks", nargs="+", metavar="LAYOUT",
                        help='layouts to record instead of one suite task per --cubes, e.g. '
                             '"da ec fj bghi"')
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        tasks = tasks_to_measure(args.cubes, args.tasks)
    except ValueError as error:
        parser.exit(2, f"demos.py: {error}\n")
    print(f"{'cubes':>5}  {'task':<14} {'workers':>7}  {'demos/min':>9}  {'scaling':>7}  "
          f"{'bytes/demo':>10}  {'steps/demo':>10}  {'steps/s':>7}  {'discarded':>9}  "
          f"{'outside physics':>15}")
    for task in tasks:
        cubes, layout = task.num_blocks, task.layout
        base = None
        for workers in args.workers:
            row = measure(layout, args.demos, workers, args.seed)
            base = base if base is not None else row["rate"]
            outside = (f"{100 * row['outside_physics']:.0f}% (expert "
                       f"{100 * row['expert_share']:.0f}%)" if "outside_physics" in row else "-")
            print(f"{cubes:>5}  {layout:<14} {workers:>7}  {row['rate']:>9.1f}  "
                  f"{row['rate'] / base:>6.2f}x  {row['bytes']:>10.0f}  {row['steps']:>10.0f}  "
                  f"{row['steps_per_s']:>7.0f}  {row['discarded']:>9}  {outside:>15}", flush=True)


if __name__ == "__main__":
    main()
