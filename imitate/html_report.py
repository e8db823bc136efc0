"""``report.html``: one self-contained page per evaluation, written by ``imitate.report``.

The page holds what the other report files hold, for a browser: the checkpoint and its training,
the evaluation config, the tables of ``report.md`` (seen and unseen tasks apart, 95% Wilson
intervals, the expert column), the per-task table, the two plots, the episode videos grouped by
outcome (successes, then one section per failure class), the attention figures an
``imitate attention --out REPORT/attention/...`` left in the folder, and the timing.

Self-contained: inline CSS, no script, no external URL; every ``src`` is a path relative to the
report folder (percent-encoded), so the folder can be zipped, moved or served as it is. A video
outside the folder, or missing, is named in the text instead of embedded. Every text goes through
``html.escape``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from envs.predicates import FAILURE_CLASSES
from imitate.evaluation import EpisodeResult
from imitate.novelty import NOVELTIES, SEEN, UNKNOWN, UNSEEN, trained_classes, training_tasks
from imitate.report import OUTCOME_TITLES, OUTCOMES, Rate, StageRow, outcome_of

#: Folder of a report that ``attention_figures`` searches for PNG files.
ATTENTION_FOLDER = "attention"
UNSEEN_MEANING = ("A task is <em>unseen</em> when its class (the task up to relabelling of its "
                  "blocks) is not among the classes of the policy's training tasks, "
                  "<em>seen</em> when it is, whatever its suite split.")
NOVELTY_TITLES = {SEEN: "Seen tasks", UNSEEN: "Unseen tasks",
                  UNKNOWN: "Tasks of unknown novelty (the checkpoint does not record its "
                           "training tasks)"}
STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 1em auto; padding: 0 1em;
       color: #222; background: #fff; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; }
th { background: #eee; }
td.n { text-align: right; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figcaption { font-size: 0.85em; color: #444; }
video { width: 512px; max-width: 100%; }
img { max-width: 100%; }
code { background: #f4f4f4; }
"""


def esc(value: Any) -> str:
    """``value`` as text, escaped for HTML text and quoted attributes."""
    return html.escape(str(value), quote=True)


def relative_src(path: str | Path, folder: Path) -> str | None:
    """``path`` as a percent-encoded URL relative to ``folder`` (``/``-separated), or None when
    it is not an existing file inside ``folder``."""
    try:
        relative = Path(path).resolve().relative_to(Path(folder).resolve())
    except ValueError:
        return None
    return quote(relative.as_posix()) if (Path(folder) / relative).is_file() else None


def attention_figures(folder: Path) -> list[str]:
    """Relative srcs of the PNG files under ``folder/attention`` (any depth), sorted."""
    root = Path(folder) / ATTENTION_FOLDER
    if not root.is_dir():
        return []
    found = (relative_src(path, folder) for path in sorted(root.rglob("*.png")))
    return [src for src in found if src is not None]


def table(header: Sequence[str], rows: Iterable[Sequence[Any]],
          numeric: Sequence[int] = ()) -> str:
    """An HTML table of escaped cells (no header row when ``header`` is empty); columns
    ``numeric`` (indices) are right-aligned."""
    names = "".join(f"<th>{esc(name)}</th>" for name in header)
    head = f"<tr>{names}</tr>\n" if header else ""
    body = "".join(
        "<tr>" + "".join(f"<td class=\"n\">{esc(cell)}</td>" if i in numeric
                         else f"<td>{esc(cell)}</td>" for i, cell in enumerate(row)) + "</tr>\n"
        for row in rows)
    return f"<table>\n{head}{body}</table>\n"


def checkpoint_section(checkpoint: Mapping[str, Any]) -> str:
    """Path, step and what the checkpoint trained on (tasks, classes, algorithm, conditioning,
    steps), from its ``training`` record when it has one."""
    training = checkpoint.get("training") or {}
    config = training.get("config") or {}
    rows = [("path", checkpoint.get("path", "-")), ("step", checkpoint.get("step", "-"))]
    for key in ("algo", "conditioning", "steps"):
        if key in config:
            rows.append((f"training {key}", config[key]))
    if "dagger_rounds" in training:
        rows.append(("DAgger rounds", training["dagger_rounds"]))
    if "dataset" in training:
        rows.append(("training dataset", training["dataset"]))
    tasks, classes = training_tasks(training), trained_classes(training)
    if tasks is None or classes is None:
        rows.append(("trained on", "not recorded (no task is called unseen)"))
        return "<h2>Checkpoint</h2>\n" + table((), rows)
    names = ", ".join(sorted(str(task_class) for task_class in classes))
    plural = "class" if len(classes) == 1 else "classes"
    rows.append(("trained on", f"{len(tasks)} tasks in {len(classes)} {plural}: {names}"))
    listing = ", ".join(tasks)
    return ("<h2>Checkpoint</h2>\n" + table((), rows)
            + f"<details><summary>training tasks ({len(tasks)})</summary>"
            f"<p><code>{esc(listing)}</code></p></details>\n")


def config_section(config: Mapping[str, Any]) -> str:
    """The evaluation config, one row per key (lists and numbers as JSON)."""
    rows = [(key, value if isinstance(value, str) else json.dumps(value))
            for key, value in config.items()]
    return "<h2>Evaluation config</h2>\n" + (table(("key", "value"), rows) if rows
                                            else "<p>none recorded</p>\n")


def stage_tables(rows: Sequence[StageRow]) -> str:
    """Success by number of stages (with the expert) and the outcome breakdown of ``rows``."""
    success = table(("split", "stages", "tasks", "episodes", "policy success",
                     "expert (Demo) success"),
                    [(row.split, row.stages, row.tasks, row.episodes,
                      row.outcomes["success"].cell(), row.expert.cell() if row.expert else "-")
                     for row in rows], numeric=(1, 2, 3))
    outcomes = table(("split", "stages", *(OUTCOME_TITLES[o] for o in OUTCOMES)),
                     [(row.split, row.stages, *(row.outcomes[o].cell() for o in OUTCOMES))
                      for row in rows], numeric=(1,))
    return ("<h4>Success by number of stages (cf. paper Tables 3 and 4)</h4>\n" + success
            + "<h4>Outcomes by number of stages (cf. paper Tables 7-11)</h4>\n" + outcomes)


def summary_section(rows: Sequence[StageRow]) -> str:
    """One subsection per seen/unseen label present, in ``NOVELTIES`` order."""
    parts = ["<h2>Summary</h2>\n",
             "<p>Cells: % [95% Wilson interval] (count/episodes).</p>\n",
             f"<p>{UNSEEN_MEANING}</p>\n"]
    for label in (*NOVELTIES, *sorted({r.novelty for r in rows} - set(NOVELTIES))):
        mine = [row for row in rows if row.novelty == label]
        if mine:
            title = NOVELTY_TITLES.get(label, f"Tasks labelled {label}")
            parts.append(f"<h3 id=\"{esc(label)}\">{esc(title)}</h3>\n" + stage_tables(mine))
    return "".join(parts)


def tasks_section(tasks: Sequence[Mapping[str, Any]]) -> str:
    """One row per task of ``imitate.report.task_table``, success with its interval."""
    rows = [(entry["task"], entry["split"], entry["stages"], entry["class"], entry["novelty"],
             ", ".join(entry["seen_as"]) or "-",
             Rate(entry["successes"], entry["episodes"]).cell()) for entry in tasks]
    return "<h2>Tasks</h2>\n" + table(("task", "split", "stages", "class", "seen/unseen",
                                       "same class in training", "success"), rows,
                                      numeric=(2,))


def figures_section(title: str, srcs: Sequence[str]) -> str:
    """``srcs`` (relative) as captioned images; empty when there are none."""
    if not srcs:
        return ""
    figures = "".join(f"<figure><img src=\"{esc(src)}\" alt=\"{esc(src)}\">"
                      f"<figcaption>{esc(src)}</figcaption></figure>\n" for src in srcs)
    return f"<h2>{esc(title)}</h2>\n{figures}"


def video_caption(result: EpisodeResult) -> str:
    """Task, seen/unseen, episode and stage reached of one episode."""
    return (f"task '{result.task}' ({result.novelty}, {result.split}), episode "
            f"{result.episode}, stage {result.stage}/{result.num_stages} reached")


def video_figure(result: EpisodeResult, folder: Path) -> str:
    """An embedded player for the episode's video, or a line naming it when it cannot be
    embedded (outside the report folder, or missing)."""
    caption = esc(video_caption(result))
    src = relative_src(str(result.video), folder)
    if src is None:
        return f"<p>{caption}: video not in the report folder ({esc(result.video)})</p>\n"
    return (f"<figure><video controls muted loop preload=\"metadata\" src=\"{esc(src)}\">"
            f"</video><figcaption>{caption}</figcaption></figure>\n")


def videos_section(results: Sequence[EpisodeResult], folder: Path) -> str:
    """Videos grouped by outcome: successes, then each failure class in ``FAILURE_CLASSES``
    order (groups without a video are left out; the whole section when no episode has one)."""
    with_video = [result for result in results if result.video]
    if not with_video:
        return ""
    parts = ["<h2>Videos</h2>\n<p>Conditioning demo (left) and policy rollout (right).</p>\n"]
    for outcome in ("success", *FAILURE_CLASSES):
        group = [result for result in with_video if outcome_of(result) == outcome]
        if group:
            title = "successes" if outcome == "success" else OUTCOME_TITLES[outcome]
            parts.append(f"<h3 id=\"videos-{esc(outcome)}\">{esc(title)} ({len(group)})</h3>\n"
                         + "".join(video_figure(result, folder) for result in group))
    return "".join(parts)


def timing_section(timing: Mapping[str, Any], results: Sequence[EpisodeResult]) -> str:
    """Throughput (episodes/s), wall seconds, workers and where the episode time went."""
    if not timing:
        seconds = sum(r.policy_seconds + r.env_seconds + r.demo_seconds + r.expert_seconds
                      for r in results)
        return ("<h2>Timing</h2>\n<p>Wall time not recorded; episode time summed over "
                f"episodes: {esc(f'{seconds:.1f}')} s for {len(results)} episodes.</p>\n")
    rows = [(key, f"{value:.3f}" if isinstance(value, float) else value)
            for key, value in timing.items()]
    rate = float(timing.get("episodes_per_s", 0.0))
    ran = int(timing.get("episodes_run", len(results)))  # a resumed evaluation ran only some
    resumed = (f"; {len(results) - ran} more came from the episode log of an earlier run"
               if ran < len(results) else "")
    return (f"<h2>Timing</h2>\n<p>{esc(f'{rate:.2f}')} episodes/s ({ran} episodes run"
            f"{esc(resumed)}). <code>seconds</code> is this run's wall time; the policy, env, "
            "demo and expert seconds and shares are summed over workers and every episode.</p>\n"
            + table(("measure", "value"), rows, numeric=(1,)))


def report_html(folder: Path, results: Sequence[EpisodeResult], rows: Sequence[StageRow],
                tasks: Sequence[Mapping[str, Any]], plots: Sequence[str], *,
                config: Mapping[str, Any], checkpoint: Mapping[str, Any],
                timing: Mapping[str, Any]) -> str:
    """The page (UTF-8 text) for the report in ``folder``: ``plots`` are the plots' srcs
    relative to it; videos and ``attention/`` figures are looked up in it."""
    title = f"Evaluation of {checkpoint.get('path', 'a policy')}"
    body = (f"<h1>{esc(title)}</h1>\n" + checkpoint_section(checkpoint)
            + config_section(config) + summary_section(rows) + figures_section("Plots", plots)
            + tasks_section(tasks) + videos_section(results, folder)
            + figures_section("Attention", attention_figures(folder))
            + timing_section(timing, results))
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{esc(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            f"{body}</body>\n</html>\n")
