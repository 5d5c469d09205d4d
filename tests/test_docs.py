"""The project's own documents link only to what the repository holds.

README.md, CONVENTIONS.md and everything under docs/ are read from a clone:
a relative link must reach a file inside the repository, and nothing may
send the reader to the private contract the project was built from (the
word ``SPEC``, or a path leaving the repository). ``mailings --help`` and the
help of every command are held to the same rule. Links to public web pages
(``https://...``) are references, not parts of the project, and stay allowed.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from cli import _parser

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted(
    [ROOT / "README.md", ROOT / "CONVENTIONS.md", *(ROOT / "docs").rglob("*.md")],
    key=lambda path: str(path),
)
# [text](target) and ![alt](target), and href="..."/src="..." in inline HTML.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_LINK = re.compile(r"""(?:href|src)=["']([^"']+)["']""")
_WEB = ("https://", "http://", "mailto:")
_OUTSIDE = re.compile(r"\bSPEC\b|\.\./shared|/work/")


def links_of(text: str) -> list[str]:
    return [*_LINK.findall(text), *_HTML_LINK.findall(text)]


def test_the_documents_exist() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in DOCUMENTS}
    assert {"README.md", "CONVENTIONS.md", "docs/sending.md"} <= names


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_links_stay_inside_the_repository(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    broken = []
    for target in links_of(text):
        if target.startswith(_WEB) or target.startswith("#"):
            continue
        path = (document.parent / target.split("#", 1)[0]).resolve()
        if not path.is_relative_to(ROOT) or not path.exists():
            broken.append(target)
    assert broken == [], f"{document.name} links outside the repository: {broken}"
    assert _OUTSIDE.findall(text) == []


def _helps(parser: argparse.ArgumentParser) -> list[str]:
    helps = [parser.format_help()]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                helps += _helps(sub)
    return helps


def test_command_help_stays_inside_the_repository() -> None:
    helps = _helps(_parser())
    assert len(helps) >= 7  # mailings and each of its commands
    for text in helps:
        assert _OUTSIDE.findall(text) == [], text
        for target in re.findall(r"\b[\w./-]+\.md\b", text):
            assert (ROOT / target).exists(), target


def test_the_link_check_finds_what_it_should() -> None:
    text = "[a](../shared/SPEC.md) ![b](docs/screenshots/x.png) [c](https://example.com) [d](#top)"
    assert links_of(text) == [
        "../shared/SPEC.md",
        "docs/screenshots/x.png",
        "https://example.com",
        "#top",
    ]
    assert _OUTSIDE.findall("as SPEC section 5 says") == ["SPEC"]
