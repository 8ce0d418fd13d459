"""`debug=fast`: the caps of the config's `smoke` node (conf/debug/fast.yaml), applied in place where
the run is built (`cvexp.engine.hardware.fit_to_machine` calls `apply_caps`).

Every cap is an upper bound (a smaller value in the config stays):

| cap           | applies to                                                                       |
|---------------|----------------------------------------------------------------------------------|
| `image_size`  | `data.image_size` (training crop / classification input), only when the run      |
|               | trains: a checkpoint being evaluated keeps the input size it was trained at      |
| `base_size`   | `data.base_size` of segmentation data (`null`, the full size, counts as larger)   |
| `eval_size`   | `task.eval.size` of segmentation scored at the original resolution (`null` = the |
|               | full size counts as larger)                                                      |
| `eval_crop`   | `task.eval.crop` of sliding-window evaluation (the stride shrinks with it)       |
| `batch_size`  | `data.batch_size`                                                                |
| `num_workers` | `data.num_workers`                                                               |

No Hydra here; the config is an OmegaConf node.
"""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf, open_dict


def active(cfg: DictConfig) -> bool:
    return bool(cfg.get("smoke"))


def _cap(node: DictConfig, key: str, cap, name: str, changes: list[str], none_is_larger: bool = False) -> None:
    if cap is None or key not in node:
        return
    value = node.get(key)
    if (value is None and none_is_larger) or (value is not None and value > cap):
        changes.append(f"{name} {value} -> {cap}")
        node[key] = cap


def _eval_node(cfg: DictConfig) -> DictConfig | None:
    task = cfg.get("task")
    return task.get("eval") if task is not None else None


def check_eval_mode(cfg: DictConfig) -> None:
    """A segmentation run's `task.eval`, checked (one-line ConfigError) before anything is built."""
    from cvexp.tasks.seg_inference import EvalMode

    ev = _eval_node(cfg)
    if ev is not None:
        EvalMode.from_config(OmegaConf.to_container(ev, resolve=True))


def apply_caps(cfg: DictConfig) -> list[str]:
    """Apply `cfg.smoke`'s caps (see the module docstring); the changes as `key old -> new`."""
    caps = cfg.get("smoke")
    if not caps:
        return []
    changes: list[str] = []
    data = cfg.get("data")
    with open_dict(cfg):
        if data is not None:
            if cfg.get("train") is True:
                _cap(data, "image_size", caps.get("image_size"), "data.image_size", changes)
            _cap(data, "base_size", caps.get("base_size"), "data.base_size", changes, none_is_larger=True)
            _cap(data, "batch_size", caps.get("batch_size"), "data.batch_size", changes)
            _cap(data, "num_workers", caps.get("num_workers"), "data.num_workers", changes)
        ev = _eval_node(cfg)
        if ev is not None and (caps.get("eval_size") or caps.get("eval_crop")):
            from cvexp.tasks.seg_inference import EvalMode

            mode = EvalMode.from_config(OmegaConf.to_container(ev, resolve=True))
            capped, eval_changes = mode.with_caps(int(caps.get("eval_size") or 1 << 30),
                                                  int(caps.get("eval_crop") or 1 << 30))
            if eval_changes:
                ev.size = capped.size
                if capped.mode == "sliding":
                    ev.crop, ev.stride = list(capped.crop), list(capped.window_stride)
                changes += eval_changes
    return changes
