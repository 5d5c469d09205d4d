"""The project's own documents link only to what the repository holds.

README.md, CONVENTIONS.md, bench/README.md and everything under docs/ are
read from a clone: a relative link must reach a file inside the repository
(and a heading there, when it names one), and nothing may send the reader to
the private contract the project was built from (the word ``SPEC``, or a path
leaving the repository). ``mailings --help`` and the help of every command
are held to the same rule. Links to public web pages (``https://...``) are
references, not parts of the project, and stay allowed.

The README stays one a newcomer reads in five minutes: short, with no
measured figure (those live in bench/README.md, each with its date and
machine), and every screenshot it or docs/ shows is one that ``make
screenshots`` retakes, so none drifts from the page.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from cli import _parser

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = sorted(
    [
        ROOT / "README.md",
        ROOT / "CONVENTIONS.md",
        ROOT / "bench" / "README.md",
        *(ROOT / "docs").rglob("*.md"),
    ],
    key=lambda path: str(path),
)
README_MOST_LINES = 320
# [text](target) and ![alt](target), and href="..."/src="..." in inline HTML.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_LINK = re.compile(r"""(?:href|src)=["']([^"']+)["']""")
_WEB = ("https://", "http://", "mailto:")
_OUTSIDE = re.compile(r"\bSPEC\b|\.\./shared|/work/")


def links_of(text: str) -> list[str]:
    return [*_LINK.findall(text), *_HTML_LINK.findall(text)]


def headings_of(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings (outside code blocks)."""
    anchors: set[str] = set()
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6} (.+)", line)):
            slug = re.sub(r"[^\w\- ]", "", heading[1].strip().lower()).replace(" ", "-")
            anchors.add(slug)
    return anchors


def test_the_documents_exist() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in DOCUMENTS}
    assert {
        "README.md",
        "CONVENTIONS.md",
        "docs/sending.md",
        "docs/admin.md",
        "docs/graphql.md",
        "docs/operations.md",
        "docs/settings.md",
        "bench/README.md",
    } <= names


def test_the_readme_is_short_and_says_where_to_go_next() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= README_MOST_LINES
    assert "## Where to go next" in readme
    # Every document of docs/ (but the screenshots) is one click away.
    for path in (ROOT / "docs").glob("*.md"):
        assert f"(docs/{path.name})" in readme, path.name


def test_the_readme_states_no_measured_figure() -> None:
    # Figures go stale with the code and the machine: bench/README.md keeps
    # them, with their date and machine.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    measured = re.compile(
        r"\d[\d,.]*\s*(?:msg/s|messages/s|requests/s|clients/s|µs|ms\b|MB\b|minutes\b)"
    )
    assert measured.findall(readme) == []


def _retaken_screenshots() -> set[str]:
    """The screenshots the tests that ``make screenshots`` runs take, by name.

    A name is passed to ``screenshot(page, name)``, or to a helper that
    passes it on (``follow_until_finished(..., "mailing-live")``): any
    string literal of those tests that names a file of docs/screenshots/.
    """
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = makefile.split("\nscreenshots:", 1)[1].split("\n\n", 1)[0]
    names: set[str] = set()
    for test in re.findall(r"tests/\w+\.py", recipe):
        source = (ROOT / test).read_text(encoding="utf-8")
        names |= set(re.findall(r"""["']([\w-]+)["']""", source))
    return names & {path.stem for path in (ROOT / "docs" / "screenshots").glob("*.png")}


def test_every_screenshot_shown_is_retaken_by_make_screenshots() -> None:
    retaken = _retaken_screenshots()
    shown = {
        Path(target).stem
        for document in DOCUMENTS
        for target in links_of(document.read_text(encoding="utf-8"))
        if "screenshots/" in target
    }
    assert shown, "no screenshot found: the check reads nothing"
    assert shown - retaken == set()


def _reaches(path: Path, anchor: str) -> bool:
    """The file is in the repository, and so is the heading named, if any."""
    if not path.is_relative_to(ROOT) or not path.exists():
        return False
    if not anchor or path.suffix != ".md":
        return True
    return anchor in headings_of(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_links_stay_inside_the_repository(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    broken = []
    for target in links_of(text):
        if target.startswith(_WEB):
            continue
        file, _, anchor = target.partition("#")
        path = (document.parent / file).resolve() if file else document
        if not _reaches(path, anchor):
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


def test_the_heading_anchors_are_github_s() -> None:
    text = "# Using the API\n## A mailing's timeline\n```sh\n# 1. not a heading\n```\n"
    text += "## The HTTP clients (`python -m bench http_clients`)\n"
    assert headings_of(text) == {
        "using-the-api",
        "a-mailings-timeline",
        "the-http-clients-python--m-bench-http_clients",
    }


def test_the_link_check_finds_what_it_should() -> None:
    text = "[a](../shared/SPEC.md) ![b](docs/screenshots/x.png) [c](https://example.com) [d](#top)"
    assert links_of(text) == [
        "../shared/SPEC.md",
        "docs/screenshots/x.png",
        "https://example.com",
        "#top",
    ]
    assert _OUTSIDE.findall("as SPEC section 5 says") == ["SPEC"]
