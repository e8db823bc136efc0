"""Same learning, two speeds: one training run with the eager attention, one with the fused kernel.

Runs ``imitate train`` twice on the same dataset with the same seed, conditioning, batch and
1 torch thread, ``--compile off`` and ``--compile on`` (both at once, one core each, unless
``--jobs 1``), and with ``--control`` a third time, eager on 2 threads; then plots the held-out
loss against the step and against the training CPU time, and prints a Markdown table of the
held-out loss at every ``--every`` steps, the differences from the eager run and each run's
samples per CPU second. An interrupted run resumes (a finished one is read as it is).

    python scripts/fused_vs_eager.py --demos demos/dropout19 --out runs/fused-vs-eager \\
        [--steps 1000] [--conditioning full] [--control] [--figure docs/fused-vs-eager.png]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from dropout_study import read_metrics, save_png, smooth
from matplotlib.figure import Figure

from imitate.files import atomic_write_bytes

PATHS = (("eager", "off"), ("fused", "on"))
#: The control: the eager path on 2 threads, whose matrix products sum in another order. Float
#: rounding alone makes two runs drift apart after a few hundred Adamax steps (Adamax divides each
#: gradient by its running maximum, so rounding-level differences of near-zero components become
#: whole steps); the fused run should drift from the eager one no more than this one does.
CONTROL = ("eager-2-threads", "off")
LEGEND = {"eager": "eager, 1 thread", "fused": "fused kernel, 1 thread",
          "eager-2-threads": "eager, 2 threads (control: another summation order)"}


def train_all(demos: Path, out: Path, steps: int, conditioning: str, seed: int, jobs: int,
              control: bool) -> None:
    """Start (or resume) the runs that have not reached ``steps``; wait for them."""
    pending = []
    for label, flag in (*PATHS, CONTROL) if control else PATHS:
        folder = out / label
        rows = read_metrics(folder)
        if rows and rows[-1]["step"] >= steps:
            continue
        command = [sys.executable, "-m", "imitate", "train", "--demos", str(demos), "--out",
                   str(folder), "--steps", str(steps), "--conditioning", conditioning,
                   "--seed", str(seed), "--threads", "2" if label == CONTROL[0] else "1",
                   "--compile", flag, "--quiet"]
        if (folder / "policy.pt").exists():
            command.append("--resume")
        pending.append(command)
    running: list[subprocess.Popen] = []
    for command in pending:
        if len(running) >= jobs:
            running.pop(0).wait()
        print(" ".join(command), flush=True)
        running.append(subprocess.Popen(command))
    for process in running:
        if process.wait() != 0:
            raise SystemExit(f"a training run failed (exit {process.returncode})")


def held_out(rows: list[dict]) -> dict[int, dict]:
    """Rows with a validation loss, by step."""
    return {row["step"]: row for row in rows if "val_loss" in row}


def table(runs: dict[str, list[dict]], out: Path, every: int) -> str:
    """Held-out loss of every run at every ``every`` steps, and each run's largest difference
    from the eager run."""
    labels = list(runs)
    rows = {label: held_out(runs[label]) for label in labels}
    steps = sorted(set.intersection(*(set(r) for r in rows.values())))
    header = " | ".join(f"{label}" for label in labels)
    others = [label for label in labels if label != "eager"]
    lines = [f"| step | {header} | " + " | ".join(f"{o} - eager" for o in others) + " |",
             "|---:|" + "---:|" * (len(labels) + len(others))]
    for step in steps:
        if step % every == 0 or step == steps[-1]:
            cells = [f"{rows[label][step]['val_loss']:.3f}" for label in labels]
            cells += [f"{rows[o][step]['val_loss'] - rows['eager'][step]['val_loss']:+.3f}"
                      for o in others]
            lines.append(f"| {step} | " + " | ".join(cells) + " |")
    lines.append("")
    for other in others:
        gaps = [abs(rows[other][s]["val_loss"] - rows["eager"][s]["val_loss"]) for s in steps]
        late = gaps[len(gaps) // 2:]
        lines.append(f"{other} - eager over all {len(steps)} held-out rows: largest "
                     f"{max(gaps):.3f}, mean {sum(gaps) / len(gaps):.3f}, mean over the second "
                     f"half {sum(late) / len(late):.3f}.")
    for label in labels:
        config = json.loads((out / label / "config.json").read_text())
        pairs = config["tasks_per_batch"] * config["pairs_per_task"]
        last = runs[label][-1]
        lines.append(f"{label}: {last['step']} steps in {last['cpu_s'] / 60:.1f} training CPU "
                     f"minutes, {last['step'] * pairs / last['cpu_s']:.0f} samples per CPU "
                     "second.")
    return "\n".join(lines)


def plot(runs: dict[str, list[dict]], path: Path, conditioning: str) -> None:
    figure = Figure(figsize=(11, 4))
    axes = figure.subplots(1, 2, sharey=True)
    for label, style in zip(runs, ("-", "--", ":"), strict=False):
        rows = list(held_out(runs[label]).values())
        for axis, key, scale in ((axes[0], "step", 1), (axes[1], "cpu_s", 60)):
            axis.plot([r[key] / scale for r in rows], smooth([r["val_loss"] for r in rows]),
                      style, label=LEGEND.get(label, label))
    axes[0].set_xlabel("optimisation steps")
    axes[1].set_xlabel("training CPU minutes (all threads)")
    axes[0].set_ylabel("held-out loss (mean of 5 rows)")
    axes[0].legend()
    for axis in axes:
        axis.grid(alpha=0.3)
    figure.suptitle(f"Same data, seed and batches ({conditioning} conditioning): float rounding "
                    "alone parts runs after ~500 steps")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(figure, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demos", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--conditioning", default="full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (default: 2)")
    parser.add_argument("--every", type=int, default=100, help="table rows every N steps")
    parser.add_argument("--control", action="store_true",
                        help="also train the eager path on 2 threads (another float summation "
                        "order) to show how far rounding alone moves a run")
    parser.add_argument("--figure", type=Path, default=None,
                        help="PNG path (default: OUT/curves.png)")
    args = parser.parse_args(argv)
    train_all(args.demos, args.out, args.steps, args.conditioning, args.seed, args.jobs,
              args.control)
    labels = [label for label, _ in PATHS] + ([CONTROL[0]] if args.control else [])
    runs = {label: read_metrics(args.out / label) for label in labels}
    report = table(runs, args.out, args.every)
    atomic_write_bytes(args.out / "comparison.md", (report + "\n").encode())
    plot(runs, args.figure or args.out / "curves.png", args.conditioning)
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
