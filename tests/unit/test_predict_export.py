"""Predict and export: predictions equal those behind the run's test metrics; exported networks
reproduce PyTorch within tolerance, with dynamic batch (and height/width for segmentation)."""

from __future__ import annotations


import numpy as np



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
    from cvexp.predict import _common_parent, _out_name

    files = [tmp_path / "x" / "img.png", tmp_path / "y" / "img.png"]
    for f in files:
        f.parent.mkdir()
        f.write_bytes(b"x")
    common = _common_parent(files)
    assert [_out_name(f, common) for f in files] == ["x__img", "y__img"]
