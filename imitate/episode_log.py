"""The episode log of an evaluation: each finished episode's result, one JSON line, appended as
the episode finishes, so that an interrupted ``imitate eval`` resumes where it stopped.

The file (``episodes.jsonl`` in the report folder) is text, one JSON object per line:

- line 1, the header: ``{"format": "imitate-episode-log", "format_version": 1, ...}`` followed by
  the fields that fix the episodes (``imitate.evaluation.log_header``: checkpoint SHA-256, tasks,
  episodes per task, ensemble, seed, ...). A log is resumed only by an evaluation whose header is
  equal, field by field;
- every further line: one record, a dataclass as ``dataclasses.asdict`` gives it (an
  ``EpisodeResult``), written with one ``write``, flushed and fsynced before the next one, so a
  crash or a kill loses at most the line being written.

``read_log`` checks the header and parses the records; ``read_header`` gives the header of any
log, for readers that do not resume it. A last line cut short by a crash (no
newline at its end, or not JSON) is dropped with a logged warning; any other line that is not a
record is an error. ``appending`` rewrites the log atomically (``imitate.files``) with the
header and the records to keep, then yields a function that appends one record durably.

Errors (``EpisodeLogError``, a ``ValueError``: one line, exit 2 in the CLI) name the file and the
two ways out of them, another ``--out`` folder or ``--restart``; a record that cannot be
appended (full disk) is a ``WriteError``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from imitate.files import WriteError, atomic_write_bytes

logger = logging.getLogger(__name__)

#: The header's ``format`` value, which marks a file as an imitate episode log.
LOG_FORMAT = "imitate-episode-log"
#: Version of the layout described above.
LOG_FORMAT_VERSION = 1
#: What a refusal tells the user to do instead.
_WAYS_OUT = "use --out with another folder, or --restart to discard it"
#: Longest value shown in a mismatch message (characters of its JSON text).
_SHOWN_CHARS = 24

Record = TypeVar("Record")


class EpisodeLogError(ValueError):
    """A log that this evaluation cannot resume (the message says why and what to do)."""


def _full_header(fields: dict[str, Any]) -> dict[str, Any]:
    return {"format": LOG_FORMAT, "format_version": LOG_FORMAT_VERSION, **fields}


def _shown(header: dict[str, Any], name: str) -> str:
    """A header's value as JSON cut to ``_SHOWN_CHARS`` characters (a 64-digit SHA-256, a task
    list), or "absent"."""
    if name not in header:
        return "absent"
    text = json.dumps(header[name])
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS - 3] + "..."


def _parsed_header(path: Path, line: str, advice: str = "") -> dict[str, Any]:
    """``line`` (the first line of the file at ``path``) as our full header; ``EpisodeLogError``
    ending in ``advice`` when it is not one."""
    try:
        found = json.loads(line)
    except ValueError:
        found = None
    if not isinstance(found, dict) or found.get("format") != LOG_FORMAT:
        raise EpisodeLogError(f"{path} is not an imitate episode log (its first line is not "
                              f"the header imitate writes){advice}")
    return found


def check_header(path: Path, line: str, fields: dict[str, Any]) -> None:
    """``EpisodeLogError`` unless ``line`` (the log's first line) is our header holding exactly
    ``fields``; a mismatch names the first differing field, in ``fields``' order."""
    found = _parsed_header(path, line, f"; {_WAYS_OUT}")
    expected = _full_header(fields)
    absent = object()
    for name in [*expected, *sorted(set(found) - set(expected))]:
        if found.get(name, absent) != expected.get(name, absent):
            raise EpisodeLogError(f"{path} logs another evaluation ({name}: "
                                  f"{_shown(found, name)} in the log, {_shown(expected, name)} "
                                  f"now); {_WAYS_OUT}")


def _record(path: Path, number: int, line: str, record_type: type[Record]) -> Record:
    """Line ``number`` (1-based) as a ``record_type``; ``ValueError`` when it is not one."""
    names = {field.name for field in dataclasses.fields(record_type)}  # type: ignore[arg-type]
    try:
        data = json.loads(line)
    except ValueError:
        data = None
    if not isinstance(data, dict) or set(data) != names:
        raise EpisodeLogError(f"{path}: line {number} is not an episode record; {_WAYS_OUT}")
    return record_type(**data)


def read_header(path: Path) -> dict[str, Any]:
    """The header fields of the episode log at ``path`` (without ``format`` and
    ``format_version``), for readers that take any log: ``EpisodeLogError`` (one line) when its
    first line is not our header."""
    with Path(path).open("rb") as handle:
        line = handle.readline().decode("utf-8", errors="replace")
    return {name: value for name, value in _parsed_header(path, line).items()
            if name not in ("format", "format_version")}


def read_log(path: Path, fields: dict[str, Any], record_type: type[Record]) -> list[Record]:
    """The records of the log at ``path`` (file order), after checking its header against
    ``fields`` (``check_header``). A last line cut short (no newline, or not a record) is
    dropped with a warning: a crash while it was being written."""
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    lines = text.split("\n")
    check_header(path, lines[0], fields)
    *complete, last = lines[1:]  # ``last``: after the final newline, empty unless cut short
    records = []
    for number, line in enumerate(complete, start=2):
        try:
            records.append(_record(path, number, line, record_type))
        except EpisodeLogError:
            if number < len(lines) - 1 or last:
                raise
            last = line  # the last newline-terminated line is itself cut short
    if last:
        logger.warning("%s: dropped its last line, cut short by an interruption "
                       "(%d characters); that episode runs again", path, len(last))
    return records


def _line(data: dict[str, Any]) -> bytes:
    return (json.dumps(data) + "\n").encode()


@contextlib.contextmanager
def appending(path: Path, fields: dict[str, Any], records: Sequence[Any]
              ) -> Iterator[Callable[[Any], None]]:
    """Rewrite the log at ``path`` atomically with the header (``fields``) and ``records`` (the
    ones to keep), then yield ``append(record)``, which writes one record (a dataclass) as a
    line and fsyncs it before it returns. ``WriteError`` when a line cannot be written (the
    lines before it stay)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, b"".join(_line(data) for data in
                                      [_full_header(fields), *map(dataclasses.asdict, records)]))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        def append(record: Any) -> None:
            data = _line(dataclasses.asdict(record))
            try:
                while data:  # unbuffered: nothing is left to flush, or to fail, on close
                    data = data[os.write(fd, data):]
                os.fsync(fd)
            except OSError as error:
                cause = error.strerror or type(error).__name__
                raise WriteError(error.errno, f"could not write {path}: {cause}; the episodes "
                                 "logged before stay, and the same command resumes after "
                                 "them") from error

        yield append
    finally:
        os.close(fd)
