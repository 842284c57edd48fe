"""The package's layout: floors import only floors below them, subpackages import each other in no cycle, and
matplotlib (and the optional frameworks) load only when something is drawn or asked for.

Every ``import`` and ``from ... import`` in ``landscape/`` is read with ``ast``, those inside functions included.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

import landscape

PACKAGE = Path(landscape.__file__).parent

# Bottom to top: the data flow. A floor may import its own floor and those listed before it.
FLOORS = ["foundation", "models", "data", "operators", "linalg", "instruments", "training", "connectivity",
          "pruning", "plots", "analysis", "integrations", "cli"]
TOP_MODULES = {"__init__", "__main__"}   # the top-level modules; everything else lives in a floor


def _modules() -> dict[str, Path]:
    """``{dotted module name: file}`` of every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(module: str, path: Path) -> list[tuple[str, int, bool]]:
    """``(imported module, line, at module level)`` for every import of a ``landscape`` module in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # relative: resolve against the importing package
                package = module.split(".")[: len(module.split(".")) - node.level + (path.name == "__init__.py")]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # ``from landscape.data import distributed``: the names may be submodules
            names = [f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base for alias in node.names]
        else:
            continue
        found += [(name, node.lineno, id(node) in top_level) for name in names]
    return found


def _is_module(name: str) -> bool:
    """Whether the dotted ``name`` is a module or package of ``landscape``."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    return name.split(".")[0] == "landscape" and (path.with_suffix(".py").is_file() or (path / "__init__.py").is_file())


def _floor(module: str) -> str | None:
    """The floor (first-level subpackage) of a ``landscape`` module; None for the top level and other packages."""
    parts = module.split(".")
    return parts[1] if parts[0] == "landscape" and len(parts) > 1 and parts[1] in FLOORS else None


def test_top_level_holds_only_the_floors():
    loose = {p.stem for p in PACKAGE.glob("*.py")} - TOP_MODULES
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert not loose, f"modules loose at the top of landscape/: {sorted(loose)}; move them into a floor"
    assert packages == set(FLOORS), f"subpackages {sorted(packages)} differ from the FLOORS {FLOORS}"
    for name in FLOORS:
        assert ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text())), \
            f"landscape/{name}/__init__.py needs a docstring saying what the floor does"


def test_lower_floors_never_import_higher_ones():
    wrong = []
    for module, path in _modules().items():
        here = _floor(module)
        for imported, line, _ in _imports(module, path):
            there = _floor(imported)
            if here is not None and there is not None and FLOORS.index(there) > FLOORS.index(here):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({here}) imports {imported} ({there})")
    assert not wrong, "imports from a lower floor to a higher one:\n" + "\n".join(wrong)


def test_no_import_cycle_between_subpackages():
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in _modules().items():
        here = _floor(module)
        for imported, _, _ in _imports(module, path):
            there = _floor(imported)
            if here is not None and there is not None and there != here:
                graph[here].add(there)
    cycles = []

    def visit(node: str, trail: list[str]) -> None:
        for nxt in sorted(graph[node]):
            if nxt in trail:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif len(trail) < len(FLOORS):
                visit(nxt, trail + [nxt])

    for start in FLOORS:
        visit(start, [start])
    assert not cycles, "import cycles between subpackages:\n" + "\n".join(sorted(set(cycles)))


def test_no_import_cycle_between_modules():
    """No module imports, even inside a function, one that imports it back, directly or through others."""
    modules = _modules()
    graph = {module: set() for module in modules}
    for module, path in modules.items():
        for imported, _, _ in _imports(module, path):
            while imported not in modules and "." in imported:   # ``from m import name``: the module m
                imported = imported.rsplit(".", 1)[0]
            if imported in modules and imported != module:
                graph[module].add(imported)
    done: set[str] = set()
    cycles = []

    def visit(module: str, trail: list[str]) -> None:
        for nxt in sorted(graph[module]):
            if nxt in trail:
                cycles.append(" -> ".join(trail[trail.index(nxt):] + [nxt]))
            elif nxt not in done:
                visit(nxt, trail + [nxt])
        done.add(module)

    for module in sorted(graph):
        if module not in done:
            visit(module, [module])
    assert not cycles, "import cycles between modules:\n" + "\n".join(cycles)


def test_matplotlib_imported_at_module_level_only_in_plots():
    wrong = []
    for module, path in _modules().items():
        tree = ast.parse(path.read_text())
        for node in tree.body:
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            draws = any(n.split(".")[0] == "matplotlib" for n in names)
            plots = any(n.startswith("landscape.plots") for n in names)
            if (draws and _floor(module) != "plots") or (plots and _floor(module) not in ("plots", None)):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} imports {', '.join(names)}")
    assert not wrong, ("matplotlib (or landscape.plots) imported at module level outside landscape/plots; import it "
                       "inside the function that draws:\n" + "\n".join(wrong))


def test_the_layout_checks_catch_a_violation(tmp_path):
    """The walk sees imports inside functions and resolves ``from landscape import X``."""
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from landscape import analysis\n    import landscape.cli.analyze\n"
                      "from landscape.data import distributed, load_dataset\n")
    found = _imports("landscape.operators.m", source)
    assert [(name, at_top) for name, _, at_top in found] == [
        ("landscape.data.distributed", True), ("landscape.data", True), ("landscape.analysis", False),
        ("landscape.cli.analyze", False)]
    assert [_floor(name) for name, _, _ in found] == ["data", "data", "analysis", "cli"]


@pytest.mark.parametrize("modules", ["landscape", "landscape, landscape.linalg, landscape.operators"])
def test_import_leaves_heavy_packages_unloaded(modules):
    heavy = ("matplotlib", "lightning", "transformers", "tensorboard", "scipy")   # scipy: ~1.5 s, loaded when solving
    code = (f"import sys\nimport {modules}\n"
            f"print(' '.join(m for m in {heavy!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout.strip()
    assert out == "", f"`import {modules}` loaded {out}"


def test_help_leaves_matplotlib_unloaded():
    code = ("import sys\nfrom landscape.cli import build_parser\nbuild_parser().format_help()\n"
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout.strip()
    assert out == "False"
