"""The plain-PyTorch twin of `python -m cvexp.eval ckpt_path=...` for the default classifier: load
the checkpoint's weights into the hand-written reference CNN, run the test files listed in the run's
split.csv through the eval pipeline (resize + normalise), write metrics.json.

    python benchmarks/plain_eval.py --ckpt RUN/checkpoints/best.ckpt --split-csv RUN/split.csv \
        --root ~/.cache/cvexp/demo_wildlife_n1200_s0 --out /tmp/plain_eval
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from plain_torch import (
    CLASSES,
    Files,
    ReferenceCNN,
    eval_transform,
    evaluate,
    load_weights_in_order,
    read_split_csv,
)
from torch.utils.data import DataLoader


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--split-csv", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--split", default="test")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    model = ReferenceCNN(len(CLASSES), a.image_size)
    load_weights_in_order(model, torch.load(a.ckpt, map_location="cpu", weights_only=True)["state_dict"])
    files, labels = read_split_csv(a.split_csv, a.split)
    dl = DataLoader(Files(a.root, files, labels, eval_transform(a.image_size)), batch_size=a.batch_size)
    metrics = {f"test/{k}": v for k, v in evaluate(model, dl, len(CLASSES)).items()}
    metrics["wall_s"] = time.perf_counter() - t0
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    main()
