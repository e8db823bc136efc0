"""Self-describing policy checkpoints, written atomically and read without unpickling code.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python values (dicts,
lists, str, int, float, bool, None), so ``torch.load(weights_only=True)`` reads it and never runs
arbitrary code. Contents (format version 1):

| key | what |
|---|---|
| ``format`` | ``"imitate-policy"`` |
| ``format_version`` | 1 |
| ``model_config`` | ``PolicyConfig`` fields |
| ``model_state`` | the network's ``state_dict`` |
| ``action_bins`` | per-axis bin centres (m) and gripper values of ``imitate.actions`` |
| ``env`` | env id and kwargs the policy was trained for |
| ``suite_version`` | version of the task suite |
| ``training`` | training config and data description (free-form plain values) |
| ``step`` | optimisation steps done |
| ``model_state_sha256`` | checksum of ``model_state`` (``state_checksum``; since 0.8) |
| ``optimizer_state`` | optional, for ``--resume`` |
| ``rng_state`` | optional, for ``--resume`` |
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from imitate import actions
from imitate.files import atomic_write_bytes
from imitate.model import OneShotPolicy, PolicyConfig

FORMAT = "imitate-policy"
FORMAT_VERSION = 1
#: The name that stands for the policy shipped inside the package (``--checkpoint pretrained``).
PRETRAINED = "pretrained"
#: Folder of the shipped policy, its evaluation report and the record of how it was made.
PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"


class CheckpointError(ValueError):
    """A checkpoint that is missing, corrupt, foreign or incompatible (message names which)."""


@dataclass
class Checkpoint:
    """A loaded checkpoint: the policy (eval mode) and everything recorded with it."""

    policy: OneShotPolicy
    env: dict[str, Any]
    suite_version: int
    training: dict[str, Any]
    step: int
    optimizer_state: dict[str, Any] | None = None
    rng_state: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def action_bins() -> dict[str, list[float]]:
    """The discrete action set in plain lists, recorded so a checkpoint is self-describing."""
    return {"axis": actions.BINS.tolist(), "gripper": actions.GRIPPER_VALUES.tolist()}


def save_checkpoint(
    path: str | os.PathLike,
    policy: OneShotPolicy,
    *,
    env: dict[str, Any],
    suite_version: int,
    training: dict[str, Any],
    step: int,
    optimizer_state: dict[str, Any] | None = None,
    rng_state: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically (``imitate.files``: temporary file in the same folder, fsync,
    rename); a writer killed mid-way leaves at most a ``.NAME.tmp-PID`` file
    (``imitate.files.remove_temporaries``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": policy.config.to_dict(),
        "model_state": policy.state_dict(),
        "model_state_sha256": state_checksum(policy.state_dict()),
        "action_bins": action_bins(),
        "env": env,
        "suite_version": suite_version,
        "training": training,
        "step": int(step),
        "optimizer_state": optimizer_state,
        "rng_state": rng_state,
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def state_checksum(state: dict[str, torch.Tensor]) -> str:
    """sha256 over a state dict's names, dtypes, shapes and bytes, in name order: a damaged
    weight (a flipped byte that still unpickles) no longer loads."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def is_pretrained(path: str | os.PathLike) -> bool:
    """Whether ``path`` is the name ``pretrained`` (the policy shipped with the package)."""
    return str(path) == PRETRAINED


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """``path`` as a file path; the name ``pretrained`` becomes the shipped policy's file."""
    return PRETRAINED_DIR / "policy.pt" if is_pretrained(path) else Path(path)


def read_checkpoint_bytes(path: str | os.PathLike) -> bytes:
    """The checkpoint file's bytes (read once, then handed to ``load_checkpoint(data=...)`` in
    several processes so that all of them use the same version of a file being rewritten).
    ``pretrained`` names the policy shipped with the package."""
    path = resolve_checkpoint(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path.read_bytes()


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu", *,
                    data: bytes | None = None) -> Checkpoint:
    """Read and validate a checkpoint; the policy comes back in eval mode on ``device``.

    ``data``: the file's bytes when already read (``read_checkpoint_bytes``); ``path`` then only
    names it in messages. ``pretrained`` names the policy shipped with the package.

    Raises:
        CheckpointError: missing file, not a torch file, not an imitate checkpoint, a newer format,
            an action set that differs from this installation's, or weights that do not fit.
    """
    path = resolve_checkpoint(path)
    if data is None:
        data = read_checkpoint_bytes(path)
    try:
        payload = torch.load(io.BytesIO(data), map_location=device, weights_only=True)
    except Exception as error:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"{path} is not a readable checkpoint ({_load_failure(error)})"
                              ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an imitate policy checkpoint")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {version}; this version of imitate "
                              f"reads format {FORMAT_VERSION}")
    recorded = payload.get("model_state_sha256")
    if recorded is not None and recorded != state_checksum(payload.get("model_state", {})):
        raise CheckpointError(f"{path} is damaged: its weights do not match the checksum they "
                              "were saved with; use another copy or retrain")
    if payload.get("action_bins") != action_bins():
        raise CheckpointError(f"{path} was trained with a different discrete action set")
    try:
        model_config, state = _upgrade(dict(payload["model_config"]), payload["model_state"])
        policy = OneShotPolicy(PolicyConfig(**model_config))
        policy.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        raise CheckpointError(f"{path} has weights that do not fit the model ({first_line})"
                              ) from None
    policy.to(device).eval()
    return Checkpoint(
        policy=policy,
        env=payload.get("env", {}),
        suite_version=int(payload.get("suite_version", 0)),
        training=payload.get("training", {}),
        step=int(payload.get("step", 0)),
        optimizer_state=payload.get("optimizer_state"),
        rng_state=payload.get("rng_state"),
    )


def _load_failure(error: Exception) -> str:
    """Why ``torch.load`` failed, without its advice to load with ``weights_only=False`` (which
    would run whatever code the file holds)."""
    text = str(error).strip()
    if "weights_only" in text or "Unsupported global" in text:
        return "it holds objects other than tensors and plain values, which imitate never loads"
    first = text.splitlines()[0] if text else type(error).__name__
    return first if len(first) <= 200 else first[:200] + "..."


def _upgrade(model_config: dict, state: dict) -> tuple[dict, dict]:
    """Model config and weights of a checkpoint written by an older imitate, in today's terms.

    0.2 used the paper's additive temporal scoring (before ``temporal_scoring`` existed) and
    carried an unused ``temporal_context`` layer in each context step; 0.2 and 0.3 fed block
    positions in metres (before ``position_scale`` existed); up to 0.5 the context network had the
    0.5 form and temporal dropout kept at least 1 frame (before ``context_form`` and
    ``min_kept_frames`` existed)."""
    model_config.setdefault("position_scale", 1.0)
    model_config.setdefault("context_form", "0.5")
    model_config.setdefault("min_kept_frames", 1)
    if "temporal_scoring" in model_config:
        return model_config, state
    model_config["temporal_scoring"] = "additive"
    state = {key: value for key, value in state.items() if ".temporal_context." not in key}
    return model_config, state
