"""The public API: the README's Python example runs as written; load_checkpoint/build_run."""

from __future__ import annotations

from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def test_lazy_exports_resolve():
    import cvexp

    for name in cvexp.__all__:
        assert getattr(cvexp, name) is not None
    with pytest.raises(AttributeError):
        cvexp.nope  # noqa: B018


def test_library_leaves_the_matplotlib_backend_alone():
    """Only the entry points choose the headless backend; importing or calling library code must
    not switch a notebook's backend."""
    pkg = Path(__file__).resolve().parents[2] / "cvexp"
    offenders = [str(p.relative_to(pkg)) for p in pkg.rglob("*.py")
                 if "matplotlib.use(" in p.read_text() and p.relative_to(pkg).as_posix() != "engine/entry.py"]
    assert offenders == []
