"""The package layering the code relies on, checked from the source with `ast`.

`forwarder/` depends on `fanout`, never the reverse; nothing outside `fanout.cli` imports the
CLI (it is an entry point, not a library); and no module imports itself back through another.
Function-level imports count as much as module-level ones: a cycle hidden in a function body is
still a cycle a reader has to untangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("fanout", "forwarder")


def module_name(path: Path) -> str:
    """Dotted name of a source file under ROOT (a package's __init__ is the package)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    """Every module of our packages, by dotted name."""
    found: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            found[module_name(path)] = path
    return found


def resolve(target: str, modules: dict[str, Path]) -> str | None:
    """The longest known module a dotted import name refers to (None: not ours)."""
    name = target
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Our modules `name` imports anywhere in its body (module or function level)."""
    is_pkg = path.name == "__init__.py"
    package = name if is_pkg else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            # `from pkg import mod` imports the submodule (its package is already loading);
            # `from pkg import name` depends on the package itself
            subs = [f"{prefix}.{alias.name}" for alias in node.names]
            targets = [s for s in subs if s in modules] or [prefix]
            if len(targets) < len(subs):
                targets.append(prefix)
        for target in targets:
            found = resolve(target, modules)
            if found is not None and found != name:
                out.add(found)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = all_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path a -> ... -> a, or None (iterative DFS, colours)."""
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(graph, white)
    for start in sorted(graph):
        if colour[start] != white:
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        colour[start] = grey
        while stack:
            node, todo = stack[-1]
            if not todo:
                colour[node] = black
                stack.pop()
                continue
            nxt = todo.pop(0)
            if colour.get(nxt, black) == grey:
                path = [n for n, _ in stack]
                return [*path[path.index(nxt) :], nxt]
            if colour.get(nxt) == white:
                colour[nxt] = grey
                stack.append((nxt, sorted(graph[nxt])))
    return None


def test_graph_is_not_empty() -> None:
    """Guard against a vacuous pass: the graph must see the imports we know exist."""
    graph = import_graph()
    assert "fanout.cli.main" in graph and "forwarder.main" in graph
    assert any(dep.startswith("fanout.") for dep in graph["forwarder.main"])
    assert sum(len(deps) for deps in graph.values()) > 100


def test_fanout_never_imports_forwarder() -> None:
    bad = sorted(
        f"{mod} -> {dep}"
        for mod, deps in import_graph().items()
        if mod.split(".")[0] == "fanout"
        for dep in deps
        if dep.split(".")[0] == "forwarder"
    )
    assert not bad, "fanout must not depend on forwarder:\n" + "\n".join(bad)


def test_cli_is_imported_only_by_cli() -> None:
    bad = sorted(
        f"{mod} -> {dep}"
        for mod, deps in import_graph().items()
        if not (mod == "fanout.cli" or mod.startswith("fanout.cli."))
        for dep in deps
        if dep == "fanout.cli" or dep.startswith("fanout.cli.")
    )
    assert not bad, "only fanout.cli (and the entry points) may import fanout.cli:\n" + "\n".join(
        bad
    )


def test_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_find_cycle_reports_a_cycle() -> None:
    """The checker itself: a known cycle is found and reported end to end."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
