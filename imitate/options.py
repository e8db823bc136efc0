"""Validation shared by the entry points' config dataclasses (their errors name the CLI flag)."""

from __future__ import annotations

from collections.abc import Iterable


def flag(name: str, prefix: str = "--") -> str:
    """The command-line flag of a config field: ``pairs_per_task`` -> ``--pairs-per-task``."""
    return prefix + name.replace("_", "-")


def require_positive_ints(config: object, names: Iterable[str], prefix: str = "--") -> None:
    """Raise ``ValueError`` naming the flag unless every field in ``names`` is an int >= 1."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{flag(name, prefix)} must be a positive integer, got {value!r}")


def require_choices(config: object, choices: dict[str, Iterable[str]], prefix: str = "--") -> None:
    """Raise ``ValueError`` naming the flag unless each field in ``choices`` holds one of its
    allowed values."""
    for name, allowed in choices.items():
        value, allowed = getattr(config, name), tuple(allowed)
        if value not in allowed:
            raise ValueError(f"unknown {flag(name, prefix)} {value!r}; choose "
                             f"{', '.join(allowed)}")


def add_quiet(parser: object, progress: str = "progress") -> None:
    """``--quiet`` on a sub-command: no ``progress`` output (results still print). Every
    command takes it, so scripts can pass it to any of them."""
    parser.add_argument("--quiet", action="store_true",  # type: ignore[attr-defined]
                        help=f"no {progress} output (results still print)")


def check_episode_options(*, seed: int, episode: int, ensemble: int) -> None:
    """``ValueError`` unless the options naming an evaluation episode are valid."""
    if episode < 0 or seed < 0:
        raise ValueError("--seed and --episode must be >= 0")
    if ensemble < 1:
        raise ValueError(f"--ensemble must be at least 1, got {ensemble}")
