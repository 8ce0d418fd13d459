"""Evaluating a checkpoint: `python -m cvexp.eval ckpt_path=...` against benchmarks/plain_eval.py
(a plain test loop over the same test files, same eval pipeline and batch size), whole processes.

The checkpoint is made first: a short default run (1 epoch, 4 train batches) into a temporary
folder. Both sides must report the same test accuracy (`same_accuracy` in the record).
cvexp and plain alternate in pairs after one untimed warm-up of each; minimum of each side. Target (issue 12): <= 1.2x.

    python benchmarks/bench_eval.py                  # small: 1 warm-up + 2 pairs (~1 min)
    python benchmarks/bench_eval.py --scale full     # 10 pairs
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import common as C

PLAIN = C.BENCH_DIR / "plain_eval.py"


def train_checkpoint(tmp: Path, env: dict) -> Path:
    run = tmp / "train"
    C.run_cmd([C.PYTHON, "-m", "cvexp", f"hydra.run.dir={run}", "trainer.max_epochs=1",
               "++trainer.limit_train_batches=4", "++trainer.limit_val_batches=2", "++trainer.num_sanity_val_steps=0"],
              env=env)
    return run


def run_settings(run: Path) -> dict:
    """image size and batch size the run used (its resolved config.yaml), for the plain loop."""
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    return {"image_size": int(cfg["data"]["image_size"]), "batch_size": int(cfg["data"]["batch_size"])}


def main(argv=None) -> list[dict]:
    args = C.parser(__doc__.splitlines()[0]).parse_args(argv)
    n = C.reps(args, 2, 10)
    env = C.child_env(args)
    root = C.demo_wildlife_root(args)
    with tempfile.TemporaryDirectory(prefix="cvexp-bench-eval-") as tmp:
        tmp = Path(tmp)
        C.say("training the checkpoint to evaluate (short default run)")
        run = train_checkpoint(tmp, env)
        ckpt = run / "checkpoints" / "best.ckpt"
        s = run_settings(run)
        acc: dict[str, float] = {}

        def cvexp_side(k):
            out = tmp / f"cvexp_eval_{k}"
            dt, _ = C.run_cmd([C.PYTHON, "-m", "cvexp.eval", f"ckpt_path={ckpt}", f"hydra.run.dir={out}"], env=env)
            acc["cvexp"] = json.loads((out / "metrics.json").read_text())["test/acc"]
            return dt

        def plain_side(k):
            out = tmp / f"plain_eval_{k}"
            dt, _ = C.run_cmd([C.PYTHON, str(PLAIN), "--ckpt", str(ckpt), "--split-csv", str(run / "split.csv"),
                               "--root", str(root), "--out", str(out), "--image-size", str(s["image_size"]),
                               "--batch-size", str(s["batch_size"])], env=env)
            acc["baseline"] = json.loads((out / "metrics.json").read_text())["test/acc"]
            return dt

        C.say(f"eval: {n} pairs")
        t = C.interleave(n, {"cvexp": cvexp_side, "baseline": plain_side}, C.say, warmup=1)
        rec = C.make_record("eval_checkpoint", C.best(t["cvexp"]), C.best(t["baseline"]), "s", n, args.scale,
                            ("ratio_max", 1.2), what="python -m cvexp.eval ckpt_path=... vs a plain test loop, "
                            "whole process, default classifier on the demo test split",
                            test_acc=acc, same_accuracy=abs(acc["cvexp"] - acc["baseline"]) < 1e-6,
                            times_s=t, **s)
        return [C.emit(rec, args)]


if __name__ == "__main__":
    main()
