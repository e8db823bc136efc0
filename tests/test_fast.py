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


def test_the_kernel_gives_the_eager_weights_and_gradients_on_hard_inputs() -> None:
    """Masked slots, a row with one real slot, a head width that is not a multiple of the
    vector width, saturated and near-zero tanh inputs, an expanded (non-contiguous) query,
    inference without gradients, and 1 or 2 threads (same numbers either way)."""
    state = fast.configure(True)
    assert state.path == "compiled", state.describe()
    try:
        g = torch.Generator().manual_seed(5)
        for width in (64, 20):
            query = (torch.randn(1, 3, 2, width, generator=g) * 4).expand(6, -1, -1, -1)
            query = query.clone().requires_grad_() if width == 20 else query.requires_grad_()
            context = (torch.randn(6, 7, 2, width, generator=g) * 4).requires_grad_()
            with torch.no_grad():
                context[0, :, :, : width // 2] *= 1e-4  # tanh near zero
            v = torch.randn(2, width, generator=g).requires_grad_()
            mask = torch.rand(6, 7, generator=g) > 0.4
            mask[:, 0], mask[1] = True, torch.arange(7) == 3
            upstream = torch.randn(6, 3, 2, 7, generator=g)
            results = {}
            for name, threads in (("eager", 1), ("kernel", 1), ("kernel", 2)):
                previous = torch.get_num_threads()
                torch.set_num_threads(threads)
                try:
                    function = fast.additive_weights if name == "eager" else \
                        fast.attention_weights
                    weights = function(query, context, v, mask)
                    grads = torch.autograd.grad(weights, (query, context, v), upstream)
                    with torch.no_grad():
                        inference = function(query, context, v, mask)
                finally:
                    torch.set_num_threads(previous)
                results[name, threads] = (weights, inference, *grads)
            for mine, reference in zip(results["kernel", 1], results["eager", 1], strict=True):
                torch.testing.assert_close(mine, reference, rtol=1e-5, atol=2e-6)
            for one, two in zip(results["kernel", 1], results["kernel", 2], strict=True):
                torch.testing.assert_close(one, two, rtol=1e-6, atol=1e-7)
            assert torch.all(results["kernel", 1][0][1, :, :, 3] == 1.0)  # one real slot
            assert torch.all(results["kernel", 1][0][~mask.unsqueeze(1).unsqueeze(1)
                                                     .expand(-1, 3, 2, -1)] == 0.0)
    finally:
        fast.configure(False)


def test_the_fused_kernel_gives_the_eager_loss_and_gradients() -> None:
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
    largest = max(float(grad.norm()) for grad in eager_grads.values())
    for name, grad in eager_grads.items():
        mine = compiled_grads[name]
        if name.startswith("context_net.demo_keys.") and name.endswith(".bias"):
            # A key bias shifts every frame's dot-product score alike, so the softmax ignores
            # it: the true gradient is 0, and both paths give rounding noise (about 1e-8 of the
            # largest gradient).
            assert float(grad.norm()) <= 1e-6 * largest and float(mine.norm()) <= 1e-6 * largest
            continue
        # Each gradient as a whole, relative to its norm (the kernel sums in another order and
        # its tanh is within 1e-6 of PyTorch's; measured: at most 3e-5).
        difference, size = float((mine - grad).norm()), float(grad.norm())
        assert difference <= 1e-4 * size, f"{name}: |difference| {difference:.2e}, " \
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
