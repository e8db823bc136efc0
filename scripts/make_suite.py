"""Regenerate the task suite data file, or check that the committed one is up to date.

    python scripts/make_suite.py            # (re)write envs/data/suite_v1.json
    python scripts/make_suite.py --check    # exit 1 if the committed file differs

The generator itself is ``envs.suite.generate_suite``; this script only writes or compares.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))

from envs.suite import SUITE_FILE, SUITE_SEED, generate_suite  # noqa: E402

DEFAULT_OUT = ROOT / "envs" / "data" / SUITE_FILE


def to_json(data: dict) -> str:
    """The file's text: indented, one layout per line, trailing newline."""
    return json.dumps(data, indent=2) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=SUITE_SEED, help="generator seed")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="data file path")
    parser.add_argument(
        "--check", action="store_true", help="compare instead of writing; exit 1 on a difference"
    )
    args = parser.parse_args(argv)

    data = generate_suite(args.seed)
    if args.check:
        try:
            committed = json.loads(args.out.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            print(f"make_suite: cannot read {args.out}: {error}", file=sys.stderr)
            return 1
        if committed != data:
            print(
                f"make_suite: {args.out} differs from generate_suite({args.seed}); "
                "run python scripts/make_suite.py",
                file=sys.stderr,
            )
            return 1
        print(f"{args.out}: up to date")
        return 0

    write_atomically(args.out, to_json(data))
    print(f"wrote {args.out}: {len(data['train'])} train and {len(data['test'])} test tasks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
