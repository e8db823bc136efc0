"""Regenerate the README's sample video: ``videos/sample.mp4`` and its GIF ``videos/sample.gif``.

    python scripts/make_sample_video.py [--checkpoint PATH] [--task "ab cde"] [--seed 0]
        [--episode 0] [--size 256] [--no-labels]

``--seed`` and ``--episode`` pick the episode as ``imitate eval --seed`` numbers them (its start
and conditioning demo), so the video shows a row of an evaluation report.

Without ``--checkpoint`` the scripted expert acts (``imitate render --expert``). Cubes carry
their letters (``--labels``) unless ``--no-labels``. The GIF keeps every second frame with a
palette of 118 colours of the video and the 10 block colours so that it stays under 2 MB.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import imageio.v2 as imageio
from PIL import Image

from envs.tasks import BLOCK_LETTERS
from imitate.overlay import block_rgb
from imitate.render import render_episode

VIDEOS = Path(__file__).resolve().parent.parent / "videos"


def gif_palette(image: Image.Image) -> Image.Image:
    """One palette for every frame: the 118 colours median cut finds in ``image`` plus the ten
    block colours exactly, so that the legend and the cubes keep their colours in the GIF."""
    found = image.quantize(colors=118, method=Image.Quantize.MEDIANCUT).getpalette()[:118 * 3]
    blocks = [value for letter in BLOCK_LETTERS for value in block_rgb(letter)]
    palette = Image.new("P", (1, 1))
    palette.putpalette(found + blocks + [0] * (768 - len(found) - len(blocks)))
    return palette


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--task", default="ab cde")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episode", type=int, default=0, help="episode index within the task")
    parser.add_argument("--size", type=int, default=256, help="side of each view (px)")
    parser.add_argument("--no-labels", action="store_true", help="no letters over the cubes")
    args = parser.parse_args()
    mp4 = VIDEOS / "sample.mp4"
    result = render_episode(args.checkpoint, args.task, mp4, seed=args.seed,
                            episode=args.episode, size=args.size, every=3,
                            labels=not args.no_labels)
    with imageio.get_reader(mp4) as reader:
        images = [Image.fromarray(frame) for index, frame in enumerate(reader) if index % 2 == 0]
    palette = gif_palette(images[len(images) // 2])
    frames = [image.quantize(palette=palette, dither=Image.Dither.NONE) for image in images]
    gif = VIDEOS / "sample.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0,
                   optimize=True)
    print(f"{mp4} ({result.frames} frames, {result.outcome}); {gif} "
          f"({gif.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
