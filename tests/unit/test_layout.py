"""The package map a newcomer reads (README "Package map"): the package root holds the commands,
the public API and the error types; everything else lives in a subpackage that says what it owns;
library packages never import Hydra (only entry points and the engine that runs them do)."""

from __future__ import annotations

import ast
from pathlib import Path

import cvexp

PKG = Path(cvexp.__file__).parent
NOT_COMMANDS = {"__init__", "__main__", "api", "errors"}
HYDRA_FREE = ("data", "models", "tasks", "metrics", "analysis", "theory", "io", "studies")


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_package_root_holds_commands_api_and_errors_only():
    for f in sorted(PKG.glob("*.py")):
        if f.stem in NOT_COMMANDS:
            continue
        source = f.read_text()
        tree = ast.parse(source)
        doc = ast.get_docstring(tree) or ""
        mains = [n for n in tree.body if (isinstance(n, ast.FunctionDef) and n.name == "main") or
                 (isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "main" for t in n.targets))]
        assert mains and '__name__ == "__main__"' in source and doc.startswith("`python -m cvexp"), \
            f"{f.name} is at the package root but is not a `python -m cvexp.{f.stem}` command"


def test_every_subpackage_says_what_it_owns():
    for init in sorted(PKG.glob("*/__init__.py")):
        if init.parent.name == "conf":
            continue
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 30, f"{init.parent.name}/__init__.py has no docstring saying what it holds"


def test_library_packages_do_not_import_hydra():
    for name in HYDRA_FREE:
        for f in sorted((PKG / name).rglob("*.py")):
            hydra = sorted(m for m in _imports(f) if m == "hydra" or m.startswith("hydra."))
            assert not hydra, f"{f.relative_to(PKG)} imports {hydra}: library code stays free of Hydra"


def test_xdist_workers_share_the_cores():
    """`make test` runs one pytest-xdist worker per core; each gets its share as torch threads."""
    from conftest import worker_threads

    assert worker_threads(2, 2) == 1 and worker_threads(16, 4) == 4 and worker_threads(3, 2) == 1
    assert worker_threads(1, 2) == 1 and worker_threads(8, None) is None
