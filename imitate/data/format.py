"""The on-disk dataset format, version 1 (``demos/README.md`` is the reference for users).

A dataset is a folder::

    manifest.json              metadata, parameters and one entry per shard (sha256, size, counts)
    shards/t000-s0000.npz      demos 0..S-1 of task 0, S = shard size
    shards/t000-s0001.npz      ...

A shard is a zip file (a ``.npz``: ``numpy.load`` opens it) whose first member
``shard.json`` describes the shard and each demo, followed by one ``.npy`` member per demo and
array (``d000012/blocks.npy``), deflated at level 1. The zip's central directory lets a reader
inflate one demo without reading the rest of its shard. Files are byte-deterministic: fixed member
order, fixed timestamps (1980-01-01) and permissions, so the same demos give the same sha256.

Every file is written atomically (``imitate.files``: a temporary file in the same folder,
``fsync``, ``rename``, ``fsync`` of the folder), so a reader sees a complete shard or none.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from imitate.files import atomic_file, atomic_write_bytes, sha256_file

FORMAT_NAME = "imitate-demos"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
SHARD_DIR = "shards"
SHARD_HEADER = "shard.json"
#: The lock (``imitate.files.folder_lock``) ``demos generate`` holds on a dataset while writing.
GENERATE_LOCK = ".generate.lock"
#: Zip member timestamp (the earliest a zip can hold): files do not depend on when they were made.
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
_ZIP_LEVEL = 1

#: Per-demo arrays: name -> (dtype, trailing shape, rows). ``T`` is the number of actions; the
#: observation arrays have ``T + 1`` rows (the last is the state after the last action).
ARRAYS: dict[str, tuple[np.dtype, tuple[int, ...], str]] = {
    "blocks": (np.dtype(np.float32), (10, 3), "T+1"),
    "block_mask": (np.dtype(np.int8), (10,), "T+1"),
    "gripper": (np.dtype(np.float32), (2,), "T+1"),
    "stages": (np.dtype(np.int8), (), "T+1"),
    "actions": (np.dtype(np.float32), (4,), "T"),
    "labels": (np.dtype(np.float32), (4,), "T"),
}


class DatasetError(ValueError):
    """A dataset that cannot be used as asked: missing, not a dataset, conflicting, corrupt."""


class CorruptShardError(DatasetError):
    """A shard whose bytes do not match the manifest (truncated, altered) or that is missing."""


@dataclass(frozen=True)
class Demo:
    """One demonstration (or labelled rollout) of ``task``.

    Arrays (``T`` = number of actions; observation ``t`` is the state before action ``t``):

    - ``blocks`` (T+1, 10, 3) float32: block centres minus grasp point (m), 0 for padding slots.
    - ``block_mask`` (T+1, 10) int8: 1 for the task's blocks.
    - ``gripper`` (T+1, 2) float32: gripper one-hot, (1, 0) open, (0, 1) closed.
    - ``stages`` (T+1,) int8: stages complete (``info["stage"]``) at each observation.
    - ``actions`` (T, 4) float32: executed actions (clean + noise): (dx, dy, dz) m, gripper.
    - ``labels`` (T, 4) float32: the clean expert action at each observation (training target).
    - ``stage_ends`` (num_stages,) int64: per stage, the observation at which it was first
      complete, in build order (``stage_ends()``); -1 if never. ``stage_ends[-1] == T`` for a
      successful demo (the episode ends on success).

    Scalars: ``index`` (demo index within the task), ``success``, ``env_seed`` and ``noise_seed``
    (replay: ``env.reset(seed=env_seed)`` and ``np.random.default_rng(noise_seed)``), ``attempt``.
    """

    task: str
    index: int
    blocks: np.ndarray
    block_mask: np.ndarray
    gripper: np.ndarray
    stages: np.ndarray
    actions: np.ndarray
    labels: np.ndarray
    stage_ends: np.ndarray
    success: bool
    env_seed: int
    noise_seed: int
    attempt: int

    def __post_init__(self) -> None:
        steps = len(self.actions)
        for name, (dtype, shape, rows) in ARRAYS.items():
            array = getattr(self, name)
            expected = (steps + 1 if rows == "T+1" else steps, *shape)
            if array.dtype != dtype or array.shape != expected:
                raise ValueError(f"demo {self.index} of {self.task!r}: {name} is "
                                 f"{array.dtype}{array.shape}, expected {dtype}{expected}")

    @property
    def steps(self) -> int:
        """Number of actions ``T``."""
        return len(self.actions)

    def header(self) -> dict[str, Any]:
        """The demo's entry in its shard's ``shard.json``."""
        return {"index": self.index, "steps": self.steps, "success": self.success,
                "env_seed": self.env_seed, "noise_seed": self.noise_seed,
                "attempt": self.attempt, "stage_ends": [int(x) for x in self.stage_ends]}


def stage_ends(stages: np.ndarray, num_stages: int) -> np.ndarray:
    """(num_stages,) int64: the frame at which each stage was first complete, in build order.

    ``ends[k]`` is the first index ``t >= ends[k - 1]`` with ``stages[t] >= k + 1``, or -1 (and -1
    for every later stage) if there is none. Counting from the previous stage's end ignores
    transient drops of the count (a lower block jostled while the next one is placed on it), so
    the frame shows the layout right after stage ``k`` (paper section 5.1, "snapshot").

    >>> stage_ends(np.array([0, 1, 0, 1, 0, 2]), 2).tolist()
    [1, 5]
    """
    stages = np.asarray(stages)
    ends = np.full(num_stages, -1, dtype=np.int64)
    start = 0
    for k in range(num_stages):
        reached = np.flatnonzero(stages[start:] >= k + 1)
        if len(reached) == 0:
            break
        start = ends[k] = start + reached[0]
    return ends


@dataclass(frozen=True)
class ShardEntry:
    """A shard's entry in ``manifest.json``.

    ``file`` is relative to the dataset folder; demos ``first_demo .. first_demo + num_demos - 1``
    of task ``task`` (``task_index`` into the manifest's task list); ``steps`` sums their actions;
    ``attempts`` counts every rollout made for them (``attempts - num_demos`` were discarded);
    ``failed`` lists the demo indices whose ``success`` is false (empty for ``generate``).
    """

    file: str
    task: str
    task_index: int
    shard_index: int
    first_demo: int
    num_demos: int
    steps: int
    attempts: int
    failed: tuple[int, ...]
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed"] = list(self.failed)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ShardEntry:
        names = {f.name for f in fields(cls)}
        missing = names - set(data)
        if missing:
            raise DatasetError(f"manifest shard entry lacks {', '.join(sorted(missing))}")
        values = {name: data[name] for name in names}
        values["failed"] = tuple(values["failed"])
        return cls(**values)


def shard_file(task_index: int, shard_index: int) -> str:
    """The shard's path relative to the dataset folder."""
    return f"{SHARD_DIR}/t{task_index:03d}-s{shard_index:04d}.npz"


# --- shards ------------------------------------------------------------------------------------
def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _member_name(index: int, array: str) -> str:
    return f"d{index:06d}/{array}.npy"


def write_shard(path: Path, header: Mapping[str, Any], demos: Iterable[Demo]) -> tuple[int, str]:
    """Write ``demos`` as one shard at ``path`` atomically; return its (size in bytes, sha256).

    ``header`` holds the shard-level fields of ``shard.json``; the per-demo list is added here.
    """
    demos = list(demos)
    content = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **header,
               "demos": [demo.header() for demo in demos]}
    with atomic_file(path) as tmp:
        with open(tmp, "wb") as handle, zipfile.ZipFile(handle, "w") as archive:
            archive.writestr(_member(SHARD_HEADER), json.dumps(content, sort_keys=True),
                             compresslevel=_ZIP_LEVEL)
            for demo in demos:
                for name in ARRAYS:
                    archive.writestr(_member(_member_name(demo.index, name)),
                                     _npy_bytes(getattr(demo, name)), compresslevel=_ZIP_LEVEL)
        size, digest = tmp.stat().st_size, sha256_file(tmp)
    return size, digest


class ShardReader:
    """Random access to the demos of one shard; reads only the members it is asked for.

    Raises ``CorruptShardError`` when the file is missing or not a readable shard, and when a
    member fails the zip's CRC-32 check on reading.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self._archive = zipfile.ZipFile(self.path)
            self.header: dict[str, Any] = json.loads(self._archive.read(SHARD_HEADER))
        except FileNotFoundError as error:
            raise CorruptShardError(f"shard {self.path} is missing") from error
        except (OSError, zipfile.BadZipFile, KeyError, ValueError) as error:
            raise CorruptShardError(f"shard {self.path} is unreadable: {error}") from error
        self.demos: dict[int, dict[str, Any]] = {d["index"]: d for d in self.header["demos"]}

    def close(self) -> None:
        self._archive.close()

    def __enter__(self) -> ShardReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Demo]:
        for index in self.demos:
            yield self.demo(index)

    def array(self, index: int, name: str) -> np.ndarray:
        """One array of demo ``index`` (see ``Demo`` for names, shapes and dtypes)."""
        try:
            data = self._archive.read(_member_name(index, name))
            return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
        except (OSError, zipfile.BadZipFile, KeyError, ValueError) as error:
            raise CorruptShardError(f"shard {self.path}: cannot read {name} of demo {index}: "
                                    f"{error}") from error

    def demo(self, index: int) -> Demo:
        """Demo ``index`` (its index within the task), every array read and CRC-checked."""
        if index not in self.demos:
            raise KeyError(f"demo {index} is not in shard {self.path}")
        meta = self.demos[index]
        arrays = {name: self.array(index, name) for name in ARRAYS}
        return Demo(task=self.header["task"], index=index, success=bool(meta["success"]),
                    env_seed=int(meta["env_seed"]), noise_seed=int(meta["noise_seed"]),
                    attempt=int(meta["attempt"]),
                    stage_ends=np.asarray(meta["stage_ends"], dtype=np.int64), **arrays)


# --- manifest ----------------------------------------------------------------------------------
def manifest_path(root: Path) -> Path:
    return Path(root) / MANIFEST_NAME


def save_manifest(root: Path, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest.json`` atomically (sorted keys: same content, same bytes)."""
    text = json.dumps(manifest, indent=1, sort_keys=True) + "\n"
    atomic_write_bytes(manifest_path(root), text.encode("utf-8"))


def load_manifest(root: Path) -> dict[str, Any]:
    """Read and check ``root/manifest.json``.

    Raises ``DatasetError`` (one line) when the folder does not exist, holds no manifest, the
    manifest is not JSON or not of this format, or its format version is not supported.
    """
    root = Path(root)
    if root.is_file():
        raise DatasetError(f"{root} is a file, not a dataset folder: pass the folder that holds "
                           f"its {MANIFEST_NAME}")
    if not root.is_dir():
        raise DatasetError(f"{root}: no such dataset folder")
    path = manifest_path(root)
    if not path.is_file():
        raise DatasetError(f"{root} is not a dataset: it has no {MANIFEST_NAME}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path} is unreadable: {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise DatasetError(f"{root} is not a dataset: {MANIFEST_NAME} is not an "
                           f"{FORMAT_NAME} manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise DatasetError(f"{root}: dataset format version {version!r} is not supported "
                           f"(this imitate reads version {FORMAT_VERSION})")
    check_manifest_fields(path, manifest)
    return manifest


#: Shard entry fields that are counts or indices (integers >= 0).
_COUNT_FIELDS = ("task_index", "shard_index", "first_demo", "num_demos", "steps", "attempts",
                 "bytes")


def check_manifest_fields(path: Path, manifest: Mapping[str, Any]) -> None:
    """Raise ``DatasetError`` naming ``path`` and the first malformed field: the shard list and
    each entry's types, ranges and file (a ``.npz`` inside the shard folder)."""
    def bad(where: str, expected: str, value: object) -> DatasetError:
        return DatasetError(f"{path}: {where} must be {expected}, got {value!r}; the manifest "
                            "is damaged (regenerate the dataset, or restore the file)")

    if not isinstance(manifest.get("complete", False), bool):
        raise bad("complete", "true or false", manifest.get("complete"))
    shards = manifest.get("shards", [])
    if not isinstance(shards, list):
        raise bad("shards", "a list", shards)
    for index, entry in enumerate(shards):
        where = f"shards[{index}]"
        if not isinstance(entry, dict):
            raise bad(where, "an object", entry)
        for name in (f.name for f in fields(ShardEntry)):
            if name not in entry:
                raise DatasetError(f"{path}: {where} has no {name!r}; the manifest is damaged "
                                   "(regenerate the dataset, or restore the file)")
        for name in _COUNT_FIELDS:
            value = entry[name]
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise bad(f"{where}.{name}", "an integer >= 0", value)
        for name in ("file", "task", "sha256"):
            if not isinstance(entry[name], str):
                raise bad(f"{where}.{name}", "a string", entry[name])
        file = Path(entry["file"])
        if file.is_absolute() or ".." in file.parts or file.parts[:1] != (SHARD_DIR,) \
                or file.suffix != ".npz":
            raise bad(f"{where}.file", f"a .npz file inside {SHARD_DIR}/", entry["file"])
        if len(entry["sha256"]) != 64 or any(c not in "0123456789abcdef"
                                             for c in entry["sha256"]):
            raise bad(f"{where}.sha256", "64 hexadecimal digits", entry["sha256"])
        failed = entry["failed"]
        if not isinstance(failed, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in failed):
            raise bad(f"{where}.failed", "a list of demo indices", failed)


def shard_entries(manifest: Mapping[str, Any]) -> list[ShardEntry]:
    """The manifest's shard entries, in file order."""
    return [ShardEntry.from_json(entry) for entry in manifest.get("shards", [])]
