"""The fused attention path: a C++ kernel for the additive attention, built once per machine.

Where training spent its time: the additive (Bahdanau) attention ``softmax(v^T tanh(q + c))``
of the neighborhood, spatial and fixed-query attentions materialises a (rows, Q, M, H, D) tensor
for ``tanh`` and several more of that size in its backward pass; at 10 cubes that was most of a
training step, and the work is memory traffic and ``tanh``, not arithmetic. ``torch.compile``
(0.7.0) fused the forward pass but its backward pass still stored two such tensors and summed
the gradient of ``v`` in eight strided sweeps over them. ``csrc/additive_attention.cpp`` does the
forward and backward passes slot by slot in vector registers (each (row, query, head, slot)
computes its D values of ``tanh`` and never stores them) with a polynomial/exponential ``tanh``
about 2.5 times faster than Sleef's and within 1e-6 of it. Forward plus backward over (512 rows,
10 queries, 10 slots, 2 heads, 64) on one core: about 80 ms eager, 35 ms with ``torch.compile``,
12 ms fused (``benchmarks/policy.py`` prints eager against fused).

``configure(True)`` builds the kernel with ``torch.utils.cpp_extension`` (a C++ compiler, and
ninja from its wheel; about a minute the first time on a machine, then a cached load, under
``TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``) and checks it against the eager code on
a small input, forward and backward. Where no compiler works or the check fails, it logs why and
the plain eager code runs, which computes the same numbers. The kernel serves CPU float32
tensors, with or without gradients (training, evaluation, DAgger rollouts); other devices and
dtypes take the eager code.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor
from torch.utils import cpp_extension

logger = logging.getLogger(__name__)

#: The kernel's C++ source, shipped with the package.
KERNEL_SOURCE = Path(__file__).with_name("csrc") / "additive_attention.cpp"
#: Name of the built extension (``torch.utils.cpp_extension`` versions rebuilt sources).
KERNEL_NAME = "imitate_additive_attention"


def additive_weights(query: Tensor, context: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """Bahdanau attention weights, the eager reference.

    query (..., Q, H, D), context (..., M, H, D), v (H, D), mask (..., M) bool (False: ignore
    that slot) -> weights (..., Q, H, M), a softmax over M.
    """
    scores = torch.tanh(query.unsqueeze(-3) + context.unsqueeze(-4))  # (..., Q, M, H, D)
    logits = (scores * v).sum(-1).transpose(-1, -2)  # (..., Q, H, M)
    logits = logits.masked_fill(~mask.unsqueeze(-2).unsqueeze(-2), float("-inf"))
    return torch.softmax(logits, dim=-1)


@dataclass
class CompileState:
    """Which attention path runs, and what building the kernel cost."""

    #: ``"compiled"`` (the fused kernel) or ``"eager"``.
    path: str = "eager"
    #: Why the path is eager (``"off"`` when not asked for), or empty.
    reason: str = "off"
    #: Seconds building (or loading) and checking the kernel took in this process.
    seconds: float = 0.0
    kernel: ModuleType | None = None

    def describe(self) -> str:
        """One line for logs and summaries."""
        if self.path == "compiled":
            return (f"fused attention kernel (C++, {self.seconds:.1f} s to build or load)"
                    if self.seconds else "fused attention kernel (C++)")
        return "eager attention" + ("" if self.reason == "off" else f": {self.reason}")


_STATE = CompileState()


def configure(compile: bool, device: torch.device | str = "cpu") -> CompileState:
    """Use the fused kernel (``compile``) or the eager code; returns the state, whose ``path``
    says which runs. Builds (or loads) and checks the kernel at most once per process. The
    kernel serves CPU tensors only: on another ``device`` the state says so and eager runs."""
    global _STATE
    if not compile:
        _STATE = CompileState(kernel=_STATE.kernel)
        return _STATE
    if torch.device(device).type != "cpu":
        _STATE = CompileState(reason=f"the fused kernel is CPU-only, training on {device}",
                              kernel=_STATE.kernel)
        return _STATE
    if _STATE.kernel is not None:
        _STATE = CompileState("compiled", "", 0.0, _STATE.kernel)
        return _STATE
    start = time.perf_counter()
    try:
        kernel = _build()
        _check(kernel)
    except Exception as error:  # no compiler, no ninja, unsupported platform: stay eager
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        reason = f"building the fused kernel failed ({type(error).__name__}: {first[:200]})"
        _STATE = CompileState("eager", reason, time.perf_counter() - start)
        logger.warning("%s; the eager attention runs", reason)
        return _STATE
    _STATE = CompileState("compiled", "", time.perf_counter() - start, kernel)
    logger.info("fused attention kernel ready in %.1f s", _STATE.seconds)
    return _STATE


def state() -> CompileState:
    """The path configured in this process."""
    return _STATE


@contextlib.contextmanager
def using(compile: bool) -> Iterator[CompileState]:
    """``configure(compile)`` for the duration of a ``with`` block, then the path configured
    before it (the kernel stays loaded)."""
    global _STATE
    previous = _STATE
    try:
        yield configure(compile)
    finally:
        _STATE = dataclasses.replace(previous, kernel=_STATE.kernel or previous.kernel)


def _build() -> ModuleType:
    """Compile (or load the cached build of) the kernel; raises when no toolchain works."""
    try:  # the ninja wheel (a dependency) puts its binary outside PATH unless a venv is active
        import ninja

        if ninja.BIN_DIR not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
    except ImportError:
        pass  # a system ninja may still be on PATH
    flags = ["-O3", "-march=native"] if os.uname().machine in ("x86_64", "AMD64") else ["-O3"]
    return cpp_extension.load_inline(
        KERNEL_NAME, cpp_sources=[KERNEL_SOURCE.read_text()], functions=["forward", "backward"],
        extra_cflags=flags, verbose=False)


def _check(kernel: ModuleType) -> None:
    """Run the kernel forward and backward on a small input (a masked slot, D not a multiple of
    the vector width) and compare with the eager reference; raises on any difference."""
    generator = torch.Generator().manual_seed(0)

    def leaf(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator).requires_grad_()

    query, context, v = leaf(3, 4, 2, 20), leaf(3, 5, 2, 20), leaf(2, 20)
    mask = torch.tensor([[True, True, False, True, True]] * 3)
    results = []
    for candidate in (lambda *a: _FusedAttention.apply(kernel, *a), additive_weights):
        out = candidate(query, context, v, mask)
        grads = torch.autograd.grad((out * out).sum(), (query, context, v))
        results.append((out, *grads))
    for mine, reference in zip(*results, strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-5)


class _FusedAttention(torch.autograd.Function):
    """``additive_weights`` on (L, Q, H, D) / (L, M, H, D) / (H, D) / (L, M) through the kernel."""

    @staticmethod
    def forward(ctx, kernel: ModuleType, query: Tensor, context: Tensor, v: Tensor,
                mask: Tensor) -> Tensor:
        query, context, v, mask = (t.contiguous() for t in (query, context, v, mask))
        weights = kernel.forward(query, context, v, mask)  # (L, Q, H, M)
        ctx.kernel = kernel
        ctx.save_for_backward(weights, query, context, v, mask)
        return weights

    @staticmethod
    def backward(ctx, grad_weights: Tensor) -> tuple[Tensor | None, ...]:
        grad_query, grad_context, grad_v = ctx.kernel.backward(grad_weights, *ctx.saved_tensors)
        return None, grad_query, grad_context, grad_v, None


def attention_weights(query: Tensor, context: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """``additive_weights`` through the configured path: the fused kernel for CPU float32
    tensors once ``configure(True)`` succeeded, else the eager code. The kernel sees the
    leading dimensions flattened into one."""
    kernel = _STATE.kernel if _STATE.path == "compiled" else None
    if kernel is None or query.device.type != "cpu" or not all(
            t.dtype == torch.float32 for t in (query, context, v)):
        return additive_weights(query, context, v, mask)
    lead = query.shape[:-3]
    weights = _FusedAttention.apply(
        kernel, query.reshape(-1, *query.shape[-3:]), context.reshape(-1, *context.shape[-3:]),
        v, mask.reshape(-1, mask.shape[-1]))  # (L, Q, H, M)
    return weights.reshape(*lead, *weights.shape[1:])
