"""The package's layout rules (issue 14), read from the source with `ast`, no import needed:

- the rooms of agrilake (core, stages, orchestration, services, analyst, devdata, and the top-level
  modules cli and doctor) import each other without a cycle;
- the pipeline itself (agrilake.core, agrilake.stages) never imports the services, the analyst
  tools, the development data or the orchestration;
- settings are read from the environment (`get_settings(`) only in entry points;
- no module finds schemas/ or expectations/ through its own file's path: they come from the settings.

Every import counts, the ones inside functions too.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "jobs" / "agrilake"
DAGS = ROOT / "dags"

PIPELINE_ROOMS = ("core", "stages")
NOT_FROM_THE_PIPELINE = ("services", "analyst", "devdata", "orchestration")
ENTRY_POINT_FUNCTIONS = ("main", "from_env")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def rooms() -> frozenset[str]:
    """The sub-packages and top-level modules of agrilake."""
    return frozenset(p.name if p.is_dir() else p.stem for p in PACKAGE.iterdir()
                     if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__"))


def room(module: str) -> str | None:
    """agrilake.<room>...: the room of a module of the package ("agrilake" for the package itself and
    names it defines, such as __version__; None outside the package)."""
    parts = module.split(".")
    if parts[0] != "agrilake":
        return None
    return parts[1] if len(parts) > 1 and parts[1] in rooms() else "agrilake"


@cache
def sources() -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        out[module_name(path)] = (path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return out


def imports(module: str, tree: ast.Module, is_package: bool) -> list[tuple[str, int]]:
    """(imported module, line) for every import of `tree`, at any depth; relative ones resolved.
    `from a.b import c` counts as importing a.b.c (c may be a module); a literal
    importlib.import_module("x") counts as importing x."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            out += [(f"{base}.{alias.name}" if alias.name != "*" else base, node.lineno) for alias in node.names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr == "import_module" and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.args[0].value, node.lineno))
    return out


def room_edges() -> dict[tuple[str, str], list[str]]:
    """(room, imported room) -> where (module:line), for imports between two different rooms."""
    edges: dict[tuple[str, str], list[str]] = {}
    for module, (path, tree) in sources().items():
        src = room(module)
        for target, line in imports(module, tree, path.name == "__init__.py"):
            dst = room(target)
            if dst is not None and dst != src and dst != "agrilake":
                edges.setdefault((src, dst), []).append(f"{module}:{line}")
    return edges


def find_cycle(edges) -> list[str] | None:
    """One cycle of the directed graph `edges` ({(a, b): ...}) as [a, b, ..., a], or None."""
    graph: dict[str, list[str]] = {}
    for a, b in edges:
        graph.setdefault(a, []).append(b)
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, [])):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_scan_sees_the_package():
    mods = sources()
    assert {"agrilake.core.settings", "agrilake.stages.bronze", "agrilake.cli"} <= set(mods)
    edges = room_edges()
    # known imports, one at module level and one inside a function (cli.main imports a stage at run time)
    assert ("stages", "core") in edges
    assert ("devdata", "stages") in edges or ("devdata", "core") in edges
    assert "agrilake.stages.bronze.transform" in {t for t, _ in imports(
        "agrilake.stages.bronze", mods["agrilake.stages.bronze"][1], True)}


def test_the_checks_catch_what_they_are_for():
    assert find_cycle({("a", "b"): [], ("b", "c"): [], ("c", "a"): [], ("c", "d"): []}) == ["a", "b", "c", "a"]
    assert find_cycle({("a", "b"): [], ("a", "c"): [], ("b", "c"): []}) is None
    tree = ast.parse("def f():\n    from ..core import tables\n    from . import x\n")
    assert imports("agrilake.stages.export", tree, False) == [("agrilake.core.tables", 2),
                                                               ("agrilake.stages.x", 3)]
    # in a package's __init__, `.` is the package itself
    assert imports("agrilake.stages.gold", tree, True) == [("agrilake.stages.core.tables", 2),
                                                            ("agrilake.stages.gold.x", 3)]
    assert room("agrilake.__version__") == "agrilake" and room("agrilake.core.tables") == "core"
    assert room("pyspark.sql") is None


def test_no_cycle_between_rooms():
    edges = room_edges()
    cycle = find_cycle(edges)
    assert cycle is None, "rooms import each other in a cycle: " + " -> ".join(cycle) + "; " + "; ".join(
        f"{a} -> {b} at {', '.join(edges[(a, b)][:3])}" for a, b in zip(cycle, cycle[1:], strict=False))


def test_the_pipeline_does_not_import_tools_services_or_orchestration():
    bad = [f"{a} imports {b} at {', '.join(where)}" for (a, b), where in sorted(room_edges().items())
           if a in PIPELINE_ROOMS and b in NOT_FROM_THE_PIPELINE]
    assert not bad, "\n".join(bad)


def get_settings_calls(tree: ast.Module) -> list[tuple[int, list[str]]]:
    """(line, names of the enclosing functions, outermost first) of every `get_settings(` call."""
    found = []

    def walk(node: ast.AST, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                walk(child, [*scope, child.name])
                continue
            if isinstance(child, ast.Call):
                f = child.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
                if name == "get_settings":
                    found.append((child.lineno, scope))
            walk(child, scope)

    walk(tree, [])
    return found


def settings_violations() -> list[str]:
    out = []
    for module, (_, tree) in sources().items():
        for line, scope in get_settings_calls(tree):
            if not scope or scope[-1] not in ENTRY_POINT_FUNCTIONS:
                out.append(f"{module}:{line} in {'.'.join(scope) or 'module level'}")
    return out


def test_settings_are_read_from_the_environment_only_in_entry_points():
    # DAG files are entry points: any call there is fine; a helper of the package is not.
    assert not settings_violations(), (
        "get_settings() outside an entry point (a `main` or `from_env`): pass the settings or a RunContext "
        "down instead:\n" + "\n".join(settings_violations()))


def test_the_entry_point_rule_is_checked():
    tree = ast.parse("def main():\n    get_settings()\n"
                     "class W:\n    @classmethod\n    def from_env(cls):\n        return settings.get_settings()\n"
                     "def helper():\n    x = get_settings()\n"
                     "def main2():\n    def inner():\n        get_settings()\n"
                     "S = get_settings()\n")
    calls = get_settings_calls(tree)
    assert calls == [(2, ["main"]), (6, ["from_env"]), (8, ["helper"]), (11, ["main2", "inner"]), (12, [])]
    assert [scope[-1] if scope else None for _, scope in calls if not scope or
            scope[-1] not in ENTRY_POINT_FUNCTIONS] == ["helper", "inner", None]


SPEC_FOLDERS = ("schemas", "expectations")


def file_path_lookups(tree: ast.Module, source: str) -> list[int]:
    """Lines of the functions (or module-level statements) that use `__file__` and name schemas/
    or expectations/: a module finding the specs beside itself instead of asking the settings."""
    out = []
    units = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    units += [n for n in tree.body if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)]
    for unit in units:
        uses_file = any(isinstance(n, ast.Name) and n.id == "__file__" for n in ast.walk(unit))
        text = ast.get_source_segment(source, unit) or ""
        if uses_file and any(folder in text for folder in SPEC_FOLDERS):
            out.append(unit.lineno)
    return out


def test_no_module_finds_the_specs_through_its_own_path():
    bad = []
    for path in sorted((ROOT / "jobs").rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        bad += [f"{path.relative_to(ROOT)}:{line}" for line in file_path_lookups(ast.parse(source), source)]
    assert not bad, ("Path(__file__) used to find schemas/ or expectations/: use settings.schemas_dir / "
                     "settings.expectations_dir (RunContext.contracts, RunContext.suites_dir):\n" + "\n".join(bad))


def test_the_specs_rule_is_checked():
    source = ("from pathlib import Path\n"
              "SCHEMAS = Path(__file__).resolve().parents[2] / 'schemas'\n"
              "def suites():\n    return Path(__file__).parent.parent / 'expectations'\n"
              "def root():\n    return Path(__file__).parent\n")
    assert file_path_lookups(ast.parse(source), source) == [3, 2]


def test_the_consumer_client_uses_nothing_of_the_pipeline():
    # agrilake.consumer checks the deliveries: sharing the exporter's code would share its bugs
    bad = [f"consumer imports {b} at {', '.join(where)}" for (a, b), where in sorted(room_edges().items())
           if a == "consumer"]
    assert not bad, "\n".join(bad)
