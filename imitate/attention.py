"""What a policy attends to through an episode: the paper's Figs. 8, 9 and 13, for any checkpoint.

``imitate attention`` runs episode ``episode`` of ``imitate eval --seed SEED`` for one task (the
same conditioning demo and initial configuration, see ``imitate.render``) and keeps, at every
control step, the weights the policy computed for its action (``imitate.model.record_attention``),
averaged over the ensemble copies:

- the two fixed queries' weights over the current blocks (the context network's last attention:
  intended to pick the source and the target block of the current stage);
- the context network's temporal attention over the demonstration, at each LSTM step, mapped from
  each copy's kept frames back to the demo's own frame numbers (a frame no copy kept gets 0);
- the context network's spatial attention over blocks at each LSTM step;
- once per episode, the demonstration network's neighborhood attention (first ensemble copy).

Files written to the output folder: ``attention.png`` (fixed queries, temporal attention of the
last LSTM step with the demo's stage boundaries, and the stage reached, against the control
step), ``temporal_steps.png`` (the temporal attention of every LSTM step), ``neighborhood.png``
(the demonstration network's attention per layer), ``attention.npz`` (every array) and
``summary.json``.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np
from matplotlib.figure import Figure
from PIL import Image, ImageDraw

import envs
from envs.constants import CUBE_COLORS
from envs.expert import DEFAULT_NOISE_STD, ScriptedExpert
from envs.tasks import BLOCK_LETTERS
from imitate.agent import agent_for_demo
from imitate.checkpoint import load_checkpoint
from imitate.data.record import env_kwargs
from imitate.data.seeds import Stream, demo_seeds
from imitate.evaluation import record_conditioning_demo, run_policy
from imitate.files import atomic_write_bytes
from imitate.model import record_attention
from imitate.options import check_episode_options
from imitate.overlay import block_rgb, font, header_layout, header_strip, ink_on

FIGURE_DPI = 100
#: Height of the strip ``imitate render --attention`` adds under each video frame (px).
STRIP_HEIGHT = 64


@dataclass
class AttentionTrace:
    """Attention weights of one episode (numpy; S control steps, L LSTM steps, H heads,
    K blocks of the task, T demo frames, T~ frames kept by the first ensemble copy).

    fixed: per step (2, H, K); temporal: per step (L, H, T); spatial: per step (L, K, H, K);
    stages: stages complete after the reset and after each step (S + 1); neighborhood:
    (layers, T~, K, H, K) of copy 0, whose frames are ``demo_frames[0]``; demo_frames (E, T~).
    """

    layout: str
    num_stages: int
    letters: list[str]
    demo_length: int
    stage_ends: list[int]
    demo_frames: np.ndarray
    neighborhood: np.ndarray
    fixed: list[np.ndarray] = field(default_factory=list)
    temporal: list[np.ndarray] = field(default_factory=list)
    spatial: list[np.ndarray] = field(default_factory=list)
    stages: list[int] = field(default_factory=list)
    outcome: str = ""

    @property
    def steps(self) -> int:
        return len(self.fixed)

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array, stacked over control steps, for ``attention.npz``."""
        return {"fixed": np.stack(self.fixed), "temporal": np.stack(self.temporal),
                "spatial": np.stack(self.spatial), "stages": np.asarray(self.stages),
                "demo_frames": self.demo_frames, "neighborhood": self.neighborhood,
                "stage_ends": np.asarray(self.stage_ends)}


class AttentionAgent:
    """A ``OneShotAgent`` whose every action also appends its attention weights to a trace."""

    def __init__(self, policy: Any, demo: Any, layout: str, num_stages: int, *, ensemble: int,
                 seed: int):
        with record_attention() as maps:
            self.agent = agent_for_demo(policy, demo, ensemble=ensemble, seed=seed)
        k = self.agent.num_blocks
        neighborhood = np.stack([w[0, :, :k, :, :k].cpu().numpy() for w in maps.neighborhood])
        self.trace = AttentionTrace(
            layout=layout, num_stages=num_stages, letters=list(BLOCK_LETTERS[:k]),
            demo_length=len(demo.blocks), stage_ends=[int(e) for e in demo.stage_ends],
            demo_frames=self.agent.demo_frames, neighborhood=neighborhood)

    def act(self, observation: Mapping[str, np.ndarray]) -> np.ndarray:
        with record_attention() as maps:
            action = self.agent.act(observation)
        trace = self.trace
        trace.fixed.append(maps.fixed[0].mean(0).cpu().numpy())  # (2, H, K)
        trace.spatial.append(np.stack([w.mean(0).cpu().numpy() for w in maps.spatial]))
        trace.temporal.append(np.stack([self._over_demo(w.cpu().numpy())
                                        for w in maps.temporal]))
        return action

    def _over_demo(self, weights: np.ndarray) -> np.ndarray:
        """(E, H, T~) weights over each copy's kept frames -> (H, T) over the demo's frames,
        averaged over the copies."""
        copies, heads, _ = weights.shape
        out = np.zeros((heads, self.trace.demo_length))
        for copy in range(copies):
            np.add.at(out, (slice(None), self.agent.demo_frames[copy]), weights[copy])
        return out / copies


@dataclass(frozen=True)
class AttentionResult:
    """What ``attention_episode`` wrote and what happened in the episode."""

    out: Path
    files: list[Path]
    steps: int
    stage: int
    num_stages: int
    outcome: str
    seconds: float


def trace_policy(policy: Any, demo: Any, layout: str, *, seed: int, episode: int,
                 ensemble: int, env: Any, on_step: Any = None
                 ) -> tuple[AttentionTrace, dict[str, Any]]:
    """Run the policy, conditioned on ``demo``, in episode ``episode`` of ``imitate eval --seed
    seed`` for ``layout`` (its initial configuration and ensemble seed) with an
    ``AttentionAgent``; returns (trace, last info). ``on_step(env, info, done)`` also hears every
    step (a ``FrameRecorder``, say)."""
    seeds = demo_seeds(seed, Stream.EVAL_EPISODE, layout, episode)
    agents: list[AttentionAgent] = []
    stages: list[int] = []

    def make_agent() -> AttentionAgent:
        agents.append(AttentionAgent(policy, demo, layout, envs.parse_task(layout).num_stages,
                                     ensemble=ensemble, seed=seeds.noise_seed))
        return agents[-1]

    def hook(env_: Any, info: dict[str, Any], done: bool) -> None:
        stages.append(int(info["stage"]))
        if on_step is not None:
            on_step(env_, info, done)

    info = run_policy(env, make_agent, layout, seeds.env_seed, hook)[0]
    trace = agents[-1].trace
    trace.stages = stages
    trace.outcome = "success" if info["is_success"] else str(info.get("failure"))
    return trace, info


def attention_episode(checkpoint: str | Path, task: str, out: Path, *, seed: int = 0,
                      episode: int = 0, ensemble: int = 10) -> AttentionResult:
    """Trace the episode and write the figures, ``attention.npz`` and ``summary.json`` to
    ``out``. Raises ``ValueError`` (including ``CheckpointError``) on bad input."""
    check_episode_options(seed=seed, episode=episode, ensemble=ensemble)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out must be a folder, and {out} is a file")
    layout = envs.parse_task(task).layout
    policy = load_checkpoint(checkpoint).policy
    start = time.perf_counter()
    env = gymnasium.make(envs.ENV_ID, **env_kwargs())
    try:
        demo = record_conditioning_demo(env, ScriptedExpert(), layout, episode, seed,
                                        DEFAULT_NOISE_STD).demo
        trace, info = trace_policy(policy, demo, layout, seed=seed, episode=episode,
                                   ensemble=ensemble, env=env)
    finally:
        env.close()
    out.mkdir(parents=True, exist_ok=True)
    title = (f"{checkpoint}: task {layout!r}, seed {seed}, episode {episode}, ensemble "
             f"{ensemble}, conditioning {policy.config.conditioning}: {trace.outcome}, stage "
             f"{info['stage']}/{info['num_stages']}")
    files = [_save_png(out / "attention.png", plot_overview(trace, title)),
             _save_png(out / "temporal_steps.png", plot_temporal_steps(trace, title)),
             _save_png(out / "neighborhood.png", plot_neighborhood(trace, title))]
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **trace.arrays())
    atomic_write_bytes(out / "attention.npz", buffer.getvalue())
    files.append(out / "attention.npz")
    summary = {"checkpoint": str(checkpoint), "task": layout, "seed": seed, "episode": episode,
               "ensemble": ensemble, "conditioning": policy.config.conditioning,
               "context_form": policy.config.context_form, "outcome": trace.outcome,
               "stage": int(info["stage"]), "num_stages": int(info["num_stages"]),
               "steps": trace.steps, "demo_frames": trace.demo_length,
               "demo_stage_ends": trace.stage_ends}
    atomic_write_bytes(out / "summary.json", json.dumps(summary, indent=2).encode())
    files.append(out / "summary.json")
    return AttentionResult(out=out, files=files, steps=trace.steps, stage=int(info["stage"]),
                           num_stages=int(info["num_stages"]), outcome=trace.outcome,
                           seconds=time.perf_counter() - start)


# --- figures ---------------------------------------------------------------------------------
def _save_png(path: Path, figure: Any) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _demo_rows(trace: AttentionTrace) -> np.ndarray:
    """The demo frames shown as heatmap rows: every frame when the copies kept more than half
    of them (full conditioning), else only the frames they kept (snapshot, final state)."""
    kept = np.unique(trace.demo_frames)
    return np.arange(trace.demo_length) if 2 * len(kept) > trace.demo_length else kept


def _temporal_panel(axis: Any, colour_axis: Any, trace: AttentionTrace, weights: np.ndarray,
                    label: str) -> None:
    """weights (S, T) over demo frames as a heatmap (rows: ``_demo_rows``), stage ends marked
    with dashed lines and labelled on the right."""
    rows = _demo_rows(trace)
    image = axis.imshow(weights[:, rows].T, aspect="auto", cmap="magma", origin="lower",
                        interpolation="nearest", vmin=0,
                        extent=(-0.5, trace.steps - 0.5, -0.5, len(rows) - 0.5))
    ends = {int(end): number for number, end in enumerate(trace.stage_ends, start=1)}
    if len(rows) < trace.demo_length:  # few rows: name each frame
        names = [f"frame {frame}" + (f"\n(stage {ends[frame]} done)" if frame in ends else "")
                 for frame in rows]
        axis.set_yticks(range(len(rows)), names, fontsize=7)
    else:
        for end, number in ends.items():
            axis.axhline(end, color="white", linestyle="--", linewidth=0.8)
            axis.text(1.005, end, f"stage {number} done", transform=axis.get_yaxis_transform(),
                      fontsize=7, va="center")
    axis.set_ylabel(label)
    if colour_axis is not None:
        axis.figure.colorbar(image, cax=colour_axis)


def _figure(size: tuple[float, float], layout: str) -> tuple[Any, float, float]:
    """A figure of ``size`` inches plus, across its top, the goal and block legend that videos
    show (``imitate.overlay.header_strip``); returns (figure, top, title): the figure fraction
    below the banner and the height of a title line there."""
    banner = header_layout(layout).height
    width, height = size[0], size[1] + banner / FIGURE_DPI
    figure = Figure(figsize=(width, height), dpi=FIGURE_DPI)  # no pyplot: the caller's backend
    pixels = round(height * FIGURE_DPI)
    figure.figimage(header_strip(layout, round(width * FIGURE_DPI)), xo=0, yo=pixels - banner,
                    origin="upper", zorder=5)
    return figure, 1.0 - banner / pixels, 30.0 / pixels


def _title(figure: Any, text: str, top: float, line: float) -> None:
    figure.suptitle(text, fontsize=9, y=top - 0.25 * line)


def _colour_block_ticks(axis: Any, letters: list[str]) -> None:
    """Write the y tick labels (block letters) as chips in the blocks' colours."""
    axis.set_yticks(range(len(letters)), [letter.upper() for letter in letters])
    for label, letter in zip(axis.get_yticklabels(), letters, strict=True):
        colour = np.array(block_rgb(letter)) / 255
        label.set_color(np.array(ink_on(block_rgb(letter))) / 255)
        label.set_bbox({"facecolor": colour, "edgecolor": "0.5", "pad": 1.5})
        label.set_fontweight("bold")


def _panels(rows: int, heights: list[float], size: tuple[float, float], layout: str
            ) -> tuple[Any, Any, float, float]:
    """A figure (``_figure``) of ``rows`` panels sharing the x axis, each with a narrow
    colour-bar column; returns (figure, axes, top, title line)."""
    figure, top, line = _figure(size, layout)
    axes = figure.subplots(rows, 2, squeeze=False,
                           gridspec_kw={"height_ratios": heights, "width_ratios": [60, 1],
                                        "wspace": 0.12})
    for axis in axes[1:, 0]:
        axis.sharex(axes[0, 0])
    for axis in axes[:-1, 0]:
        axis.tick_params(labelbottom=False)
    return figure, axes, top, line


def plot_overview(trace: AttentionTrace, title: str) -> Any:
    """Fixed queries over blocks, temporal attention over the demo, stage reached: all against
    the control step (the paper's Fig. 8 / 9 layout)."""
    arrays = trace.arrays()
    fixed = arrays["fixed"].mean(2)  # (S, 2, K): heads averaged
    k, rows = fixed.shape[-1], len(_demo_rows(trace))
    figure, axes, top, line = _panels(4, [k, k, min(2.5 * k, 0.8 * rows + 0.8), 1.5], (11, 9),
                                      trace.layout)
    for query in range(2):
        image = axes[query, 0].imshow(fixed[:, query].T, aspect="auto", cmap="viridis", vmin=0,
                                      vmax=1, interpolation="nearest",
                                      extent=(-0.5, trace.steps - 0.5, k - 0.5, -0.5))
        _colour_block_ticks(axes[query, 0], trace.letters)
        axes[query, 0].set_ylabel(f"fixed query {query + 1}\nweight on block")
        figure.colorbar(image, cax=axes[query, 1])
    _temporal_panel(axes[2, 0], axes[2, 1], trace, arrays["temporal"][:, -1].mean(1),
                    "demo frame attended\n(last LSTM step)")
    axes[3, 1].set_visible(False)
    axes[3, 0].step(range(len(trace.stages)), trace.stages, where="post", color="tab:green")
    axes[3, 0].set_ylim(-0.2, trace.num_stages + 0.2)
    axes[3, 0].set_yticks(range(trace.num_stages + 1))
    axes[3, 0].set_ylabel("stages\ncomplete")
    axes[3, 0].set_xlabel("control step (20 Hz)")
    axes[3, 0].set_xlim(-0.5, trace.steps + 0.5)
    axes[3, 0].grid(alpha=0.3)
    _title(figure, title, top, line)
    figure.subplots_adjust(left=0.12, right=0.86, top=top - 1.4 * line, bottom=0.06,
                           hspace=0.25)
    return figure


def plot_temporal_steps(trace: AttentionTrace, title: str) -> Any:
    """The temporal attention over the demo at every LSTM step of the context network."""
    temporal = trace.arrays()["temporal"].mean(2)  # (S, L, T): heads averaged
    lstm_steps = temporal.shape[1]
    figure, axes, top, line = _panels(lstm_steps, [1.0] * lstm_steps,
                                      (11, 2.2 * lstm_steps + 1), trace.layout)
    for step in range(lstm_steps):
        _temporal_panel(axes[step, 0], axes[step, 1], trace, temporal[:, step],
                        f"LSTM step {step + 1}\ndemo frame")
    axes[-1, 0].set_xlabel("control step (20 Hz)")
    _title(figure, f"temporal attention per LSTM step; {title}", top, line)
    figure.subplots_adjust(left=0.12, right=0.86, top=top - 1.4 * line, bottom=0.07,
                           hspace=0.2)
    return figure


def plot_neighborhood(trace: AttentionTrace, title: str) -> Any:
    """Per demonstration-network layer: how much attention each block receives at each kept
    demo frame (averaged over the attending blocks and the heads), ensemble copy 1."""
    received = trace.neighborhood.mean(axis=(2, 3))  # (layers, T~, K)
    frames = trace.demo_frames[0]
    layers = received.shape[0]
    figure, top, line = _figure((11, 1.6 * layers + 1.2), trace.layout)
    axes = figure.subplots(layers, 1, sharex=True, squeeze=False)
    for layer, axis in enumerate(axes[:, 0]):
        axis.imshow(received[layer].T, aspect="auto", cmap="viridis", vmin=0, vmax=1,
                    interpolation="nearest")
        _colour_block_ticks(axis, trace.letters)
        axis.set_ylabel(f"layer {layer + 1}")
    ticks = np.linspace(0, len(frames) - 1, min(len(frames), 12)).round().astype(int)
    axes[-1, 0].set_xticks(ticks, [str(frames[i]) for i in ticks])
    axes[-1, 0].set_xlabel("demo frame (kept by the first ensemble copy)")
    _title(figure, f"demonstration network: attention received per block; {title}", top, line)
    figure.tight_layout(rect=(0, 0, 1, top - 1.2 * line))
    return figure


# --- the strip under a video frame ---------------------------------------------------------------
def attention_strip(trace: AttentionTrace, step: int, width: int) -> np.ndarray:
    """A (STRIP_HEIGHT, width, 3) uint8 strip showing the weights behind the action of control
    step ``step``: left, the two fixed queries' weights as cells in each block's colour; right,
    the last LSTM step's temporal attention over the demo's frames (stage ends marked)."""
    index = min(max(step, 0), trace.steps - 1)
    fixed = trace.fixed[index].mean(1)  # (2, K)
    temporal = trace.temporal[index][-1].mean(0)  # (T,)
    strip = Image.new("RGB", (width, STRIP_HEIGHT), (24, 24, 24))
    draw = ImageDraw.Draw(strip)
    small = font(12)
    half = width // 2
    cell = max(min((half - 40) // max(len(trace.letters), 1), 28), 8)
    for query in range(2):
        y = 6 + query * 28
        draw.text((4, y + 5), f"q{query + 1}", fill=(220, 220, 220), font=small)
        for slot, letter in enumerate(trace.letters):
            colour = np.array(CUBE_COLORS[letter][:3]) * 255
            shade = tuple(int(v) for v in 24 + (colour - 24) * fixed[query, slot])
            x = 30 + slot * cell
            draw.rectangle((x, y, x + cell - 3, y + 24), fill=shade, outline=(90, 90, 90))
            draw.text((x + 3, y + 6), letter.upper(), fill=ink_on(shade), font=small)
    left, right = half + 8, width - 8
    draw.text((left, 4), "demo frames attended", fill=(220, 220, 220), font=small)
    span = right - left
    draw.rectangle((left, 22, right, STRIP_HEIGHT - 8), fill=(10, 10, 40))
    peak = float(temporal.max()) or 1.0
    bar = max(3, span // max(trace.demo_length, 1))  # a lone attended frame stays visible
    for frame in np.argsort(temporal):  # strongest drawn last, on top
        if temporal[frame] < 0.02 * peak:
            continue
        level = int(255 * temporal[frame] / peak)
        x = left + int(frame * (span - bar) / max(trace.demo_length - 1, 1))
        draw.rectangle((x, 22, x + bar - 1, STRIP_HEIGHT - 8), fill=(level, level // 2, 40))
    for end in trace.stage_ends:
        x = left + int(end * (span - bar) / max(trace.demo_length - 1, 1)) + bar // 2
        draw.line((x, 18, x, 21), fill=(255, 255, 255))
        draw.line((x, STRIP_HEIGHT - 7, x, STRIP_HEIGHT - 4), fill=(255, 255, 255))
    return np.asarray(strip)
