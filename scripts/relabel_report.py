"""Relabel an evaluation report written before imitate 0.6: every task seen or unseen.

Reports of imitate 0.5 and earlier grouped episodes by the suite split of their layout alone, so a
"test" task that relabels a training task (suite v1 had 22 of them) was counted as unseen. This
script reads REPORT/report.json, labels each episode ``seen`` or ``unseen`` by the class of its
task against the checkpoint's training tasks (``imitate.novelty``), and rewrites the report's
files with the tables grouped by that label. No episode is re-run: the outcomes are the recorded
ones.

    python scripts/relabel_report.py imitate/pretrained/eval-test --checkpoint pretrained
    python scripts/relabel_report.py runs/NAME/eval-test --checkpoint runs/NAME/policy.pt \
        --out runs/NAME/eval-test-relabelled

With ``--files``, only those report files are kept in the output folder (the shipped reports
carry report.md, report.json and summary.csv).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

from imitate.checkpoint import load_checkpoint  # noqa: E402
from imitate.evaluation import EpisodeResult  # noqa: E402
from imitate.novelty import novelty, trained_classes  # noqa: E402
from imitate.report import write_report  # noqa: E402


def relabel(report: Path, checkpoint: str, out: Path, keep: list[str] | None = None) -> Path:
    """Rewrite ``report`` (a folder written by ``imitate eval``) into ``out`` with every episode
    labelled by ``checkpoint``'s training classes; returns the new report.md."""
    data = json.loads((report / "report.json").read_text(encoding="utf-8"))
    saved = load_checkpoint(checkpoint)
    recorded = data.get("checkpoint", {}).get("step")
    if recorded is not None and recorded != saved.step:
        raise ValueError(f"{report} evaluated step {recorded}, {checkpoint} is step {saved.step}")
    classes = trained_classes(saved.training)
    names = {field.name for field in dataclasses.fields(EpisodeResult)}
    results = [EpisodeResult(**{**{k: v for k, v in episode.items() if k in names},
                                "novelty": novelty(episode["task"], classes)})
               for episode in data["episodes"]]
    checkpoint_record = {**data.get("checkpoint", {}), "training": saved.training}
    with tempfile.TemporaryDirectory() as scratch:
        files = write_report(Path(scratch), results, config=data.get("config", {}),
                             checkpoint=checkpoint_record, timing=data.get("timing", {}))
        out.mkdir(parents=True, exist_ok=True)
        for path in files.values():
            if keep is None or path.name in keep:
                (out / path.name).write_bytes(path.read_bytes())
    return out / "report.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a report folder written by 'imitate eval'")
    parser.add_argument("--checkpoint", required=True,
                        help="the evaluated checkpoint (or 'pretrained')")
    parser.add_argument("--out", type=Path, default=None,
                        help="where to write (default: over the report itself)")
    parser.add_argument("--files", nargs="*", default=None, metavar="NAME",
                        help="report files to write (default: all)")
    args = parser.parse_args(argv)
    try:
        path = relabel(args.report, args.checkpoint, args.out or args.report, args.files)
    except (OSError, ValueError, KeyError) as error:
        print(f"relabel_report: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
