"""Streaming access to a demo dataset and the paper's training batches (section 3.3).

``DemoDataset`` opens shards lazily (an LRU of at most ``max_open_shards`` open files, reopened in
a forked child process) and checks each shard's sha256 against the manifest the first time this
process opens it, refusing a corrupt shard with ``CorruptShardError``. Reading a demo inflates only
that demo's members of its shard.

``PairSampler`` draws batches as the paper pairs them: tasks with replacement; for each, one
successful *conditioning* demo and ``pairs_per_task`` (observation, clean label) pairs from ANOTHER
demo of the same task. Memory is what one batch holds plus the open files' zip directories. Plain
numpy: in a torch loop use ``{k: torch.from_numpy(v) for k, v in batch.arrays().items()}``.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from imitate.conditioning import check_conditioning, conditioning_frames
from imitate.data import format as fmt
from imitate.data.verify import check_shard
from imitate.files import lock_holder

logger = logging.getLogger(__name__)

class DemoDataset:
    """Read-only, lazily opened view of the dataset at ``root``.

    Args:
        root: dataset folder (``manifest.json`` + ``shards/``).
        max_open_shards: most shard files kept open at once (LRU).
        verify: check a shard's size and sha256 the first time it is opened in this process.
        cache_demos: decoded demos kept in memory (LRU; read-only arrays), so a small dataset
            is inflated once instead of at every batch. 0 disables the cache.

    Raises ``DatasetError`` when ``root`` is not a dataset or holds no demo.
    """

    def __init__(self, root: Path | str, *, max_open_shards: int = 8, verify: bool = True,
                 cache_demos: int = 256):
        if max_open_shards < 1:
            raise ValueError(f"max_open_shards must be >= 1, got {max_open_shards}")
        self.root = Path(root)
        self.manifest = fmt.load_manifest(self.root)
        writer = lock_holder(self.root, fmt.GENERATE_LOCK)
        if writer is not None:
            raise fmt.DatasetError(f"{self.root} is still being written by 'demos generate' "
                                   f"({writer}); wait for it to finish")
        self.max_open_shards = max_open_shards
        self.verify = verify
        self._entries: dict[str, list[fmt.ShardEntry]] = {}
        for entry in fmt.shard_entries(self.manifest):
            self._entries.setdefault(entry.task, []).append(entry)
        if not self._entries:
            raise fmt.DatasetError(f"{self.root} holds no demo yet (no shard in its manifest)")
        #: Layouts of the tasks with at least one demo, in manifest order.
        self.tasks: tuple[str, ...] = tuple(self._entries)
        self._starts = {task: np.cumsum([0] + [e.num_demos for e in entries])
                        for task, entries in self._entries.items()}
        self._open: OrderedDict[str, fmt.ShardReader] = OrderedDict()
        self.cache_demos = cache_demos
        self._cache: OrderedDict[tuple[str, int], fmt.Demo] = OrderedDict()
        self._verified: set[str] = set()
        self._pid = os.getpid()

    def num_demos(self, task: str) -> int:
        """Demos of ``task`` in the dataset."""
        return int(self._starts[task][-1])

    def successful(self, task: str) -> np.ndarray:
        """Positions (0 .. num_demos - 1) of the task's successful demos, int64."""
        positions = []
        for entry, start in zip(self._entries[task], self._starts[task], strict=False):
            failed = set(entry.failed)
            positions += [start + i for i in range(entry.num_demos)
                          if entry.first_demo + i not in failed]
        return np.asarray(positions, dtype=np.int64)

    def demo(self, task: str, position: int) -> fmt.Demo:
        """The ``position``-th demo of ``task`` (0-based, in shard order)."""
        starts = self._starts[task]
        if not 0 <= position < starts[-1]:
            raise IndexError(f"task {task!r} has {starts[-1]} demos, asked for {position}")
        key = (task, position)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        shard = int(np.searchsorted(starts, position, side="right")) - 1
        entry = self._entries[task][shard]
        demo = self._reader(entry).demo(entry.first_demo + position - int(starts[shard]))
        if self.cache_demos > 0:
            for value in vars(demo).values():
                if isinstance(value, np.ndarray):
                    value.setflags(write=False)
            self._cache[key] = demo
            while len(self._cache) > self.cache_demos:
                self._cache.popitem(last=False)
        return demo

    def _reader(self, entry: fmt.ShardEntry) -> fmt.ShardReader:
        if os.getpid() != self._pid:  # forked (e.g. a DataLoader worker): do not share handles
            self._open.clear()
            self._pid = os.getpid()
        reader = self._open.get(entry.file)
        if reader is not None:
            self._open.move_to_end(entry.file)
            return reader
        if self.verify and entry.file not in self._verified:
            problem = check_shard(self.root, entry)
            if problem is not None:
                raise fmt.CorruptShardError(
                    f"{self.root}: shard {problem}; refusing a corrupt dataset "
                    f"(see 'imitate demos verify {self.root}')")
            self._verified.add(entry.file)
        reader = fmt.ShardReader(self.root / entry.file)
        self._open[entry.file] = reader
        while len(self._open) > self.max_open_shards:
            _, oldest = self._open.popitem(last=False)
            oldest.close()
        return reader

    def close(self) -> None:
        """Close every open shard file."""
        while self._open:
            self._open.popitem()[1].close()

    def __enter__(self) -> DemoDataset:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Batch:
    """One training batch; ``B`` tasks, ``L`` = longest conditioning demo (frames), ``P`` pairs
    per task, ``S`` = most stages. Padding is zero and masked out.

    Conditioning demo (observations only; frame ``t`` is the state before action ``t``):
        demo_blocks (B, L, 10, 3) float32, demo_gripper (B, L, 2) float32,
        demo_mask (B, L) bool (True for real frames), demo_length (B,) int64 (frames, ``T + 1``),
        stage_ends (B, S) int64 (frame index ending each stage, -1 padding),
        num_stages (B,) int64.
    Pairs (from another demo of the same task):
        obs_blocks (B, P, 10, 3) float32, obs_gripper (B, P, 2) float32,
        labels (B, P, 4) float32 (clean expert actions), obs_step (B, P) int64 (their step).
    Shared: block_mask (B, 10) bool (the task's blocks), task (B,) int64 (index into
    ``DemoDataset.tasks``), demo_index / pair_index (B,) int64 (demo indices within the task),
    pair_source (B,) int64 (0: the pairs come from the dataset, k: from ``extra_pairs[k - 1]``).
    """

    task: np.ndarray
    demo_index: np.ndarray
    pair_index: np.ndarray
    pair_source: np.ndarray
    block_mask: np.ndarray
    demo_blocks: np.ndarray
    demo_gripper: np.ndarray
    demo_mask: np.ndarray
    demo_length: np.ndarray
    stage_ends: np.ndarray
    num_stages: np.ndarray
    obs_blocks: np.ndarray
    obs_gripper: np.ndarray
    obs_step: np.ndarray
    labels: np.ndarray

    def arrays(self) -> dict[str, np.ndarray]:
        """The batch as a dict of arrays (for ``torch.from_numpy``)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def conditioning(self, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The conditioning frames of each demo for ``mode`` (``imitate.conditioning``).

        Returns ``blocks (B, L', 10, 3)``, ``gripper (B, L', 2)`` and ``mask (B, L')``, ``L'``
        the most frames a demo keeps: L for ``full``, at most S + 1 for ``snapshot``, 1 for
        ``final``. Padding is zero and masked out.
        """
        check_conditioning(mode)
        if mode == "full":
            return self.demo_blocks, self.demo_gripper, self.demo_mask
        kept = [conditioning_frames(int(length), ends[ends >= 0], mode)
                for length, ends in zip(self.demo_length, self.stage_ends, strict=True)]
        width = max(len(row) for row in kept)
        frames = _pad([np.asarray(row) for row in kept], width)  # (B, L')
        mask = np.arange(width)[None, :] < np.array([len(row) for row in kept])[:, None]
        rows = np.arange(len(frames))[:, None]
        blocks = self.demo_blocks[rows, frames] * mask[..., None, None]  # (B, L', 10, 3)
        gripper = self.demo_gripper[rows, frames] * mask[..., None]  # (B, L', 2)
        return blocks.astype(np.float32), gripper.astype(np.float32), mask


class PairSampler:
    """Draws ``Batch``es from a ``DemoDataset`` as the paper pairs them.

    Args:
        dataset: the demos.
        tasks_per_batch: ``B``, tasks drawn with replacement per batch.
        pairs_per_task: ``P``, (observation, label) pairs per task, drawn from one demo other
            than the conditioning demo (without replacement when the demo has enough steps).
        rng: the generator every draw comes from (no global RNG).
        condition_positions: per task, the demo positions conditioning demos may come from
            (default: all); only successful ones are used.
        pair_positions: per task, the demo positions (observation, label) pairs may come from
            (default: all). ``holdout_split`` makes both for a held-out validation set.
        extra_pairs: more datasets pairs may come from (for example DAgger's aggregated,
            expert-labelled rollouts): every demo of the same task in them is a candidate too.

    Only tasks with a successful conditioning demo and another demo to pair it with are drawn.
    Raises ``DatasetError`` when no task qualifies.
    """

    def __init__(self, dataset: DemoDataset, *, tasks_per_batch: int = 16,
                 pairs_per_task: int = 32, rng: np.random.Generator,
                 condition_positions: dict[str, np.ndarray] | None = None,
                 pair_positions: dict[str, np.ndarray] | None = None,
                 extra_pairs: tuple[DemoDataset, ...] = ()):
        if tasks_per_batch < 1 or pairs_per_task < 1:
            raise ValueError("tasks_per_batch and pairs_per_task must be >= 1")
        self.dataset = dataset
        self.tasks_per_batch = tasks_per_batch
        self.pairs_per_task = pairs_per_task
        self.rng = rng
        self.extra_pairs = tuple(extra_pairs)
        self._conditions: dict[str, np.ndarray] = {}
        self._pairs: dict[str, np.ndarray] = {}
        for task in dataset.tasks:
            everything = np.arange(dataset.num_demos(task), dtype=np.int64)
            allowed = everything if condition_positions is None else condition_positions[task]
            self._conditions[task] = np.intersect1d(dataset.successful(task), allowed)
            self._pairs[task] = (everything if pair_positions is None
                                 else np.asarray(pair_positions[task], dtype=np.int64))
        self.eligible = np.array([i for i, task in enumerate(dataset.tasks)
                                  if self._pairable(task)], dtype=np.int64)
        dropped = [task for task in dataset.tasks if not self._pairable(task)]
        if dropped and len(self.eligible):
            logger.warning("%d task(s) have no pair of usable demos and are never drawn: %s",
                           len(dropped), ", ".join(repr(t) for t in dropped[:5]))
        if len(self.eligible) == 0:
            raise fmt.DatasetError(f"{dataset.root}: no task has two demos to pair")

    def _pairable(self, task: str) -> bool:
        """Every conditioning demo of ``task`` has at least one other demo to pair with."""
        conditions, pairs = self._conditions[task], self._pairs[task]
        return len(conditions) > 0 and all(np.any(pairs != c) for c in conditions)

    def __iter__(self) -> Iterator[Batch]:
        while True:
            yield self.sample()

    def sample(self) -> Batch:
        """One batch (see ``Batch`` for shapes)."""
        items = [self._item(int(t)) for t in self.rng.choice(self.eligible, self.tasks_per_batch)]
        return _collate(items)

    def _extra_counts(self, task: str) -> list[int]:
        return [data.num_demos(task) if task in data.tasks else 0 for data in self.extra_pairs]

    def _item(self, task_index: int) -> dict[str, np.ndarray | int]:
        task = self.dataset.tasks[task_index]
        conditioning = int(self.rng.choice(self._conditions[task]))
        candidates = self._pairs[task]
        candidates = candidates[candidates != conditioning]
        demo = self.dataset.demo(task, conditioning)
        extra = self._extra_counts(task) if self.extra_pairs else []
        chosen = int(self.rng.integers(len(candidates) + sum(extra)))
        source = 0
        if chosen < len(candidates):
            pairs = self.dataset.demo(task, int(candidates[chosen]))
        else:  # a demo of one of the extra datasets, counted in order
            chosen -= len(candidates)
            while chosen >= extra[source]:
                chosen, source = chosen - extra[source], source + 1
            pairs = self.extra_pairs[source].demo(task, chosen)
            source += 1
        steps = self.rng.choice(pairs.steps, self.pairs_per_task,
                                replace=pairs.steps < self.pairs_per_task)
        return {"task": task_index, "demo_index": demo.index, "pair_index": pairs.index,
                "pair_source": source,
                "block_mask": demo.block_mask[0].astype(bool), "demo_blocks": demo.blocks,
                "demo_gripper": demo.gripper, "stage_ends": demo.stage_ends,
                "obs_blocks": pairs.blocks[steps], "obs_gripper": pairs.gripper[steps],
                "obs_step": steps.astype(np.int64), "labels": pairs.labels[steps]}


def holdout_split(dataset: DemoDataset, every: int
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Split each task's demos into training and held-out positions.

    Every ``every``-th demo of a task (positions ``every - 1``, ``2 * every - 1``, ...) is held
    out, so a dataset extended with more demos per task keeps its earlier split. ``every`` < 2
    holds nothing out. Returns ``(train, held_out)``: per task, int64 demo positions.
    """
    train: dict[str, np.ndarray] = {}
    held_out: dict[str, np.ndarray] = {}
    for task in dataset.tasks:
        positions = np.arange(dataset.num_demos(task), dtype=np.int64)
        chosen = (positions % every == every - 1) if every >= 2 else np.zeros(len(positions), bool)
        train[task], held_out[task] = positions[~chosen], positions[chosen]
    return train, held_out


def _pad(arrays: list[np.ndarray], length: int, fill: float = 0) -> np.ndarray:
    """Stack arrays along a new axis 0, padding axis 0 of each to ``length`` with ``fill``."""
    out = np.full((len(arrays), length, *arrays[0].shape[1:]), fill, dtype=arrays[0].dtype)
    for row, array in enumerate(arrays):
        out[row, : len(array)] = array
    return out


def _collate(items: list[dict]) -> Batch:
    lengths = np.array([len(item["demo_blocks"]) for item in items], dtype=np.int64)
    stages = np.array([len(item["stage_ends"]) for item in items], dtype=np.int64)
    longest = int(lengths.max())
    return Batch(
        task=np.array([item["task"] for item in items], dtype=np.int64),
        demo_index=np.array([item["demo_index"] for item in items], dtype=np.int64),
        pair_index=np.array([item["pair_index"] for item in items], dtype=np.int64),
        pair_source=np.array([item["pair_source"] for item in items], dtype=np.int64),
        block_mask=np.stack([item["block_mask"] for item in items]),
        demo_blocks=_pad([item["demo_blocks"] for item in items], longest),
        demo_gripper=_pad([item["demo_gripper"] for item in items], longest),
        demo_mask=np.arange(longest)[None, :] < lengths[:, None],
        demo_length=lengths,
        stage_ends=_pad([item["stage_ends"] for item in items], int(stages.max()), fill=-1),
        num_stages=stages,
        obs_blocks=np.stack([item["obs_blocks"] for item in items]),
        obs_gripper=np.stack([item["obs_gripper"] for item in items]),
        obs_step=np.stack([item["obs_step"] for item in items]),
        labels=np.stack([item["labels"] for item in items]),
    )
