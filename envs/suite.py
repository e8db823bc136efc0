"""The fixed task suite: 140 training and 43 test tasks (paper section 5.1).

The suite lives in the committed data file ``envs/data/suite_v1.json``; ``load_suite`` reads and
validates it. ``generate_suite`` is the deterministic generator that produced it; regenerate with
``python scripts/make_suite.py`` and check with ``python scripts/make_suite.py --check``.

Composition (paper section 5.1; reference/paper.md "Tasks"):

- training: 20 tasks for each stage count 1 to 7 (140);
- test: 7 tasks each for 2, 4, 5, 6 and 7 stages, and 8 for 8 stages (43);
- no two tasks in the suite (training or test) are equal up to the order of their towers
  (``Task.canonical``), so training and test tasks are disjoint.

Generation (our choice; the paper does not describe it): with ``np.random.default_rng(seed)``,
training tasks first, then test tasks, stage counts in increasing order. For each task draw the
number of blocks uniformly from those that admit the stage count (``stages + 1`` to 10, since
``blocks = stages + towers``), shuffle the first ``blocks`` letters, and cut them at random places
into ``blocks - stages`` towers (every composition equally likely). Redraw when a tower is longer
than ``MAX_TOWER_HEIGHT`` or the task equals an earlier one up to tower order.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from envs.tasks import BLOCK_LETTERS, MAX_BLOCKS, Task, parse_task

SUITE_VERSION = 1
#: Data file inside the ``envs`` package (``envs/data/``).
SUITE_FILE = f"suite_v{SUITE_VERSION}.json"
#: Seed of the committed suite: the paper's arXiv number, 1703.07326.
SUITE_SEED = 170307326
#: Tallest tower allowed in the suite (blocks).
MAX_TOWER_HEIGHT = 9
#: Number of tasks per stage count, per split (paper section 5.1).
TRAIN_STAGE_COUNTS: Mapping[int, int] = {1: 20, 2: 20, 3: 20, 4: 20, 5: 20, 6: 20, 7: 20}
TEST_STAGE_COUNTS: Mapping[int, int] = {2: 7, 4: 7, 5: 7, 6: 7, 7: 7, 8: 8}
SPLITS = ("train", "test", "all")


@dataclass(frozen=True)
class Suite:
    """The task suite: training and test tasks, each group in file order."""

    version: int
    train: tuple[Task, ...]
    test: tuple[Task, ...]

    def split(self, name: str) -> tuple[Task, ...]:
        """The tasks of split ``"train"``, ``"test"`` or ``"all"`` (training tasks first)."""
        if name == "train":
            return self.train
        if name == "test":
            return self.test
        if name == "all":
            return self.train + self.test
        raise ValueError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}")

    def find(self, layout: str | Task) -> Task | None:
        """The suite's task equal to ``layout`` up to tower order, or ``None``.

        Raises ``ValueError`` if ``layout`` is not a valid task.
        """
        canonical = parse_task(layout).canonical
        for task in self.train + self.test:
            if task.canonical == canonical:
                return task
        return None

    def split_of(self, layout: str | Task) -> str | None:
        """``"train"`` or ``"test"`` for a task of the suite (up to tower order), else ``None``."""
        task = self.find(layout)
        if task is None:
            return None
        return "train" if task in self.train else "test"


@functools.lru_cache(maxsize=1)
def load_suite() -> Suite:
    """The committed task suite, read from the package data and validated (cached)."""
    path = resources.files(__package__).joinpath("data").joinpath(SUITE_FILE)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the task suite {SUITE_FILE}: {error}") from error
    return parse_suite(data)


def parse_suite(data: Mapping[str, Any]) -> Suite:
    """Build a ``Suite`` from the data file's JSON object, checking every invariant.

    Raises ``ValueError`` naming the first broken invariant.
    """
    if not isinstance(data, Mapping):
        raise ValueError("task suite: expected a JSON object")
    if data.get("version") != SUITE_VERSION:
        raise ValueError(f"task suite: version {data.get('version')!r}, expected {SUITE_VERSION}")
    splits = {}
    for name, expected in (("train", TRAIN_STAGE_COUNTS), ("test", TEST_STAGE_COUNTS)):
        layouts = data.get(name)
        if not isinstance(layouts, list) or not all(isinstance(x, str) for x in layouts):
            raise ValueError(f"task suite: {name!r} must be a list of layout strings")
        tasks = tuple(parse_task(layout) for layout in layouts)
        counts = dict(sorted(Counter(task.num_stages for task in tasks).items()))
        if counts != dict(expected):
            raise ValueError(
                f"task suite: {name} tasks per stage count are {counts}, expected {dict(expected)}"
            )
        splits[name] = tasks
    duplicates = _duplicates(task.canonical for task in splits["train"] + splits["test"])
    if duplicates:
        raise ValueError(f"task suite: tasks equal up to tower order: {', '.join(duplicates)}")
    return Suite(version=SUITE_VERSION, train=splits["train"], test=splits["test"])


def generate_suite(seed: int = SUITE_SEED) -> dict[str, Any]:
    """Generate the suite's JSON object deterministically from ``seed`` (see module docstring)."""
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    splits: dict[str, list[str]] = {}
    for name, counts in (("train", TRAIN_STAGE_COUNTS), ("test", TEST_STAGE_COUNTS)):
        splits[name] = []
        for num_stages, num_tasks in sorted(counts.items()):
            for _ in range(num_tasks):
                task = _draw_new_task(rng, num_stages, seen)
                seen.add(task.canonical)
                splits[name].append(task.layout)
    return {
        "version": SUITE_VERSION,
        "generator": "scripts/make_suite.py",
        "seed": seed,
        "train": splits["train"],
        "test": splits["test"],
    }


def _draw_new_task(
    rng: np.random.Generator, num_stages: int, seen: set[str], max_tries: int = 10_000
) -> Task:
    """Draw random tasks with ``num_stages`` stages until one is new up to tower order."""
    for _ in range(max_tries):
        task = _draw_task(rng, num_stages)
        if task is not None and task.canonical not in seen:
            return task
    raise RuntimeError(f"no new task with {num_stages} stages after {max_tries} draws")


def _draw_task(rng: np.random.Generator, num_stages: int) -> Task | None:
    """One random task with ``num_stages`` stages, or ``None`` if a tower is too tall."""
    num_blocks = int(rng.integers(num_stages + 1, MAX_BLOCKS + 1))
    num_towers = num_blocks - num_stages
    letters = "".join(BLOCK_LETTERS[i] for i in rng.permutation(num_blocks))
    # Cut points between letters: a uniform composition of num_blocks into num_towers parts.
    cuts = np.sort(rng.choice(np.arange(1, num_blocks), size=num_towers - 1, replace=False))
    bounds = [0, *cuts.tolist(), num_blocks]
    towers = tuple(letters[start:end] for start, end in itertools.pairwise(bounds))
    if max(len(tower) for tower in towers) > MAX_TOWER_HEIGHT:
        return None
    return Task(towers)


def _duplicates(items: Iterable[str]) -> list[str]:
    return sorted(item for item, count in Counter(items).items() if count > 1)
