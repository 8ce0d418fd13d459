"""Run every benchmark in sequence, each as its own process, and print a summary table.

    python benchmarks/run_all.py                     # small scale (~8-10 min on 2 cores)
    python benchmarks/run_all.py --scale full        # the issue's sizes (an hour or more on 2 cores)
    python benchmarks/run_all.py --only startup eval # some of them
    python benchmarks/run_all.py --markdown          # the table as Markdown (for benchmarks/README.md)
    python benchmarks/run_all.py --latest --markdown # no runs: the latest record of every benchmark in results.jsonl

Every record is appended to benchmarks/results.jsonl (unless --no-record); the table shows this
invocation's records. A benchmark that fails is reported and the others still run (exit 1 at the end).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import common as C

SCRIPTS = {
    "startup": "bench_startup.py",
    "run": "bench_run.py",
    "eval": "bench_eval.py",
    "step": "bench_step.py",
    "loader": "bench_loader.py",
    "seg": "bench_seg.py",
    "growth": "bench_growth.py",
}


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return str(v)


def table(records: list[dict], markdown: bool = False) -> str:
    head = ["benchmark", "cvexp", "baseline", "unit", "ratio", "target", "met", "load"]
    rows = [[r["benchmark"], fmt(r["cvexp"]), fmt(r["baseline"]), r["unit"], fmt(r["ratio"]), r["target"] or "-",
             {True: "yes", False: "NO", None: "-"}[r["meets_target"]],
             fmt((r.get("machine") or {}).get("load_avg_1min"))] for r in records]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(head, *rows)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(row, widths)) for row in [head, *rows])


ORDER = ("startup", "run", "eval", "train_step", "loader", "seg", "growth", "gpu")


def latest(path) -> list[dict]:
    """The newest record of every benchmark in a results file, in run_all's order."""
    newest: dict[str, dict] = {}
    with open(path) as fh:
        for line in fh:
            if line.strip():
                rec = json.loads(line)
                newest[rec["benchmark"]] = rec

    def rank(name: str) -> int:
        return next((i for i, p in enumerate(ORDER) if name.startswith(p)), len(ORDER))

    return sorted(newest.values(), key=lambda r: rank(r["benchmark"]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scale", choices=C.SCALES, default="small")
    p.add_argument("--only", nargs="+", choices=list(SCRIPTS), default=None)
    p.add_argument("--no-record", action="store_true")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--latest", action="store_true", help="run nothing: table of the newest record per benchmark")
    p.add_argument("--results", default=str(C.RESULTS))
    args = p.parse_args(argv)
    if args.latest:
        recs = latest(args.results)
        print(table(recs, args.markdown))
        return 0
    records, failed, took = [], [], {}
    for name in args.only or SCRIPTS:
        cmd = [C.PYTHON, str(C.BENCH_DIR / SCRIPTS[name]), "--scale", args.scale]
        if args.no_record:
            cmd.append("--no-record")
        C.say(f"== {name}: {' '.join(cmd[1:])}")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=C.child_env(), stdout=subprocess.PIPE, text=True, check=False)  # stderr: live progress
        took[name] = time.perf_counter() - t0
        got = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        records += got
        if proc.returncode != 0 or not got:
            failed.append(name)
            C.say(f"!! {name} failed (exit {proc.returncode})")
        C.say(f"== {name}: {took[name]:.0f} s")
    print(table(records, args.markdown))
    print("\nseconds per script: " + ", ".join(f"{k} {v:.0f}" for k, v in took.items()))
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
