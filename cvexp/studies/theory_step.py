"""`python -m cvexp.studies.theory_step --out DIR`: the tables of `python -m cvexp.theory` as files.

`python -m cvexp.theory` prints the demonstration tables behind docs/theory.md (naive vs stable
softmax and BCE, MSE vs BCE gradients, BCE worked examples, KL vs cross-entropy, L2 weight norms).
A study needs their numbers as data, so this step computes the same tables
(`cvexp.theory.demos.ALL_DEMOS`) and writes, into DIR:

- `theory.json`: every table (id, title, columns, rows of plain numbers, note);
- `theory.txt`: the tables exactly as `python -m cvexp.theory` prints them;
- `status.json`: like any run directory (running / completed / failed, wall time).

A DIR that already holds a finished run is refused (exit 2), as for every entry point.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
from pathlib import Path

from cvexp.engine import rundir
from cvexp.errors import CvexpError

THEORY_JSON, THEORY_TXT = "theory.json", "theory.txt"


def _plain(v):
    """Table cells as JSON values: tensors to lists, floats kept (NaN/inf as strings)."""
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def tables() -> list[dict]:
    from cvexp.theory.demos import ALL_DEMOS

    out = []
    for demo in ALL_DEMOS:
        t = demo()
        out.append({"id": demo.__name__, "title": t.title, "columns": list(t.columns),
                    "rows": [[_plain(v) for v in row] for row in t.rows], "note": t.note, "text": t.render()})
    return out


def write(out: Path) -> dict:
    started = time.time()
    rundir.refuse_finished_run_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    status = rundir.new_status("theory", [])
    rundir.write_json(out / rundir.STATUS_FILE, status)
    try:
        found = tables()
        rundir.write_json(out / THEORY_JSON, {"source": "cvexp.theory.demos.ALL_DEMOS", "tables": found})
        (out / THEORY_TXT).write_text("\n\n".join(t["text"] for t in found) + "\n")
    except BaseException as e:
        status.update(status="failed", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(),
                      wall_time_s=round(time.time() - started, 2))
        rundir.write_json(out / rundir.STATUS_FILE, status)
        raise
    status.update(status="completed", wall_time_s=round(time.time() - started, 2))
    rundir.write_json(out / rundir.STATUS_FILE, status)
    return status


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cvexp.studies.theory_step", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="the folder to write theory.json/theory.txt into")
    args = p.parse_args(argv)
    try:
        write(args.out)
    except CvexpError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - one line; the traceback is in status.json
        print(f"error: {type(e).__name__}: {e} (traceback in {args.out / rundir.STATUS_FILE})", file=sys.stderr)
        return 1
    print(f"theory tables: {args.out / THEORY_JSON}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
