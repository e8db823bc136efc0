"""Export a demo dataset as one robomimic HDF5 file, and read one back.

The layout is robomimic's (its docs, "Datasets > Overview > Dataset Structure"), ``T`` actions
per demo, demos numbered in manifest order (task by task)::

    data                      attrs: total (steps in all demos), env_args (JSON: env_name
                              "BlockStack-v0", type 2 = robomimic's gym env type, env_kwargs),
                              imitate (JSON: the source dataset's provenance)
    data/demo_N               attrs: num_samples (T), task, env_kwargs (JSON, with the task),
                              demo_index, success, env_seed, noise_seed, attempt, stage_ends,
                              held_out
    data/demo_N/obs/KEY       (T, ...) observations before each action: blocks, block_mask,
                              gripper
    data/demo_N/next_obs/KEY  (T, ...) observations after each action
    data/demo_N/actions       (T, 4) float32 clean expert labels (what a policy imitates)
    data/demo_N/executed_actions  (T, 4) float32 actions the env was stepped with (noisy)
    data/demo_N/rewards       (T,) float64, data/demo_N/dones (T,) int64 (1 on the last step)
    data/demo_N/stages        (T+1,) int8 stages complete at each observation
    mask/train, mask/valid    demo names (bytes); valid = the demos 'imitate train' holds out

No ``states``: robomimic stores MuJoCo states there; a BlockStack episode is replayed from its
seed instead (``env.reset(seed=env_seed, options={"task": task})``). Actions are kept in the
env's units (displacements in m per step, within +-0.02; gripper in [-1, 1]), inside the
[-1, 1] range robomimic expects; normalize them in the training config if wanted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

import envs
from imitate.data.export import (
    ExportConfig,
    ExportError,
    ExportSource,
    ExportSummary,
    ProgressHook,
    SourceDemo,
    check_output,
    import_extra,
    make_summary,
)
from imitate.files import atomic_file

OBS_KEYS = ("blocks", "block_mask", "gripper")
#: robomimic's ``EnvType.GYM_TYPE`` (``robomimic/envs/env_base.py``): made with ``gym.make``.
GYM_ENV_TYPE = 2
SUFFIX = ".robomimic.hdf5"


def default_robomimic_path(dataset: Path) -> Path:
    """``DATASET.robomimic.hdf5`` beside the dataset folder."""
    dataset = Path(dataset).resolve()
    return dataset.with_name(dataset.name + SUFFIX)


def export_robomimic(config: ExportConfig, on_progress: ProgressHook | None = None
                     ) -> ExportSummary:
    """Write ``config.dataset`` as the robomimic file ``config.out`` (default
    ``DATASET.robomimic.hdf5`` beside the dataset folder), atomically."""
    start = time.perf_counter()
    h5py = import_extra("h5py")
    with ExportSource(config) as source:
        target = config.out if config.out is not None else default_robomimic_path(source.root)
        if target.is_dir():
            raise ExportError(f"{target} is a folder; --out names the robomimic .hdf5 file")
        check_output(target, config.overwrite, "a file")
        target.parent.mkdir(parents=True, exist_ok=True)
        names: dict[bool, list[str]] = {False: [], True: []}
        steps = 0
        with atomic_file(target) as tmp, h5py.File(tmp, "w") as file:
            data = file.create_group("data")
            for item in source.demos(on_progress):
                name = f"demo_{item.number}"
                _write_demo(data.create_group(name), item, source)
                names[item.held_out].append(name)
                steps += item.demo.steps
            data.attrs["total"] = steps
            data.attrs["env_args"] = json.dumps(
                {"env_name": envs.ENV_ID, "type": GYM_ENV_TYPE,
                 "env_kwargs": source.env_kwargs})
            data.attrs["imitate"] = json.dumps(source.metadata())
            mask = file.create_group("mask")
            for key, held_out in (("train", False), ("valid", True)):
                mask.create_dataset(key, data=np.array(names[held_out], dtype="S"))
    counts = (len(names[False]) + len(names[True]), steps, len(names[True]))
    return make_summary(config, target, counts, start)


def _write_demo(group: Any, item: SourceDemo, source: ExportSource) -> None:
    """One demo as robomimic's ``data/demo_N`` group, the rest of ``Demo`` beside it."""
    demo = item.demo
    signals = source.signals(demo)
    for key in OBS_KEYS:
        array = getattr(demo, key)  # (T+1, ...)
        group.create_dataset(f"obs/{key}", data=array[:-1])
        group.create_dataset(f"next_obs/{key}", data=array[1:])
    group.create_dataset("actions", data=demo.labels)
    group.create_dataset("executed_actions", data=demo.actions)
    group.create_dataset("rewards", data=signals.rewards)
    group.create_dataset("dones", data=(signals.terminations | signals.truncations)
                         .astype(np.int64))
    group.create_dataset("stages", data=demo.stages)
    group.attrs.update({
        "num_samples": demo.steps, "task": demo.task,
        "env_kwargs": json.dumps(source.env_kwargs_for(demo.task)),
        "demo_index": demo.index, "success": demo.success,
        "env_seed": np.uint64(demo.env_seed), "noise_seed": np.uint64(demo.noise_seed),
        "attempt": demo.attempt, "stage_ends": demo.stage_ends, "held_out": item.held_out})


def read_robomimic_export(path: Path | str) -> list[dict[str, Any]]:
    """The demos of a robomimic export, in demo order, as dicts keyed like ``Demo``'s fields
    (``DEMO_KEYS``) plus ``rewards``, ``dones`` and ``held_out`` (from ``mask/valid``)."""
    h5py = import_extra("h5py")
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such robomimic file")
    with h5py.File(path, "r") as file:
        valid = {name.decode("utf-8") for name in file["mask/valid"][:]}
        names = sorted(file["data"], key=lambda name: int(name.removeprefix("demo_")))
        return [_demo_dict(file["data"][name], name in valid) for name in names]


def _demo_dict(group: Any, held_out: bool) -> dict[str, Any]:
    attrs = group.attrs
    observations = {key: np.concatenate([group[f"obs/{key}"][:], group[f"next_obs/{key}"][-1:]])
                    for key in OBS_KEYS}  # (T+1, ...)
    return {
        "task": str(attrs["task"]), "index": int(attrs["demo_index"]), **observations,
        "stages": group["stages"][:], "actions": group["executed_actions"][:],
        "labels": group["actions"][:], "stage_ends": np.asarray(attrs["stage_ends"]),
        "success": bool(attrs["success"]), "env_seed": int(attrs["env_seed"]),
        "noise_seed": int(attrs["noise_seed"]), "attempt": int(attrs["attempt"]),
        "rewards": group["rewards"][:], "dones": group["dones"][:], "held_out": held_out,
    }
