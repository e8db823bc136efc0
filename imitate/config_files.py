"""Config files for commands: a JSON object of option values, read back with ``--config FILE``.

A command that takes one (``imitate train``, ``imitate eval``) calls ``accept_config_file`` on
its parser once every option is added, and its handler starts with ``args =
apply_config_file(args)``. The keys of a file are the options' argparse destinations: the flag
without its dashes, ``-`` written ``_`` (``--tasks-per-batch`` -> ``tasks_per_batch``,
``--no-expert`` -> ``no_expert``), as in the ``config.json`` a training run writes
(``TrainConfig.to_json``) and the one an evaluation writes (``config_file_json``).

Precedence: a flag given on the command line > the file's value > the built-in default. Required
options may come from the file. Values have the options' JSON types: integers and numbers for
numeric options, ``true``/``false`` for switches, strings for paths and choices, ``null`` for
an option whose default is unset, and for a ``NameList`` option a list of names or one
comma-separated string. A path is used as written: relative to the current folder, not to the
file (a run's ``config.json`` holds the paths as its command was given them).

An unknown key, a value of the wrong type or outside the option's choices, a missing file or one
that is not a JSON object: ``ValueError`` naming the file and the key (``imitate: error: ...``).

How it works: argparse fills the namespace only with the options given on the command line
(every option's default becomes ``argparse.SUPPRESS``; the defaults are kept aside, with the
options that were required), so the handler tells given flags from defaults without parsing the
command line again.
"""

from __future__ import annotations

import argparse
import difflib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imitate.files import atomic_write_bytes

#: The namespace attribute that carries a parser's ``FileOptions`` to its handler.
OPTIONS_ATTRIBUTE = "config_file_options"
#: The name of the config file a command writes into its output folder.
CONFIG_FILE_NAME = "config.json"


class NameList(argparse.Action):
    """A repeatable option of comma-separated names: ``--logger a,b --logger c`` gives
    ``["a", "b", "c"]``. Its default is a tuple, which the first use replaces."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        given = getattr(namespace, self.dest, None)
        names = list(given) if isinstance(given, list) else []
        names.extend(name.strip() for name in str(values).split(",") if name.strip())
        setattr(namespace, self.dest, names)


@dataclass(frozen=True)
class FileOptions:
    """The options of one command that a config file may set.

    Attributes:
        command: the command, in messages (``imitate train``).
        actions: option destination -> its argparse action, in the parser's order.
        defaults: option destination -> its built-in default.
        required: destinations that must have a value once the file is applied.
        named: words that stand for a file (``pretrained`` -> the shipped policy's config).
    """

    command: str
    actions: Mapping[str, argparse.Action]
    defaults: Mapping[str, Any]
    required: tuple[str, ...]
    named: Mapping[str, Path] = field(default_factory=dict)

    def flag(self, dest: str) -> str:
        """The command-line flag of option ``dest`` (``tasks_per_batch`` ->
        ``--tasks-per-batch``)."""
        strings = self.actions[dest].option_strings
        return next((s for s in strings if s.startswith("--")), strings[0])


def accept_config_file(parser: argparse.ArgumentParser, help_text: str,
                       named: Mapping[str, Path] | None = None) -> None:
    """Add ``--config FILE`` (help ``help_text``) to ``parser``, whose options are all added:
    from now on the namespace holds only the options given on the command line, and
    ``apply_config_file`` fills in the rest from the file and the defaults."""
    parser.add_argument("--config", type=Path, default=None, metavar="FILE", help=help_text)
    actions = {action.dest: action for action in parser._actions  # argparse lists no other way
               if action.option_strings and action.dest not in ("help", "config")
               and action.default is not argparse.SUPPRESS}
    defaults = {dest: action.default for dest, action in actions.items()}
    required = tuple(dest for dest, action in actions.items() if action.required)
    for action in actions.values():
        action.default, action.required = argparse.SUPPRESS, False
    parser.set_defaults(**{OPTIONS_ATTRIBUTE: FileOptions(
        command=parser.prog, actions=actions, defaults=defaults, required=required,
        named=dict(named or {}))})


def apply_config_file(args: argparse.Namespace) -> argparse.Namespace:
    """The command's options with the config file (``args.config``, when given) applied:
    command line > file > defaults. ``ValueError`` on a bad file or a required option that has
    no value. The namespace keeps ``config`` and the ``FileOptions``."""
    options: FileOptions = getattr(args, OPTIONS_ATTRIBUTE)
    values = dict(options.defaults)
    if args.config is not None:
        values.update(read_config_file(args.config, options))
    values.update({dest: getattr(args, dest) for dest in options.actions if hasattr(args, dest)})
    missing = [options.flag(dest) for dest in options.required if values[dest] is None]
    if missing:
        raise ValueError(f"{options.command}: {' and '.join(missing)} "
                         f"{'is' if len(missing) == 1 else 'are'} required, on the command "
                         "line or in --config FILE")
    return argparse.Namespace(**{**vars(args), **values})


def read_config_file(path: Path, options: FileOptions) -> dict[str, Any]:
    """The option values in the JSON file ``path`` (or the file a word in ``options.named``
    stands for), converted as the command line would (paths to ``Path``); ``ValueError``."""
    file = options.named.get(str(path), Path(path))
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"--config {path}: no such file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"--config {file} is not valid JSON ({error})") from None
    except OSError as error:
        raise ValueError(f"--config {file}: cannot read it ({error.strerror})") from None
    if not isinstance(data, dict):
        raise ValueError(f"--config {file} holds a JSON {_json_kind(data)}, not an object of "
                         f"{options.command} option values")
    return {key: _option_value(options, file, key, value) for key, value in data.items()}


def config_file_json(args: argparse.Namespace, exclude: Collection[str] = ()) -> dict[str, Any]:
    """The options of a command's applied namespace (``apply_config_file``) as a config file
    holds them (paths as strings, name lists as lists), in the parser's order, without the
    destinations in ``exclude``: what ``--config`` reads back to the same options."""
    options: FileOptions = getattr(args, OPTIONS_ATTRIBUTE)
    return {dest: _json_value(getattr(args, dest)) for dest in options.actions
            if dest not in exclude}


def write_config_file(path: Path, args: argparse.Namespace,
                      exclude: Collection[str] = ()) -> None:
    """Write ``config_file_json(args, exclude)`` to ``path`` atomically."""
    atomic_write_bytes(path, json.dumps(config_file_json(args, exclude), indent=2).encode())


def _option_value(options: FileOptions, file: Path, key: str, value: Any) -> Any:
    """A file's ``value`` for option ``key``, converted; ``ValueError`` naming the problem."""
    action = options.actions.get(key)
    if action is None:
        close = difflib.get_close_matches(key, list(options.actions), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"--config {file}: unknown key {key!r}{hint}; keys are the options of "
                         f"'{options.command} --help' without '--', with '_' for '-'")
    try:
        return _converted(action, value, options.defaults[key])
    except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
        raise ValueError(f"--config {file}: {key} {error}, got {json.dumps(value)}") from None


def _converted(action: argparse.Action, value: Any, default: Any) -> Any:
    """``value`` for ``action`` as the command line would give it; ``TypeError`` or
    ``ValueError`` saying what it must be."""
    if value is None:
        if default is None:
            return None
        raise TypeError(f"must be {_expected(action)}")
    if isinstance(action, NameList):
        names = value.split(",") if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise TypeError(f"must be {_expected(action)}")
        return [name.strip() for name in names if name.strip()]
    if action.nargs == 0:  # a switch (store_true, store_false)
        if not isinstance(value, bool):
            raise TypeError(f"must be {_expected(action)}")
        return value
    if action.type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"must be {_expected(action)}")
        converted = value
    elif action.type is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"must be {_expected(action)}")
        converted = float(value)
    else:
        if not isinstance(value, str):
            raise TypeError(f"must be {_expected(action)}")
        converted = action.type(value) if callable(action.type) else value
    if action.choices is not None and converted not in action.choices:
        raise ValueError(f"must be one of {', '.join(map(str, action.choices))}")
    return converted


def _expected(action: argparse.Action) -> str:
    """What a file's value for ``action`` must be, in words."""
    if isinstance(action, NameList):
        return "a list of names or a comma-separated string"
    if action.nargs == 0:
        return "true or false"
    if action.type is int:
        return "an integer"
    return "a number" if action.type is float else "a string"


def _json_kind(value: Any) -> str:
    """The JSON name of ``value``'s type (``array``, ``string``...)."""
    kinds = ((bool, "boolean"), (list, "array"), (str, "string"), (int | float, "number"))
    return next((name for kind, name in kinds if isinstance(value, kind)), "null")


def _json_value(value: Any) -> Any:
    """An option value as JSON: paths as strings, tuples as lists."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [_json_value(item) for item in value]
    return value
