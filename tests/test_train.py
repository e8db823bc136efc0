"""Behaviour-cloning training: learning on a tiny real dataset, resume bit for bit after kill -9,
and one-line errors for bad input. Real demos from the expert, real processes, real files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch
from conftest import HOLDOUT_EVERY, one_line_error, run_cli

import envs
from envs.expert import EXPERT_VERSION
from envs.tasks import parse_task
from imitate.agent import agent_for_demo
from imitate.checkpoint import CheckpointError, load_checkpoint, resolve_checkpoint
from imitate.data import DemoDataset, GenerateConfig, generate
from imitate.data import format as fmt
from imitate.files import sha256_file
from imitate.novelty import (
    SEEN,
    UNKNOWN,
    UNSEEN,
    novelty,
    tasks_in_test_classes,
    trained_classes,
    training_tasks,
)
from imitate.quickstart import (
    FINE_TUNE_LR,
    PRETRAINED_UNSEEN_TASKS,
    PRETRAINED_VIDEO_TASK,
    QUICKSTART_TASKS,
    QUICKSTART_TEST_TASKS,
    held_out_accuracy,
    set_aside_if_stale,
)
from imitate.train_config import TrainConfig
from imitate.training import train


def small_config(demos: Path, out: Path, **overrides: object) -> TrainConfig:
    settings = {"steps": 6, "tasks_per_batch": 2, "pairs_per_task": 8, "holdout_every":
                HOLDOUT_EVERY, "log_every": 1, "checkpoint_every": 3, "threads": 1,
                "quiet": True}
    settings.update(overrides)
    return TrainConfig(demos=demos, out=out, **settings)


def test_training_lowers_the_loss_and_beats_a_constant_policy(tiny_demos: Path,
                                                             tmp_path: Path) -> None:
    config = small_config(tiny_demos, tmp_path / "run", steps=90, tasks_per_batch=4,
                          pairs_per_task=32, log_every=5, checkpoint_every=90, threads=2)
    summary = train(config)
    assert summary.step == 90 and summary.checkpoint.is_file()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [row["step"] for row in rows] == list(range(5, 95, 5))
    first, last = rows[0]["loss"], np.mean([row["loss"] for row in rows[-4:]])
    assert last < 0.75 * first, (first, last)
    assert {"val_loss", "val_acc_all", "train_acc_gripper"} <= set(rows[-1])
    policy_accuracy, constant_accuracy, frames = held_out_accuracy(
        summary.checkpoint, tiny_demos, HOLDOUT_EVERY, ensemble=4)
    assert frames > 50
    assert policy_accuracy > constant_accuracy + 0.05, (policy_accuracy, constant_accuracy)
    saved = load_checkpoint(summary.checkpoint)
    assert saved.step == 90 and saved.training["config"]["steps"] == 90
    assert saved.env["id"] == "BlockStack-v0" and saved.suite_version >= 1


def test_resume_continues_exactly_where_the_run_stopped(tiny_demos: Path,
                                                        tmp_path: Path) -> None:
    whole = train(small_config(tiny_demos, tmp_path / "whole"))
    train(small_config(tiny_demos, tmp_path / "parts", steps=3))
    resumed = train(small_config(tiny_demos, tmp_path / "parts", resume=True))
    assert (resumed.start_step, resumed.step) == (3, 6)
    a, b = load_checkpoint(whole.checkpoint), load_checkpoint(resumed.checkpoint)
    for name, tensor in a.policy.state_dict().items():
        assert torch.equal(tensor, b.policy.state_dict()[name]), name

    def losses(run: Path) -> list[tuple[int, float]]:
        return [(r["step"], r["loss"]) for r in map(json.loads, (run / "metrics.jsonl").open())]

    assert losses(tmp_path / "whole") == losses(tmp_path / "parts")


def test_snapshots_keep_the_weights_every_n_steps_and_may_start_on_resume(
        tiny_demos: Path, tmp_path: Path) -> None:
    whole = train(small_config(tiny_demos, tmp_path / "whole"))
    train(small_config(tiny_demos, tmp_path / "parts", steps=3))  # no snapshots yet
    train(small_config(tiny_demos, tmp_path / "parts", resume=True, snapshot_every=2))
    snapshots = sorted((tmp_path / "parts" / "snapshots").iterdir())
    assert [p.name for p in snapshots] == ["step-0000004.pt", "step-0000006.pt"]
    last = load_checkpoint(snapshots[-1])
    assert last.step == 6 and last.optimizer_state is None  # weights only
    final = load_checkpoint(whole.checkpoint).policy.state_dict()
    for name, tensor in last.policy.state_dict().items():
        assert torch.equal(tensor, final[name]), name  # snapshots change nothing learnt
    assert not (tmp_path / "whole" / "snapshots").exists()
    one_line_error(run_cli("train", "--demos", str(tiny_demos), "--out", str(tmp_path / "bad"),
                           "--snapshot-every", "-1"), "--snapshot-every")


def test_kill_9_then_resume_matches_an_uninterrupted_run(tiny_demos: Path,
                                                         tmp_path: Path) -> None:
    run = tmp_path / "killed"
    args = ["train", "--demos", str(tiny_demos), "--out", str(run), "--tasks-per-batch", "2",
            "--pairs-per-task", "8", "--checkpoint-every", "2", "--log-every", "1",
            "--holdout-every", str(HOLDOUT_EVERY), "--threads", "1", "--compile", "off",
            "--quiet"]  # the reference below runs eager too: same path, same numbers
    process = subprocess.Popen([sys.executable, "-m", "imitate.cli", *args, "--steps", "100000"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (run / "policy.pt").exists() and time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.05)
    time.sleep(0.5)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    stopped_at = load_checkpoint(run / "policy.pt").step
    assert stopped_at >= 2
    target = stopped_at + 3
    done = run_cli(*args, "--resume", "--steps", str(target))
    assert done.returncode == 0, done.stderr
    assert f"resumed at step {stopped_at}" in done.stdout
    reference = train(small_config(tiny_demos, tmp_path / "reference", steps=target,
                                   checkpoint_every=2))
    a, b = load_checkpoint(run / "policy.pt"), load_checkpoint(reference.checkpoint)
    assert a.step == b.step == target
    for name, tensor in a.policy.state_dict().items():
        assert torch.equal(tensor, b.policy.state_dict()[name]), name
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").open()]
    assert steps == list(range(1, target + 1))  # no duplicated or missing rows
    assert not list(run.glob(".*.tmp*"))


def test_train_cli_prints_a_summary(tiny_demos: Path, tmp_path: Path) -> None:
    done = run_cli("train", "--demos", str(tiny_demos), "--out", str(tmp_path / "cli"),
                   "--steps", "2", "--tasks-per-batch", "2", "--pairs-per-task", "4", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "step 2/2" in done.stdout and "checkpoint:" in done.stdout
    assert "eager attention: --compile auto: 2 steps < 1000" in done.stdout  # too short to pay
    config = json.loads((tmp_path / "cli" / "config.json").read_text())
    assert config["algo"] == "bc" and config["lr"] == 1e-3
    rows = [json.loads(line) for line in (tmp_path / "cli" / "metrics.jsonl").read_text()
            .splitlines()]
    assert rows[-1]["cpu_s"] > 0  # training CPU time, for comparisons at equal CPU time


def test_the_dropout_rule_and_context_form_are_set_stored_and_used_by_the_ensemble(
        tiny_demos: Path, tmp_path: Path) -> None:
    out = tmp_path / "rule"
    done = run_cli("train", "--demos", str(tiny_demos), "--out", str(out), "--steps", "2",
                   "--tasks-per-batch", "2", "--pairs-per-task", "4", "--keep-fraction", "0.2",
                   "--min-kept-frames", "30", "--context-form", "0.5", "--quiet")
    assert done.returncode == 0, done.stderr
    policy = load_checkpoint(out / "policy.pt").policy
    assert (policy.config.keep_fraction, policy.config.min_kept_frames) == (0.2, 30)
    assert policy.config.context_form == "0.5"
    with DemoDataset(tiny_demos) as data:
        demo = data.demo("ab", 0)
        agent = agent_for_demo(policy, demo, ensemble=3)
    frames = len(demo.blocks)
    kept = min(frames, max(30, int(0.2 * frames)))
    assert agent.encoding.own.shape[:3] == (3, 2, kept)  # (E, K, T~)
    assert agent.demo_frames.shape == (3, kept) and agent.demo_frames.max() < frames
    base = ("train", "--demos", str(tiny_demos), "--steps", "1", "--quiet", "--out",
            str(tmp_path / "x"))
    one_line_error(run_cli(*base, "--keep-fraction", "0"), "--keep-fraction")
    one_line_error(run_cli(*base, "--min-kept-frames", "0"), "--min-kept-frames")
    one_line_error(run_cli("train", "--demos", str(tiny_demos), "--out", str(out), "--steps",
                           "4", "--tasks-per-batch", "2", "--pairs-per-task", "4",
                           "--keep-fraction", "0.2", "--min-kept-frames", "30", "--resume",
                           "--quiet"), "context_form", "'0.5'")


def test_bad_training_input_gives_one_line_errors(tiny_demos: Path, tmp_path: Path) -> None:
    base = ("train", "--demos", str(tiny_demos), "--steps", "1", "--tasks-per-batch", "1",
            "--pairs-per-task", "2", "--quiet")
    one_line_error(run_cli("train", "--demos", str(tmp_path / "absent"), "--out",
                           str(tmp_path / "x"), "--quiet"), "absent")
    one_line_error(run_cli(*base, "--out", str(tmp_path / "x"), "--steps", "0"), "--steps")
    one_line_error(run_cli(*base, "--out", str(tmp_path / "x"), "--lr", "-1"), "--lr")
    one_line_error(run_cli(*base, "--out", str(tmp_path / "x"), "--holdout-every", "1"),
                   "--holdout-every")
    if not torch.cuda.is_available():
        one_line_error(run_cli(*base, "--out", str(tmp_path / "x"), "--device", "cuda"), "CUDA")
    existing = tmp_path / "existing"
    assert run_cli(*base, "--out", str(existing)).returncode == 0
    one_line_error(run_cli(*base, "--out", str(existing)), "already holds a run", "--resume")
    one_line_error(run_cli(*base, "--out", str(existing), "--resume", "--lr", "0.01"),
                   "lr", "0.001")
    (existing / "policy.pt").write_bytes(b"not a checkpoint")
    one_line_error(run_cli(*base, "--out", str(existing), "--resume"),
                   "not a readable checkpoint")


def test_training_refuses_a_corrupt_dataset(tiny_demos: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_demos, corrupt)
    shard = sorted((corrupt / "shards").glob("*.npz"))[-1]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    done = run_cli("train", "--demos", str(corrupt), "--out", str(tmp_path / "run"), "--steps",
                   "1", "--quiet")
    one_line_error(done, shard.name, "corrupt")
    assert not (tmp_path / "run" / "policy.pt").exists()


def test_tiny_quickstart_runs_end_to_end(tmp_path: Path) -> None:
    done = run_cli("quickstart", "--tiny", "--out", str(tmp_path / "qs"), "--workers", "2")
    assert done.returncode == 0, done.stderr
    assert "quickstart (tiny) done in " in done.stdout
    qs = tmp_path / "qs"
    assert (qs / "run" / "policy.pt").is_file()
    for report in ("pretrained-eval", "eval"):
        assert (qs / report / "report.html").is_file() and (qs / report / "report.md").is_file()
    rows = {task: line for line in done.stdout.splitlines()
            for task in (*PRETRAINED_UNSEEN_TASKS, *QUICKSTART_TEST_TASKS)
            if line.startswith(f"   {task} ")}
    assert set(rows) == {*PRETRAINED_UNSEEN_TASKS, *QUICKSTART_TEST_TASKS}
    assert all(" unseen " in rows[task] for task in PRETRAINED_UNSEEN_TASKS), rows
    # the fine-tuned policy trained on the shipped policy's tasks too: 2+2 (a suite v2 training
    # class) is seen; 3 and 3+1 are test classes, which neither trained on
    assert [rows[task].split()[-4] for task in QUICKSTART_TEST_TASKS] == [
        SEEN, UNSEEN, UNSEEN], rows
    tuned = load_checkpoint(qs / "run" / "policy.pt")
    assert tuned.training["init_from"]["path"] == "pretrained"
    shown = PRETRAINED_VIDEO_TASK.replace(" ", "_")
    for name in ("d_ab_c-ep000.mp4", f"pretrained-{shown}-ep000.mp4"):
        video = qs / "videos" / name
        with imageio.get_reader(video) as reader:
            assert reader.count_frames() > 20
    assert run_cli("demos", "verify", str(qs / "demos")).returncode == 0
    rerun = run_cli("quickstart", "--tiny", "--out", str(qs))
    assert rerun.returncode == 0, rerun.stderr  # resumes: the data and the run are kept


def test_quickstart_sets_aside_demos_of_another_expert_version(tmp_path: Path) -> None:
    """After an upgrade of the expert, a re-run starts afresh and keeps the old folder."""
    out = tmp_path / "qs"
    generate(GenerateConfig(out=out / "demos", per_task=1, tasks=["ab"], workers=1, seed=0))
    lines: list[str] = []
    assert set_aside_if_stale(out, lines.append) is not None  # other tasks: moved to qs-old
    assert lines[-1].startswith(f"{out} holds demos of another quickstart")
    generate(GenerateConfig(out=out / "demos", per_task=1, tasks=QUICKSTART_TASKS, workers=2,
                            seed=0))
    assert set_aside_if_stale(out, lines.append) is None and out.is_dir()  # same version: stays
    manifest = fmt.load_manifest(out / "demos")
    manifest["expert_version"] = EXPERT_VERSION - 1
    fmt.save_manifest(out / "demos", manifest)
    (tmp_path / f"qs-expert{EXPERT_VERSION - 1}").mkdir()  # an earlier upgrade's leftovers
    aside = set_aside_if_stale(out, lines.append)
    assert aside == tmp_path / f"qs-expert{EXPERT_VERSION - 1}-2"
    assert not out.exists() and (aside / "demos" / "manifest.json").is_file()
    assert f"expert version {EXPERT_VERSION - 1}" in lines[-1] and str(aside) in lines[-1]


def test_quickstart_sets_aside_a_run_that_is_not_its_fine_tuning(tmp_path: Path) -> None:
    """A 0.9 quickstart folder (same demos, a run trained from scratch) would refuse to resume:
    it is moved aside; a run that fine-tunes the shipped policy stays."""
    out = tmp_path / "qs"
    lines: list[str] = []
    for start, kept in ((None, False), (Path("pretrained"), True)):
        generate(GenerateConfig(out=out / "demos", per_task=1, tasks=QUICKSTART_TASKS,
                                workers=1, seed=0))
        (out / "run").mkdir()
        run = TrainConfig(demos=out / "demos", out=out / "run", lr=FINE_TUNE_LR, init_from=start)
        (out / "run" / "config.json").write_text(json.dumps(run.to_json()))
        aside = set_aside_if_stale(out, lines.append)
        assert (aside is None) == kept, lines
    assert "not a fine-tuning of the shipped policy" in lines[0]
    assert (tmp_path / "qs-old" / "run" / "config.json").is_file() and out.is_dir()


@pytest.mark.parametrize("conditioning", ["snapshot", "final"])
def test_snapshot_and_final_conditioning_train_and_act(tiny_demos: Path, tmp_path: Path,
                                                       conditioning: str) -> None:
    summary = train(small_config(tiny_demos, tmp_path / conditioning, steps=2,
                                 conditioning=conditioning))
    policy = load_checkpoint(summary.checkpoint).policy
    assert policy.config.conditioning == conditioning
    with DemoDataset(tiny_demos) as data:
        demo = data.demo("ab", 0)
        agent = agent_for_demo(policy, demo, ensemble=10)
        assert agent.encoding.own.shape[0] == 1  # one copy
        assert agent.encoding.own.shape[2] == 1  # one frame (1 stage)
        action = agent.act({"blocks": demo.blocks[0], "gripper": demo.gripper[0]})
    assert action.shape == (4,) and abs(float(action[3])) == 1.0


# --- no training on evaluation data ----------------------------------------------------------
@pytest.fixture(scope="module")
def test_class_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 demos of 'ab' and of 'bca': 'bca' relabels the suite v2 test task 'abc' (class 3)."""
    out = tmp_path_factory.mktemp("guard") / "demos"
    done = run_cli("demos", "generate", "--out", str(out), "--tasks", "ab,bca", "--per-task",
                   "3", "--seed", "5", "--quiet")
    assert done.returncode == 0, done.stderr
    return out


def test_training_refuses_a_relabelled_test_task_and_writes_nothing(test_class_demos: Path,
                                                                    tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = run_cli("train", "--demos", str(test_class_demos), "--out", str(out), "--steps", "2",
                   "--quiet")
    one_line_error(done, "evaluation data", "'bca' (relabels test task 'abc')", "suite v2",
                   "--allow-test-tasks")
    assert not out.exists()


def test_training_refuses_the_test_task_itself(tmp_path: Path) -> None:
    demos = tmp_path / "demos"
    done = run_cli("demos", "generate", "--out", str(demos), "--split", "test", "--tasks", "abc",
                   "--per-task", "2", "--quiet")
    assert done.returncode == 0, done.stderr
    done = run_cli("train", "--demos", str(demos), "--out", str(tmp_path / "run"), "--quiet")
    one_line_error(done, "'abc' (test task)")
    assert not (tmp_path / "run").exists()


def test_training_refuses_demos_from_an_evaluation_stream(tiny_demos: Path,
                                                          tmp_path: Path) -> None:
    copy = tmp_path / "demos"
    shutil.copytree(tiny_demos, copy)
    manifest = fmt.load_manifest(copy)
    manifest["params"]["stream"] = "eval_demo"  # as 'generate --split test' wrote before 0.6
    fmt.save_manifest(copy, manifest)
    with pytest.raises(ValueError, match="evaluation seed stream 'eval_demo'"):
        train(small_config(copy, tmp_path / "run", steps=1))
    assert not (tmp_path / "run").exists()


def test_allow_test_tasks_trains_and_the_checkpoint_records_it(test_class_demos: Path,
                                                               tmp_path: Path) -> None:
    summary = train(small_config(test_class_demos, tmp_path / "run", steps=1,
                                 allow_test_tasks=True))
    saved = load_checkpoint(summary.checkpoint)
    assert saved.training["allow_test_tasks"] is True
    assert saved.training["config"]["allow_test_tasks"] is True
    assert any("'bca'" in line for line in saved.training["evaluation_data"])
    assert parse_task("abc").task_class in trained_classes(saved.training)


def test_a_clean_dataset_is_recorded_as_clean(tiny_policy: Path) -> None:
    saved = load_checkpoint(tiny_policy)
    assert saved.training["allow_test_tasks"] is False
    assert saved.training["evaluation_data"] == []


def test_quickstart_evaluates_only_classes_it_never_trains_on() -> None:
    classes = frozenset(parse_task(layout).task_class for layout in QUICKSTART_TASKS)
    assert [novelty(layout, classes) for layout in QUICKSTART_TEST_TASKS] == [UNSEEN] * 3
    assert tasks_in_test_classes(QUICKSTART_TASKS, envs.load_suite()) == []  # trainable


def test_learning_curves_evaluate_each_snapshot_once(tiny_demos: Path, tmp_path: Path) -> None:
    """``scripts/learning_curves.py``: every kept snapshot is evaluated on the fixed tasks and
    logged; a second call evaluates only snapshots added since."""
    run = tmp_path / "run"
    train(small_config(tiny_demos, run, steps=2, snapshot_every=2))
    script = Path(__file__).resolve().parents[1] / "scripts" / "learning_curves.py"
    command = [sys.executable, str(script), "--runs", str(run), "--out",
               str(tmp_path / "curves.png"), "--tasks", "ab", "--episodes", "2", "--ensemble", "1"]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    log = run / "snapshots" / "success.jsonl"
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["step"], r["episodes"], list(r["by_stages"])) for r in rows] == [(2, 2, ["1"])]
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    train(small_config(tiny_demos, run, steps=4, snapshot_every=2, resume=True))
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [2, 4]
    assert "step 2:" not in done.stdout and "step 4:" in done.stdout
    missing = subprocess.run([*command[:3], str(tmp_path), *command[4:]], capture_output=True,
                             text=True)
    assert missing.returncode == 2 and "no metrics.jsonl" in missing.stderr


def test_the_dropout_study_compares_runs_at_equal_cpu_time_and_at_equal_steps(
        tmp_path: Path) -> None:
    """``scripts/dropout_study.py --analyse-only`` on two runs' metrics: a run twice as costly
    per step is read at the cheaper run's CPU time (half its steps) and at equal steps."""
    for name, cpu_per_step in (("v05-final", 1.0), ("m2-final", 2.0)):
        folder = tmp_path / name
        folder.mkdir()
        rows = [{"step": step, "cpu_s": step * cpu_per_step, "val_loss": 10 - step / 100,
                 "val_acc_all": step / 1000} for step in range(20, 201, 20)]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = Path(__file__).resolve().parents[1] / "scripts" / "dropout_study.py"
    done = subprocess.run([sys.executable, str(script), "--out", str(tmp_path), "--analyse-only",
                           "--only", "v05-final,m2-final"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    study = json.loads((tmp_path / "study.json").read_text())
    assert (study["equal_cpu_s"], study["equal_steps"]) == (200.0, 200)
    cheap, costly = study["runs"]
    # Last fifth of 200 CPU s: steps 160-200 for the cheap run, 80-100 for the costly one.
    assert cheap["val_loss_at_cpu"] == pytest.approx(10 - 1.8)
    assert costly["val_loss_at_cpu"] == pytest.approx(10 - 0.9)
    assert cheap["val_loss_at_steps"] == costly["val_loss_at_steps"] == pytest.approx(10 - 1.8)
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "| 0.5 context, final state (0.5.0) | 200 |" in (tmp_path / "study.md").read_text()


def test_init_from_fine_tunes_a_checkpoint_with_its_network_and_its_tasks_seen(
        tiny_demos: Path, tmp_path: Path) -> None:
    """``--init-from pretrained``: the run starts from the shipped weights (a step at a learning
    rate of 1e-12 leaves them), takes its network although the config kept the defaults, and
    the shipped policy's training tasks count as seen (``ca b`` is its ``bc a`` relabelled)."""
    out = tmp_path / "tuned"
    summary = train(small_config(tiny_demos, out, steps=1, lr=1e-12, checkpoint_every=1,
                                 init_from=Path("pretrained")))
    start, tuned = load_checkpoint("pretrained"), load_checkpoint(summary.checkpoint)
    assert tuned.policy.config == start.policy.config  # final-state conditioning, Module 2
    for name, weights in start.policy.state_dict().items():
        torch.testing.assert_close(tuned.policy.state_dict()[name], weights, rtol=0, atol=1e-6)
    record = tuned.training["init_from"]
    assert record["step"] == start.step == 40000
    assert record["sha256"] == sha256_file(resolve_checkpoint("pretrained"))
    saved = json.loads((out / "config.json").read_text())
    assert (saved["init_from"], saved["conditioning"], saved["context_form"]) == (
        "pretrained", "final", "module2")
    assert novelty("ca b", trained_classes(tuned.training)) == SEEN
    assert novelty("ca b", trained_classes({"dataset_tasks": ["ab", "ba"]})) == UNSEEN
    # the start's tasks first, each once ('ba' is among them), then the run's new one, 'ab'
    assert training_tasks(tuned.training) == (*training_tasks(start.training), "ab")


def test_init_from_refuses_another_network_and_a_missing_checkpoint(tiny_demos: Path,
                                                                  tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="its network has hidden = 64, not 32"):
        train(small_config(tiny_demos, tmp_path / "a", init_from=Path("pretrained"), hidden=32))
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        train(small_config(tiny_demos, tmp_path / "b", init_from=tmp_path / "none.pt"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_start_without_a_task_record_makes_every_task_unknown() -> None:
    training = {"dataset_tasks": ["ab"], "init_from": {"path": "hand-made.pt", "training": {}}}
    assert training_tasks(training) is None
    assert novelty("abc", trained_classes(training)) == UNKNOWN


def test_the_quickstart_shows_the_shipped_policy_only_on_classes_it_never_trained_on() -> None:
    classes = trained_classes(load_checkpoint("pretrained").training)
    assert [novelty(t, classes) for t in PRETRAINED_UNSEEN_TASKS] == [UNSEEN] * 3
    assert PRETRAINED_VIDEO_TASK in PRETRAINED_UNSEEN_TASKS
