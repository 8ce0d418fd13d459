"""`python -m cvexp.study study=course [study.scale=demo]`: a whole study in one command.

    python -m cvexp.study study=course study.scale=demo              # the course's study, demo data
    python -m cvexp.study study=course study.data.wildlife=/data/rw ...   # the real datasets
    python -m cvexp.study study=course study.scale=demo study.report_only=true   # re-render the report

A study (`conf/study/<name>.yaml`) is a list of steps, each an existing entry point with overrides,
and the report sections that read their outputs. The steps run one after the other as
subprocesses into `study.dir/<step>/`; a step whose folder holds a finished run is reused, so an
interrupted study continues where it stopped and a finished one re-renders its report in seconds.
`report.md` and `report.html` land in `study.dir`. Exit code: 0 when every step finished, 1 when a
step failed (the report lists it), 2 for a config error, 130/143 when stopped by Ctrl-C/SIGTERM.
The work is done by the library `cvexp.studies` (docs/study.md); this module only composes the
config and expands sweeps the way Hydra's basic sweeper does.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from omegaconf import DictConfig, OmegaConf

from cvexp.errors import CvexpError

BASIC_SWEEPER = ("basic",)


def expand_jobs(overrides: Sequence[str]) -> list[list[str]] | None:
    """The jobs of `python -m ... -m <overrides>` in Hydra's order (each a list of task overrides),
    as the basic sweeper makes them; None with another sweeper (e.g. Optuna decides as it goes)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from cvexp.studies.spec import is_hydra_override

    for o in overrides:
        key, _, value = o.partition("=")
        key = key.lstrip("+~")
        # another sweeper (hydra/sweeper=optuna, or a config group that picks one: hparams_search=...)
        if (key == "hydra/sweeper" and value not in BASIC_SWEEPER) or key == "hparams_search":
            return None
    parser = OverridesParser.create()
    parsed = parser.parse_overrides([o for o in overrides if not is_hydra_override(o)])
    try:
        batches = BasicSweeper.split_arguments(parsed, None)
    except Exception:  # noqa: BLE001 - a sweep the basic sweeper does not take (range/interval): unknown
        return None
    return [list(job) for batch in batches for job in batch]


def run(cfg: DictConfig) -> int:
    from omegaconf.errors import OmegaConfBaseException

    from cvexp.studies import report, runner, spec

    try:
        node = OmegaConf.to_container(cfg.study, resolve=True)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", "") or "study"
        raise CvexpError(f"{key}: {str(e).splitlines()[0]}; set it on the command line ({key}=...)") from None
    for k in ("verbose", "report_only", "embed_images"):
        node.pop(k, None)
    study = spec.study_from_config(node)
    report.check_report(study)
    say = lambda msg: print(f"[study] {msg}", flush=True)  # noqa: E731
    enabled = study.enabled_steps
    say(f"{study.name} ({study.scale}): {len(enabled)} step(s) in {study.dir}")
    result = None
    if not cfg.study.get("report_only"):
        result = runner.run_study(study, expand_jobs, verbose=bool(cfg.study.get("verbose")), argv=sys.argv[1:])
    try:
        files = report.write_report(study, embed_images=bool(cfg.study.get("embed_images", True)))
    except OSError as e:
        raise CvexpError(f"cannot write the report into {study.dir}: {e}; check that study.dir is writable "
                         "(the steps' results are kept; study.report_only=true writes it again)") from None
    say(f"report: {files['html']} (and {files['md'].name})")
    if result is None:
        return 0
    if result.interrupted:
        import signal

        name = signal.Signals(result.interrupted).name
        print(f"error: study stopped by {name}; run the same command again to continue where it stopped "
              f"(finished steps are reused)", file=sys.stderr)
        return 128 + result.interrupted
    if result.failed:
        limit = 600 if len(result.failed) == 1 else 200
        what = "; ".join(f"{s['name']} {s['status']}: {_short(s.get('error') or '?', limit)}" for s in result.failed)
        print(f"error: {len(result.failed)} of {len(enabled)} step(s) did not complete ({what}); logs in "
              f"{study.dir / 'logs'}, the report lists them: {files['html']}", file=sys.stderr)
        return 1
    return 0


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def main() -> None:
    import hydra

    from cvexp.engine.config import config_dir
    from cvexp.engine.entry import use_headless_plots

    @hydra.main(version_base="1.3", config_path=config_dir(), config_name="study")
    def _main(cfg: DictConfig) -> None:
        try:
            code = run(cfg)
        except CvexpError as e:
            print(f"error: {e}", file=sys.stderr)
            code = 2
        if code:
            sys.exit(code)

    use_headless_plots()
    _main()


if __name__ == "__main__":
    main()
