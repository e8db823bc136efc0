"""Two evaluations of the same episodes, compared episode by episode: per stage count, how many
episodes each one won that the other lost, with an exact two-sided McNemar p-value.

    python scripts/paired_episodes.py runs/ref2-final-dagger-step30000/eval-test \\
        runs/ref2-final-dagger/eval-test

A and B are ``imitate eval`` output folders (or their ``episodes.jsonl``). Two evaluations run
the same episode when they share its task and episode index and the log recorded the same start
(``env_seed``) and conditioning demo (``demo_env_seed``) for it: the case of two checkpoints
evaluated with the same ``--seed``, ensemble and tasks. Only the episodes in both logs are
compared, so a log still being written can be read. Differing seeds of a shared episode mean
the logs did not run the same episodes: the script then refuses (one line, exit 2), as it does a
file that is not an episode log or two logs with no episode in common.

Columns: ``paired`` episodes; successes of A and of B; ``B only``: episodes B won and A lost
(B's gains); ``A only``: the converse; ``p``: the chance of a split of the discordant episodes
at least this uneven if A and B were equally good (exact binomial, two-sided).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from imitate.episode_log import read_header, read_log  # noqa: E402
from imitate.evaluation import LOG_NAME, EpisodeResult  # noqa: E402

EpisodeKey = tuple[str, int]  # (layout, episode index)


@dataclass(frozen=True)
class PairedCounts:
    """Outcomes of the episodes both evaluations ran (one stage count, one task or all)."""

    paired: int
    a_successes: int
    b_successes: int
    b_only: int  # B succeeded, A failed
    a_only: int  # A succeeded, B failed

    @property
    def mcnemar_p(self) -> float:
        """Exact two-sided McNemar p-value: twice the binomial(n, 1/2) tail of the smaller
        discordant count, capped at 1 (1 when no episode is discordant)."""
        discordant = self.a_only + self.b_only
        smaller = min(self.a_only, self.b_only)
        tail = sum(math.comb(discordant, k) for k in range(smaller + 1)) / 2 ** discordant
        return min(1.0, 2 * tail)


def log_path(folder_or_log: Path) -> Path:
    """The episode log: the path itself, or ``episodes.jsonl`` in it when it is a folder."""
    return folder_or_log / LOG_NAME if folder_or_log.is_dir() else folder_or_log


def episodes_of(log: Path) -> dict[EpisodeKey, EpisodeResult]:
    """The results of the episode log ``log`` by (layout, episode index). ``ValueError`` (one
    line) when it is missing or not an episode log."""
    if not log.is_file():
        raise ValueError(f"{log} is missing (is it an imitate eval folder or episode log?)")
    return {(result.task, result.episode): result
            for result in read_log(log, read_header(log), EpisodeResult)}


def shared_keys(a: dict[EpisodeKey, EpisodeResult], b: dict[EpisodeKey, EpisodeResult]
                ) -> list[EpisodeKey]:
    """The episodes both logs hold, sorted; ``ValueError`` when there are none or when a
    shared one had another start or conditioning demo in B (not the same episode)."""
    keys = sorted(set(a) & set(b))
    if not keys:
        raise ValueError("the two logs have no episode in common (same tasks and episode "
                         "indices are needed)")
    differing = [key for key in keys
                 if (a[key].env_seed, a[key].demo_env_seed) != (b[key].env_seed,
                                                                b[key].demo_env_seed)]
    if differing:
        task, episode = differing[0]
        raise ValueError(f"{len(differing)} of the {len(keys)} shared episodes had another "
                         f"start or conditioning demo in B (first: {task!r} episode {episode}): "
                         "not the same episodes; evaluate both with the same --seed")
    return keys


def count(a: dict[EpisodeKey, EpisodeResult], b: dict[EpisodeKey, EpisodeResult],
          keys: Iterable[EpisodeKey]) -> PairedCounts:
    """The paired outcomes of ``keys`` (episodes of both logs)."""
    pairs = [(a[key].success, b[key].success) for key in keys]
    return PairedCounts(paired=len(pairs), a_successes=sum(x for x, _ in pairs),
                        b_successes=sum(y for _, y in pairs),
                        b_only=sum(y and not x for x, y in pairs),
                        a_only=sum(x and not y for x, y in pairs))


def grouped(a: dict[EpisodeKey, EpisodeResult], b: dict[EpisodeKey, EpisodeResult],
            keys: list[EpisodeKey], by_task: bool) -> list[tuple[str, str, PairedCounts]]:
    """(stage count, task or "all", counts) per stage count, or per task when ``by_task``."""
    groups: dict[tuple[int, str], list[EpisodeKey]] = defaultdict(list)
    for key in keys:
        groups[(a[key].num_stages, key[0] if by_task else "all")].append(key)
    return [(str(stages), task, count(a, b, members))
            for (stages, task), members in sorted(groups.items())]


def table(rows: list[tuple[str, str, PairedCounts]]) -> str:
    """A Markdown table of the rows."""
    lines = ["| stages | task | paired | A | B | B only | A only | p |",
             "|---|---|---|---|---|---|---|---|"]
    for stages, task, counts in rows:
        lines.append(f"| {stages} | {task} | {counts.paired} | {counts.a_successes} | "
                     f"{counts.b_successes} | {counts.b_only} | {counts.a_only} | "
                     f"{counts.mcnemar_p:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="an 'imitate eval' folder or episode log")
    parser.add_argument("b", type=Path, help="another, of the same episodes")
    parser.add_argument("--by-task", action="store_true",
                        help="one row per task instead of per stage count")
    args = parser.parse_args()
    try:
        a, b = episodes_of(log_path(args.a)), episodes_of(log_path(args.b))
        keys = shared_keys(a, b)
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    rows = grouped(a, b, keys, args.by_task)
    rows.append(("all", "all", count(a, b, keys)))
    print(f"A: {args.a}\nB: {args.b}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
