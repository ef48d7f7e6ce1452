"""Architecture checks: the import graph has no cycles, layering holds, and theory/ is catalogue-free.

Everything except the CLI import-weight test is pure static analysis (``ast`` over the source
files), so these tests are fast, import nothing from the project, and keep working while modules
move around.  *Every* import statement counts, wherever it is in a file: module level, inside
functions/methods, inside ``if``/``try`` blocks (including ``if TYPE_CHECKING:``).
"""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("theory", "numerics", "proofs_checks")


# ---------------------------------------------------------------------------------------------
# helpers: module discovery, import extraction, graph, cycles
# ---------------------------------------------------------------------------------------------
def _is_cache(path: Path) -> bool:
    """True for anything inside a ``__pycache__`` directory."""
    return "__pycache__" in path.parts


def _discover_modules() -> dict[str, Path]:
    """Map dotted module name -> source file for every .py file under the three packages.

    A package's ``__init__.py`` is the package module itself (``theory/__init__.py`` -> ``ncverify.theory``:
    the three repository folders install as subpackages of ``ncverify``, see pyproject.toml).
    """
    modules: dict[str, Path] = {}
    for pkg in PACKAGES + ("ncverify",):
        root = REPO_ROOT / pkg
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.py")):
            if _is_cache(path):
                continue
            parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if parts[0] != "ncverify":  # the repository folders install as ncverify.theory, ...
                parts.insert(0, "ncverify")
            modules[".".join(parts)] = path
    return modules


def _package_of(module: str, path: Path) -> str:
    """The package a module's relative imports are resolved against."""
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _resolve_relative(module: str, path: Path, level: int, name: str | None) -> str | None:
    """Absolute dotted name for ``from <level dots><name> import ...`` inside ``module``.

    Returns None when the relative import climbs above the top-level package.
    """
    package = _package_of(module, path)
    base = package.split(".") if package else []
    if level > len(base):
        return None
    base = base[: len(base) - (level - 1)]
    if name:
        base = base + name.split(".")
    return ".".join(base) if base else None


def _imported_names(module: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """Every import target of one file as (absolute dotted name, line number).

    Walks the whole AST, so function-local and conditional imports are included.
    ``import A.B.C`` -> ``A.B.C``.  ``from A import B`` -> ``A.B`` when that is one of ``known``
    (a module of the three packages), else ``A``.  Relative imports are resolved first.
    No implicit edges to parent packages are added.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: list[tuple[str, int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((alias.name, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                source = _resolve_relative(module, path, node.level, node.module)
                if source is None:
                    continue
            else:
                source = node.module or ""
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                out.append((candidate if alias.name != "*" and candidate in known else source, node.lineno))
    return out


def _import_graph() -> dict[str, set[str]]:
    """Directed import graph restricted to modules of the three packages."""
    modules = _discover_modules()
    known = set(modules)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        for target, _line in _imported_names(mod, path, known):
            if target in known:
                graph[mod].add(target)
    return graph


def _strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative), deterministic order; each component sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    comps.append(sorted(comp))
    return sorted(comps)


def _cycle_in(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete cycle through the component's first node, as a closed path [a, b, ..., a].

    Breadth-first search restricted to the component gives a shortest such cycle.
    """
    members = set(component)
    start = component[0]
    parent: dict[str, str] = {}
    frontier = [start]
    seen = {start}
    while frontier:
        nxt = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parent[path[-1]])
                    return path[::-1] + [start]
                if child in members and child not in seen:
                    seen.add(child)
                    parent[child] = node
                    nxt.append(child)
        frontier = nxt
    raise AssertionError(f"no cycle found in component {component}")  # pragma: no cover


def _find_cycles(graph: dict[str, set[str]]) -> list[str]:
    """Every cycle (SCC of size > 1, or a self-loop) as a readable ``a -> b -> a`` string."""
    cycles = []
    for comp in _strongly_connected_components(graph):
        if len(comp) > 1 or comp[0] in graph[comp[0]]:
            path = _cycle_in(graph, comp)
            extra = f"   [component: {', '.join(comp)}]" if len(comp) > len(path) - 1 else ""
            cycles.append(" -> ".join(path) + extra)
    return cycles


def _forbidden_imports(package: str, forbidden: set[str]) -> list[str]:
    """``file:line: imports X`` for every import (anywhere in a file under ``package``) whose
    top-level name is in ``forbidden``."""
    modules = _discover_modules()
    known = set(modules)
    hits = []
    package = "ncverify." + package
    for mod, path in modules.items():
        if mod != package and not mod.startswith(package + "."):
            continue
        for target, line in _imported_names(mod, path, known):
            if target.removeprefix("ncverify.").split(".")[0] in forbidden or target == "ncverify":
                hits.append(f"{path.relative_to(REPO_ROOT)}:{line}: imports {target}")
    return sorted(set(hits))


# ---------------------------------------------------------------------------------------------
# self-checks of the helpers (so a failing architecture test is a finding, not a helper bug)
# ---------------------------------------------------------------------------------------------
def test_cycle_helper_finds_known_shapes():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}, "e": {"a"}, "f": set()}
    assert _find_cycles(g) == ["a -> b -> c -> a", "d -> d"]
    assert _find_cycles({"x": {"y"}, "y": set()}) == []


def test_relative_import_resolution():
    init = Path("pkg/sub/__init__.py")
    mod = Path("pkg/sub/mod.py")
    assert _resolve_relative("pkg.sub", init, 1, None) == "pkg.sub"
    assert _resolve_relative("pkg.sub", init, 1, "x") == "pkg.sub.x"
    assert _resolve_relative("pkg.sub", init, 2, None) == "pkg"
    assert _resolve_relative("pkg.sub.mod", mod, 1, None) == "pkg.sub"
    assert _resolve_relative("pkg.sub.mod", mod, 1, "y") == "pkg.sub.y"
    assert _resolve_relative("pkg.sub.mod", mod, 2, "z") == "pkg.z"
    assert _resolve_relative("pkg.sub.mod", mod, 3, None) is None


# ---------------------------------------------------------------------------------------------
# 1. no import cycles
# ---------------------------------------------------------------------------------------------
def test_no_import_cycles():
    graph = _import_graph()
    assert graph, "no modules found under theory/, numerics/, proofs_checks/"
    cycles = _find_cycles(graph)
    assert not cycles, f"{len(cycles)} import cycle(s) (all imports, incl. function-local):\n  " + "\n  ".join(cycles)


# ---------------------------------------------------------------------------------------------
# 2. theory/ knows nothing about the theorem catalogue
# ---------------------------------------------------------------------------------------------
THEOREM_ID = re.compile(
    r"\b(dang2023|tirer2022|zhu2021|zhou2022|hong2023|liu2024|thrampoulidis2022|fang2021"
    r"|sukenik2023|andriopoulos2024)\.[a-z0-9-]+"
)


def test_no_theorem_ids_under_theory():
    root = REPO_ROOT / "theory"
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and not _is_cache(p)]
    assert files, "no files under theory/"
    hits = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            for m in THEOREM_ID.finditer(line):
                hits.append(f"{path.relative_to(REPO_ROOT)}:{lineno}: {m.group(0)}")
    assert not hits, f"{len(hits)} theorem id(s) under theory/:\n  " + "\n  ".join(hits)


# ---------------------------------------------------------------------------------------------
# 3. the cheap CLI paths load neither torch nor sympy
# ---------------------------------------------------------------------------------------------
_PROBE = """
import json, sys
from ncverify.proofs_checks.cli import main
try:
    rc = main({argv!r})
except SystemExit as exc:
    rc = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {{'torch', 'sympy'}})
print('@@PROBE@@' + json.dumps({{'rc': rc, 'heavy': heavy}}))
"""


@pytest.mark.parametrize("argv", [["list", "--json"], ["--help"]], ids=["list--json", "--help"])
def test_list_imports_neither_torch_nor_sympy(argv):
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE.format(argv=argv)],
        cwd=REPO_ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=300,
    )
    lines = [l for l in proc.stdout.splitlines() if l.startswith("@@PROBE@@")]
    assert proc.returncode == 0 and lines, f"probe crashed (rc={proc.returncode}):\n{proc.stderr[-3000:]}"
    result = json.loads(lines[-1][len("@@PROBE@@"):])
    assert result["rc"] == 0, f"`ncverify {' '.join(argv)}` exited {result['rc']}:\n{proc.stderr[-3000:]}"
    assert result["heavy"] == [], f"`ncverify {' '.join(argv)}` loaded {result['heavy']}"


# ---------------------------------------------------------------------------------------------
# 4. static layering
# ---------------------------------------------------------------------------------------------
def test_layering_theory_never_imports_torch():
    hits = _forbidden_imports("theory", {"torch", "numerics", "proofs_checks"})
    assert not hits, "theory/ must not import torch, numerics or proofs_checks:\n  " + "\n  ".join(hits)


def test_layering_numerics_never_imports_sympy():
    hits = _forbidden_imports("numerics", {"sympy", "theory", "proofs_checks"})
    assert not hits, "numerics/ must not import sympy, theory or proofs_checks:\n  " + "\n  ".join(hits)
