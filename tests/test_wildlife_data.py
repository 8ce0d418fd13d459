import shutil

import numpy as np
import pytest
import torch

from cvexp.data.demo_wildlife import write_demo_wildlife
from cvexp.data.labels import WILDLIFE_CLASSES, normalize_class_name
from cvexp.data.split import read_split_csv, stratified_split
from cvexp.data.wildlife import WildlifeDataModule
from cvexp.errors import DataError


@pytest.fixture
def demo_root(tmp_path):
    return write_demo_wildlife(tmp_path / "demo", n_images=100)


def _dm(root, **kw):
    kw.setdefault("image_size", 32)
    return WildlifeDataModule(root=str(root), num_workers=0, batch_size=8, **kw)


def test_class_order_is_the_courses_not_alphabetical():
    assert WILDLIFE_CLASSES[:3] == ("amur_leopard", "amur_tiger", "birds")
    assert WILDLIFE_CLASSES.index("people") == 9 and WILDLIFE_CLASSES.index("wild_boar") == 8
    assert list(WILDLIFE_CLASSES) != sorted(WILDLIFE_CLASSES)
    assert normalize_class_name("Amur Leopard") == normalize_class_name("amur-leopard") == "amur_leopard"


def test_labels_follow_class_order_and_batches_are_tensors(demo_root, tmp_path):
    dm = _dm(demo_root, output_dir=str(tmp_path / "run"))
    dm.setup()
    for f, y in zip(dm.files, dm.labels):
        assert f.split("/")[0] == WILDLIFE_CLASSES[y]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    rows = read_split_csv(tmp_path / "run" / "split.csv")
    assert sum(len(v) for v in rows.values()) == len(dm.files)


def test_cropped_final_and_folder_name_variants(demo_root, tmp_path):
    root = tmp_path / "kaggle"
    (root / "Cropped_final").mkdir(parents=True)
    for d in demo_root.iterdir():
        if d.is_dir():
            shutil.copytree(d, root / "Cropped_final" / d.name.replace("_", " ").title())
    dm = _dm(root)
    dm.setup()
    assert dm.class_root == root / "Cropped_final"
    assert len(dm.files) == sum(1 for _ in demo_root.rglob("*.jpg"))


def test_split_is_stratified_and_reproducible():
    labels = np.repeat(np.arange(10), [50, 60, 70, 80, 90, 100, 40, 30, 20, 10])
    a = stratified_split(labels, (0.7, 0.1, 0.2), seed=1)
    b = stratified_split(labels, (0.7, 0.1, 0.2), seed=1)
    c = stratified_split(labels, (0.7, 0.1, 0.2), seed=2)
    assert a == b and a != c
    assert sorted(a["train"] + a["val"] + a["test"]) == list(range(len(labels)))
    for cls, n in enumerate([50, 60, 70, 80, 90, 100, 40, 30, 20, 10]):
        got = {s: int((labels[a[s]] == cls).sum()) for s in a}
        assert got["train"] == round(0.7 * n) and got["val"] == round(0.1 * n)
        assert got["test"] == n - got["train"] - got["val"]
    with pytest.raises(ValueError):
        stratified_split(labels, (0.5, 0.1, 0.1))


def test_same_seed_same_split_files(demo_root, tmp_path):
    for name in ("a", "b"):
        _dm(demo_root, split_seed=5, output_dir=str(tmp_path / name)).setup()
    assert (tmp_path / "a" / "split.csv").read_text() == (tmp_path / "b" / "split.csv").read_text()


def test_missing_root_names_path_and_layout(tmp_path):
    with pytest.raises(DataError) as e:
        _dm(tmp_path / "nope").setup()
    msg = str(e.value)
    assert str(tmp_path / "nope") in msg and "<root>/<class>/*.jpg" in msg and "\n" not in msg


def test_missing_and_empty_class_folders(demo_root):
    shutil.rmtree(demo_root / "people")
    with pytest.raises(DataError, match="no folder for class.*people"):
        _dm(demo_root).setup()
    (demo_root / "people").mkdir()
    with pytest.raises(DataError, match=r"class folder .*people holds no images"):
        _dm(demo_root).setup()


def test_corrupt_image_error_and_skip(demo_root, tmp_path):
    bad = demo_root / "dog" / "dog_0000.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError) as e:
        _dm(demo_root).setup()
    assert str(bad) in str(e.value) and "data.skip_corrupt=true" in str(e.value)
    dm = _dm(demo_root, skip_corrupt=True, output_dir=str(tmp_path / "run"))
    dm.setup()
    assert "dog/dog_0000.jpg" not in dm.files
    assert (tmp_path / "run" / "skipped_files.txt").read_text().strip() == str(bad)


def test_split_order_mixes_classes():
    labels = np.repeat(np.arange(10), 20)
    test = stratified_split(labels, (0.7, 0.1, 0.2), seed=0)["test"]
    assert len(set(labels[test[:8]])) > 2  # the first batch of a limited test pass is not one class
