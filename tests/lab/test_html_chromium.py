"""The matrix's HTML report, from real labs, rendered by headless Chromium with no network.

Chromium opens a file:// URL with background networking, component
updates, sync and QUIC switched off, so a page that reached for a CDN or a
web font would render without it. The screenshot is kept in /artifacts/
for a person to look at; the test itself reads the DOM Chromium built.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from natlab.lab.naming import lab_dir

pytestmark = pytest.mark.natlab

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chromium(profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Debian's headless Chromium, offline, in a profile of its own."""
    binary = shutil.which("chromium")
    assert binary, "chromium is missing: run scripts/install.sh"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ]
    return subprocess.run(
        [binary, *flags, *args], capture_output=True, text=True, timeout=120, check=False
    )


class Cells(HTMLParser):
    """The grid's <td> cells as Chromium's DOM has them: attributes and text."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[dict, str]] = []
        self.ids: set[str] = set()
        self._open: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "td":
            self._open = attrs
            self.cells.append((attrs, ""))
        elif tag == "a" and self._open is not None:
            self._open["href"] = attrs.get("href")

    def handle_endtag(self, tag):
        if tag == "td":
            self._open = None

    def handle_data(self, data):
        if self._open is not None:
            attrs, text = self.cells[-1]
            self.cells[-1] = (attrs, text + data + " ")


def test_matrix_html_renders_offline_in_chromium_with_its_cells(natlab, kernel, tmp_path):
    report, data_file = tmp_path / "matrix.html", tmp_path / "matrix.json"
    run = natlab.run(
        "matrix",
        "--types",
        "full-cone,symmetric",
        "--html",
        str(report),
        "--json-file",
        str(data_file),
    )
    assert run.returncode == 0, run.stdout + run.stderr
    data = json.loads(data_file.read_text())
    for pair in data["pairs"]:
        lab = pair["scenario"]["lab"]
        assert not kernel.lab_namespaces(lab) and not lab_dir(lab).exists()

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "matrix-chromium.png"
    screenshot.unlink(missing_ok=True)
    url = report.resolve().as_uri()
    shot = chromium(
        tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1200,900", url
    )
    assert screenshot.exists(), shot.stderr
    png = screenshot.read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000, len(png)

    dom = chromium(tmp_path / "profile", "--dump-dom", url)
    assert dom.returncode == 0 and "<table" in dom.stdout, dom.stderr
    cells = Cells()
    cells.feed(dom.stdout)
    seen = {
        (attrs["data-caller"], attrs["data-callee"]): (
            attrs["class"].split(),
            " ".join(text.split()),
        )
        for attrs, text in cells.cells
    }
    expected = {
        ("full-cone", "full-cone"): "two-way",
        ("full-cone", "symmetric"): "two-way",
        ("symmetric", "full-cone"): "two-way",
        ("symmetric", "symmetric"): "no media",
    }
    assert set(seen) == set(expected) and len(cells.cells) == 4
    for pair, verdict in expected.items():
        classes, text = seen[pair]
        assert "pass" in classes, (pair, classes)
        assert text == f"expected {verdict} observed {verdict}", text
    assert all(attrs["href"][1:] in cells.ids for attrs, _ in cells.cells)
