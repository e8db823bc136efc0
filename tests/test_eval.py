"""Evaluation (paper protocol) and its report; DAgger rounds. Tiny scale, real simulator, real
processes and files."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from conftest import HOLDOUT_EVERY, one_line_error, run_cli

from imitate.checkpoint import PRETRAINED_DIR
from imitate.data import DemoDataset, PairSampler, Stream
from imitate.data.seeds import stream_of
from imitate.evaluation import EvalConfig, evaluate
from imitate.overlay import FOOTER, header_layout
from imitate.report import OUTCOMES, wilson_interval
from imitate.train_config import TrainConfig
from imitate.training import train

TIMING_FIELDS = {"policy_seconds", "env_seconds", "demo_seconds", "expert_seconds", "video"}


def outcomes_without_timing(results: list) -> list[dict]:
    return [{k: v for k, v in asdict(r).items() if k not in TIMING_FIELDS} for r in results]


@pytest.fixture(scope="module")
def report(tiny_policy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("eval") / "report"
    done = run_cli("eval", "--checkpoint", str(tiny_policy), "--tasks", "ab,ba",
                   "--episodes-per-task", "2", "--ensemble", "2", "--workers", "2", "--out",
                   str(out), "--videos", "1", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "report:" in done.stdout
    assert "fused attention kernel" in done.stdout  # the default inference path
    return out


def test_report_has_every_column_and_its_counts_add_up(report: Path) -> None:
    data = json.loads((report / "report.json").read_text())
    assert len(data["episodes"]) == 4
    # tiny_policy trained on these very tasks: seen.
    assert {episode["novelty"] for episode in data["episodes"]} == {"seen"}
    assert [(t["task"], t["novelty"], t["class"]) for t in data["tasks"]] == [
        ("ab", "seen", "2"), ("ba", "seen", "2")]
    assert data["config"]["episodes_per_task"] == 2 and data["config"]["ensemble"] == 2
    for row in data["by_stages"]:
        assert sum(row[name]["count"] for name in OUTCOMES) == row["episodes"]
        assert row["expert_success"]["total"] == row["episodes"]
        for name in OUTCOMES:
            low, high = row[name]["ci95"]
            assert 0.0 <= low <= row[name]["rate"] <= high <= 1.0
    with (report / "summary.csv").open() as handle:
        summary = list(csv.DictReader(handle))
    assert {"novelty", "split", "stages", "tasks", "episodes", "success", "success_ci_low",
            "recoverable_failure", "manipulation_failure", "wrong_move",
            "expert_success_rate"} <= set(summary[0])
    assert sum(int(row["episodes"]) for row in summary) == 4
    with (report / "episodes.csv").open() as handle:
        episodes = list(csv.DictReader(handle))
    assert [(e["task"], e["episode"]) for e in episodes] == [("ab", "0"), ("ab", "1"),
                                                             ("ba", "0"), ("ba", "1")]
    for episode in episodes:
        assert (episode["success"] == "True") == (episode["failure"] == "")
    markdown = (report / "report.md").read_text()
    for title in ("policy success", "expert (Demo) success", "recoverable", "manipulation",
                  "wrong move"):
        assert title in markdown
    for plot in ("success_by_stages.png", "outcomes_by_stages.png"):
        assert (report / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def read_video(path: Path) -> list[np.ndarray]:
    import imageio.v2 as imageio

    with imageio.get_reader(path) as reader:
        return [np.asarray(frame) for frame in reader]


def test_eval_videos_are_listed_and_read_back(report: Path) -> None:
    videos = sorted((report / "videos").glob("*.mp4"))
    assert [v.name.split("-s0-ep")[0] for v in videos] == ["ab", "ba"]  # first episode of each
    episodes = json.loads((report / "report.json").read_text())["episodes"]
    for video in videos:
        episode = next(e for e in episodes if e["video"] and Path(e["video"]).name == video.name)
        outcome = "success" if episode["success"] else episode["failure"]
        assert video.name == f"{episode['task']}-s0-ep000-{outcome}.mp4"
        assert f"videos/{video.name}" in (report / "report.md").read_text()
        frames = read_video(video)
        # the goal and legend, two 256 px views, a footer under each
        assert frames[0].shape == (header_layout("ab").height + 256 + FOOTER, 512, 3)
        assert not np.array_equal(frames[0], frames[-1])


def test_render_writes_a_side_by_side_mp4(tiny_policy: Path, tmp_path: Path) -> None:
    out = tmp_path / "episode.mp4"
    done = run_cli("render", "--checkpoint", str(tiny_policy), "--task", "ab", "--out", str(out),
                   "--ensemble", "2", "--every", "5", "--size", "128")
    assert done.returncode == 0, done.stderr
    frames = read_video(out)
    assert done.stdout.startswith(f"{out}: {len(frames)} frames")
    assert frames[0].shape == (192, 256, 3)  # header and footers at half size: 32 + 128 + 32
    assert frames[0].std() > 10  # not blank
    assert not np.array_equal(frames[0], frames[-1])
    assert not list(tmp_path.glob(".*"))  # no temporary file left
    expert = tmp_path / "expert.mp4"
    done = run_cli("render", "--expert", "--task", "ab", "--out", str(expert), "--every", "5",
                   "--size", "128")
    assert done.returncode == 0 and "outcome success" in done.stdout, done.stdout


def test_bad_render_input_gives_one_line_errors(tiny_policy: Path, tmp_path: Path) -> None:
    base = ("render", "--checkpoint", str(tiny_policy), "--task")
    one_line_error(run_cli(*base, "ab", "--out", str(tmp_path / "x.gif")), ".mp4")
    one_line_error(run_cli(*base, "aa", "--out", str(tmp_path / "x.mp4")), "repeated")
    one_line_error(run_cli(*base, "ab", "--out", str(tmp_path / "x.mp4"), "--every", "0"),
                   "--every")
    one_line_error(run_cli(*base, "ab", "--out", str(tmp_path / "x.mp4"), "--size", "100"),
                   "--size")
    one_line_error(run_cli("render", "--checkpoint", str(tmp_path / "absent.pt"), "--task", "ab",
                           "--out", str(tmp_path / "x.mp4")), "not found")


def test_same_arguments_give_the_same_episodes(tiny_policy: Path, report: Path) -> None:
    config = EvalConfig(checkpoint=tiny_policy, tasks=("ab", "ba"), episodes_per_task=2,
                        ensemble=2, workers=1)
    again = outcomes_without_timing(evaluate(config))
    stored = [{k: v for k, v in e.items() if k not in TIMING_FIELDS}
              for e in json.loads((report / "report.json").read_text())["episodes"]]
    assert again == stored  # 1 worker in-process vs 2 spawned workers: identical episodes
    other_seed = outcomes_without_timing(evaluate(EvalConfig(
        checkpoint=tiny_policy, tasks=("ab",), episodes_per_task=1, ensemble=2, seed=1)))
    assert other_seed[0]["env_seed"] != stored[0]["env_seed"]


def test_evaluation_demos_are_never_training_demos(report: Path, tiny_demos: Path) -> None:
    episodes = json.loads((report / "report.json").read_text())["episodes"]
    with DemoDataset(tiny_demos) as data:
        training = {t: [data.demo(t, i) for i in range(data.num_demos(t))] for t in data.tasks}
    for episode in episodes:
        assert stream_of(episode["demo_env_seed"]) == Stream.EVAL_DEMO
        assert stream_of(episode["env_seed"]) == Stream.EVAL_EPISODE
        for demo in training[episode["task"]]:
            assert stream_of(demo.env_seed) == Stream.TRAIN_DEMO
            assert demo.env_seed != episode["demo_env_seed"]


def test_wilson_interval() -> None:
    assert wilson_interval(0, 10)[0] == 0.0 and 0.25 < wilson_interval(0, 10)[1] < 0.35
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    assert wilson_interval(10, 10)[1] == 1.0


def test_bad_evaluation_input_gives_one_line_errors(tiny_policy: Path, tmp_path: Path) -> None:
    one_line_error(run_cli("eval", "--checkpoint", str(tmp_path / "absent.pt")), "not found")
    one_line_error(run_cli("eval", "--checkpoint", str(tiny_policy), "--tasks", "ab,xy"), "'x'")
    one_line_error(run_cli("eval", "--checkpoint", str(tiny_policy), "--episodes-per-task", "0"),
                   "--episodes-per-task")
    one_line_error(run_cli("eval", "--checkpoint", str(tiny_policy), "--ensemble", "0"),
                   "--ensemble")
    foreign = tmp_path / "foreign.pt"
    foreign.write_bytes(b"\x00" * 64)
    one_line_error(run_cli("eval", "--checkpoint", str(foreign)), "not a readable checkpoint")


# --- DAgger ------------------------------------------------------------------------------------
def dagger_config(demos: Path, out: Path, **overrides: object) -> TrainConfig:
    settings = {"algo": "dagger", "steps": 6, "tasks_per_batch": 2, "pairs_per_task": 8,
                "holdout_every": HOLDOUT_EVERY, "log_every": 1, "checkpoint_every": 2,
                "threads": 1, "quiet": True, "dagger_rounds": 2, "dagger_rollouts": 3,
                "dagger_full_fraction": 0.34, "dagger_ensemble": 2}
    settings.update(overrides)
    return TrainConfig(demos=demos, out=out, **settings)


def replay_labels(demo) -> np.ndarray:
    """The expert's action at every state of a stored rollout, recomputed by replaying it: the
    clean expert up to the rollout's first stage, then the stored executed actions."""
    import gymnasium

    import envs
    from envs.expert import ScriptedExpert

    env = gymnasium.make(envs.ENV_ID)
    expert = ScriptedExpert()
    try:
        _, info = env.reset(seed=demo.env_seed, options={"task": demo.task})
        while info["stage"] < int(demo.stages[0]):
            _, _, _, _, info = env.step(expert.act(env))
        labels = []
        for action in demo.actions:
            labels.append(expert.act(env))
            env.step(action)
        return np.stack(labels).astype(np.float32)
    finally:
        env.close()


def test_a_dagger_round_adds_expert_labelled_rollouts_and_training_continues(
        tiny_demos: Path, tmp_path: Path) -> None:
    summary = train(dagger_config(tiny_demos, tmp_path / "run"))
    assert summary.step == 6
    rounds = sorted((tmp_path / "run" / "dagger").iterdir())
    assert [r.name for r in rounds] == ["round-01", "round-02"]
    betas = []
    for folder in rounds:
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["round_complete"] and manifest["kind"] == "aggregate"
        betas.append(manifest["beta"])
        with DemoDataset(folder) as data:
            demos = [data.demo(t, i) for t in data.tasks for i in range(data.num_demos(t))]
        assert demos and all(stream_of(d.env_seed) == Stream.DAGGER for d in demos)
        for demo in demos:
            np.testing.assert_array_equal(replay_labels(demo), demo.labels)
    assert betas == [0.5, 0.25]
    with DemoDataset(tiny_demos) as data, DemoDataset(rounds[0]) as first, \
            DemoDataset(rounds[1]) as second:
        sampler = PairSampler(data, tasks_per_batch=40, pairs_per_task=1,
                              rng=np.random.default_rng(0), extra_pairs=(first, second))
        batch = sampler.sample()
        assert set(batch.pair_source.tolist()) == {0, 1, 2}  # training draws from the rounds
        for row in np.flatnonzero(batch.pair_source > 0):
            source = (first, second)[batch.pair_source[row] - 1]
            demo = source.demo(data.tasks[batch.task[row]], int(batch.pair_index[row]))
            np.testing.assert_array_equal(batch.labels[row, 0],
                                          demo.labels[batch.obs_step[row, 0]])
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [row["step"] for row in rows] == list(range(1, 7))
    assert all(np.isfinite(row["loss"]) for row in rows)


def test_dagger_resumes_to_the_same_weights(tiny_demos: Path, tmp_path: Path) -> None:
    import torch

    from imitate.checkpoint import load_checkpoint

    whole = train(dagger_config(tiny_demos, tmp_path / "whole"))

    def interrupt(progress) -> None:
        if progress.step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # after round 2 (collected at step 4)
        train(dagger_config(tiny_demos, tmp_path / "parts"), on_progress=interrupt)
    resumed = train(dagger_config(tiny_demos, tmp_path / "parts", resume=True))
    assert resumed.start_step == 4
    a, b = load_checkpoint(whole.checkpoint), load_checkpoint(resumed.checkpoint)
    for name, tensor in a.policy.state_dict().items():
        assert torch.equal(tensor, b.policy.state_dict()[name]), name


def test_reports_label_relabelled_tasks_seen_and_new_classes_unseen(tiny_policy: Path,
                                                                     tmp_path: Path) -> None:
    """tiny_policy trained on 'ab' and 'ba' (class 2): 'ba' is seen whatever its split, 'ab c'
    (class 2+1) is unseen; the tables group by that label."""
    from imitate.report import write_report

    config = EvalConfig(checkpoint=tiny_policy, tasks=("ba", "ab c"), episodes_per_task=1,
                        ensemble=2, expert=False)
    results = evaluate(config)
    assert [(r.task, r.split, r.novelty) for r in results] == [("ba", "train", "seen"),
                                                               ("ab c", "other", "unseen")]
    checkpoint = {"path": str(tiny_policy),
                  "training": {"dataset_tasks": ["ab", "ba"]}}
    files = write_report(tmp_path / "report", results, config={}, checkpoint=checkpoint,
                         timing={})
    data = json.loads(files["json"].read_text())
    assert [(row["novelty"], row["split"]) for row in data["by_stages"]] == [
        ("seen", "train"), ("unseen", "other")]
    assert data["tasks"][0] == {"task": "ba", "split": "train", "stages": 1, "class": "2",
                                "novelty": "seen", "seen_as": ["ab", "ba"], "episodes": 1,
                                "successes": int(results[0].success)}
    assert data["tasks"][1]["novelty"] == "unseen" and data["tasks"][1]["seen_as"] == []
    with files["summary_csv"].open() as handle:
        assert [row["novelty"] for row in csv.DictReader(handle)] == ["seen", "unseen"]
    with files["episodes_csv"].open() as handle:
        assert [row["novelty"] for row in csv.DictReader(handle)] == ["seen", "unseen"]
    markdown = files["markdown"].read_text()
    assert "| seen | train | 1 |" in markdown and "| unseen | other | 1 |" in markdown
    assert "| `ab c` | other | 1 | 2+1 | unseen | - |" in markdown


def test_a_checkpoint_without_its_training_tasks_calls_nothing_unseen(tiny_policy: Path,
                                                                      tmp_path: Path) -> None:
    from imitate.checkpoint import load_checkpoint, save_checkpoint

    saved = load_checkpoint(tiny_policy)
    bare = save_checkpoint(tmp_path / "bare.pt", saved.policy, env=saved.env,
                           suite_version=saved.suite_version, training={}, step=saved.step)
    results = evaluate(EvalConfig(checkpoint=bare, tasks=("ab c",), episodes_per_task=1,
                                  ensemble=2, expert=False))
    assert [r.novelty for r in results] == ["unknown"]


def test_relabel_report_labels_a_report_written_before_0_6(report: Path, tiny_policy: Path,
                                                           tmp_path: Path) -> None:
    import subprocess
    import sys

    old = tmp_path / "old"
    old.mkdir()
    data = json.loads((report / "report.json").read_text())
    for episode in data["episodes"]:
        del episode["novelty"]  # as 0.5 wrote it
    del data["tasks"]
    (old / "report.json").write_text(json.dumps(data))
    script = Path(__file__).resolve().parents[1] / "scripts" / "relabel_report.py"
    done = subprocess.run([sys.executable, str(script), str(old), "--checkpoint",
                           str(tiny_policy), "--files", "report.md", "report.json"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in old.iterdir()) == ["report.json", "report.md"]
    relabelled = json.loads((old / "report.json").read_text())
    assert [e["novelty"] for e in relabelled["episodes"]] == ["seen"] * 4
    assert [e["success"] for e in relabelled["episodes"]] == [e["success"]
                                                              for e in data["episodes"]]
    assert "| seen | train | 1 |" in (old / "report.md").read_text()
    data["checkpoint"]["step"] += 1  # a report of another step of the run
    (old / "report.json").write_text(json.dumps(data))
    done = subprocess.run([sys.executable, str(script), str(old), "--checkpoint",
                           str(tiny_policy)], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "evaluated step" in done.stderr


def test_reference_tables_put_our_rows_beside_the_papers(tmp_path: Path) -> None:
    """``scripts/reference_tables.py`` on the shipped policy's reports: unseen test rows and
    training rows apart, the paper's columns beside ours, and the outcome breakdown."""
    run = tmp_path / "run"
    for split in ("test", "train"):
        shutil.copytree(PRETRAINED_DIR / f"eval-{split}", run / f"eval-{split}")
    script = Path(__file__).resolve().parents[1] / "scripts" / "reference_tables.py"
    done = subprocess.run([sys.executable, str(script), "--variant", f"final={run}",
                           "--markdown", str(tmp_path / "results.md"), "--figure",
                           str(tmp_path / "success.png")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "results.md").read_text().splitlines()
    # Every test task is unseen (the policy trained on no test class): 7 tasks of 2 stages,
    # 135 of 140 episodes, the expert and the paper's Table 4 beside.
    assert ("| unseen: test tasks | 2 | 7 | 140 | **96.4** [91.9, 98.5] | 100.0 | 95.8 | 94.9 | "
            "95.9 | 92.8 | 94.1 |") in lines
    assert ("| unseen: test tasks | 8 | 8 | 160 | **8.1** [4.8, 13.4] | 94.4 | 29.0 | 18.0 | "
            "24.0 | 19.0 | 20.0 |") in lines
    assert not any(line.startswith(("| seen: test", "| unseen: training")) for line in lines)
    assert ("| seen: training tasks | 4 | 250 | 79.2 [73.7, 83.8] | 20.8 [16.2, 26.3] | "
            "0.0 [0.0, 1.5] | 0.0 [0.0, 1.5] |") in lines
    # The gap to the paper's DAgger per unseen stage count, with the most frequent failure;
    # a shipped report keeps no episode log, so the first-stage columns stay empty.
    assert "| 2 | 140 | 96.4 | 94.9 | +1.5 | recoverable (3.6%) |  |  |" in lines
    assert (tmp_path / "success.png").read_bytes()[:4] == b"\x89PNG"
    bad = subprocess.run([sys.executable, str(script), "--variant", "final", "--markdown",
                          str(tmp_path / "x.md")], capture_output=True, text=True)
    assert bad.returncode == 2 and "NAME=RUN" in bad.stderr


def test_reference_tables_count_failures_that_built_no_stage_from_the_episode_log(
        tiny_policy: Path, tmp_path: Path) -> None:
    """The gap table's last two columns come from the evaluation's episode log: of the failed
    episodes, those that completed no stage; of the episodes that completed one, the successes.
    Without a log (a shipped report) they stay empty (the test above)."""
    folder = tmp_path / "run" / "eval-test"
    done = run_cli("eval", "--checkpoint", str(tiny_policy), "--tasks", "abc",  # class 3: unseen
                   "--episodes-per-task", "3", "--ensemble", "1", "--no-expert", "--workers", "1",
                   "--quiet", "--compile", "off", "--out", str(folder))
    assert done.returncode == 0, done.stderr
    (folder / "report.json").unlink()  # the rows then come from the (edited) log as well
    header, *records = (folder / "episodes.jsonl").read_text().splitlines(keepends=True)
    script = Path(__file__).resolve().parents[1] / "scripts" / "reference_tables.py"

    def gap_rows(stages_reached: list[int | None]) -> list[str]:
        """The tables, with the three real episodes given known ends: None is a success, else
        a recoverable failure at that stage."""
        ends = [{"success": True, "failure": None, "stage": 2} if stage is None else
                {"success": False, "failure": "recoverable_failure", "stage": stage}
                for stage in stages_reached]
        (folder / "episodes.jsonl").write_text(header + "".join(
            json.dumps({**json.loads(line), **end}) + "\n"
            for line, end in zip(records, ends, strict=True)))
        done = subprocess.run([sys.executable, str(script), "--variant",
                               f"tiny={tmp_path / 'run'}", "--markdown",
                               str(tmp_path / "results.md")], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return (tmp_path / "results.md").read_text().splitlines()

    assert ("| 2 | 3 | 33.3 | 94.9 | -61.6 | recoverable (66.7%) | 1/2 (50%) | 1/2 (50%) |"
            in gap_rows([None, 0, 1]))
    assert ("| 2 | 3 | 0.0 | 94.9 | -94.9 | recoverable (100.0%) | 3/3 (100%) | 0/0 |"
            in gap_rows([0, 0, 0]))

def test_reference_tables_count_only_the_complete_tasks_of_an_evaluation_without_report(
        tmp_path: Path) -> None:
    """An evaluation still running (or stopped) has an episode log and no report: its rows
    count only the tasks with all their episodes, the output says it is partial, and its cell
    gives its own episode count beside a complete variant's."""
    complete = tmp_path / "complete" / "eval-train"
    done = run_cli("eval", "--checkpoint", "pretrained", "--tasks", "ba,bc a",  # 1-stage, train
                   "--episodes-per-task", "2", "--ensemble", "1", "--no-expert", "--workers", "1",
                   "--quiet", "--compile", "off", "--out", str(complete))
    assert done.returncode == 0, done.stderr
    running = tmp_path / "running" / "eval-train"
    running.mkdir(parents=True)
    lines = (complete / "episodes.jsonl").read_text().splitlines(keepends=True)
    records = [json.loads(line) for line in lines[1:]]
    kept = [line for line, record in zip(lines[1:], records, strict=True)
            if record is not records[-1]]
    (running / "episodes.jsonl").write_text(lines[0] + "".join(kept))  # one episode to go
    script = Path(__file__).resolve().parents[1] / "scripts" / "reference_tables.py"
    done = subprocess.run([sys.executable, str(script), "--variant",
                           f"complete={tmp_path / 'complete'}", "--variant",
                           f"running={tmp_path / 'running'}", "--markdown",
                           str(tmp_path / "results.md")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "results.md").read_text().splitlines()
    row = next(line for line in table if line.startswith("| seen: training tasks | 1 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2:4] == ["2", "4"]  # the complete variant's tasks and episodes
    assert cells[5].endswith("(n = 2)") and "(n =" not in cells[4], row
    assert any(line.startswith("- ours: running, train tasks: partial (no report yet): the 1 "
                               "tasks with all their episodes of the 2 begun") for line in table)
    outcomes = table[table.index("Outcomes of **running** (% of episodes, 95% intervals):"):]
    assert any(line.startswith("| seen: training tasks | 1 | 2 |") for line in outcomes)
    # A file there that is not an episode log: one line, exit 2.
    (running / "episodes.jsonl").write_text("not a log\n")
    bad = subprocess.run([sys.executable, str(script), "--variant",
                          f"running={tmp_path / 'running'}", "--markdown", str(tmp_path / "x.md")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "is not an imitate episode log" in bad.stderr
