"""Start-up cost of the command line: `python -m cvexp --help` and `python -m cvexp --cfg job`
against a bare Hydra app (benchmarks/bare_hydra_app/) printing the same config.

Each command is a fresh process; cvexp and the bare app alternate in pairs and the minimum of each
side counts. Target (issue 12): <= 2x the bare app.

    python benchmarks/bench_startup.py                 # small: 5 pairs per command (~15 s)
    python benchmarks/bench_startup.py --scale full    # 15 pairs
"""

from __future__ import annotations

import common as C

BARE_APP = C.BENCH_DIR / "bare_hydra_app" / "app.py"
BARE_CONF = BARE_APP.parent / "conf" / "config.yaml"
HEADER = """# A snapshot of `python -m cvexp --cfg job` (the default training config, unresolved), so that the
# bare Hydra app prints the same config cvexp does. benchmarks/bench_startup.py refreshes it when
# cvexp's config has changed (or: python -m cvexp --cfg job, below these comment lines).
"""


def refresh_snapshot(env: dict) -> bool:
    """Make the bare app's config the one cvexp composes now (untimed); True if it changed."""
    _, proc = C.run_cmd([C.PYTHON, "-m", "cvexp", "--cfg", "job"], env=env)
    text = HEADER + proc.stdout
    if BARE_CONF.read_text() == text:
        return False
    BARE_CONF.write_text(text)
    return True
COMMANDS = {"help": ["--help"], "cfg_job": ["--cfg", "job"]}
TARGET = ("ratio_max", 2.0)


def main(argv=None) -> list[dict]:
    args = C.parser(__doc__.splitlines()[0]).parse_args(argv)
    n = C.reps(args, 5, 15)
    env = C.child_env(args)
    if refresh_snapshot(env):
        C.say(f"{BARE_CONF.relative_to(C.REPO)} refreshed: cvexp's default config has changed")
    records = []
    for name, extra in COMMANDS.items():
        outputs = {}

        def side(cmd, key, outputs=outputs):
            def run(_k):
                dt, proc = C.run_cmd(cmd, env=env)
                outputs[key] = proc.stdout
                return dt
            return run

        C.say(f"startup {name}: {n} pairs")
        times = C.interleave(n, {"cvexp": side([C.PYTHON, "-m", "cvexp", *extra], "cvexp"),
                                 "baseline": side([C.PYTHON, str(BARE_APP), *extra], "baseline")}, C.say, warmup=1)
        extra_fields = {"cvexp_median": C.median(times["cvexp"]), "baseline_median": C.median(times["baseline"])}
        if name == "cfg_job":
            extra_fields["same_output"] = outputs["cvexp"].strip() == outputs["baseline"].strip()
        records.append(C.emit(C.make_record(
            f"startup_{name}", C.best(times["cvexp"]), C.best(times["baseline"]), "s", n, args.scale, TARGET,
            command=f"python -m cvexp {' '.join(extra)}", baseline_command=f"python {BARE_APP.relative_to(C.REPO)} "
            f"{' '.join(extra)}", **extra_fields), args))
    return records


if __name__ == "__main__":
    main()
