"""`python -m cvexp.cross_eval ckpts=[A.ckpt,B.ckpt] datasets=[idd,cityscapes] space=cityscapes`
`    "roots={idd: /data/IDD_Segmentation, cityscapes: /data/cityscapes}"`

Evaluates every checkpoint on every dataset in one shared label space and writes a
train-on x test-on table (cross_dataset.csv / .md, the task's headline: mIoU or accuracy) and a
per-class comparison plot per checkpoint (IoU, or F1 for classification). Each evaluation keeps its full eval outputs in
`<run dir>/<checkpoint label>/<dataset>/`. Each dataset reads its own root: `roots` maps data option
names to folders (passed as that evaluation's `paths.data_dir`); the others read `paths.data_dir`.
After training, `cross_eval.roots` in the train config does the same.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from cvexp.metrics import names as M
from cvexp.engine import entry
from cvexp.engine.config import config_dir
from cvexp.errors import ConfigError
from cvexp.tasks import task_class

log = logging.getLogger("cvexp.cross_eval")


@contextmanager
def _hydra_ready():
    """compose() needs an initialised Hydra: the running app's, or a temporary one."""
    if GlobalHydra.instance().is_initialized():
        yield
        return
    with initialize_config_dir(version_base="1.3", config_dir=config_dir()):
        yield


def checkpoint_label(ckpt: dict, path: str) -> str:
    choices = ckpt.get("cvexp", {}).get("choices") or {}
    trained_on = choices.get("data") or Path(path).parent.parent.name
    model = choices.get("model", "")
    return f"{model}@{trained_on}" if model else str(trained_on)


def unique_label(label: str, taken: Sequence[str]) -> str:
    """`label`, or `label-2`, `label-3`, ... when an earlier checkpoint has it (two runs of the same
    model on the same data): each checkpoint keeps its own folder, rows and curves."""
    out, n = label, 2
    while out in taken:
        out, n = f"{label}-{n}", n + 1
    return out


def dataset_roots(parent: DictConfig, datasets: Sequence[str], roots: Mapping | None = None) -> dict[str, str]:
    """Each dataset's root: `roots[name]` (given, else the config's `roots` or `cross_eval.roots`),
    else `paths.data_dir`. A name in `roots` that is not evaluated is refused (a typo would
    otherwise send that dataset to paths.data_dir silently)."""
    if roots is None:
        roots = parent.get("roots") or (parent.get("cross_eval") or {}).get("roots") or {}
    roots = {str(k): str(v) for k, v in dict(roots).items() if v is not None}
    unknown = [k for k in roots if k not in datasets]
    if unknown:
        raise ConfigError(f"roots names {', '.join(unknown)}, which is not among the datasets "
                          f"[{', '.join(datasets)}]; key roots by the data option names")
    return {name: roots.get(name, str(parent.paths.data_dir)) for name in datasets}


def _override_value(value: str) -> str:
    """A path as a Hydra override value (quoted when it holds characters the grammar reserves)."""
    if any(c in value for c in " ,[]{}()='\""):
        return "'" + value.replace("'", "\\'") + "'"
    return value


def evaluate_grid(ckpt_paths: Sequence[str], datasets: Sequence[str], space: str | None, out: Path,
                  parent: DictConfig, overrides: Sequence[str] = (), roots: Mapping | None = None) -> list[dict]:
    """One eval run per (checkpoint, dataset) under `out`; returns the table rows. `overrides`
    go to every evaluation's config (e.g. `data.batch_size=2`); `roots` gives datasets their own
    folders (see `dataset_roots`)."""
    from cvexp.io.checkpoint import load_run_checkpoint
    from cvexp.eval import evaluate

    if not ckpt_paths or not datasets:
        raise ConfigError("cross evaluation needs ckpts=[...] and datasets=[...] (data config names, e.g. demo_idd)")
    data_dirs = dataset_roots(parent, datasets, roots)
    out.mkdir(parents=True, exist_ok=True)
    rows, per_class = [], {}
    labels: list[str] = []
    for path in ckpt_paths:
        ckpt = load_run_checkpoint(path)
        base = checkpoint_label(ckpt, path)
        label = unique_label(base, labels)
        labels.append(label)
        task = task_class(ckpt["cvexp"].get("task", "classification"))
        headline = M.name(M.TEST, task.headline)
        del ckpt
        for name in datasets:
            job_overrides = [f"data={name}", f"ckpt_path={path}", "logger=none",
                             f"paths.cache_dir={parent.paths.cache_dir}",
                             f"paths.data_dir={_override_value(data_dirs[name])}",
                             *([f"space={space}"] if space else []), *overrides]
            with _hydra_ready():
                try:
                    cfg = compose(config_name="eval", overrides=job_overrides)
                except Exception as e:  # noqa: BLE001 - an unknown data option, most likely
                    raise ConfigError(f"cannot compose the eval config for data={name}: "
                                      f"{str(e).splitlines()[0]}") from None
            job_dir = out / _safe(label) / name
            with open_dict(cfg):
                cfg.paths.output_dir = str(job_dir)
                cfg.trainer = parent.trainer
                cfg.trainer.strategy, cfg.trainer.devices, cfg.trainer.num_nodes = "auto", 1, 1  # one process
            log.info("evaluating %s on %s -> %s", label, name, job_dir)
            metrics = evaluate(cfg)
            rows.append({"checkpoint": label, "trained_on": base.split("@")[-1], "evaluated_on": name,
                         "space": space or "", "metric": headline, "value": metrics.get(headline),
                         "run_dir": str(job_dir)})
            per_class[(label, name)] = _read_per_class(job_dir / "per_class.csv", task.per_class_metric)
    write_table(rows, out)
    _plot_per_class(per_class, out, task.per_class_metric)
    return rows


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in s)


def _read_per_class(path: Path, metric: str) -> dict[str, float]:
    """class name -> `metric` from an evaluation's per_class.csv (empty when it has none)."""
    if not path.is_file():
        return {}
    with open(path, newline="") as fh:
        return {r.get("class_name") or r.get("class"): float(r[metric]) for r in csv.DictReader(fh)
                if r.get(metric) not in (None, "")}


def write_table(rows: list[dict], out: Path) -> None:
    with open(out / "cross_dataset.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    ckpts = list(dict.fromkeys(r["checkpoint"] for r in rows))
    sets = list(dict.fromkeys(r["evaluated_on"] for r in rows))
    value = {(r["checkpoint"], r["evaluated_on"]): r["value"] for r in rows}
    metric = rows[0]["metric"]
    lines = [f"# Cross-dataset evaluation ({metric}" + (f", label space {rows[0]['space']})" if rows[0]["space"] else ")"),
             "", "rows: trained on (model@data); columns: evaluated on", "",
             "| trained on \\ evaluated on | " + " | ".join(sets) + " |",
             "|---|" + "---:|" * len(sets)]
    for c in ckpts:
        cells = []
        for s in sets:
            v = value.get((c, s))
            cells.append("n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    (out / "cross_dataset.md").write_text("\n".join(lines) + "\n")


def _plot_per_class(per_class: dict, out: Path, metric: str) -> None:
    """One grouped bar plot of `metric` per class for each checkpoint, a bar per dataset."""
    from cvexp.analysis.seg_visualize import plot_per_class_comparison

    for label in dict.fromkeys(k[0] for k in per_class):
        series = {name: vals for (lab, name), vals in per_class.items() if lab == label and vals}
        if not series:
            continue
        classes = list(next(iter(series.values())))
        table = {name: [vals.get(c, math.nan) for c in classes] for name, vals in series.items()}
        nice = "IoU" if metric == "iou" else metric.upper()
        plot_per_class_comparison(table, classes, out / f"per_class_{metric}_{_safe(label)}.png",
                                  title=f"Per-class {nice} of {label} by evaluation dataset", ylabel=nice)


def _as_list(value, key: str) -> list[str]:
    """A list as given, or one path/name given without brackets (never its characters)."""
    if isinstance(value, str):
        return [value]
    if value is None:
        return []
    try:
        return [str(v) for v in value]
    except TypeError:
        raise ConfigError(f"{key} must be a list: {key}=[A,B]") from None


def cross_eval(cfg: DictConfig) -> dict[str, float]:
    rows = evaluate_grid(_as_list(cfg.ckpts, "ckpts"), _as_list(cfg.datasets, "datasets"), cfg.get("space"),
                         entry.output_dir(cfg), cfg,
                         overrides=list(cfg.get("overrides") or []))
    print((entry.output_dir(cfg) / "cross_dataset.md").read_text())
    return {f"{r['checkpoint']}->{r['evaluated_on']}": r["value"] for r in rows}


main = entry.entry_point(cross_eval, "cross_eval")


if __name__ == "__main__":
    main()
