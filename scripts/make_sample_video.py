"""Regenerate the README's sample video: ``videos/sample.mp4`` and its GIF ``videos/sample.gif``.

    python scripts/make_sample_video.py [--checkpoint PATH] [--task "ab cde"] [--seed 0]

Without ``--checkpoint`` the scripted expert acts (``imitate render --expert``). The GIF keeps
every second frame with a 64-colour palette so that it stays well under 2 MB.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import imageio.v2 as imageio
from PIL import Image

from imitate.render import render_episode

VIDEOS = Path(__file__).resolve().parent.parent / "videos"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--task", default="ab cde")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    mp4 = VIDEOS / "sample.mp4"
    result = render_episode(args.checkpoint, args.task, mp4, seed=args.seed, size=192, every=3)
    with imageio.get_reader(mp4) as reader:
        frames = [Image.fromarray(frame).quantize(colors=64, method=Image.Quantize.MEDIANCUT)
                  for index, frame in enumerate(reader) if index % 2 == 0]
    gif = VIDEOS / "sample.gif"
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0,
                   optimize=True)
    print(f"{mp4} ({result.frames} frames, {result.outcome}); {gif} "
          f"({gif.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
