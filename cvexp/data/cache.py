"""Write-once folders for generated data (demo datasets): safe for parallel jobs."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

MARKER = ".complete.json"


def write_once(root: str | os.PathLike, settings: dict, fill: Callable[[Path], None]) -> Path:
    """`fill(tmp)` writes the folder's content unless `root` already holds a copy made with the
    same `settings` (recorded in a marker file). It is built in a temporary sibling and renamed into
    place, so a reader never sees half a folder; a parallel job that loses the race drops its copy.
    A copy made with other settings is replaced (it is a cache)."""
    root = Path(root)
    marker = root / MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == settings:
                return root
        except (OSError, json.JSONDecodeError):
            pass
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        fill(tmp)
        (tmp / MARKER).write_text(json.dumps(settings))
        if root.exists():
            shutil.rmtree(root, ignore_errors=True)
        try:
            os.replace(tmp, root)
        except OSError:  # a parallel job won the race; its copy is identical
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
