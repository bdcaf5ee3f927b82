"""The built book in a real browser: headless Chromium opens every chapter at a desktop and a
phone size. No page logs a script error or a missing file, the mathematics is typeset (no raw
``$$`` or ``\\begin`` left in the text), the results pages show HTML tables, and screenshots of the
scorecard at both sizes are written to ``_build/``.

The book is built first (``jupyter-book build``, as the README says) unless ``_build/html`` is
newer than every source. Without a Chromium binary (Debian's ``chromium`` package, which
``.ci/run`` installs) the module is skipped.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HTML = REPO / "_build" / "html"
SIZES = ((1280, 800), (390, 844))
CHROMIUM = next(
    (path for name in ("chromium", "chromium-browser", "google-chrome")
     if (path := shutil.which(name))), None
)
#: Console lines that report a fault (a script error, a file that did not load).
FAULTS = ("Uncaught", "Error", "Failed to load", "ERR_")
#: Elements whose text is not rendered prose.
SKIPPED = {"script", "style", "pre", "code", "textarea", "mjx-container", "mjx-assistive-mml"}

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium: install Debian's chromium package (.ci/run does)"
)


def _sources() -> list[Path]:
    book = [p for p in (REPO / "book").iterdir() if p.suffix in (".ipynb", ".md")]
    return [REPO / "_config.yml", REPO / "_toc.yml", *book]


def _built() -> Path:
    """``_build/html``, built now unless it is newer than every source of the book."""
    index = HTML / "book" / "intro.html"
    if not index.exists() or index.stat().st_mtime < max(p.stat().st_mtime for p in _sources()):
        subprocess.run(["jupyter-book", "build", str(REPO), "-W", "-n", "--keep-going"],
                       cwd=REPO, check=True, capture_output=True)
    return HTML


def _chromium(page: Path, size: tuple[int, int], *extra: str) -> subprocess.CompletedProcess:
    """Run headless Chromium on ``page`` at ``size`` with its scripts given time to finish."""
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={profile}", f"--window-size={size[0]},{size[1]}",
             "--virtual-time-budget=10000", "--enable-logging=stderr", "--v=0", *extra,
             page.as_uri()],
            capture_output=True, text=True, timeout=180,
        )


@dataclass(frozen=True)
class Visit:
    """What one page showed at one size: its DOM after the scripts ran, and its console faults."""

    page: str
    size: tuple[int, int]
    dom: str
    faults: tuple[str, ...]


def _visit(page: Path, size: tuple[int, int]) -> Visit:
    result = _chromium(page, size, "--dump-dom")
    faults = tuple(line for line in result.stderr.splitlines()
                   if ":CONSOLE" in line and any(f in line for f in FAULTS))
    return Visit(page.name, size, result.stdout, faults)


class _Prose(HTMLParser):
    """The text of a page outside code, scripts and typeset mathematics; its tables' headers."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.headers: list[str] = []
        self._skip = 0
        self._in_header = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in SKIPPED:
            self._skip += 1
        if tag == "th":
            self._in_header = True

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED and self._skip:
            self._skip -= 1
        if tag == "th":
            self._in_header = False

    def handle_data(self, data: str) -> None:
        if self._in_header:
            self.headers.append(data.strip())
        if not self._skip:
            self.text.append(data)


def _prose(dom: str) -> _Prose:
    parser = _Prose()
    parser.feed(dom)
    return parser


@pytest.fixture(scope="module")
def visits() -> list[Visit]:
    """Every chapter of the built book at both sizes (two browsers at a time)."""
    built = _built() / "book"
    pages = sorted(built / f"{p.stem}.html" for p in _sources() if p.parent.name == "book")
    missing = [p.name for p in pages if not p.exists()]
    assert not missing, f"chapters without a built page: {missing}"
    jobs = [(page, size) for page in pages for size in SIZES]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda job: _visit(*job), jobs))


def test_every_page_loads_without_a_fault(visits):
    empty = [f"{v.page} {v.size}" for v in visits if "</html>" not in v.dom]
    assert not empty, f"pages that did not load: {empty}"
    faults = [f"{v.page} {v.size}: {line}" for v in visits for line in v.faults]
    assert not faults, "console faults:\n" + "\n".join(faults)


def test_the_mathematics_is_typeset_offline(visits):
    raw = [f"{v.page} {v.size}" for v in visits
           if any(t in "".join(_prose(v.dom).text) for t in ("$$", "\\begin"))]
    assert not raw, f"raw TeX left in the text of: {raw}"
    untypeset = [f"{v.page} {v.size}" for v in visits
                 if 'class="math' in v.dom and "<mjx-container" not in v.dom]
    assert not untypeset, f"mathematics not typeset (MathJax did not run) in: {untypeset}"


@pytest.mark.parametrize("page", ["scorecard.html", "results.html"])
def test_results_are_html_tables(visits, page):
    for visit in (v for v in visits if v.page == page):
        headers = _prose(visit.dom).headers
        assert "paper" in headers and "ours" in headers, (page, visit.size, headers[:20])


def test_scorecard_screenshots(visits):
    for width, height in SIZES:
        target = REPO / "_build" / f"scorecard-{width}x{height}.png"
        target.unlink(missing_ok=True)
        _chromium(HTML / "book" / "scorecard.html", (width, height), f"--screenshot={target}")
        assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
