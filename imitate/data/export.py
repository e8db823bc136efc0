"""``imitate demos export``: a demo dataset as a Minari dataset or a robomimic HDF5 file, lossless.

``export_dataset(ExportConfig(...))`` reads the demos through ``DemoDataset`` (each shard's sha256
checked) and hands them to the writer of the chosen format (``imitate.data.export_minari``,
``imitate.data.export_robomimic``); each module also has the reader that loads an export back into
per-demo dicts with the keys of ``Demo`` (``read_minari_export``, ``read_robomimic_export``), so a
round trip can be checked array by array. Minari and h5py are optional (the ``export`` extra) and
imported only when an export or a read runs, so ``import imitate`` stays light.

Field mapping, ``T`` actions per demo (``imitate.data.format.Demo`` -> Minari episode; robomimic
``data/demo_N``):

- ``blocks``, ``block_mask``, ``gripper`` (T+1 rows) -> ``observations[key]``; ``obs/key`` (rows
  0..T-1) and ``next_obs/key`` (rows 1..T).
- ``labels`` (clean expert actions) -> ``actions``; ``actions``.
- ``actions`` (executed, noisy) -> ``infos["executed_action"]`` rows 1..T (row 0, the reset,
  NaN); ``executed_actions``.
- ``stages`` (T+1) -> ``infos["stage"]``; ``stages``.
- ``task`` -> the episode's reset ``options["task"]``; attributes ``task`` and ``env_kwargs``.
- ``env_seed`` -> the episode ``seed``; attribute ``env_seed``.
- ``stage_ends``, ``index``, ``success``, ``noise_seed``, ``attempt`` -> episode metadata;
  attributes (both name ``index`` ``demo_index``).
- the env's rewards and episode ends -> ``rewards``, ``terminations``, ``truncations``;
  ``rewards``, ``dones``.
- held out by ``holdout_split`` -> episode metadata ``held_out``; ``mask/valid`` (the rest in
  ``mask/train``).

Rewards and episode ends are the env's (``envs.stack_env``): reward 1.0 on the step that completes
the layout, else 0.0; ``terminated`` on success or an irrecoverable state (an episode ending before
its horizon), ``truncated`` at the horizon, ``horizon_per_stage * num_stages`` steps.
"""

from __future__ import annotations

import importlib
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import gymnasium
import numpy as np

import envs
from envs import constants
from imitate import __version__
from imitate.data import format as fmt
from imitate.data.loader import DemoDataset, holdout_split
from imitate.files import sha256_file
from imitate.options import require_choices

logger = logging.getLogger(__name__)

FORMATS = ("minari", "robomimic")
#: ``imitate train``'s default ``--holdout-every`` (``TrainConfig.holdout_every``; a test keeps
#: the two equal): an export's validation split is the split training holds out.
DEFAULT_HOLDOUT_EVERY = 20
EXTRA_HINT = "pip install 'imitate-oneshot[export]'"
#: Minari's dataset id rule, ``namespace/name-vN`` (the namespace optional, the version not).
_MINARI_ID = re.compile(r"^(?:[-_\w][-_\w/]*[-_\w]+/)?[-_\w]+?-v\d+$")
#: ``on_progress(done, total)``: demos written so far, of ``total``.
ProgressHook = Callable[[int, int], None]
#: Keys of a per-demo dict returned by the readers: ``Demo``'s fields and the env's signals.
DEMO_KEYS = ("task", "index", "blocks", "block_mask", "gripper", "stages", "actions", "labels",
             "stage_ends", "success", "env_seed", "noise_seed", "attempt")


class ExportError(ValueError):
    """An export that cannot be made as asked: output exists, extra missing, bad option."""


@dataclass(frozen=True)
class ExportConfig:
    """Parameters of ``imitate demos export``; validated on construction (``ValueError``).

    Attributes:
        dataset: the ``imitate demos generate`` dataset folder to export (complete).
        format: ``"minari"`` or ``"robomimic"``.
        out: Minari: the datasets root folder the dataset id is resolved in (default: Minari's,
            ``MINARI_DATASETS_PATH`` or ``~/.minari/datasets``); robomimic: the HDF5 file
            (default: ``DATASET.robomimic.hdf5`` beside the dataset folder).
        name: Minari dataset id, ``namespace/name-vN`` (default:
            ``imitate/blockstack-<dataset folder name>-v0``); Minari only.
        overwrite: replace an existing output instead of refusing.
        holdout_every: every N-th demo of each task is held out (robomimic ``mask/valid``,
            Minari ``held_out``), as ``imitate train --holdout-every N`` does; 0 holds none out.
    """

    dataset: Path
    format: str
    out: Path | None = None
    name: str | None = None
    overwrite: bool = False
    holdout_every: int = DEFAULT_HOLDOUT_EVERY

    def __post_init__(self) -> None:
        object.__setattr__(self, "dataset", Path(self.dataset))
        if self.out is not None:
            object.__setattr__(self, "out", Path(self.out))
        require_choices(self, {"format": FORMATS})
        if self.holdout_every < 0 or self.holdout_every == 1:
            raise ExportError("--holdout-every must be 0 (no validation split) or at least 2, "
                              f"got {self.holdout_every}")
        if self.name is not None and self.format != "minari":
            raise ExportError("--name is the Minari dataset id; a robomimic export is named by "
                              "--out")
        if self.name is not None and not _MINARI_ID.fullmatch(self.name):
            raise ExportError(f"--name {self.name!r} is not a Minari dataset id: use "
                              "namespace/name-vN, e.g. imitate/blockstack-mine-v0")


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: ``path`` (the robomimic file, or the Minari dataset folder holding
    ``data/``), ``dataset_id`` and ``root`` (Minari only: load with ``MINARI_DATASETS_PATH=root``
    and ``minari.load_dataset(dataset_id)``), counts, and the wall time in seconds."""

    format: str
    path: Path
    demos: int
    steps: int
    held_out: int
    seconds: float
    dataset_id: str | None = None
    root: Path | None = None


class SourceDemo(NamedTuple):
    """A demo to export; ``number`` (0-based, in manifest order) names it in the export and
    ``held_out`` says whether ``holdout_split`` holds it out."""

    number: int
    demo: fmt.Demo
    held_out: bool


class EpisodeSignals(NamedTuple):
    """The env's per-step signals for a demo: (T,) float64 rewards, (T,) bool ends."""

    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray


def import_extra(name: str) -> ModuleType:
    """Import ``name`` from the ``export`` extra, or raise ``ExportError`` saying how to get it."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ExportError(f"exporting needs {name.split('.')[0]}, which is not installed: "
                          f"{EXTRA_HINT}") from error


def export_dataset(config: ExportConfig, on_progress: ProgressHook | None = None
                   ) -> ExportSummary:
    """Export ``config.dataset`` in ``config.format``; see ``ExportConfig`` and the module text.

    Raises ``DatasetError`` for a missing, incomplete, corrupt or non-``generate`` dataset and
    ``ExportError`` for an existing output (without ``overwrite``) or a missing extra.
    """
    # The format modules import this one: importing them here keeps the dependency one-way.
    if config.format == "minari":
        from imitate.data.export_minari import export_minari as write
    else:
        from imitate.data.export_robomimic import export_robomimic as write
    return write(config, on_progress)


class ExportSource:
    """A complete ``generate`` dataset opened for export, with its hold-out split."""

    def __init__(self, config: ExportConfig):
        self.root = config.dataset
        self.dataset = DemoDataset(self.root, cache_demos=0)
        self.manifest = self.dataset.manifest
        if self.manifest.get("kind") != "generate":
            self.close()
            raise fmt.DatasetError(
                f"{self.root} is a {self.manifest.get('kind')!r} dataset; export takes one made "
                "by 'imitate demos generate' (every demo a whole episode from a reset)")
        if not self.manifest.get("complete"):
            self.close()
            raise fmt.DatasetError(f"{self.root} is incomplete; rerun its 'demos generate' "
                                   "command (see 'imitate demos info') to finish it first")
        env = self.manifest.get("env", {})
        if env.get("id") != envs.ENV_ID:
            self.close()
            raise fmt.DatasetError(f"{self.root} was recorded in {env.get('id')!r}, not "
                                   f"{envs.ENV_ID}")
        #: Keyword arguments of every episode's env besides ``task`` (``gymnasium.make``).
        self.env_kwargs: dict[str, Any] = dict(env.get("kwargs", {}))
        self.horizon_per_stage = int(self.env_kwargs.get("horizon_per_stage",
                                                         constants.HORIZON_PER_STAGE))
        self.holdout_every = config.holdout_every
        _, held_out = holdout_split(self.dataset, config.holdout_every)
        self.held_out = {task: set(positions.tolist()) for task, positions in held_out.items()}
        self.total = sum(self.dataset.num_demos(task) for task in self.dataset.tasks)

    def close(self) -> None:
        self.dataset.close()

    def __enter__(self) -> ExportSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def demos(self, on_progress: ProgressHook | None = None) -> Iterator[SourceDemo]:
        """Every demo, task by task in manifest order; ``on_progress`` hears each one."""
        number = 0
        for task in self.dataset.tasks:
            for position in range(self.dataset.num_demos(task)):
                yield SourceDemo(number, self.dataset.demo(task, position),
                                 position in self.held_out[task])
                number += 1
                if on_progress is not None:
                    on_progress(number, self.total)

    def signals(self, demo: fmt.Demo) -> EpisodeSignals:
        """The rewards, terminations and truncations the env gave along ``demo``."""
        steps = demo.steps
        rewards = np.zeros(steps, dtype=np.float64)  # (T,)
        terminations = np.zeros(steps, dtype=bool)  # (T,)
        truncations = np.zeros(steps, dtype=bool)  # (T,)
        if steps:
            horizon = self.horizon_per_stage * len(demo.stage_ends)
            ended_early = demo.success or steps < horizon
            rewards[-1] = float(demo.success)
            terminations[-1] = ended_early
            truncations[-1] = not ended_early
        return EpisodeSignals(rewards, terminations, truncations)

    def env_kwargs_for(self, task: str) -> dict[str, Any]:
        """``gymnasium.make(envs.ENV_ID, **kwargs)`` makes the env ``task``'s demos ran in."""
        return {"task": task, **self.env_kwargs}

    def env_spec(self) -> gymnasium.envs.registration.EnvSpec:
        """The registered ``BlockStack-v0`` spec with the dataset's env kwargs (no task)."""
        spec = gymnasium.spec(envs.ENV_ID)
        return replace(spec, kwargs={**spec.kwargs, **self.env_kwargs})

    def spaces(self) -> tuple[gymnasium.Space, gymnasium.Space]:
        """The env's (observation space, action space)."""
        env = gymnasium.make(envs.ENV_ID, **self.env_kwargs)
        try:
            return env.observation_space, env.action_space
        finally:
            env.close()

    def metadata(self) -> dict[str, Any]:
        """Where the demos come from: versions, seeds, noise, hold-out rule, manifest sha256."""
        params = self.manifest.get("params", {})
        return {
            "source_dataset": self.root.resolve().name,
            "source_manifest_sha256": sha256_file(fmt.manifest_path(self.root)),
            "source_format_version": self.manifest["format_version"],
            "source_command": self.manifest.get("command"),
            "recorded_by_imitate": self.manifest.get("software", {}).get("imitate"),
            "imitate_version": __version__,
            "suite_version": self.manifest.get("suite_version"),
            "expert_version": self.manifest.get("expert_version"),
            "seed_stream": params.get("stream"),
            "root_seed": params.get("seed"),
            "noise_std_m_per_step": params.get("noise"),
            "split": params.get("split"),
            "tasks": list(self.dataset.tasks),
            "env_id": envs.ENV_ID,
            "env_kwargs": self.env_kwargs,
            "holdout_every": self.holdout_every,
            "holdout_rule": "every holdout_every-th demo of each task (positions holdout_every-1, "
                            "2*holdout_every-1, ...) is held out, as 'imitate train' does; 0: none",
        }


def default_minari_id(dataset: Path) -> str:
    """``imitate/blockstack-<dataset folder name>-v0``, the name reduced to Minari's characters."""
    name = re.sub(r"[^-_a-z0-9]+", "-", Path(dataset).resolve().name.lower()).strip("-_")
    return f"imitate/blockstack-{name or 'demos'}-v0"


def check_output(path: Path, overwrite: bool, what: str) -> None:
    """Raise ``ExportError`` when ``path`` exists and ``overwrite`` is off."""
    if path.exists() and not overwrite:
        raise ExportError(f"{path} exists ({what}); pass --overwrite to replace it, or choose "
                          "another output")


def make_summary(config: ExportConfig, path: Path, counts: tuple[int, int, int], start: float,
            **extra: Any) -> ExportSummary:
    """The ``ExportSummary`` of an export that wrote ``counts`` = (demos, steps, held out)."""
    demos, steps, held_out = counts
    logger.info("exported %d demos (%d steps, %d held out) of %s to %s", demos, steps, held_out,
                config.dataset, path)
    return ExportSummary(format=config.format, path=path, demos=demos, steps=steps,
                         held_out=held_out, seconds=time.perf_counter() - start, **extra)
