"""Export a demo dataset as a Minari dataset (hdf5 backend), and read one back.

Written layout (Minari 0.5), ``ROOT`` being ``--out`` or Minari's own datasets folder
(``MINARI_DATASETS_PATH``, else ``~/.minari/datasets``)::

    ROOT/imitate/namespace_metadata.json                    the namespace (written if missing)
    ROOT/imitate/blockstack-NAME-v0/data/metadata.json      spaces, env spec, dataset metadata
    ROOT/imitate/blockstack-NAME-v0/data/main_data.hdf5     episode_0, episode_1, ...

Load it with ``MINARI_DATASETS_PATH=ROOT`` and
``minari.load_dataset("imitate/blockstack-NAME-v0")``. The env spec is ``BlockStack-v0`` with the
dataset's env kwargs; the task is per episode, passed the way the env takes it on reset:
``env.reset(seed=meta["seed"], options=meta["options"])`` with ``meta`` the episode's metadata
(``dataset.storage.get_episode_metadata([i])``), whose ``options["task"]`` is the layout.
Field mapping: ``imitate.data.export``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from imitate.data.export import (
    ExportConfig,
    ExportError,
    ExportSource,
    ExportSummary,
    ProgressHook,
    check_output,
    default_minari_id,
    import_extra,
    make_summary,
)
from imitate.files import atomic_folder, atomic_write_bytes

OBS_KEYS = ("blocks", "block_mask", "gripper")
NAMESPACE_DESCRIPTION = ("Block-stacking demonstrations exported by imitate (one-shot imitation "
                         "learning, Duan et al. 2017) from its demo datasets; env BlockStack-v0.")


def export_minari(config: ExportConfig, on_progress: ProgressHook | None = None
                  ) -> ExportSummary:
    """Write ``config.dataset`` as the Minari dataset ``config.name`` (default
    ``imitate/blockstack-<folder name>-v0``) under ``config.out`` (default: Minari's folder)."""
    start = time.perf_counter()
    import_extra("h5py")
    minari = import_extra("minari")
    from minari.dataset.minari_storage import MinariStorage
    from minari.storage.datasets_root_dir import get_dataset_path

    with ExportSource(config) as source:
        # absolute: minari's storage joins a relative data path onto itself (minari 0.5.4)
        root = (config.out if config.out is not None else Path(get_dataset_path())).absolute()
        dataset_id = config.name or default_minari_id(source.root)
        target = root / dataset_id
        check_output(target, config.overwrite, f"the Minari dataset {dataset_id}")
        observation_space, action_space = source.spaces()
        episodes: list[dict[str, Any]] = []
        with atomic_folder(target, config.overwrite) as folder:
            storage = MinariStorage.new(folder / "data", observation_space=observation_space,
                                        action_space=action_space, env_spec=source.env_spec(),
                                        data_format="hdf5")
            storage.update_metadata(_dataset_metadata(source, dataset_id, minari.__version__))
            storage.update_episodes(_episodes(source, episodes, on_progress))
            storage.update_episode_metadata(episodes)
            steps = storage.total_steps
        _write_namespaces(root, dataset_id)
    counts = (len(episodes), steps, sum(bool(e["held_out"]) for e in episodes))
    return make_summary(config, target, counts, start, dataset_id=dataset_id, root=root)


def _dataset_metadata(source: ExportSource, dataset_id: str, minari_version: str
                      ) -> dict[str, Any]:
    """Minari's dataset-level metadata, imitate's provenance under the key ``imitate``."""
    params = source.manifest.get("params", {})
    provenance = source.metadata()
    return {
        "dataset_id": dataset_id,
        "minari_version": minari_version,
        "algorithm_name": f"imitate ScriptedExpert v{source.manifest.get('expert_version')} "
                          f"(actions: clean labels; executed with noise std {params.get('noise')}"
                          " m per step)",
        "author": {"imitate"},
        "description": _description(source),
        "requirements": [f"imitate-oneshot=={provenance['imitate_version']}"],
        "imitate": provenance,
    }


def _description(source: ExportSource) -> str:
    return (
        f"{source.total} scripted-expert demonstrations of {len(source.dataset.tasks)} "
        f"BlockStack-v0 tasks from the imitate dataset {source.root.resolve().name!r}, one "
        "episode per demo. Each task is its own env: the layout (e.g. 'ab cd': A on B, C on D) "
        "is the episode's reset option, so env.reset(seed=meta['seed'], options=meta['options']) "
        "with meta = dataset.storage.get_episode_metadata([i]) restarts episode i. Actions are "
        "the clean expert labels; infos['executed_action'][t + 1] is the action executed at "
        "step t (labels plus Gaussian noise; row 0, the reset, is NaN); infos['stage'] counts "
        "the stages complete at each observation and the episode metadata 'stage_ends' gives "
        "the observation at which each stage was first complete. Episode metadata 'held_out' "
        "marks the demos 'imitate train' holds out for validation (metadata 'imitate': "
        "'holdout_rule'). Observations: blocks (10, 3) block centre minus grasp point in m, "
        "block_mask (10,) 1 for the task's blocks, gripper (2,) one-hot open/closed.")


def _episodes(source: ExportSource, metadata: list[dict[str, Any]],
              on_progress: ProgressHook | None) -> Iterator[Any]:
    """One ``EpisodeBuffer`` per demo; appends each episode's metadata to ``metadata``."""
    from minari.data_collector import EpisodeBuffer

    for item in source.demos(on_progress):
        demo = item.demo
        signals = source.signals(demo)
        yield EpisodeBuffer(
            id=item.number, seed=demo.env_seed, options={"task": demo.task},
            observations={key: getattr(demo, key) for key in OBS_KEYS}, actions=demo.labels,
            rewards=signals.rewards, terminations=signals.terminations,
            truncations=signals.truncations, infos=_infos(demo))
        metadata.append({"demo_index": demo.index, "success": demo.success,
                         "noise_seed": np.uint64(demo.noise_seed), "attempt": demo.attempt,
                         "stage_ends": demo.stage_ends, "held_out": item.held_out})


def _infos(demo: Any) -> dict[str, np.ndarray]:
    """The env's ``info`` keys at the reset and after each step (T+1 rows), and the executed
    action of the step that returned each info (NaN at the reset)."""
    rows = demo.steps + 1
    executed = np.full((rows, 4), np.nan, dtype=np.float32)  # (T+1, 4)
    executed[1:] = demo.actions
    is_success = np.zeros(rows, dtype=bool)  # (T+1,): the episode ends on success
    is_success[-1] = demo.success
    return {"executed_action": executed, "stage": demo.stages, "is_success": is_success,
            "num_stages": np.full(rows, len(demo.stage_ends), dtype=np.int64)}


def _write_namespaces(root: Path, dataset_id: str) -> None:
    """``namespace_metadata.json`` in each namespace folder of ``dataset_id`` that lacks one."""
    from minari.namespace import NAMESPACE_METADATA_FILENAME

    parts = dataset_id.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        path = root.joinpath(*parts[:depth], NAMESPACE_METADATA_FILENAME)
        if not path.exists():
            content = {"description": NAMESPACE_DESCRIPTION} if depth == len(parts) else {}
            atomic_write_bytes(path, json.dumps(content).encode("utf-8"))


def read_minari_export(dataset_id: str, root: Path | str | None = None) -> list[dict[str, Any]]:
    """The demos of a Minari export, in episode order, as dicts keyed like ``Demo``'s fields
    (``DEMO_KEYS``) plus ``rewards``, ``terminations``, ``truncations`` and ``held_out``.

    ``root`` is the datasets folder the export was written to; None loads ``dataset_id`` with
    ``minari.load_dataset`` (``MINARI_DATASETS_PATH`` or Minari's default folder).
    """
    import_extra("h5py")
    minari = import_extra("minari")
    if root is None:
        dataset = minari.load_dataset(dataset_id)
    else:
        path = Path(root) / dataset_id / "data"
        if not path.is_dir():
            raise ExportError(f"{Path(root)} holds no Minari dataset {dataset_id}")
        dataset = minari.MinariDataset(path)
    metadata = list(dataset.storage.get_episode_metadata(dataset.episode_indices))
    return [_demo_dict(episode, meta)
            for episode, meta in zip(dataset.iterate_episodes(), metadata, strict=True)]


def _demo_dict(episode: Any, meta: dict[str, Any]) -> dict[str, Any]:
    observations, infos = episode.observations, episode.infos
    return {
        "task": str(meta["options"]["task"]), "index": int(meta["demo_index"]),
        **{key: observations[key] for key in OBS_KEYS},
        "stages": infos["stage"], "actions": infos["executed_action"][1:],
        "labels": episode.actions, "stage_ends": np.asarray(meta["stage_ends"]),
        "success": bool(meta["success"]), "env_seed": int(meta["seed"]),
        "noise_seed": int(meta["noise_seed"]), "attempt": int(meta["attempt"]),
        "rewards": episode.rewards, "terminations": episode.terminations,
        "truncations": episode.truncations, "held_out": bool(meta["held_out"]),
    }
