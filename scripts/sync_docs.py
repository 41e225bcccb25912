"""Keep the code shown in docs/ identical to the runnable examples it comes from.

Every code block in docs/*.md and README.md that shows an example is preceded by a
marker naming its source, invisible on the rendered page and on a code host:

    <!-- example: docs/examples/hooks.py:hook -->

(a file, a file's section between ``# --8<-- [start:NAME]`` and ``# --8<-- [end:NAME]``
lines, or several of them separated by commas). The pages stay plain Markdown, readable
anywhere, while the test suite runs the examples and fails when a page shows code that
is not theirs. ``docs/changelog.md`` is a copy of ``CHANGELOG.md``.

    python scripts/sync_docs.py          # rewrite the blocks from their sources
    python scripts/sync_docs.py --check  # list the pages that are out of date (exit 1)
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
CHANGELOG_COPY = DOCS / "changelog.md"
CHANGELOG_NOTE = "<!-- A copy of CHANGELOG.md: edit that, then run scripts/sync_docs.py -->\n"

SECTION_MARK = re.compile(r"--8<-- \[(?P<kind>start|end):(?P<name>[\w-]+)\]")
MARKER = re.compile(r"^(?P<indent>[ \t]*)<!-- example: (?P<sources>[^>]+?) -->[ \t]*$")
OPEN_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+)(?P<info>[^\n`]*)$")


def section(path: Path, name: str | None) -> str:
    """A file, or one of its sections, as the docs show it: dedented, markers removed."""
    lines = path.read_text().splitlines(keepends=True)
    if name is None:
        return "".join(line for line in lines if not SECTION_MARK.search(line))
    inside, kept = False, list[str]()
    for line in lines:
        mark = SECTION_MARK.search(line)
        if mark and mark["name"] == name:
            if mark["kind"] == "end":
                return textwrap.dedent("".join(kept)).strip("\n") + "\n"
            inside = True
        elif inside and not mark:
            kept.append(line)
    message = f"{path.relative_to(ROOT)} has no complete section {name!r}"
    raise ValueError(message)


def render(sources: str) -> str:
    """The code a marker names: its sources' sections, one after the other."""
    parts = []
    for source in (s.strip() for s in sources.split(",")):
        file, _, name = source.partition(":")
        path = ROOT / file
        if not path.is_file():
            message = f"no such example: {file}"
            raise ValueError(message)
        parts.append(section(path, name or None))
    return "".join(parts)


def synced(text: str) -> str:
    """`text` with every marked block's body replaced by the code its marker names."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        out.append(line)
        marker = MARKER.match(line.rstrip("\n"))
        i += 1
        if marker is None:
            continue
        opening = OPEN_FENCE.match(lines[i].rstrip("\n")) if i < len(lines) else None
        if opening is None:
            message = f"the marker {line.strip()!r} is not followed by a code block"
            raise ValueError(message)
        out.append(lines[i])
        indent, fence = opening["indent"], opening["fence"]
        end = i + 1
        while end < len(lines) and lines[end].rstrip("\n") != indent + fence:
            end += 1
        if end == len(lines):
            message = f"the code block after {line.strip()!r} is never closed"
            raise ValueError(message)
        code = render(marker["sources"])
        out.extend(textwrap.indent(code, indent, lambda _: True).splitlines(keepends=True))
        out.append(lines[end])
        i = end + 1
    return "".join(out)


def expected_pages() -> dict[Path, str]:
    """Every page of docs/, and the README, as it should read."""
    pages = {page: synced(page.read_text()) for page in [*sorted(DOCS.rglob("*.md")), README]}
    pages[CHANGELOG_COPY] = CHANGELOG_NOTE + (ROOT / "CHANGELOG.md").read_text()
    return pages


def out_of_date() -> list[Path]:
    """The pages whose shown code (or changelog copy) differs from its source."""
    return [page for page, text in expected_pages().items() if page.read_text() != text]


def main(argv: list[str]) -> int:
    """Rewrite the pages (or, with ``--check``, list those out of date)."""
    if argv == ["--check"]:
        stale = out_of_date()
        for page in stale:
            print(f"{page.relative_to(ROOT)} is out of date: run python scripts/sync_docs.py")
        return 1 if stale else 0
    if argv:
        print(__doc__)
        return 2
    for page, text in expected_pages().items():
        if page.read_text() != text:
            page.write_text(text)
            print(f"updated {page.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
