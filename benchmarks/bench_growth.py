"""How cvexp's cost grows with the run: whole-process time of `python -m cvexp` (1 epoch + val +
test) against benchmarks/plain_train.py doing the same work, at 1x and 4x the data and at several
image sizes. A framework that only adds a fixed cost and nothing per image shows a ratio
cvexp/plain that falls toward 1 as the run grows.

After one untimed debug-sized warm-up of each side, cvexp and plain alternate in pairs; minimum of
each side per point. One record per point, and a
summary (`growth_trend`) whose target (issue 12) is: the ratio never rises along either axis
(more data at the smallest size; larger images at 1x data), within `--tolerance`.

    python benchmarks/bench_growth.py                 # small: 300/1200 images at 64 px, 300 at 128 px; 1 pair (~1.5 min)
    python benchmarks/bench_growth.py --scale full    # 1200/4800 images x 64/128/224 px, 2 pairs (long)
"""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path

import common as C
from bench_run import debug_sides

PLAIN = C.BENCH_DIR / "plain_train.py"


def grid(args) -> list[tuple[int, int]]:
    base = args.base_images or C.by_scale(args, 300, 1200)
    sizes = args.sizes or C.by_scale(args, [64, 128], [64, 128, 224])
    if args.scale == "full":
        return [(n, s) for n in (base, 4 * base) for s in sizes]
    return [(base, sizes[0]), (4 * base, sizes[0])] + [(base, s) for s in sizes[1:]]


def non_increasing(values: list[float], tolerance: float) -> bool:
    return all(b <= a * (1 + tolerance) for a, b in itertools.pairwise(values))


def main(argv=None) -> list[dict]:
    p = C.parser(__doc__.splitlines()[0])
    p.add_argument("--base-images", type=int, default=None, help="the 1x data size (default 300 small, 1200 full)")
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="image sizes (default 64 128 small, 64 128 224 full)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--tolerance", type=float, default=0.03, help="a rise smaller than this fraction is noise")
    args = p.parse_args(argv)
    n = C.reps(args, 1, 2)
    env = C.child_env(args)
    points = grid(args)
    roots = {n_img: C.demo_wildlife_root(args, n_img) for n_img in sorted({n_img for n_img, _ in points})}
    records, ratio = [], {}
    with tempfile.TemporaryDirectory(prefix="cvexp-bench-growth-") as tmp:
        tmp = Path(tmp)
        C.say("warm-up: one untimed debug-sized run of each side")
        for side in debug_sides(tmp, roots[min(roots)], env).values():
            side(-1)
        for n_img, size in points:
            tag = f"{n_img}img_{size}px"
            C.say(f"growth {tag}: {n} pair(s), {args.epochs} epoch(s)")
            cvexp_cmd = [C.PYTHON, "-m", "cvexp", f"data.n_images={n_img}", f"data.image_size={size}",
                         f"trainer.max_epochs={args.epochs}"]
            plain_cmd = [C.PYTHON, str(PLAIN), "--root", str(roots[n_img]), "--image-size", str(size),
                         "--epochs", str(args.epochs)]
            t = C.interleave(n, {
                "cvexp": lambda k, c=cvexp_cmd, tag=tag: C.run_cmd(
                    [*c, f"hydra.run.dir={tmp / f'cvexp_{tag}_{k}'}"], env=env)[0],
                "baseline": lambda k, c=plain_cmd, tag=tag: C.run_cmd(
                    [*c, "--out", str(tmp / f"plain_{tag}_{k}")], env=env)[0],
            }, C.say)
            rec = C.make_record(f"growth_{tag}", C.best(t["cvexp"]), C.best(t["baseline"]), "s", n, args.scale, None,
                                what=f"whole default run, {n_img} demo images, {size} px, {args.epochs} epoch(s)",
                                images=n_img, image_size=size, times_s=t)
            ratio[(n_img, size)] = rec["ratio"]
            records.append(C.emit(rec, args))
        base, small = points[0]
        data_axis = [ratio[(m, small)] for m in sorted({m for m, s in points if s == small})]
        size_axis = [ratio[(base, s)] for s in sorted({s for m, s in points if m == base})]
        largest = max(points, key=lambda q: (q[0] * q[1] ** 2, q[1]))  # most pixels; a tie: larger images
        ok = non_increasing(data_axis, args.tolerance) and non_increasing(size_axis, args.tolerance)
        rec = C.make_record("growth_trend", ratio[largest], ratio[points[0]], "ratio", n, args.scale, None,
                            what="cvexp/plain at the largest run (cvexp) and the smallest (baseline); the target is "
                                 "that the ratio never rises along either axis",
                            ratio_by_data=dict(zip([str(m) for m in sorted({m for m, s in points if s == small})],
                                                   data_axis)),
                            ratio_by_size=dict(zip([str(s) for s in sorted({s for m, s in points if m == base})],
                                                   size_axis)),
                            tolerance=args.tolerance)
        rec.update(target=f"ratio never rises along data or image size (within {args.tolerance:.0%})", meets_target=ok)
        records.append(C.emit(rec, args))
    return records


if __name__ == "__main__":
    main()
