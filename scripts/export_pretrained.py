"""Ship a trained policy as ``imitate eval --checkpoint pretrained``.

Copies RUN/policy.pt into ``imitate/pretrained/policy.pt`` without its optimiser and RNG state
(which only ``--resume`` needs, and which would double the file), and copies the evaluation
reports given with ``--report`` (folders written by ``imitate eval``) next to it as
``imitate/pretrained/eval-NAME/`` (report.md, report.json, summary.csv; episodes.csv and the
plots stay out to keep the package small).

    python scripts/export_pretrained.py runs/ref5 --report runs/ref5/eval-train --report \
        runs/ref5/eval-test
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from imitate.checkpoint import PRETRAINED_DIR, load_checkpoint, save_checkpoint

REPORT_FILES = ("report.md", "report.json", "summary.csv")


def export(run: Path, reports: list[Path], destination: Path = PRETRAINED_DIR) -> Path:
    """Write the stripped checkpoint and the reports into ``destination``; returns the file."""
    saved = load_checkpoint(run / "policy.pt")
    destination.mkdir(parents=True, exist_ok=True)
    path = save_checkpoint(destination / "policy.pt", saved.policy, env=saved.env,
                           suite_version=saved.suite_version, training=saved.training,
                           step=saved.step)
    for report in reports:
        folder = destination / report.name
        folder.mkdir(exist_ok=True)
        for name in REPORT_FILES:
            source = report / name
            if not source.is_file():
                raise SystemExit(f"error: {source} is missing (is {report} an eval report?)")
            shutil.copyfile(source, folder / name)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="training run folder holding policy.pt")
    parser.add_argument("--report", type=Path, action="append", default=[],
                        help="an 'imitate eval' report folder to ship alongside (repeatable)")
    args = parser.parse_args()
    path = export(args.run, args.report)
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
