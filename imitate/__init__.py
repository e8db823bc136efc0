"""One-shot imitation learning for block stacking (Duan et al., NeurIPS 2017), in PyBullet.

The simulation lives in the sibling package ``envs``; this package holds the learning side, the
``imitate`` command-line interface, and the Python API a notebook needs (README, "Python API")::

    import imitate

    imitate.generate(imitate.GenerateConfig(out="demos/api", tasks=("ab", "ab cd"), per_task=4))
    summary = imitate.train(imitate.TrainConfig(demos="demos/api", out="runs/api", steps=20,
                                                holdout_every=0))
    policy = imitate.load_checkpoint(summary.checkpoint).policy
    with imitate.DemoDataset("demos/api") as demos:
        agent = imitate.agent_for_demo(policy, demos.demo("ab cd", 0), ensemble=2)
    results = imitate.evaluate(imitate.EvalConfig(checkpoint=summary.checkpoint, tasks=("abc",),
                                                  episodes_per_task=1, ensemble=2))
    outcome = (results[0].success, results[0].failure, results[0].novelty)

The names below are imported on first use (PEP 562), so ``import imitate`` stays light: torch and
PyBullet load only when a name that needs them is touched.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.11.0"

#: Public name -> the module that defines it.
_API = {
    "GenerateConfig": "imitate.data.generate",
    "generate": "imitate.data.generate",
    "DemoDataset": "imitate.data.loader",
    "PairSampler": "imitate.data.loader",
    "Demo": "imitate.data.format",
    "ExportConfig": "imitate.data.export",
    "export_dataset": "imitate.data.export",
    "read_minari_export": "imitate.data.export_minari",
    "read_robomimic_export": "imitate.data.export_robomimic",
    "PolicyConfig": "imitate.model",
    "OneShotPolicy": "imitate.model",
    "DaggerConfig": "imitate.dagger",
    "TrainConfig": "imitate.train_config",
    "train": "imitate.training",
    "load_checkpoint": "imitate.checkpoint",
    "OneShotAgent": "imitate.agent",
    "agent_for_demo": "imitate.agent",
    "EvalConfig": "imitate.evaluation",
    "evaluate": "imitate.evaluation",
    "write_report": "imitate.report",
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    """Import ``name``'s module on first access and cache the name here."""
    if name not in _API:
        raise AttributeError(f"module 'imitate' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
