"""The documentation pages, for the tests that keep them true: the README (the front door), the
topic pages in docs/ and the benchmark's page beside its script."""

from __future__ import annotations

import re

from testkit import ROOT

README = "README.md"


def pages() -> list[str]:
    """Every Markdown page of the documentation, relative to the repository root."""
    return [README, *sorted(f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")), "bench/README.md"]


def page(name: str) -> str:
    """The text of one page, e.g. ``page("docs/verify.md")``."""
    return (ROOT / name).read_text(encoding="utf-8")


def headings(text: str) -> list[tuple[int, int, str]]:
    """(line index, level, title) of each ATX heading outside fenced code blocks."""
    found, fence = [], False
    for i, line in enumerate(text.split("\n")):
        if line.startswith("```"):
            fence = not fence
        elif not fence and (m := re.fullmatch(r"(#{1,6}) (.+?)#*\s*", line)):
            found.append((i, len(m.group(1)), m.group(2).strip()))
    return found


def section(title: str) -> str:
    """The section under the heading ``title`` (any level, on whichever page has it), up to the next
    heading of the same or a higher level."""
    for name in pages():
        text = page(name)
        marks = headings(text)
        for n, (line, level, heading) in enumerate(marks):
            if heading == title:
                end = next((later for later, lv, _ in marks[n + 1:] if lv <= level), None)
                return "\n" + "\n".join(text.split("\n")[line:end]) + "\n"
    raise LookupError(f"no page has a heading {title!r}")
