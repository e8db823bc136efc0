"""The block-stacking world: PyBullet scene, Franka Panda, task layouts and ``BlockStack-v0``.

``import envs`` registers the gymnasium id ``BlockStack-v0``::

    import envs, gymnasium
    env = gymnasium.make("BlockStack-v0", task="ab cde")
"""

from gymnasium.envs.registration import register, registry

from envs.expert import EXPERT_VERSION, NoisyExpert, ScriptedExpert
from envs.stack_env import BlockStackEnv
from envs.suite import SUITE_VERSION, Suite, load_suite
from envs.tasks import Stage, Task, TaskClass, parse_task, parse_task_class, task_classes

ENV_ID = "BlockStack-v0"

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="envs.stack_env:BlockStackEnv")

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
