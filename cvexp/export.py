"""`python -m cvexp.export ckpt_path=PATH format=onnx|torchscript`: the network as a file other tools run.

Writes `model.onnx` (or `model.pt`, TorchScript) and `model.json` beside it: the preprocessing
contract (task, input size, mean/std, class names; segmentation: label space and palette). The
batch dimension is dynamic, and for segmentation height and width too. The exported network is
checked against PyTorch on sample inputs of two batch sizes (and two image sizes for
segmentation); the largest absolute difference is reported in `export.json` and must stay within
`tolerance` (1e-4), else the export fails. ONNX export and its check need `pip install
'cvexp[export]'` (onnx, onnxruntime).
"""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from cvexp.engine import entry, rundir
from cvexp.errors import ConfigError, CvexpError

log = logging.getLogger("cvexp.export")

FORMATS = ("onnx", "torchscript")


class ExportError(CvexpError):
    """The exported network does not reproduce PyTorch's outputs."""


def sample_inputs(model, seed: int = 0) -> list:
    import torch

    g = torch.Generator().manual_seed(seed)
    if model.task == "classification":
        s = model.input_size
        return [torch.randn(1, 3, s, s, generator=g), torch.randn(3, 3, s, s, generator=g)]
    return [torch.randn(1, 3, 64, 96, generator=g), torch.randn(2, 3, 80, 48, generator=g)]


def export_torchscript(net, example, path: Path) -> None:
    import torch

    with torch.no_grad():
        traced = torch.jit.trace(net, example, check_trace=False)
    traced.save(str(path))


def run_torchscript(path: Path, x):
    import torch

    return torch.jit.load(str(path), map_location="cpu")(x)


def export_onnx(net, example, path: Path, segmentation: bool) -> None:
    import torch

    _need_onnx()
    axes = {0: "batch", 2: "height", 3: "width"} if segmentation else {0: "batch"}
    out_axes = {0: "batch", 2: "height", 3: "width"} if segmentation else {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(net, (example,), str(path), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": axes, "logits": out_axes}, opset_version=17, dynamo=False)


def run_onnx(path: Path, x):
    import onnxruntime as ort
    import torch

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(sess.run(None, {"image": x.numpy()})[0])


def _need_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ConfigError("format=onnx needs onnx and onnxruntime: pip install 'cvexp[export]' (or use "
                          "format=torchscript)") from None


def export(cfg: DictConfig) -> dict:
    import torch

    from cvexp.engine.inference import load_inference_model

    fmt = str(cfg.format)
    if fmt not in FORMATS:
        raise ConfigError(f"format={fmt!r}; use one of {', '.join(FORMATS)}")
    try:
        tol = float(cfg.tolerance)
    except (TypeError, ValueError):
        tol = float("nan")
    if not tol >= 0:  # (also nan)
        raise ConfigError(f"tolerance={cfg.tolerance} must be a number >= 0 (the largest |difference| from "
                          "PyTorch an export may have, e.g. tolerance=1e-4)")
    if fmt == "onnx":
        _need_onnx()
    out = entry.output_dir(cfg)
    model = load_inference_model(cfg.ckpt_path, cfg.get("output_stride"))
    net = model.module.net.eval().cpu()
    inputs = sample_inputs(model, int(cfg.get("seed") or 0))
    path = out / ("model.onnx" if fmt == "onnx" else "model.pt")
    if fmt == "onnx":
        export_onnx(net, inputs[0], path, model.task == "segmentation")
        run = run_onnx
    else:
        export_torchscript(net, inputs[0], path)
        run = run_torchscript
    diffs = []
    with torch.no_grad():
        for x in inputs:
            ref = net(x).float()
            got = run(path, x).float()
            if tuple(got.shape) != tuple(ref.shape):
                raise ExportError(f"the exported {fmt} network gives shape {tuple(got.shape)} for input "
                                  f"{tuple(x.shape)}, PyTorch {tuple(ref.shape)}")
            diffs.append(float((got - ref).abs().max()))
    max_diff = max(diffs)
    contract = {**model.contract(), "format": fmt, "file": path.name,
                "dynamic_axes": ["batch", "height", "width"] if model.task == "segmentation" else ["batch"]}
    rundir.write_json(out / "model.json", contract)
    report = {"format": fmt, "file": str(path), "max_abs_diff": max_diff, "tolerance": tol,
              "inputs": [list(x.shape) for x in inputs], "ok": max_diff <= tol}
    rundir.write_json(out / "export.json", report)
    if max_diff > tol:
        raise ExportError(f"the exported {fmt} network differs from PyTorch by up to {max_diff:.2e} "
                          f"(> tolerance={tol:g}); see {out / 'export.json'}")
    print(f"exported {path.resolve()} (max |diff| vs PyTorch {max_diff:.2e} <= {tol:g}); contract: "
          f"{(out / 'model.json').resolve()}")
    return {"max_abs_diff": max_diff}


main = entry.entry_point(export, "export")


if __name__ == "__main__":
    main()
