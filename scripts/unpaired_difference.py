"""Two success rates per stage count, from different episodes, compared: B's rate minus A's with
Newcombe's 95% hybrid score interval, for evaluations that cannot be paired episode by episode.

    python scripts/unpaired_difference.py --split test \\
        "DAgger, full=2:127/140 4:69/140 5:62/140 6:44/140 7:18/140 8:12/160" \\
        "BC, full=runs/ref2-full-bc"

Each side is NAME=SOURCE. SOURCE is a run folder (its ``eval-SPLIT/report.json`` is read), an
``imitate eval`` folder or its ``report.json``, or counts written out as
``STAGES:SUCCESSES/EPISODES`` items (space- or comma-separated): the way to compare against an
evaluation whose report survives only as a table. From a report the rows of ``--split`` are
read, each labelled by class as the report labels it (``unseen`` for test tasks, ``seen`` for
training tasks). Only stage counts both sides have are compared. An ``all`` row pools the stage
counts when both sides ran the same number of episodes at each (the same design); otherwise
pooling would weigh the stage counts differently on each side and the row is left out.

When episodes were run on both sides (same checkpoint seeds, tasks and episode indices),
``scripts/paired_episodes.py`` is the sharper comparison. A bad side, a missing report or no
stage count in common: one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from imitate.report import Rate, difference_interval  # noqa: E402

#: Class label of each split's rows in a report.
NOVELTY_OF_SPLIT = {"test": "unseen", "train": "seen"}
COUNT_ITEM = re.compile(r"(\d+):(\d+)/(\d+)")
COUNTS_START = re.compile(r"\s*\d+:")  # a SOURCE that is counts, not a path

Counts = dict[int, tuple[int, int]]  # stage count -> (successes, episodes)


@dataclass(frozen=True)
class Side:
    """One column: its name and its success counts by stage count."""

    name: str
    counts: Counts


def parse_counts(text: str) -> Counts:
    """``"2:127/140 4:69/140"`` as ``{2: (127, 140), 4: (69, 140)}``; ``ValueError`` (one
    line) on a malformed item, a repeated stage count or more successes than episodes."""
    counts: Counts = {}
    for item in text.replace(",", " ").split():
        match = COUNT_ITEM.fullmatch(item)
        if match is None:
            raise ValueError(f"{item!r} is not STAGES:SUCCESSES/EPISODES (e.g. 4:69/140)")
        stages, successes, episodes = map(int, match.groups())
        if episodes == 0 or successes > episodes:
            raise ValueError(f"{item!r}: successes must be at most the episodes, episodes > 0")
        if stages in counts:
            raise ValueError(f"stage count {stages} is given twice")
        counts[stages] = (successes, episodes)
    if not counts:
        raise ValueError("no counts given")
    return counts


def report_path(source: Path, split: str) -> Path:
    """The report of ``split`` that ``source`` names: itself, ``report.json`` in it, or
    ``eval-SPLIT/report.json`` in a run folder; ``ValueError`` when none exists."""
    for candidate in (source, source / "report.json", source / f"eval-{split}" / "report.json"):
        if candidate.is_file():
            return candidate
    raise ValueError(f"{source}: no report.json (an imitate eval folder, its report.json or a "
                     f"run folder with eval-{split}/; an evaluation still running has no report)")


def report_counts(report: Path, split: str) -> Counts:
    """Success counts by stage count of ``split``'s rows of an ``imitate eval`` report."""
    try:
        rows = json.loads(report.read_text())["by_stages"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{report} is not an imitate eval report ({error})") from None
    counts = {row["stages"]: (row["success"]["count"], row["success"]["total"])
              for row in rows
              if row["split"] == split and row["novelty"] == NOVELTY_OF_SPLIT[split]}
    if not counts:
        raise ValueError(f"{report} has no {NOVELTY_OF_SPLIT[split]} {split}-split rows")
    return counts


def parse_side(spec: str, split: str) -> Side:
    """``NAME=SOURCE`` as a side (see the module docstring)."""
    name, equals, source = spec.partition("=")
    if not equals or not name.strip() or not source.strip():
        raise ValueError(f"{spec!r} is not NAME=SOURCE")
    if COUNTS_START.match(source) and not Path(source).exists():
        return Side(name.strip(), parse_counts(source))
    return Side(name.strip(), report_counts(report_path(Path(source), split), split))


def table_row(label: str, a: tuple[int, int], b: tuple[int, int]) -> str:
    """One Markdown row: both rates and B minus A in points with its interval."""
    low, high = difference_interval(*a, *b)
    difference = 100 * (b[0] / b[1] - a[0] / a[1])
    verdict = "yes" if low > 0 or high < 0 else "no"
    return (f"| {label} | {Rate(*a).cell()} | {Rate(*b).cell()} | {difference:+.1f} | "
            f"[{100 * low:+.1f}, {100 * high:+.1f}] | {verdict} |")


def comparison_table(a: Side, b: Side) -> str:
    """Per shared stage count (and pooled, when the designs match), A and B and B minus A;
    ``ValueError`` when they share no stage count."""
    shared = sorted(set(a.counts) & set(b.counts))
    if not shared:
        raise ValueError(f"{a.name!r} and {b.name!r} have no stage count in common")
    lines = [f"| stages | A: {a.name} | B: {b.name} | B - A (points) | 95% interval | "
             "interval excludes 0 |", "|---:|---|---|---:|---|---|"]
    lines += [table_row(str(stages), a.counts[stages], b.counts[stages]) for stages in shared]
    if len(shared) > 1 and all(a.counts[s][1] == b.counts[s][1] for s in shared):
        pooled_a = tuple(sum(a.counts[s][i] for s in shared) for i in (0, 1))
        pooled_b = tuple(sum(b.counts[s][i] for s in shared) for i in (0, 1))
        lines.append(table_row("all", pooled_a, pooled_b))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="NAME=SOURCE of side A")
    parser.add_argument("b", help="NAME=SOURCE of side B (the table gives B minus A)")
    parser.add_argument("--split", choices=sorted(NOVELTY_OF_SPLIT), default="test",
                        help="which rows of a report to read (default: test)")
    args = parser.parse_args()
    try:
        a, b = parse_side(args.a, args.split), parse_side(args.b, args.split)
        table = comparison_table(a, b)
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(f"{args.split} split, {NOVELTY_OF_SPLIT[args.split]} rows; percent [95% Wilson] "
          "(successes/episodes); B - A with Newcombe's 95% hybrid score interval\n")
    print(table)


if __name__ == "__main__":
    main()
