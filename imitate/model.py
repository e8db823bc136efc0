"""The one-shot imitation policy of Duan et al. 2017 (section 4, appendix B.1), top to bottom.

A demonstration (a sequence of frames: block positions relative to the gripper and the gripper
state) and the current observation go in; per-axis categorical logits over the discrete action set
of ``imitate.actions`` come out. The modules, in dependency order:

1. weight-normalised ``Linear`` / causal dilated ``TemporalConv`` (appendix B.1: weight norm with
   data-dependent init on every dense and conv layer);
2. ``temporal_dropout``: keep ``floor(0.05 T)`` demo frames, in order;
3. ``SoftAttention`` (Bahdanau: ``w_i = v^T tanh(q + c_i)``, several heads);
4. ``NeighborhoodAttention``: each block attends over all blocks of the same frame;
5. ``DemonstrationNetwork``: kernel-1 embedding, 4 residual layers (dilations 1, 2, 4, 8) of
   ReLU -> neighborhood attention -> concat state -> dilated temporal conv -> ReLU -> residual add;
6. ``ContextNetwork``: 4 untied LSTM steps per block, each reading the demo by temporal attention
   (scaled dot-product scores by default, the paper's additive form as an option: see
   ``PolicyConfig.temporal_scoring``) and the current blocks by spatial attention, then 2 learned
   fixed queries over the current block positions: a context of ``2 + 6 H`` numbers;
7. ``ManipulationNetwork``: MLP 256-256 to logits;
8. ``OneShotPolicy``: the whole, with a cached demo embedding and ensemble inference.

Shapes: B batch, T demo frames, K block slots (10, padded; ``block_mask`` marks real ones), D width.
Padded blocks and padded demo frames are masked out of every attention and pooling, so they have no
effect on the real blocks' outputs. No positional encoding anywhere: the network is equivariant to
the order of the block slots (the paper checks all 24 orderings of abcd).
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imitate import actions

CONDITIONING_MODES = ("full", "snapshot", "final")
TEMPORAL_SCORINGS = ("dot", "additive")
ROBOT_DIM = 2  # gripper open/closed one-hot (paper: 2-d gripper state)
XYZ_DIM = 3


@dataclass
class PolicyConfig:
    """Architecture hyper-parameters; defaults are the paper's (appendix B.1) unless noted."""

    #: Block slots (our env pads every task to 10 blocks).
    max_blocks: int = 10
    #: Width D of every embedding (paper: 64).
    hidden: int = 64
    #: Dilations of the demonstration network's residual layers (paper: 1, 2, 4, 8).
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    #: Query heads of the neighborhood attention ("several heads"; our choice: 2).
    attention_heads: int = 2
    #: Heads H of the context network's attentions (paper: 2); context = 2 + 6 H numbers.
    context_heads: int = 2
    #: Untied LSTM steps of the context network (paper: 4).
    context_steps: int = 4
    #: How the context network's temporal attention scores the demo's (frame, block) slots:
    #: ``"additive"`` is the paper's Bahdanau form ``v^T tanh(q + c)`` (section 4.1), which
    #: costs a (K, T*K, H, D) tanh per LSTM step and per observation: 36 ms per control step at
    #: 10 cubes and a 1000-frame demo, 339 ms with the 10-copy ensemble (benchmarks/policy.py).
    #: ``"dot"`` (our default) scores ``q . c / sqrt(D)`` with the same query and key layers: a
    #: matrix product, an order of magnitude faster, with the same inputs and outputs. The paper
    #: does not say which form its temporal attention used beyond "soft attention".
    temporal_scoring: str = "dot"
    #: Hidden sizes of the manipulation MLP (paper: 256, 256).
    mlp_hidden: tuple[int, ...] = (256, 256)
    #: Fraction of demo frames kept by temporal dropout while training (paper: p = 0.95 dropped).
    keep_fraction: float = 0.05
    #: What the policy sees of the demonstration: all frames, the last frame of each stage, or
    #: the last frame only (paper, section 5.2).
    conditioning: str = "full"
    #: Bins per Cartesian axis and gripper classes of the discrete action set.
    num_bins: int = actions.NUM_BINS
    num_gripper_classes: int = actions.NUM_GRIPPER_CLASSES
    #: Weight normalisation on dense and conv layers (paper: yes, with data-dependent init).
    weight_norm: bool = True
    #: Factor on block positions (m) where they enter the network (our choice; the paper does not
    #: give its units). 10 reads them in decimetres, of order 1 like the gripper one-hot they are
    #: concatenated with; in metres the data-dependent init of the first layers lets the one-hot
    #: drown them out and training stalls near the constant-action loss.
    position_scale: float = 10.0
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.dilations = tuple(int(d) for d in self.dilations)
        self.mlp_hidden = tuple(int(h) for h in self.mlp_hidden)
        if self.temporal_scoring not in TEMPORAL_SCORINGS:
            raise ValueError(f"temporal_scoring must be one of {TEMPORAL_SCORINGS}, "
                             f"got {self.temporal_scoring!r}")
        if self.conditioning not in CONDITIONING_MODES:
            raise ValueError(f"conditioning must be one of {CONDITIONING_MODES}, "
                             f"got {self.conditioning!r}")
        if not (math.isfinite(self.position_scale) and self.position_scale > 0.0):
            raise ValueError(f"position_scale must be a positive number, got {self.position_scale}")
        if not 0.0 < self.keep_fraction <= 1.0:
            raise ValueError(f"keep_fraction must be in (0, 1], got {self.keep_fraction}")
        for name in ("max_blocks", "hidden", "attention_heads", "context_heads", "context_steps",
                     "num_bins", "num_gripper_classes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def context_size(self) -> int:
        """Numbers in the context vector: robot state + 2 fixed queries x H heads x xyz."""
        return ROBOT_DIM + 2 * self.context_heads * XYZ_DIM


# --- 1. weight-normalised layers -------------------------------------------------------------
_DATA_INIT = False


@contextlib.contextmanager
def data_dependent_init() -> Iterator[None]:
    """Within this context, each weight-normalised layer's first forward pass sets its gain and
    bias so that its outputs have zero mean and unit variance over the batch (Salimans & Kingma
    2016), as the paper does. Run one forward pass on a real batch inside it, once."""
    global _DATA_INIT
    _DATA_INIT = True
    try:
        yield
    finally:
        _DATA_INIT = False


class _WeightNormMixin:
    """Shared data-dependent init for weight-normalised layers (``weight = g * v / |v|``), and
    a cache of the normalised weight for inference (no autograd): a control step then does not
    recompute every layer's norm. The cache is keyed on the parameters' storage and in-place
    version counters, so optimiser steps, ``load_state_dict`` and ``.to(device)`` refresh it."""

    direction: nn.Parameter
    gain: nn.Parameter
    bias: nn.Parameter

    def weight(self) -> Tensor:
        if not self.weight_norm:
            return self.direction
        if torch.is_grad_enabled():
            return self.normalised_weight()
        key = (self.direction.data_ptr(), self.direction._version, self.gain.data_ptr(),
               self.gain._version)
        if getattr(self, "_weight_key", None) != key:
            self._weight_cache = self.normalised_weight()
            self._weight_key = key
        return self._weight_cache

    def _maybe_data_init(self, out: Tensor, channel_dim: int, valid: Tensor | None) -> Tensor:
        if not (_DATA_INIT and self.training and not bool(self.initialised)):
            return out
        with torch.no_grad():
            flat = out.movedim(channel_dim, -1).reshape(-1, out.shape[channel_dim])
            if valid is not None:
                flat = flat[valid.reshape(-1)]
            mean = flat.mean(0)
            std = flat.std(0, unbiased=False) if len(flat) > 1 else torch.ones_like(mean)
            scale = 1.0 / (std + 1e-6)
            self.gain.mul_(scale)
            self.bias.copy_((self.bias - mean) * scale)
            self.initialised.fill_(True)
        shape = [1] * out.dim()
        shape[channel_dim] = -1
        return (out - mean.view(shape)) * scale.view(shape)


class Linear(nn.Module, _WeightNormMixin):
    """Dense layer over the last dimension, weight-normalised when ``weight_norm``."""

    def __init__(self, in_features: int, out_features: int, weight_norm: bool = True):
        super().__init__()
        self.weight_norm = weight_norm
        self.direction = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.kaiming_uniform_(self.direction, a=math.sqrt(5))
        self.gain = nn.Parameter(self.direction.detach().norm(dim=1).clone())
        bound = 1 / math.sqrt(in_features)
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        self.register_buffer("initialised", torch.tensor(not weight_norm))

    def normalised_weight(self) -> Tensor:
        return self.direction * (self.gain / self.direction.norm(dim=1)).unsqueeze(1)

    def forward(self, x: Tensor, valid: Tensor | None = None) -> Tensor:
        out = F.linear(x, self.weight(), self.bias)
        return self._maybe_data_init(out, -1, valid)


class TemporalConv(nn.Module, _WeightNormMixin):
    """Causal dilated Conv1D over time, applied to every block slot independently.

    Causal (left padding only) is our choice: the paper says "dilated temporal convolution" without
    padding details (appendix B.1). With demos padded at the END, causality also guarantees that
    padded frames never leak into real ones.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, dilation: int,
                 weight_norm: bool = True):
        super().__init__()
        self.kernel, self.dilation, self.weight_norm = kernel, dilation, weight_norm
        self.direction = nn.Parameter(torch.empty(out_channels, in_channels, kernel))
        nn.init.kaiming_uniform_(self.direction, a=math.sqrt(5))
        self.gain = nn.Parameter(self.direction.detach().flatten(1).norm(dim=1).clone())
        bound = 1 / math.sqrt(in_channels * kernel)
        self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))
        self.register_buffer("initialised", torch.tensor(not weight_norm))

    def normalised_weight(self) -> Tensor:
        norm = self.direction.flatten(1).norm(dim=1)
        return self.direction * (self.gain / norm).view(-1, 1, 1)

    def forward(self, x: Tensor, valid: Tensor | None = None) -> Tensor:
        """x: (B, T, K, C_in) -> (B, T, K, C_out)."""
        b, t, k, c = x.shape
        seq = x.permute(0, 2, 3, 1).reshape(b * k, c, t)  # (B*K, C_in, T)
        seq = F.pad(seq, ((self.kernel - 1) * self.dilation, 0))
        out = F.conv1d(seq, self.weight(), self.bias, dilation=self.dilation)  # (B*K, C_out, T)
        out = out.reshape(b, k, -1, t).permute(0, 3, 1, 2)  # (B, T, K, C_out)
        return self._maybe_data_init(out, -1, valid)


# --- 2. temporal dropout ---------------------------------------------------------------------
def temporal_dropout(
    lengths: Tensor, keep_fraction: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Choose, per demo, ``max(1, floor(keep_fraction * length))`` frames at random, in order.

    Args:
        lengths: (B,) true frame counts of the (end-padded) demos.
    Returns:
        indices: (B, T~) frame indices, ascending within each row, end-padded with the last index.
        valid: (B, T~) bool, False on padding.
    """
    keep = torch.clamp((lengths.float() * keep_fraction).floor().long(), min=1)
    keep = torch.minimum(keep, lengths.clamp(min=1))
    width = int(keep.max())
    rows, masks = [], []
    for length, count in zip(lengths.tolist(), keep.tolist(), strict=True):
        chosen = torch.randperm(max(length, 1), generator=generator)[:count].sort().values
        pad = chosen[-1:].expand(width - count)
        rows.append(torch.cat([chosen, pad]))
        masks.append(torch.arange(width) < count)
    return torch.stack(rows), torch.stack(masks)


def gather_frames(frames: Tensor, indices: Tensor) -> Tensor:
    """frames (B, T, ...) and indices (B, T~) -> (B, T~, ...)."""
    expand = indices.view(*indices.shape, *([1] * (frames.dim() - 2)))
    return frames.gather(1, expand.expand(-1, -1, *frames.shape[2:]))


# --- 3. soft attention -----------------------------------------------------------------------
class SoftAttention(nn.Module):
    """Bahdanau attention: ``w_j = v^T tanh(q + c_j)``, softmax over memory slots, read memory.

    Several heads, each with its own ``v``; the query and context projections are given already
    split into heads.
    """

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        self.heads, self.hidden = heads, hidden
        self.v = nn.Parameter(torch.randn(heads, hidden) / math.sqrt(hidden))

    def weights(self, query: Tensor, context: Tensor, mask: Tensor) -> Tensor:
        """query (..., Q, H, D), context (..., M, H, D), mask (..., M) -> weights (..., Q, H, M)."""
        scores = torch.tanh(query.unsqueeze(-3) + context.unsqueeze(-4))  # (..., Q, M, H, D)
        logits = (scores * self.v).sum(-1).transpose(-1, -2)  # (..., Q, H, M)
        logits = logits.masked_fill(~mask.unsqueeze(-2).unsqueeze(-2), float("-inf"))
        return torch.softmax(logits, dim=-1)

    def forward(self, query: Tensor, context: Tensor, memory: Tensor, mask: Tensor) -> Tensor:
        """memory (..., M, E) -> read (..., Q, H * E)."""
        w = self.weights(query, context, mask)  # (..., Q, H, M)
        read = w @ memory.unsqueeze(-3)  # (..., Q, H, E)
        return read.flatten(-2)


def dot_attention_weights(query: Tensor, keys_t: Tensor, bias: Tensor) -> Tensor:
    """Scaled dot-product attention weights over pre-transposed keys.

    query (B, Q, H, D), keys_t (B, H, D, M) (laid out once per demo), bias (B, M) (0 on real
    slots, -inf on padding) -> weights (B, H, Q, M).
    """
    logits = query.transpose(1, 2) @ keys_t  # (B, H, Q, M)
    logits = logits / math.sqrt(query.shape[-1]) + bias[:, None, None, :]
    return torch.softmax(logits, dim=-1)


# --- 4. neighborhood attention ---------------------------------------------------------------
class NeighborhoodAttention(nn.Module):
    """Each block attends over the blocks of the same frame (paper section 4.2).

    ``q_i = Linear(h_i)``, ``c_j = Linear(h_j)`` (two separate layers), ``memory_j = [xyz_j, h_j]``,
    ``out_i = Linear([h_i, read_i, xyz_i, robot])``.
    """

    def __init__(self, hidden: int, heads: int, weight_norm: bool):
        super().__init__()
        self.heads, self.hidden = heads, hidden
        self.query = Linear(hidden, heads * hidden, weight_norm)
        self.context = Linear(hidden, heads * hidden, weight_norm)
        self.attend = SoftAttention(hidden, heads)
        read = heads * (XYZ_DIM + hidden)
        self.out = Linear(hidden + read + XYZ_DIM + ROBOT_DIM, hidden, weight_norm)

    def forward(self, h: Tensor, xyz: Tensor, robot: Tensor, block_mask: Tensor,
                valid: Tensor | None = None) -> Tensor:
        """h (N, K, D), xyz (N, K, 3), robot (N, K, 2), block_mask (N, K) -> (N, K, D)."""
        q = self.query(h, valid).unflatten(-1, (self.heads, self.hidden))  # (N, K, H, D)
        c = self.context(h, valid).unflatten(-1, (self.heads, self.hidden))  # (N, K, H, D)
        memory = torch.cat([xyz, h], dim=-1)  # (N, K, 3 + D)
        read = self.attend(q, c, memory, block_mask)  # (N, K, H * (3 + D))
        return self.out(torch.cat([h, read, xyz, robot], dim=-1), valid)


# --- 5. demonstration network ----------------------------------------------------------------
class ResidualLayer(nn.Module):
    """``h + ReLU(conv_d([NA(ReLU(h)), xyz, robot]))`` (paper section 4.2).

    The paper concatenates the attention output with the block and robot state before the
    temporal convolution although the attention output already saw them; we follow the text
    literally (appendix B.1 is ambiguous on this concat).
    """

    def __init__(self, config: PolicyConfig, dilation: int):
        super().__init__()
        d, wn = config.hidden, config.weight_norm
        self.attention = NeighborhoodAttention(d, config.attention_heads, wn)
        self.conv = TemporalConv(d + XYZ_DIM + ROBOT_DIM, d, kernel=2, dilation=dilation,
                                 weight_norm=wn)

    def forward(self, h: Tensor, xyz: Tensor, robot: Tensor, block_mask: Tensor,
                valid: Tensor) -> Tensor:
        """h (B, T, K, D), xyz (B, T, K, 3), robot (B, T, K, 2), block_mask (B, K),
        valid (B, T, K) real frame and block -> (B, T, K, D)."""
        b, t, k, d = h.shape
        mask = block_mask.unsqueeze(1).expand(b, t, k).reshape(b * t, k)
        a = self.attention(F.relu(h).reshape(b * t, k, d), xyz.reshape(b * t, k, -1),
                           robot.reshape(b * t, k, -1), mask, valid.reshape(b * t, k))
        a = a.reshape(b, t, k, d)
        update = self.conv(torch.cat([a, xyz, robot], dim=-1), valid)
        return h + F.relu(update)


class DemonstrationNetwork(nn.Module):
    """Demo frames -> per-frame, per-block embeddings (B, T, K, D)."""

    def __init__(self, config: PolicyConfig):
        super().__init__()
        self.embed = Linear(XYZ_DIM + ROBOT_DIM, config.hidden, config.weight_norm)  # kernel-1 conv
        self.layers = nn.ModuleList(ResidualLayer(config, d) for d in config.dilations)

    def forward(self, blocks: Tensor, gripper: Tensor, block_mask: Tensor,
                frame_mask: Tensor) -> Tensor:
        """blocks (B, T, K, 3), gripper (B, T, 2), block_mask (B, K), frame_mask (B, T)."""
        robot = gripper.unsqueeze(2).expand(-1, -1, blocks.shape[2], -1)  # (B, T, K, 2)
        valid = frame_mask.unsqueeze(2) & block_mask.unsqueeze(1)  # (B, T, K)
        h = self.embed(torch.cat([blocks, robot], dim=-1), valid)  # (B, T, K, D)
        for layer in self.layers:
            h = layer(h, blocks, robot, block_mask, valid)
        return h


# --- 6. context network ----------------------------------------------------------------------
class ContextStep(nn.Module):
    """One untied LSTM step: temporal attention over the demo, spatial attention over the current
    blocks, LSTM update of every block's state (paper section 4.3)."""

    def __init__(self, config: PolicyConfig):
        super().__init__()
        d, heads, wn = config.hidden, config.context_heads, config.weight_norm
        self.heads, self.hidden = heads, d
        self.temporal_query = Linear(d, heads * d, wn)
        self.temporal = SoftAttention(d, heads) if config.temporal_scoring == "additive" else None
        self.spatial_query = Linear(d, heads * d, wn)
        self.spatial_context = Linear(d, heads * d, wn)
        self.spatial = SoftAttention(d, heads)
        lstm_input = ROBOT_DIM + XYZ_DIM + heads * (XYZ_DIM + d) + heads * d
        self.cell = nn.LSTMCell(lstm_input, d)

    def read_demo(self, state: Tensor, demo: DemoEncoding, keys: Tensor) -> Tensor:
        """Temporal attention: block i's query scores every (frame, block) of the demo; the weights
        of a frame's blocks are summed into one weight per frame, which then reads block i's own
        demo embedding at that frame (our reading of section 4.3).

        state (N, K, D) with N = B * P (``demo.pairs`` observations per demo, demo-major), keys:
        this step's ``DemoEncoding.keys`` entry -> (N, K, H * D). The P observations of a demo
        are scored together against its keys: the demo is never copied P times.
        """
        n, k, d = state.shape
        b, p, t = demo.own.shape[0], demo.pairs, demo.own.shape[2]
        q = self.temporal_query(state).unflatten(-1, (self.heads, d))  # (N, K, H, D)
        q = q.reshape(b, p * k, self.heads, d)  # (B, P*K, H, D)
        if self.temporal is None:
            w = dot_attention_weights(q, keys, demo.bias)  # (B, H, P*K, T*K')
            per_frame = w.unflatten(-1, (t, -1)).sum(-1)  # (B, H, P*K, T)
            per_frame = per_frame.unflatten(2, (p, k)).permute(0, 2, 3, 1, 4)  # (B, P, K, H, T)
        else:
            w = self.temporal.weights(q, keys, demo.valid.flatten(1))  # (B, P*K, H, T*K')
            per_frame = w.unflatten(-1, (t, -1)).sum(-1).unflatten(1, (p, k))  # (B, P, K, H, T)
        read = per_frame @ demo.own.unsqueeze(1)  # (B, P, K, H, D)
        return read.reshape(n, k, self.heads * d)

    def forward(self, state: Tensor, cell: Tensor, xyz: Tensor, robot: Tensor,
                block_mask: Tensor, demo: DemoEncoding, keys: Tensor) -> tuple[Tensor, Tensor]:
        """state, cell (B, K, D); xyz (B, K, 3); robot (B, K, 2) -> new (state, cell)."""
        b, k, d = state.shape
        temporal = self.read_demo(state, demo, keys)
        q = self.spatial_query(state).unflatten(-1, (self.heads, d))  # (B, K, H, D)
        c = self.spatial_context(state).unflatten(-1, (self.heads, d))
        spatial = self.spatial(q, c, torch.cat([xyz, state], -1), block_mask)  # (B, K, H*(3+D))
        inputs = torch.cat([robot, xyz, spatial, temporal], dim=-1)
        h, c_new = self.cell(inputs.reshape(b * k, -1), (state.reshape(b * k, d),
                                                          cell.reshape(b * k, d)))
        return h.reshape(b, k, d), c_new.reshape(b, k, d)


class ContextNetwork(nn.Module):
    """Demo embedding + current observation -> context vector (B, 2 + 6 H)."""

    def __init__(self, config: PolicyConfig):
        super().__init__()
        d, heads, wn = config.hidden, config.context_heads, config.weight_norm
        self.heads, self.hidden = heads, d
        self.embed = Linear(XYZ_DIM + ROBOT_DIM, d, wn)
        self.demo_keys = nn.ModuleList(Linear(d, heads * d, wn)
                                       for _ in range(config.context_steps))
        self.steps = nn.ModuleList(ContextStep(config) for _ in range(config.context_steps))
        # Two learned fixed queries (intended: the source and the target block of the stage).
        self.fixed_queries = nn.Parameter(torch.randn(2, heads, d) / math.sqrt(d))
        self.final_context = Linear(d, heads * d, wn)
        self.final = SoftAttention(d, heads)
        self.dot = config.temporal_scoring == "dot"

    def keys(self, demo: Tensor) -> list[Tensor]:
        """Per-step temporal attention keys of a demo embedding (B, T, K, D), laid out for the
        scoring: (B, H, D, T*K) for ``dot``, (B, T*K, H, D) for ``additive``."""
        b, t, k, d = demo.shape
        keys = []
        for layer in self.demo_keys:
            key = layer(demo).reshape(b, t * k, self.heads, d)  # (B, T*K, H, D)
            keys.append(key.permute(0, 2, 3, 1).contiguous() if self.dot else key)
        return keys

    def forward(self, blocks: Tensor, gripper: Tensor, block_mask: Tensor,
                demo: DemoEncoding) -> Tensor:
        """blocks (B, K, 3), gripper (B, 2), block_mask (B, K) -> context (B, 2 + 6H)."""
        robot = gripper.unsqueeze(1).expand(-1, blocks.shape[1], -1)  # (B, K, 2)
        state = self.embed(torch.cat([blocks, robot], -1))  # (B, K, D)
        cell = torch.zeros_like(state)
        for step, keys in zip(self.steps, demo.keys, strict=True):
            state, cell = step(state, cell, blocks, robot, block_mask, demo, keys)
        c = self.final_context(state).unflatten(-1, (self.heads, self.hidden))  # (B, K, H, D)
        q = self.fixed_queries.expand(blocks.shape[0], -1, -1, -1)  # (B, 2, H, D)
        read = self.final(q, c, blocks, block_mask)  # (B, 2, H * 3)
        return torch.cat([gripper, read.flatten(1)], dim=-1)  # (B, 2 + 6H)


# --- 7. manipulation network -----------------------------------------------------------------
class ManipulationNetwork(nn.Module):
    """Context -> logits: 3 axes x ``num_bins`` and ``num_gripper_classes`` (flat)."""

    def __init__(self, config: PolicyConfig):
        super().__init__()
        sizes = (config.context_size, *config.mlp_hidden)
        self.hidden = nn.ModuleList(Linear(a, b, config.weight_norm)
                                    for a, b in itertools.pairwise(sizes))
        outputs = 3 * config.num_bins + config.num_gripper_classes
        self.out = Linear(sizes[-1], outputs, config.weight_norm)

    def forward(self, context: Tensor) -> Tensor:
        x = context
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.out(x)


# --- 8. the policy -----------------------------------------------------------------------------
@dataclass
class DemoEncoding:
    """A demo embedded once per episode and reused at every control step, in the layouts the
    context network reads (so no step re-lays them out).

    own (B, K, T, D): each block's embedding over time; keys: per context step (see
    ``ContextNetwork.keys``); valid (B, T, K): real (frame, block) slots; bias (B, T*K): 0 on
    real slots, -inf on padding; ``pairs`` observations read each demo.
    """

    own: Tensor
    keys: list[Tensor]
    valid: Tensor
    bias: Tensor
    #: Observations conditioned on each demo row (consecutive rows of the observation batch).
    pairs: int = 1

    @property
    def copies(self) -> int:
        """Observation rows this encoding conditions (demos x pairs)."""
        return self.own.shape[0] * self.pairs

    def repeat(self, copies: int) -> DemoEncoding:
        """The same encoding for ``copies`` consecutive observations per demo (nothing copied)."""
        return DemoEncoding(self.own, self.keys, self.valid, self.bias, self.pairs * copies)


@dataclass
class Demo:
    """A batch of demonstrations, end-padded in time.

    blocks (B, T, K, 3) float, gripper (B, T, 2) float, block_mask (B, K) bool,
    frame_mask (B, T) bool (True on real frames).
    """

    blocks: Tensor
    gripper: Tensor
    block_mask: Tensor
    frame_mask: Tensor

    @property
    def lengths(self) -> Tensor:
        return self.frame_mask.sum(1)

    def select(self, indices: Tensor, valid: Tensor) -> Demo:
        """Frames ``indices`` (B, T~) of each demo; ``valid`` (B, T~) marks real ones."""
        return Demo(gather_frames(self.blocks, indices), gather_frames(self.gripper, indices),
                    self.block_mask, valid & gather_frames(self.frame_mask, indices))


class OneShotPolicy(nn.Module):
    """Demonstration-conditioned policy: ``logits = policy(demo, observation)``."""

    def __init__(self, config: PolicyConfig | None = None):
        super().__init__()
        self.config = config or PolicyConfig()
        self.demo_net = DemonstrationNetwork(self.config)
        self.context_net = ContextNetwork(self.config)
        self.manipulation_net = ManipulationNetwork(self.config)

    def subsample(self, demo: Demo, generator: torch.Generator | None = None) -> Demo:
        """Temporal dropout for ``full`` conditioning; other modes use the demo as given."""
        if self.config.conditioning != "full" or self.config.keep_fraction >= 1.0:
            return demo
        indices, valid = temporal_dropout(demo.lengths, self.config.keep_fraction, generator)
        return demo.select(indices.to(demo.blocks.device), valid.to(demo.blocks.device))

    def encode(self, demo: Demo) -> DemoEncoding:
        """Embed (already subsampled) demo frames: run once per episode at inference."""
        blocks = demo.blocks * self.config.position_scale  # (B, T, K, 3)
        embedding = self.demo_net(blocks, demo.gripper, demo.block_mask, demo.frame_mask)
        valid = demo.frame_mask.unsqueeze(2) & demo.block_mask.unsqueeze(1)  # (B, T, K)
        bias = torch.zeros(valid.shape, device=valid.device).masked_fill(~valid, float("-inf"))
        own = embedding.transpose(1, 2).contiguous()  # (B, K, T, D)
        return DemoEncoding(own, self.context_net.keys(embedding), valid, bias.flatten(1))

    def decide(self, encoding: DemoEncoding, blocks: Tensor, gripper: Tensor,
               block_mask: Tensor) -> Tensor:
        """Logits (B, 3 * num_bins + num_gripper_classes) for observations given an encoding."""
        blocks = blocks * self.config.position_scale  # (B, K, 3)
        context = self.context_net(blocks, gripper, block_mask, encoding)
        return self.manipulation_net(context)

    def forward(self, demo: Demo, blocks: Tensor, gripper: Tensor, block_mask: Tensor,
                pairs_per_demo: int = 1) -> Tensor:
        """Training pass: each demo conditions ``pairs_per_demo`` consecutive observation rows.

        demo: B demos (already subsampled); blocks (B * P, K, 3), gripper (B * P, 2),
        block_mask (B * P, K) -> logits (B * P, 3 * num_bins + num_gripper_classes).
        """
        encoding = self.encode(demo).repeat(pairs_per_demo)
        return self.decide(encoding, blocks, gripper, block_mask)

    def split_logits(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """(N, 3 * bins + g) -> axis logits (N, 3, bins) and gripper logits (N, g)."""
        n_axis = 3 * self.config.num_bins
        return logits[:, :n_axis].unflatten(-1, (3, self.config.num_bins)), logits[:, n_axis:]

    def loss(self, logits: Tensor, labels: Tensor) -> Tensor:
        """Summed per-axis cross-entropy (paper: factorised categorical), mean over rows.

        labels (N, 4) int: three axis bin indices and the gripper class (``actions.to_bins``).
        """
        axis, grip = self.split_logits(logits)
        axis_loss = F.cross_entropy(axis.reshape(-1, self.config.num_bins),
                                    labels[:, :3].reshape(-1), reduction="none").view(-1, 3)
        grip_loss = F.cross_entropy(grip, labels[:, 3], reduction="none")
        return (axis_loss.sum(1) + grip_loss).mean()

    @torch.no_grad()
    def ensemble_encoding(self, demo: Demo, copies: int, generator: torch.Generator
                          ) -> DemoEncoding:
        """Encode ``copies`` independently subsampled versions of ONE demo as one batch (paper:
        an ensemble of 10 downsampled demos, action distributions averaged)."""
        batch = Demo(demo.blocks.expand(copies, *demo.blocks.shape[1:]),
                     demo.gripper.expand(copies, *demo.gripper.shape[1:]),
                     demo.block_mask.expand(copies, -1), demo.frame_mask.expand(copies, -1))
        return self.encode(self.subsample(batch, generator))

    @torch.no_grad()
    def act_probabilities(self, encoding: DemoEncoding, blocks: Tensor, gripper: Tensor,
                          block_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Ensemble-averaged probabilities for ONE observation.

        blocks (1, K, 3), gripper (1, 2), block_mask (1, K); the encoding has E rows
        -> axis probabilities (3, bins), gripper probabilities (g,).
        """
        copies = encoding.copies
        logits = self.decide(encoding, blocks.expand(copies, -1, -1), gripper.expand(copies, -1),
                             block_mask.expand(copies, -1))
        axis, grip = self.split_logits(logits)
        return axis.softmax(-1).mean(0), grip.softmax(-1).mean(0)


def conditioning_indices(length: int, stage_ends: list[int], mode: str) -> list[int]:
    """Demo frame indices a conditioning mode keeps (paper section 5.2).

    Args:
        length: frames in the demo.
        stage_ends: frame index at which each stage was completed, in build order.
        mode: ``full`` (every frame; temporal dropout then subsamples), ``snapshot`` (the last
            frame of each stage) or ``final`` (the last frame).
    """
    if mode not in CONDITIONING_MODES:
        raise ValueError(f"conditioning must be one of {CONDITIONING_MODES}, got {mode!r}")
    if length < 1:
        raise ValueError("a demonstration needs at least one frame")
    if mode == "full":
        return list(range(length))
    if mode == "final":
        return [length - 1]
    ends = sorted({min(max(int(e), 0), length - 1) for e in stage_ends})
    return ends if ends and ends[-1] == length - 1 else [*ends, length - 1]
