"""``imitate demos export``: the tiny dataset exported to Minari and to robomimic, read back with
the real ``minari.load_dataset`` and ``h5py`` and compared with the source demos array by array;
the env replays an exported episode; every refusal is one line."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium
import h5py
import minari
import numpy as np
import pytest
from conftest import HOLDOUT_EVERY

import envs
from imitate.cli import main
from imitate.data import (
    CorruptShardError,
    DatasetError,
    Demo,
    DemoDataset,
    append_shard,
    create_aggregate,
    holdout_split,
)
from imitate.data.export import (
    DEFAULT_HOLDOUT_EVERY,
    DEMO_KEYS,
    EXTRA_HINT,
    ExportConfig,
    ExportError,
    ExportSummary,
    export_dataset,
)
from imitate.data.export_minari import read_minari_export
from imitate.data.export_robomimic import read_robomimic_export
from imitate.data.format import MANIFEST_NAME
from imitate.files import sha256_file

MINARI_ID = "imitate/blockstack-demos-v0"  # the default id of the ``tiny_demos`` folder


@pytest.fixture(scope="module")
def source(tiny_demos: Path) -> list[tuple[Demo, bool]]:
    """The tiny dataset's demos in manifest order, each with whether training holds it out."""
    with DemoDataset(tiny_demos) as data:
        _, held_out = holdout_split(data, HOLDOUT_EVERY)
        return [(data.demo(task, position), position in held_out[task])
                for task in data.tasks for position in range(data.num_demos(task))]


@pytest.fixture(scope="module")
def minari_export(tiny_demos: Path, tmp_path_factory: pytest.TempPathFactory) -> ExportSummary:
    root = tmp_path_factory.mktemp("minari")
    return export_dataset(ExportConfig(tiny_demos, "minari", out=root,
                                       holdout_every=HOLDOUT_EVERY))


@pytest.fixture(scope="module")
def robomimic_export(tiny_demos: Path, tmp_path_factory: pytest.TempPathFactory
                     ) -> ExportSummary:
    out = tmp_path_factory.mktemp("robomimic") / "tiny.hdf5"
    return export_dataset(ExportConfig(tiny_demos, "robomimic", out=out,
                                       holdout_every=HOLDOUT_EVERY))


def assert_same_demos(exported: list[dict[str, Any]], source: list[tuple[Demo, bool]]) -> None:
    """Every field of every demo equal, arrays with the same dtype and shape."""
    assert set(DEMO_KEYS) == {field.name for field in dataclasses.fields(Demo)}
    assert len(exported) == len(source)
    for mine, (demo, held_out) in zip(exported, source, strict=True):
        for key in DEMO_KEYS:
            theirs = getattr(demo, key)
            if isinstance(theirs, np.ndarray):
                assert (mine[key].dtype, mine[key].shape) == (theirs.dtype, theirs.shape), key
                assert np.array_equal(mine[key], theirs), key
            else:
                assert type(mine[key]) is type(theirs) and mine[key] == theirs, key
        assert mine["held_out"] == held_out
        assert Demo(**{key: mine[key] for key in DEMO_KEYS}).steps == demo.steps


def last_step_only(steps: int, value: float) -> np.ndarray:
    signal = np.zeros(steps)
    signal[-1] = value
    return signal


def test_minari_export_loads_with_minari_and_round_trips(
        minari_export: ExportSummary, source: list[tuple[Demo, bool]], tiny_demos: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari_export.root))
    dataset = minari.load_dataset(MINARI_ID)
    assert minari_export.dataset_id == MINARI_ID
    assert (dataset.total_episodes, dataset.total_steps) == (12, sum(d.steps for d, _ in source))
    manifest = json.loads((tiny_demos / MANIFEST_NAME).read_text())
    assert dataset.env_spec.id == envs.ENV_ID
    assert dataset.env_spec.kwargs == manifest["env"]["kwargs"]
    env = gymnasium.make(envs.ENV_ID)
    assert dataset.observation_space == env.observation_space
    assert dataset.action_space == env.action_space
    env.close()
    meta = dataset.storage.metadata["imitate"]
    assert meta["source_manifest_sha256"] == sha256_file(tiny_demos / MANIFEST_NAME)
    assert (meta["suite_version"], meta["expert_version"]) == (manifest["suite_version"],
                                                               manifest["expert_version"])
    assert (meta["seed_stream"], meta["root_seed"]) == ("train_demo", 3)
    assert meta["holdout_every"] == HOLDOUT_EVERY and meta["imitate_version"]

    exported = read_minari_export(MINARI_ID)  # through minari.load_dataset
    assert_same_demos(exported, source)
    for episode, (demo, _) in zip(exported, source, strict=True):
        assert np.array_equal(episode["rewards"], last_step_only(demo.steps, 1.0))
        assert np.array_equal(episode["terminations"], last_step_only(demo.steps, True))
        assert not episode["truncations"].any()


def test_an_exported_minari_episode_replays_in_its_recovered_env(
        minari_export: ExportSummary, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reset with the episode's seed and options, step its executed actions: the env gives the
    exported observations, rewards, terminations and truncations exactly."""
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(minari_export.root))
    dataset = minari.load_dataset(MINARI_ID)
    index = int(np.argmin([len(e) for e in dataset.iterate_episodes()]))
    episode = dataset[index]
    meta = next(iter(dataset.storage.get_episode_metadata([index])))
    env = dataset.recover_environment()
    try:
        observation, info = env.reset(seed=meta["seed"], options=meta["options"])
        rows = [(observation, 0.0, False, False, info)]
        for action in episode.infos["executed_action"][1:]:
            rows.append(env.step(action))
    finally:
        env.close()
    for key, values in episode.observations.items():
        assert np.array_equal(np.stack([row[0][key] for row in rows]), values), key
    assert np.array_equal([row[1] for row in rows[1:]], episode.rewards)
    assert np.array_equal([row[2] for row in rows[1:]], episode.terminations)
    assert np.array_equal([row[3] for row in rows[1:]], episode.truncations)
    assert np.array_equal([row[4]["stage"] for row in rows], episode.infos["stage"])


def test_robomimic_export_has_robomimic_layout_and_round_trips(
        robomimic_export: ExportSummary, source: list[tuple[Demo, bool]],
        tiny_demos: Path) -> None:
    names = [f"demo_{number}" for number in range(len(source))]
    valid = [name for name, (_, held_out) in zip(names, source, strict=True) if held_out]
    assert valid == ["demo_2", "demo_5", "demo_8", "demo_11"]  # positions 2, 5 of each task
    with h5py.File(robomimic_export.path, "r") as file:
        data = file["data"]
        assert data.attrs["total"] == sum(demo.steps for demo, _ in source)
        env_args = json.loads(data.attrs["env_args"])
        manifest = json.loads((tiny_demos / MANIFEST_NAME).read_text())
        assert env_args == {"env_name": "BlockStack-v0", "type": 2,
                            "env_kwargs": manifest["env"]["kwargs"]}
        assert sorted(data) == sorted(names)
        for name, (demo, _) in zip(names, source, strict=True):
            group = data[name]
            assert group.attrs["num_samples"] == demo.steps == len(group["actions"])
            assert set(group["obs"]) == set(group["next_obs"]) == {"blocks", "block_mask",
                                                                   "gripper"}
            assert np.array_equal(group["obs/blocks"][1:], group["next_obs/blocks"][:-1])
            assert np.array_equal(group["dones"][:], last_step_only(demo.steps, 1))
            assert json.loads(group.attrs["env_kwargs"])["task"] == demo.task
        assert [n.decode() for n in file["mask/valid"][:]] == valid
        assert [n.decode() for n in file["mask/train"][:]] == [n for n in names
                                                                if n not in valid]
        assert json.loads(data.attrs["imitate"])["source_manifest_sha256"] == sha256_file(
            tiny_demos / MANIFEST_NAME)
    assert_same_demos(read_robomimic_export(robomimic_export.path), source)


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``imitate ARGS`` in this process: (exit status, stdout, stderr)."""
    try:
        status = main([str(arg) for arg in args])
    except SystemExit as stop:  # argparse's own errors
        status = int(stop.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(result: tuple[int, str, str], *words: str) -> None:
    status, _, err = result
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1, err
    assert lines[0].startswith("imitate: error:"), lines[0]
    for word in words:
        assert word in lines[0], lines[0]


def test_a_minari_export_into_a_relative_folder_that_does_not_exist_yet(
        tiny_demos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``--out datasets`` (relative, absent): minari 0.5.4 joins a relative data path onto
    itself, so the exporter hands it an absolute one."""
    monkeypatch.chdir(tmp_path)
    status, out, _ = run_main(capsys, "demos", "export", tiny_demos, "--format", "minari",
                              "--out", "datasets", "--quiet")
    assert status == 0, out
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    assert minari.load_dataset(MINARI_ID).total_episodes == 12


def test_the_command_writes_to_minaris_folder_and_refuses_an_existing_output(
        tiny_demos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "datasets"))
    command = ("demos", "export", tiny_demos, "--format", "minari", "--quiet")
    status, out, _ = run_main(capsys, *command)
    assert status == 0 and MINARI_ID in out and "12 demos" in out and "load it with" in out
    assert minari.load_dataset(MINARI_ID).total_episodes == 12
    assert_one_line_error(run_main(capsys, *command), "exists", "--overwrite")
    assert run_main(capsys, *command, "--overwrite")[0] == 0
    assert sorted(p.name for p in (tmp_path / "datasets" / "imitate").iterdir()) == [
        "blockstack-demos-v0", "namespace_metadata.json"]  # no temporary left

    out_file = tmp_path / "tiny.hdf5"
    command = ("demos", "export", tiny_demos, "--format", "robomimic", "--out", out_file)
    status, out, _ = run_main(capsys, *command)
    assert status == 0 and "robomimic file" in out and out_file.is_file()
    assert_one_line_error(run_main(capsys, *command), "exists", "--overwrite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["datasets", "tiny.hdf5"]


@pytest.mark.parametrize(("args", "words"), [
    (("{tmp}/absent", "--format", "minari"), ("no such dataset",)),
    (("{tmp}", "--format", "robomimic"), ("not a dataset",)),
    (("{demos}", "--format", "parquet"), ("--format", "parquet")),
    (("{demos}", "--format", "robomimic", "--name", "a/b-v0"), ("--name", "--out")),
    (("{demos}", "--format", "minari", "--name", "mine"), ("--name", "namespace/name-vN")),
    (("{demos}", "--format", "minari", "--holdout-every", "1"), ("--holdout-every",)),
    (("{demos}", "--format", "robomimic", "--out", "{tmp}"), ("is a folder",)),
])
def test_bad_input_is_a_one_line_error(args: tuple[str, ...], words: tuple[str, ...],
                                       tiny_demos: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    filled = [arg.format(tmp=tmp_path, demos=tiny_demos) for arg in args]
    assert_one_line_error(run_main(capsys, "demos", "export", *filled), *words)
    assert list(tmp_path.iterdir()) == []


def test_the_api_refuses_what_the_parser_would(tiny_demos: Path) -> None:
    with pytest.raises(ValueError, match="unknown --format 'parquet'; choose minari, robomimic"):
        ExportConfig(tiny_demos, "parquet")
    with pytest.raises(ExportError, match="--holdout-every"):
        ExportConfig(tiny_demos, "robomimic", holdout_every=-2)


def test_a_dataset_export_cannot_take_is_refused(tiny_demos: Path, tmp_path: Path) -> None:
    incomplete = tmp_path / "incomplete"
    shutil.copytree(tiny_demos, incomplete)
    manifest = json.loads((incomplete / MANIFEST_NAME).read_text())
    (incomplete / MANIFEST_NAME).write_text(json.dumps({**manifest, "complete": False}))
    with pytest.raises(DatasetError, match="incomplete"):
        export_dataset(ExportConfig(incomplete, "robomimic", out=tmp_path / "x.hdf5"))

    aggregate = tmp_path / "aggregate"
    create_aggregate(aggregate, {"env": manifest["env"]})
    with DemoDataset(tiny_demos) as data:
        append_shard(aggregate, [data.demo("ab", 0)])
    with pytest.raises(DatasetError, match="'aggregate' dataset"):
        export_dataset(ExportConfig(aggregate, "minari", out=tmp_path / "root"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["aggregate", "incomplete"]


@pytest.mark.parametrize("export_format", ["minari", "robomimic"])
def test_a_corrupt_shard_met_mid_export_leaves_no_output(
        export_format: str, tiny_demos: Path, tmp_path: Path) -> None:
    """The second task's shard is altered: the export fails after writing the first task's
    demos, and neither the output nor a temporary is left."""
    broken = tmp_path / "broken"
    shutil.copytree(tiny_demos, broken)
    shard = broken / "shards" / "t001-s0000.npz"
    content = bytearray(shard.read_bytes())
    content[len(content) // 2] ^= 0xFF
    shard.write_bytes(bytes(content))
    out = tmp_path / "out"
    out.mkdir()
    target = out / "x.hdf5" if export_format == "robomimic" else out
    with pytest.raises(CorruptShardError, match=r"t001-s0000\.npz"):
        export_dataset(ExportConfig(broken, export_format, out=target))
    assert [str(p.relative_to(out)) for p in out.rglob("*")
            if p.name != "namespace_metadata.json"] in ([], ["imitate"])


@pytest.mark.parametrize(("missing", "export_format"), [("minari", "minari"),
                                                        ("h5py", "robomimic")])
def test_a_missing_extra_names_the_install_command(
        missing: str, export_format: str, tiny_demos: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # what Python does for an absent package
    with pytest.raises(ExportError, match=rf"needs {missing}.*imitate-oneshot\[export\]"):
        export_dataset(ExportConfig(tiny_demos, export_format, out=tmp_path / "x"))
    assert EXTRA_HINT == "pip install 'imitate-oneshot[export]'"
    assert list(tmp_path.iterdir()) == []


def test_importing_imitate_and_the_exporters_loads_neither_minari_nor_h5py() -> None:
    code = ("import sys, imitate, imitate.cli, imitate.data.commands, imitate.data.export, "
            "imitate.data.export_minari, imitate.data.export_robomimic; "
            "print(sorted({'minari', 'h5py'} & set(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_the_default_validation_split_is_the_one_training_holds_out() -> None:
    from imitate.train_config import TrainConfig

    defaults = {field.name: field.default for field in dataclasses.fields(TrainConfig)}
    assert defaults["holdout_every"] == DEFAULT_HOLDOUT_EVERY
    assert ExportConfig(Path("d"), "minari").holdout_every == DEFAULT_HOLDOUT_EVERY
