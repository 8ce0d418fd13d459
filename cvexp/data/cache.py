"""Write-once folders for generated data (demo datasets): safe for parallel jobs, and never a
danger to folders cvexp did not make.

A folder written here carries a marker file naming its generator and settings. Only such a folder
(same generator, other settings: an outdated cache) is ever replaced; a folder without the marker,
or with another generator's, belongs to someone else and is refused with a one-line error.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

from cvexp.errors import DataError

MARKER = ".complete.json"


def refuse_demo_root(what: str, real_option: str) -> str:
    """The message for a `data.root` given to a demo dataset (it would be the generator's target)."""
    return (f"data.root is not used with demo data: the {what} are generated into paths.cache_dir. "
            f"Drop data.root, or train on your own copy with {real_option} data.root=PATH")


def read_marker(root: str | os.PathLike) -> dict | None:
    try:
        marker = json.loads((Path(root) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def write_once(root: str | os.PathLike, generator: str, settings: dict, fill: Callable[[Path], None]) -> Path:
    """`fill(tmp)` writes the folder's content unless `root` already holds a copy made by
    `generator` with the same `settings` (recorded in a marker file). It is built in a temporary
    sibling and renamed into place, so a reader never sees half a folder; a parallel job that loses
    the race drops its own copy. A copy by the same generator with other settings is replaced (it is
    a cache); any other non-empty folder at `root` is refused, never touched."""
    root = Path(root).expanduser()
    wanted = {"generator": generator, **settings}
    marker = read_marker(root)
    if marker == wanted:
        return root
    _check_ours(root, generator, marker, settings)
    root.parent.mkdir(parents=True, exist_ok=True)
    # a new, unique sibling with the usual permissions (mkdtemp's would be private, 0700, and a
    # cache shared by a group unreadable to the others)
    tmp = root.parent / f".{root.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        fill(tmp)
        (tmp / MARKER).write_text(json.dumps(wanted))
        _swap_in(tmp, root, generator, settings)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def _check_ours(root: Path, generator: str, marker: dict | None, settings: dict) -> None:
    """Raise unless `root` is absent, an empty folder, or an earlier copy by `generator` (markers
    written before generators were named hold just the settings' keys)."""
    if not root.exists() and not root.is_symlink():
        return
    if root.is_symlink() or not root.is_dir():
        raise DataError(f"{root} exists and is not a folder cvexp generated; the {generator} demo data "
                        "needs a path of its own (move it, or set paths.cache_dir=ANOTHER_DIR)")
    legacy = marker is not None and "generator" not in marker and set(marker) == set(settings)
    if marker is not None and (marker.get("generator") == generator or legacy):
        return  # our own outdated copy: a cache, safe to replace
    if any(root.iterdir()):
        raise DataError(f"{root} holds files cvexp did not generate (no {generator} marker {MARKER}); "
                        "it is left untouched. Point paths.cache_dir at a folder for caches, "
                        "or use the real-data option (data.root=...) for your own dataset")


def _swap_in(tmp: Path, root: Path, generator: str, settings: dict) -> None:
    """Rename the finished `tmp` to `root`; an outdated copy of ours is moved aside first and
    removed only after the new one is in place."""
    old = None
    if root.exists():
        marker = read_marker(root)
        if marker == {"generator": generator, **settings}:
            return  # a parallel job put the same copy in place, and may be reading it: ours is dropped
        # check again right before moving: a folder that appeared meanwhile is never ours to replace
        _check_ours(root, generator, marker, settings)
        if any(root.iterdir()):  # (an empty folder is replaced by the rename itself)
            old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old.", dir=root.parent))
            try:
                os.replace(root, old / "copy")
            except OSError:  # a parallel job is swapping too; its copy will do
                old.rmdir()
                return
    try:
        os.replace(tmp, root)
    except OSError:  # a parallel job won the race; its copy is identical
        pass
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
