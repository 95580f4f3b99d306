"""The package's shape, checked as the code changes (README: Layout): layers import one way, no module-level
import cycle, no module over 400 lines or function over 80, and the light layers stay light to import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.paths import REPO

PACKAGE = REPO / "coldopen"
# Each layer may import its own package and the layers of a lower rank only.
RANK = {"domain": 0, "config": 1, "ops": 1, "models": 2, "engine": 3, "storage": 3, "sounds": 4, "ranking": 4,
        "app": 5, "api": 6, "cli": 7}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
GENERATED = "v1"  # the gRPC stubs: the API layer alone uses them


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(REPO).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if GENERATED in parts[:2] or "migrations" in parts:
            continue
        out[".".join(parts)] = path
    return out


def _imports(path: Path) -> tuple[set[str], set[str]]:
    """(imports at module level that run, imports only for type checking) of coldopen modules."""
    tree = ast.parse(path.read_text())
    run: set[str] = set()
    typing_only: set[str] = set()

    def visit(nodes: list[ast.stmt], into: set[str]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.body, typing_only)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body, into)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body, into)
                visit(node.orelse, into)
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("coldopen"):
                into.add(node.module)
                into.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                into.update(a.name for a in node.names if a.name.startswith("coldopen"))

    visit(tree.body, run)
    return run, typing_only


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_layers_import_one_way():
    modules = _modules()
    wrong = []
    for module, path in modules.items():
        run, typing_only = _imports(path)
        mine = _layer(module)
        for target in run | typing_only:
            theirs = _layer(target)
            if theirs == GENERATED:
                if mine != "api":
                    wrong.append(f"{module} -> {target} (only the API layer touches protobuf)")
                continue
            if not mine or not theirs or theirs == mine:
                continue
            if RANK[theirs] >= RANK[mine]:
                wrong.append(f"{module} ({mine}) -> {target} ({theirs})")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(set(wrong)))


def test_no_import_cycle_among_modules():
    modules = _modules()
    graph = {m: {t for t in _imports(p)[0] if t in modules and t != m} for m, p in modules.items()}
    # a package's __init__ is imported before any of its modules: an edge from a module to its package
    for m in modules:
        parent = m.rsplit(".", 1)[0]
        if parent in modules and parent != m:
            graph[m].add(parent)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1 and not m.startswith(t + "."):
                return stack[stack.index(t):] + [t]
            if t not in state:
                found = visit(t)
                if found:
                    return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state:
            cycle = visit(m)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_modules_and_functions_stay_small():
    too_long = []
    for module, path in _modules().items():
        lines = path.read_text().count("\n")
        if lines > MAX_MODULE_LINES:
            too_long.append(f"{module}: {lines} lines")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    too_long.append(f"{module}.{node.name}: {n} lines")
    assert not too_long, "over the size limits:\n" + "\n".join(too_long)


@pytest.mark.parametrize("module", ["coldopen.domain.videos", "coldopen.domain.sounds", "coldopen.config.settings",
                                    "coldopen.sounds.segment", "coldopen.sounds.vote", "coldopen.ranking.routing"])
def test_light_layers_import_nothing_heavy(module):
    heavy = ["torch", "av", "cv2", "faiss", "sqlalchemy", "grpc", "open_clip", "ctranslate2", "pymilvus", "transformers"]
    code = f"import sys, {module}; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.strip() == "[]", f"importing {module} pulls in {out.strip()}"


def test_the_wheel_holds_every_module_and_data_file(tmp_path):
    """Packages are found, not listed: every .py under coldopen/ (and the files the code reads at run time)
    must be in the wheel pip builds, or an install would miss a layer or a migration."""
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
                    str(REPO)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("coldopen-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = {p.relative_to(REPO).as_posix() for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert wanted - names == set()
