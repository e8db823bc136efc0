"""Where the policy's fixed queries look, over many episodes of one task: which block they start
on and how their weight spreads over the blocks, grouped by how each episode ended.

    for e in $(seq 0 19); do
        imitate attention --checkpoint pretrained --task "efcab d" --episode $e \\
            --out runs/attention-efcabd/$e --quiet
    done
    python scripts/attention_summary.py runs/attention-efcabd/*

Each folder is one ``imitate attention`` output (``summary.json`` and ``attention.npz``), all of
one task. A row per episode gives its outcome, the block that held most of the fixed queries'
weight over the first ``--first-steps`` control steps (the block the policy set out for), and
the mean weight on each block over the whole episode; weights are averaged over the two fixed
queries and their heads, so a row sums to 1. Episodes are then grouped into successes, failures
that built no stage (the env's ``stage``, counted in build order) and other failures, with how
many started on each block and their mean weights. The task's first stage ("A on B") is printed
so that a start on its source block can be told from a start elsewhere.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from envs.tasks import BLOCK_LETTERS, parse_task  # noqa: E402

GROUPS = ("success", "no stage built", "other failure")


class SummaryError(ValueError):
    """An input that is not a set of attention folders of one task (one-line message)."""


def read_episode(folder: Path) -> tuple[dict, np.ndarray]:
    """The folder's ``summary.json`` and its fixed queries' weights averaged over queries and
    heads, ``(steps, blocks)``."""
    for name in ("summary.json", "attention.npz"):
        if not (folder / name).is_file():
            raise SummaryError(f"{folder / name} is missing (is {folder} an imitate attention "
                               "folder?)")
    summary = json.loads((folder / "summary.json").read_text())
    with np.load(folder / "attention.npz") as arrays:
        fixed = arrays["fixed"]  # (steps, queries, heads, blocks)
    return summary, fixed.mean(axis=(1, 2))  # (steps, blocks)


def group_of(summary: dict) -> str:
    """``success``, ``no stage built`` or ``other failure``."""
    if summary["outcome"] == "success":
        return "success"
    return "no stage built" if summary["stage"] == 0 else "other failure"


def weights_text(weights: np.ndarray) -> str:
    """``A 0.12  B 0.30 ...`` for a ``(blocks,)`` row."""
    return "  ".join(f"{BLOCK_LETTERS[i].upper()} {w:.2f}" for i, w in enumerate(weights))


def summarise(folders: list[Path], first_steps: int) -> list[str]:
    """The printed lines: a row per episode, then a row per outcome group."""
    episodes = sorted((read_episode(folder) for folder in folders),
                      key=lambda pair: pair[0]["episode"])
    tasks = {summary["task"] for summary, _ in episodes}
    if len(tasks) != 1:
        raise SummaryError(f"the folders hold episodes of {len(tasks)} tasks "
                           f"({', '.join(sorted(tasks))}); give the folders of one task")
    task = parse_task(tasks.pop())
    lines = [f"{task.layout!r}: {len(episodes)} episodes; its first stage is "
             f"{str(task.stages[0]).upper()}",
             f"episode  outcome              stage  steps  start  mean weight per block "
             f"(first {first_steps} steps decide the start)"]
    starts, means, groups = [], [], []
    for summary, weights in episodes:
        start = BLOCK_LETTERS[int(weights[:first_steps].mean(axis=0).argmax())].upper()
        mean = weights.mean(axis=0)
        starts.append(start)
        means.append(mean)
        groups.append(group_of(summary))
        lines.append(f"{summary['episode']:7d}  {summary['outcome']:<19}  "
                     f"{summary['stage']}/{summary['num_stages']:<3}  {summary['steps']:5d}  "
                     f"{start:>5}  {weights_text(mean)}")
    for group in GROUPS:
        members = [i for i, name in enumerate(groups) if name == group]
        if not members:
            continue
        started = Counter(starts[i] for i in members).most_common()
        lines.append(f"{group} ({len(members)}): started on "
                     + ", ".join(f"{block} {n}" for block, n in started)
                     + f"; mean weight {weights_text(np.mean([means[i] for i in members], 0))}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="imitate attention outputs")
    parser.add_argument("--first-steps", type=int, default=30, metavar="N",
                        help="control steps that decide which block an episode started on "
                             "(default: 30)")
    args = parser.parse_args()
    if args.first_steps < 1:
        parser.exit(2, f"{parser.prog}: error: --first-steps must be at least 1, got "
                       f"{args.first_steps}\n")
    try:
        lines = summarise(args.folders, args.first_steps)
    except SummaryError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
