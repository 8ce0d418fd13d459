import hashlib

import cv2
import numpy as np

from cvexp.data.cache import MARKER
from cvexp.data.demo_wildlife import class_counts, write_demo_wildlife
from cvexp.data.labels import WILDLIFE_CLASSES, WILDLIFE_COUNTS


def _digest(root):
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.jpg")):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def test_real_layout_deterministic_and_imbalanced(tmp_path):
    a = write_demo_wildlife(tmp_path / "a", n_images=120, seed=3)
    b = write_demo_wildlife(tmp_path / "b", n_images=120, seed=3)
    assert sorted(d.name for d in a.iterdir() if d.is_dir()) == sorted(WILDLIFE_CLASSES)
    assert (a / MARKER).is_file()
    assert _digest(a) == _digest(b)
    counts = {c: len(list((a / c).glob("*.jpg"))) for c in WILDLIFE_CLASSES}
    assert counts == class_counts(120)
    # same imbalance as the real data: people is the rarest class, sika deer the most common
    assert min(counts, key=counts.get) == min(WILDLIFE_COUNTS, key=WILDLIFE_COUNTS.get) == "people"


def test_rewrite_is_a_noop_and_settings_change_rebuilds(tmp_path):
    root = write_demo_wildlife(tmp_path / "d", n_images=60)
    first = (root / "birds").stat().st_mtime_ns
    write_demo_wildlife(root, n_images=60)
    assert (root / "birds").stat().st_mtime_ns == first
    write_demo_wildlife(root, n_images=80)
    assert sum(1 for _ in root.rglob("*.jpg")) == sum(class_counts(80).values())


def test_sizes_vary_and_do_not_give_the_class_away(tmp_path):
    root = write_demo_wildlife(tmp_path / "d", n_images=400)
    sizes = {c: [cv2.imread(str(p)).shape[:2] for p in sorted((root / c).glob("*.jpg"))] for c in WILDLIFE_CLASSES}
    all_w = [w for v in sizes.values() for _, w in v]
    assert len(set(all_w)) > 20
    means = [np.mean([w for _, w in v]) for v in sizes.values()]
    # every class draws its size from the same range: class means are close to each other
    assert max(means) - min(means) < 30
