"""Compare training settings at equal CPU time: the temporal dropout rule and the context network.

Each setting is one ``imitate train`` run on the same dataset with the same seed, 1 torch
thread and the eager attention (``--compile off``: the fused kernel changes the cost per step, not
what is learnt), stopped once its training CPU time (``cpu_s`` in ``metrics.jsonl``: batch
assembly and optimisation, without validation) reaches ``--cpu-minutes``; ``--jobs`` runs go at
once. Then
the held-out loss and action accuracy (all four heads right) of every run are read at equal CPU
time and at equal steps, each as the mean over the rows in the last fifth of the range (a
validation row is one batch of 16 tasks x 32 pairs, so single rows are noisy), and written as a
Markdown table (``study.md``), JSON (``study.json``) and curves (``curves.png``).

    python scripts/dropout_study.py --demos demos/dropout19 --out runs/dropout-study
    python scripts/dropout_study.py --out runs/dropout-study --analyse-only

A re-run keeps the runs that already reached the budget and restarts the others afresh.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from imitate.files import atomic_write_bytes  # noqa: E402


@dataclass(frozen=True)
class Setting:
    """One training run of the study: a name, what it varies, and its ``imitate train`` flags."""

    name: str
    label: str
    flags: tuple[str, ...]


SETTINGS = (
    Setting("v05-full-0.05", "0.5 context, full, keep 0.05 (0.5.0)",
            ("--context-form", "0.5", "--conditioning", "full", "--keep-fraction", "0.05",
             "--min-kept-frames", "1")),
    Setting("v05-final", "0.5 context, final state (0.5.0)",
            ("--context-form", "0.5", "--conditioning", "final")),
    Setting("m2-final", "Module 2, final state",
            ("--context-form", "module2", "--conditioning", "final")),
    *(Setting(f"m2-full-{fraction}", f"Module 2, full, keep {fraction}",
              ("--context-form", "module2", "--conditioning", "full", "--keep-fraction",
               fraction, "--min-kept-frames", "1"))
      for fraction in ("0.05", "0.1", "0.2", "0.4")),
    Setting("m2-full-0.1-min12", "Module 2, full, keep 0.1, at least 12 frames",
            ("--context-form", "module2", "--conditioning", "full", "--keep-fraction", "0.1",
             "--min-kept-frames", "12")),
)
#: Steps no run reaches within the budget (runs stop on CPU time, not on steps).
MAX_STEPS = 1_000_000
WINDOW = 0.2  # the last fifth of a range is averaged


def read_metrics(folder: Path) -> list[dict]:
    path = folder / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def reached(folder: Path, budget: float) -> bool:
    rows = read_metrics(folder)
    return bool(rows) and rows[-1].get("cpu_s", 0.0) >= budget


def run_settings(settings: list[Setting], demos: Path, out: Path, budget: float, jobs: int,
                 seed: int) -> None:
    """Train every setting until its training CPU time reaches ``budget`` seconds."""
    pending = [s for s in settings if not reached(out / s.name, budget)]
    running: dict[str, tuple[subprocess.Popen, Path]] = {}
    while pending or running:
        while pending and len(running) < jobs:
            setting = pending.pop(0)
            folder = out / setting.name
            shutil.rmtree(folder, ignore_errors=True)
            command = [sys.executable, "-m", "imitate", "train", "--demos", str(demos),
                       "--out", str(folder), "--steps", str(MAX_STEPS), "--seed", str(seed),
                       "--threads", "1", "--log-every", "20", "--checkpoint-every", "500",
                       "--compile", "off", "--quiet", *setting.flags]
            print(f"start {setting.name}: {' '.join(command[2:])}", flush=True)
            folder.mkdir(parents=True, exist_ok=True)
            log = (folder / "train.log").open("w")
            running[setting.name] = (subprocess.Popen(command, stdout=log, stderr=log, cwd=ROOT),
                                     folder)
        time.sleep(5)
        for name, (process, folder) in list(running.items()):
            if reached(folder, budget):
                process.terminate()
                process.wait()
                rows = read_metrics(folder)
                print(f"done {name}: step {rows[-1]['step']}, {rows[-1]['cpu_s']:.0f} CPU s",
                      flush=True)
                del running[name]
            elif process.poll() is not None:
                raise SystemExit(f"{name} stopped early (exit {process.returncode}); see "
                                 f"{folder / 'train.log'}")


def window_mean(rows: list[dict], key: str, axis: str, end: float) -> float:
    """Mean of ``key`` over the rows whose ``axis`` lies in the last fifth of [0, end]."""
    values = [r[key] for r in rows if (1 - WINDOW) * end <= r[axis] <= end and key in r]
    if not values:
        raise SystemExit(f"no {key} rows with {axis} in the last fifth of {end}")
    return sum(values) / len(values)


def analyse(settings: list[Setting], out: Path) -> dict:
    """Table rows at equal CPU time (the smallest final CPU time of all runs) and at equal steps
    (the fewest steps of all runs), plus the curves."""
    runs = {s.name: read_metrics(out / s.name) for s in settings}
    missing = [name for name, rows in runs.items() if not rows]
    if missing:
        raise SystemExit(f"no metrics for {', '.join(missing)} in {out}")
    cpu = min(rows[-1]["cpu_s"] for rows in runs.values())
    steps = min(rows[-1]["step"] for rows in runs.values())
    table = []
    for setting in settings:
        rows = runs[setting.name]
        table.append({
            "name": setting.name, "label": setting.label, "flags": " ".join(setting.flags),
            "steps": rows[-1]["step"], "cpu_s": rows[-1]["cpu_s"],
            "samples_per_cpu_s": rows[-1]["step"] * 512 / rows[-1]["cpu_s"],
            "val_loss_at_cpu": window_mean(rows, "val_loss", "cpu_s", cpu),
            "val_acc_at_cpu": window_mean(rows, "val_acc_all", "cpu_s", cpu),
            "val_loss_at_steps": window_mean(rows, "val_loss", "step", steps),
            "val_acc_at_steps": window_mean(rows, "val_acc_all", "step", steps),
        })
    result = {"equal_cpu_s": cpu, "equal_steps": steps, "window": WINDOW, "runs": table}
    atomic_write_bytes(out / "study.json", json.dumps(result, indent=2).encode())
    atomic_write_bytes(out / "study.md", markdown(result).encode())
    plot(settings, runs, out / "curves.png")
    return result


def markdown(result: dict) -> str:
    cpu, steps = result["equal_cpu_s"], result["equal_steps"]
    lines = [f"| setting | steps in budget | samples/CPU s | held-out loss at {cpu / 60:.1f} "
             f"CPU min | accuracy at {cpu / 60:.1f} CPU min | held-out loss at {steps} steps | "
             f"accuracy at {steps} steps |", "|---|---:|---:|---:|---:|---:|---:|"]
    for row in result["runs"]:
        lines.append(f"| {row['label']} | {row['steps']} | {row['samples_per_cpu_s']:.0f} | "
                     f"{row['val_loss_at_cpu']:.3f} | {row['val_acc_at_cpu']:.3f} | "
                     f"{row['val_loss_at_steps']:.3f} | {row['val_acc_at_steps']:.3f} |")
    return "\n".join(lines) + "\n"


def smooth(values: list[float], width: int = 5) -> list[float]:
    return [sum(values[max(0, i - width + 1):i + 1]) / len(values[max(0, i - width + 1):i + 1])
            for i in range(len(values))]


def plot(settings: list[Setting], runs: dict[str, list[dict]], path: Path) -> None:
    figure = Figure(figsize=(12, 8))
    axes = figure.subplots(2, 2, sharey="row")
    for setting in settings:
        rows = [r for r in runs[setting.name] if "val_loss" in r]
        style = "--" if setting.name.startswith("v05") else "-"
        for column, axis in enumerate(("cpu_s", "step")):
            x = [r[axis] / (60 if axis == "cpu_s" else 1) for r in rows]
            axes[0, column].plot(x, smooth([r["val_loss"] for r in rows]), style,
                                 label=setting.label)
            axes[1, column].plot(x, smooth([r["val_acc_all"] for r in rows]), style)
    for column, name in enumerate(("training CPU minutes (1 thread)", "optimisation steps")):
        axes[1, column].set_xlabel(name)
    axes[0, 0].set_ylabel("held-out loss (mean of 5 batches)")
    axes[1, 0].set_ylabel("held-out action accuracy (all 4 heads)")
    axes[0, 0].legend(fontsize=8)
    for axis in axes.flat:
        axis.grid(alpha=0.3)
    figure.suptitle("Equal CPU time (left) and equal steps (right); same data, seed and batch")
    save_png(figure, path)


def save_png(figure: object, path: Path) -> None:
    """Lay out ``figure`` (a ``matplotlib.figure.Figure``) and write it to ``path`` as PNG
    atomically."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    atomic_write_bytes(path, buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demos", type=Path, help="dataset folder (imitate demos generate)")
    parser.add_argument("--out", type=Path, required=True, help="study folder")
    parser.add_argument("--cpu-minutes", type=float, default=12.0,
                        help="training CPU minutes per run (default: 12)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at once (default: 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every run (default: 0)")
    parser.add_argument("--only", help="comma-separated setting names to run (default: all)")
    parser.add_argument("--analyse-only", action="store_true",
                        help="only read the runs in --out and write the table and curves")
    args = parser.parse_args(argv)
    settings = list(SETTINGS)
    if args.only:
        names = args.only.split(",")
        unknown = sorted(set(names) - {s.name for s in SETTINGS})
        if unknown:
            parser.error(f"unknown setting {unknown[0]!r}; choose from "
                         f"{', '.join(s.name for s in SETTINGS)}")
        settings = [s for s in SETTINGS if s.name in names]
    if not args.analyse_only:
        if args.demos is None:
            parser.error("--demos is required unless --analyse-only")
        run_settings(settings, args.demos, args.out, args.cpu_minutes * 60, args.jobs, args.seed)
    result = analyse(settings, args.out)
    print(markdown(result), end="")
    print(f"curves: {args.out / 'curves.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
