"""Evaluation reports: success by stage count and failure breakdown, with 95% intervals.

``write_report`` turns a list of ``EpisodeResult`` into, in one folder:

| file | what |
|---|---|
| ``report.json`` | config, checkpoint description, per-episode results, the tables |
| ``episodes.csv`` | one row per episode (task, seeds, outcome, stage reached, expert outcome) |
| ``summary.csv`` | one row per (seen/unseen, split, stage count): counts, rates, interval bounds |
| ``report.md`` | the tables shaped like the paper's Tables 3/4 and 7-11 |
| ``report.html`` | one self-contained page: tables, plots, videos by outcome (``html_report``) |
| ``success_by_stages.png`` | success vs stage count per split, policy and expert, with intervals |
| ``outcomes_by_stages.png`` | stacked bars: success / recoverable / manipulation / wrong move |

Rows group episodes by whether the task is ``unseen`` by the checkpoint (its class, the task up to
relabelling of its blocks, is not among the classes of the checkpoint's training tasks) or
``seen``, then by the suite split the layout comes from, then by stage count: a suite "test" task
that relabels a training task is reported as seen (``imitate.novelty``). ``report.json`` also
lists every task with its class, label and the training tasks of its class.

Intervals are Wilson score intervals at 95% (sound at 0% and 100% and for small counts).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from envs.predicates import FAILURE_CLASSES
from envs.tasks import parse_task
from imitate.evaluation import EpisodeResult
from imitate.files import atomic_write_files
from imitate.novelty import NOVELTIES, seen_as, training_tasks

#: z for a two-sided 95% interval.
Z95 = 1.959963984540054
OUTCOMES = ("success", *FAILURE_CLASSES)
OUTCOME_TITLES = {"success": "success", "recoverable_failure": "recoverable",
                  "manipulation_failure": "manipulation", "wrong_move": "wrong move"}


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval (fractions in [0, 1]) for ``successes`` out of ``trials``."""
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def difference_interval(a_successes: int, a_trials: int, b_successes: int, b_trials: int,
                        z: float = Z95) -> tuple[float, float]:
    """Interval (fractions in [-1, 1]) for the difference of two independent success rates,
    B's minus A's: Newcombe's hybrid score interval (his method 10, 1998), built from the two
    Wilson intervals. For unpaired samples; episodes run on both sides pair instead."""
    a_rate, b_rate = a_successes / a_trials, b_successes / b_trials
    a_low, a_high = wilson_interval(a_successes, a_trials, z)
    b_low, b_high = wilson_interval(b_successes, b_trials, z)
    difference = b_rate - a_rate
    low = difference - math.hypot(b_rate - b_low, a_high - a_rate)
    high = difference + math.hypot(b_high - b_rate, a_rate - a_low)
    return max(-1.0, low), min(1.0, high)


@dataclass(frozen=True)
class Rate:
    """``count`` of ``total`` with its 95% interval (fractions)."""

    count: int
    total: int

    @property
    def value(self) -> float:
        return self.count / self.total if self.total else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.count, self.total)

    def cell(self) -> str:
        low, high = self.interval
        return (f"{100 * self.value:.1f} [{100 * low:.1f}, {100 * high:.1f}] "
                f"({self.count}/{self.total})")

    def to_json(self) -> dict[str, Any]:
        low, high = self.interval
        return {"count": self.count, "total": self.total, "rate": self.value,
                "ci95": [low, high]}


@dataclass(frozen=True)
class StageRow:
    """One (seen/unseen, split, stage count) group of episodes."""

    novelty: str
    split: str
    stages: int
    tasks: int
    episodes: int
    outcomes: dict[str, Rate]
    expert: Rate | None

    def to_json(self) -> dict[str, Any]:
        return {"novelty": self.novelty, "split": self.split, "stages": self.stages,
                "tasks": self.tasks,
                "episodes": self.episodes,
                **{name: rate.to_json() for name, rate in self.outcomes.items()},
                "expert_success": self.expert.to_json() if self.expert else None}


def outcome_of(result: EpisodeResult) -> str:
    """``success`` or the failure class of an episode."""
    return "success" if result.success else str(result.failure)


def stage_rows(results: Sequence[EpisodeResult]) -> list[StageRow]:
    """Group episodes by (seen/unseen, split, number of stages): seen before unseen before
    unknown, splits in train, test, other order."""
    groups: dict[tuple[str, str, int], list[EpisodeResult]] = defaultdict(list)
    for result in results:
        groups[(result.novelty, result.split, result.num_stages)].append(result)
    split_order = {"train": 0, "test": 1}

    def order(key: tuple[str, str, int]) -> tuple[int, int, str, int]:
        novelty, split, stages = key
        return (NOVELTIES.index(novelty) if novelty in NOVELTIES else len(NOVELTIES),
                split_order.get(split, 2), split, stages)

    rows = []
    for (novelty, split, stages), group in sorted(groups.items(), key=lambda kv: order(kv[0])):
        n = len(group)
        outcomes = {name: Rate(sum(outcome_of(r) == name for r in group), n)
                    for name in OUTCOMES}
        with_expert = [r for r in group if r.expert_success is not None]
        expert = (Rate(sum(bool(r.expert_success) for r in with_expert), len(with_expert))
                  if with_expert else None)
        rows.append(StageRow(novelty, split, stages, len({r.task for r in group}), n, outcomes,
                             expert))
    return rows


def task_table(results: Sequence[EpisodeResult], trained: Sequence[str] | None
               ) -> list[dict[str, Any]]:
    """One entry per evaluated task: layout, split, stages, class, seen/unseen, the training
    tasks of its class (``seen_as``), episodes and successes."""
    entries: dict[str, dict[str, Any]] = {}
    for result in results:
        entry = entries.setdefault(result.task, {
            "task": result.task, "split": result.split, "stages": result.num_stages,
            "class": str(parse_task(result.task).task_class), "novelty": result.novelty,
            "seen_as": seen_as(result.task, trained) if trained else [],
            "episodes": 0, "successes": 0})
        entry["episodes"] += 1
        entry["successes"] += int(result.success)
    return list(entries.values())


def markdown(rows: Sequence[StageRow], title: str,
             tasks: Sequence[dict[str, Any]] = ()) -> str:
    """The two tables (success by stages; outcome breakdown) as Markdown, then one row per task
    of ``tasks`` (``task_table``) when given."""
    lines = [f"# {title}", "",
             "Cells: % [95% Wilson interval] (count/episodes). A task is *unseen* when its class "
             "(the task up to relabelling of its blocks) is not among the classes of the "
             "policy's training tasks, *seen* when it is, whatever its suite split.", "",
             "## Success by number of stages (cf. paper Tables 3 and 4)", "",
             "| seen/unseen | split | stages | tasks | episodes | policy success | "
             "expert (Demo) success |",
             "|---|---|---:|---:|---:|---|---|"]
    for row in rows:
        expert = row.expert.cell() if row.expert else "-"
        lines.append(f"| {row.novelty} | {row.split} | {row.stages} | {row.tasks} | "
                     f"{row.episodes} | {row.outcomes['success'].cell()} | {expert} |")
    lines += ["", "## Outcomes by number of stages (cf. paper Tables 7-11)", "",
              "| seen/unseen | split | stages | "
              + " | ".join(OUTCOME_TITLES[o] for o in OUTCOMES) + " |",
              "|---|---|---:|" + "---|" * len(OUTCOMES)]
    for row in rows:
        cells = " | ".join(row.outcomes[o].cell() for o in OUTCOMES)
        lines.append(f"| {row.novelty} | {row.split} | {row.stages} | {cells} |")
    if tasks:
        lines += ["", "## Tasks", "",
                  "| task | split | stages | class | seen/unseen | same class in training | "
                  "success |",
                  "|---|---|---:|---|---|---|---|"]
        for entry in tasks:
            same = ", ".join(f"`{x}`" for x in entry["seen_as"]) or "-"
            lines.append(f"| `{entry['task']}` | {entry['split']} | {entry['stages']} | "
                         f"{entry['class']} | {entry['novelty']} | {same} | "
                         f"{entry['successes']}/{entry['episodes']} |")
    return "\n".join(lines) + "\n"


def _csv_bytes(rows: list[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]) if rows else [])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def _summary_rows(rows: Sequence[StageRow]) -> list[dict[str, Any]]:
    flat = []
    for row in rows:
        item: dict[str, Any] = {"novelty": row.novelty, "split": row.split,
                                "stages": row.stages, "tasks": row.tasks,
                                "episodes": row.episodes}
        for name in OUTCOMES:
            rate = row.outcomes[name]
            low, high = rate.interval
            item.update({name: rate.count, f"{name}_rate": round(rate.value, 6),
                         f"{name}_ci_low": round(low, 6), f"{name}_ci_high": round(high, 6)})
        if row.expert is not None:
            low, high = row.expert.interval
            item.update({"expert_success": row.expert.count,
                         "expert_success_rate": round(row.expert.value, 6),
                         "expert_ci_low": round(low, 6), "expert_ci_high": round(high, 6)})
        flat.append(item)
    return flat


def plot(rows: Sequence[StageRow], folder: Path) -> list[Path]:
    """Write the two PNG plots; returns their paths."""
    images = plot_images(rows, folder)
    atomic_write_files(images)
    return list(images)


def plot_images(rows: Sequence[StageRow], folder: Path) -> dict[Path, bytes]:
    """The two PNG plots' bytes, by the path they go to in ``folder``."""
    paths = [folder / "success_by_stages.png", folder / "outcomes_by_stages.png"]
    groups = list(dict.fromkeys((row.novelty, row.split) for row in rows))
    figure = Figure(figsize=(6, 4), dpi=100)  # no pyplot: the caller's backend is left alone
    axis = figure.subplots()
    for novelty, split in groups:
        mine = [row for row in rows if (row.novelty, row.split) == (novelty, split)]
        stages = [row.stages for row in mine]
        for label, rates, style in (("policy", [r.outcomes["success"] for r in mine], "-o"),
                                    ("expert", [r.expert for r in mine], "--s")):
            if any(rate is None for rate in rates):
                continue
            values = [100 * rate.value for rate in rates]
            errors = [[100 * (rate.value - rate.interval[0]) for rate in rates],
                      [100 * (rate.interval[1] - rate.value) for rate in rates]]
            axis.errorbar(stages, values, yerr=errors, fmt=style, capsize=3,
                          label=f"{label}, {novelty} {split} tasks")
    axis.set(xlabel="number of stages", ylabel="success % (95% CI)", ylim=(-2, 102))
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    images = {paths[0]: _png(figure)}

    figure = Figure(figsize=(max(6, 0.6 * len(rows) + 2), 4), dpi=100)
    axis = figure.subplots()
    labels = [f"{row.novelty}\n{row.split}\n{row.stages}" for row in rows]
    bottom = [0.0] * len(rows)
    for name in OUTCOMES:
        values = [100 * row.outcomes[name].value for row in rows]
        axis.bar(labels, values, bottom=bottom, label=OUTCOME_TITLES[name])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    axis.set(xlabel="seen or unseen / split / number of stages", ylabel="% of episodes",
             ylim=(0, 100))
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    images[paths[1]] = _png(figure)
    return images


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path)


def _png(figure: Any) -> bytes:
    """A figure (``matplotlib.figure.Figure``, outside pyplot) as PNG bytes."""
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def write_report(folder: Path, results: Sequence[EpisodeResult], *, config: dict[str, Any],
                 checkpoint: dict[str, Any], timing: dict[str, Any]) -> dict[str, Path]:
    """Write every report file into ``folder`` (atomically each); returns them by name."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rows = stage_rows(results)
    episodes = [asdict(result) for result in results]
    tasks = task_table(results, training_tasks(checkpoint.get("training", {})))
    report = {"config": config, "checkpoint": checkpoint, "timing": timing,
              "by_stages": [row.to_json() for row in rows], "tasks": tasks,
              "episodes": episodes}
    files = {"json": folder / "report.json", "episodes_csv": folder / "episodes.csv",
             "summary_csv": folder / "summary.csv", "markdown": folder / "report.md"}
    title = f"Evaluation of {checkpoint.get('path', 'a policy')}"
    text = markdown(rows, title, tasks)
    videos = [Path(r.video) for r in results if r.video]
    if videos:
        text += "\n## Videos\n\n" + "".join(f"- [{v.name}]({_relative(v, folder)})\n"
                                            for v in videos)
    images = plot_images(rows, folder)
    from imitate.html_report import report_html  # it builds on this module's tables

    page = report_html(folder, results, rows, tasks, [_relative(p, folder) for p in images],
                       config=config, checkpoint=checkpoint, timing=timing)
    files["html"] = folder / "report.html"
    # All or nothing: every file is written to a temporary first, so a full disk leaves the
    # earlier report whole.
    atomic_write_files({files["json"]: json.dumps(report, indent=1).encode(),
                        files["episodes_csv"]: _csv_bytes(episodes),
                        files["summary_csv"]: _csv_bytes(_summary_rows(rows)),
                        files["markdown"]: text.encode(), files["html"]: page.encode(),
                        **images})
    success_plot, outcome_plot = images
    files.update({"success_plot": success_plot, "outcome_plot": outcome_plot})
    return files
