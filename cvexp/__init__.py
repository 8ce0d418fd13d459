"""cvexp: config-driven computer-vision experiments (Hydra + PyTorch Lightning).

The few objects a plain-Python user needs, without Hydra (imported on first use, so
`python -m cvexp --help` stays fast):

    import cvexp
    dm = cvexp.DemoWildlifeDataModule(cache_dir="/tmp/cvexp-cache", image_size=64)
    net = cvexp.ConvNet(num_classes=10, input_size=64)
    task = cvexp.ClassificationModule(net, dm.class_names)
    run = cvexp.load_checkpoint("outputs/train/runs/<time>/checkpoints/best.ckpt")   # module, datamodule, config

See README "Python API".
"""

__version__ = "0.1.0"

_EXPORTS = {
    "WildlifeDataModule": "cvexp.data.wildlife",
    "DemoWildlifeDataModule": "cvexp.data.wildlife",
    "SegmentationDataModule": "cvexp.data.segmentation",
    "DemoStreetsDataModule": "cvexp.data.segmentation",
    "ConvNet": "cvexp.models.convnet",
    "TimmClassifier": "cvexp.models.timm_models",
    "SmpDeepLabV3Plus": "cvexp.models.segmentation",
    "VainfDeepLabV3Plus": "cvexp.models.deeplab_vainf",
    "ClassificationModule": "cvexp.tasks.classification",
    "SegmentationModule": "cvexp.tasks.segmentation",
    "Run": "cvexp.api",
    "load_checkpoint": "cvexp.api",
    "build_run": "cvexp.api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'cvexp' has no attribute {name!r}")
