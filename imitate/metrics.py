"""A training run's metrics log: ``metrics.jsonl`` in the run folder, and TensorBoard scalars.

Each row is one JSON object per logged step: ``step``, ``loss``, ``samples_per_s``, ``cpu_s``
(training CPU seconds since the run began, all threads), ``train_acc_*`` and, when demos are held
out, ``val_loss`` and ``val_acc_*`` (``imitate.training``). A resumed run keeps the rows up to the
checkpoint it restarts from and drops later ones, so the log reads as one uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imitate.files import atomic_write_bytes

#: The run folder's metrics log.
METRICS_NAME = "metrics.jsonl"


class MetricsLog:
    """JSONL metrics, one row per line (and TensorBoard scalars when ``tensorboard`` is
    installed). Each row rewrites the whole file atomically (a few hundred bytes a row), so a
    full disk never leaves a row cut in half: the file holds every row or the previous ones."""

    def __init__(self, folder: Path, resume_step: int):
        self.path = folder / METRICS_NAME
        self._lines = self._kept_lines(resume_step)
        if self.path.exists():
            self._save()
        self._board = _tensorboard(folder)

    def _kept_lines(self, step: int) -> list[str]:
        """Rows up to the checkpoint a resumed run restarts from (later ones are dropped)."""
        if not self.path.exists():
            return []
        return [line for line in self.path.read_text(encoding="utf-8").splitlines()
                if line.strip() and _row_step(line) is not None and _row_step(line) <= step]

    def _save(self) -> None:
        atomic_write_bytes(self.path, "".join(line + "\n" for line in self._lines).encode())

    def write(self, row: dict[str, float]) -> None:
        """Append ``row`` (it has a ``step``); on a write error the log is as it was."""
        self._lines.append(json.dumps(row))
        try:
            self._save()
        except OSError:
            self._lines.pop()
            raise
        if self._board is not None:
            for key, value in row.items():
                if key != "step":
                    self._board.add_scalar(key, value, int(row["step"]))

    def close(self) -> None:
        if self._board is not None:
            self._board.close()


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


def _tensorboard(folder: Path) -> Any:
    """A TensorBoard ``SummaryWriter`` on ``folder/tensorboard``, or None without tensorboard."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(folder / "tensorboard"))
