"""The README's results from evaluation reports: success per stage count beside the paper's
Tables 3 and 4, the failure breakdown (the paper's Tables 7-11), the gap to the paper's DAgger
per stage count of the unseen tasks with our dominant failure class (and, from the episode log,
how many failures built no stage and how often an episode that built one succeeded), the
ensemble sweep (Table 5), and a figure of success against stages, ours against the paper's.

    python scripts/reference_tables.py --variant "DAgger, full=runs/ref2-full-dagger" \\
        --variant "DAgger, final state=runs/ref2-final-dagger" \\
        --markdown runs/ref2-logs/results.md --figure docs/reference-v2-success.png

Each variant's run folder holds the reports ``imitate eval`` wrote with its default output
folders: ``eval-test`` (every test task of the suite), ``eval-train`` (every training task) and,
for the sweep, ``eval-ensemble-E``. Rows are labelled by class, as the reports are: a test-split
row counts only tasks whose class the checkpoint never trained on (``unseen``). Intervals are
95% Wilson intervals; a report without a stage count leaves that cell empty.

An evaluation that is still running, or was stopped, has an episode log (``episodes.jsonl``)
and no report yet: its rows then count only the tasks whose episodes are all in the log, and
the output says which variants are partial. A cell whose episode count differs from its row's
(the first variant's) gives its own as ``(n = N)``.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections import Counter
from pathlib import Path

from matplotlib.figure import Figure

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from envs.predicates import FAILURE_CLASSES  # noqa: E402
from imitate.episode_log import read_header, read_log  # noqa: E402
from imitate.evaluation import LOG_NAME, EpisodeResult  # noqa: E402
from imitate.files import atomic_write_bytes  # noqa: E402
from imitate.report import OUTCOME_TITLES, OUTCOMES  # noqa: E402
from imitate.report import stage_rows as rows_of_results  # noqa: E402

#: Columns of the paper's Tables 3 and 4 (success %).
PAPER_COLUMNS = ("Demo", "DAgger", "BC", "Snapshot", "Final state")
DAGGER = PAPER_COLUMNS.index("DAgger")
#: Table 3: training tasks, by stage count.
PAPER_TRAIN = {1: (99.1, 99.1, 99.1, 97.2, 98.8), 2: (95.6, 94.3, 93.7, 92.6, 86.7),
               3: (88.5, 88.0, 86.9, 86.7, 84.8), 4: (78.6, 78.2, 76.7, 76.4, 71.9),
               5: (67.3, 65.9, 65.4, 62.5, 60.6), 6: (55.7, 51.5, 52.4, 47.0, 43.6),
               7: (42.8, 34.3, 37.5, 31.4, 31.5)}
#: Table 4: test (unseen) tasks, by stage count.
PAPER_TEST = {2: (95.8, 94.9, 95.9, 92.8, 94.1), 4: (77.6, 77.0, 74.8, 77.2, 75.8),
              5: (65.9, 65.9, 64.3, 61.1, 51.9), 6: (49.4, 50.6, 46.5, 42.6, 35.9),
              7: (46.5, 36.5, 38.5, 32.8, 32.0), 8: (29.0, 18.0, 24.0, 19.0, 20.0)}
#: Appendix B.4: DAgger at 8 stages (success, recoverable, manipulation, wrong move; %).
PAPER_FAILURES_8 = (21.2, 14.1, 62.4, 2.4)
#: Table 5: DAgger at 1 stage with 1 and with 10 demo copies (%).
PAPER_ENSEMBLE_1_STAGE = {1: 91.9, 10: 99.1}
SPLITS = {"test": ("unseen", "unseen: test tasks", PAPER_TEST),
          "train": ("seen", "seen: training tasks", PAPER_TRAIN)}


def read_report(folder: Path) -> dict | None:
    """The report ``imitate eval`` wrote into ``folder``; without one, the rows of its episode
    log (``partial_report``); None when the folder holds neither."""
    path = folder / "report.json"
    if path.is_file():
        return json.loads(path.read_text())
    log = folder / LOG_NAME
    return partial_report(log) if log.is_file() else None


def complete_episodes(log: Path) -> tuple[list[EpisodeResult], int]:
    """The episodes of the tasks whose episodes are all in the episode log ``log``, and how many
    tasks it has begun. ``ValueError`` (one line) when the file is not an episode log."""
    header = read_header(log)
    results = read_log(log, header, EpisodeResult)
    episodes = Counter(result.task for result in results)
    complete = {task for task, n in episodes.items() if n == header["episodes_per_task"]}
    return [result for result in results if result.task in complete], len(episodes)


def partial_report(log: Path) -> dict:
    """``by_stages`` rows of the tasks whose episodes are all in the episode log ``log``, and
    ``partial``: how many tasks that is, of how many begun. ``ValueError`` (one line) when the
    file is not an episode log."""
    results, begun = complete_episodes(log)
    rows = rows_of_results(results)
    complete = {result.task for result in results}
    return {"by_stages": [row.to_json() for row in rows],
            "partial": {"complete_tasks": len(complete), "begun_tasks": begun}}


def first_stage_cells(folder: Path, novelty: str) -> dict[int, tuple[str, str]]:
    """Per stage count, from the evaluation's episode log (empty without one, as in a shipped
    report): the share of failed episodes that completed no stage (the env's ``stage``, counted
    in build order), and the success rate of the episodes that completed at least one
    (successes count as such); ``count/total (%)`` each."""
    log = folder / LOG_NAME
    if not log.is_file():
        return {}
    results, _ = complete_episodes(log)
    cells = {}
    for stages in sorted({r.num_stages for r in results if r.novelty == novelty}):
        group = [r for r in results if r.novelty == novelty and r.num_stages == stages]
        failed = [r for r in group if not r.success]
        stalled = sum(r.stage == 0 for r in failed)
        started = [r for r in group if r.success or r.stage > 0]
        won = sum(r.success for r in started)
        cells[stages] = (count_share(stalled, len(failed)), count_share(won, len(started)))
    return cells


def count_share(count: int, total: int) -> str:
    """``count/total (percent%)``, or ``0/0`` with no percent."""
    return f"{count}/{total} ({100 * count / total:.0f}%)" if total else "0/0"


def stage_rows(report: dict | None, novelty: str) -> dict[int, dict]:
    """The report's ``by_stages`` rows of one novelty, by stage count."""
    if report is None:
        return {}
    return {row["stages"]: row for row in report["by_stages"] if row["novelty"] == novelty}


def cell(row: dict | None, outcome: str = "success", bold: bool = False) -> str:
    """``rate [low, high]`` in %, or empty."""
    if row is None:
        return ""
    result = row[outcome]
    rate = f"{100 * result['rate']:.1f}"
    low, high = (100 * bound for bound in result["ci95"])
    return f"{'**' + rate + '**' if bold else rate} [{low:.1f}, {high:.1f}]"


def expert_cell(rows: list[dict | None]) -> str:
    """Our expert's success % from the first report that ran it."""
    for row in rows:
        if row is not None and row.get("expert_success") is not None:
            return f"{100 * row['expert_success']['rate']:.1f}"
    return ""


def counted_cell(row: dict | None, episodes: int | str) -> str:
    """The success cell in bold, with its own episode count where it is not the row's."""
    text = cell(row, bold=True)
    if row is not None and row["episodes"] != episodes:
        text += f" (n = {row['episodes']})"
    return text


def partial_notes(variants: list[tuple[str, Path]]) -> list[str]:
    """One line per evaluation that has an episode log but no report yet."""
    notes = []
    for name, run in variants:
        for split in SPLITS:
            report = read_report(run / f"eval-{split}")
            if report is not None and "partial" in report:
                done, log = report["partial"], run / f"eval-{split}" / LOG_NAME
                notes.append(f"- ours: {name}, {split} tasks: partial (no report yet): the "
                             f"{done['complete_tasks']} tasks with all their episodes of the "
                             f"{done['begun_tasks']} begun in `{log}`.")
    return notes


def success_table(variants: list[tuple[str, Path]]) -> list[str]:
    names = [name for name, _ in variants]
    lines = ["| tasks | stages | tasks | episodes | " + " | ".join(f"ours: {n}" for n in names)
             + " | our expert | " + " | ".join(f"paper {c}" for c in PAPER_COLUMNS) + " |",
             "|---|---:|---:|---:|" + "---|" * len(names) + "---:|" + "---:|" * 5]
    for split, (novelty, label, paper) in SPLITS.items():
        tables = [stage_rows(read_report(run / f"eval-{split}"), novelty) for _, run in variants]
        for stages in sorted(set().union(*tables) | set(paper)):
            rows = [table.get(stages) for table in tables]
            first = next((row for row in rows if row is not None), None)
            counts = ("", "") if first is None else (first["tasks"], first["episodes"])
            paper_cells = ([f"{value:.1f}" for value in paper[stages]] if stages in paper
                           else [""] * len(PAPER_COLUMNS))
            lines.append(f"| {label} | {stages} | {counts[0]} | {counts[1]} | "
                         + " | ".join(counted_cell(row, counts[1]) for row in rows)
                         + f" | {expert_cell(rows)} | " + " | ".join(paper_cells) + " |")
    return lines


def failure_table(name: str, run: Path) -> list[str]:
    lines = [f"Outcomes of **{name}** (% of episodes, 95% intervals):", "",
             "| tasks | stages | episodes | success | recoverable | manipulation | wrong move |",
             "|---|---:|---:|---|---|---|---|"]
    for split, (novelty, label, _) in SPLITS.items():
        for stages, row in sorted(stage_rows(read_report(run / f"eval-{split}"),
                                             novelty).items()):
            lines.append(f"| {label} | {stages} | {row['episodes']} | "
                         + " | ".join(cell(row, outcome) for outcome in OUTCOMES) + " |")
    success, *failures = PAPER_FAILURES_8
    lines.append(f"| paper DAgger (B.4) | 8 | | {success} | " + " | ".join(map(str, failures))
                 + " |")
    return lines


def gap_table(name: str, run: Path) -> list[str]:
    """Per stage count of the unseen test tasks: ours, the paper's DAgger, the gap in
    percentage points and the failure class of most of our episodes."""
    rows = stage_rows(read_report(run / "eval-test"), "unseen")
    if not rows:
        return []
    first_stage = first_stage_cells(run / "eval-test", "unseen")
    lines = [f"Gap of **{name}** to the paper's DAgger on unseen test tasks (Table 4):", "",
             "| stages | episodes | ours | paper DAgger | gap (points) | dominant failure | "
             "failures with no stage built | success once a stage is built |",
             "|---:|---:|---:|---:|---:|---|---:|---:|"]
    for stages, row in sorted(rows.items()):
        ours = 100 * row["success"]["rate"]
        paper = PAPER_TEST[stages][DAGGER] if stages in PAPER_TEST else None
        gap = "" if paper is None else f"{ours - paper:+.1f}"
        failure = max(FAILURE_CLASSES, key=lambda outcome: row[outcome]["rate"])
        share = 100 * row[failure]["rate"]
        dominant = "none" if share == 0 else f"{OUTCOME_TITLES[failure]} ({share:.1f}%)"
        stalled, started = first_stage.get(stages, ("", ""))
        lines.append(f"| {stages} | {row['episodes']} | {ours:.1f} | "
                     f"{'' if paper is None else f'{paper:.1f}'} | {gap} | {dominant} | "
                     f"{stalled} | {started} |")
    return lines


def ensemble_table(run: Path) -> list[str]:
    reports = {copies: read_report(run / f"eval-ensemble-{copies}") for copies in (1, 2, 5, 10)}
    reports = {copies: report for copies, report in reports.items() if report is not None}
    if not reports:
        return []
    lines = ["| stages | episodes | " + " | ".join(f"E = {c}" for c in reports) + " | paper "
             "E = 1 | paper E = 10 |", "|---:|---:|" + "---|" * len(reports) + "---:|---:|"]
    tables = {copies: stage_rows(report, "seen") for copies, report in reports.items()}
    for stages in sorted(set().union(*tables.values())):
        rows = [table.get(stages) for table in tables.values()]
        episodes = next(row["episodes"] for row in rows if row is not None)
        paper = PAPER_ENSEMBLE_1_STAGE if stages == 1 else {}
        lines.append(f"| {stages} | {episodes} | " + " | ".join(cell(row) for row in rows)
                     + f" | {paper.get(1, '')} | {paper.get(10, '')} |")
    return lines


def figure(variants: list[tuple[str, Path]]) -> Figure:
    """Success against stages: ours per variant (test tasks unseen, training tasks seen) and
    the paper's DAgger and Demo columns."""
    plot = Figure(figsize=(10, 4.5))
    axes = plot.subplots(1, 2, sharey=True)
    for axis, (split, (novelty, label, paper)) in zip(axes, SPLITS.items(), strict=True):
        stages = sorted(paper)
        axis.plot(stages, [paper[s][1] for s in stages], "k--", label="paper DAgger")
        axis.plot(stages, [paper[s][0] for s in stages], ":", color="0.5", label="paper Demo")
        for name, run in variants:
            report = read_report(run / f"eval-{split}")
            rows = stage_rows(report, novelty)
            xs = sorted(rows)
            if not xs:
                continue
            rates = [100 * rows[s]["success"]["rate"] for s in xs]
            low = [100 * rows[s]["success"]["ci95"][0] for s in xs]
            high = [100 * rows[s]["success"]["ci95"][1] for s in xs]
            legend = f"ours: {name}"
            if "partial" in report:  # an evaluation still running: say how far it got
                legend += f" (partial: {report['partial']['complete_tasks']} tasks)"
            line = axis.plot(xs, rates, "o-", label=legend)[0]
            axis.fill_between(xs, low, high, color=line.get_color(), alpha=0.15)
        axis.set_title(label)
        axis.set_xlabel("stages")
        axis.set_ylim(0, 100)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("success %")
    for axis in axes:
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    plot.tight_layout()
    return plot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", required=True, metavar="NAME=RUN",
                        help="a column: its name and its run folder (repeatable)")
    parser.add_argument("--markdown", type=Path, required=True)
    parser.add_argument("--figure", type=Path, default=None)
    args = parser.parse_args()
    variants = []
    for text in args.variant:
        name, separator, run = text.rpartition("=")
        if not separator or not name:
            parser.error(f"--variant must be NAME=RUN, got {text!r}")
        if not Path(run).is_dir():
            parser.error(f"--variant {text!r}: {run} is not a folder")
        variants.append((name, Path(run)))
    try:
        lines = ["## Success by stage count", "", *success_table(variants), ""]
        notes = partial_notes(variants)
    except ValueError as error:  # an episode log that is not one
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if notes:
        lines += [*notes, ""]
    for name, run in variants:
        lines += [*failure_table(name, run), ""]
        gaps = gap_table(name, run)
        if gaps:
            lines += [*gaps, ""]
        sweep = ensemble_table(run)
        if sweep:
            lines += [f"Ensemble sweep of **{name}** (training tasks):", "", *sweep, ""]
    atomic_write_bytes(args.markdown, "\n".join(lines).encode())
    print(f"{args.markdown}: {len(lines)} lines")
    if args.figure is not None:
        buffer = io.BytesIO()
        figure(variants).savefig(buffer, format="png", dpi=100)
        atomic_write_bytes(args.figure, buffer.getvalue())
        print(f"{args.figure}")


if __name__ == "__main__":
    main()
