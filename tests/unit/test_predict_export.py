"""Predict and export: predictions equal those behind the run's test metrics; exported networks
reproduce PyTorch within tolerance, with dynamic batch (and height/width for segmentation)."""

from __future__ import annotations

import numpy as np
import pytest

from cvexp.errors import ConfigError



# ------------------------------------------------------------------------------- unit
def test_file_ids_are_what_official_scripts_read():
    from cvexp.data.labels import CITYSCAPES_LABELS
    from cvexp.predict import file_ids_lut

    lut = file_ids_lut("cityscapes")
    train_to_id = {lab.train_id: lab.id for lab in CITYSCAPES_LABELS if 0 <= lab.train_id < 255}
    assert all(lut[t] == i for t, i in train_to_id.items()) and lut[0] == 7 and lut[18] == 33
    assert (file_ids_lut("idd_level3")[:26] == np.arange(26)).all()  # IDD level ids are the ids


def test_find_images_file_folder_glob(tmp_path):
    from cvexp.engine.inference import find_images

    (tmp_path / "a" / "b").mkdir(parents=True)
    for p in ("a/1.jpg", "a/b/2.PNG", "a/notes.txt", "3.jpeg"):
        (tmp_path / p).write_bytes(b"x")
    assert [p.name for p in find_images(tmp_path / "a")] == ["1.jpg", "2.PNG"]
    assert [p.name for p in find_images(str(tmp_path / "*.jpeg"))] == ["3.jpeg"]
    assert [p.name for p in find_images(tmp_path / "3.jpeg")] == ["3.jpeg"]
    assert find_images(tmp_path / "nothing*") == []


def test_output_names_are_unique_below_the_common_folder(tmp_path):
    from cvexp.predict import _out_names

    files = [tmp_path / "x" / "img.png", tmp_path / "y" / "img.png"]
    for f in files:
        f.parent.mkdir()
        f.write_bytes(b"x")
    assert list(_out_names(files).values()) == ["x__img", "y__img"]
    # names that would collide: the same stem with two suffixes, a folder and a file named like its path
    clash = [tmp_path / "a.png", tmp_path / "a.jpg", tmp_path / "sub" / "b.png", tmp_path / "sub__b.png",
             tmp_path / "sub__b-2.png"]
    for f in clash:
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"x")
    names = _out_names(clash)
    assert list(names.values()) == ["a", "a-2", "sub__b", "sub__b-2", "sub__b-2-2"]
    assert len(set(names.values())) == len(clash)


def test_output_folder_is_never_among_the_inputs(tmp_path):
    from cvexp.predict import _refuse_output_among_inputs

    photos = tmp_path / "photos"
    (photos / "trip").mkdir(parents=True)
    files = [photos / "trip" / "1.jpg", photos / "2.jpg"]
    for f in files:
        f.write_bytes(b"x")
    for out in (photos, photos / "preds", photos / "trip"):
        with pytest.raises(ConfigError, match="input folder") as e:
            _refuse_output_among_inputs(out, photos, files)
        assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="is the input folder"):  # a glob's or a file's own folder
        _refuse_output_among_inputs(photos / "trip", photos / "trip" / "*.jpg", [files[0]])
    _refuse_output_among_inputs(tmp_path / "out", photos, files)
    _refuse_output_among_inputs(photos / "trip" / "preds", photos / "trip" / "1.jpg", [files[0]])  # a file: fine


def test_devices_are_auto_cpu_or_cuda():
    import torch

    from cvexp.analysis.features import pick_device

    assert pick_device("cpu") == torch.device("cpu") and pick_device("auto").type in ("cpu", "cuda")
    for bad in ("tpu", "gpu", "mps"):
        with pytest.raises(ConfigError, match="use device=auto, cpu or cuda"):
            pick_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU is available"):
            pick_device("cuda")


def test_export_tolerance_must_be_a_number_at_least_zero():
    from omegaconf import OmegaConf

    from cvexp.export import export

    for bad in (-1, "abc", float("nan")):
        cfg = OmegaConf.create({"format": "torchscript", "tolerance": bad, "ckpt_path": "never-read.ckpt"})
        with pytest.raises(ConfigError, match="must be a number >= 0") as e:
            export(cfg)
        assert "\n" not in str(e.value)
