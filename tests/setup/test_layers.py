"""The package's layers, read from its source: no import cycle, and every import
points down.

Every module of ``django_future`` is parsed with ``ast``; every ``import`` and
``from ... import`` of a ``django_future`` module counts, at any depth: inside
functions, methods and ``try`` blocks too. Two things do not count:

- imports under ``if TYPE_CHECKING:``, which never run;
- the parent packages that Python runs before a submodule (``django_future.runner``
  before ``django_future.runner.loop``): an edge goes to the module named, so that a
  package's ``__init__`` may re-export its own submodules.

``from django_future import ledger`` names the submodule ``django_future.ledger``;
``from django_future.runner import Runner`` names the package ``django_future.runner``.
No database: this runs anywhere the source is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2] / "django_future"
PACKAGE = "django_future"

# Lower layers first. An import may only point to a lower layer, or within one
# package of a layer (``django_future.runner.loop`` -> ``django_future.runner.report``).
LAYERS: list[set[str]] = [
    # import nothing of ours
    {"config", "database", "indexes", "sql", "callables", "retries", "taskhook", "names"},
    {"unique", "locks"},  # on names: the one check of a lock's or a key's name
    {"allowlist"},  # DJANGO_FUTURE_ALLOWED_CALLABLES: on callables (its error class)
    {"models"},
    {"ledger"},
    {"periodic"},  # periodic schedules: on the ledger; the runner calls its ticker
    {"scheduler", "runner"},  # side by side: neither imports the other
    # dashboard and metrics: read the ledger, to draw it and to count it
    {"audit", "auditrole", "checks", "dashboard", "metrics"},
    {"backends"},  # Django's task backend: on the scheduler; the runner reaches it by taskhook
    {"admin", "management", "apps", "migrations", ""},  # "" is django_future/__init__.py
]


def module_name(path: Path) -> str:
    parts = [PACKAGE, *path.relative_to(ROOT).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(node: ast.AST, here: str, is_package: bool, known: set[str]) -> set[str]:
    """The django_future modules that ``node`` and everything under it import."""
    found: set[str] = set()
    if isinstance(node, ast.If) and _is_type_checking(node):
        return set().union(*(_imported(n, here, is_package, known) for n in node.orelse))
    if isinstance(node, ast.Import):
        found |= {alias.name for alias in node.names}
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:  # relative: from the module's package
            anchor = here.split(".")
            anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
            base = ".".join([*anchor, *([base] if base else [])])
        for alias in node.names:
            # "from package import submodule" imports the submodule; else the module.
            found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    for child in ast.iter_child_nodes(node):
        found |= _imported(child, here, is_package, known)
    return {name for name in found if name == PACKAGE or name.startswith(f"{PACKAGE}.")}


def import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the modules of the package it imports."""
    found = modules()
    known = set(found)
    graph = {}
    for name, path in found.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        imported = _imported(tree, name, path.name == "__init__.py", known)
        graph[name] = {_known_module(m, known) for m in imported} - {name}
    return graph


def _known_module(name: str, known: set[str]) -> str:
    # "import django_future.x.y" where y is a name, not a module: the longest known prefix.
    while name not in known:
        name = name.rpartition(".")[0]
    return name


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as the list of its modules (first repeated at the end)."""
    state: dict[str, int] = {}  # 1: on the current path; 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def top(name: str) -> str:
    """The top-level module or package of ours that ``name`` is in ("" for the root)."""
    return name.removeprefix(PACKAGE).removeprefix(".").partition(".")[0]


def layer(name: str) -> int:
    for rank, members in enumerate(LAYERS):
        if top(name) in members:
            return rank
    raise AssertionError(f"{name} is in no layer: add it to LAYERS in {__file__}")


def test_the_package_has_no_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or ())


def test_every_import_points_down() -> None:
    wrong = [
        f"{importer} -> {imported}"
        for importer, imports in sorted(import_graph().items())
        for imported in sorted(imports)
        if top(importer) != top(imported) and layer(imported) >= layer(importer)
    ]
    assert wrong == [], "imports against the layers (see LAYERS):\n" + "\n".join(wrong)


@pytest.mark.parametrize(
    ("importer", "allowed"),
    [
        ("models", {"models", "indexes", "config"}),
        ("callables", set()),
        ("allowlist", {"callables"}),
        ("taskhook", set()),
        ("retries", set()),
        ("unique", {"names"}),
        ("locks", {"names"}),
        ("names", set()),
        ("config", set()),
        ("database", set()),
        ("sql", set()),
        ("ledger", {"ledger", "models", "config", "database", "sql"}),
        (
            "periodic",
            {"periodic", "ledger", "config", "sql", "callables", "allowlist", "taskhook"},
        ),
        (
            "scheduler",
            {
                "scheduler",
                "ledger",
                "models",
                "config",
                "database",
                "sql",
                "callables",
                "allowlist",
                "retries",
                "taskhook",
                "unique",
                "locks",
            },
        ),
        (
            "runner",
            {
                "runner",
                "periodic",
                "ledger",
                "models",
                "config",
                "database",
                "sql",
                "callables",
                "allowlist",
                "retries",
                "taskhook",
                "locks",
            },
        ),
    ],
)
def test_what_each_layer_may_import(importer: str, allowed: set[str]) -> None:
    """Spelled out for the layers that matter most: models and the bottom import
    (almost) nothing; the ledger nothing above it; the scheduler and the runner neither
    each other nor the admin, the audit, the checks or the commands."""
    graph = import_graph()
    imported = {top(m) for name, ms in graph.items() if top(name) == importer for m in ms}
    assert imported <= allowed, f"{importer} imports {sorted(imported - allowed)}"


def test_the_graph_sees_imports_inside_functions() -> None:
    """The models once imported the ledger inside ScheduledJob.cancel; such an import
    must count, or a hidden cycle would pass."""
    tree = ast.parse("def f():\n    from django_future import ledger\n")
    assert _imported(tree, "django_future.models", False, {"django_future.ledger"}) == {
        "django_future.ledger"
    }
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
