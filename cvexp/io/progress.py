"""One progress bar for the loops that are silent for minutes on real data: rasterising masks
(`cvexp.data.polygons`), writing demo datasets (`cvexp.data.demo_wildlife`, `demo_streets`) and
extracting features (`cvexp.analysis.features`).

    for item in progress(items, total=len(items), description="masks (level3Id)"):
        ...

A rich bar on stderr, transient (it disappears when done), and only when there is enough work
(more than `PROGRESS_MIN` steps) and somewhere to draw it: a terminal or Jupyter, as rich decides
(`FORCE_COLOR`/`TTY_COMPATIBLE` included). Into a file or pipe (logs, CI, captured test output)
nothing is written.
(Training and evaluation have Lightning's own bar; `cvexp.predict` shows one per image.)
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

PROGRESS_MIN = 8  # a bar for more steps than this

T = TypeVar("T")


def progress(items: Iterable[T], total: int | None, description: str, min_steps: int = PROGRESS_MIN) -> Iterator[T]:
    """`items`, with a rich progress bar on stderr when `total` is more than `min_steps` (no bar
    when `total` is None: an unknown length)."""
    if total is None or total <= min_steps:
        yield from items
        return
    from rich.console import Console
    from rich.progress import track

    console = Console(file=sys.stderr)
    # (disabled, not left to rich's Live, which writes a blank line into a file)
    drawn = console.is_terminal or console.is_jupyter
    yield from track(items, description=description, total=total, console=console, transient=True,
                     disable=not drawn)
