"""The plain-PyTorch twin of `python -m cvexp` (default run): the reference CNN on the demo wildlife
files, conf/aug/basic.yaml's pipeline, batch 32, 0 workers, Adam 1e-3, a val pass per epoch (best
and last weights saved), then one test pass with the best weights; metrics.json at the end.

    python benchmarks/plain_train.py --root ~/.cache/cvexp/demo_wildlife_n1200_s0 --out /tmp/plain --epochs 10
    # the twin of debug=fast: 1 epoch, 2 train batches, 1 val and 1 test batch of 4 images
    python benchmarks/plain_train.py --root ... --out ... --epochs 1 --batch-size 4 --limit-train 2 --limit-eval 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from plain_torch import (
    CLASSES,
    Files,
    ReferenceCNN,
    eval_transform,
    evaluate,
    scan,
    stratified_split,
    train_transform,
)
from torch.utils.data import DataLoader


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--limit-train", type=int, default=None, help="train batches per epoch")
    p.add_argument("--limit-eval", type=int, default=None, help="val and test batches")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)

    files, labels = scan(a.root)
    split = stratified_split(labels, seed=a.seed)

    def loader(name, transform, shuffle):
        ds = Files(a.root, [files[i] for i in split[name]], [labels[i] for i in split[name]], transform)
        return DataLoader(ds, batch_size=a.batch_size, shuffle=shuffle, num_workers=a.workers,
                          persistent_workers=a.workers > 0)

    train_dl = loader("train", train_transform(a.image_size, a.seed), True)
    val_dl = loader("val", eval_transform(a.image_size), False)
    test_dl = loader("test", eval_transform(a.image_size), False)
    model = ReferenceCNN(len(CLASSES), a.image_size)
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)

    best_f1 = -1.0
    for epoch in range(a.epochs):
        model.train()
        for b, (x, y) in enumerate(train_dl):
            if a.limit_train is not None and b >= a.limit_train:
                break
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        val = evaluate(model, val_dl, len(CLASSES), a.limit_eval)
        state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": epoch}
        torch.save(state, out / "last.pt")
        if val["f1_macro"] > best_f1:
            best_f1 = val["f1_macro"]
            torch.save(state, out / "best.pt")
        print(f"epoch {epoch}: train loss {float(loss.detach()):.3f}  val acc {val['acc']:.3f}  val f1 {val['f1_macro']:.3f}",
              flush=True)

    model.load_state_dict(torch.load(out / "best.pt", weights_only=True)["model"])
    test = evaluate(model, test_dl, len(CLASSES), a.limit_eval)
    metrics = {f"test/{k}": v for k, v in test.items()} | {"val/f1_macro_best": best_f1,
                                                             "wall_s": time.perf_counter() - t0}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    main()
