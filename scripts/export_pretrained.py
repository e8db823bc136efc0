"""Ship a trained policy as ``imitate eval --checkpoint pretrained``.

Copies RUN/policy.pt into ``imitate/pretrained/policy.pt`` (or ``--dest``) without its optimiser
and RNG state (which only ``--resume`` needs, and which would double the file), RUN/config.json
(the run's training config, which ``imitate train --config pretrained`` reads) next to it, and
the evaluation reports given with ``--report`` (folders written by ``imitate eval``) as
``eval-NAME/`` (report.md, report.json, summary.csv and the evaluation's config.json; episodes.csv
and the plots stay out to keep the package small).

A report is shipped only if it evaluated this checkpoint: its step must be the run's, and where
the report folder keeps its episode log, the log's checkpoint SHA-256 must be the run's
policy.pt. Report folders ``eval-*`` already in the destination that are not shipped now belong
to the policy being replaced and are removed.

    python scripts/export_pretrained.py runs/ref2-full-dagger \\
        --report runs/ref2-full-dagger/eval-train --report runs/ref2-full-dagger/eval-test
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from imitate.checkpoint import PRETRAINED_DIR, CheckpointError, load_checkpoint, save_checkpoint
from imitate.evaluation import LOG_NAME
from imitate.files import sha256_file

REPORT_FILES = ("report.md", "report.json", "summary.csv", "config.json")
#: The training config a run writes next to its policy.pt.
RUN_CONFIG = "config.json"


class ExportError(ValueError):
    """A run or report that cannot be shipped (message says why, in one line)."""


def check_report(report: Path, step: int, checkpoint_sha256: str) -> None:
    """``ExportError`` unless ``report`` is a complete ``imitate eval`` folder of the checkpoint
    at ``step`` whose file hashes to ``checkpoint_sha256``."""
    for name in REPORT_FILES:
        if not (report / name).is_file():
            raise ExportError(f"{report / name} is missing (is {report} an imitate eval report?)")
    evaluated = json.loads((report / "report.json").read_text())["checkpoint"]["step"]
    if evaluated != step:
        raise ExportError(f"{report} evaluated step {evaluated}, but the run's checkpoint is at "
                          f"step {step}: evaluate the checkpoint being shipped")
    log = report / LOG_NAME
    if log.is_file():
        with log.open() as handle:
            logged = json.loads(handle.readline()).get("checkpoint_sha256")
        if logged != checkpoint_sha256:
            raise ExportError(f"{report} evaluated another policy.pt (sha256 {str(logged)[:12]}, "
                              f"the run's is {checkpoint_sha256[:12]})")


def export(run: Path, reports: list[Path], destination: Path = PRETRAINED_DIR
           ) -> tuple[Path, int]:
    """Write the stripped checkpoint, the run's config and the reports into ``destination``,
    removing report folders of a former policy; returns the checkpoint's path and step."""
    checkpoint = run / "policy.pt"
    try:
        saved = load_checkpoint(checkpoint)
    except CheckpointError as error:
        raise ExportError(str(error)) from error
    if not (run / RUN_CONFIG).is_file():
        raise ExportError(f"{run / RUN_CONFIG} is missing: ship a run written by imitate train")
    names = [report.name for report in reports]
    if len(set(names)) != len(names) or not all(name.startswith("eval-") for name in names):
        raise ExportError(f"report folders must have distinct names starting with 'eval-', "
                          f"got {names}")
    digest = sha256_file(checkpoint)
    for report in reports:
        check_report(report, saved.step, digest)
    destination.mkdir(parents=True, exist_ok=True)
    path = save_checkpoint(destination / "policy.pt", saved.policy, env=saved.env,
                           suite_version=saved.suite_version, training=saved.training,
                           step=saved.step)
    shutil.copyfile(run / RUN_CONFIG, destination / RUN_CONFIG)
    for stale in sorted(destination.glob("eval-*")):
        if stale.is_dir() and stale.name not in names:
            shutil.rmtree(stale)
            print(f"removed {stale} (a report of the policy replaced)")
    for report in reports:
        folder = destination / report.name
        folder.mkdir(exist_ok=True)
        for name in REPORT_FILES:
            shutil.copyfile(report / name, folder / name)
    return path, saved.step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="training run folder holding policy.pt")
    parser.add_argument("--report", type=Path, action="append", default=[],
                        help="an 'imitate eval' report folder of that policy.pt, named "
                             "eval-NAME, to ship alongside (repeatable)")
    parser.add_argument("--dest", type=Path, default=PRETRAINED_DIR,
                        help=f"where to ship it (default: the package's {PRETRAINED_DIR})")
    args = parser.parse_args()
    try:
        path, step = export(args.run, args.report, args.dest)
    except ExportError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    print(f"{path}: {path.stat().st_size / 1e6:.2f} MB, step {step}; "
          f"reports: {', '.join(r.name for r in args.report) or 'none'}")


if __name__ == "__main__":
    main()
