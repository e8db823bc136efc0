"""``imitate demos verify`` and ``imitate demos info``: check a dataset and describe it."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imitate.data import format as fmt
from imitate.data.generate import plan_shards
from imitate.files import sha256_file

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardProblem:
    """A shard that fails verification. ``kind``: ``"missing"`` (listed, no file),
    ``"truncated"`` (shorter than recorded), ``"altered"`` (other size or sha256),
    ``"not generated"`` (planned by the parameters, not in the manifest yet)."""

    file: str
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.file}: {self.kind} ({self.detail})"


@dataclass
class VerifyReport:
    """Result of ``verify_dataset``: ``checked`` shards read, ``bytes`` hashed, ``problems``."""

    root: Path
    checked: int = 0
    bytes: int = 0
    problems: list[ShardProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_shard(root: Path, entry: fmt.ShardEntry) -> ShardProblem | None:
    """Compare one shard file with its manifest entry (size, then sha256 of every byte)."""
    path = Path(root) / entry.file
    if not path.is_file():
        return ShardProblem(entry.file, "missing", "listed in the manifest, no such file")
    size = path.stat().st_size
    if size < entry.bytes:
        return ShardProblem(entry.file, "truncated", f"{size} of {entry.bytes} bytes")
    if size != entry.bytes:
        return ShardProblem(entry.file, "altered", f"{size} bytes, expected {entry.bytes}")
    digest = sha256_file(path)
    if digest != entry.sha256:
        return ShardProblem(entry.file, "altered",
                            f"sha256 {digest[:12]}..., expected {entry.sha256[:12]}...")
    return None


def verify_dataset(root: Path) -> VerifyReport:
    """Check every shard of the dataset at ``root`` against the manifest.

    Also reports planned shards that are not generated yet (an interrupted ``generate``).
    Raises ``DatasetError`` when ``root`` is not a readable dataset.
    """
    root = Path(root)
    manifest = fmt.load_manifest(root)
    report = VerifyReport(root)
    entries = fmt.shard_entries(manifest)
    for entry in entries:
        problem = check_shard(root, entry)
        report.checked += 1
        if problem is None:
            report.bytes += entry.bytes
        else:
            report.problems.append(problem)
    listed = {entry.file for entry in entries}
    for spec in _planned(manifest):
        if spec.file not in listed:
            report.problems.append(ShardProblem(
                spec.file, "not generated",
                f"demos {spec.first_demo}-{spec.first_demo + spec.num_demos - 1} of "
                f"{spec.layout!r}; re-run generate to complete"))
    return report


def _planned(manifest: dict[str, Any]) -> list:
    """The shards a ``generate`` dataset's parameters call for (none for other kinds)."""
    if manifest.get("kind") != "generate":
        return []
    params = manifest["params"]
    return plan_shards(params["tasks"], params["per_task"], params["shard_size"])


@dataclass(frozen=True)
class TaskInfo:
    """Per task: demos recorded, actions summed over them, rollouts made (incl. discarded)."""

    layout: str
    demos: int
    steps: int
    attempts: int


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's description (``imitate demos info``); sizes in bytes."""

    root: Path
    manifest: dict[str, Any]
    tasks: list[TaskInfo]
    shards: int
    planned_shards: int
    shard_bytes: int
    disk_bytes: int
    #: Shards missing or not of their recorded size: "FILE: why" (sizes only; ``verify_dataset``
    #: checks checksums).
    damaged: list[str] = field(default_factory=list)

    @property
    def demos(self) -> int:
        return sum(task.demos for task in self.tasks)

    @property
    def steps(self) -> int:
        return sum(task.steps for task in self.tasks)

    @property
    def discarded(self) -> int:
        return sum(task.attempts - task.demos for task in self.tasks)


def dataset_info(root: Path) -> DatasetInfo:
    """Summarise the dataset at ``root`` from its manifest (no shard is read)."""
    root = Path(root)
    manifest = fmt.load_manifest(root)
    entries = fmt.shard_entries(manifest)
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    order = list(manifest.get("params", {}).get("tasks", []))
    for entry in entries:
        if entry.task not in order:
            order.append(entry.task)
        total = totals[entry.task]
        total[0] += entry.num_demos
        total[1] += entry.steps
        total[2] += entry.attempts
    tasks = [TaskInfo(layout, *totals[layout]) for layout in order]
    disk = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    return DatasetInfo(root=root, manifest=manifest, tasks=tasks, shards=len(entries),
                       planned_shards=len(_planned(manifest)) or len(entries),
                       shard_bytes=sum(e.bytes for e in entries), disk_bytes=disk,
                       damaged=_wrong_sizes(root, entries))


def _wrong_sizes(root: Path, entries: list[fmt.ShardEntry]) -> list[str]:
    """Shards absent or of another size than their manifest entry records (cheap: no read)."""
    damaged = []
    for entry in entries:
        path = root / entry.file
        if not path.is_file():
            damaged.append(f"{entry.file}: missing")
        elif path.stat().st_size != entry.bytes:
            damaged.append(f"{entry.file}: {path.stat().st_size} bytes, the manifest records "
                           f"{entry.bytes}")
    return damaged
