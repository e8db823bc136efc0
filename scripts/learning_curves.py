"""Learning curves of training runs: held-out loss and action accuracy from ``metrics.jsonl``, and
success on a fixed set of training tasks measured on the weights the runs kept
(``imitate train --snapshot-every N`` writes ``RUN/snapshots/step-NNNNNNN.pt``).

    python scripts/learning_curves.py --runs runs/ref2-full runs/ref2-final \\
        --out docs/reference-v2-curves.png [--episodes 4] [--tasks "ba,cd ab"] [--workers 1]

Each snapshot is evaluated once (``imitate eval``'s protocol: greedy, ensemble ``--ensemble``,
each episode conditioned on an evaluation demo, no expert runs) on ``--tasks`` (default: the
suite's first training task of each stage count 1 to 7), ``--episodes`` episodes per task; the
results are appended to ``RUN/snapshots/success.jsonl`` so a re-run, say while training goes
on, evaluates only new snapshots. The figure has three panels against the training step: the
held-out loss, the held-out accuracy (all four heads right) and the success rate over the fixed
tasks, with 95% Wilson intervals.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import envs  # noqa: E402
from imitate.evaluation import EvalConfig, evaluate, use_one_inference_thread  # noqa: E402
from imitate.files import atomic_write_bytes  # noqa: E402
from imitate.report import wilson_interval  # noqa: E402

SUCCESS_LOG = "success.jsonl"


def default_tasks() -> list[str]:
    """The suite's first training task of each stage count from 1 to 7."""
    chosen: dict[int, str] = {}
    for task in envs.load_suite().split("train"):
        chosen.setdefault(task.num_stages, task.layout)
    return [chosen[stages] for stages in sorted(chosen)]


def evaluated_steps(run: Path) -> dict[int, dict]:
    """The rows of ``RUN/snapshots/success.jsonl`` by step."""
    log = run / "snapshots" / SUCCESS_LOG
    if not log.exists():
        return {}
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return {row["step"]: row for row in rows}


def evaluate_snapshots(run: Path, tasks: list[str], episodes: int, ensemble: int,
                       workers: int) -> None:
    """Evaluate every snapshot of ``run`` not yet in its success log, oldest first."""
    done = evaluated_steps(run)
    for snapshot in sorted((run / "snapshots").glob("step-*.pt")):
        step = int(snapshot.stem.split("-")[1])
        if step in done:
            continue
        results = evaluate(EvalConfig(checkpoint=snapshot, tasks=tuple(tasks),
                                      episodes_per_task=episodes, ensemble=ensemble,
                                      workers=workers, expert=False))
        by_stage: dict[str, list[int]] = {}
        for result in results:
            counts = by_stage.setdefault(str(result.num_stages), [0, 0])
            counts[0] += int(result.success)
            counts[1] += 1
        row = {"step": step, "successes": sum(r.success for r in results),
               "episodes": len(results), "by_stages": by_stage, "tasks": tasks,
               "ensemble": ensemble}
        with (run / "snapshots" / SUCCESS_LOG).open("a") as log:
            log.write(json.dumps(row) + "\n")
        print(f"{run.name} step {step}: {row['successes']}/{row['episodes']} "
              f"({', '.join(f'{k} stages {v[0]}/{v[1]}' for k, v in by_stage.items())})",
              flush=True)


def metrics_rows(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot(runs: list[Path]) -> Figure:
    figure = Figure(figsize=(11, 9))
    axes = figure.subplots(3, 1, sharex=True)
    for run in runs:
        rows = [r for r in metrics_rows(run) if "val_loss" in r]
        steps = [r["step"] for r in rows]
        axes[0].plot(steps, [r["val_loss"] for r in rows], label=run.name, linewidth=1)
        axes[1].plot(steps, [r["val_acc_all"] for r in rows], label=run.name, linewidth=1)
        success = sorted(evaluated_steps(run).values(), key=lambda r: r["step"])
        if success:
            xs = [r["step"] for r in success]
            rates = [100 * r["successes"] / r["episodes"] for r in success]
            bounds = [wilson_interval(r["successes"], r["episodes"]) for r in success]
            line = axes[2].plot(xs, rates, marker="o", label=run.name)[0]
            axes[2].fill_between(xs, [100 * b[0] for b in bounds],
                                 [100 * b[1] for b in bounds], color=line.get_color(),
                                 alpha=0.15)
    axes[0].set_ylabel("held-out loss")
    axes[1].set_ylabel("held-out accuracy\n(all 4 heads)")
    axes[2].set_ylabel("success % on fixed\ntraining tasks")
    axes[2].set_xlabel("training step")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="+", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="the figure (PNG)")
    parser.add_argument("--tasks", default=None, help="comma-separated layouts")
    parser.add_argument("--episodes", type=int, default=4, help="episodes per task")
    parser.add_argument("--ensemble", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--plot-only", action="store_true", help="evaluate nothing new")
    args = parser.parse_args()
    tasks = args.tasks.split(",") if args.tasks else default_tasks()
    use_one_inference_thread()  # as imitate eval; the default oversubscribes the cores
    for run in args.runs:
        if not (run / "metrics.jsonl").exists():
            parser.error(f"{run} holds no training run (no metrics.jsonl)")
        if not args.plot_only and (run / "snapshots").is_dir():
            evaluate_snapshots(run, tasks, args.episodes, args.ensemble, args.workers)
    buffer = io.BytesIO()
    plot(args.runs).savefig(buffer, format="png", dpi=100)
    atomic_write_bytes(args.out, buffer.getvalue())
    print(f"{args.out}: tasks {', '.join(tasks)}")


if __name__ == "__main__":
    main()
