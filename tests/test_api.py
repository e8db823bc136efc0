"""The Python API: ``import imitate`` is light, and the README's example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import imitate
from envs.predicates import FAILURE_CLASSES

README = Path(__file__).parent.parent / "README.md"


def readme_api_example() -> str:
    """The Python block of the README's "Python API" section."""
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_import_imitate_loads_neither_torch_nor_pybullet() -> None:
    code = ("import sys, imitate, envs, envs.tasks; "
            "print(sorted({'torch', 'pybullet'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_every_exported_name_resolves_to_its_defining_module() -> None:
    for name in imitate.__all__:
        value = getattr(imitate, name)
        if name != "__version__":
            assert value.__module__ == imitate._API[name], name
    with pytest.raises(AttributeError, match="has no attribute 'trian'"):
        imitate.trian  # noqa: B018


def test_the_readme_api_example_runs(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", readme_api_example()], cwd=tmp_path,
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(README.parent)})
    assert done.returncode == 0, done.stderr
    success, failure, novelty = done.stdout.split()
    assert (success, failure) == ("True", "None") or failure in FAILURE_CLASSES
    assert novelty == "unseen"  # "abc" (class 3) is in none of its training classes (2, 2-2)
    assert (tmp_path / "runs" / "api" / "policy.pt").is_file()
