"""The block-stacking world: PyBullet scene, Franka Panda, task layouts and ``BlockStack-v0``.

``import envs`` registers the gymnasium id ``BlockStack-v0``::

    import envs, gymnasium
    env = gymnasium.make("BlockStack-v0", task="ab cde")

The names below are imported lazily (PEP 562): ``import envs`` (or ``envs.tasks``, ``envs.suite``,
``envs.predicates``, ``envs.expert``) does not import PyBullet; ``envs.BlockStackEnv``, the
registered env and ``envs.sim`` do, when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gymnasium.envs.registration import register, registry

if TYPE_CHECKING:
    from envs.expert import EXPERT_VERSION, NoisyExpert, ScriptedExpert
    from envs.stack_env import BlockStackEnv
    from envs.suite import SUITE_VERSION, Suite, load_suite
    from envs.tasks import Stage, Task, TaskClass, parse_task, parse_task_class, task_classes

ENV_ID = "BlockStack-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="envs.stack_env:BlockStackEnv")

#: Lazily imported names, by the submodule that defines them.
_LAZY_NAMES = {
    "EXPERT_VERSION": "envs.expert",
    "NoisyExpert": "envs.expert",
    "ScriptedExpert": "envs.expert",
    "BlockStackEnv": "envs.stack_env",
    "SUITE_VERSION": "envs.suite",
    "Suite": "envs.suite",
    "load_suite": "envs.suite",
    "Stage": "envs.tasks",
    "Task": "envs.tasks",
    "TaskClass": "envs.tasks",
    "parse_task": "envs.tasks",
    "parse_task_class": "envs.tasks",
    "task_classes": "envs.tasks",
}
#: Submodules that ``envs.NAME`` imports on first access.
_SUBMODULES = ("constants", "expert", "panda", "predicates", "scene", "sim", "stack_env",
               "suite", "tasks")

__all__ = [
    "ENV_ID",
    "EXPERT_VERSION",
    "SUITE_VERSION",
    "BlockStackEnv",
    "NoisyExpert",
    "ScriptedExpert",
    "Stage",
    "Suite",
    "Task",
    "TaskClass",
    "load_suite",
    "parse_task",
    "parse_task_class",
    "task_classes",
]


def __getattr__(name: str) -> Any:
    """Import the submodule behind ``name`` on first access and cache the value in the module."""
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(_LAZY_NAMES[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY_NAMES, *_SUBMODULES})
