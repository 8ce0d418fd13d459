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

Selection is honest: the best job (and best group) is the one with the best *validation* number,
the sweep's `optimized_metric` (`<monitor>_best`, e.g. `val/f1_macro_best`, read from the job's
config.yaml), and its test number is shown beside it; test metrics never pick a winner.

Repeats: jobs whose overrides differ only in `seed` and/or `data.fold` (REPEAT_KEYS) form a group.
Per group and metric the report gives n, mean ± std and a 95% confidence interval (t distribution),
and compares every group with a baseline group (the first, or `baseline=`) by Welch's t-test,
marking differences with p < alpha (cvexp.analysis.stats). report_groups.csv holds every number;
the plot shows each repeat's point beside its group's mean and interval. Per-class test F1 and
recall (means per group) sit side by side, so the effect of class weights or a balanced sampler
on the rare classes is visible.

Hyperparameter searches (`hparams_search=...`, hydra_plugins/cvexp_optuna_sweeper): the sweeper
writes `optuna_trials.csv` (trial number, job, state COMPLETE | PRUNED | FAIL) and
`optimization_results.yaml` into the sweep directory. The report then lists the trials in order with
their state and the best value so far, and marks the best trial: the best *complete* trial by the
validation metric (a pruned trial stopped early and is never the best, as in Optuna).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cvexp.metrics import names as M
from cvexp.analysis.stats import ALPHA, CONFIDENCE, summarize, welch

REPORT_MD, REPORT_CSV, REPORT_PNG = "report.md", "report.csv", "report.png"
REPORT_GROUPS_CSV = "report_groups.csv"
OPTUNA_TRIALS_CSV, OPTUNA_RESULTS = "optuna_trials.csv", "optimization_results.yaml"  # (the Optuna sweeper's)
JOB_CONFIG = "config.yaml"  # the resolved config a job writes into its folder

# Headline metrics shown in the Markdown table and the plot, in this order, when any job has them.
HEADLINE_METRICS = (
    M.TEST_ACC, M.TEST_F1_MACRO, M.TEST_RECALL_MACRO, M.TEST_F1_WEIGHTED, M.VAL_F1_MACRO_BEST,
    M.TEST_MIOU, M.name(M.TEST, M.PIXEL_ACC), M.VAL_MIOU_BEST,
)
# Metrics from which the train-vs-val gap is computed (last epoch of history.csv).
GAP_METRICS = (M.ACC, M.LOSS, M.MIOU)
# Which validation metric selects the best job when the jobs' configs name no optimized_metric.
SELECTION_METRICS = (M.VAL_F1_MACRO_BEST, M.VAL_MIOU_BEST)
RANK_METRICS = SELECTION_METRICS  # (older name)
# Overrides whose values are repeats of one setting, not settings: their jobs form one group.
REPEAT_KEYS = ("seed", "data.fold")


# ------------------------------------------------------------------------------------ reading
def read_json_object(path: Path) -> dict:
    """A JSON file's object; {} when it is missing, unreadable or not an object."""
    try:
        obj = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return obj if isinstance(obj, dict) else {}


def recorded_overrides(job_dir: Path, status: dict) -> list[str] | None:
    """The command-line overrides a run or job was made with: Hydra's `.hydra/overrides.yaml`, else
    the copy in its status.json (`status`); None when neither has them."""
    path = Path(job_dir) / ".hydra" / "overrides.yaml"
    if path.is_file():
        try:
            from cvexp.io.yamlfile import load_yaml

            data = load_yaml(path)
            if isinstance(data, list):
                return [str(x) for x in data]
        except Exception:  # noqa: BLE001 - half-written file: fall back to status.json
            pass
    ov = status.get("overrides")
    return [str(x) for x in ov] if isinstance(ov, list) else None


def _read_job_config(job_dir: Path) -> dict:
    """What the report uses of the job's resolved config.yaml: optimized_metric, monitor_mode and
    the W&B logger settings (empty when the file is missing or unreadable)."""
    path = job_dir / JOB_CONFIG
    if not path.is_file():
        return {}
    try:
        from cvexp.io.yamlfile import load_yaml

        cfg = load_yaml(path)
    except Exception:  # noqa: BLE001 - half-written: the report goes on without it
        return {}
    if not isinstance(cfg, dict):
        return {}
    out = {}
    for k in ("optimized_metric", "monitor_mode"):
        v = cfg.get(k)
        if isinstance(v, str) and "${" not in v:
            out[k] = v
    wb = (cfg.get("logger") or {}).get("wandb") if isinstance(cfg.get("logger"), dict) else None
    if isinstance(wb, dict):
        out["wandb"] = {k: v for k, v in wb.items() if not str(k).startswith("_")}
    return out


def _read_class_order(path: Path) -> list[str]:
    """Class names in the task's order, from the job's per_class.csv (metrics.json is sorted)."""
    if not path.is_file():
        return []
    try:
        with open(path, newline="") as fh:
            return [r["class_name"] for r in csv.DictReader(fh) if r.get("class_name")]
    except (OSError, csv.Error, KeyError):
        return []


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
    status = read_json_object(job_dir / "status.json")
    metrics_path = job_dir / "metrics.json"
    metrics = read_json_object(metrics_path)
    history = _read_history(job_dir / "history.csv")
    state = status.get("status")
    if not state:
        state = "completed" if metrics else ("incomplete" if (job_dir / ".hydra").is_dir() else "unknown")
    row: dict[str, Any] = {
        "job": job_dir.name,
        "dir": str(job_dir),
        "status": state,
        "error": one_line(status.get("error")) if status.get("error") else "",
        "overrides": recorded_overrides(job_dir, status) or [],
        "metrics": {k: _as_float(v) for k, v in metrics.items()},
        "wall_time_s": _as_float(status.get("wall_time_s")),
        "epochs": None,
        "history": history,
    }
    row.update(_read_job_config(job_dir))
    row["class_order"] = _read_class_order(job_dir / "per_class.csv")
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
    """One row per job folder, in job-number order; in a search also the job's trial (`trial`,
    `trial_state`, `pruned_at_epoch`)."""
    rows = [read_job(d) for d in find_job_dirs(sweep_dir)]
    trials = read_trials(sweep_dir)
    for r in rows:
        t = trials.get(str(r["job"]))
        if t:
            r.update(trial=t["trial"], trial_state=t["state"], pruned_at_epoch=t["pruned_at_epoch"])
    return rows


def read_trials(sweep_dir: str | Path) -> dict[str, dict[str, Any]]:
    """{job: {trial, state, pruned_at_epoch}} from the Optuna sweeper's optuna_trials.csv ({} when the
    sweep was no search, or the file is unreadable)."""
    path = Path(sweep_dir) / OPTUNA_TRIALS_CSV
    if not path.is_file():
        return {}
    out = {}
    try:
        with open(path, newline="") as fh:
            for t in csv.DictReader(fh):
                if t.get("job") not in (None, "") and str(t.get("trial", "")).isdigit():
                    epoch = t.get("pruned_at_epoch") or ""
                    out[str(t["job"])] = {"trial": int(t["trial"]), "state": t.get("state") or "",
                                          "pruned_at_epoch": int(epoch) if epoch.isdigit() else None}
    except (OSError, csv.Error):
        return {}
    return out


def read_search_results(sweep_dir: str | Path) -> dict[str, Any] | None:
    """The Optuna sweeper's optimization_results.yaml (None when absent or unreadable)."""
    path = Path(sweep_dir) / OPTUNA_RESULTS
    if not path.is_file():
        return None
    try:
        from cvexp.io.yamlfile import load_yaml

        data = load_yaml(path)
    except Exception:  # noqa: BLE001 - half-written
        return None
    return data if isinstance(data, dict) else None


def is_search(rows: Sequence[dict]) -> bool:
    """Jobs of a hyperparameter search (their trials are known)."""
    return any(r.get("trial") is not None for r in rows)


def _can_be_best(row: dict) -> bool:
    """In a search only complete trials count (a pruned one stopped early; Optuna's best_trial alike)."""
    return row.get("trial") is None or row.get("trial_state") in ("COMPLETE", "")


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


def _present(rows: Sequence[dict]) -> set[str]:
    return {k for r in rows for k, v in r["metrics"].items() if v is not None}


def selection_metric(rows: Sequence[dict]) -> str | None:
    """The validation metric that picks the best job: the jobs' `optimized_metric` (most common
    first) when their metrics.json has it, else the first of SELECTION_METRICS present, else any
    `val/*_best`. Never a test metric: None when no validation number exists."""
    present = _present(rows)
    declared: dict[str, int] = {}
    for r in rows:
        m = r.get("optimized_metric")
        if m:
            declared[m] = declared.get(m, 0) + 1
    for m in sorted(declared, key=lambda k: -declared[k]):
        if m in present and m.startswith(f"{M.VAL}/"):
            return m
    found = next((m for m in SELECTION_METRICS if m in present), None)
    if found:
        return found
    return next(iter(sorted(m for m in present if m.startswith(f"{M.VAL}/") and m.endswith("_best"))), None)


rank_metric = selection_metric


def selection_higher_is_better(rows: Sequence[dict]) -> bool:
    modes = [r.get("monitor_mode") for r in rows if r.get("monitor_mode")]
    return not modes or max(set(modes), key=modes.count) != "min"


def counterpart_test_metric(metric: str | None, rows: Sequence[dict]) -> str | None:
    """`val/f1_macro_best` -> `test/f1_macro` when the jobs have it."""
    if not metric or not metric.startswith(f"{M.VAL}/"):
        return None
    base = metric.split("/", 1)[1]
    base = base[: -len("_best")] if base.endswith("_best") else base
    cand = f"{M.TEST}/{base}"
    return cand if cand in _present(rows) else None


def best_row(rows: Sequence[dict]) -> dict | None:
    """The completed job with the best validation number (selection_metric), or None."""
    metric = selection_metric(rows)
    ranked = [r for r in rows if metric and r["metrics"].get(metric) is not None and _can_be_best(r)]
    if not ranked:
        return None
    pick = max if selection_higher_is_better(rows) else min
    return pick(ranked, key=lambda r: r["metrics"][metric])


# ------------------------------------------------------------------------------------ groups
def _override_dict(row: dict) -> dict[str, str]:
    return {override_key(o): override_value(o) for o in row["overrides"]}


def varying_repeat_keys(rows: Sequence[dict], repeat_keys: Sequence[str] = REPEAT_KEYS) -> list[str]:
    varying, _ = swept_keys(rows)
    return [k for k in varying if k in repeat_keys] if len(rows) > 1 else []


def group_rows(rows: Sequence[dict], repeat_keys: Sequence[str] = REPEAT_KEYS) -> list[dict]:
    """Jobs whose overrides are equal but for `repeat_keys` (seed, data.fold), in order of their
    first job: [{label, overrides, rows}]. The label names the other swept values, e.g.
    `aug=strong`; "all jobs" when only repeat keys vary."""
    varying, _ = swept_keys(rows)
    label_keys = [k for k in varying if k not in repeat_keys] if len(rows) > 1 else []
    groups: dict[tuple, dict] = {}
    for r in rows:
        ov = _override_dict(r)
        ident = tuple(sorted((k, v) for k, v in ov.items() if k not in repeat_keys))
        g = groups.get(ident)
        if g is None:
            shown = {k: ov.get(k, "-") for k in label_keys}
            label = " ".join(f"{k}={short_value(v)}" for k, v in shown.items()) or "all jobs"
            if r.get("trial") is not None:  # a search: every trial has its own values
                label = f"trial {r['trial']}"
            g = groups[ident] = {"label": label, "overrides": shown, "rows": []}
        g["rows"].append(r)
    return list(groups.values())


def has_repeats(groups: Sequence[dict]) -> bool:
    return any(len(g["rows"]) > 1 for g in groups)


def group_values(group: dict, metric: str) -> list[float]:
    """The metric of every completed job of the group (one value per seed/fold)."""
    return [r["metrics"][metric] for r in group["rows"]
            if r["status"] == "completed" and r["metrics"].get(metric) is not None]


def find_baseline(groups: Sequence[dict], baseline: Any = None) -> tuple[int, str]:
    """(index of the baseline group, a note when `baseline` matched nothing). `baseline`: None (the
    first group), `key=value ...` pairs (`aug=none`, also a {key: value} mapping), a group label,
    or a job number."""
    if baseline is None or baseline == "" or not groups:
        return 0, ""
    if isinstance(baseline, dict) or hasattr(baseline, "items"):
        want = {override_key(str(k)): str(v) for k, v in baseline.items()}
    elif isinstance(baseline, str) and "=" in baseline:
        want = {override_key(p): override_value(p) for p in baseline.replace(",", " ").split() if "=" in p}
    else:
        want = None
    for i, g in enumerate(groups):
        if want is not None:
            ov = _override_dict(g["rows"][0])
            if all(ov.get(k) == v for k, v in want.items()):
                return i, ""
        elif str(baseline) == g["label"] or any(str(baseline) == str(r["job"]) for r in g["rows"]):
            return i, ""
    return 0, (f"baseline {baseline!r} matches no group (groups: "
               f"{', '.join(g['label'] for g in groups)}); the first group is the baseline")


def stats_metrics(rows: Sequence[dict]) -> list[str]:
    """Metrics summarised per group: the selection metric, then the headline test metrics."""
    sel = selection_metric(rows)
    return ([sel] if sel else []) + [m for m in headline_metrics(rows) if m != sel]


def per_class_metrics(rows: Sequence[dict]) -> dict[str, list[str]]:
    """{`test/f1`: [class, ...], `test/recall`: [...]} from the jobs' per-class metrics, classes in
    the task's order (the jobs' per_class.csv), else as the jobs list them."""
    out: dict[str, list[str]] = {}
    for r in rows:
        for k in r["metrics"]:
            parts = M.split_per_class(k)
            if parts and parts[1] not in out.setdefault(parts[0], []):
                out[parts[0]].append(parts[1])
    order = next((r["class_order"] for r in rows if r.get("class_order")), [])
    rank = {c: i for i, c in enumerate(order)}
    return {k: sorted(cs, key=lambda c: (rank.get(c, len(rank)), cs.index(c))) for k, cs in out.items()}


def group_stats(groups: Sequence[dict], metrics: Sequence[str], baseline: int = 0, alpha: float = ALPHA,
                confidence: float = CONFIDENCE) -> list[dict]:
    """One row per (group, metric): n, mean, std, ci_low/ci_high (t interval), and against the
    baseline group: diff (mean - baseline mean), Welch's t, df, p and `differs` (p < alpha)."""
    out = []
    for m in metrics:
        base = group_values(groups[baseline], m) if groups else []
        for i, g in enumerate(groups):
            vals = group_values(g, m)
            s = summarize(vals, confidence)
            row = {"group": g["label"], "metric": m, "baseline": i == baseline, **s,
                   "diff": None, "t": None, "df": None, "p": None, "differs": None,
                   "jobs": " ".join(str(r["job"]) for r in g["rows"]), "values": vals}
            if i != baseline and s["n"] and base:
                w = welch(base, vals)
                row.update(w)
                row["differs"] = (w["p"] < alpha) if w["p"] is not None else None
            out.append(row)
    return out


GROUP_CSV_COLUMNS = ("group", "metric", "n", "mean", "std", "ci_low", "ci_high", "baseline", "diff", "t",
                     "df", "p", "differs", "jobs", "values")


def write_groups_csv(stats: Sequence[dict], path: str | Path) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=GROUP_CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in stats:
            d = {k: ("" if r.get(k) is None else r[k]) for k in GROUP_CSV_COLUMNS}
            d["values"] = " ".join(repr(v) for v in r["values"])
            w.writerow(d)
    return Path(path)


def job_label(row: dict, keys: Sequence[str]) -> str:
    """Short name of a job from its swept values: `aug=strong model=resnet18` -> `strong, resnet18`."""
    if row.get("trial") is not None:
        return f"trial {row['trial']}"
    ov = {override_key(o): override_value(o) for o in row["overrides"]}
    vals = [short_value(ov.get(k, "-")) for k in keys]
    return ", ".join(vals) if vals else f"job {row['job']}"


def short_value(v: str) -> str:
    """A sampled float as 4 significant digits for tables (`0.0030405325392865654` -> `0.00304`);
    anything else as it is (report.csv keeps the full values)."""
    if not isinstance(v, str) or len(v) <= 8 or re.fullmatch(r"[-+]?\d+", v.strip()):
        return v
    if not re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)(e[-+]?\d+)?", v.strip(), re.I):
        return v
    return f"{float(v):.4g}"


# ------------------------------------------------------------------------------------ writing
def table_rows(rows: Sequence[dict]) -> tuple[list[str], list[dict[str, Any]]]:
    """Flat rows for report.csv: job, overrides, group, metrics, final train/val, gaps, epochs, time,
    status."""
    ov_cols = override_columns(rows)
    metric_cols = headline_metrics(rows) + other_metrics(rows)
    group_of = {id(r): g["label"] for g in group_rows(rows) for r in g["rows"]}
    cols = (["job"] + ov_cols + ["group"] + metric_cols + final_columns(rows) + gap_columns(rows)
            + ["epochs", "wall_time_s", "status", "error", "dir"])
    flat = []
    for r in rows:
        ov = _override_dict(r)
        d: dict[str, Any] = {"job": r["job"]}
        d.update({k: ov.get(k, "") for k in ov_cols})
        d["group"] = group_of.get(id(r), "")
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


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def _md_cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def short_metric(name: str) -> str:
    return {"gap/acc": "gap acc (train-val)", "gap/loss": "gap loss (val-train)",
            "gap/miou": "gap miou (train-val)"}.get(name, name)


def _selection_lines(rows: Sequence[dict], varying: Sequence[str], groups: Sequence[dict]) -> list[str]:
    sel = selection_metric(rows)
    if not sel:
        if _present(rows):
            return ["No validation metric (`val/*_best`) in the jobs' metrics.json, so no job is named "
                    "best: test metrics are for reporting, not for choosing.", ""]
        return []
    test_m = counterpart_test_metric(sel, rows)
    lines = []
    best = best_row(rows)
    if best is not None:
        beside = f"; {test_m} = {_fmt(best['metrics'].get(test_m))}" if test_m else ""
        ov = _override_dict(best)
        desc = " ".join(f"{k}={short_value(ov.get(k, '-'))}" for k in varying)
        lines.append(f"Best by `{sel}` (validation; the sweep's optimized_metric): job {best['job']}"
                     + (f" ({desc})" if desc else "") + f" = {best['metrics'][sel]:.4f}{beside}")
    if has_repeats(groups) and len(groups) > 1:
        summaries = [(g, summarize(group_values(g, sel))) for g in groups]
        summaries = [(g, s) for g, s in summaries if s["mean"] is not None]
        if summaries:
            pick = max if selection_higher_is_better(rows) else min
            g, s = pick(summaries, key=lambda gs: gs[1]["mean"])
            beside = ""
            if test_m:
                t = summarize(group_values(g, test_m))
                beside = f"; {test_m} = {_mean_std(t)}"
            lines.append(f"Best group by mean `{sel}`: **{g['label']}** = {_mean_std(s)} (n={s['n']}){beside}")
    return lines + [""] if lines else []


def best_so_far(rows: Sequence[dict]) -> dict[int, float | None]:
    """{id(row): the best selection-metric value of the complete trials up to this one}, rows in
    trial order (a search's running best)."""
    metric = selection_metric(rows)
    pick = max if selection_higher_is_better(rows) else min
    best, out = None, {}
    for r in sorted(rows, key=lambda r: (r.get("trial") is None, r.get("trial") or 0, _job_number(Path(str(r["job"]))))):
        v = r["metrics"].get(metric) if metric else None
        if v is not None and _can_be_best(r):
            best = v if best is None else pick(best, v)
        out[id(r)] = best
    return out


def _search_lines(rows: Sequence[dict], sweep_dir: str | Path) -> list[str]:
    """What the Optuna search was and how its trials ended."""
    res = read_search_results(sweep_dir) or {}
    states = [r.get("trial_state") or "?" for r in rows if r.get("trial") is not None]
    counts = ", ".join(f"{states.count(s)} {s.lower()}" for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")
                       if states.count(s))
    what = (f"Optuna search: study `{res.get('study_name', '?')}`, {res.get('direction', '?')}, "
            f"{len(states)} trial(s) ({counts}); the rows below are the trials in order")
    lines = [what + (f"; best trial {res['best_trial']} (job {res.get('best_job')}) = "
                     f"{_fmt(res.get('best_value'))}" if res.get("best_trial") is not None else "") + ".  ",
             f"Study: `{res.get('storage', '?')}`; trials: `{OPTUNA_TRIALS_CSV}`; best parameters: `{OPTUNA_RESULTS}`. "
             "Pruned trials stopped early and are never the best.", ""]
    return lines


def _mean_std(s: dict) -> str:
    if s["mean"] is None:
        return "-"
    return f"{s['mean']:.4f} ± {s['std']:.4f}" if s["std"] is not None else f"{s['mean']:.4f}"


def _groups_section(rows: Sequence[dict], groups: Sequence[dict], stats: Sequence[dict], base: int,
                    note: str, alpha: float) -> list[str]:
    keys = varying_repeat_keys(rows) or ["seed"]
    compare = (f" Each group is compared with the baseline **{groups[base]['label']}** by Welch's t-test "
               f"(unequal variances, two-sided); **yes** marks p < {alpha:g}, a difference larger than the "
               "seed/fold noise. No correction for multiple comparisons." if len(groups) > 1 else "")
    lines = ["## Groups: repeated seeds and folds", "",
             "Jobs that differ only in " + " and/or ".join(f"`{k}`" for k in keys) + " form a group. Per "
             "group: n jobs, mean ± sample std, and the 95% confidence interval of the mean "
             f"(t distribution, n-1 degrees of freedom).{compare} Every number: `report_groups.csv`."]
    if note:
        lines += ["", f"Note: {note}"]
    several = len(groups) > 1
    for m in dict.fromkeys(r["metric"] for r in stats):
        lines += ["", f"### {m}", ""]
        lines += (["| group | n | mean ± std | 95% CI | Δ vs baseline | p (Welch) | differs |",
                   "|---|---:|---:|---:|---:|---:|---|"] if several else
                  ["| group | n | mean ± std | 95% CI |", "|---|---:|---:|---:|"])
        for r in (r for r in stats if r["metric"] == m):
            name = f"{r['group']} (baseline)" if r["baseline"] and several else r["group"]
            ci = f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]" if r["ci_low"] is not None else "-"
            diff = f"{r['diff']:+.4f}" if r["diff"] is not None else "-"
            if r["baseline"]:
                differs = ""
            elif r["p"] is None:
                differs = "n/a (n < 2 or no spread)" if r["n"] else "n/a (no values)"
            else:
                differs = "**yes**" if r["differs"] else "no"
            cells = [name, r["n"], _mean_std(r), ci] + ([diff, _fmt_p(r["p"]), differs] if several else [])
            lines.append("| " + " | ".join(_md_cell(str(c)) for c in cells) + " |")
    return lines


PER_CLASS_MAX_COLUMNS = 12


def _per_class_section(rows: Sequence[dict], groups: Sequence[dict]) -> list[str]:
    kinds = per_class_metrics(rows)
    shown = [k for k in (f"{M.TEST}/{M.F1}", f"{M.TEST}/{M.RECALL}") if k in kinds] or list(kinds)[:2]
    if not shown:
        return []
    classes = list(dict.fromkeys(c for k in shown for c in kinds[k]))
    cols = [g for g in groups if any(group_values(g, f"{shown[0]}/{c}") for c in classes)]
    if not cols:
        return []
    more = len(cols) - PER_CLASS_MAX_COLUMNS
    cols = cols[:PER_CLASS_MAX_COLUMNS]
    what = " / ".join(k.split("/", 1)[1] for k in shown)
    lines = ["", f"## Per class (test): {what}", "",
             f"Each cell: {what}" + (", means over the group's jobs" if has_repeats(groups) else "")
             + ". Class weights (`task.class_weights=balanced`) and a balanced sampler (`data.sampler=balanced`) "
               "show up here: recall of the rare classes." + (f" ({more} more groups in report_groups.csv.)"
                                                               if more > 0 else ""), "",
             "| class | " + " | ".join(_md_cell(g["label"]) for g in cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for c in classes:
        cells = []
        for g in cols:
            vals = [summarize(group_values(g, f"{k}/{c}"))["mean"] for k in shown]
            cells.append(" / ".join(_fmt(v, 3) for v in vals))
        lines.append(f"| {_md_cell(c)} | " + " | ".join(cells) + " |")
    return lines


def markdown(rows: Sequence[dict], sweep_dir: str | Path, png_name: str | None = REPORT_PNG,
             baseline: Any = None, alpha: float = ALPHA) -> str:
    varying, common = swept_keys(rows)
    head = headline_metrics(rows)
    gaps = gap_columns(rows)
    groups = group_rows(rows)
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
    search = is_search(rows)
    if search:
        lines += _search_lines(rows, sweep_dir)
    lines += _selection_lines(rows, varying, groups)
    best = best_row(rows)
    sel = selection_metric(rows)
    mark_best = best is not None and (search or sum(r["metrics"].get(sel) is not None for r in rows) > 1)
    trial_cols = ["trial", "state"] if search else []
    so_far = ([f"best {sel} so far"] if search and sel else [])
    cols = ["job"] + trial_cols + varying + head + so_far + gaps + ["epochs", "wall time (s)", "status"]
    lines.append("| " + " | ".join(short_metric(c) for c in cols) + " |")
    lines.append("|" + "|".join("---" if c in ["job", *trial_cols, *varying, "status"] else "---:" for c in cols)
                 + "|")
    running = best_so_far(rows) if so_far else {}
    for r in rows:
        ov = _override_dict(r)
        job = f"{r['job']} (best)" if mark_best and r is best else r["job"]
        cells = [job]
        if search:
            state = r.get("trial_state") or "-"
            if r.get("pruned_at_epoch") is not None:
                state += f" (epoch {r['pruned_at_epoch']})"
            cells += [f"**{r['trial']}**" if mark_best and r is best else _fmt(r.get("trial")), state]
        cells += [short_value(ov.get(k, "-")) for k in varying]
        cells += [_fmt(r["metrics"].get(m)) for m in head]
        cells += [_fmt(running.get(id(r)))] if so_far else []
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
    if has_repeats(groups):
        base, note = find_baseline(groups, baseline)
        lines += [""] + _groups_section(rows, groups, group_stats(groups, stats_metrics(rows), base, alpha),
                                         base, note, alpha)
    lines += _per_class_section(rows, groups)
    if png_name:
        lines += ["", f"![comparison]({png_name})"]
    lines += ["", "Full table (every override, metric and path): `report.csv`"
              + ("; per-group statistics: `report_groups.csv`." if rows else "."), ""]
    return "\n".join(lines)


def plot_groups(ax, groups: Sequence[dict], metrics: Sequence[str], baseline: int = 0) -> int:
    """Per group and metric: every job's value (one dot per seed/fold) and the mean with its 95%
    interval. Returns the number of job dots drawn."""
    import numpy as np

    x = np.arange(len(groups))
    offsets = np.linspace(-0.27, 0.27, len(metrics)) if len(metrics) > 1 else [0.0]
    drawn = 0
    for k, (off, m) in enumerate(zip(offsets, metrics)):
        color = f"C{k}"
        label = m
        for i, g in enumerate(groups):
            vals = group_values(g, m)
            if not vals:
                continue
            jitter = np.linspace(-0.05, 0.05, len(vals)) if len(vals) > 1 else [0.0]
            ax.scatter(i + off + np.asarray(jitter), vals, s=16, color=color, alpha=0.55, zorder=3, label=label)
            label = None
            drawn += len(vals)
            s = summarize(vals)
            if s["ci_low"] is not None:
                ax.errorbar(i + off + 0.09, s["mean"], yerr=[[s["mean"] - s["ci_low"]], [s["ci_high"] - s["mean"]]],
                            fmt="D", color=color, ms=5, capsize=3, zorder=4)
            else:
                ax.plot(i + off + 0.09, s["mean"], "D", color=color, ms=5, zorder=4)
    labels = [f"{g['label']}\n(baseline)" if i == baseline else g["label"] for i, g in enumerate(groups)]
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.set_title("per group: every seed/fold (dots), mean ± 95% CI (diamond)", fontsize=9)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7, loc="best")
    return drawn


def _plot_jobs(ax, rows: Sequence[dict], head: Sequence[str], labels: Sequence[str]) -> None:
    import numpy as np

    x = np.arange(len(rows))
    # a dot plot: the axis need not start at 0, so close results stay readable
    offsets = np.linspace(-0.24, 0.24, len(head)) if len(head) > 1 else [0.0]
    for off, m, marker in zip(offsets, head, "osD^v<>p"):
        vals = np.array([r["metrics"].get(m) if r["metrics"].get(m) is not None else np.nan for r in rows])
        ax.plot(x + off, vals, marker, ms=6, label=m, alpha=0.9)
    for j, r in enumerate(rows):
        if r["status"] != "completed":
            ax.text(j, 0.5, r["status"].upper(), ha="center", va="center", rotation=90, color="crimson",
                    fontsize=10, fontweight="bold", transform=ax.get_xaxis_transform())
    ax.set_xticks(x, labels, rotation=30, ha="right", fontsize=8)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_title("metrics per job (higher is better)")
    ax.grid(alpha=0.3)
    if head:
        ax.legend(fontsize=7, loc="best", ncols=2)


def _fit_ylim(ax, values: Sequence[float]) -> None:
    if values:
        lo, hi = min(values), max(values)
        pad = max(0.02, 0.15 * (hi - lo))
        ax.set_ylim(max(0.0, lo - pad), min(1.0, hi + pad) + 0.01)


def plot_report(rows: Sequence[dict], path: str | Path, baseline: Any = None) -> Path:
    """Three panels: metrics per job (per group, every repeat's dot and the mean ± CI, when jobs
    repeat seeds/folds), train-vs-val gap per job, val curves per epoch."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    varying, _ = swept_keys(rows)
    labels = [f"{r['job']}: {job_label(r, varying)}" for r in rows]
    head = headline_metrics(rows)
    groups = group_rows(rows)
    grouped = has_repeats(groups)
    gaps = [g for g in gap_columns(rows) if g != "gap/loss"] or gap_columns(rows)
    curve_key = next((k for k in (M.VAL_F1_MACRO, M.VAL_MIOU, M.VAL_ACC)
                      if any(k in h for r in rows for h in r["history"])), None)
    n = max(len(rows), 1)
    fig, axes = plt.subplots(1, 3, figsize=(max(13, 3 + 1.3 * n * 1.5), 4.4),
                             gridspec_kw={"width_ratios": [2.2, 1.2, 1.6]})
    ax = axes[0]
    if grouped:
        shown_metrics = stats_metrics(rows)[:4]
        plot_groups(ax, groups, shown_metrics, find_baseline(groups, baseline)[0])
        shown = [v for g in groups for m in shown_metrics for v in group_values(g, m)]
        cis = [summarize(group_values(g, m)) for g in groups for m in shown_metrics]
        shown += [s[k] for s in cis for k in ("ci_low", "ci_high") if s[k] is not None]
    else:
        _plot_jobs(ax, rows, head, labels)
        shown = [r["metrics"][m] for r in rows for m in head if r["metrics"].get(m) is not None]
    _fit_ylim(ax, shown)
    x = np.arange(len(rows))
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
        if len(rows) <= 12:
            ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no history.csv", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def write_report(sweep_dir: str | Path, out_dir: str | Path | None = None,
                 rows: Sequence[dict] | None = None, baseline: Any = None,
                 alpha: float = ALPHA) -> dict[str, Path]:
    """Write report.md, report.csv, report_groups.csv and report.png for a multirun dir (into
    `out_dir`, default the sweep dir itself). Returns their paths. Failed or half-written jobs
    become rows, never errors. `baseline`: the group others are tested against (find_baseline)."""
    sweep_dir = Path(sweep_dir)
    out = Path(out_dir) if out_dir else sweep_dir
    out.mkdir(parents=True, exist_ok=True)
    rows = list(rows) if rows is not None else collect_rows(sweep_dir)
    files = {"csv": write_csv(rows, out / REPORT_CSV)}
    png: Path | None = None
    if rows:
        groups = group_rows(rows)
        base, _ = find_baseline(groups, baseline)
        metrics = stats_metrics(rows) + [f"{k}/{c}" for k, cs in per_class_metrics(rows).items() for c in cs]
        files["groups"] = write_groups_csv(group_stats(groups, metrics, base, alpha), out / REPORT_GROUPS_CSV)
        png = plot_report(rows, out / REPORT_PNG, baseline)
        files["png"] = png
    (out / REPORT_MD).write_text(markdown(rows, sweep_dir, png.name if png else None, baseline, alpha))
    files["md"] = out / REPORT_MD
    return files


def failed_rows(rows: Sequence[dict]) -> list[dict]:
    """Jobs that did not complete (failed, or left 'running'/unfinished when the sweep ended)."""
    return [r for r in rows if r["status"] != "completed"]


# ------------------------------------------------------------------------------------ W&B
def wandb_settings(rows: Sequence[dict]) -> dict | None:
    """The W&B logger settings the sweep's jobs ran with (their config.yaml), or None when no job
    logged to W&B."""
    for r in rows:
        wb = r.get("wandb")
        if isinstance(wb, dict) and wb.get("project"):
            return wb
    return None


def log_to_wandb(sweep_dir: str | Path, files: dict[str, Path], settings: dict,
                 rows: Sequence[dict] | None = None) -> str:
    """One W&B run (job_type `sweep_report`, in the sweep's group, files under `<sweep dir>/wandb`)
    holding the report image and the job and group tables. Returns its run id."""
    import wandb

    sweep_dir = Path(sweep_dir)
    if wandb.run is not None:  # a job's run left open: it is not this one
        wandb.finish()
    mode = "offline" if settings.get("offline") else (settings.get("mode") or "offline")
    run = wandb.init(project=settings.get("project"), entity=settings.get("entity"), group=settings.get("group"),
                     job_type="sweep_report", name=f"report {sweep_dir.name}", dir=str(sweep_dir), mode=mode,
                     tags=list(settings.get("tags") or []) or None, config={"sweep_dir": str(sweep_dir)})
    try:
        payload: dict[str, Any] = {}
        if files.get("png") and Path(files["png"]).is_file():
            payload["sweep/report"] = wandb.Image(str(files["png"]))
        for key, name in (("csv", "sweep/jobs"), ("groups", "sweep/groups")):
            if files.get(key) and Path(files[key]).is_file():
                with open(files[key], newline="") as fh:
                    table = list(csv.reader(fh))
                if table:
                    payload[name] = wandb.Table(columns=table[0], data=table[1:])
        if payload:
            run.log(payload)
        best = best_row(rows) if rows else None
        if best is not None:
            run.summary["best_job"] = str(best["job"])
            run.summary[f"best/{selection_metric(rows)}"] = best["metrics"][selection_metric(rows)]
        return run.id
    finally:
        run.finish()
