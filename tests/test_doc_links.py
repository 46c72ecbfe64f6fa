"""Every relative link in the README and the committed result tables leads to a file."""

import re
from pathlib import Path

import pytest

from .conftest import ROOT

DOCUMENTS = [
    ROOT / 'README.md',
    *sorted((ROOT / 'benchmarks' / 'results').rglob('*.md')),
]
#: A Markdown link's target, without its #fragment: [text](target#fragment).
LINK = re.compile(r'\]\(([^)#\s]+)(?:#[^)]*)?\)')


def relative_links(text: str) -> list[str]:
    """The link targets of a Markdown text that are neither URLs nor mail addresses."""
    return [
        target
        for target in LINK.findall(text)
        if not re.match(r'[a-z][a-z0-9+.-]*:', target)
    ]


def test_relative_links_are_found() -> None:
    text = (
        '[a](results/a.md), [b](https://example.org/b), [c](c.md#part), [d](mailto:x)'
    )
    assert relative_links(text) == ['results/a.md', 'c.md']


@pytest.mark.parametrize(
    'document', DOCUMENTS, ids=[str(path.relative_to(ROOT)) for path in DOCUMENTS]
)
def test_relative_links_lead_to_files(document: Path) -> None:
    missing = [
        target
        for target in relative_links(document.read_text())
        if not (document.parent / target).exists()
    ]
    assert not missing, (
        f'{document.relative_to(ROOT)} links to missing files: {missing}'
    )
