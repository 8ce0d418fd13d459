"""A study's report: `report.md` and `report.html` from the files its steps wrote.

Every number comes from a file in the study directory (a run's metrics.json, per_class.csv,
analysis.json, a sweep's report_groups.csv, theory.json, cross_dataset.csv, the study's own
study.json), and each table or figure names its source file(s). Nothing is typed in: change a
metrics.json and the report changes with it. The report is made of sections from the study
config (`study.report.sections`), each a list of blocks:

| kind        | reads                                        | keys |
|-------------|----------------------------------------------|------|
| `text`      | -                                            | text |
| `theory`    | `<step>/theory.json`                         | step, tables (ids; default all) |
| `groups`    | `<sweep>/report_groups.csv` (mean ± std, 95% CI, Welch's t-test vs the baseline group) | step, metrics, significance |
| `per_class` | `<sweep>/report_groups.csv` (per-class means) | step, metric (test/f1, test/recall) |
| `metrics`   | `metrics.json` of each target                | steps, keys |
| `images`    | PNGs of each target                          | steps, files (names or globs) |
| `csv`       | any CSV of a target                          | step, file, columns, max_rows, sort, basename |
| `json`      | any JSON of a target                         | step, file, keys |
| `matrix`    | a long CSV pivoted (cross_dataset.csv)       | step, file, rows, columns, value |

The kinds are the rows of `BLOCK_KEYS` (one `_<kind>` method each); a block of another kind is
refused. A file a block names (`file:`, `files:`) is a name inside the step's folder: an absolute
path or `..` is refused when the spec is checked, and a file that resolves (symlinks followed)
outside the step's folder is never read (its block becomes a note).

A target is a step (`q3_finetune`), or jobs of a multirun step selected by their overrides
(`q2_models[seed=0]`: one per model). Blocks of a step that failed or did not run become a note
with its error. The appendix holds what reproducing the study needs: versions, the machine, every
command, seeds, config hashes and wall times.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import math
import os
import platform
import re
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from cvexp.analysis import sweep_report
from cvexp.io.atomic import atomic_write_bytes
from cvexp.engine import rundir
from cvexp.errors import ConfigError
from cvexp.studies import LOG_DIR, REPORT_HTML, REPORT_MD, STUDY_LEDGER, reuse
from cvexp.studies.document import Bullets, Code, Document, Gallery, Heading, Image, Note, Para, Table, png_size
from cvexp.studies.spec import Study

BLOCK_KEYS = {  # besides kind, title, text, digits and (but for text) step / steps
    "text": set(),
    "theory": {"tables"},
    "groups": {"metrics", "significance"},
    "per_class": {"metric", "groups"},
    "metrics": {"keys", "labels"},
    "images": {"files"},
    "csv": {"file", "columns", "max_rows", "sort", "descending", "basename"},
    "json": {"file", "keys", "labels"},
    "matrix": {"file", "rows", "columns", "value"},
}
COMMON_KEYS = {"kind", "title", "text", "digits"}
TARGET_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)(?:\[([^\]]*)\])?$")
PACKAGES = ("cvexp", "torch", "torchvision", "pytorch-lightning", "torchmetrics", "hydra-core", "omegaconf", "timm",
            "segmentation-models-pytorch", "albumentations", "opencv-python-headless", "numpy", "scipy",
            "scikit-learn", "matplotlib")


# ------------------------------------------------------------------------------------ the spec
def _targets(block: dict) -> list[str]:
    t = block.get("steps", block.get("step"))
    return [t] if isinstance(t, str) else [str(x) for x in (t or [])]


def parse_target(target: str) -> tuple[str, dict[str, str] | None]:
    m = TARGET_RE.match(target.strip())
    if not m:
        raise ConfigError(f"{target!r} is not a report target; write STEP or STEP[key=value ...]")
    from cvexp.studies.spec import parse_filters

    return m.group(1), (parse_filters(m.group(2)) if m.group(2) is not None else None)


def check_report(study: Study) -> None:
    """The report spec is checked before any step runs: known block kinds and keys, known steps."""
    sections = (study.report or {}).get("sections") or []
    names = {s.name: s for s in study.steps}
    for i, sec in enumerate(sections):
        key = f"study.report.sections.{i}"
        if not isinstance(sec, dict) or not sec.get("title"):
            raise ConfigError(f"{key} needs a title (and blocks: [...])")
        for j, block in enumerate(sec.get("blocks") or []):
            bkey = f"{key}.blocks.{j}"
            kind = block.get("kind") if isinstance(block, dict) else None
            if kind not in BLOCK_KEYS:
                raise ConfigError(f"{bkey}.kind={kind!r} is not a block kind; use one of {', '.join(BLOCK_KEYS)}")
            unknown = set(block) - BLOCK_KEYS[kind] - COMMON_KEYS - ({"step", "steps"} if kind != "text" else set())
            if unknown:
                raise ConfigError(f"{bkey} ({kind}) has unknown key(s) {', '.join(sorted(unknown))}; it takes "
                                  f"{', '.join(sorted(BLOCK_KEYS[kind] | COMMON_KEYS - {'kind'}))}"
                                  + (", step/steps" if kind != "text" else ""))
            targets = _targets(block)
            if kind != "text" and not targets:
                raise ConfigError(f"{bkey} ({kind}) needs step: (or steps: [...])")
            for t in targets:
                name, filters = parse_target(t)
                if name not in names:
                    raise ConfigError(f"{bkey}: {t!r} names no step of this study ({', '.join(names)})")
                if filters is not None and not names[name].multirun:
                    raise ConfigError(f"{bkey}: {t!r} selects jobs, but step {name} is not a multirun")
            for k in ("file",) if kind in ("csv", "json", "matrix") else ():
                if not block.get(k):
                    raise ConfigError(f"{bkey} ({kind}) needs {k}: (a file name in the step's folder)")
            for k in ("file", "files"):
                if k in block:
                    given = block[k] if k == "files" and isinstance(block[k], (list, tuple)) else [block[k]]
                    for file_name in given:
                        _check_file_name(file_name, f"{bkey}.{k}")


def _check_file_name(name: Any, key: str) -> None:
    """A file a block reads is named relative to its step's folder and stays inside it."""
    text = str(name) if isinstance(name, (str, int, float)) and not isinstance(name, bool) else ""
    parts = PurePosixPath(text.replace("\\", "/")).parts
    if not text.strip() or text.startswith(("/", "\\")) or ".." in parts or re.match(r"^[A-Za-z]:", text):
        raise ConfigError(f"{key}={name!r} is not a file inside the step's folder (no absolute path, no '..'); "
                          "name one relative to it, e.g. per_class.csv or predictions/*.png")


# ------------------------------------------------------------------------------------ reading
def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _float(v: Any) -> float | None:
    if v is None or v == "" or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def fmt(v: Any, digits: int = 4) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    f = _float(v)
    if f is None:
        return str(v)
    if math.isnan(f):
        return "nan"
    if isinstance(v, int) or (isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip())):
        return str(int(f))
    return f"{f:.{digits}f}"


def sig(v: Any) -> str:
    """A theory table cell: 4 significant digits, lists element-wise, text as it is."""
    if isinstance(v, list):
        return "[" + ", ".join(sig(x) for x in v) + "]"
    if isinstance(v, bool) or isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "0" if v == 0 else f"{v:.4g}"
    return str(v)


def _name(c: Any) -> str:
    """A column name from YAML, where an unquoted `true`/`false`/`null` (misclassified.csv's `true`
    column) arrives as a bool or None."""
    return {True: "true", False: "false", None: "null"}.get(c, str(c)) if isinstance(c, (bool, type(None))) else str(c)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) or v in ("nan", "inf", "-inf")


def file_sha(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    except OSError:
        return "-"


def run_seed(run_dir: Path) -> Any:
    cfg = run_dir / "config.yaml"
    if not cfg.is_file():
        return None
    try:
        from cvexp.io.yamlfile import load_yaml

        data = load_yaml(cfg)
    except Exception:  # noqa: BLE001 - a half-written config: no seed shown
        return None
    return data.get("seed") if isinstance(data, dict) else None


class _Missing(Exception):
    """A block cannot be drawn: the step did not finish, or a file is missing (the note says which)."""


class Builder:
    def __init__(self, study: Study, ledger: dict | None = None):
        self.study = study
        self.base = study.dir
        self.ledger = ledger if ledger is not None else sweep_report.read_json_object(study.dir / STUDY_LEDGER)
        self.records = {r.get("name"): r for r in self.ledger.get("steps", []) if isinstance(r, dict)}
        self.sources: list[Path] = []
        self.roots: list[Path] = []  # the folders of the steps the current block reads (nothing outside them)
        check_report(study)  # (also when the report is built without the entry point's check)

    # ------------------------------------------------------------------ paths and targets
    def rel(self, path: Path) -> str:
        try:
            return Path(path).resolve().relative_to(self.base.resolve()).as_posix()
        except ValueError:
            return str(path)

    def link(self, path: Path) -> str:
        r = self.rel(path)
        return f"[{r}]({r})"

    def step_state(self, name: str) -> tuple[bool, str]:
        """(finished, why not) of a step: the ledger's word, else what its folder holds."""
        rec = self.records.get(name)
        step = self.study.step(name)
        if rec is not None and rec.get("status") in ("failed", "skipped", "interrupted"):
            log = rec.get("log")
            where = f" (log: [{log}]({log}))" if log and (self.base / log).is_file() else ""
            return False, f"step {name} {rec['status']}: {rec.get('error') or 'no error recorded'}{where}"
        if not step.enabled:
            return False, f"step {name} is disabled at this scale"
        d = self.study.step_dir(step)
        if not d.is_dir() or not any(d.iterdir()):
            return False, f"step {name} has not run yet"
        ok, why = reuse.outcome(self.study, step, None)
        return ok, ("" if ok else f"step {name} has not finished ({why})")

    def dirs(self, target: str, files: Sequence[str] = ()) -> list[tuple[str, Path]]:
        """(label, folder) of a target: the step's folder, or the matching jobs of a multirun (a
        multirun named without [...] whose sweep folder holds one of `files`, e.g. the sweep's
        report.png: the sweep folder)."""
        name, filters = parse_target(target)
        ok, why = self.step_state(name)
        if not ok:
            raise _Missing(why)
        step = self.study.step(name)
        d = self.study.step_dir(step)
        self.roots.append(d)
        if not step.multirun or (filters is None and any(glob.glob(str(d / f)) for f in files)):
            return [(step.title or name, d)]
        rows = sweep_report.collect_rows(d)
        varying, _ = sweep_report.swept_keys(rows)
        out = []
        for r in rows:
            ov = {sweep_report.override_key(o): sweep_report.override_value(o) for o in r["overrides"]}
            if filters and not all(ov.get(k) == v for k, v in filters.items()):
                continue
            shown = [k for k in varying if k not in (filters or {})] or varying
            out.append((" ".join(f"{k}={ov.get(k, '-')}" for k in shown) or f"job {r['job']}", Path(r["dir"])))
        if not out:
            raise _Missing(f"no job of {name} matches {target}")
        return out

    def one_dir(self, target: str, files: Sequence[str] = ()) -> tuple[str, Path]:
        found = self.dirs(target, files)
        if len(found) != 1:
            raise _Missing(f"{target} names {len(found)} jobs; select one, e.g. {target}[seed=0]")
        return found[0]

    def need(self, path: Path) -> Path:
        real = Path(path).resolve()
        if not any(real.is_relative_to(root.resolve()) for root in self.roots):
            where = " or ".join(self.rel(r) for r in self.roots) or "no step"
            raise _Missing(f"{self.rel(path)} is outside the folder of {where} (it resolves to {real}); "
                           "a report reads only files inside its steps' folders")
        if not path.is_file():
            raise _Missing(f"{self.rel(path)} is missing")
        self.sources.append(path)
        return path

    # ------------------------------------------------------------------ the document
    def build(self) -> Document:
        study = self.study
        rep = study.report or {}
        doc = Document(str(rep.get("title") or study.title or study.name))
        self._header(doc)
        for i, sec in enumerate(rep.get("sections") or []):
            doc.add(Heading(2, str(sec["title"]), anchor=str(sec.get("id") or f"section-{i + 1}")))
            if sec.get("text"):
                doc.add(Para(str(sec["text"]).strip()))
            for block in sec.get("blocks") or []:
                doc.add(*self.block(block))
        self._appendix(doc)
        return doc

    def block(self, block: dict) -> list:
        kind = block.get("kind") if isinstance(block, dict) else None
        if kind not in BLOCK_KEYS:  # only the table's kinds: never another method of this class
            raise ConfigError(f"study.report: block kind={kind!r} is not a block kind; use one of "
                              f"{', '.join(BLOCK_KEYS)}")
        self.sources, self.roots = [], []
        out: list = []
        if block.get("title"):
            out.append(Heading(3, str(block["title"])))
        if block.get("text") and block["kind"] != "text":
            out.append(Para(str(block["text"]).strip()))
        try:
            out += getattr(self, f"_{kind}")(block)
        except _Missing as e:
            return out + [Note(str(e))]
        except Exception as e:  # noqa: BLE001 - a malformed file costs its block, never the report
            return out + [Note(f"could not read {', '.join(self.rel(s) for s in self.sources) or 'its files'}: "
                               f"{type(e).__name__}: {e}")]
        if self.sources and block["kind"] != "images":  # (each image's caption names its file)
            srcs = ", ".join(self.link(s) for s in dict.fromkeys(self.sources))
            out.append(Para(f"Source: {srcs}"))
        return out

    # ------------------------------------------------------------------ blocks
    def _text(self, block: dict) -> list:
        return [Para(str(block.get("text") or "").strip())]

    def _theory(self, block: dict) -> list:
        _, d = self.one_dir(_targets(block)[0])
        data = json.loads(self.need(d / "theory.json").read_text())
        wanted = block.get("tables")
        out = []
        for t in data.get("tables", []):
            if wanted and t.get("id") not in wanted:
                continue
            raw = t.get("rows", [])
            rows = [[sig(v) for v in row] for row in raw]
            num = ["r" if raw and all(_is_number(r[i]) for r in raw) else "l" for i in range(len(t.get("columns", [])))]
            out += [Heading(4, t.get("title", t.get("id", ""))), Table(list(t["columns"]), rows, num)]
            if t.get("note"):
                out.append(Para(" ".join(t["note"].split("\n"))))
        return out

    def _groups_rows(self, block: dict) -> tuple[Path, list[dict]]:
        _, d = self._sweep_dir(block)
        return d, _read_csv(self.need(d / sweep_report.REPORT_GROUPS_CSV))

    def _sweep_dir(self, block: dict) -> tuple[str, Path]:
        name, _ = parse_target(_targets(block)[0])
        ok, why = self.step_state(name)
        if not ok:
            raise _Missing(why)
        self.roots.append(self.study.step_dir(name))
        return name, self.study.step_dir(name)

    def _alpha(self, sweep: Path) -> float | None:
        """The significance level the sweep's report used (its multirun.yaml), when recorded."""
        path = sweep / rundir.SWEEP_FILE
        if not path.is_file():
            return None
        try:
            from cvexp.io.yamlfile import load_yaml

            cfg = load_yaml(path)
            return float(cfg["hydra"]["callbacks"]["sweep_report"]["alpha"])
        except Exception:  # noqa: BLE001 - not recorded: the note says so
            return None

    def _groups(self, block: dict) -> list:
        d, rows = self._groups_rows(block)
        digits = int(block.get("digits", 4))
        metrics = list(block.get("metrics") or dict.fromkeys(r["metric"] for r in rows if r["metric"].count("/") == 1))
        groups = list(dict.fromkeys(r["group"] for r in rows))
        cell = {(r["group"], r["metric"]): r for r in rows}
        missing = [m for m in metrics if not any((g, m) in cell for g in groups)]
        if missing:
            raise _Missing(f"{self.rel(d / sweep_report.REPORT_GROUPS_CSV)} has no {', '.join(missing)}")
        base = next((g for g in groups if cell.get((g, metrics[0]), {}).get("baseline") == "True"), groups[0])

        n_of = {g: max((int(_float(cell[(g, m)]["n"]) or 0) for m in metrics if (g, m) in cell), default=0)
                for g in groups}

        def summary(r: dict | None) -> str:
            if not r or _float(r.get("mean")) is None:
                return "-"
            s = fmt(r["mean"], digits)
            if _float(r.get("std")) is not None:
                s += f" ± {fmt(r['std'], digits)}"
            if _float(r.get("ci_low")) is not None:
                s += f" [{fmt(r['ci_low'], digits)}, {fmt(r['ci_high'], digits)}]"
            n = int(_float(r.get("n")) or 0)
            return s + (f" (n={n})" if n != n_of[r["group"]] else "")

        table = Table(["group", "n"] + metrics,
                      [[g + (" (baseline)" if g == base and len(groups) > 1 else ""), str(n_of[g])]
                       + [summary(cell.get((g, m))) for m in metrics] for g in groups],
                      ["l", "r"] + ["r"] * len(metrics),
                      caption="mean ± sample std over the group's jobs (seeds), [95% confidence interval of the "
                              "mean, t distribution]")
        out = [table]
        if block.get("significance", True) and len(groups) > 1:
            alpha = self._alpha(d)
            level = f"p < {alpha:g}" if alpha is not None else "p < the sweep's alpha"

            def test(r: dict | None) -> str:
                if not r or r.get("baseline") == "True":
                    return "baseline"
                diff, p = _float(r.get("diff")), _float(r.get("p"))
                if p is None:
                    return (f"Δ {diff:+.{digits}f}, " if diff is not None else "") + "n/a (n < 2 or no spread)"
                mark = "**yes**" if r.get("differs") == "True" else "no"
                p_txt = f"{p:.2g}" if p < 0.001 else f"{p:.3f}"
                return f"Δ {diff:+.{digits}f}, p = {p_txt}: {mark}"

            out.append(Table(["group"] + metrics, [[g] + [test(cell.get((g, m))) for m in metrics] for g in groups],
                             ["l"] + ["r"] * len(metrics),
                             caption=f"Welch's t-test of each group against the baseline **{base}**: difference "
                                     f"of means, two-sided p; **yes** marks {level} (no correction for multiple "
                                     "comparisons)"))
        return out

    def _per_class(self, block: dict) -> list:
        d, rows = self._groups_rows(block)
        digits = int(block.get("digits", 3))
        metric = str(block.get("metric") or "test/f1")
        prefix = metric.rstrip("/") + "/"
        rows = [r for r in rows if r["metric"].startswith(prefix)]
        if not rows:
            raise _Missing(f"{self.rel(d / sweep_report.REPORT_GROUPS_CSV)} has no per-class {metric}")
        groups = list(dict.fromkeys(r["group"] for r in rows))
        if block.get("groups"):
            groups = [g for g in groups if g in block["groups"]]
        classes = list(dict.fromkeys(r["metric"][len(prefix):] for r in rows))
        order = next((sweep_report._read_class_order(j / "per_class.csv") for j in reuse.job_dirs(d)
                      if (j / "per_class.csv").is_file()), [])
        rank = {c: i for i, c in enumerate(order)}
        classes.sort(key=lambda c: rank.get(c, len(rank)))
        cell = {(r["group"], r["metric"][len(prefix):]): r for r in rows}

        def value(r: dict | None) -> str:
            if not r or _float(r.get("mean")) is None:
                return "-"
            s = fmt(r["mean"], digits)
            return s + (f" ± {fmt(r['std'], digits)}" if _float(r.get("std")) is not None else "")

        return [Table(["class"] + groups, [[c] + [value(cell.get((g, c))) for g in groups] for c in classes],
                      ["l"] + ["r"] * len(groups),
                      caption=f"per-class {metric} on the test split, mean ± std over each group's jobs")]

    def _metrics(self, block: dict) -> list:
        keys = [str(k) for k in block.get("keys") or []]
        labels = list(block.get("labels") or [])
        digits = int(block.get("digits", 4))
        found_rows, notes = [], []
        for i, target in enumerate(_targets(block)):
            label = labels[i] if i < len(labels) else None
            try:
                found = self.dirs(target)
            except _Missing as e:
                notes.append((label or target, str(e)))
                continue
            for job_label, d in found:
                m = sweep_report.read_json_object(self.need(d / rundir.METRICS_FILE))
                found_rows.append((label if label and len(found) == 1 else job_label, m))
        if not found_rows:
            raise _Missing("; ".join(n for _, n in notes) or "no runs")
        cols = keys or sorted({k for _, m in found_rows for k in m if k.count("/") == 1})
        rows = [[name] + [fmt(m.get(k), digits) for k in cols] for name, m in found_rows]
        rows += [[name] + ["-"] * len(cols) for name, _ in notes]
        return [Table(["run"] + cols, rows, ["l"] + ["r"] * len(cols))] + [Note(n) for _, n in notes]

    def _images(self, block: dict) -> list:
        files = [str(f) for f in block.get("files") or []]
        ims = []
        for target in _targets(block):
            for label, d in self.dirs(target, files):
                for pattern in files:
                    hits = sorted(Path(p) for p in glob.glob(str(d / pattern))) if any(c in pattern for c in "*?[") \
                        else [d / pattern]
                    if not hits:
                        raise _Missing(f"no {pattern} in {self.rel(d)}")
                    for path in hits:
                        self.need(path)
                        ims.append(Image(self.rel(path), f"{label}: {path.name}", f"{label}: `{self.rel(path)}`"))
        if len(ims) == 1:
            return [ims[0]]
        sizes = [png_size(self.base / im.src) for im in ims]
        wide = all(sz is not None and sz[0] > 2 * sz[1] for sz in sizes)
        return [Gallery(ims, wide=wide)]

    def _csv(self, block: dict) -> list:
        _, d = self.one_dir(_targets(block)[0], [str(block["file"])])
        path = self.need(d / str(block["file"]))
        rows = _read_csv(path)
        digits = int(block.get("digits", 4))
        cols = [_name(c) for c in block.get("columns") or (list(rows[0]) if rows else [])]
        unknown = [c for c in cols if rows and c not in rows[0]]
        if unknown:
            raise _Missing(f"{self.rel(path)} has no column(s) {', '.join(unknown)}")
        if block.get("sort"):
            key, down = str(block["sort"]), bool(block.get("descending", False))
            # numbers in order (largest first with descending), rows without a number last
            rows.sort(key=lambda r: (_float(r.get(key)) is None,
                                     -(_float(r.get(key)) or 0.0) if down else (_float(r.get(key)) or 0.0)))
        n = len(rows)
        limit = block.get("max_rows")
        shown = rows[: int(limit)] if limit else rows
        base_cols = {_name(c) for c in block.get("basename") or []}
        cells = [[os.path.basename(r.get(c, "")) if c in base_cols else fmt(r.get(c), digits) for c in cols]
                 for r in shown]
        numeric = ["r" if all(_float(r.get(c)) is not None for r in shown if r.get(c) not in ("", None))
                   and any(r.get(c) for r in shown) and c not in base_cols else "l" for c in cols]
        caption = f"{len(shown)} of {n} rows" + (f", sorted by {block['sort']}" if block.get("sort") else "")
        return [Table(cols, cells, numeric, caption=caption)]

    def _json(self, block: dict) -> list:
        """Values of a JSON file (analysis.json, evaluation.json); several steps side by side."""
        labels = list(block.get("labels") or [])
        digits = int(block.get("digits", 4))
        cols, datas, notes = [], [], []
        for i, target in enumerate(_targets(block)):
            try:
                found = self.dirs(target, [str(block["file"])])
            except _Missing as e:
                notes.append(Note(str(e)))
                continue
            for label, d in found:
                cols.append(labels[i] if i < len(labels) and len(found) == 1 else label)
                datas.append(sweep_report.read_json_object(self.need(d / str(block["file"]))))
        if not datas:
            raise _Missing("; ".join(n.text for n in notes))
        keys = list(block.get("keys") or dict.fromkeys(k for d in datas for k, v in d.items()
                                                         if not isinstance(v, (dict, list))))
        if len(datas) == 1 and len(_targets(block)) == 1:
            return [Table(["key", "value"], [[k, fmt(datas[0].get(k), digits)] for k in keys], ["l", "r"])] + notes
        return [Table(["key"] + cols, [[k] + [fmt(d.get(k), digits) for d in datas] for k in keys],
                      ["l"] + ["r"] * len(cols))] + notes

    def _matrix(self, block: dict) -> list:
        _, d = self.one_dir(_targets(block)[0], [str(block["file"])])
        path = self.need(d / str(block["file"]))
        rows = _read_csv(path)
        rk, ck, vk = (str(block.get(k, dflt)) for k, dflt in (("rows", "checkpoint"), ("columns", "evaluated_on"),
                                                               ("value", "value")))
        if rows and any(k not in rows[0] for k in (rk, ck, vk)):
            raise _Missing(f"{self.rel(path)} lacks one of the columns {rk}, {ck}, {vk}")
        r_names = list(dict.fromkeys(r[rk] for r in rows))
        c_names = list(dict.fromkeys(r[ck] for r in rows))
        val = {(r[rk], r[ck]): r[vk] for r in rows}
        digits = int(block.get("digits", 4))
        metric = next((r.get("metric") for r in rows if r.get("metric")), vk)
        space = next((r.get("space") for r in rows if r.get("space")), "")
        return [Table([f"{rk} \\ {ck}"] + c_names, [[r] + [fmt(val.get((r, c)), digits) for c in c_names]
                                                     for r in r_names], ["l"] + ["r"] * len(c_names),
                      caption=f"{metric}" + (f" in the {space} label space" if space else "")
                              + f"; rows: {rk}, columns: {ck}")]

    # ------------------------------------------------------------------ header and appendix
    def _header(self, doc: Document) -> None:
        study, led = self.study, self.ledger
        recs = [r for r in led.get("steps", []) if isinstance(r, dict)]
        line = f"Study `{study.name}`, scale `{study.scale}`, in `{study.dir}`."
        if led.get("ended") and (self.base / STUDY_LEDGER).is_file():
            line += (f" Last run from {led.get('started')} to {led.get('ended')} ({fmt(led.get('wall_time_s'), 1)} s; "
                     f"the study's ledger: [{STUDY_LEDGER}]({STUDY_LEDGER})).")
        doc.add(Para(line))
        if recs:
            rows = []
            for r in recs:
                status = r.get("status", "?") + (" (reused)" if r.get("reused") else "")
                rows.append([str(r.get("index", "")), f"`{r['name']}`", r.get("title") or "",
                             f"{r.get('entry', '')}{' -m' if r.get('multirun') else ''}", status,
                             fmt(r.get("ran_wall_time_s"), 1)])
            doc.add(Table(["#", "step", "what", "entry point", "status", "wall time (s)"], rows,
                          ["r", "l", "l", "l", "l", "r"], caption="steps of the study (wall time: when the step last "
                                                                  "ran; reused steps keep it)"))
        bad = [r for r in recs if r.get("status") in ("failed", "skipped", "interrupted")]
        if led.get("interrupted"):
            doc.add(Note(f"the study was stopped by {led['interrupted']}; run the same command again to continue "
                         "where it stopped", label="Stopped"))
        if bad:
            items = []
            for r in bad:
                log = r.get("log")
                where = f" Log: [{log}]({log})." if log and (self.base / log).is_file() else ""
                items.append(f"**{r['name']}** {r['status']}: {r.get('error') or 'no error recorded'}.{where}")
            doc.add(Heading(3, "Steps that did not complete"), Bullets(items))

    def _appendix(self, doc: Document) -> None:
        study, led = self.study, self.ledger
        doc.add(Heading(2, "Appendix: reproducibility", anchor="appendix"))
        argv = led.get("argv") or []
        doc.add(Para("The study, from a clone of the repository (steps that already hold finished runs are reused):"),
                Code("python -m cvexp.study " + " ".join(_quote(a) for a in argv) if argv else
                     f"python -m cvexp.study study={study.name} study.scale={study.scale}"))
        composed = self.base / ".hydra" / "config.yaml"
        doc.add(Para(f"Study config sha256 (first 12 hex digits of the resolved `study` node): "
                     f"`{led.get('config_sha256') or '-'}`"
                     + (f"; the composed config: {self.link(composed)}." if composed.is_file() else ".")))
        doc.add(Heading(3, "Software"), Table(["package", "version"], _versions(), ["l", "l"]))
        doc.add(Heading(3, "Machine"), Table(["item", "value"], self._machine(), ["l", "l"]))
        doc.add(Heading(3, "Steps"))
        for step in study.steps:
            rec = self.records.get(step.name, {})
            d = study.step_dir(step)
            doc.add(Heading(4, f"`{step.name}`" + (f": {step.title}" if step.title else "")))
            if not step.enabled:
                doc.add(Para("Disabled at this scale."))
                continue
            facts = [f"status: **{rec.get('status', 'not run')}**" + (" (reused)" if rec.get("reused") else ""),
                     f"folder: `{self.rel(d)}`"]
            if rec.get("ran_wall_time_s") is not None:
                facts.append(f"wall time of the step: {fmt(rec['ran_wall_time_s'], 1)} s")
            doc.add(Para("; ".join(facts)))
            if rec.get("command"):
                doc.add(Code(rec["command"]))
            if rec.get("ran") and rec["ran"] != [rec.get("command")]:
                doc.add(Para("What the last run of the study executed for it:"), Code("\n".join(rec["ran"])))
            runs = ([(j.name, j) for j in reuse.job_dirs(d)] if step.multirun else [("-", d)]) if d.is_dir() else []
            rows = []
            for job, rd in runs:
                status = rundir.read_status(rd)
                if not status and not (rd / "config.yaml").is_file():
                    continue
                ov = reuse.recorded_overrides(rd) or []
                cfg = rd / "config.yaml"
                rows.append([job, " ".join(ov) or "-", fmt(run_seed(rd)),
                             f"`{file_sha(cfg)}`" if cfg.is_file() else "-", status.get("status", "-"),
                             fmt(status.get("wall_time_s"), 1), status.get("host", "-")])
            if rows:
                doc.add(Table(["job", "overrides", "seed", "config.yaml sha256", "status", "wall time (s)", "host"],
                              rows, ["l", "l", "r", "l", "l", "r", "l"],
                              caption=f"from each run's status.json and config.yaml in `{self.rel(d)}`"))
        doc.add(Para(f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by `cvexp.studies.report` from the files in the "
                     "study directory; every number above is read from the file named beside it."))

    def _machine(self) -> list[list[str]]:
        rows = [["host", socket.gethostname()], ["platform", platform.platform()],
                ["python", sys.version.split()[0]], ["CPU cores", str(os.cpu_count())]]
        cpu = _cpu_model()
        if cpu:
            rows.append(["CPU", cpu])
        mem = _memory_gb()
        if mem:
            rows.append(["memory", f"{mem:.1f} GiB"])
        rows.append(["GPU", _gpus() or "none visible (nvidia-smi not found or no device)"])
        hosts = sorted({str(rundir.read_status(rd).get("host")) for s in self.study.enabled_steps
                        for rd in ([*reuse.job_dirs(self.study.step_dir(s))] if s.multirun else [self.study.step_dir(s)])
                        if rundir.read_status(rd).get("host")})
        if hosts:
            rows.append(["hosts that ran the steps", ", ".join(hosts)])
        return rows


def _quote(a: str) -> str:
    import shlex

    return shlex.quote(a)


def _versions() -> list[list[str]]:
    from importlib import metadata

    rows = [["python", sys.version.split()[0]]]
    for p in PACKAGES:
        try:
            rows.append([p, metadata.version(p)])
        except metadata.PackageNotFoundError:
            continue
    return rows


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 ** 2
    except (OSError, ValueError):
        pass
    return None


def _gpus() -> str:
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if not exe:
        return ""
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return "; ".join(line.split(" (UUID")[0] for line in out.splitlines() if line.strip())


def build(study: Study, ledger: dict | None = None) -> Document:
    return Builder(study, ledger).build()


def write_report(study: Study, ledger: dict | None = None, embed_images: bool = True) -> dict[str, Path]:
    """Write report.md and report.html into the study directory; returns their paths."""
    doc = build(study, ledger)
    study.dir.mkdir(parents=True, exist_ok=True)
    md, page = study.dir / REPORT_MD, study.dir / REPORT_HTML
    atomic_write_bytes(md, doc.markdown().encode())
    atomic_write_bytes(page, doc.html(base=study.dir, embed=embed_images).encode())
    umask = os.umask(0)
    os.umask(umask)
    for path in (md, page):  # (the temporary file behind an atomic write is private: 0600)
        os.chmod(path, 0o666 & ~umask)
    return {"md": md, "html": page}


__all__ = ["build", "write_report", "check_report", "LOG_DIR"]
