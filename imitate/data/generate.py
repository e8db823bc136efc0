"""``imitate demos generate``: record successful expert demonstrations into a sharded dataset.

Work is split per demo: worker processes (spawn context, each owning one ``BlockStack-v0`` env)
record demos; the parent collects them into shards of ``shard_size`` demos, writes each shard
atomically as soon as it is complete and then rewrites the manifest atomically. A demo depends
only on ``(seed, stream, task, index)`` (``imitate.data.seeds``), never on which worker made it or
when, so an interrupted run that is resumed produces the same bytes as an uninterrupted one.

Each demo is rolled out until one attempt succeeds; attempt ``a`` of demo ``i`` uses the seeds of
``(stream, task, i, a)``. Unsuccessful attempts are discarded and counted. After ``max_attempts``
failures in a row the run stops with an error (finished shards are kept).
"""

from __future__ import annotations

import contextlib
import logging
import math
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

import envs
from envs.expert import DEFAULT_NOISE_STD, EXPERT_VERSION
from envs.suite import SUITE_VERSION
from imitate import __version__
from imitate.data import format as fmt
from imitate.data.record import (
    DemoJob,
    DemoResult,
    demo_runner,
    env_kwargs,
)
from imitate.data.seeds import SPLIT_STREAMS, Stream
from imitate.files import folder_lock, remove_temporaries, sha256_file
from imitate.options import require_positive_ints
from imitate.workers import check_backend

logger = logging.getLogger(__name__)

#: File holding the dataset's writer lock while ``generate`` runs.
LOCK_NAME = fmt.GENERATE_LOCK
DEFAULT_SHARD_SIZE = 50
DEFAULT_MAX_ATTEMPTS = 50


@dataclass(frozen=True)
class GenerateConfig:
    """Parameters of ``imitate demos generate``; validated on construction (``ValueError``).

    Attributes:
        out: dataset folder (created if missing; resumed if it holds the same dataset).
        per_task: successful demos to record per task (>= 1).
        split: ``"train"`` draws training-demo seeds and defaults to the suite's training tasks;
            ``"test"`` draws evaluation-demo seeds (disjoint) and defaults to the test tasks.
        tasks: layouts to use instead of the split's suite tasks (any valid layout).
        workers: worker processes (>= 1; with the ``process`` backend 1 records in this process).
        seed: root seed (>= 0) of every demo's seeds.
        noise: std of the Gaussian noise added to executed displacements (m per step, >= 0);
            ``None`` means the expert module's default. Labels stay clean.
        shard_size: demos per shard file (>= 1): the unit of atomic writes and of resume.
        max_attempts: rollouts allowed per demo before the run gives up (>= 1). Not part of the
            dataset's identity: it changes no recorded demo, only when the run stops.
        backend: where the workers run: ``process`` (this machine's spawn pool) or ``ray`` (Ray
            actors; ``imitate.workers``). Like ``workers``, not part of the dataset's identity:
            both give the same bytes.
        ray_address: the Ray cluster to join (``auto``: the running one; ``HOST:PORT``);
            None starts a local Ray instance. Used by the ``ray`` backend only.
    """

    out: Path
    per_task: int
    split: str = "train"
    tasks: tuple[str, ...] | None = None
    workers: int = 1
    seed: int = 0
    noise: float | None = None
    shard_size: int = DEFAULT_SHARD_SIZE
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backend: str = "process"
    ray_address: str | None = None
    layouts: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        if self.split not in SPLIT_STREAMS:
            raise ValueError(f"unknown split {self.split!r}; choose train or test")
        require_positive_ints(self, ("per_task", "workers", "shard_size", "max_attempts"))
        check_backend(self.backend, self.ray_address)
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"--seed must be a non-negative integer, got {self.seed!r}")
        noise = DEFAULT_NOISE_STD if self.noise is None else float(self.noise)
        if not math.isfinite(noise) or noise < 0:
            raise ValueError(f"--noise must be a finite std >= 0 (m per step), got {self.noise!r}")
        object.__setattr__(self, "noise", noise)
        if self.tasks is None:
            layouts = tuple(task.layout for task in envs.load_suite().split(self.split))
        else:
            layouts = tuple(envs.parse_task(text).layout for text in self.tasks)
            if not layouts:
                raise ValueError("--tasks lists no task")
            repeated = sorted({x for x in layouts if layouts.count(x) > 1})
            if repeated:
                raise ValueError(f"--tasks lists {repeated[0]!r} more than once")
        object.__setattr__(self, "layouts", layouts)

    @property
    def stream(self) -> Stream:
        return SPLIT_STREAMS[self.split]

    def identity(self) -> dict[str, Any]:
        """Everything that determines the recorded bytes: must match to resume a dataset."""
        return {
            "params": {"split": self.split, "stream": self.stream.name.lower(),
                       "tasks": list(self.layouts), "tasks_from": "suite" if self.tasks is None
                       else "option", "per_task": self.per_task, "seed": self.seed,
                       "noise": self.noise, "shard_size": self.shard_size},
            "env": {"id": envs.ENV_ID, "kwargs": env_kwargs()},
            "suite_version": SUITE_VERSION,
            "expert_version": EXPERT_VERSION,
        }

    def command(self) -> str:
        """The canonical command line that makes this dataset (``workers``, ``backend`` and
        ``ray_address`` left out: they change the speed, not the bytes)."""
        parts = ["imitate", "demos", "generate", "--out", str(self.out), "--split", self.split]
        if self.tasks is not None:
            parts += ["--tasks", ",".join(self.layouts)]
        parts += ["--per-task", str(self.per_task), "--seed", str(self.seed),
                  "--noise", repr(self.noise), "--shard-size", str(self.shard_size)]
        return shlex.join(parts)


# --- the dataset -------------------------------------------------------------------------------
class ShardSpec(NamedTuple):
    """A planned shard: demos ``first_demo .. first_demo + num_demos - 1`` of one task."""

    task_index: int
    layout: str
    shard_index: int
    first_demo: int
    num_demos: int

    @property
    def file(self) -> str:
        return fmt.shard_file(self.task_index, self.shard_index)


def plan_shards(layouts: tuple[str, ...] | list[str], per_task: int,
                shard_size: int) -> list[ShardSpec]:
    """Every shard of a dataset, in order (task by task, ``ceil(per_task / shard_size)`` each)."""
    return [
        ShardSpec(t, layout, s, s * shard_size, min(shard_size, per_task - s * shard_size))
        for t, layout in enumerate(layouts)
        for s in range(math.ceil(per_task / shard_size))
    ]


@dataclass
class GenerateSummary:
    """What one ``generate`` call did. Times in seconds; ``expert_seconds`` and ``env_seconds``
    are summed over workers."""

    out: Path
    total_demos: int
    kept_demos: int
    new_demos: int
    discarded: int
    new_steps: int
    shards_written: int
    shards_kept: int
    seconds: float
    expert_seconds: float = 0.0
    env_seconds: float = 0.0


class Progress(NamedTuple):
    """Reported after every recorded demo: ``done`` of ``total`` demos to make in this call."""

    done: int
    total: int
    discarded: int
    steps: int


def _differing(stored: Any, wanted: Any, prefix: str = "") -> str | None:
    """The first dotted key whose value differs between two JSON-like objects, or None."""
    if isinstance(stored, dict) and isinstance(wanted, dict):
        for key in sorted(set(stored) | set(wanted)):
            found = _differing(stored.get(key), wanted.get(key), f"{prefix}{key}.")
            if found:
                return found
        return None
    return None if stored == wanted else prefix.rstrip(".")


def _describe(key: str, value: Any) -> str:
    if key == "params.tasks":
        return f"{len(value)} tasks ({', '.join(value[:3])}{', ...' if len(value) > 3 else ''})"
    return repr(value)


def open_dataset(config: GenerateConfig) -> dict[str, Any]:
    """The manifest to write into: a new one, or the existing one if its identity matches.

    Raises ``DatasetError`` naming the first differing parameter when ``config.out`` holds a
    dataset made with other parameters, or when it is a non-empty folder that is not a dataset.
    """
    out = config.out
    identity = config.identity()
    if fmt.manifest_path(out).exists():
        manifest = fmt.load_manifest(out)
        if manifest.get("kind") != "generate":
            raise fmt.DatasetError(f"{out} holds a {manifest.get('kind')!r} dataset; "
                                   "generate cannot add to it")
        stored = {key: manifest.get(key) for key in identity}
        key = _differing(stored, identity)
        if key is not None:
            stored_value = _lookup(stored, key)
            wanted_value = _lookup(identity, key)
            raise fmt.DatasetError(
                f"{out} holds a dataset made with {key.removeprefix('params.')} = "
                f"{_describe(key, stored_value)}, not {_describe(key, wanted_value)}; "
                "re-run with its parameters to resume it, or choose another --out")
        return manifest
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise fmt.DatasetError(f"{out} exists and is not a dataset; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    manifest = {"format": fmt.FORMAT_NAME, "format_version": fmt.FORMAT_VERSION,
                "kind": "generate", **identity, "command": config.command(),
                "max_attempts": config.max_attempts,
                "software": _software(), "complete": False, "shards": []}
    fmt.save_manifest(out, manifest)
    (out / fmt.SHARD_DIR).mkdir(exist_ok=True)
    return manifest


def _lookup(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _software() -> dict[str, str]:
    """Versions of what recorded the data (informative; not compared on resume)."""
    return {"imitate": __version__, "numpy": np.__version__, "pybullet": version("pybullet"),
            "python": sys.version.split()[0]}


def _kept_entries(config: GenerateConfig, manifest: dict[str, Any]) -> dict[str, fmt.ShardEntry]:
    """Manifest entries whose file exists with the recorded size and sha256 (others are made
    again)."""
    kept = {}
    for entry in fmt.shard_entries(manifest):
        path = config.out / entry.file
        if (path.is_file() and path.stat().st_size == entry.bytes
                and sha256_file(path) == entry.sha256):
            kept[entry.file] = entry
        else:
            logger.warning("shard %s is missing, truncated or altered; making it again",
                           entry.file)
    return kept


def _writer_lock(out: Path) -> contextlib.AbstractContextManager[None]:
    """Hold an exclusive lock on the dataset while writing (released if the process dies)."""
    return folder_lock(out, LOCK_NAME, "demos generate run")


def generate(config: GenerateConfig,
             on_progress: Callable[[Progress], None] | None = None) -> GenerateSummary:
    """Make (or complete) the dataset ``config`` describes; return what was done.

    Raises ``DatasetError`` on a conflicting dataset and when a demo exhausts its attempts.
    """
    start = time.perf_counter()
    manifest = open_dataset(config)
    with _writer_lock(config.out):
        (config.out / fmt.SHARD_DIR).mkdir(exist_ok=True)
        remove_temporaries(config.out / fmt.SHARD_DIR)
        remove_temporaries(config.out)
        plan = plan_shards(config.layouts, config.per_task, config.shard_size)
        entries = _kept_entries(config, manifest)
        todo = [spec for spec in plan if spec.file not in entries]
        summary = GenerateSummary(
            out=config.out, total_demos=sum(s.num_demos for s in plan),
            kept_demos=sum(e.num_demos for e in entries.values()), new_demos=0, discarded=0,
            new_steps=0, shards_written=0, shards_kept=len(entries), seconds=0.0)
        logger.info("%s: %d shards kept, %d to make", config.out, len(entries), len(todo))
        if todo:
            _make_shards(config, manifest, plan, entries, todo, summary, on_progress)
        _save(config.out, manifest, plan, entries)
    summary.seconds = time.perf_counter() - start
    return summary


def _make_shards(config: GenerateConfig, manifest: dict[str, Any], plan: list[ShardSpec],
                 entries: dict[str, fmt.ShardEntry], todo: list[ShardSpec],
                 summary: GenerateSummary,
                 on_progress: Callable[[Progress], None] | None) -> None:
    """Record the demos of ``todo`` and write each shard as soon as all its demos are in."""
    jobs = [DemoJob(spec.task_index, spec.layout, spec.first_demo + i, int(config.stream),
                    config.seed, float(config.noise), config.max_attempts)
            for spec in todo for i in range(spec.num_demos)]
    by_key = {(spec.task_index, spec.shard_index): spec for spec in todo}
    pending: dict[tuple[int, int], list[DemoResult]] = {}
    with demo_runner(min(config.workers, len(jobs)), backend=config.backend,
                     ray_address=config.ray_address) as run:
        for done, result in enumerate(run(jobs), start=1):
            job = result.job
            if result.demo is None:
                raise fmt.DatasetError(
                    f"task {job.layout!r}, demo {job.index}: the expert failed "
                    f"{job.max_attempts} attempts in a row; finished shards are kept "
                    "(raise --max-attempts, or leave the task out)")
            summary.new_demos += 1
            summary.discarded += result.attempts - 1
            summary.new_steps += result.demo.steps
            summary.expert_seconds += result.timing.actor
            summary.env_seconds += result.timing.env
            key = (job.task_index, job.index // config.shard_size)
            pending.setdefault(key, []).append(result)
            spec = by_key[key]
            if len(pending[key]) == spec.num_demos:
                entry = _write(config, spec, pending.pop(key))
                entries[entry.file] = entry
                summary.shards_written += 1
                _save(config.out, manifest, plan, entries)
            if on_progress is not None:
                on_progress(Progress(done, len(jobs), summary.discarded, summary.new_steps))


def _write(config: GenerateConfig, spec: ShardSpec, results: list[DemoResult]) -> fmt.ShardEntry:
    results = sorted(results, key=lambda r: r.job.index)
    demos = [r.demo for r in results if r.demo is not None]
    header = {"task": spec.layout, "task_index": spec.task_index,
              "shard_index": spec.shard_index, "first_demo": spec.first_demo,
              "num_demos": spec.num_demos, "stream": config.stream.name.lower(),
              "seed": config.seed, "noise": config.noise}
    size, digest = fmt.write_shard(config.out / spec.file, header, demos)
    logger.debug("wrote %s (%d bytes)", spec.file, size)
    return fmt.ShardEntry(
        file=spec.file, task=spec.layout, task_index=spec.task_index,
        shard_index=spec.shard_index, first_demo=spec.first_demo, num_demos=spec.num_demos,
        steps=sum(d.steps for d in demos), attempts=sum(r.attempts for r in results),
        failed=tuple(d.index for d in demos if not d.success), bytes=size, sha256=digest)


def _save(out: Path, manifest: dict[str, Any], plan: list[ShardSpec],
          entries: dict[str, fmt.ShardEntry]) -> None:
    """Rewrite the manifest with ``entries`` in plan order."""
    manifest["shards"] = [entries[s.file].to_json() for s in plan if s.file in entries]
    manifest["complete"] = len(manifest["shards"]) == len(plan)
    fmt.save_manifest(out, manifest)
