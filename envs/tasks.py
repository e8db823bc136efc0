"""Block-stacking tasks: layout strings, their towers and their stages (paper section 5.1).

Conventions (reference/paper.md, "Tasks"):

- Blocks are the letters ``a`` to ``j``. A block's *index* is its position in the alphabet
  (``a`` is 0); it is also the block's slot in observations and in the simulator.
- A task with ``n`` blocks uses exactly the first ``n`` letters, ``2 <= n <= 10``.
- A *layout* lists towers separated by whitespace, each tower written top to bottom:
  ``"ab cde"`` means a on b, and c on d on e. The bottom block of a tower rests on the table.
- A *stage* is one stacking operation, "put ``source`` on ``target``". Towers are built in the
  order written, each from the bottom up, so ``"ab cde"`` has the stages (a on b), (d on e),
  (c on d). There are ``blocks - towers`` stages; a layout must have at least one.
- Two layouts that differ only in the order of their towers reach the same final arrangement;
  ``Task.canonical`` (towers sorted) identifies that equivalence class.

``parse_task`` turns user text into a validated ``Task``; constructing ``Task`` directly validates
too, but expects the normalised form (lowercase towers).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple, NoReturn

BLOCK_LETTERS = "abcdefghij"
MIN_BLOCKS = 2
MAX_BLOCKS = 10
#: ``Task.target_support`` value of a block whose target is the table.
TABLE = -1

_EXAMPLE = "expected towers of letters a-j separated by spaces, e.g. 'ab cde'"


class Stage(NamedTuple):
    """One stacking operation: put block ``source`` on block ``target`` (block indices, a = 0)."""

    source: int
    target: int

    def __str__(self) -> str:
        return f"{BLOCK_LETTERS[self.source]} on {BLOCK_LETTERS[self.target]}"


@dataclass(frozen=True)
class Task:
    """A stacking task: its towers, each written top to bottom (``("ab", "cde")`` for "ab cde").

    Equality and hashing follow the written towers, so ``"ab cd"`` and ``"cd ab"`` are different
    tasks (their stages come in a different order) with the same ``canonical`` form.
    """

    towers: tuple[str, ...]

    def __post_init__(self) -> None:
        towers = tuple(self.towers)
        object.__setattr__(self, "towers", towers)
        _check_towers(towers, " ".join(towers))

    def __str__(self) -> str:
        return self.layout

    @cached_property
    def layout(self) -> str:
        """The layout string: towers joined by single spaces, e.g. ``"ab cde"``."""
        return " ".join(self.towers)

    @cached_property
    def num_blocks(self) -> int:
        return sum(len(tower) for tower in self.towers)

    @cached_property
    def num_towers(self) -> int:
        return len(self.towers)

    @cached_property
    def blocks(self) -> str:
        """The task's blocks in index order: the first ``num_blocks`` letters."""
        return BLOCK_LETTERS[: self.num_blocks]

    @cached_property
    def stages(self) -> tuple[Stage, ...]:
        """The stacking operations in build order: towers as written, each bottom-up."""
        return tuple(
            Stage(_index(tower[i]), _index(tower[i + 1]))
            for tower in self.towers
            for i in reversed(range(len(tower) - 1))
        )

    @cached_property
    def num_stages(self) -> int:
        """Number of stacking operations: ``num_blocks - num_towers``."""
        return self.num_blocks - self.num_towers

    @cached_property
    def target_support(self) -> tuple[int, ...]:
        """Per block index, the index of the block it must rest on, or ``TABLE`` (-1)."""
        support = [TABLE] * self.num_blocks
        for stage in self.stages:
            support[stage.source] = stage.target
        return tuple(support)

    @cached_property
    def canonical(self) -> str:
        """The layout with its towers sorted: equal for tasks that differ only in tower order."""
        return " ".join(sorted(self.towers))


def parse_task(text: str | Task) -> Task:
    """Parse a layout such as ``"ab cde"`` (case-insensitive, any whitespace between towers).

    A ``Task`` is returned unchanged. Raises ``ValueError`` naming the problem and quoting the
    input for: an empty string, more than 10 blocks, a character other than a-j and whitespace,
    a repeated block, fewer than 2 blocks, blocks that are not the first n letters, and a layout
    with no stage (every tower a single block).
    """
    if isinstance(text, Task):
        return text
    if not isinstance(text, str):
        raise TypeError(f"task must be a layout string or a Task, got {type(text).__name__}")
    towers = tuple(text.lower().split())
    _check_towers(towers, text)
    return Task(towers)


def _index(letter: str) -> int:
    return BLOCK_LETTERS.index(letter)


def _check_towers(towers: tuple[str, ...], text: str) -> None:
    """Raise ``ValueError`` (quoting ``text``) unless ``towers`` form a valid normalised layout."""

    def fail(problem: str) -> NoReturn:
        raise ValueError(f"invalid task {text!r}: {problem}")

    letters = "".join(towers)
    if not letters:
        fail(f"empty layout ({_EXAMPLE})")
    if len(letters) > MAX_BLOCKS:
        fail(f"more than {MAX_BLOCKS} blocks ({len(letters)})")
    if any(not tower for tower in towers):
        fail("empty tower")
    unknown = [ch for ch in letters if ch not in BLOCK_LETTERS]
    if unknown:
        fail(f"unknown character {unknown[0]!r} ({_EXAMPLE})")
    repeated = sorted({ch for ch in letters if letters.count(ch) > 1})
    if repeated:
        fail(f"repeated block {repeated[0]!r}")
    if len(letters) < MIN_BLOCKS:
        fail(f"fewer than {MIN_BLOCKS} blocks")
    expected = BLOCK_LETTERS[: len(letters)]
    missing = sorted(set(expected) - set(letters))
    if missing:
        fail(
            f"a task with {len(letters)} blocks uses the letters {expected!r}; "
            f"missing {', '.join(repr(ch) for ch in missing)}"
        )
    if len(towers) == len(letters):
        fail("no stage: every tower is a single block; write a tower top to bottom, e.g. 'ab'")
