"""The shape of the package: imports point one way, and the engine needs no app package.

The import graph is read from the source (every ``import``, also inside functions, since
a late import is still a dependency). Floors, bottom first, are listed in ``FLOORS``; a
module may import its own floor or lower ones, never a higher one, and the graph has no
cycle. The package face ``hpmkd/__init__.py`` sits above the engine, so no engine module
imports it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "hpmkd"

#: Floors of the engine, bottom first. A module name matches the longest prefix listed.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("hpmkd._version", "hpmkd.errors", "hpmkd.fieldspec", "hpmkd.paths", "hpmkd.events",
     "hpmkd.stop", "hpmkd.native_threads", "hpmkd.fast_relu"),
    ("hpmkd.extras", "hpmkd.metrics", "hpmkd.curves", "hpmkd.config", "hpmkd.io", "hpmkd.checks"),
    ("hpmkd.settings",),
    ("hpmkd.safe_load",),
    ("hpmkd.child_process",),
    ("hpmkd.isolation",),
    ("hpmkd.teacher", "hpmkd.students", "hpmkd._teacher_child", "hpmkd.refit"),
    ("hpmkd.data", "hpmkd.evaluate"),
    ("hpmkd.results_table", "hpmkd.parallel", "hpmkd.leakage"),
    ("hpmkd.components",),
    ("hpmkd.result",),
    ("hpmkd.engine",),
    ("hpmkd.report", "hpmkd.report_charts"),
    ("hpmkd.distiller",),
    ("hpmkd.estimator",),
    ("hpmkd",),
    ("hpmkd.run_cache",),
    ("hpmkd.cli", "hpmkd.__main__"),
)
#: Packages only the app (or an optional feature) needs.
APP_PACKAGES = ("streamlit", "shap")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def engine_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(path: Path, name: str) -> set[str]:
    """The ``hpmkd`` modules ``path`` imports (``from a import b`` counts ``a.b`` when
    that is a module, else ``a``)."""
    modules = engine_modules()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "hpmkd")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([node.module] if node.module else []))
            if base.split(".")[0] != "hpmkd":
                continue
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.add(full if full in modules else base)
    out.discard(name)
    return out


def floor_of(name: str) -> int:
    best, floor = -1, None
    for index, prefixes in enumerate(FLOORS):
        for prefix in prefixes:
            # The face "hpmkd" is one module, not a prefix of the whole package.
            inside = prefix != "hpmkd" and name.startswith(prefix + ".")
            if (name == prefix or inside) and len(prefix) > best:
                best, floor = len(prefix), index
    assert floor is not None, f"{name} has no floor in FLOORS: add it"
    return floor


def import_graph() -> dict[str, set[str]]:
    return {name: imports_of(path, name) for name, path in engine_modules().items()}


def test_every_import_points_to_the_same_floor_or_below() -> None:
    upward = [
        f"{name} (floor {floor_of(name)}) imports {target} (floor {floor_of(target)})"
        for name, targets in import_graph().items()
        for target in sorted(targets)
        if floor_of(target) > floor_of(name)
    ]
    assert not upward, "\n".join(upward)


def test_the_import_graph_has_no_cycle() -> None:
    graph = import_graph()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_the_checker_sees_a_late_import_up_a_floor(tmp_path) -> None:
    # The check above must be able to fail: a function-level import of the face counts.
    path = PACKAGE / "components" / "cache.py"
    fake = tmp_path / "cache.py"
    fake.write_text(path.read_text() + "\ndef _late():\n    from hpmkd import __version__\n")
    assert "hpmkd" in imports_of(fake, "hpmkd.components.cache")
    assert floor_of("hpmkd") > floor_of("hpmkd.components.cache")


@pytest.mark.slow
def test_every_engine_module_imports_without_the_app_packages() -> None:
    # __main__ runs the CLI when imported; the report is the optional plotly feature.
    names = [n for n in engine_modules() if not n.startswith(("hpmkd.report", "hpmkd.__main__"))]
    blocked = ", ".join(repr(p) for p in (*APP_PACKAGES, "plotly"))
    code = (
        "import importlib, sys\n"
        f"for blocked in ({blocked},):\n"
        "    sys.modules[blocked] = None  # any import of it now raises ImportError\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        f"leaked = [m for m in ({blocked},) if sys.modules.get(m) is not None]\n"
        "assert not leaked, leaked\n"
        "print('ok', len(sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok")


def test_report_without_plotly_names_the_extra(monkeypatch, tmp_path) -> None:
    from hpmkd.errors import MethodNotAvailableError
    from hpmkd.extras import require

    monkeypatch.setitem(sys.modules, "plotly", None)
    with pytest.raises(MethodNotAvailableError, match=r"hpmkd\[report\]"):
        require("plotly", "The HTML report")


def test_cli_report_without_plotly_exits_2_before_any_work(monkeypatch, capsys) -> None:
    from hpmkd.cli import main

    monkeypatch.setitem(sys.modules, "plotly", None)
    code = main(["distill", "no-such-file.csv", "--target", "y", "--report"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error:") and "hpmkd[report]" in err
