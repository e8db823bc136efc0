"""Append-only datasets in the same format, for data collected during training (DAgger).

``create_aggregate`` makes an empty dataset of kind ``"aggregate"``; ``append_shard`` writes a list
of ``Demo``s of one task as a new shard (atomically) and then adds its entry to the manifest
(atomically). A crash between the two leaves an unlisted shard file that the next
``append_shard`` overwrites, so a reader never sees half a shard. Demo indices continue per task;
``success`` may be false (a learner's rollout labelled by the expert); ``PairSampler`` conditions
only on successful demos and draws pairs from all of them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from imitate.data import format as fmt

logger = logging.getLogger(__name__)


def create_aggregate(root: Path, metadata: Mapping[str, Any]) -> None:
    """Create an empty aggregate dataset at ``root`` (a new or empty folder).

    ``metadata`` is stored in the manifest (for example the env id and kwargs, suite and expert
    versions, and the training run it belongs to). Raises ``DatasetError`` if ``root`` is in use.
    """
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise fmt.DatasetError(f"{root} exists and is not empty")
    (root / fmt.SHARD_DIR).mkdir(parents=True, exist_ok=True)
    fmt.save_manifest(root, {"format": fmt.FORMAT_NAME, "format_version": fmt.FORMAT_VERSION,
                             "kind": "aggregate", **dict(metadata), "complete": True,
                             "shards": []})


def append_shard(root: Path, demos: Sequence[fmt.Demo], attempts: int | None = None,
                 header: Mapping[str, Any] | None = None) -> fmt.ShardEntry:
    """Add ``demos`` (all of one task) as one new shard of the aggregate at ``root``.

    Their ``index`` fields are ignored: they are numbered after the task's last demo. Returns the
    manifest entry. ``attempts`` defaults to ``len(demos)``; ``header`` adds fields to the
    shard's ``shard.json`` (for example the DAgger round).
    """
    root = Path(root)
    manifest = fmt.load_manifest(root)
    if manifest.get("kind") != "aggregate":
        raise fmt.DatasetError(f"{root} is a {manifest.get('kind')!r} dataset, not an aggregate")
    if not demos or len({demo.task for demo in demos}) != 1:
        raise ValueError("append_shard needs at least one demo, all of the same task")
    task = demos[0].task
    entries = fmt.shard_entries(manifest)
    tasks = list(dict.fromkeys(entry.task for entry in entries))
    task_index = tasks.index(task) if task in tasks else len(tasks)
    first = max((e.first_demo + e.num_demos for e in entries if e.task == task), default=0)
    numbered = [fmt.Demo(**{**vars(demo), "index": first + i}) for i, demo in enumerate(demos)]
    file = f"{fmt.SHARD_DIR}/a{len(entries):06d}.npz"
    shard_header = {**dict(header or {}), "task": task, "task_index": task_index,
                    "shard_index": len(entries), "first_demo": first, "num_demos": len(demos)}
    size, digest = fmt.write_shard(root / file, shard_header, numbered)
    entry = fmt.ShardEntry(
        file=file, task=task, task_index=task_index, shard_index=len(entries), first_demo=first,
        num_demos=len(demos), steps=sum(d.steps for d in numbered),
        attempts=len(demos) if attempts is None else attempts,
        failed=tuple(d.index for d in numbered if not d.success), bytes=size, sha256=digest)
    manifest["shards"] = [e.to_json() for e in entries] + [entry.to_json()]
    fmt.save_manifest(root, manifest)
    logger.debug("appended %s: %d demos of %r", file, len(demos), task)
    return entry
