"""`python -m cvexp.report DIR [DIR ...]`: (re)build the sweep report of multirun directories.

    python -m cvexp.report outputs/train/multiruns/2026-01-01_12-00-00
    python -m cvexp.report outputs/train/multiruns/A outputs/train/multiruns/B --out outputs/study

    python -m cvexp.report outputs/train/multiruns/<time> --baseline aug=none

Writes report.md, report.csv and report.png (one row per job: overridden values, test accuracy,
macro F1 and recall, weighted F1, best val F1, last-epoch train-vs-val gaps, epochs, wall time,
status) and report_groups.csv into the multirun dir, or into --out. The best job is chosen by the
validation metric the sweep optimises, its test number beside it. Jobs that differ only in `seed`
and/or `data.fold` are a group: mean ± std, 95% CI and Welch's t-test against the baseline group
(--baseline, default the first). With several dirs the jobs are named `<dir name>/<job>` and --out
is required (equal settings from several dirs pool into one group). A sweep writes its report by
itself when it ends (cvexp.engine.hydra_callbacks.SweepReport); this command rebuilds it, e.g. while a
sweep is still running or after jobs were rerun.

Exit code: 0 when the report was written (failed jobs are rows of the report), 1 with --strict
when any job did not complete, 2 when a directory holds no jobs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cvexp.analysis import sweep_report as report


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cvexp.report", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="+", type=Path, help="multirun directories (with job folders 0/, 1/, ...)")
    p.add_argument("--out", type=Path, default=None,
                   help="where to write report.* (default: the multirun dir; required with several dirs)")
    p.add_argument("--baseline", default=None,
                   help="the group the others are tested against: key=value pairs (aug=none), a group "
                        "label or a job number (default: the first group)")
    p.add_argument("--alpha", type=float, default=report.ALPHA,
                   help="significance level of the Welch t-test (default %(default)s)")
    p.add_argument("--strict", action="store_true", help="exit 1 when any job did not complete")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from cvexp.engine.entry import use_headless_plots

    use_headless_plots()
    if len(args.dirs) > 1 and args.out is None:
        print("error: several directories need --out DIR for the combined report", file=sys.stderr)
        return 2
    rows = []
    for d in args.dirs:
        if not d.is_dir():
            print(f"error: {d} is not a directory; pass a multirun dir such as "
                  "outputs/train/multiruns/<date>_<time>", file=sys.stderr)
            return 2
        found = report.collect_rows(d)
        if not found:
            print(f"error: {d} holds no job folders (0/, 1/, ... with status.json); pass a multirun dir "
                  "written by python -m cvexp -m ...", file=sys.stderr)
            return 2
        if len(args.dirs) > 1:
            for r in found:
                r["job"] = f"{d.name}/{r['job']}"
        rows += found
    sweep = args.dirs[0] if len(args.dirs) == 1 else args.out
    if not 0 < args.alpha < 1:
        print(f"error: --alpha {args.alpha} must be between 0 and 1 (e.g. 0.05)", file=sys.stderr)
        return 2
    files = report.write_report(sweep, args.out, rows=rows, baseline=args.baseline, alpha=args.alpha)
    print(report_summary(rows, args.baseline, args.alpha))
    for k in ("md", "csv", "groups", "png"):
        if k in files:
            print(f"wrote {files[k]}")
    bad = report.failed_rows(rows)
    return 1 if (bad and args.strict) else 0


def report_summary(rows: list[dict], baseline=None, alpha: float = report.ALPHA) -> str:
    """A few console lines: jobs, their status and the selection (validation) metric; with repeated
    seeds/folds one line per group: mean ± std and the p-value against the baseline."""
    varying, _ = report.swept_keys(rows)
    rank = report.selection_metric(rows)
    best = report.best_row(rows)
    lines = []
    for r in rows:
        v = r["metrics"].get(rank) if rank else None
        score = f"{rank}={v:.4f}" if v is not None else ""
        mark = " (best)" if best is not None and r is best and len(rows) > 1 else ""
        err = f"  {report.one_line(r['error'], 120)}" if r["error"] else ""
        lines.append(f"  job {r['job']:>4} [{r['status']:>9}] {report.job_label(r, varying):<30} {score}{mark}{err}")
    groups = report.group_rows(rows)
    if rank and report.has_repeats(groups):
        base, _ = report.find_baseline(groups, baseline)
        vs = f"; Welch p vs {groups[base]['label']}" if len(groups) > 1 else ""
        lines.append(f"groups (mean ± std of {rank}{vs}):")
        for s in report.group_stats(groups, [rank], base, alpha):
            mean = f"{s['mean']:.4f}" if s["mean"] is not None else "-"
            std = f" ± {s['std']:.4f}" if s["std"] is not None else ""
            p = "" if s["baseline"] else (f"  p={s['p']:.3g}{' *' if s['differs'] else ''}" if s["p"] is not None
                                          else "  p=n/a")
            lines.append(f"  {s['group']:<36} n={s['n']} {mean}{std}{p}")
    n_bad = len(report.failed_rows(rows))
    head = f"{len(rows)} job(s), {len(rows) - n_bad} completed, {n_bad} not completed"
    return "\n".join([head, *lines])


if __name__ == "__main__":
    sys.exit(main())
