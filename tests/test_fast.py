"""The fused attention kernel (``imitate.fast``): same numbers as eager, clean fallback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch
from test_model import K, make_demo

from imitate import actions, fast
from imitate.model import OneShotPolicy, PolicyConfig, data_dependent_init


def loss_and_gradients(policy: OneShotPolicy, compiled: bool) -> tuple[torch.Tensor, dict]:
    """Loss and every parameter's gradient on a fixed batch (4 of 10 slots real, 2 demos of 30
    frames subsampled with a fixed generator, 3 observations per demo)."""
    state = fast.configure(compiled)
    assert state.path == ("compiled" if compiled else "eager"), state.describe()
    demo = policy.subsample(make_demo(4, 30, seed=60, batch=2), torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(61)
    blocks = torch.randn(6, K, 3, generator=g) * 0.2  # (B * P, K, 3)
    gripper = torch.tensor([[1.0, 0.0], [0.0, 1.0]] * 3)
    labels = torch.from_numpy(actions.to_bins(torch.randn(6, 4, generator=g).numpy() * 0.01))
    policy.zero_grad(set_to_none=True)
    loss = policy.loss(policy(demo, blocks, gripper, demo.block_mask.repeat_interleave(3, 0), 3),
                       labels)
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in policy.named_parameters()
                           if p.grad is not None}


def test_compiled_attention_gives_the_eager_loss_and_gradients() -> None:
    torch.manual_seed(0)
    policy = OneShotPolicy(PolicyConfig(conditioning="full", min_kept_frames=5)).train()
    with torch.no_grad(), data_dependent_init():
        demo = make_demo(4, 30, seed=62, batch=2)
        policy(demo, torch.randn(6, K, 3) * 0.2, torch.tensor([[1.0, 0.0]] * 6),
               demo.block_mask.repeat_interleave(3, 0), 3)
    try:
        eager_loss, eager_grads = loss_and_gradients(policy, compiled=False)
        compiled_loss, compiled_grads = loss_and_gradients(policy, compiled=True)
    finally:
        fast.configure(False)
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-5, atol=1e-5)
    assert compiled_grads.keys() == eager_grads.keys() and len(eager_grads) > 50
    for name, grad in eager_grads.items():
        # Fused kernels sum in another order: compare each gradient as a whole, relative to
        # its norm (single elements of the first layers differ by a few 1e-5), with a floor for
        # gradients that are zero up to rounding (the temporal keys' biases shift every frame's
        # score alike, so the softmax ignores them).
        difference, size = float((compiled_grads[name] - grad).norm()), float(grad.norm())
        assert difference <= 1e-3 * size + 1e-5, f"{name}: |difference| {difference:.2e}, " \
            f"|gradient| {size:.2e}"


def test_without_a_compiler_training_falls_back_to_eager_and_says_so(tiny_demos: Path,
                                                                      tmp_path: Path) -> None:
    environment = {**os.environ, "CXX": str(tmp_path / "no-such-compiler"),
                   "TORCH_EXTENSIONS_DIR": str(tmp_path / "extensions")}  # no cached build
    done = subprocess.run(
        [sys.executable, "-m", "imitate", "train", "--demos", str(tiny_demos), "--out",
         str(tmp_path / "run"), "--steps", "2", "--tasks-per-batch", "2", "--pairs-per-task",
         "4", "--compile", "on", "--quiet"], capture_output=True, text=True, env=environment)
    assert done.returncode == 0, done.stderr
    assert "building the fused kernel failed" in done.stderr and "no-such-compiler" in done.stderr
    assert "eager attention: building the fused kernel failed" in done.stdout
    assert (tmp_path / "run" / "policy.pt").exists()
