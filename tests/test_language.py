"""The book speaks to its reader: no word about how the work was organised."""

import re
from pathlib import Path

import pytest

BOOK = Path(__file__).resolve().parents[1] / "book"

#: Words about the making of the book rather than its subject (case-insensitive, whole words).
FORBIDDEN = (
    r"issues?",
    r"closing notes?",
    r"tasks?",
    r"tickets?",
    r"this project",
    r"TODO",
    r"FIXME",
    r"XXX",
    r"CI",
    r"campaign",
    r"pull requests?",
)
PATTERN = re.compile(r"\b(" + "|".join(FORBIDDEN) + r")\b", re.IGNORECASE)
#: Names of code that a page may cite although they contain one of those words.
CODE_NAMES = ("wcbook.campaign",)
SOURCES = sorted([*BOOK.glob("*.py"), *BOOK.glob("*.md")])


def test_there_are_chapter_sources():
    assert len(SOURCES) > 10


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_no_project_management_words(source):
    hits = [
        f"{source.name}:{number}: {line.strip()}"
        for number, line in enumerate(source.read_text().splitlines(), 1)
        if PATTERN.search(re.sub("|".join(map(re.escape, CODE_NAMES)), "", line))
    ]
    assert not hits, "\n".join(hits)


MODULES = sorted(p.stem for p in (BOOK.parent / "wcbook").iterdir()
                 if (p.suffix == ".py" or (p / "__init__.py").exists())
                 and p.stem not in ("__init__", "__main__", "cli"))


def test_every_module_is_in_the_api_reference_and_the_intro():
    api, intro = (BOOK / "api.md").read_text(), (BOOK / "intro.md").read_text()
    assert len(MODULES) > 20
    assert not [m for m in MODULES if f".. automodule:: wcbook.{m}\n" not in api]
    assert not [m for m in MODULES if f"`wcbook.{m}`" not in intro]
