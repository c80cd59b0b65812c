"""Every link in the repository's Markdown (README.md, docs/**/*.md, generated tables included) points at a
file or folder that exists in the repository, and every #anchor at a heading of its target.

Links are `[text](target)`, `![alt](target)` and reference definitions `[label]: target`, outside code
blocks and code spans. Web addresses (http:, https:, mailto:) are not followed. A relative target must
stay inside the repository: the docs never point readers at files a clone does not have.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
CODE_SPAN = re.compile(r"(`+).+?\1", re.S)
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
DEFINITION = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)


def markdown_files(root: Path = REPO) -> list[Path]:
    files = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    return [f for f in files if f.is_file()]


def _prose(text: str) -> str:
    """The text without fenced code blocks and code spans (where brackets are not links)."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def links(text: str) -> list[str]:
    prose = _prose(text)
    return INLINE.findall(prose) + DEFINITION.findall(prose)


def anchors(text: str) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        heading = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def dead_links(root: Path = REPO) -> list[str]:
    """'file: target (why)' for every link that does not resolve inside ``root``."""
    dead = []
    for md in markdown_files(root):
        text = md.read_text(encoding="utf-8")
        for target in links(text):
            if EXTERNAL.match(target):
                continue
            path_part, _, anchor = target.partition("#")
            dest = (md.parent / path_part).resolve() if path_part else md
            where = f"{md.relative_to(root)}: {target}"
            if root.resolve() not in (dest, *dest.parents):
                dead.append(f"{where} (outside the repository)")
            elif not dest.exists():
                dead.append(f"{where} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text(encoding="utf-8")):
                dead.append(f"{where} (no heading #{anchor})")
    return dead


def test_no_markdown_link_to_a_missing_path():
    assert len(markdown_files()) >= 5
    assert dead_links() == []


def test_the_check_sees_dead_links_and_ignores_code(tmp_path):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "a.md").write_text("# Top\n\n## The rule: k = 2 (`fwd`)\n\n## Top\n", encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "See [a](docs/a.md#the-rule-k--2-fwd), [top](docs/a.md#top-1), [dir](docs/sub), ![x](docs/a.md),\n"
        "[web](https://example.com/x.md) and <https://example.com>.\n"
        "Dead: [d1](docs/b.md), [d2](../elsewhere/notes.md), [d3](docs/a.md#nope).\n"
        "[ref]: docs/missing.md\n\n"
        "```\n[not a link](nowhere.md)\n```\nand `[nor this](nowhere.md)`.\n",
        encoding="utf-8",
    )
    assert dead_links(tmp_path) == [
        "README.md: docs/b.md (no such file)",
        "README.md: ../elsewhere/notes.md (outside the repository)",
        "README.md: docs/a.md#nope (no heading #nope)",
        "README.md: docs/missing.md (no such file)",
    ]
