"""A training run's metrics: ``metrics.jsonl`` in the run folder, and optional TensorBoard and
Weights & Biases (offline) copies of the same rows (``imitate train --logger``).

Each row is one JSON object per logged step: ``step``, ``loss``, ``samples_per_s``, ``cpu_s``
(training CPU seconds since the run began, all threads), ``train_acc_*``, when demos are held
out ``val_loss`` and ``val_acc_*``, and after a DAgger round the ``dagger_*`` figures
(``imitate.training``). A resumed run keeps the rows up to the checkpoint it restarts from and
drops later ones, so the log reads as one uninterrupted run.

Loggers (``LOGGERS``; ``metrics.jsonl`` is always written, whatever else is chosen):

- ``jsonl``: ``RUN/metrics.jsonl``, the reference copy of the rows;
- ``tensorboard``: ``RUN/tensorboard/`` event files; each key of a row but ``step`` is a scalar
  of that name at global step ``step`` (the training step);
- ``wandb``: ``RUN/wandb/offline-run-*``; each row is ``wandb.log(row, step=step)`` in an
  offline run whose config is the run's ``TrainConfig``.

A resumed run appends to TensorBoard: its event file starts with a purge at the first step it
trains, so TensorBoard hides the rows an interrupted run logged after its last checkpoint and
each step shows once. Each ``wandb`` invocation (a new run, or each resumption) is one offline
run of its own, grouped under the run folder's name; ``wandb sync RUN/wandb/offline-run-*``
uploads them. Offline means offline: ``mode="offline"`` for the process (``wandb.setup``), so
wandb's own telemetry makes no request either.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imitate.files import atomic_write_bytes

if TYPE_CHECKING:  # typing only: the metrics log itself needs no torch
    import torch

    from imitate.model import OneShotPolicy

logger = logging.getLogger(__name__)


def accuracies(policy: OneShotPolicy, logits: torch.Tensor, labels: torch.Tensor
               ) -> dict[str, float]:
    """Share of rows whose argmax matches the label: per axis, gripper, and all four at once."""
    axis, grip = policy.split_logits(logits)
    axis_hit = axis.argmax(-1) == labels[:, :3]  # (N, 3)
    grip_hit = grip.argmax(-1) == labels[:, 3]  # (N,)
    return {"acc_x": float(axis_hit[:, 0].float().mean()),
            "acc_y": float(axis_hit[:, 1].float().mean()),
            "acc_z": float(axis_hit[:, 2].float().mean()),
            "acc_gripper": float(grip_hit.float().mean()),
            "acc_all": float((axis_hit.all(1) & grip_hit).float().mean())}


# --- one step ----------------------------------------------------------------------------------


#: The run folder's metrics log.
METRICS_NAME = "metrics.jsonl"
#: The loggers ``imitate train --logger`` takes; ``jsonl`` is always on.
JSONL, TENSORBOARD, WANDB = "jsonl", "tensorboard", "wandb"
LOGGERS = (JSONL, TENSORBOARD, WANDB)
#: The run folder's TensorBoard event files (``tensorboard --logdir RUN/tensorboard``).
TENSORBOARD_DIR = "tensorboard"
#: The W&B project of ``--logger wandb`` unless ``--wandb-project`` names another.
DEFAULT_WANDB_PROJECT = "imitate"
#: The module each optional logger imports, and the extra of ``imitate-oneshot`` that installs it.
_LOGGER_MODULES = {TENSORBOARD: "torch.utils.tensorboard", WANDB: "wandb"}


def check_logger_packages(loggers: Sequence[str]) -> None:
    """``ValueError`` naming the extra to install when a chosen logger's package is missing
    (checked before a run writes anything)."""
    for name in loggers:
        if name in _LOGGER_MODULES:
            try:
                importlib.import_module(_LOGGER_MODULES[name])
            except ImportError:
                raise ValueError(f"--logger {name} needs the {name} package, which is not "
                                 f"installed: pip install 'imitate-oneshot[{name}]'") from None


class MetricsLog:
    """JSONL metrics, one row per line, and the rows again in each optional logger.

    Each row rewrites the whole JSONL file atomically (a few hundred bytes a row), so a full
    disk never leaves a row cut in half: the file holds every row or the previous ones. The
    optional loggers get a row once it is in the JSONL file.

    Args:
        folder: the run folder.
        resume_step: the step the run (re)starts from (0 for a new run).
        loggers: names from ``LOGGERS`` (``jsonl`` is written in any case).
        run_config: the run's configuration (``TrainConfig.to_json``), for W&B's run config.
        wandb_project: the W&B project of ``--logger wandb``.
    """

    def __init__(self, folder: Path, resume_step: int, loggers: Sequence[str] = (JSONL,),
                 run_config: Mapping[str, Any] | None = None,
                 wandb_project: str = DEFAULT_WANDB_PROJECT):
        self.path = folder / METRICS_NAME
        self._lines = self._kept_lines(resume_step)
        if self.path.exists():
            self._save()
        self._copies: list[_TensorBoardCopy | _WandbCopy] = []
        try:
            if TENSORBOARD in loggers:
                self._copies.append(_TensorBoardCopy(folder, resume_step))
            if WANDB in loggers:
                self._copies.append(_WandbCopy(folder, resume_step, run_config or {},
                                               wandb_project))
        except BaseException:
            self.close()
            raise

    def _kept_lines(self, step: int) -> list[str]:
        """Rows up to the checkpoint a resumed run restarts from (later ones are dropped)."""
        if not self.path.exists():
            return []
        return [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and _row_step(line) is not None and _row_step(line) <= step]

    def _save(self) -> None:
        atomic_write_bytes(self.path, "".join(line + "\n" for line in self._lines).encode())

    def write(self, row: Mapping[str, float]) -> None:
        """Append ``row`` (it has a ``step``); on a write error the log is as it was."""
        self._lines.append(json.dumps(row))
        try:
            self._save()
        except OSError:
            self._lines.pop()
            raise
        for copy in self._copies:
            copy.write(row)

    def close(self) -> None:
        """Flush and close the optional loggers (the JSONL file is always complete)."""
        for copy in self._copies:
            copy.close()
        self._copies = []


class _TensorBoardCopy:
    """The rows as TensorBoard scalars in ``folder/tensorboard``, one event file per invocation.

    ``purge_step`` = the first step this invocation trains: TensorBoard's readers drop the events
    of earlier files at that step or later (rows past the checkpoint a resumed run restarts from).
    """

    def __init__(self, folder: Path, resume_step: int):
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(str(folder / TENSORBOARD_DIR), purge_step=resume_step + 1)

    def write(self, row: Mapping[str, float]) -> None:
        step = int(row["step"])
        for key, value in row.items():
            if key != "step":
                self._writer.add_scalar(key, value, step)
        self._writer.flush()  # as current as metrics.jsonl (a row is every --log-every steps)

    def close(self) -> None:
        self._writer.close()


class _WandbCopy:
    """The rows in a Weights & Biases run that never leaves the machine (``mode="offline"``,
    under ``folder/wandb``): project ``project``, named and grouped by the run folder's name,
    config = the run's configuration plus ``start_step``."""

    def __init__(self, folder: Path, resume_step: int, run_config: Mapping[str, Any],
                 project: str):
        import wandb

        # Offline for the whole process: W&B's telemetry reads the process settings, not the run's.
        settings = wandb.Settings(mode="offline", silent=True, console="off")
        wandb.setup(settings=settings)
        name = folder.resolve().name
        try:
            self._run = wandb.init(project=project, name=name, group=name, job_type="train",
                                   dir=str(folder), mode="offline", settings=settings,
                                   config={**run_config, "start_step": resume_step})
        except wandb.Error as error:
            raise ValueError(f"--logger wandb: could not start an offline run in {folder} "
                             f"({error})") from None
        logger.info("W&B offline run %s in %s (upload it with 'wandb sync')", self._run.id,
                    self._run.dir)

    def write(self, row: Mapping[str, float]) -> None:
        self._run.log({key: value for key, value in row.items() if key != "step"},
                      step=int(row["step"]))

    def close(self) -> None:
        self._run.finish()


def resumed_cpu_seconds(folder: Path, step: int) -> float:
    """Training CPU seconds logged at the last metrics row up to ``step`` (0 if none)."""
    path = folder / METRICS_NAME
    if not path.exists():
        return 0.0
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and (_row_step(line) or 0) <= step]
    return float(rows[-1].get("cpu_s", 0.0)) if rows else 0.0


def _row_step(line: str) -> int | None:
    """The ``step`` of a metrics row, or None when the line is not a row."""
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None
