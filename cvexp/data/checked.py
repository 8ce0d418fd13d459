"""Which image files of a dataset already passed the readability check, so that a run decodes only
the files that are new or changed since.

Before a stage reads a split, the wildlife data module checks every image of it
(`cvexp.data.images.is_readable_image`: a reduced decode plus the JPEG end marker), about 2.5 ms
for a 2-megapixel JPEG: up to half a minute per run for the 11,668 images of the Russian Wildlife
Dataset, again for every job of a sweep. `CheckedImages` remembers the files that passed, keyed by
their path under the dataset folder, size, and modification and status-change times (ns; the
latter changes with every write and cannot be set back), in one JSON file per dataset folder under
the cache dir (`paths.cache_dir`/checked_images/, never inside the dataset). A file whose size or
times changed (an interrupted copy, a replaced or rewritten file) is decoded again; files that
failed are never remembered, so they fail again until they are fixed.

The record is a cache, never needed: it is written atomically (two jobs at once: the last one's
record wins, neither is torn), a record that cannot be read or does not describe this folder is
ignored and rewritten, and a record that cannot be written (read-only or full disk) costs only the
time saved, with one warning. It is data: nothing in it is executed, and the worst a doctored record
can do is let a damaged file through unchecked, as `data.verify_images=false` would.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from cvexp.data.images import is_readable_image
from cvexp.io.atomic import atomic_write_bytes

log = logging.getLogger(__name__)

FORMAT = "cvexp-checked-images-1"


def record_path(cache_dir: str | os.PathLike, root: Path) -> Path:
    """The record of dataset folder `root` (resolved, so that two spellings of a path share one)."""
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return Path(cache_dir) / "checked_images" / f"{(root.name or 'root')[:64]}_{key}.json"


class CheckedImages:
    """`readable(rel)` for files under `root`; `save()` writes what was learned (no-op without a
    cache dir or when nothing new passed)."""

    def __init__(self, root: str | os.PathLike, cache_dir: str | os.PathLike | None):
        self.root = Path(root)
        self.path = record_path(cache_dir, self.root) if cache_dir else None
        self.passed: dict[str, list[int]] = self._read()
        self.changed = False
        self._warned = False

    def _read(self) -> dict[str, list[int]]:
        if self.path is None:
            return {}
        try:
            obj = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(obj, dict) or obj.get("format") != FORMAT or obj.get("root") != str(self.root.resolve()):
            return {}
        files = obj.get("files")
        if not isinstance(files, dict):
            return {}
        return {k: v for k, v in files.items()
                if isinstance(v, list) and len(v) == 3 and all(type(x) is int for x in v)}

    def readable(self, rel: str) -> bool:
        path = self.root / rel
        try:
            st = path.stat()
        except OSError:
            return False
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns]  # ctime: set by any write, not by cp -p / touch
        if self.passed.get(rel) == stamp:
            return True
        ok = is_readable_image(path)
        if ok:
            self.passed[rel] = stamp
            self.changed = True
        else:
            self.changed |= self.passed.pop(rel, None) is not None
        return ok

    def save(self) -> None:
        if self.path is None or not self.changed:
            return
        data = json.dumps({"format": FORMAT, "root": str(self.root.resolve()), "files": self.passed},
                          separators=(",", ":")).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.path, data)
        except OSError as e:
            if not self._warned:
                log.warning("could not remember which images were checked (%s: %s); the next run checks them "
                            "again", self.path, e.strerror or e)
                self._warned = True
            return
        self.changed = False
