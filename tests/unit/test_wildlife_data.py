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


# ------------------------------------------------------------------------------------ k-fold
def test_kfold_keeps_test_fixed_and_partitions_train_val():
    from cvexp.data.split import stratified_kfold_split

    counts = [50, 60, 70, 80, 90, 100, 40, 30, 20, 10]
    labels = np.repeat(np.arange(10), counts)
    plain = stratified_split(labels, (0.7, 0.1, 0.2), seed=3)
    pool = sorted(plain["train"] + plain["val"])
    folds = [stratified_kfold_split(labels, k, 5, (0.7, 0.1, 0.2), seed=3) for k in range(5)]
    for k, f in enumerate(folds):
        assert f["test"] == plain["test"]  # the test split never moves
        assert sorted(f["train"] + f["val"]) == pool and not set(f["train"]) & set(f["val"])
        assert f == stratified_kfold_split(labels, k, 5, (0.7, 0.1, 0.2), seed=3)  # reproducible
    vals = [set(f["val"]) for f in folds]
    assert sorted(i for v in vals for i in v) == pool  # every train+val image is val exactly once
    assert max(map(len, vals)) - min(map(len, vals)) <= 1
    for cls in range(10):  # stratified: each fold holds 1/5 of every class (within one image)
        per_fold = [int((labels[sorted(v)] == cls).sum()) for v in vals]
        assert max(per_fold) - min(per_fold) <= 1 and sum(per_fold) == int((labels[pool] == cls).sum())
    from sklearn.model_selection import StratifiedKFold  # the same fold sizes per class as scikit-learn's

    y = labels[pool]
    ref = [np.bincount(y[val], minlength=10) for _, val in StratifiedKFold(5).split(np.zeros(len(y)), y)]
    assert sorted(map(tuple, ref)) == sorted(tuple(np.bincount(labels[sorted(v)], minlength=10)) for v in vals)
    with pytest.raises(ValueError):
        stratified_kfold_split(labels, 5, 5)


def test_datamodule_fold_config(demo_root, tmp_path):
    from cvexp.errors import ConfigError

    plain = _dm(demo_root)
    plain.setup()
    dms = [_dm(demo_root, fold=k, num_folds=3, output_dir=str(tmp_path / str(k))) for k in range(3)]
    for dm in dms:
        dm.setup()
        assert sorted(dm.split["test"]) == sorted(plain.split["test"])
        assert dm.describe()["num_folds"] == 3
    assert sorted(i for dm in dms for i in dm.split["val"]) == sorted(plain.split["train"] + plain.split["val"])
    rows = read_split_csv(tmp_path / "1" / "split.csv")  # split.csv records the fold's own split
    assert len(rows["val"]) == len(dms[1].split["val"])
    for bad in ({"fold": 1}, {"num_folds": 3}, {"fold": 3, "num_folds": 3}, {"fold": 0, "num_folds": 1}):
        with pytest.raises(ConfigError, match="data.fold"):
            _dm(demo_root, **bad)


def test_an_evaluation_checks_only_the_split_it_reads(demo_root):
    """setup("test") reads the test images only; a damaged training image surfaces when a stage
    that reads it starts (fit), still before any model is built, and in dataset("train")."""
    dm = _dm(demo_root)
    dm.setup("test")
    train_file = dm.class_root / dm.files[dm.split["train"][0]]
    dm2 = _dm(demo_root)
    train_file.write_bytes(b"damaged")
    dm2.setup("test")  # the test split is whole
    with pytest.raises(DataError, match=str(train_file)):
        dm2.setup("fit")
    with pytest.raises(DataError, match=str(train_file)):
        _dm(demo_root).dataset("train")
    assert len(_dm(demo_root).dataset("val")) == len(dm.split["val"])


# ------------------------------------------------------------------- the readability check, remembered
@pytest.fixture
def count_decodes(monkeypatch):
    """Counts the readability checks that decode a file (cvexp.data.images.is_readable_image)."""
    from cvexp.data import checked

    calls = []
    real = checked.is_readable_image

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(checked, "is_readable_image", counting)
    return calls


def test_images_that_passed_are_not_decoded_again_until_they_change(demo_root, tmp_path, count_decodes):
    import os

    cache = tmp_path / "cache"
    dm = _dm(demo_root, cache_dir=str(cache))
    dm.setup()
    assert sorted(count_decodes) == sorted(str(demo_root / f) for f in dm.files)  # every image, once
    records = list((cache / "checked_images").glob("*.json"))
    assert len(records) == 1 and str(demo_root.resolve()) in records[0].read_text()
    count_decodes.clear()
    _dm(demo_root, cache_dir=str(cache)).setup()  # the next run: nothing decoded
    assert count_decodes == []

    dog = demo_root / "dog" / "dog_0000.jpg"  # an interrupted copy: the file is cut short
    dog.write_bytes(dog.read_bytes()[:200])
    with pytest.raises(DataError, match="dog_0000.jpg"):
        _dm(demo_root, cache_dir=str(cache)).setup()
    assert count_decodes == [str(dog)]
    count_decodes.clear()
    with pytest.raises(DataError, match="dog_0000.jpg"):  # a failure is never remembered
        _dm(demo_root, cache_dir=str(cache)).setup()
    assert count_decodes == [str(dog)]

    bird = sorted((demo_root / "birds").iterdir())[0]  # same size, same mtime, other bytes
    st = bird.stat()
    bird.write_bytes(bytes(st.st_size))
    os.utime(bird, ns=(st.st_atime_ns, st.st_mtime_ns))
    count_decodes.clear()
    dm = _dm(demo_root, cache_dir=str(cache), skip_corrupt=True)
    dm.setup()
    assert {f"{dog}", f"{bird}"} <= set(count_decodes) and len(count_decodes) == 2
    assert {str(dog.relative_to(demo_root)), str(bird.relative_to(demo_root))} == set(dm.skipped)


def test_without_a_cache_dir_every_run_decodes_every_image(demo_root, count_decodes):
    dm = _dm(demo_root)
    dm.setup()
    _dm(demo_root).setup()
    assert len(count_decodes) == 2 * len(dm.files)


@pytest.mark.parametrize("record", ['{"format": "cvexp-checked-images-1", "root": "/elsewhere", "files": {}}',
                                    "not json", '["a list"]',
                                    '{"format": "cvexp-checked-images-1", "root": "ROOT", "files": {"x": "y"}}'])
def test_a_foreign_or_damaged_record_is_ignored_and_rewritten(demo_root, tmp_path, count_decodes, record):
    from cvexp.data.checked import record_path

    cache = tmp_path / "cache"
    path = record_path(cache, demo_root)
    path.parent.mkdir(parents=True)
    path.write_text(record.replace("ROOT", str(demo_root.resolve())))
    dm = _dm(demo_root, cache_dir=str(cache))
    dm.setup()
    assert len(count_decodes) == len(dm.files)
    count_decodes.clear()
    _dm(demo_root, cache_dir=str(cache)).setup()
    assert count_decodes == []


def test_a_record_that_cannot_be_written_costs_only_time(demo_root, tmp_path, monkeypatch, caplog, count_decodes):
    from cvexp.data import checked

    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checked, "atomic_write_bytes", full_disk)
    dm = _dm(demo_root, cache_dir=str(tmp_path / "cache"))
    dm.setup()  # the run goes on, with one warning
    assert len(dm.files) == len(count_decodes) and caplog.text.count("No space left on device") == 1
    assert not list((tmp_path / "cache" / "checked_images").glob("*.json"))


def test_the_wildlife_configs_remember_checks_in_the_cache_dir(compose_cfg):
    for option in ("wildlife", "demo_wildlife"):
        cfg = compose_cfg("train", [f"data={option}", "paths.data_dir=/data"])
        assert cfg.data.cache_dir == cfg.paths.cache_dir


def test_training_checks_its_test_images_before_it_trains(demo_root):
    dm = _dm(demo_root)
    dm.setup("test")
    test_file = dm.class_root / dm.files[dm.split["test"][0]]
    test_file.write_bytes(b"damaged")
    with pytest.raises(DataError, match=str(test_file)):  # at fit, not after hours of training
        _dm(demo_root).setup("fit")


def test_a_split_left_empty_by_a_small_dataset_is_one_line(tmp_path):
    root = write_demo_wildlife(tmp_path / "tiny", n_images=20)  # a few per class: 0.1 of them is no val image
    with pytest.raises(DataError, match=r"leaves the val split empty \(\d+ images") as e:
        _dm(root, split=[0.7, 0.1, 0.2]).setup("fit")
    assert "\n" not in str(e.value) and "raise the fraction of val" in str(e.value)


def test_tiny_png_is_readable(tmp_path):
    from PIL import Image

    from cvexp.data.images import is_readable_image, read_rgb

    for side in (1, 4, 7, 8):
        Image.new("RGB", (side, side), (200, 10, 10)).save(tmp_path / f"{side}.png")
        assert is_readable_image(tmp_path / f"{side}.png"), side
        assert read_rgb(tmp_path / f"{side}.png").shape == (side, side, 3)
