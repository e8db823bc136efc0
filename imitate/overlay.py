"""What a viewer needs to read a rollout, drawn with Pillow: each block's letter in its colour,
the goal layout as small towers, the block in the hand, the stage that comes next and the
discretised action of the step.

``imitate.video`` puts a ``header_strip`` (goal and legend, the same on every frame of a video)
above the views and a ``footer_strip`` (role, stages, next stage, held block, action) under each
view; ``label_blocks`` writes each cube's letter over it. ``imitate.attention`` puts the same
header on its figures. Every drawing is an (H, W, 3) uint8 array; the ``*_layout`` functions give
the boxes where things are drawn (pixels, (x0, y0, x1, y1) inclusive), for the tests and for
anyone placing more on a frame.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from envs.constants import CUBE_COLORS
from envs.tasks import Task, parse_task
from imitate import actions

#: Strip colours (RGB).
BACKGROUND = (24, 24, 24)
TEXT = (230, 230, 230)
DIM = (150, 150, 150)
SUCCESS = (120, 230, 120)
FAILURE = (240, 120, 110)
#: Side of a legend or status chip: a square in a block's colour with its letter (px).
CHIP = 14
#: Side of a cube in the goal drawing (px): ``GOAL_CUBE`` up to ``TALL_TOWER`` cubes high,
#: ``GOAL_CUBE_SMALL`` above, so that a 10-cube tower stays under 110 px.
GOAL_CUBE = 12
GOAL_CUBE_SMALL = 10
TALL_TOWER = 6
#: Height of the strip under each view (px; a multiple of 8 keeps frames H.264-friendly).
FOOTER = 64
#: Narrowest strips drawn as laid out: a footer under a view narrower than ``FOOTER_WIDTH``, or
#: a header over views narrower than ``HEADER_WIDTH`` in all, is drawn at that width and scaled
#: down (to a height that stays a multiple of 8), so small videos keep everything, smaller.
FOOTER_WIDTH = 256
HEADER_WIDTH = 512
#: Action gauge: one row per axis (x, y, z) of ``actions.NUM_BINS`` cells.
GAUGE_CELL = (6, 7)
_MARGIN = 6


@functools.lru_cache(maxsize=8)
def font(size: int) -> Any:
    """Pillow's default font at ``size`` px (the bitmap font where FreeType is missing)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def block_rgb(letter: str) -> tuple[int, int, int]:
    """The 0-255 RGB colour of block ``letter`` (``envs.constants.CUBE_COLORS``)."""
    r, g, b, _ = CUBE_COLORS[letter.lower()]
    return round(r * 255), round(g * 255), round(b * 255)


def ink_on(rgb: Sequence[int]) -> tuple[int, int, int]:
    """Black or white, whichever reads better on ``rgb``."""
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def draw_chip(draw: ImageDraw.ImageDraw, x: int, y: int, letter: str, size: int = CHIP) -> None:
    """A ``size`` px square at (x, y) (top left) in the block's colour, its capital letter
    centred on it."""
    colour = block_rgb(letter)
    draw.rectangle((x, y, x + size - 1, y + size - 1), fill=colour, outline=(120, 120, 120))
    if size >= 9:
        draw.text((x + size / 2, y + size / 2), letter.upper(), fill=ink_on(colour),
                  font=font(size - 3), anchor="mm")


# --- the header: goal towers and legend --------------------------------------------------------
@dataclass(frozen=True)
class HeaderLayout:
    """Where ``header_strip`` draws (px). ``goal``: the box of each block in the goal towers;
    ``legend``: the box of each block's legend chip; ``height``: the strip's height."""

    height: int
    cube: int
    goal: dict[str, tuple[int, int, int, int]]
    legend: dict[str, tuple[int, int, int, int]]
    text_x: int


def header_layout(task: str | Task) -> HeaderLayout:
    """The layout of the header of ``task``: goal towers at the left (written order, left to
    right, each drawn bottom-up on a table line), task text and legend to their right."""
    task = parse_task(task)
    tallest = max(len(tower) for tower in task.towers)
    cube = GOAL_CUBE if tallest <= TALL_TOWER else GOAL_CUBE_SMALL
    height = _round8(max(48, 18 + tallest * cube + 8))
    bottom = height - 6  # the table line
    goal: dict[str, tuple[int, int, int, int]] = {}
    x = _MARGIN
    for tower in task.towers:
        for level, letter in enumerate(reversed(tower)):  # bottom block first
            y1 = bottom - 1 - level * cube
            goal[letter] = (x, y1 - cube + 1, x + cube - 1, y1)
        x += cube + 5
    text_x = max(x + 12, 64)
    chips_x = text_x + 44  # after the word "blocks"
    legend = {letter: _box(chips_x + i * (CHIP + 4), 22, CHIP)
              for i, letter in enumerate(task.blocks)}
    return HeaderLayout(height, cube, goal, legend, text_x)


def header_strip(task: str | Task, width: int) -> np.ndarray:
    """(height, width, 3) uint8: the goal layout as small towers in the blocks' colours, the
    layout string and stage count, and a legend chip per block (``header_layout``; scaled
    down below ``HEADER_WIDTH``)."""
    task = parse_task(task)
    layout = header_layout(task)
    strip = Image.new("RGB", (max(width, HEADER_WIDTH), layout.height), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    small = font(11)
    draw.text((_MARGIN, 2), "goal", fill=DIM, font=small)
    goal_right = max(box[2] for box in layout.goal.values())
    line_y = layout.height - 6
    draw.line((_MARGIN - 3, line_y, goal_right + 3, line_y), fill=(190, 160, 120), width=2)
    for letter, (x0, y0, _, _) in layout.goal.items():
        draw_chip(draw, x0, y0, letter, layout.cube)
    stages = task.num_stages
    draw.text((layout.text_x, 3), f"task '{task.layout}' (towers top to bottom): {stages} "
              f"stage{'s' if stages != 1 else ''}, built tower by tower, bottom-up",
              fill=(200, 200, 255), font=font(12))
    draw.text((layout.text_x, 23), "blocks", fill=DIM, font=font(12))
    for letter, (x0, y0, _, _) in layout.legend.items():
        draw_chip(draw, x0, y0, letter)
    return _fit(strip, width)


# --- the footer under one view -------------------------------------------------------------------
@dataclass(frozen=True)
class ViewState:
    """What a footer shows for one frame of one view.

    ``role``: "demo", "policy" or "expert"; ``stage``: stages complete; ``outcome``: shown once
    ``done`` ("success" or a failure class); ``held``: block index in the hand, -1 for none;
    ``action``: (4,) int bins of the step that led here (``actions.to_bins``), None at a reset.
    """

    role: str
    stage: int
    done: bool
    outcome: str | None
    held: int
    action: np.ndarray | None


@dataclass(frozen=True)
class FooterLayout:
    """Where ``footer_strip`` draws (px): the chips of the next stage's source and target, the
    held block's chip, and the action gauge's top-left corner."""

    next_source: tuple[int, int, int, int]
    next_target: tuple[int, int, int, int]
    held: tuple[int, int, int, int]
    gauge: tuple[int, int]


def footer_layout(width: int) -> FooterLayout:
    """The layout of a ``width`` px footer."""
    y = 20
    source_x, target_x = _MARGIN + 34, _MARGIN + 34 + CHIP + 22
    held_x = max(target_x + CHIP + 70, width // 2 + 52)
    return FooterLayout(next_source=_box(source_x, y, CHIP), next_target=_box(target_x, y, CHIP),
                        held=_box(held_x, y, CHIP), gauge=(_MARGIN + 12, 39))


def gauge_cell(layout: FooterLayout, axis: int, bin_index: int) -> tuple[int, int, int, int]:
    """The box of ``bin_index`` (0 .. NUM_BINS - 1, ``actions.BINS`` order) on ``axis``'s row."""
    w, h = GAUGE_CELL
    x = layout.gauge[0] + bin_index * w
    y = layout.gauge[1] + axis * h
    return x, y, x + w - 2, y + h - 2


def footer_strip(task: str | Task, view: ViewState, width: int) -> np.ndarray:
    """(FOOTER, width, 3) uint8: role and stages (and the outcome at the end), the next stage
    as "next: [source] on [target]", the held block, and the action: per axis a row of the 15
    displacement bins with the chosen one lit (right of centre: +, left: -, the middle: 0), its
    value in mm, and the gripper command. Scaled down below ``FOOTER_WIDTH``."""
    task = parse_task(task)
    drawn = max(width, FOOTER_WIDTH)
    layout = footer_layout(drawn)
    strip = Image.new("RGB", (drawn, FOOTER), BACKGROUND)
    draw = ImageDraw.Draw(strip)
    text = font(12)
    title = f"{view.role}  stage {view.stage}/{task.num_stages}"
    colour = TEXT
    if view.done and view.outcome is not None:
        title += f"  {view.outcome}"
        colour = SUCCESS if view.outcome == "success" else FAILURE
    draw.text((_MARGIN, 3), title, fill=colour, font=text)
    _draw_next(draw, task, view.stage, layout, text)
    _draw_held(draw, task, view.held, view.stage, layout, text)
    _draw_action(draw, view.action, layout, text)
    return _fit(strip, width)


def _draw_next(draw: ImageDraw.ImageDraw, task: Task, stage: int, layout: FooterLayout,
               text: Any) -> None:
    x0, y0 = layout.next_source[:2]
    draw.text((_MARGIN, y0 + 1), "next", fill=DIM, font=text)
    if stage >= task.num_stages:
        draw.text((x0, y0 + 1), "all done", fill=SUCCESS, font=text)
        return
    upcoming = task.stages[stage]
    draw_chip(draw, x0, y0, task.blocks[upcoming.source])
    draw.text((x0 + CHIP + 4, y0 + 1), "on", fill=TEXT, font=text)
    draw_chip(draw, layout.next_target[0], y0, task.blocks[upcoming.target])


def _draw_held(draw: ImageDraw.ImageDraw, task: Task, held: int, stage: int,
               layout: FooterLayout, text: Any) -> None:
    """The held block's chip, marked "not next" when it is not the next stage's block."""
    x0, y0 = layout.held[:2]
    draw.text((x0 - 52, y0 + 1), "holding", fill=DIM, font=text)
    if 0 <= held < task.num_blocks:
        draw_chip(draw, x0, y0, task.blocks[held])
        if stage < task.num_stages and held != task.stages[stage].source:
            draw.text((x0 + CHIP + 4, y0 + 1), "not next", fill=FAILURE, font=text)
    else:
        draw.text((x0, y0 + 1), "nothing", fill=TEXT, font=text)


def _draw_action(draw: ImageDraw.ImageDraw, bins: np.ndarray | None, layout: FooterLayout,
                 text: Any) -> None:
    small = font(9)
    for axis, name in enumerate("xyz"):
        _, y0, _, y1 = gauge_cell(layout, axis, 0)
        draw.text((_MARGIN + 2, (y0 + y1) / 2), name, fill=DIM, font=small, anchor="mm")
        for index in range(actions.NUM_BINS):
            cell = gauge_cell(layout, axis, index)
            lit = bins is not None and int(bins[axis]) == index
            draw.rectangle(cell, fill=_gauge_colour(index) if lit else (52, 52, 52),
                           outline=(95, 95, 95) if index == actions.ZERO_BIN else None)
    right = gauge_cell(layout, 0, actions.NUM_BINS - 1)[2] + 10
    if bins is None:
        draw.text((right, layout.gauge[1]), "action: none yet (reset)", fill=DIM, font=text)
        return
    values = actions.BINS[np.asarray(bins[:3], dtype=np.int64)] * 1000.0  # mm per step
    millimetres = " ".join(f"{name}{value:+g}" if value else f"{name}0"
                           for name, value in zip("xyz", values, strict=True))
    draw.text((right, layout.gauge[1] - 2), f"{millimetres} mm/step", fill=TEXT, font=text)
    closing = int(bins[3]) == actions.CLOSE
    draw.text((right, layout.gauge[1] + 10), "gripper: close" if closing else "gripper: open",
              fill=(255, 200, 120) if closing else (150, 210, 255), font=text)


def _gauge_colour(index: int) -> tuple[int, int, int]:
    if index == actions.ZERO_BIN:
        return 220, 220, 220
    return (120, 230, 120) if index > actions.ZERO_BIN else (250, 160, 80)


# --- letters over the cubes ----------------------------------------------------------------------
def label_blocks(image: np.ndarray, pixels: np.ndarray, letters: str) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with each block's capital letter drawn centred on its pixel
    position ``pixels`` (n, 2: x right, y down; ``BlockStackEnv.block_pixels``), in the block's
    ink colour with a contrasting outline; a copy."""
    picture = Image.fromarray(np.ascontiguousarray(image[..., :3]))
    draw = ImageDraw.Draw(picture)
    size = max(9, image.shape[0] // 24)
    for letter, (x, y) in zip(letters, pixels, strict=True):
        if not (np.isfinite(x) and np.isfinite(y)):
            continue
        ink = ink_on(block_rgb(letter))
        outline = (0, 0, 0) if ink == (255, 255, 255) else (255, 255, 255)
        draw.text((float(x), float(y)), letter.upper(), fill=ink, font=font(size), anchor="mm",
                  stroke_width=1, stroke_fill=outline)
    return np.asarray(picture)


def _fit(strip: Image.Image, width: int) -> np.ndarray:
    """``strip`` as an array ``width`` px wide: as drawn, or scaled down with its height rounded
    to a multiple of 8."""
    if strip.width == width:
        return np.asarray(strip)
    height = max(8, _round8(round(strip.height * width / strip.width)))
    return np.asarray(strip.resize((width, height), Image.Resampling.LANCZOS))


def _box(x: int, y: int, size: int) -> tuple[int, int, int, int]:
    return x, y, x + size - 1, y + size - 1


def _round8(value: int) -> int:
    return -(-value // 8) * 8
