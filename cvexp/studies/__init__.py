"""Studies: a list of steps (existing entry points with overrides) and a report that reads their outputs.

    python -m cvexp.study study=course study.scale=demo          # the entry point (cvexp/study.py)

Plain Python, no Hydra (the entry point composes the config and hands this package a dict):

- `spec`:     a study and its steps from the config's `study` node: scale presets, references between
              steps (`{dir:STEP}`, `{dir:STEP[seed=0]}`, `{data:NAME}`), the command of each step;
- `reuse`:    what a step's directory already holds (a finished run, a finished or partial sweep) and
              what is left to run;
- `runner`:   runs the steps as subprocesses, one after the other, with "step i/N" progress, a log per
              step and the study's ledger `study.json`;
- `report`:   `report.md` and `report.html` from the files the steps wrote (every number read, never
              typed), with a reproducibility appendix; `document` renders both from one model;
- `theory_step`: `python -m cvexp.studies.theory_step --out DIR` writes the theory tables as data.

docs/study.md describes the config and how to write a study of your own.
"""

STUDY_LEDGER = "study.json"
REPORT_MD, REPORT_HTML = "report.md", "report.html"
LOG_DIR = "logs"
