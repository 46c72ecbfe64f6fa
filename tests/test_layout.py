"""The package's floors: imports run downward only, and no two rooms import each other."""

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGE = 'torchgeo_specdm'
SOURCE = ROOT / PACKAGE

#: Floor of every room (subpackage or top-level module): a room may import its own
#: floor or the floors below, never one above.
FLOORS = {
    'types': 0,
    'metrics': 0,
    'models': 1,
    'datasets': 2,
    'datamodules': 3,
    'export': 3,
    'generation': 3,
    'tasks': 4,
    'evaluation': 5,
    'sample': 6,
    'demo': 6,
    'cli': 6,
}

#: Rooms that import nothing from the package, so that every floor may use them.
LEAVES = ('types', 'metrics')


def module_name(path: Path) -> str:
    """Dotted name of a source file of the package."""
    parts = list(path.relative_to(ROOT).with_suffix('').parts)
    if parts[-1] == '__init__':
        parts.pop()
    return '.'.join(parts)


def is_package(name: str) -> bool:
    return (ROOT / Path(*name.split('.')) / '__init__.py').is_file()


def is_module(name: str) -> bool:
    path = ROOT / Path(*name.split('.'))
    return path.with_suffix('.py').is_file() or (path / '__init__.py').is_file()


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """Line and dotted name of every package module a file imports, lazily or not."""
    return resolve_imports(
        path.read_text(), module_name(path), path.name == '__init__.py'
    )


def resolve_imports(text: str, name: str, init: bool) -> Iterator[tuple[int, str]]:
    """Line and dotted name of every package module a module's source imports.

    Args:
        text: the source.
        name: dotted name of the module.
        init: whether the module is a package's ``__init__``.
    """
    package = name if init else name.rpartition('.')[0]
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split('.')[0] == PACKAGE:
                    yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[: len(package.split('.')) - node.level + 1]
                target = '.'.join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ''
            if target.split('.')[0] != PACKAGE:
                continue
            # ``from pkg import sub`` imports the submodule ``pkg.sub``.
            submodules = [f'{target}.{a.name}' for a in node.names]
            found = [sub for sub in submodules if is_module(sub)]
            if found:
                yield from ((node.lineno, sub) for sub in found)
            if len(found) < len(submodules):
                yield node.lineno, target


def room(name: str) -> str:
    """The room of a dotted name: its first part below the package, '' for the root."""
    parts = name.split('.')
    return parts[1] if len(parts) > 1 else ''


def sources() -> list[Path]:
    return sorted(SOURCE.rglob('*.py'))


def room_imports() -> dict[tuple[str, str], list[str]]:
    """Imports between rooms: (importer, imported) -> 'file:line' of each."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sources():
        source = room(module_name(path))
        for line, target in imported_modules(path):
            if room(target) not in {source, ''}:
                where = f'{path.relative_to(ROOT)}:{line}'
                edges.setdefault((source, room(target)), []).append(where)
    return edges


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of a graph with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_room_has_a_floor() -> None:
    rooms = {room(module_name(path)) for path in sources()} - {''}
    assert sorted(rooms - set(FLOORS)) == [], 'put these rooms on a floor in FLOORS'
    assert sorted(set(FLOORS) - rooms) == [], 'FLOORS names rooms that are gone'


def test_root_and_leaves_import_nothing_from_the_package() -> None:
    for path in sources():
        name = module_name(path)
        if name == PACKAGE or room(name) in LEAVES:
            imports = [target for _, target in imported_modules(path)]
            assert imports == [], f'{name} must stay a leaf, imports {imports}'


def test_no_upward_import() -> None:
    upward = [
        f'{source} (floor {FLOORS.get(source)}) imports {target} (floor '
        f'{FLOORS.get(target)}) at {", ".join(where)}'
        for (source, target), where in sorted(room_imports().items())
        if FLOORS.get(target, len(FLOORS)) > FLOORS.get(source, -1)
    ]
    assert upward == []


def test_no_cycle_between_rooms() -> None:
    graph: dict[str, set[str]] = {}
    for source, target in room_imports():
        graph.setdefault(source, set()).add(target)
    assert cycles(graph) == []


def test_no_cycle_between_modules() -> None:
    graph: dict[str, set[str]] = {}
    for path in sources():
        name = module_name(path)
        for _, target in imported_modules(path):
            graph.setdefault(name, set()).add(target)
    assert cycles(graph) == []


def test_cycle_finder_finds_cycles() -> None:
    graph = {'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}
    assert cycles(graph) == [['a', 'b', 'c']]
    assert cycles({'a': {'b'}, 'b': set()}) == []


@pytest.mark.parametrize(
    ('path', 'source', 'expected'),
    [
        (
            'tasks/diffusion.py',
            'from ..generation.loop import draw_pairs',
            'torchgeo_specdm.generation.loop',
        ),
        ('datasets/synthetic.py', 'from .. import export', 'torchgeo_specdm.export'),
        ('sample.py', 'import torchgeo_specdm.tasks', 'torchgeo_specdm.tasks'),
        ('export/writer.py', 'from ..datasets import X', 'torchgeo_specdm.datasets'),
    ],
)
def test_imports_are_resolved(path: str, source: str, expected: str) -> None:
    text = f'def f() -> None:\n    {source}\n'
    name = module_name(ROOT / PACKAGE / path)
    assert [target for _, target in resolve_imports(text, name, False)] == [expected]


def test_readme_shows_every_room() -> None:
    readme = (ROOT / 'README.md').read_text()
    match = re.search(r'## Package layout\n(.*?)\n## ', readme, re.DOTALL)
    assert match is not None, 'README.md needs a "## Package layout" section'
    for name in FLOORS:
        assert re.search(rf'\b{name}(/|\.py)', match[1]), f'README layout lacks {name}'
