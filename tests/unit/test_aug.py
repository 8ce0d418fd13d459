"""Augmentation options (conf/aug): each builds and transforms an image into the model's input;
single-technique options apply exactly their technique; the preview grid is written."""

from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from cvexp.engine.config import config_dir
from cvexp.data.transforms import build_pipeline

# classification options (seg_* options are for segmentation: image + mask, tested with it)
OPTIONS = sorted(p.stem for p in (Path(config_dir()) / "aug").glob("*.yaml") if not p.stem.startswith("seg_"))
SINGLE = {"flip": A.HorizontalFlip, "color": A.ColorJitter, "affine": A.Affine, "cutout": A.CoarseDropout,
          "randaugment": A.SomeOf}
SIZE = 48


def test_expected_options_exist():
    assert {"none", "basic", "strong", *SINGLE} <= set(OPTIONS)


def scene(h=70, w=90, seed=0) -> np.ndarray:
    """A left/right- and up/down-asymmetric colour image with texture, uint8 RGB."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.linspace(20, 230, w, dtype=np.uint8)[None, :]
    img[..., 1] = np.linspace(40, 200, h, dtype=np.uint8)[:, None]
    img[..., 2] = 90
    img[10:30, 5:25] = (250, 250, 30)
    img = np.clip(img.astype(int) + rng.integers(-10, 11, img.shape), 1, 255).astype(np.uint8)
    return img


@pytest.fixture(scope="module")
def aug_cfgs(tmp_path_factory):
    """The `aug` node of every option, composed once for the module."""
    from conftest import compose_config

    tmp = tmp_path_factory.mktemp("aug")
    return {o: compose_config("train", [f"aug={o}", f"data.image_size={SIZE}"], tmp / "run").aug for o in OPTIONS}


def transforms(aug_cfgs, option, part):
    """Fresh transform objects (each call instantiates anew)."""
    return instantiate(aug_cfgs[option][part], _convert_="all")


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("part", ["train", "eval"])
def test_option_gives_the_model_input(aug_cfgs, option, part):
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    pipe = build_pipeline(transforms(aug_cfgs, option, part), mean, std, seed=1)
    for seed in range(3):
        x = pipe(image=scene(seed=seed))["image"]
        assert isinstance(x, torch.Tensor)
        assert x.shape == (3, SIZE, SIZE) and x.dtype == torch.float32
        assert torch.isfinite(x).all()
    # raw (un-normalised) output of the option's own transforms stays a uint8 HWC image
    raw = A.Compose(transforms(aug_cfgs, option, part), seed=2)(image=scene())["image"]
    assert raw.shape == (SIZE, SIZE, 3) and raw.dtype == np.uint8


@pytest.mark.parametrize("option", sorted(SINGLE))
def test_single_technique_is_resize_plus_that_technique(aug_cfgs, option):
    train = transforms(aug_cfgs, option, "train")
    assert [type(t) for t in train] == [A.Resize, SINGLE[option]]
    assert [type(t) for t in transforms(aug_cfgs, option, "eval")] == [A.Resize]


def draws(aug_cfgs, option, n=12, seed=0):
    pipe = A.Compose(transforms(aug_cfgs, option, "train"), seed=seed)
    img = scene()
    ref = A.Compose(transforms(aug_cfgs, option, "eval"))(image=img)["image"]
    return ref, [pipe(image=img)["image"] for _ in range(n)]


@pytest.mark.parametrize("option", sorted(SINGLE))
def test_single_technique_really_changes_the_image(aug_cfgs, option):
    ref, outs = draws(aug_cfgs, option)
    changed = [o for o in outs if not np.array_equal(o, ref)]
    assert changed, f"aug={option}: 12 seeded draws all equal the un-augmented image"


def test_each_technique_does_what_its_name_says(aug_cfgs):
    # flip: some draws are the exact mirror image, the others untouched
    ref, outs = draws(aug_cfgs, "flip")
    mirrored = sum(np.array_equal(o, ref[:, ::-1]) for o in outs)
    same = sum(np.array_equal(o, ref) for o in outs)
    assert mirrored >= 1 and mirrored + same == len(outs)
    # color: pixel values change but no pixel moves (gradient direction kept)
    ref, outs = draws(aug_cfgs, "color")
    changed = [o for o in outs if not np.array_equal(o, ref)]
    assert changed
    for o in changed:
        assert np.corrcoef(o[..., 1].mean(1), ref[..., 1].mean(1))[0, 1] > 0.9
    # affine: geometry moves (the bright square leaves its place in some draw)
    ref, outs = draws(aug_cfgs, "affine")
    square = (slice(int(10 * SIZE / 70) + 2, int(30 * SIZE / 70) - 2), slice(int(5 * SIZE / 90) + 2, int(25 * SIZE / 90) - 2))
    assert any(np.abs(o[square].astype(int) - ref[square].astype(int)).mean() > 20 for o in outs)
    # cutout: rectangles of zeros appear (the scene has none)
    ref, outs = draws(aug_cfgs, "cutout")
    assert (ref == 0).all(-1).sum() == 0
    holes = [(o == 0).all(-1).sum() for o in outs]
    assert max(holes) >= (0.15 * SIZE) ** 2 * 0.9
    # randaugment: two ops per image, so every draw differs from the original
    ref, outs = draws(aug_cfgs, "randaugment")
    assert sum(not np.array_equal(o, ref) for o in outs) >= len(outs) - 1


def test_strong_adds_the_required_kinds(aug_cfgs):
    train = transforms(aug_cfgs, "strong", "train")
    kinds = {type(t) for t in train}
    inner = {type(x) for t in train if isinstance(t, (A.OneOf, A.SomeOf)) for x in t.transforms}
    assert A.ColorJitter in kinds and A.Affine in kinds
    assert {A.GaussianBlur, A.GaussNoise} & (kinds | inner)
    assert {A.CoarseDropout, A.Erasing} & kinds


def test_preview_writes_a_grid(compose_cfg):
    from PIL import Image

    from cvexp.preview import GRID_FILE, pick_sources, preview

    cfg = compose_cfg("preview", ["aug=cutout", "data.n_images=200", "data.image_size=32", "n_images=3",
                                  "n_samples=2"])
    preview(cfg)
    png = Path(cfg.paths.output_dir) / GRID_FILE
    assert png.is_file()
    w, h = Image.open(png).size
    assert w > 150 and h > 3 * 100  # 3 rows of 1 + 2 panels
    labels = [0] * 5 + [1] * 5 + [2] * 5
    picked = pick_sources(labels, 3, seed=0)
    assert sorted(labels[i] for i in picked) == [0, 1, 2]
    assert pick_sources(labels, 3, seed=0) == picked


IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@pytest.mark.parametrize("shape,mean,std", [((37, 53, 3), *IMAGENET), ((224, 224, 3), *IMAGENET),
                                            ((720, 1280, 3), *IMAGENET), ((37, 53, 3), (0.5,), (0.25,)),
                                            ((16, 9, 4), (0.5,), (0.25,)),
                                            ((16, 9, 4), (0.1, 0.2, 0.3, 0.4), (0.9, 0.8, 0.7, 0.6))])
def test_lut_normalize_equals_albumentations_to_the_bit(shape, mean, std):
    """The Normalize every pipeline ends with gives albumentations' own output, bit for bit, for
    every 8-bit value; other inputs go to albumentations itself."""
    import pickle

    from cvexp.data.transforms import LutNormalize

    rng = np.random.default_rng(sum(shape))
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    img.reshape(-1)[:256] = np.arange(256, dtype=np.uint8)  # every 8-bit value occurs
    ours = LutNormalize(mean=mean, std=std, max_pixel_value=255.0)
    ref = A.Normalize(mean=mean, std=std, max_pixel_value=255.0)
    out = ours(image=img)["image"]
    assert out.dtype == np.float32 and np.array_equal(out, ref(image=img)["image"])
    assert ours._lut is not None  # the fast path ran
    copy = pickle.loads(pickle.dumps(ours))  # DataLoader workers get a copy
    assert np.array_equal(copy(image=img)["image"], out)
    for view in (img[:, ::-1], img[::2, ::3], img[..., ::-1]):  # flips and crops hand over views
        assert np.array_equal(ours(image=view)["image"], ref(image=view)["image"])
    floats = img.astype(np.float32)
    assert np.array_equal(ours(image=floats)["image"], ref(image=floats)["image"])
    gray = img[..., 0]
    assert np.array_equal(ours(image=gray)["image"], ref(image=gray)["image"])


def test_every_pipeline_ends_in_the_lut_normalize_with_the_same_output():
    from cvexp.data.transforms import LutNormalize

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

    def steps():  # each pipeline its own transforms: Compose(seed=...) seeds the objects it holds
        return [A.RandomResizedCrop(size=(SIZE, SIZE), scale=(0.6, 1.0)), A.HorizontalFlip(p=0.5)]

    fast = build_pipeline(steps(), mean, std, seed=3)
    assert isinstance(fast.transforms[-2], LutNormalize)
    plain = A.Compose(steps() + [A.Normalize(mean=mean, std=std, max_pixel_value=255.0),
                                 A.ToTensorV2()], seed=3)
    for k in range(5):
        img = scene(seed=k)
        assert torch.equal(fast(image=img)["image"], plain(image=img)["image"])


def test_preview_of_segmentation_data_is_one_line(compose_cfg):
    from cvexp.errors import ConfigError
    from cvexp.preview import preview

    cfg = compose_cfg("preview", ["data=demo_idd", "aug=seg_basic", "model=deeplabv3plus", "model.encoder_weights=null"])
    with pytest.raises(ConfigError, match="preview draws classification images") as e:
        preview(cfg)
    assert "\n" not in str(e.value) and "data=demo_wildlife" in str(e.value)
