"""cvexp: config-driven computer-vision experiments (Hydra + PyTorch Lightning)."""

__version__ = "0.1.0"
