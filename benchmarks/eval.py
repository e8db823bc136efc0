"""Evaluation speed: episodes/s at 1 and 2 workers and where an episode's time goes.

Runs ``imitate.evaluation.evaluate`` on ``--tasks`` with ``--episodes-per-task`` episodes, once per
worker count, with ``--checkpoint`` (default: an untrained policy saved to a temporary folder;
untrained policies rarely finish early, so every episode runs to its horizon, the slow case).
Prints episodes/s, the scaling ratio, and the share of episode time spent choosing actions
(policy), simulating (env steps), recording the conditioning demo and running the expert.

    python benchmarks/eval.py [--checkpoint PATH] [--tasks ab,abc] [--episodes-per-task 4]
                              [--ensemble 10]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from imitate.checkpoint import save_checkpoint
from imitate.evaluation import EvalConfig, evaluate
from imitate.model import OneShotPolicy, PolicyConfig


def untrained_checkpoint(folder: Path) -> Path:
    torch.manual_seed(0)
    return save_checkpoint(folder / "policy.pt", OneShotPolicy(PolicyConfig()), env={},
                           suite_version=1, training={"benchmark": True}, step=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--tasks", default="ab,abc")
    parser.add_argument("--episodes-per-task", type=int, default=4)
    parser.add_argument("--ensemble", type=int, default=10)
    args = parser.parse_args()
    tasks = tuple(t.strip() for t in args.tasks.split(","))
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = args.checkpoint or untrained_checkpoint(Path(folder))
        print(f"tasks {tasks}, {args.episodes_per_task} episodes each, ensemble {args.ensemble}, "
              f"checkpoint {'untrained' if args.checkpoint is None else checkpoint}")
        print(f"{'workers':>7}  {'episodes/s':>10}  {'scaling':>7}  {'steps/s':>8}  "
              f"{'policy':>6}  {'env':>6}  {'demo':>6}  {'expert':>6}")
        base = None
        for workers in (1, 2):
            config = EvalConfig(checkpoint=checkpoint, tasks=tasks,
                                episodes_per_task=args.episodes_per_task,
                                ensemble=args.ensemble, workers=workers)
            start = time.perf_counter()
            results = evaluate(config)
            seconds = time.perf_counter() - start
            rate = len(results) / seconds
            base = base or rate
            parts = {name: sum(getattr(r, f"{name}_seconds") for r in results)
                     for name in ("policy", "env", "demo", "expert")}
            busy = sum(parts.values())
            steps = sum(r.steps for r in results) / seconds
            shares = "  ".join(f"{100 * parts[n] / busy:>5.0f}%" for n in parts)
            print(f"{workers:>7}  {rate:>10.3f}  {rate / base:>6.2f}x  {steps:>8.0f}  {shares}")
        print("(policy: demo embedding + action choice; env: simulation steps of the policy's "
              "episode; demo: recording the conditioning demo; expert: the expert's own run)")


if __name__ == "__main__":
    main()
