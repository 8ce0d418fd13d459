"""Whole-run cost: `python -m cvexp` (the default run: reference CNN on the demo wildlife images)
against benchmarks/plain_train.py doing the same work, as whole processes, at two run lengths, so
that the fixed cost per run (intercept of time against epochs) and the cost per epoch (slope) come
out; and `python -m cvexp debug=fast` against the plain script doing the same tiny work.

Both sides: the same demo files, reference CNN, albumentations pipeline (conf/aug/basic.yaml),
batch 32, 0 workers, Adam 1e-3, a val pass per epoch with best/last weights saved, one test pass
with the best weights; one torch thread. The debug=fast pair runs first, after one untimed
debug-sized warm-up of each side (byte code compiled, files cached); then cvexp and plain
alternate in pairs; minimum of each side.

Targets (issue 12): fixed cost <= 1.5 s over the plain script; default 10-epoch run <= 1.05x;
debug=fast <= 1.2x.

    python benchmarks/bench_run.py                  # small: 1 and 3 epochs, 1 pair each (~2 min)
    python benchmarks/bench_run.py --scale full     # 1 and 10 epochs, 3 pairs each (~15 min on 2 cores)
    python benchmarks/bench_run.py --epochs 1 5     # any two run lengths
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import common as C

PLAIN = C.BENCH_DIR / "plain_train.py"


def cvexp_cmd(out: Path, *overrides: str) -> list[str]:
    return [C.PYTHON, "-m", "cvexp", f"hydra.run.dir={out}", *overrides]


def plain_cmd(root: Path, out: Path, *extra: str) -> list[str]:
    return [C.PYTHON, str(PLAIN), "--root", str(root), "--out", str(out), *extra]


def debug_sides(tmp: Path, root: Path, env: dict) -> dict:
    """`python -m cvexp debug=fast` and the plain script doing the same tiny work."""
    return {
        "cvexp": lambda k: C.run_cmd(cvexp_cmd(tmp / f"cvexp_debug_{k}", "debug=fast"), env=env)[0],
        "baseline": lambda k: C.run_cmd(plain_cmd(root, tmp / f"plain_debug_{k}", "--epochs", "1", "--batch-size", "4",
                                                  "--limit-train", "2", "--limit-eval", "1"), env=env)[0],
    }


def main(argv=None) -> list[dict]:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, nargs=2, default=None, metavar=("E1", "E2"),
                   help="the two run lengths (default: 1 3 small, 1 10 full)")
    p.add_argument("--skip-debug", action="store_true", help="leave out the debug=fast pair")
    args = p.parse_args(argv)
    e1, e2 = args.epochs or C.by_scale(args, (1, 3), (1, 10))
    if e2 <= e1:
        p.error("--epochs E1 E2 needs E2 > E1")
    n = C.reps(args, 1, 3)
    env = C.child_env(args)
    root = C.demo_wildlife_root(args)  # written before any timing
    records = []
    with tempfile.TemporaryDirectory(prefix="cvexp-bench-run-") as tmp:
        tmp = Path(tmp)
        if not args.skip_debug:  # first: its warm-up warms every later run too
            nd = C.reps(args, 2, 5)
            C.say(f"debug=fast: {nd} pair(s)")
            d = C.interleave(nd, debug_sides(tmp, root, env), C.say, warmup=1)
            records.append(C.emit(C.make_record(
                "run_debug_fast", C.best(d["cvexp"]), C.best(d["baseline"]), "s", nd, args.scale, ("ratio_max", 1.2),
                what="python -m cvexp debug=fast vs the plain script: 1 epoch, 2 train batches, 1 val and 1 test "
                     "batch of 4 images", times_s=d), args))
        else:
            C.say("warm-up: one untimed debug-sized run of each side")
            for side in debug_sides(tmp, root, env).values():
                side(-1)
        t: dict[int, dict[str, list[float]]] = {}
        for e in (e1, e2):
            C.say(f"whole run, {e} epoch(s): {n} pair(s)")
            t[e] = C.interleave(n, {
                "cvexp": lambda k, e=e: C.run_cmd(cvexp_cmd(tmp / f"cvexp_e{e}_{k}", f"trainer.max_epochs={e}"),
                                                  env=env)[0],
                "baseline": lambda k, e=e: C.run_cmd(plain_cmd(root, tmp / f"plain_e{e}_{k}", "--epochs", str(e)),
                                                     env=env)[0],
            }, C.say)
        lo = {s: C.best(t[e1][s]) for s in ("cvexp", "baseline")}
        hi = {s: C.best(t[e2][s]) for s in ("cvexp", "baseline")}
        slope = {s: (hi[s] - lo[s]) / (e2 - e1) for s in lo}
        intercept = {s: lo[s] - slope[s] * e1 for s in lo}
        common = {"epochs": [e1, e2], "times_s": {s: {str(e1): t[e1][s], str(e2): t[e2][s]} for s in lo}}
        note = None if (e1, e2) == (1, 10) else f"run of {e2} epochs, not the issue's 10: the target is for 10"
        records.append(C.emit(C.make_record(
            f"run_{e2}_epochs", hi["cvexp"], hi["baseline"], "s", n, args.scale, ("ratio_max", 1.05),
            what=f"whole process, default run, {e2} epochs", note=note, **common), args))
        records.append(C.emit(C.make_record(
            "run_fixed_cost", intercept["cvexp"], intercept["baseline"], "s", n, args.scale, ("difference_max", 1.5),
            what=f"intercept of whole-process time against epochs ({e1} and {e2})",
            difference=intercept["cvexp"] - intercept["baseline"], **common), args))
        records.append(C.emit(C.make_record(
            "run_per_epoch", slope["cvexp"], slope["baseline"], "s", n, args.scale, None,
            what=f"slope of whole-process time against epochs ({e1} and {e2}): one epoch of train + val",
            **common), args))
    return records


if __name__ == "__main__":
    main()
