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
  ``Task.canonical`` (towers sorted) identifies them.
- Two tasks are *the same task up to relabelling* when renaming the blocks turns one into the
  other (paper appendix B.2): ``"ecadb"`` is ``"dbeac"``, ``"ab cd e"`` is ``"ec da b"``. The
  policy is exactly equivariant to block slots, so such tasks are one task to it.
  ``Task.task_class`` (``TaskClass``: the heights of the towers that are built, in build order,
  and the number of single blocks) identifies that class. A task is *unseen* by a policy only
  when its class is not among the classes of the policy's training tasks.

``parse_task`` turns user text into a validated ``Task``; constructing ``Task`` directly validates
too, but expects the normalised form (lowercase towers).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple, NoReturn

BLOCK_LETTERS = "abcdefghij"
MIN_BLOCKS = 2
MAX_BLOCKS = 10
#: Support markers: a block's support is the index of the block it rests on, or one of these.
#: ``TABLE`` (-1): on no block. It is ``Task.target_support`` of a tower's bottom block, and what
#: ``predicates.support_of`` gives every block that rests on no block (it does not look at the
#: table, so a held or falling block gets ``TABLE`` too). ``IN_AIR`` (-2): on neither a block nor
#: the table (held, falling, tilted); the scripted expert's ``WorldView.support``, which checks
#: the table, tells it apart from ``TABLE``.
TABLE = -1
IN_AIR = -2

_EXAMPLE = "expected towers of letters a-j separated by spaces, e.g. 'ab cde'"


class TaskClass(NamedTuple):
    """A task up to relabelling of its blocks (paper appendix B.2).

    ``heights``: the heights (blocks) of the towers of two or more blocks, in build order (the
    order they are written); ``singles``: the number of single blocks (towers of one block, which
    take no stage and so have no place in the build order). ``"ab cd e"`` and ``"ec da b"`` are
    both ``TaskClass((2, 2), 1)``; ``"abc de"`` (``(3, 2)``) and ``"de abc"`` (``(2, 3)``) are two
    classes, because their stages come in another order.
    """

    heights: tuple[int, ...]
    singles: int

    def __str__(self) -> str:
        """Heights joined by ``-``, then ``+N`` single blocks: ``"2-2+1"`` for ``"ab cd e"``."""
        text = "-".join(str(height) for height in self.heights)
        return f"{text}+{self.singles}" if self.singles else text

    @property
    def num_blocks(self) -> int:
        return sum(self.heights) + self.singles

    @property
    def num_stages(self) -> int:
        """Stacking operations: one per block above a tower's bottom."""
        return sum(height - 1 for height in self.heights)

    def representative(self) -> Task:
        """The class's task with its letters in reading order, single blocks last:
        ``TaskClass((2, 3), 1)`` gives ``"ab cde f"``."""
        towers, start = [], 0
        for height in (*self.heights, *([1] * self.singles)):
            towers.append(BLOCK_LETTERS[start:start + height])
            start += height
        return Task(tuple(towers))


def task_classes(num_stages: int | None = None) -> tuple[TaskClass, ...]:
    """Every class of tasks with 2 to 10 blocks and at least one stage (all 221, or those with
    ``num_stages`` stages), ordered by blocks, then heights, then single blocks.

    Counts per stage count 1 to 9: 9, 15, 24, 36, 48, 49, 30, 9, 1 (reference/paper.md, "Tasks").
    """
    found = _all_task_classes()
    if num_stages is None:
        return found
    return tuple(c for c in found if c.num_stages == num_stages)


@functools.cache
def _all_task_classes() -> tuple[TaskClass, ...]:
    """Every class of 2 to 10 blocks, by blocks, heights, single blocks (enumerated once)."""
    found = [TaskClass(heights, blocks - sum(heights))
             for blocks in range(MIN_BLOCKS, MAX_BLOCKS + 1)
             for heights in _height_sequences(blocks)]
    return tuple(sorted(found, key=lambda c: (c.num_blocks, c.heights, c.singles)))


def _height_sequences(max_blocks: int) -> list[tuple[int, ...]]:
    """Every sequence of tower heights of at least 2 blocks with at most ``max_blocks`` in all."""
    found: list[tuple[int, ...]] = []
    for first in range(2, max_blocks + 1):
        found.append((first,))
        found += [(first, *rest) for rest in _height_sequences(max_blocks - first)]
    return found


def parse_task_class(text: str) -> TaskClass:
    """Read a class written as ``str(TaskClass)`` (``"3-2+1"``); ``ValueError`` when malformed."""
    body, _, singles = text.strip().partition("+")
    try:
        heights = tuple(int(part) for part in body.split("-")) if body else ()
        count = int(singles) if singles else 0
    except ValueError:
        raise ValueError(f"invalid task class {text!r}: expected tower heights joined by '-', "
                         "then '+N' single blocks, e.g. '3-2+1'") from None
    if not heights or min(heights) < 2 or count < 0:
        raise ValueError(f"invalid task class {text!r}: needs at least one tower of 2 or more "
                         "blocks and a non-negative number of single blocks")
    task_class = TaskClass(heights, count)
    if task_class.num_blocks > MAX_BLOCKS:
        raise ValueError(f"invalid task class {text!r}: more than {MAX_BLOCKS} blocks")
    return task_class


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
    def tower_blocks(self) -> tuple[tuple[int, ...], ...]:
        """The towers as block indices, in the order written, each top to bottom:
        ``((0, 1), (2, 3, 4))`` for ``"ab cde"``."""
        return tuple(tuple(_index(letter) for letter in tower) for tower in self.towers)

    @cached_property
    def tower_of(self) -> tuple[int, ...]:
        """Per block index, the index of its tower in ``towers`` (towers are built in that
        order): ``(0, 0, 1, 1, 1)`` for ``"ab cde"``."""
        towers = [0] * self.num_blocks
        for number, tower in enumerate(self.tower_blocks):
            for block in tower:
                towers[block] = number
        return tuple(towers)

    @cached_property
    def tower_heights(self) -> tuple[int, ...]:
        """Per block index, the final height (blocks) of its tower: ``(2, 2, 3, 3, 3)`` for
        ``"ab cde"``."""
        return tuple(len(self.towers[tower]) for tower in self.tower_of)

    @cached_property
    def blocks_below(self) -> tuple[int, ...]:
        """Per block index, how many blocks end up under it in its tower (0 for a tower's bottom
        block): ``(1, 0, 2, 1, 0)`` for ``"ab cde"``."""
        below = [0] * self.num_blocks
        for tower in self.tower_blocks:
            for above_bottom, block in enumerate(reversed(tower)):
                below[block] = above_bottom
        return tuple(below)

    @cached_property
    def build_order(self) -> tuple[int, ...]:
        """The blocks in the order they reach their final place: towers in the order written,
        each from its bottom block up (the bottom, then the stages' sources): ``(1, 0, 4, 3, 2)``
        for ``"ab cde"``."""
        return tuple(block for tower in self.tower_blocks for block in reversed(tower))

    @cached_property
    def build_rank(self) -> tuple[int, ...]:
        """Per block index, its place in ``build_order``: ``(1, 0, 4, 3, 2)`` for ``"ab cde"``.
        A block of a tower written earlier always ranks before every block of a later tower."""
        rank = [0] * self.num_blocks
        for place, block in enumerate(self.build_order):
            rank[block] = place
        return tuple(rank)

    @cached_property
    def canonical(self) -> str:
        """The layout with its towers sorted: equal for tasks that differ only in tower order."""
        return " ".join(sorted(self.towers))

    @cached_property
    def task_class(self) -> TaskClass:
        """The task up to relabelling of its blocks (``TaskClass``): equal for ``"ab cd e"`` and
        ``"ec da b"``, different for ``"abc de"`` and ``"de abc"`` (another build order)."""
        heights = tuple(len(tower) for tower in self.towers if len(tower) > 1)
        return TaskClass(heights, self.num_towers - len(heights))


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
