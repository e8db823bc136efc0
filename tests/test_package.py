"""The distribution's metadata: its name, version, license and citation agree with the code."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

import imitate

ROOT = Path(__file__).resolve().parents[1]


def test_the_distribution_name_version_and_license_agree() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == "imitate-oneshot"  # 'imitate' on the package index is another
    assert project["version"] == imitate.__version__
    assert project["license"] == "MIT"
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    extras = project["optional-dependencies"]
    assert {"export", "tensorboard", "wandb", "ray"} <= set(extras)
    assert "imitate-oneshot[export,tensorboard,wandb,ray]" in extras["dev"]  # tests cover all


def test_the_citation_file_names_this_release_and_the_paper() -> None:
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0" and citation["type"] == "software"
    assert citation["version"] == imitate.__version__
    assert citation["license"] == "MIT"
    paper = citation["references"][0]
    assert paper["title"] == "One-Shot Imitation Learning" and paper["year"] == 2017
    assert [a["family-names"] for a in paper["authors"]][:2] == ["Duan", "Andrychowicz"]


def test_the_shipped_policy_has_a_model_card_and_its_config() -> None:
    folder = ROOT / "imitate" / "pretrained"
    card = (folder / "MODEL_CARD.md").read_text()
    for heading in ("## Data", "## Training", "## Evaluation", "## Intended use and limits",
                    "## License and citation"):
        assert heading in card
    assert (folder / "config.json").is_file()
