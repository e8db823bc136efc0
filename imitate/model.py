"""The one-shot imitation policy of Duan et al. 2017 (section 4, appendix B.1), top to bottom.

A demonstration (a sequence of frames: block positions relative to the gripper and the gripper
state) and the current observation go in; per-axis categorical logits over the discrete action set
of ``imitate.actions`` come out. The modules, in dependency order:

1. weight-normalised ``Linear`` / causal dilated ``TemporalConv`` (appendix B.1: weight norm with
   data-dependent init on every dense and conv layer);
2. ``temporal_dropout``: keep ``max(min_kept_frames, floor(keep_fraction T))`` demo frames, in
   order (``PolicyConfig.keep_fraction``: our demos are far shorter than the paper's);
3. ``SoftAttention`` (Bahdanau: ``w_i = v^T tanh(q + c_i)``, several heads);
4. ``NeighborhoodAttention``: each block attends over all blocks of the same frame;
5. ``DemonstrationNetwork``: kernel-1 embedding, 4 residual layers (dilations 1, 2, 4, 8) of
   ReLU -> neighborhood attention -> concat state -> dilated temporal conv -> ReLU -> residual add;
6. ``ContextNetwork``: 4 untied LSTM steps per block, each reading the demo by temporal attention
   (every block attends to the same demo frame: Module 2 of appendix B, ``ContextStep``) and the
   current blocks by spatial attention over ``[x, temp]``, then 2 learned fixed queries over the
   current block positions: a context of ``2 + 6 H`` numbers. The 0.5 form is kept as
   ``PolicyConfig.context_form = "0.5"`` for the checkpoints it wrote;
7. ``ManipulationNetwork``: MLP 256-256 to logits;
8. ``OneShotPolicy``: the whole, with a cached demo embedding and ensemble inference.

``record_attention()`` returns, for the passes run inside it, every attention's weights
(``AttentionMaps``); outside it nothing is kept.

Shapes: B batch, T demo frames, K block slots (10, padded; ``block_mask`` marks real ones), D width.
Padded blocks and padded demo frames are masked out of every attention and pooling, so they have no
effect on the real blocks' outputs. No positional encoding anywhere: the network is equivariant to
the order of the block slots (the paper checks all 24 orderings of abcd).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imitate import actions, fast
from imitate.conditioning import check_conditioning

TEMPORAL_SCORINGS = ("dot", "additive")
#: ``module2``: the paper's context network (appendix B, Module 2); ``0.5``: the form imitate 0.2
#: to 0.5 trained (kept so that their checkpoints load and act as they did; see ``ContextStep``).
CONTEXT_FORMS = ("module2", "0.5")
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
    #: The context network: ``"module2"`` (default) is appendix B's Module 2; ``"0.5"`` is the form
    #: of imitate 0.2 to 0.5 (per-block temporal attention, spatial attention from the LSTM state
    #: alone over ``[xyz, state]``), kept for the checkpoints it wrote. See ``ContextStep``.
    context_form: str = "module2"
    #: How the context network's temporal attention scores a demo slot: ``"additive"`` is the
    #: paper's Bahdanau form ``v^T tanh(q + c)`` (section 4.1); ``"dot"`` (our default) scores
    #: ``q . c / sqrt(D)`` with the same query and key layers, a matrix product. The paper does not
    #: say which form its temporal attention used beyond "soft attention". In Module 2 the
    #: additive form costs a (T, K, H, D) tanh per observation and LSTM step, a (K, T*K, H, D) one
    #: in the 0.5 form (36 ms per control step at 10 cubes and a 1000-frame demo there).
    temporal_scoring: str = "dot"
    #: Hidden sizes of the manipulation MLP (paper: 256, 256).
    mlp_hidden: tuple[int, ...] = (256, 256)
    #: Temporal dropout keeps ``max(min_kept_frames, floor(keep_fraction * T))`` of a demo's T
    #: frames (all of them when T is smaller), in training and in the evaluation ensemble. The
    #: paper drops p = 0.95 (keeps 0.05) of demos hundreds to thousands of steps long; ours run
    #: 45 to 110 control steps per stage. Defaults chosen by measurement (README, "Temporal
    #: dropout"); 0.5 checkpoints kept 0.05 with a minimum of 1.
    keep_fraction: float = 0.05
    min_kept_frames: int = 1
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
        if self.context_form not in CONTEXT_FORMS:
            raise ValueError(f"context_form must be one of {CONTEXT_FORMS}, "
                             f"got {self.context_form!r}")
        check_conditioning(self.conditioning)
        if not (math.isfinite(self.position_scale) and self.position_scale > 0.0):
            raise ValueError(f"position_scale must be a positive number, got {self.position_scale}")
        if not 0.0 < self.keep_fraction <= 1.0:
            raise ValueError(f"keep_fraction must be in (0, 1], got {self.keep_fraction}")
        for name in ("max_blocks", "hidden", "attention_heads", "context_heads", "context_steps",
                     "num_bins", "num_gripper_classes", "min_kept_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def context_size(self) -> int:
        """Numbers in the context vector: robot state + 2 fixed queries x H heads x xyz."""
        return ROBOT_DIM + 2 * self.context_heads * XYZ_DIM


# --- 0. attention maps, on request -------------------------------------------------------------
@dataclass
class AttentionMaps:
    """Attention weights of the passes run inside ``record_attention`` (detached), in call order.

    Shapes: N observation rows, B demos, T demo frames (after dropout), K block slots, H heads.

    - ``neighborhood``: per demo-network layer, (B, T, K, H, K): block i's weights over the
      blocks of the same demo frame;
    - ``temporal``: per context step, (N, H, T): the weight of each demo frame (Module 2 gives all
      blocks one distribution; for the 0.5 form, its per-block weights averaged over the real
      blocks);
    - ``spatial``: per context step, (N, K, H, K): block i's weights over the current blocks;
    - ``fixed``: per pass, (N, 2, H, K): the two fixed queries' weights over the current blocks.
    """

    neighborhood: list[Tensor] = field(default_factory=list)
    temporal: list[Tensor] = field(default_factory=list)
    spatial: list[Tensor] = field(default_factory=list)
    fixed: list[Tensor] = field(default_factory=list)

    def clear(self) -> None:
        for name in ("neighborhood", "temporal", "spatial", "fixed"):
            getattr(self, name).clear()


_RECORDING: AttentionMaps | None = None


@contextlib.contextmanager
def record_attention() -> Iterator[AttentionMaps]:
    """Collect the attention weights of every policy pass run inside this context; outside it
    the passes keep nothing (one ``is None`` test per attention)."""
    global _RECORDING
    outer, _RECORDING = _RECORDING, AttentionMaps()
    try:
        yield _RECORDING
    finally:
        _RECORDING = outer


def _record(kind: str, weights: Tensor) -> None:
    if _RECORDING is not None:
        getattr(_RECORDING, kind).append(weights.detach())


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
def kept_frame_counts(lengths: Tensor, keep_fraction: float, min_kept_frames: int = 1) -> Tensor:
    """Frames temporal dropout keeps of demos ``lengths`` (B,) frames long:
    ``max(min_kept_frames, floor(keep_fraction * length))``, at most ``length``, at least 1."""
    keep = (lengths.float() * keep_fraction).floor().long()
    keep = torch.clamp(keep, min=max(min_kept_frames, 1))
    return torch.minimum(keep, lengths.clamp(min=1))


def temporal_dropout(
    lengths: Tensor, keep_fraction: float, generator: torch.Generator | None = None,
    min_kept_frames: int = 1,
) -> tuple[Tensor, Tensor]:
    """Choose, per demo, ``kept_frame_counts`` frames at random, in order.

    Args:
        lengths: (B,) true frame counts of the (end-padded) demos.
    Returns:
        indices: (B, T~) frame indices, ascending within each row, end-padded with the last index.
        valid: (B, T~) bool, False on padding.
    """
    keep = kept_frame_counts(lengths, keep_fraction, min_kept_frames)
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
        """query (..., Q, H, D), context (..., M, H, D), mask (..., M) -> weights (..., Q, H, M)
        (the fused kernel once ``imitate.fast.configure(True)`` succeeded)."""
        return fast.attention_weights(query, context, self.v, mask)

    @staticmethod
    def read(weights: Tensor, memory: Tensor) -> Tensor:
        """weights (..., Q, H, M), memory (..., M, E) -> read (..., Q, H * E).

        One (Q*H, M) @ (M, E) product per row of the leading dimensions: broadcasting memory
        over the queries instead makes Q*H-times more, tiny products whose backward pass first
        copies memory Q times and sums the copies (half a training step's matrix time at 10
        cubes in 0.7.0)."""
        *lead, q, heads, m = weights.shape
        rows = weights.reshape(-1, q * heads, m) @ memory.reshape(-1, m, memory.shape[-1])
        return rows.reshape(*lead, q, -1)  # (..., Q, H * E)

    def forward(self, query: Tensor, context: Tensor, memory: Tensor, mask: Tensor,
                record: str | None = None) -> Tensor:
        """memory (..., M, E) -> read (..., Q, H * E); ``record`` names the ``AttentionMaps``
        list that keeps the weights under ``record_attention``."""
        w = self.weights(query, context, mask)  # (..., Q, H, M)
        if record is not None:
            _record(record, w)
        return self.read(w, memory)


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
        """h (..., K, D), xyz (..., K, 3), robot (..., K, 2), block_mask (..., K) -> (..., K, D)."""
        q = self.query(h, valid).unflatten(-1, (self.heads, self.hidden))  # (..., K, H, D)
        c = self.context(h, valid).unflatten(-1, (self.heads, self.hidden))  # (..., K, H, D)
        memory = torch.cat([xyz, h], dim=-1)  # (..., K, 3 + D)
        read = self.attend(q, c, memory, block_mask, "neighborhood")  # (..., K, H * (3 + D))
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
        mask = block_mask.unsqueeze(1).expand_as(valid)  # (B, T, K)
        a = self.attention(F.relu(h), xyz, robot, mask, valid)  # (B, T, K, D)
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
class LSTMCell(nn.Module):
    """An LSTM step whose two dense layers (input and recurrent) are weight-normalised ``Linear``
    layers with data-dependent init, as appendix B.1 asks of every dense layer.

    Module 2 feeds the LSTM the demo's embedding read by attention (``temp``, and again inside
    ``spatial``): 390 inputs of the residual stack's scale. Through ``nn.LSTMCell``'s fixed
    uniform init they saturated the gates, and training sat on the constant-action loss several
    times longer than the 0.5 form (README, "The context network"); normalised at init, each
    gate's pre-activation starts with unit variance over the batch.
    """

    def __init__(self, inputs: int, hidden: int, weight_norm: bool = True):
        super().__init__()
        self.input = Linear(inputs, 4 * hidden, weight_norm)
        self.recurrent = Linear(hidden, 4 * hidden, weight_norm)

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor], valid: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        """x (N, inputs), state (h, c) each (N, hidden), valid (N,) rows for the data-dependent
        init -> new (h, c). Gate order: input, forget, cell, output."""
        h, c = state
        gates = self.input(x, valid) + self.recurrent(h, valid)  # (N, 4 * hidden)
        i, f, g, o = gates.chunk(4, dim=-1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c_new), c_new


class ContextStep(nn.Module):
    """One untied LSTM step of the context network (paper section 4.3, appendix B Module 2).

    ``context_form = "module2"`` (the paper's), for every block i with LSTM output x_i (ReLU(x_i)
    from the second step on; the LSTM's own recurrent state stays unrectified):

    - temporal: ``q_i = Dense(x_i)``; the score of demo frame t is the sum over the real blocks j
      of ``score(q_j, c_tj)`` (c: a per-step Dense of the demo embedding), then ONE softmax over
      the frames, shared by all blocks ("every block attends to the same time step"); block i
      reads its own demo embedding at those frames: ``temp_i`` (H D);
    - spatial: ``ctx_i = Dense([x_i, temp_i])``, ``q_i = Dense([x_i, temp_i])``, memory
      ``[xyz_j, temp_j]``: ``spatial_i`` (H (H D + 3));
    - one LSTM step on ``[robot, xyz_i, spatial_i, temp_i]``.

    ``context_form = "0.5"`` (imitate 0.2 to 0.5): block i's query scores every (frame, block)
    slot of the demo with its own softmax, the weights of a frame's blocks are summed and read
    block i's own embedding; spatial query and context come from the state alone over memory
    ``[xyz_j, state_j]``; no ReLU. At the first step no demo information passed between blocks.
    """

    def __init__(self, config: PolicyConfig, first: bool):
        super().__init__()
        d, heads, wn = config.hidden, config.context_heads, config.weight_norm
        self.heads, self.hidden = heads, d
        self.module2 = config.context_form == "module2"
        self.rectify = self.module2 and not first
        self.temporal_query = Linear(d, heads * d, wn)
        self.temporal = SoftAttention(d, heads) if config.temporal_scoring == "additive" else None
        spatial_in = d + heads * d if self.module2 else d  # [x, temp] or the state
        memory = XYZ_DIM + (heads * d if self.module2 else d)  # [xyz, temp] or [xyz, state]
        self.spatial_query = Linear(spatial_in, heads * d, wn)
        self.spatial_context = Linear(spatial_in, heads * d, wn)
        self.spatial = SoftAttention(d, heads)
        lstm_input = ROBOT_DIM + XYZ_DIM + heads * memory + heads * d
        self.cell = LSTMCell(lstm_input, d, wn) if self.module2 else nn.LSTMCell(lstm_input, d)

    def read_demo(self, x: Tensor, block_mask: Tensor, demo: DemoEncoding, keys: Tensor
                  ) -> Tensor:
        """Module 2's temporal attention: one distribution over demo frames for all blocks.

        x (N, K, D) with N = B * P (``demo.pairs`` observations per demo, demo-major),
        block_mask (N, K), keys: this step's ``DemoEncoding.keys`` entry -> temp (N, K, H * D).
        The P observations of a demo are scored together against its keys (never copied).
        """
        n, k, d = x.shape
        b, p, t, heads = demo.own.shape[0], demo.pairs, demo.own.shape[2], self.heads
        q = self.temporal_query(x).unflatten(-1, (heads, d))  # (N, K, H, D)
        real = block_mask.reshape(b, p, k)  # (B, P, K)
        if self.temporal is None:
            q = (q * block_mask[..., None, None]).reshape(b, p, k, heads, d)  # padding scores 0
            q = q.permute(0, 3, 1, 2, 4).reshape(b, heads, p, k * d)  # (B, H, P, K*D)
            scores = (q @ keys).transpose(1, 2) / math.sqrt(d)  # (B, P, H, T)
        else:
            q = q.reshape(b, p, 1, k, heads, d)
            slot = (torch.tanh(q + keys.unsqueeze(1)) * self.temporal.v).sum(-1)  # (B,P,T,K,H)
            scores = (slot * real[:, :, None, :, None]).sum(3).transpose(2, 3)  # (B, P, H, T)
        weights = torch.softmax(scores + demo.frame_bias[:, None, None, :], -1)  # (B, P, H, T)
        _record("temporal", weights.reshape(n, heads, t))
        read = weights.reshape(b, p * heads, t) @ demo.by_frame.flatten(2)  # (B, P*H, K*D)
        read = read.reshape(b, p, heads, k, d).transpose(2, 3)  # (B, P, K, H, D)
        return read.reshape(n, k, heads * d)

    def read_demo_v05(self, state: Tensor, block_mask: Tensor, demo: DemoEncoding,
                      keys: Tensor) -> Tensor:
        """The 0.5 form's temporal attention: block i's query scores every (frame, block) slot
        of the demo, and the weights of a frame's blocks are summed into one weight per frame
        that reads block i's own demo embedding. Shapes as ``read_demo``."""
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
        if _RECORDING is not None:  # one map per observation: the mean over its real blocks
            real = block_mask.reshape(b, p, k, 1, 1).float()
            mean = (per_frame * real).sum(2) / real.sum(2).clamp(min=1)  # (B, P, H, T)
            _record("temporal", mean.reshape(n, self.heads, t))
        read = per_frame @ demo.own.unsqueeze(1)  # (B, P, K, H, D)
        return read.reshape(n, k, self.heads * d)

    def forward(self, state: Tensor, cell: Tensor, xyz: Tensor, robot: Tensor,
                block_mask: Tensor, demo: DemoEncoding, keys: Tensor) -> tuple[Tensor, Tensor]:
        """state, cell (N, K, D); xyz (N, K, 3); robot (N, K, 2) -> new (state, cell)."""
        n, k, d = state.shape
        x = F.relu(state) if self.rectify else state
        if self.module2:
            temporal = self.read_demo(x, block_mask, demo, keys)  # (N, K, H*D)
            attend_from = torch.cat([x, temporal], -1)  # (N, K, D + H*D)
            memory = torch.cat([xyz, temporal], -1)  # (N, K, 3 + H*D)
        else:
            temporal = self.read_demo_v05(x, block_mask, demo, keys)
            attend_from, memory = x, torch.cat([xyz, x], -1)
        q = self.spatial_query(attend_from).unflatten(-1, (self.heads, d))  # (N, K, H, D)
        c = self.spatial_context(attend_from).unflatten(-1, (self.heads, d))
        spatial = self.spatial(q, c, memory, block_mask, "spatial")  # (N, K, H * memory)
        inputs = torch.cat([robot, xyz, spatial, temporal], dim=-1)
        rows = (inputs.reshape(n * k, -1), (state.reshape(n * k, d), cell.reshape(n * k, d)))
        # Module 2's cell takes the real rows for its data-dependent init; nn.LSTMCell does not.
        h, c_new = self.cell(*rows, block_mask.reshape(n * k)) if self.module2 else self.cell(*rows)
        return h.reshape(n, k, d), c_new.reshape(n, k, d)


class ContextNetwork(nn.Module):
    """Demo embedding + current observation -> context vector (N, 2 + 6 H)."""

    def __init__(self, config: PolicyConfig):
        super().__init__()
        d, heads, wn = config.hidden, config.context_heads, config.weight_norm
        self.heads, self.hidden = heads, d
        self.module2 = config.context_form == "module2"
        self.embed = Linear(XYZ_DIM + ROBOT_DIM, d, wn)
        self.demo_keys = nn.ModuleList(Linear(d, heads * d, wn)
                                       for _ in range(config.context_steps))
        self.steps = nn.ModuleList(ContextStep(config, first=i == 0)
                                   for i in range(config.context_steps))
        # Two learned fixed queries (intended: the source and the target block of the stage).
        self.fixed_queries = nn.Parameter(torch.randn(2, heads, d) / math.sqrt(d))
        self.final_context = Linear(d, heads * d, wn)
        self.final = SoftAttention(d, heads)
        self.dot = config.temporal_scoring == "dot"

    def keys(self, demo: Tensor) -> list[Tensor]:
        """Per-step temporal attention keys of a demo embedding (B, T, K, D), laid out for the
        scoring. Module 2: (B, H, K*D, T) for ``dot``, (B, T, K, H, D) for ``additive``; the 0.5
        form: (B, H, D, T*K) for ``dot``, (B, T*K, H, D) for ``additive``."""
        b, t, k, d = demo.shape
        keys = []
        for layer in self.demo_keys:
            key = layer(demo).reshape(b, t, k, self.heads, d)  # (B, T, K, H, D)
            if self.module2:
                key = key.permute(0, 3, 2, 4, 1).reshape(b, self.heads, k * d, t) if self.dot \
                    else key
            else:
                key = key.reshape(b, t * k, self.heads, d)
                key = key.permute(0, 2, 3, 1) if self.dot else key
            keys.append(key.contiguous())
        return keys

    def forward(self, blocks: Tensor, gripper: Tensor, block_mask: Tensor,
                demo: DemoEncoding) -> Tensor:
        """blocks (N, K, 3), gripper (N, 2), block_mask (N, K) -> context (N, 2 + 6H)."""
        robot = gripper.unsqueeze(1).expand(-1, blocks.shape[1], -1)  # (N, K, 2)
        state = self.embed(torch.cat([blocks, robot], -1))  # (N, K, D)
        cell = torch.zeros_like(state)
        for step, keys in zip(self.steps, demo.keys, strict=True):
            state, cell = step(state, cell, blocks, robot, block_mask, demo, keys)
        x = F.relu(state) if self.module2 else state
        c = self.final_context(x).unflatten(-1, (self.heads, self.hidden))  # (N, K, H, D)
        q = self.fixed_queries.expand(blocks.shape[0], -1, -1, -1)  # (N, 2, H, D)
        read = self.final(q, c, blocks, block_mask, "fixed")  # (N, 2, H * 3)
        return torch.cat([gripper, read.flatten(1)], dim=-1)  # (N, 2 + 6H)


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

    own (B, K, T, D): each block's embedding over time; by_frame (B, T, K, D): the same by
    frame (the demonstration network's output); keys: per context step (see
    ``ContextNetwork.keys``); valid (B, T, K): real (frame, block) slots; bias (B, T*K): 0 on
    real slots, -inf on padding; frame_bias (B, T): 0 on real frames, -inf on padding;
    ``pairs`` observations read each demo; frames (B, T) or None: the index in the demo as given
    to ``subsample`` of each frame (for attention maps).
    """

    own: Tensor
    by_frame: Tensor
    keys: list[Tensor]
    valid: Tensor
    bias: Tensor
    frame_bias: Tensor
    #: Observations conditioned on each demo row (consecutive rows of the observation batch).
    pairs: int = 1
    frames: Tensor | None = None

    @property
    def copies(self) -> int:
        """Observation rows this encoding conditions (demos x pairs)."""
        return self.own.shape[0] * self.pairs

    def repeat(self, copies: int) -> DemoEncoding:
        """The same encoding for ``copies`` consecutive observations per demo (nothing copied)."""
        return dataclasses.replace(self, pairs=self.pairs * copies)


@dataclass
class DemoBatch:
    """A batch of demonstrations, end-padded in time.

    blocks (B, T, K, 3) float, gripper (B, T, 2) float, block_mask (B, K) bool,
    frame_mask (B, T) bool (True on real frames); frames (B, T) long or None: after ``select``,
    each frame's index in the demo it was selected from.
    """

    blocks: Tensor
    gripper: Tensor
    block_mask: Tensor
    frame_mask: Tensor
    frames: Tensor | None = None

    @property
    def lengths(self) -> Tensor:
        return self.frame_mask.sum(1)

    def select(self, indices: Tensor, valid: Tensor) -> DemoBatch:
        """Frames ``indices`` (B, T~) of each demo; ``valid`` (B, T~) marks real ones."""
        return DemoBatch(gather_frames(self.blocks, indices),
                         gather_frames(self.gripper, indices), self.block_mask,
                         valid & gather_frames(self.frame_mask, indices), indices)


class OneShotPolicy(nn.Module):
    """Demonstration-conditioned policy: ``logits = policy(demo, observation)``."""

    def __init__(self, config: PolicyConfig | None = None):
        super().__init__()
        self.config = config or PolicyConfig()
        self.demo_net = DemonstrationNetwork(self.config)
        self.context_net = ContextNetwork(self.config)
        self.manipulation_net = ManipulationNetwork(self.config)

    def subsample(self, demo: DemoBatch, generator: torch.Generator | None = None) -> DemoBatch:
        """Temporal dropout for ``full`` conditioning; other modes use the demo as given."""
        if self.config.conditioning != "full" or self.config.keep_fraction >= 1.0:
            return demo
        indices, valid = temporal_dropout(demo.lengths, self.config.keep_fraction, generator,
                                          self.config.min_kept_frames)
        return demo.select(indices.to(demo.blocks.device), valid.to(demo.blocks.device))

    def encode(self, demo: DemoBatch) -> DemoEncoding:
        """Embed (already subsampled) demo frames: run once per episode at inference."""
        blocks = demo.blocks * self.config.position_scale  # (B, T, K, 3)
        embedding = self.demo_net(blocks, demo.gripper, demo.block_mask, demo.frame_mask)
        valid = demo.frame_mask.unsqueeze(2) & demo.block_mask.unsqueeze(1)  # (B, T, K)
        bias = torch.zeros(valid.shape, device=valid.device).masked_fill(~valid, float("-inf"))
        frame_bias = torch.zeros(demo.frame_mask.shape, device=valid.device).masked_fill(
            ~demo.frame_mask, float("-inf"))  # (B, T)
        own = embedding.transpose(1, 2).contiguous()  # (B, K, T, D)
        return DemoEncoding(own, embedding, self.context_net.keys(embedding), valid,
                            bias.flatten(1), frame_bias, frames=demo.frames)

    def decide(self, encoding: DemoEncoding, blocks: Tensor, gripper: Tensor,
               block_mask: Tensor) -> Tensor:
        """Logits (B, 3 * num_bins + num_gripper_classes) for observations given an encoding."""
        blocks = blocks * self.config.position_scale  # (B, K, 3)
        context = self.context_net(blocks, gripper, block_mask, encoding)
        return self.manipulation_net(context)

    def forward(self, demo: DemoBatch, blocks: Tensor, gripper: Tensor, block_mask: Tensor,
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
    def ensemble_encoding(self, demo: DemoBatch, copies: int, generator: torch.Generator
                          ) -> DemoEncoding:
        """Encode ``copies`` independently subsampled versions of ONE demo as one batch (paper:
        an ensemble of 10 downsampled demos, action distributions averaged)."""
        batch = DemoBatch(demo.blocks.expand(copies, *demo.blocks.shape[1:]),
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
