"""Regenerate the task suite data file, or check that the committed ones are up to date.

    python scripts/make_suite.py                # (re)write envs/data/suite_v2.json (the current)
    python scripts/make_suite.py --version 1    # (re)write envs/data/suite_v1.json
    python scripts/make_suite.py --check        # exit 1 if a committed file differs (every version)

The generator itself is ``envs.suite.generate_suite`` (its docstring says how suite v2 chooses its
per-stage counts and classes); this script only writes or compares.
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

from envs.suite import (  # noqa: E402
    SUITE_SEED,
    SUITE_VERSION,
    SUITE_VERSIONS,
    generate_suite,
    parse_suite,
    suite_file,
)

DATA_DIR = ROOT / "envs" / "data"


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
    parser.add_argument("--version", type=int, choices=SUITE_VERSIONS, default=None,
                        help=f"suite version (default: {SUITE_VERSION} when writing, every "
                        "version with --check)")
    parser.add_argument("--out", type=Path, default=None,
                        help="data file path (default: envs/data/suite_vN.json)")
    parser.add_argument(
        "--check", action="store_true", help="compare instead of writing; exit 1 on a difference"
    )
    args = parser.parse_args(argv)
    if args.out is not None and args.version is None:
        parser.error("--out names one version's file: give --version too")

    if args.check:
        versions = SUITE_VERSIONS if args.version is None else (args.version,)
        failed = [v for v in versions if not check(v, args.seed, args.out)]
        return 1 if failed else 0
    version = SUITE_VERSION if args.version is None else args.version
    out = args.out or DATA_DIR / suite_file(version)
    data = generate_suite(args.seed, version)
    parse_suite(data)  # the suite's own checks: never write one that fails them
    write_atomically(out, to_json(data))
    print(f"wrote {out}: suite v{version}, {len(data['train'])} train and {len(data['test'])} "
          "test tasks")
    return 0


def check(version: int, seed: int, out: Path | None) -> bool:
    """Whether the committed file of ``version`` equals the generator's output and passes the
    suite's checks; prints the result (problems to stderr)."""
    path = out or DATA_DIR / suite_file(version)
    try:
        committed = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        print(f"make_suite: cannot read {path}: {error}", file=sys.stderr)
        return False
    if committed != generate_suite(seed, version):
        print(f"make_suite: {path} differs from generate_suite({seed}, version={version}); "
              f"run python scripts/make_suite.py --version {version}", file=sys.stderr)
        return False
    try:
        parse_suite(committed)
    except ValueError as error:
        print(f"make_suite: {path}: {error}", file=sys.stderr)
        return False
    print(f"{path}: up to date, suite v{version} passes its checks")
    return True


if __name__ == "__main__":
    sys.exit(main())
