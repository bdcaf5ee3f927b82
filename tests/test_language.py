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
SOURCES = sorted([*BOOK.glob("*.py"), *BOOK.glob("*.md")])


def test_there_are_chapter_sources():
    assert len(SOURCES) > 10


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_no_project_management_words(source):
    hits = [
        f"{source.name}:{number}: {line.strip()}"
        for number, line in enumerate(source.read_text().splitlines(), 1)
        if PATTERN.search(line)
    ]
    assert not hits, "\n".join(hits)
