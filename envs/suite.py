"""The fixed task suite: 140 training and 43 test tasks (paper section 5.1 and appendix B.2).

A suite is a committed, versioned data file in ``envs/data/`` that ``load_suite`` reads and
validates; ``generate_suite`` is the deterministic generator that produced it (``python
scripts/make_suite.py`` rewrites the current version's file, ``--check`` compares every version's).

**Suite v2** (the current one, ``envs/data/suite_v2.json``) keeps one task per class, where a class
is a task up to relabelling of its blocks (``envs.tasks.TaskClass``; paper appendix B.2). The
policy is exactly equivariant to block slots, so a relabelled training task is not an unseen one:

- every task is the only one of its class in the suite, and no test class is a training class;
- test: 7 tasks each for 2, 4, 5, 6 and 7 stages and 8 for 8 stages (43), as in the paper;
- training: 140 tasks with 1 to 7 stages. With 2 to 10 blocks there are only 9, 15, 24, 36, 48,
  49 and 30 classes with 1 to 7 stages, and the test split takes 7 of those with 2, 4, 5, 6 and 7
  stages, so the paper's 20 training tasks per stage count cannot be had at 1 and 2 stages (9 and
  8 classes left). The counts are *water-filled* (``training_stage_counts``): each stage count gets
  as many classes as it has left, up to a common level, the level being the largest that keeps the
  total at most 140 (25); the tasks still missing go, one each, to the stage counts with the most
  classes left (ties: fewer stages first). That gives 1: 9, 2: 8, 3: 24, 4: 25, 5: 25, 6: 26,
  7: 23, as close to an even spread as the classes allow, and every class of 1, 2, 3 and 7 stages
  is used.
- classes are drawn spread over block counts: within a stage count, rounds in which every block
  count that still has a class gives one (block counts in a random order, a random class of each),
  until the split's count is reached. Test classes are drawn first (all stage counts), training
  classes from the rest. Each class then becomes a layout: the first ``n`` letters in a random
  order, cut into the class's towers in build order, with its single blocks put at random places
  among them.

**Suite v1** (``envs/data/suite_v1.json``) stays loadable with ``load_suite(1)``, because datasets,
checkpoints and the shipped policy record it. It only told apart tasks that differ in the order
their towers are written, so 53 of its training tasks share a class with another training task and
22 of its 43 test tasks (19 classes) share a class with a training task: its "test" tasks are not
all unseen.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from envs.tasks import BLOCK_LETTERS, MAX_BLOCKS, Task, TaskClass, parse_task, task_classes

#: The suite ``load_suite()`` returns.
SUITE_VERSION = 2
#: Every version that ``load_suite(version)`` reads.
SUITE_VERSIONS = (1, 2)
#: Seed of the committed suites: the paper's arXiv number, 1703.07326.
SUITE_SEED = 170307326
#: Number of tasks per stage count in the test split (paper section 5.1), both versions.
TEST_STAGE_COUNTS: Mapping[int, int] = {2: 7, 4: 7, 5: 7, 6: 7, 7: 7, 8: 8}
#: Training tasks in all (paper section 5.1), both versions.
NUM_TRAIN_TASKS = 140
#: Stage counts of the training split (paper section 5.1).
TRAIN_STAGES = range(1, 8)
SPLITS = ("train", "test", "all")

#: Suite v1: 20 training tasks per stage count (paper section 5.1), towers of at most 9 blocks.
V1_TRAIN_STAGE_COUNTS: Mapping[int, int] = {stages: 20 for stages in TRAIN_STAGES}
V1_MAX_TOWER_HEIGHT = 9


def suite_file(version: int = SUITE_VERSION) -> str:
    """The data file of a suite version, inside the ``envs`` package (``envs/data/``)."""
    return f"suite_v{version}.json"


def training_stage_counts() -> dict[int, int]:
    """Suite v2's training tasks per stage count, water-filled (see the module docstring)."""
    left = {stages: len(task_classes(stages)) - TEST_STAGE_COUNTS.get(stages, 0)
            for stages in TRAIN_STAGES}
    level = max(level for level in range(NUM_TRAIN_TASKS + 1)
                if sum(min(n, level) for n in left.values()) <= NUM_TRAIN_TASKS)
    counts = {stages: min(n, level) for stages, n in left.items()}
    by_room = sorted((stages for stages in left if left[stages] > level),
                     key=lambda stages: (-left[stages], stages))
    for stages in by_room[:NUM_TRAIN_TASKS - sum(counts.values())]:
        counts[stages] += 1
    return counts


#: Suite v2's training tasks per stage count: 1: 9, 2: 8, 3: 24, 4: 25, 5: 25, 6: 26, 7: 23.
TRAIN_STAGE_COUNTS: Mapping[int, int] = training_stage_counts()


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

    def classes(self, name: str) -> frozenset[TaskClass]:
        """The classes (tasks up to relabelling) of split ``name``'s tasks."""
        return frozenset(task.task_class for task in self.split(name))

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

    def same_class(self, layout: str | Task, name: str = "all") -> tuple[Task, ...]:
        """The tasks of split ``name`` in ``layout``'s class (relabellings of it; in suite v2
        at most one). Raises ``ValueError`` if ``layout`` is not a valid task."""
        wanted = parse_task(layout).task_class
        return tuple(task for task in self.split(name) if task.task_class == wanted)


@functools.lru_cache(maxsize=len(SUITE_VERSIONS))
def load_suite(version: int = SUITE_VERSION) -> Suite:
    """The committed task suite of ``version`` (default: the current one), read from the
    package data and validated (cached). ``ValueError`` for an unknown version."""
    if version not in SUITE_VERSIONS:
        raise ValueError(f"unknown task suite version {version!r}; this imitate has "
                         f"{', '.join(f'v{v}' for v in SUITE_VERSIONS)}")
    name = suite_file(version)
    path = resources.files(__package__).joinpath("data").joinpath(name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the task suite {name}: {error}") from error
    suite = parse_suite(data)
    if suite.version != version:
        raise ValueError(f"task suite {name}: holds version {suite.version}, not {version}")
    return suite


def parse_suite(data: Mapping[str, Any]) -> Suite:
    """Build a ``Suite`` from a data file's JSON object, checking every invariant of its version.

    Raises ``ValueError`` naming the first broken invariant.
    """
    if not isinstance(data, Mapping):
        raise ValueError("task suite: expected a JSON object")
    version = data.get("version")
    if version not in SUITE_VERSIONS:
        raise ValueError(f"task suite: version {version!r}, expected one of "
                         f"{', '.join(map(str, SUITE_VERSIONS))}")
    train_counts = V1_TRAIN_STAGE_COUNTS if version == 1 else TRAIN_STAGE_COUNTS
    splits = {}
    for name, expected in (("train", train_counts), ("test", TEST_STAGE_COUNTS)):
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
    tasks = splits["train"] + splits["test"]
    duplicates = _duplicates(task.canonical for task in tasks)
    if duplicates:
        raise ValueError(f"task suite: tasks equal up to tower order: {', '.join(duplicates)}")
    if version >= 2:
        _check_one_task_per_class(splits["train"], splits["test"])
    return Suite(version=version, train=splits["train"], test=splits["test"])


def _check_one_task_per_class(train: tuple[Task, ...], test: tuple[Task, ...]) -> None:
    """``ValueError`` unless every task is alone in its class and no test class is trained on."""
    for name, tasks in (("train", train), ("test", test)):
        by_class = defaultdict(list)
        for task in tasks:
            by_class[task.task_class].append(task.layout)
        shared = [layouts for layouts in by_class.values() if len(layouts) > 1]
        if shared:
            raise ValueError(f"task suite: {name} tasks {' and '.join(map(repr, shared[0]))} are "
                             "one task up to relabelling of the blocks")
    train_classes = {task.task_class: task.layout for task in train}
    for task in test:
        if task.task_class in train_classes:
            raise ValueError(f"task suite: test task {task.layout!r} is training task "
                             f"{train_classes[task.task_class]!r} up to relabelling of the blocks "
                             f"(class {task.task_class})")


def generate_suite(seed: int = SUITE_SEED, version: int = SUITE_VERSION) -> dict[str, Any]:
    """Generate a suite version's JSON object deterministically from ``seed`` (module docstring)."""
    if version not in SUITE_VERSIONS:
        raise ValueError(f"unknown task suite version {version!r}")
    rng = np.random.default_rng(seed)
    splits = _generate_v1(rng) if version == 1 else _generate_v2(rng)
    return {"version": version, "generator": "scripts/make_suite.py", "seed": seed, **splits}


# --- suite v2: one task per class -------------------------------------------------------------
def _generate_v2(rng: np.random.Generator) -> dict[str, list[str]]:
    """Draw the test classes, then the training classes from the rest; realise each as a layout."""
    left = {stages: list(task_classes(stages)) for stages in range(1, MAX_BLOCKS)}
    chosen: dict[str, list[TaskClass]] = {}
    for name, counts in (("test", TEST_STAGE_COUNTS), ("train", TRAIN_STAGE_COUNTS)):
        chosen[name] = []
        for stages, count in sorted(counts.items()):
            drawn = _draw_spread(rng, left[stages], count)
            left[stages] = [c for c in left[stages] if c not in drawn]
            chosen[name] += sorted(drawn, key=lambda c: (c.num_blocks, c.heights, c.singles))
    return {name: [_realise(rng, task_class).layout for task_class in chosen[name]]
            for name in ("train", "test")}


def _draw_spread(rng: np.random.Generator, classes: list[TaskClass],
                 count: int) -> list[TaskClass]:
    """``count`` of ``classes`` spread over block counts: rounds in which each block count that
    still has a class gives a random one of them, block counts in a random order."""
    if count > len(classes):
        raise ValueError(f"{count} classes wanted, only {len(classes)} left")
    pools: dict[int, list[TaskClass]] = defaultdict(list)
    for task_class in classes:
        pools[task_class.num_blocks].append(task_class)
    drawn: list[TaskClass] = []
    while len(drawn) < count:
        blocks_in_round = [b for b in sorted(pools) if pools[b]]
        for blocks in rng.permutation(blocks_in_round).tolist():
            if len(drawn) == count:
                break
            pool = pools[blocks]
            drawn.append(pool.pop(int(rng.integers(len(pool)))))
    return drawn


def _realise(rng: np.random.Generator, task_class: TaskClass) -> Task:
    """A random task of ``task_class``: shuffled letters, its towers in build order, its single
    blocks at random places among them."""
    letters = "".join(BLOCK_LETTERS[i] for i in rng.permutation(task_class.num_blocks))
    bounds = np.cumsum([0, *task_class.heights, *([1] * task_class.singles)]).tolist()
    towers = [letters[start:end] for start, end in itertools.pairwise(bounds)]
    built, singles = towers[:len(task_class.heights)], towers[len(task_class.heights):]
    for single in singles:
        built.insert(int(rng.integers(len(built) + 1)), single)
    return Task(tuple(built))


# --- suite v1: distinct up to tower order only (kept for datasets and checkpoints that name it) --
def _generate_v1(rng: np.random.Generator) -> dict[str, list[str]]:
    """Suite v1's generator, unchanged: for each task draw the number of blocks uniformly from
    those that admit the stage count, shuffle the letters, cut them at random places into
    ``blocks - stages`` towers; redraw when a tower is taller than ``V1_MAX_TOWER_HEIGHT`` or the
    task equals an earlier one up to tower order."""
    seen: set[str] = set()
    splits: dict[str, list[str]] = {}
    for name, counts in (("train", V1_TRAIN_STAGE_COUNTS), ("test", TEST_STAGE_COUNTS)):
        splits[name] = []
        for num_stages, num_tasks in sorted(counts.items()):
            for _ in range(num_tasks):
                task = _draw_new_task_v1(rng, num_stages, seen)
                seen.add(task.canonical)
                splits[name].append(task.layout)
    return splits


def _draw_new_task_v1(
    rng: np.random.Generator, num_stages: int, seen: set[str], max_tries: int = 10_000
) -> Task:
    """Draw random tasks with ``num_stages`` stages until one is new up to tower order."""
    for _ in range(max_tries):
        task = _draw_task_v1(rng, num_stages)
        if task is not None and task.canonical not in seen:
            return task
    raise RuntimeError(f"no new task with {num_stages} stages after {max_tries} draws")


def _draw_task_v1(rng: np.random.Generator, num_stages: int) -> Task | None:
    """One random task with ``num_stages`` stages, or ``None`` if a tower is too tall."""
    num_blocks = int(rng.integers(num_stages + 1, MAX_BLOCKS + 1))
    num_towers = num_blocks - num_stages
    letters = "".join(BLOCK_LETTERS[i] for i in rng.permutation(num_blocks))
    # Cut points between letters: a uniform composition of num_blocks into num_towers parts.
    cuts = np.sort(rng.choice(np.arange(1, num_blocks), size=num_towers - 1, replace=False))
    bounds = [0, *cuts.tolist(), num_blocks]
    towers = tuple(letters[start:end] for start, end in itertools.pairwise(bounds))
    if max(len(tower) for tower in towers) > V1_MAX_TOWER_HEIGHT:
        return None
    return Task(towers)


def _duplicates(items: Iterable[str]) -> list[str]:
    return sorted(item for item, count in Counter(items).items() if count > 1)
