"""The policy shipped inside the package: ``--checkpoint pretrained`` for eval and render."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import run_cli
from test_eval import read_video

import envs
from imitate.checkpoint import PRETRAINED_DIR, load_checkpoint, resolve_checkpoint
from imitate.novelty import novelty, trained_classes

#: The shipped file stays small enough to live in the repository and the wheel.
MAX_BYTES = 8_000_000
DATA = Path(__file__).parent / "data"


def test_the_shipped_policy_is_small_self_described_and_reported() -> None:
    path = resolve_checkpoint("pretrained")
    assert path == PRETRAINED_DIR / "policy.pt"
    assert 0 < path.stat().st_size <= MAX_BYTES
    saved = load_checkpoint("pretrained")
    assert saved.optimizer_state is None and saved.rng_state is None  # stripped for shipping
    assert saved.step > 0
    tasks = saved.training["dataset_tasks"]
    assert len(tasks) == len(set(tasks)) > 1
    reports = {split: json.loads((PRETRAINED_DIR / f"eval-{split}" / "report.json").read_text())
               for split in ("train", "test")}
    # The paper's protocol (issue 22): every test task with 20 episodes, every training task
    # with 10, each episode conditioned on an unseen demo, ensemble E = 10.
    suite = envs.load_suite()
    for split, per_task in (("test", 20), ("train", 10)):
        report = reports[split]
        assert report["checkpoint"]["step"] == saved.step  # the report is of this very policy
        assert report["config"]["ensemble"] == 10
        assert report["config"]["episodes_per_task"] == per_task
        assert (report["config"]["split"], report["config"]["tasks"]) == (split, None)
        assert sorted(task["task"] for task in report["tasks"]) == sorted(
            task.layout for task in suite.split(split))
        assert (PRETRAINED_DIR / f"eval-{split}" / "report.md").read_text().strip()
    # It trained on every training task, and on no class of the test split.
    assert {task["task"] for task in reports["train"]["tasks"]} == set(tasks)
    # Every shipped row says truly whether its task is unseen: every test task is, every
    # training task is seen.
    classes = trained_classes(saved.training)
    for report in reports.values():
        assert all(e["novelty"] == novelty(e["task"], classes) for e in report["episodes"])
    assert {(t["novelty"], tuple(t["seen_as"])) for t in reports["test"]["tasks"]} == {
        ("unseen", ())}
    assert {row["novelty"] for row in reports["train"]["by_stages"]} == {"seen"}


def test_eval_and_render_accept_pretrained(tmp_path: Path) -> None:
    done = run_cli("eval", "--checkpoint", "pretrained", "--tasks", "ab", "--episodes-per-task",
                   "1", "--ensemble", "2", "--workers", "1", "--no-expert", "--quiet",
                   "--compile", "off", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1 workers, eager attention)" in done.stdout
    report = json.loads((tmp_path / "eval-pretrained-tasks" / "report.json").read_text())
    assert report["checkpoint"]["path"] == "pretrained"
    assert len(report["episodes"]) == 1
    out = tmp_path / "pretrained.mp4"
    done = run_cli("render", "--checkpoint", "pretrained", "--task", "ab", "--out", str(out),
                   "--ensemble", "2", "--every", "10", "--size", "128")
    assert done.returncode == 0, done.stderr
    frames = read_video(out)
    assert frames[0].shape == (192, 256, 3)  # header and footers scaled to half: 32 + 128 + 32
    assert not np.array_equal(frames[0], frames[-1])


def test_the_policy_0_6_0_shipped_acts_as_it_did_then() -> None:
    """The policy imitate 0.6.0 shipped (``tests/data/pretrained_0.6.0.pt``, written before
    ``context_form`` existed): its logits on fixed inputs equal those 0.6.0 computed, so a
    checkpoint of the 0.5 form loads as that form and acts the same."""
    import torch

    from imitate.model import DemoBatch

    saved = json.loads((DATA / "pretrained_logits_0.6.0.json").read_text())
    policy = load_checkpoint(DATA / "pretrained_0.6.0.pt").policy
    assert policy.config.context_form == "0.5"
    g = torch.Generator().manual_seed(2026)
    k = 5
    blocks = torch.rand(1, 30, k, 3, generator=g) * 0.4 - 0.2  # (1, T, K, 3) m
    gripper = torch.nn.functional.one_hot(torch.randint(0, 2, (1, 30), generator=g), 2).float()
    demo = DemoBatch(blocks, gripper, torch.ones(1, k, dtype=torch.bool),
                torch.ones(1, 30, dtype=torch.bool))
    observed = torch.rand(4, k, 3, generator=g) * 0.4 - 0.2  # (4, K, 3)
    grip = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 2)
    with torch.no_grad():
        encoding = policy.encode(policy.subsample(demo, torch.Generator().manual_seed(0)))
        logits = policy.decide(encoding.repeat(4), observed, grip,
                               torch.ones(4, k, dtype=torch.bool))
    # Since 0.8 the attention reads are one matrix product per row (another float32 summation
    # order): logits of magnitude up to 73 move by up to 2.3e-3, the same with the fused kernel
    # (1.9e-3). Loading as the wrong context form moves them by whole units.
    np.testing.assert_allclose(logits.numpy(), np.array(saved["logits"]), rtol=0, atol=5e-3)
    assert np.array_equal(logits.reshape(4, -1).argmax(1).numpy(),
                          np.array(saved["logits"]).reshape(4, -1).argmax(1))
