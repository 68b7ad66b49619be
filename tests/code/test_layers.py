"""Imports run downward only: model < platform's base < its jobs' parts < jobs < the API.

A lower package that imports a higher one (or two packages that import each
other) ties code together that was meant to be read and changed apart; these
tests fail on the first such import, naming the file.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"model": "vda.model", "platform": "vda.platform", "jobs": "vda.jobs", "vda": "vda"}
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def read_levels() -> dict[str, int]:
    """The layer table of docs/architecture.md ("## Layers"): the one place the levels live."""
    text = ARCHITECTURE.read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    levels = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].isdigit():
            for package in re.findall(r"`([\w.]+)`", cells[1]):
                levels[package] = int(cells[0])
    return levels


LEVELS = read_levels()


def test_the_layer_table_is_read():
    assert LEVELS["model"] == 0 and LEVELS["jobs"] == 4 and LEVELS["vda"] == 5
    assert LEVELS["platform.infer"] == 2 and LEVELS["platform.storage"] == 1


def package_of(module: str) -> str:
    parts = module.split(".")
    if parts[:2] == ["vda", "platform"]:
        return ".".join(parts[1:3])
    return parts[1] if len(parts) > 1 else "vda"


def imports() -> list[tuple[str, Path, str, bool]]:
    """(importing module, its file, imported vda module, at module level) for every import."""
    found = []
    for folder, base in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            module = ".".join((base, *parts)).removesuffix(".__init__")
            package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            tree = ast.parse(path.read_text())
            top_level = {id(node) for node in tree.body}
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level:
                    anchor = package[: len(package) - node.level + 1]
                    targets = [".".join([*anchor, *([node.module] if node.module else [])])]
                elif isinstance(node, ast.ImportFrom):
                    targets = [node.module or ""]
                else:
                    continue
                for target in targets:
                    if target == "vda" or target.startswith("vda."):
                        found.append((module, path, target, id(node) in top_level))
    return found


def test_every_package_has_a_level():
    packages = {package_of(module) for module, *_ in imports()}
    assert packages <= set(LEVELS), sorted(packages - set(LEVELS))


def test_no_import_runs_upward():
    upward = [
        f"{path.relative_to(ROOT)}: {module} imports {target}"
        for module, path, target, _ in imports()
        if LEVELS[package_of(target)] > LEVELS[package_of(module)]
    ]
    assert not upward, "\n".join(upward)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for successor in sorted(graph.get(node, ())):
            if state.get(successor) == 1:
                return [*stack[stack.index(successor) :], successor]
            if successor not in state and (found := visit(successor)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


@pytest.mark.parametrize("between", ["packages", "files"])
def test_no_import_circles(between):
    """Between packages, any import counts; between files, those run at import time (a
    function-level import is how a module may reach a sibling lazily)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for module, _, target, top_level in imports():
        if between == "packages" and package_of(module) != package_of(target):
            graph[package_of(module)].add(package_of(target))
        elif between == "files" and top_level and target != module:
            graph[module].add(target)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])
