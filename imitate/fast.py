"""The compiled training path: the additive attention scores fused by ``torch.compile``.

Where training spends its time: the additive (Bahdanau) attention ``softmax(v^T tanh(q + c))``
of the neighborhood, spatial and fixed-query attentions materialises a (rows, Q, M, H, D) tensor
for ``tanh`` and again for its backward pass; at 10 cubes that is most of a training step, and
the work is memory traffic, not arithmetic. Compiled by inductor, the forward and backward passes
of the scores each become one fused loop that never stores that tensor.

``configure(True)`` compiles the function once per process (dynamic shapes: one compilation
covers every batch size, block count and frame count) and checks it on a small input, forward and
backward; when no C++ compiler is present, or compilation fails for any other reason, it logs
why and training runs the plain eager code, which computes the same numbers. Only passes that
record gradients take the compiled path: at inference (evaluation, DAgger rollouts, validation)
the tensors are a few hundred times smaller and eager is as fast without a compilation per
process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

logger = logging.getLogger(__name__)


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
    """Which path training takes, and what compiling cost."""

    #: ``"compiled"`` or ``"eager"``.
    path: str = "eager"
    #: Why the path is eager (``"off"`` when not asked for), or empty.
    reason: str = "off"
    #: Seconds the compilation and its check took in this process.
    seconds: float = 0.0
    function: Callable[..., Tensor] | None = None
    #: Devices the compiled function was checked on.
    devices: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for logs and summaries."""
        if self.path == "compiled":
            return (f"compiled attention (torch.compile, {self.seconds:.1f} s to compile)"
                    if self.seconds else "compiled attention (torch.compile)")
        return "eager attention" + ("" if self.reason == "off" else f": {self.reason}")


_STATE = CompileState()


def configure(compile: bool, device: torch.device | str = "cpu") -> CompileState:
    """Use the compiled attention in passes that record gradients (``compile``) or not; returns
    the state, whose ``path`` says which runs. Compiles (and checks, on ``device``) at most once
    per process and device."""
    global _STATE
    if not compile:
        _STATE = CompileState(function=_STATE.function, devices=_STATE.devices)
        return _STATE
    device = torch.device(device)
    if _STATE.function is not None and device.type in _STATE.devices:
        _STATE = CompileState("compiled", "", 0.0, _STATE.function, _STATE.devices)
        return _STATE
    start = time.perf_counter()
    try:
        function = _STATE.function or torch.compile(additive_weights, dynamic=True)
        _check(function, device)
    except Exception as error:  # no compiler, unsupported platform, inductor bug: stay eager
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        reason = f"torch.compile failed ({type(error).__name__}: {first[:200]})"
        _STATE = CompileState("eager", reason, time.perf_counter() - start)
        logger.warning("%s; training runs the eager attention", reason)
        return _STATE
    _STATE = CompileState("compiled", "", time.perf_counter() - start, function,
                          (*_STATE.devices, device.type))
    logger.info("compiled the additive attention for %s in %.1f s", device, _STATE.seconds)
    return _STATE


def state() -> CompileState:
    """The path configured in this process."""
    return _STATE


def _check(function: Callable[..., Tensor], device: torch.device) -> None:
    """Run ``function`` forward and backward on a small input on ``device`` (every dynamic size
    >= 2, so no size gets specialised) and compare with the eager reference; raises on any
    failure."""
    generator = torch.Generator().manual_seed(0)

    def leaf(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator).to(device).requires_grad_()

    query, context, v = leaf(3, 4, 2, 8), leaf(3, 5, 2, 8), leaf(2, 8)
    mask = torch.tensor([[True, True, False, True, True]] * 3, device=device)
    results = []
    for candidate in (function, additive_weights):
        out = candidate(query, context, v, mask)
        grads = torch.autograd.grad((out * out).sum(), (query, context, v))
        results.append((out, *grads))
    for mine, reference in zip(*results, strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-5)


def attention_weights(query: Tensor, context: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """``additive_weights`` through the configured path (compiled only when gradients are
    recorded). The compiled function sees the leading dimensions flattened into one, so every
    caller shares one compilation."""
    function = _STATE.function if _STATE.path == "compiled" else None
    if function is None or not torch.is_grad_enabled() or query.device.type not in _STATE.devices:
        return additive_weights(query, context, v, mask)
    lead = query.shape[:-3]
    weights = function(query.reshape(-1, *query.shape[-3:]),
                       context.reshape(-1, *context.shape[-3:]), v,
                       mask.reshape(-1, mask.shape[-1]))  # (L, Q, H, M)
    return weights.reshape(*lead, *weights.shape[1:])
