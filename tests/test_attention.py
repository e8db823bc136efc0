"""``imitate attention`` and ``imitate render --attention``: real episodes, real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from conftest import one_line_error, run_cli
from test_eval import read_video

from imitate.attention import STRIP_HEIGHT
from imitate.evaluation import EvalConfig, evaluate

PNG = b"\x89PNG\r\n\x1a\n"


def check_folder(out: Path, blocks: int) -> tuple[dict, dict]:
    """The figures are PNGs; the arrays agree with the summary and are distributions."""
    for name in ("attention.png", "temporal_steps.png", "neighborhood.png"):
        assert (out / name).read_bytes()[:8] == PNG
    summary = json.loads((out / "summary.json").read_text())
    with np.load(out / "attention.npz") as npz:
        arrays = {name: npz[name] for name in npz.files}
    steps = summary["steps"]
    assert arrays["fixed"].shape[0] == arrays["temporal"].shape[0] == steps
    assert arrays["fixed"].shape[1] == 2 and arrays["fixed"].shape[-1] == blocks
    assert arrays["temporal"].shape[-1] == summary["demo_frames"]  # the demo's own frames
    assert arrays["spatial"].shape[-1] == arrays["spatial"].shape[2] == blocks
    np.testing.assert_allclose(arrays["fixed"].sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(arrays["temporal"].sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(arrays["neighborhood"].sum(-1), 1.0, rtol=1e-5)
    assert len(arrays["stages"]) == steps + 1 and arrays["stages"][-1] == summary["stage"]
    assert list(arrays["stage_ends"]) == summary["demo_stage_ends"]
    return summary, arrays


def test_attention_follows_the_episode_imitate_eval_runs(tiny_policy: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "maps"
    done = run_cli("attention", "--checkpoint", str(tiny_policy), "--task", "ab", "--seed", "3",
                   "--episode", "1", "--ensemble", "2", "--out", str(out))
    assert done.returncode == 0, done.stderr
    summary, arrays = check_folder(out, blocks=2)
    assert summary["context_form"] == "module2" and summary["conditioning"] == "full"
    episode = evaluate(EvalConfig(checkpoint=tiny_policy, tasks=("ab",), episodes_per_task=2,
                                  ensemble=2, seed=3, expert=False))[1]
    assert (summary["steps"], summary["stage"]) == (episode.steps, episode.stage)
    assert summary["demo_frames"] == episode.demo_steps + 1  # frames: the start and each step
    # Full conditioning: each copy attends over its own kept frames, most frames get weight.
    assert (arrays["temporal"][0, -1].sum(0) > 0).sum() > 1
    assert f"in {episode.steps} steps" in done.stdout


def test_attention_of_the_shipped_policy(tmp_path: Path) -> None:
    """The shipped policy (Module 2, final-state conditioning): all weight on the last frame."""
    out = tmp_path / "pretrained"
    done = run_cli("attention", "--checkpoint", "pretrained", "--task", "ab", "--ensemble", "1",
                   "--out", str(out))
    assert done.returncode == 0, done.stderr
    summary, arrays = check_folder(out, blocks=2)
    assert summary["context_form"] == "module2" and summary["conditioning"] == "final"
    np.testing.assert_allclose(arrays["temporal"][..., -1], 1.0, rtol=1e-5)


def test_bad_attention_input_gives_one_line_errors(tiny_policy: Path, tmp_path: Path) -> None:
    base = ("attention", "--checkpoint", str(tiny_policy), "--out", str(tmp_path / "m"),
            "--task")
    one_line_error(run_cli(*base, "aa"), "repeated")
    one_line_error(run_cli(*base, "ab", "--seed", "-1"), "--seed")
    one_line_error(run_cli(*base, "ab", "--ensemble", "0"), "--ensemble")
    one_line_error(run_cli("attention", "--checkpoint", str(tmp_path / "absent.pt"), "--task",
                           "ab", "--out", str(tmp_path / "m")), "not found")
    a_file = tmp_path / "file"
    a_file.write_text("")
    one_line_error(run_cli("attention", "--checkpoint", str(tiny_policy), "--task", "ab",
                           "--out", str(a_file)), "folder")
    assert not (tmp_path / "m").exists()


def test_render_attention_adds_a_strip_under_the_video(tiny_policy: Path, tmp_path: Path) -> None:
    out, size = tmp_path / "attention.mp4", 128
    done = run_cli("render", "--checkpoint", str(tiny_policy), "--task", "ab", "--out", str(out),
                   "--ensemble", "2", "--every", "25", "--size", str(size), "--attention")
    assert done.returncode == 0, done.stderr
    frames = read_video(out)
    assert frames[0].shape == (32 + size + 32 + STRIP_HEIGHT, 2 * size, 3)
    strip = np.stack([frame[-STRIP_HEIGHT:] for frame in frames]).astype(float)
    assert strip.std() > 10  # drawn, not blank
    one_line_error(run_cli("render", "--expert", "--task", "ab", "--out", str(out),
                           "--attention"), "--attention")
