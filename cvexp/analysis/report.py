"""Sweep reports: one row per job of a multirun directory, as Markdown, CSV and a comparison plot.

A Hydra multirun directory holds one numbered folder per job (`0/`, `1/`, ...). Each job folder
that `cvexp.engine.entry.run_job` wrote has `status.json` (running | completed | failed, error, overrides,
wall time), and when the job finished, `metrics.json` (flat test metrics and `<monitor>_best`)
and `history.csv` (one row per epoch, `train/*` and `val/*` columns). Hydra adds
`.hydra/overrides.yaml`. Any of these may be missing or half-written (a job killed mid-way,
a job that failed before training): such jobs still get a row, with what is known.

    rows = collect_rows("outputs/train/multiruns/2026-01-01_12-00-00")
    write_report("outputs/train/multiruns/2026-01-01_12-00-00")   # report.md, report.csv, report.png

The overfitting indicator is the gap between the last epoch's train and val numbers:
`gap/acc = train/acc - val/acc` (positive: the model does better on what it trained on) and
`gap/loss = val/loss - train/loss`. Both use the last recorded epoch, i.e. the end of training,
not the best checkpoint. With augmentation the train numbers are measured on augmented images,
so a small or negative gap can also mean "training images are harder", not only "no overfitting".
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cvexp import metric_names as M

REPORT_MD, REPORT_CSV, REPORT_PNG = "report.md", "report.csv", "report.png"

# Headline metrics shown in the Markdown table and the plot, in this order, when any job has them.
HEADLINE_METRICS = (
    M.TEST_ACC, M.TEST_F1_MACRO, M.TEST_F1_WEIGHTED, M.VAL_F1_MACRO_BEST,
    M.TEST_MIOU, M.name(M.TEST, M.PIXEL_ACC), M.VAL_MIOU_BEST,
)
# Metrics from which the train-vs-val gap is computed (last epoch of history.csv).
GAP_METRICS = (M.ACC, M.LOSS, M.MIOU)
# Which metric ranks the jobs ("best" line), first one present wins.
RANK_METRICS = (M.TEST_F1_MACRO, M.TEST_MIOU, M.VAL_F1_MACRO_BEST, M.VAL_MIOU_BEST, M.TEST_ACC)


# ------------------------------------------------------------------------------------ reading
def _read_json(path: Path) -> dict:
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def _read_overrides(job_dir: Path, status: dict) -> list[str]:
    """The job's command-line overrides: `.hydra/overrides.yaml`, else status.json's copy."""
    path = job_dir / ".hydra" / "overrides.yaml"
    if path.is_file():
        try:
            import yaml

            data = yaml.safe_load(path.read_text())
            if isinstance(data, list):
                return [str(x) for x in data]
        except Exception:  # noqa: BLE001 - half-written file: fall back to status.json
            pass
    ov = status.get("overrides")
    return [str(x) for x in ov] if isinstance(ov, list) else []


def _read_history(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    rows = []
    try:
        with open(path, newline="") as fh:
            for raw in csv.DictReader(fh):
                row = {}
                for k, v in raw.items():
                    if k is None or v in ("", None):
                        continue
                    try:
                        row[k] = float(v)
                    except ValueError:
                        continue
                rows.append(row)
    except (OSError, csv.Error):
        return []
    return rows


def override_key(override: str) -> str:
    """`model.lr=0.1` -> `model.lr`; `+trainer.x=1` -> `trainer.x`; `~logger` -> `logger`."""
    key = override.split("=", 1)[0]
    return key.lstrip("+~")


def override_value(override: str) -> str:
    return override.split("=", 1)[1] if "=" in override else "(deleted)"


def _job_number(d: Path) -> tuple[int, str]:
    return (int(d.name), d.name) if d.name.isdigit() else (10**9, d.name)


def find_job_dirs(sweep_dir: str | Path) -> list[Path]:
    """Numbered job folders of a multirun dir (and any other folder that looks like a job)."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        return []
    jobs = []
    for d in sweep_dir.iterdir():
        if not d.is_dir() or d.name.startswith("."):
            continue
        if d.name.isdigit() or (d / "status.json").is_file() or (d / ".hydra").is_dir():
            jobs.append(d)
    return sorted(jobs, key=_job_number)


def one_line(text: Any, limit: int | None = None) -> str:
    """A multi-line error message on one line (blank lines dropped), optionally shortened."""
    s = " ".join(part.strip() for part in str(text or "").splitlines() if part.strip())
    s = re.sub(r"\s+", " ", s)
    if limit and len(s) > limit:
        s = s[: limit - 3] + "..."
    return s


def read_job(job_dir: str | Path) -> dict[str, Any]:
    """Everything the report needs from one job folder, missing pieces as None."""
    job_dir = Path(job_dir)
    status = _read_json(job_dir / "status.json")
    metrics_path = job_dir / "metrics.json"
    metrics = _read_json(metrics_path)
    history = _read_history(job_dir / "history.csv")
    state = status.get("status")
    if not state:
        state = "completed" if metrics else ("incomplete" if (job_dir / ".hydra").is_dir() else "unknown")
    row: dict[str, Any] = {
        "job": job_dir.name,
        "dir": str(job_dir),
        "status": state,
        "error": one_line(status.get("error")) if status.get("error") else "",
        "overrides": _read_overrides(job_dir, status),
        "metrics": {k: _as_float(v) for k, v in metrics.items()},
        "wall_time_s": _as_float(status.get("wall_time_s")),
        "epochs": None,
        "history": history,
    }
    if history:
        epochs = [r["epoch"] for r in history if "epoch" in r]
        row["epochs"] = int(max(epochs)) + 1 if epochs else len(history)
        last = history[-1]
        for m in GAP_METRICS:
            tr, va = last.get(f"{M.TRAIN}/{m}"), last.get(f"{M.VAL}/{m}")
            row[f"final/{M.TRAIN}/{m}"] = tr
            row[f"final/{M.VAL}/{m}"] = va
            if tr is not None and va is not None:
                row[f"gap/{m}"] = (va - tr) if m == M.LOSS else (tr - va)
    return row


def _as_float(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def collect_rows(sweep_dir: str | Path) -> list[dict[str, Any]]:
    """One row per job folder, in job-number order."""
    return [read_job(d) for d in find_job_dirs(sweep_dir)]


# ------------------------------------------------------------------------------------ columns
def swept_keys(rows: Sequence[dict]) -> tuple[list[str], dict[str, str]]:
    """(keys whose value differs between jobs, {key: value} shared by every job)."""
    order: list[str] = []
    values: dict[str, set] = {}
    per_job = []
    for r in rows:
        d = {}
        for o in r["overrides"]:
            k = override_key(o)
            d[k] = override_value(o)
            if k not in values:
                order.append(k)
                values[k] = set()
        per_job.append(d)
    for d in per_job:
        for k in order:
            values[k].add(d.get(k, "-"))
    varying = [k for k in order if len(values[k]) > 1]
    common = {k: next(iter(values[k])) for k in order if len(values[k]) == 1}
    if len(rows) == 1:  # a one-job "sweep": show what it was run with
        varying, common = order, {}
    return varying, common


def override_columns(rows: Sequence[dict]) -> list[str]:
    """Every override key seen in any job (varying ones first)."""
    varying, common = swept_keys(rows)
    return varying + [k for k in common if k not in varying]


def headline_metrics(rows: Sequence[dict]) -> list[str]:
    present = {k for r in rows for k, v in r["metrics"].items() if v is not None}
    return [m for m in HEADLINE_METRICS if m in present]


def other_metrics(rows: Sequence[dict]) -> list[str]:
    """Remaining stage-level metrics (per-class ones, `test/f1/<class>`, stay in the job's files)."""
    head = set(headline_metrics(rows))
    keys = {k for r in rows for k in r["metrics"] if k.count("/") == 1 and k not in head}
    return sorted(keys)


def gap_columns(rows: Sequence[dict]) -> list[str]:
    return [f"gap/{m}" for m in GAP_METRICS if any(r.get(f"gap/{m}") is not None for r in rows)]


def final_columns(rows: Sequence[dict]) -> list[str]:
    cols = []
    for m in GAP_METRICS:
        for s in (M.TRAIN, M.VAL):
            c = f"final/{s}/{m}"
            if any(r.get(c) is not None for r in rows):
                cols.append(c)
    return cols


def rank_metric(rows: Sequence[dict]) -> str | None:
    present = {k for r in rows for k, v in r["metrics"].items() if v is not None}
    return next((m for m in RANK_METRICS if m in present), None)


def job_label(row: dict, keys: Sequence[str]) -> str:
    """Short name of a job from its swept values: `aug=strong model=resnet18` -> `strong, resnet18`."""
    ov = {override_key(o): override_value(o) for o in row["overrides"]}
    vals = [ov.get(k, "-") for k in keys]
    return ", ".join(vals) if vals else f"job {row['job']}"


# ------------------------------------------------------------------------------------ writing
def table_rows(rows: Sequence[dict]) -> tuple[list[str], list[dict[str, Any]]]:
    """Flat rows for report.csv: job, overrides, metrics, final train/val, gaps, epochs, time, status."""
    ov_cols = override_columns(rows)
    metric_cols = headline_metrics(rows) + other_metrics(rows)
    cols = (["job"] + ov_cols + metric_cols + final_columns(rows) + gap_columns(rows)
            + ["epochs", "wall_time_s", "status", "error", "dir"])
    flat = []
    for r in rows:
        ov = {override_key(o): override_value(o) for o in r["overrides"]}
        d: dict[str, Any] = {"job": r["job"]}
        d.update({k: ov.get(k, "") for k in ov_cols})
        d.update({k: r["metrics"].get(k) for k in metric_cols})
        d.update({k: r.get(k) for k in final_columns(rows) + gap_columns(rows)})
        d.update(epochs=r["epochs"], wall_time_s=r["wall_time_s"], status=r["status"], error=r["error"],
                 dir=r["dir"])
        flat.append(d)
    return cols, flat


def write_csv(rows: Sequence[dict], path: str | Path) -> Path:
    cols, flat = table_rows(rows)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for d in flat:
            w.writerow({k: ("" if v is None else v) for k, v in d.items()})
    return Path(path)


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def short_metric(name: str) -> str:
    return {"gap/acc": "gap acc (train-val)", "gap/loss": "gap loss (val-train)",
            "gap/miou": "gap miou (train-val)"}.get(name, name)


def markdown(rows: Sequence[dict], sweep_dir: str | Path, png_name: str | None = REPORT_PNG) -> str:
    varying, common = swept_keys(rows)
    head = headline_metrics(rows)
    gaps = gap_columns(rows)
    rank = rank_metric(rows)
    n_ok = sum(r["status"] == "completed" for r in rows)
    failed = [r for r in rows if r["status"] == "failed"]
    other = [r for r in rows if r["status"] not in ("completed", "failed")]
    lines = [f"# Sweep report: {Path(sweep_dir).name}", "",
             f"Directory: `{sweep_dir}`  ",
             f"Jobs: {len(rows)} ({n_ok} completed, {len(failed)} failed"
             + (f", {len(other)} not finished" if other else "") + ")"]
    if common:
        lines.append("Common overrides: " + " ".join(f"`{k}={v}`" for k, v in common.items()))
    lines.append("")
    if rank:
        ranked = [r for r in rows if r["metrics"].get(rank) is not None]
        if ranked:
            best = max(ranked, key=lambda r: r["metrics"][rank])
            lines += [f"Best by `{rank}`: job {best['job']} ({job_label(best, varying)}) "
                      f"= {best['metrics'][rank]:.4f}", ""]
    cols = ["job"] + varying + head + gaps + ["epochs", "wall time (s)", "status"]
    lines.append("| " + " | ".join(short_metric(c) for c in cols) + " |")
    lines.append("|" + "|".join("---" if c in ["job", *varying, "status"] else "---:" for c in cols) + "|")
    for r in rows:
        ov = {override_key(o): override_value(o) for o in r["overrides"]}
        cells = [r["job"]] + [ov.get(k, "-") for k in varying]
        cells += [_fmt(r["metrics"].get(m)) for m in head]
        cells += [_fmt(r.get(g)) for g in gaps]
        cells += [_fmt(r["epochs"]), _fmt(r["wall_time_s"], 1), r["status"]]
        lines.append("| " + " | ".join(_md_cell(str(c)) for c in cells) + " |")
    if failed or other:
        lines += ["", "## Jobs that did not complete", ""]
        for r in failed + other:
            why = one_line(r["error"], 300) or "(no error recorded: killed, or still running)"
            lines.append(f"- job {r['job']} ({' '.join(r['overrides']) or 'no overrides'}): "
                         f"**{r['status']}** - {_md_cell(why)}  \n  `{r['dir']}`")
    if gaps:
        lines += ["", "The gap columns are the overfitting indicator at the last epoch: "
                      "`train/acc - val/acc` and `val/loss - train/loss` (larger = more overfitting; "
                      "train numbers are on augmented images)."]
    if png_name:
        lines += ["", f"![comparison]({png_name})"]
    lines += ["", "Full table (every override, metric and path): `report.csv`.", ""]
    return "\n".join(lines)


def plot_report(rows: Sequence[dict], path: str | Path) -> Path:
    """Three panels: headline metrics per job, train-vs-val gap per job, val curves per epoch."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    varying, _ = swept_keys(rows)
    labels = [f"{r['job']}: {job_label(r, varying)}" for r in rows]
    head = headline_metrics(rows)
    gaps = [g for g in gap_columns(rows) if g != "gap/loss"] or gap_columns(rows)
    curve_key = next((k for k in (M.VAL_F1_MACRO, M.VAL_MIOU, M.VAL_ACC)
                      if any(k in h for r in rows for h in r["history"])), None)
    n = max(len(rows), 1)
    fig, axes = plt.subplots(1, 3, figsize=(max(13, 3 + 1.3 * n * 1.5), 4.4),
                             gridspec_kw={"width_ratios": [2.2, 1.2, 1.6]})
    ax = axes[0]
    x = np.arange(len(rows))
    # a dot plot: the axis need not start at 0, so close results stay readable
    offsets = np.linspace(-0.24, 0.24, len(head)) if len(head) > 1 else [0.0]
    shown = []
    for off, m, marker in zip(offsets, head, "osD^v<>p"):
        vals = np.array([r["metrics"].get(m) if r["metrics"].get(m) is not None else np.nan for r in rows])
        ax.plot(x + off, vals, marker, ms=6, label=m, alpha=0.9)
        shown += [v for v in vals if np.isfinite(v)]
    for j, r in enumerate(rows):
        if r["status"] != "completed":
            ax.text(j, 0.5, r["status"].upper(), ha="center", va="center", rotation=90, color="crimson",
                    fontsize=10, fontweight="bold", transform=ax.get_xaxis_transform())
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    if shown:
        lo, hi = min(shown), max(shown)
        pad = max(0.02, 0.15 * (hi - lo))
        ax.set_ylim(max(0.0, lo - pad), min(1.0, hi + pad) + 0.01)
    ax.set_title("test metrics per job (higher is better)")
    ax.grid(alpha=0.3)
    if head:
        ax.legend(fontsize=7, loc="best", ncols=2)
    ax = axes[1]
    width = 0.8 / max(len(gaps), 1)
    for i, g in enumerate(gaps):
        vals = [r.get(g) for r in rows]
        ax.bar(x + (i - (len(gaps) - 1) / 2) * width, [v if v is not None else 0 for v in vals], width,
               label=short_metric(g), color=["tab:red", "tab:purple", "tab:brown"][i % 3])
    for j, r in enumerate(rows):
        if all(r.get(g) is None for g in gaps):
            ax.text(j, 0.5, "n/a", ha="center", va="center", fontsize=9, color="gray",
                    transform=ax.get_xaxis_transform())
    ax.axhline(0, color="black", lw=0.8)
    ax.margins(y=0.15)
    ax.set_xticks(x, [str(r["job"]) for r in rows], fontsize=8)
    ax.set_xlabel("job")
    ax.set_title("train - val at last epoch (overfitting)")
    ax.grid(axis="y", alpha=0.3)
    if gaps:
        ax.legend(fontsize=7)
    ax = axes[2]
    if curve_key:
        for r, lab in zip(rows, labels):
            pts = [(h.get("epoch", i), h[curve_key]) for i, h in enumerate(r["history"]) if curve_key in h]
            if pts:
                ax.plot(*zip(*pts), "-o", ms=3, label=lab)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(f"{curve_key} per epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no history.csv", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None,
                 rows: Sequence[dict] | None = None) -> dict[str, Path]:
    """Write report.md, report.csv and report.png for a multirun dir (into `out_dir`, default the
    sweep dir itself). Returns their paths. Failed or half-written jobs become rows, never errors."""
    sweep_dir = Path(sweep_dir)
    out = Path(out_dir) if out_dir else sweep_dir
    out.mkdir(parents=True, exist_ok=True)
    rows = list(rows) if rows is not None else collect_rows(sweep_dir)
    files = {"csv": write_csv(rows, out / REPORT_CSV)}
    png: Path | None = None
    if rows:
        png = plot_report(rows, out / REPORT_PNG)
        files["png"] = png
    (out / REPORT_MD).write_text(markdown(rows, sweep_dir, png.name if png else None))
    files["md"] = out / REPORT_MD
    return files


def failed_rows(rows: Sequence[dict]) -> list[dict]:
    """Jobs that did not complete (failed, or left 'running'/unfinished when the sweep ended)."""
    return [r for r in rows if r["status"] != "completed"]
