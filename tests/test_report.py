"""The report of a real (small) run: plots as PNG, one self-contained HTML file that renders in Chromium."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from eef.report import plot_solved_by_difficulty
from tests.test_cli import eef

PLOTS = ("test", "iterations", "solved", "restarts", "solutions", "composition")
HEADINGS = (
    "Comparison (test split)",
    "Test win rate and mean reward per method",
    "Win rate per iteration",
    "Training subtasks solved per iteration, by difficulty",
    "Success rate of exploration rollouts by start and difficulty",
    "New training solutions by difficulty and start",
    "Training set composition and cost per method",
    "Example: an expert failure and the solution built from it",
)


def _not_blank(image: Image.Image) -> bool:
    # A blank render is one flat colour: every channel's spread is ~0.
    return max(ImageStat.Stat(image.convert("RGB")).stddev) > 10


def test_run_writes_plots_and_a_self_contained_report(small_run: Path):
    for name in PLOTS:
        with Image.open(small_run / "report" / f"{name}.png") as image:
            assert image.width > 300 and _not_blank(image), name
    page = (small_run / "report.html").read_text()
    for heading in HEADINGS:
        assert heading in page
    assert page.count("data:image/png;base64,") == len(PLOTS)
    assert not re.search(r"""src=["'](?!data:)""", page), "the report must not load anything from elsewhere"


def test_eef_report_rewrites_it_and_prints_the_path(small_run: Path, tmp_path: Path):
    copy = tmp_path / "run"
    shutil.copytree(small_run, copy)
    (copy / "report.html").unlink()
    result = eef("report", str(copy))
    assert result.returncode == 0, result.stderr
    assert f"report: {copy / 'report.html'}" in result.stdout
    assert (copy / "report.html").is_file()


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs Debian's chromium (scripts/setup.sh installs it as root)"
)
def test_report_renders_in_headless_chromium(small_run: Path, tmp_path: Path):
    chromium = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1200,4800",
    ]
    url = (small_run / "report.html").as_uri()
    dom = subprocess.run(
        [*chromium, "--virtual-time-budget=5000", "--dump-dom", url], capture_output=True, text=True, timeout=120
    ).stdout
    body = re.search(r"<body([^>]*)>", dom)
    assert body is not None, dom[:500]
    assert f'data-images="{len(PLOTS)}"' in body.group(1)
    assert f'data-rendered="{len(PLOTS)}"' in body.group(1), "a plot did not decode in the browser"
    for heading in HEADINGS:
        assert heading in dom

    screenshot = tmp_path / "report.png"
    subprocess.run([*chromium, f"--screenshot={screenshot}", url], capture_output=True, timeout=120)
    height = int(re.search(r'data-height="(\d+)"', body.group(1)).group(1))
    assert 1500 < height <= 4800  # the table, six plots and the example fit the screenshot
    with Image.open(screenshot) as image:
        assert image.size == (1200, 4800)
        # Every band of the rendered page has content (headings, table, plots), not only the first screen.
        bands = [image.crop((0, top, 1200, top + 300)) for top in range(0, height - 300, 300)]
        assert all(_not_blank(band) for band in bands), [_not_blank(band) for band in bands]


def test_the_solved_plot_shows_the_tasks_the_expert_failed_where_the_run_counted_them():
    iteration = {
        "iteration": 1,
        "solved_by_difficulty": {"easy": 5, "paging": 3},
        "newly_solved_by_difficulty": {"paging": 2},
    }
    figure = plot_solved_by_difficulty({"iterations": {"eef": [iteration]}})
    assert [axis.get_ylabel() for axis in figure.axes] == [
        "solved training subtasks",
        "of them, the main expert failed",
    ]
    assert [bar.get_height() for bar in figure.axes[1].patches] == [0, 2]  # easy (none), paging
    del iteration["newly_solved_by_difficulty"]  # a run from before they were counted
    assert len(plot_solved_by_difficulty({"iterations": {"eef": [iteration]}}).axes) == 1
