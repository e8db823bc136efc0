"""``report.html``: a self-contained page, relative links only, videos grouped by outcome, every
text escaped. Reports are written from ``EpisodeResult`` lists built here (no episode is run);
videos and attention figures are real small files on disk."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from PIL import Image

from imitate.evaluation import EpisodeResult
from imitate.report import write_report
from imitate.video import write_mp4

CHROMIUM = Path("/usr/bin/chromium")
#: A checkpoint path that would inject markup if the page did not escape it.
HOSTILE_PATH = "runs/<script>alert('x')</script>&<b>/policy.pt"
#: matplotlib's first colours (RGB): success and recoverable in the outcome plot.
PLOT_COLOURS = ((31, 119, 180), (255, 127, 14))


def episode(task: str, index: int, *, failure: str | None, stage: int, novelty: str,
            split: str = "train", video: Path | None = None) -> EpisodeResult:
    """One episode's result as ``imitate.evaluation`` records it (``task`` with one stage per
    block above a tower's bottom)."""
    num_stages = sum(len(tower) - 1 for tower in task.split())
    return EpisodeResult(split=split, task=task, num_stages=num_stages, episode=index,
                         env_seed=100 + index, demo_env_seed=200 + index, demo_steps=40,
                         success=failure is None, failure=failure, stage=stage, steps=50,
                         expert_success=True, expert_failure=None, policy_seconds=0.5,
                         env_seconds=0.25, demo_seconds=0.125, expert_seconds=0.125,
                         video=str(video) if video else None, novelty=novelty)


def small_mp4(path: Path, shade: int) -> Path:
    """A real 8-frame 32 x 48 H.264 video."""
    frames = [np.full((32, 48, 3), (shade + 8 * t) % 256, dtype=np.uint8) for t in range(8)]
    return write_mp4(path, frames)


class Page(HTMLParser):
    """The parts of a page the tests read: every tag, the headings, the srcs of the videos and
    images under each heading, the rows of the tables under each section (the tuple of its h2,
    h3 and h4 titles), and the text."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.headings: list[str] = []
        self.under: dict[str, list[str]] = {}
        self.tables: dict[tuple[str, ...], list[list[str]]] = {}
        self.text: list[str] = []
        self._levels: dict[int, str] = {}  # heading level -> title of the section we are in
        self._heading: str | None = None
        self._cell: list[str] | None = None
        self.feed(text)

    @property
    def section(self) -> tuple[str, ...]:
        return tuple(self._levels[level] for level in sorted(self._levels) if level > 1)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag in ("h1", "h2", "h3", "h4"):
            self._heading = ""
        elif tag in ("video", "img"):
            self.under.setdefault(self.headings[-1], []).append(str(dict(attrs).get("src")))
        elif tag == "tr":
            self.tables.setdefault(self.section, []).append([])
        elif tag == "td":
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2", "h3", "h4") and self._heading is not None:
            level = int(tag[1])
            self._levels = {k: v for k, v in self._levels.items() if k < level}
            self._levels[level] = self._heading.strip()
            self.headings.append(self._heading.strip())
            self._heading = None
        elif tag == "td" and self._cell is not None:
            self.tables[self.section][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._heading is not None:
            self._heading += data
        if self._cell is not None:
            self._cell.append(data)

    def heading_above(self, src: str) -> str:
        return next(heading for heading, srcs in self.under.items() if src in srcs)


@pytest.fixture
def report(tmp_path: Path) -> tuple[Path, list[EpisodeResult]]:
    """A report folder of 5 episodes: seen 'ab' (a success, a wrong move, one without video),
    unseen 'ab c' (a manipulation failure), and a seen 'ba' whose video lies outside the folder;
    with one attention figure."""
    folder = tmp_path / "report"
    videos = folder / "videos"
    results = [
        episode("ab", 0, failure=None, stage=1, novelty="seen",
                video=small_mp4(videos / "ab-s0-ep000-success.mp4", 40)),
        episode("ab", 1, failure="wrong_move", stage=0, novelty="seen",
                video=small_mp4(videos / "ab-s0-ep001-wrong_move.mp4", 90)),
        episode("ab", 2, failure="recoverable_failure", stage=0, novelty="seen"),
        episode("ab c", 0, failure="manipulation_failure", stage=0, novelty="unseen",
                split="other", video=small_mp4(videos / "ab_c-s0-ep000-manipulation.mp4", 140)),
        episode("ba", 0, failure=None, stage=1, novelty="seen",
                video=small_mp4(tmp_path / "elsewhere" / "ba.mp4", 190)),
    ]
    (folder / "attention" / "ab").mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 30, 30)).save(folder / "attention" / "ab" / "attention.png")
    write_report(folder, results, config={"tasks": ["ab", "ab c"], "note": "<i>x</i>"},
                 checkpoint={"path": HOSTILE_PATH, "step": 7,
                             "training": {"dataset_tasks": ["ab", "ba"],
                                          "config": {"algo": "bc", "conditioning": "full"}}},
                 timing={"seconds": 2.0, "workers": 1, "episodes_per_s": 2.5})
    return folder, results


def test_every_link_is_relative_and_resolves_inside_the_folder(
        report: tuple[Path, list[EpisodeResult]]) -> None:
    folder, _ = report
    text = (folder / "report.html").read_text(encoding="utf-8")
    page = Page(text)
    links = [attrs[name] for _, attrs in page.tags for name in ("href", "src") if name in attrs]
    assert len(links) == 6  # 2 plots, 3 videos in the folder, 1 attention figure
    for link in links:
        assert link is not None
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc and not link.startswith("/"), link
        assert ".." not in Path(unquote(parts.path)).parts, link
        assert (folder / unquote(parts.path)).is_file(), link
    assert "://" not in text and not any(tag in ("script", "link") for tag, _ in page.tags)
    assert "elsewhere/ba.mp4" in "".join(page.text)  # named, not embedded
    assert page.heading_above("attention/ab/attention.png") == "Attention"


def test_seen_and_unseen_tasks_have_tables_of_their_own(
        report: tuple[Path, list[EpisodeResult]]) -> None:
    folder, _ = report
    page = Page((folder / "report.html").read_text(encoding="utf-8"))
    success = "Success by number of stages (cf. paper Tables 3 and 4)"
    outcomes = "Outcomes by number of stages (cf. paper Tables 7-11)"
    seen = [row for row in page.tables[("Summary", "Seen tasks", success)] if row]
    unseen = [row for row in page.tables[("Summary", "Unseen tasks", success)] if row]
    # split, stages, tasks, episodes, policy success, expert success
    assert seen == [["train", "1", "2", "4", "50.0 [15.0, 85.0] (2/4)",
                     "100.0 [51.0, 100.0] (4/4)"]]
    assert unseen == [["other", "1", "1", "1", "0.0 [0.0, 79.3] (0/1)",
                       "100.0 [20.7, 100.0] (1/1)"]]
    # split, stages, success, recoverable, manipulation, wrong move
    assert [row for row in page.tables[("Summary", "Unseen tasks", outcomes)] if row] == [
        ["other", "1", "0.0 [0.0, 79.3] (0/1)", "0.0 [0.0, 79.3] (0/1)",
         "100.0 [20.7, 100.0] (1/1)", "0.0 [0.0, 79.3] (0/1)"]]
    assert "unseen when its class" in " ".join(page.text).replace("  ", " ")
    tasks = {row[0]: row for row in page.tables[("Tasks",)] if row}
    assert tasks["ab c"][4] == "unseen" and tasks["ab"][5] == "ab, ba"


def test_videos_sit_under_their_outcome(report: tuple[Path, list[EpisodeResult]]) -> None:
    folder, _ = report
    page = Page((folder / "report.html").read_text(encoding="utf-8"))
    assert page.heading_above("videos/ab-s0-ep000-success.mp4") == "successes (2)"
    assert page.heading_above("videos/ab-s0-ep001-wrong_move.mp4") == "wrong move (1)"
    assert page.heading_above("videos/ab_c-s0-ep000-manipulation.mp4") == "manipulation (1)"
    videos = [h for h in page.headings if h.endswith(")") and h.split(" (")[0] in (
        "successes", "recoverable", "manipulation", "wrong move")]
    assert videos == ["successes (2)", "manipulation (1)", "wrong move (1)"]  # FAILURE_CLASSES
    text = "".join(page.text)
    assert "task 'ab c' (unseen, other), episode 0, stage 0/1 reached" in text
    for _, attrs in page.tags:
        if "src" in attrs and str(attrs["src"]).endswith(".mp4"):
            assert {"controls", "muted", "loop"} <= set(attrs) and attrs["preload"] == "metadata"


def test_text_is_escaped_so_no_markup_gets_in(report: tuple[Path, list[EpisodeResult]]) -> None:
    folder, _ = report
    page = Page((folder / "report.html").read_text(encoding="utf-8"))
    assert not {"script", "b", "i"} & {tag for tag, _ in page.tags}
    assert page.headings[0] == f"Evaluation of {HOSTILE_PATH}"
    assert "<i>x</i>" in "".join(page.text)
    assert "2 tasks in 1 class: 2" in "".join(page.text)


def test_a_report_without_videos_or_training_record_leaves_those_out(tmp_path: Path) -> None:
    results = [episode("ab", 0, failure=None, stage=1, novelty="unknown")]
    files = write_report(tmp_path, results, config={}, checkpoint={"path": "p.pt"}, timing={})
    assert files["html"] == tmp_path / "report.html"
    page = Page(files["html"].read_text(encoding="utf-8"))
    assert "Videos" not in page.headings and "Attention" not in page.headings
    assert any(h.startswith("Tasks of unknown novelty") for h in page.headings)
    assert "not recorded (no task is called unseen)" in "".join(page.text)
    assert "Wall time not recorded" in "".join(page.text)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def colour_present(pixels: np.ndarray, colour: tuple[int, int, int], tolerance: int = 6) -> bool:
    """Whether some pixel of ``pixels`` ((N, 3) uint8) is within ``tolerance`` of ``colour``."""
    distance = np.abs(pixels.astype(int) - np.array(colour)).max(axis=1)
    return bool((distance <= tolerance).any())


@pytest.mark.slow
def test_headless_chromium_renders_the_page(report: tuple[Path, list[EpisodeResult]],
                                            tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("chromium is absent: apt-get install chromium")
    folder, _ = report
    shot = tmp_path / "page.png"
    done = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--window-size=1200,2000", (folder / "report.html").as_uri()],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)  # (H * W, 3)
    assert len(np.unique(pixels, axis=0)) > 200, "the screenshot is nearly blank"
    for colour in PLOT_COLOURS:
        assert colour_present(pixels, colour), f"plot colour {colour} not on the page"
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)
