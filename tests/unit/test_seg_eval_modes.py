"""Segmentation evaluation modes (cvexp/tasks/seg_inference.py) on toy networks whose predictions are
known by hand: full resolution, sliding windows, multi-scale and flip; the data module serving
masks at their own size; what a run records (evaluation.json, test/is_val)."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from cvexp.data.labels import label_space
from cvexp.data.segmentation import SegmentationDataModule, pad_collate
from cvexp.errors import ConfigError
from cvexp.tasks import seg_inference as I
from cvexp.tasks.segmentation import TEST_IS_VAL, SegmentationModule

COLOURS = {0: (255, 0, 0), 1: (0, 255, 0), 2: (0, 0, 255)}  # class id -> pure RGB (equidistant colours)
CS_LABEL_ID = {0: 7, 1: 8, 2: 11, 255: 0}  # road, sidewalk, building, unlabeled (-> 255)


@pytest.fixture(scope="module", autouse=True)
def _one_thread(one_thread):
    """Tiny convolutions: one thread each (the `one_thread` fixture in conftest)."""


class ColourNet(nn.Module):
    """Pointwise (1x1 conv): class c's logit is 10 x channel c of the [0, 1] image, so a pixel of pure
    colour COLOURS[c] predicts c. Translation- and flip-equivariant, blind to scale."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(3, num_classes, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.zero_()
            for c in range(3):
                self.conv.weight[c, c] = 10.0

    def forward(self, x):
        return self.conv(x)


class RecordingColourNet(ColourNet):
    """ColourNet that remembers the (h, w) of every input it sees."""

    def __init__(self, num_classes: int = 3):
        super().__init__(num_classes)
        self.seen: list[tuple[int, int]] = []

    def forward(self, x):
        self.seen.append(tuple(x.shape[-2:]))
        return super().forward(x)


class WindowPositionNet(nn.Module):
    """Two channels: the column and the row index of each pixel within the input it is given."""

    def forward(self, x):
        b, _, h, w = x.shape
        cols = torch.arange(w, dtype=torch.float32).expand(b, 1, h, w)
        rows = torch.arange(h, dtype=torch.float32).view(h, 1).expand(b, 1, h, w)
        return torch.cat([cols, rows], dim=1)


def block_image(classes: np.ndarray) -> torch.Tensor:
    """(1, 3, H, W) image in [0, 1] painting each pixel's class in its colour."""
    img = np.zeros((*classes.shape, 3), np.float32)
    for c, rgb in COLOURS.items():
        img[classes == c] = np.array(rgb) / 255.0
    return torch.from_numpy(img).permute(2, 0, 1)[None]


def two_aligned_blocks(h: int = 64, w: int = 96) -> np.ndarray:
    """Class regions whose edges lie on even coordinates (a 2x downsample keeps them exact)."""
    m = np.zeros((h, w), np.int64)
    m[:, 40:] = 1
    m[24:46, 40:] = 2
    m[10:20, 6:30] = 2
    return m


# ------------------------------------------------------------------------------ the mode config
def test_eval_mode_from_config_and_its_errors():
    m = I.EvalMode.from_config({"mode": "sliding", "crop": [32, 64], "stride": None, "scales": [0.5, 1]})
    assert m.crop == (32, 64) and m.window_stride == (21, 42) and m.scales == (0.5, 1.0) and m.passes == 2
    assert I.EvalMode.from_config(None) == I.EvalMode() and not I.EvalMode().original_resolution
    assert I.EvalMode.from_config({"mode": "full"}).original_resolution
    for bad, match in (({"mode": "whole"}, "resized, full, sliding"), ({"crop": 16, "stride": 20}, "larger than"),
                       ({"scales": []}, "non-empty"), ({"size": 0}, ">= 1"), ({"windows": 3}, "unknown key")):
        with pytest.raises(ConfigError, match=match) as e:
            I.EvalMode.from_config(bad)
        assert "\n" not in str(e.value)
    rec = I.EvalMode.from_config({"mode": "full", "size": 1280, "flip": True}).describe()
    assert rec == {"mode": "full", "size": 1280, "scales": [1.0], "flip": True, "labels": "original size"}


# ------------------------------------------------------------------------------ full resolution
def test_full_resolution_at_own_size_is_the_network_itself():
    x = torch.rand(2, 3, 37, 53)
    net = ColourNet()
    assert torch.equal(I.predict_logits(net, x, {"mode": "full"}), net(x))


@pytest.mark.parametrize("mode", [{"mode": "full", "size": 48}, {"mode": "full", "scales": [0.5]},
                                  {"mode": "full", "scales": [0.5, 1.0]}, {"mode": "sliding", "size": 48, "crop": 16}])
def test_prediction_at_half_size_upsampled_gives_the_exact_full_size_mask(mode):
    """96x64 blocks with even edges, predicted at 48x32: the 2x bilinear downsample keeps every block's
    colour exactly; upsampling the logits bilinearly gives each full-size pixel 9/16 of its own block's
    logits (at most 7/16 of others'), so argmax returns the full-size mask exactly."""
    truth = two_aligned_blocks()
    net = RecordingColourNet()
    logits = I.predict_logits(net, block_image(truth), mode)
    assert logits.shape == (1, 3, 64, 96)
    assert np.array_equal(logits.argmax(1)[0].numpy(), truth)
    if mode["mode"] == "full":
        assert (32, 48) in net.seen  # the network ran at half size
    else:
        assert set(net.seen) == {(16, 16)}  # windows of the half-size image


def test_scaled_size_rounds_like_mmsegmentation():
    assert I.scaled_size(1080, 1920, 1.0, 1280) == (720, 1280)
    assert I.scaled_size(1024, 2048, 0.75, None) == (768, 1536)
    assert I.scaled_size(3, 5, 0.1, None) == (1, 1)


# ------------------------------------------------------------------------------ sliding window
def test_window_grid():
    assert I.window_starts(10, 4, 3) == [0, 3, 6]
    assert I.window_starts(11, 4, 3) == [0, 3, 6, 7]  # the last window ends at the border
    assert I.window_starts(4, 8, 3) == [0]  # shorter than the crop: one window


def test_sliding_averages_overlapping_windows_exactly():
    """Windows of 4 every 3 on an 11-wide image start at 0, 3, 6, 7; a net answering each pixel's
    column inside its window gives, averaged over the windows covering it, these values."""
    out = I.sliding_logits(WindowPositionNet(), torch.zeros(1, 3, 4, 11), crop=(4, 4), stride=(3, 3), tile_batch=3)
    expected_cols = [0, 1, 2, 1.5, 1, 2, 1.5, 0.5, 1.5, 2.5, 3]
    assert torch.equal(out[0, 0], torch.tensor(expected_cols).expand(4, 11))
    assert torch.equal(out[0, 1], torch.arange(4.0).view(4, 1).expand(4, 11))  # one window high


def test_sliding_equals_one_full_forward_for_a_translation_equivariant_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 1), nn.ReLU(), nn.Conv2d(8, 5, 1))  # pointwise: equivariant
    x = torch.randn(2, 3, 50, 70)
    slid = I.predict_logits(net, x, {"mode": "sliding", "crop": 24, "stride": 16, "tile_batch": 2})
    with torch.no_grad():
        torch.testing.assert_close(slid, net(x), rtol=0, atol=1e-6)
        assert torch.equal(slid.argmax(1), net(x).argmax(1))


def test_sliding_bounds_each_forward_pass():
    seen = []

    class Recorder(ColourNet):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return super().forward(x)

    I.predict_logits(Recorder(), torch.rand(1, 3, 100, 150), {"mode": "sliding", "crop": 32, "stride": 30,
                                                               "tile_batch": 2})
    assert len(seen) == 10  # 4 x 5 windows of 32 (rows start 0, 30, 60, 68), two per pass
    assert set(seen) == {(2, 3, 32, 32)}


# ------------------------------------------------------------------------------ flip and scales
def _flip_symmetric_net() -> nn.Module:
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 4, 3, padding=1))
    with torch.no_grad():
        for m in net:
            if isinstance(m, nn.Conv2d):
                m.weight.copy_((m.weight + m.weight.flip(-1)) / 2)  # mirror-symmetric kernels
    return net


def test_flip_averaging_changes_nothing_for_a_mirror_symmetric_net():
    net, x = _flip_symmetric_net(), torch.randn(1, 3, 20, 30)
    plain = I.predict_logits(net, x, {"mode": "full"})
    flipped = I.predict_logits(net, x, {"mode": "full", "flip": True})
    torch.testing.assert_close(flipped, plain, rtol=0, atol=1e-5)
    assert torch.equal(flipped.argmax(1), plain.argmax(1))


def test_flip_is_applied():
    net = WindowPositionNet()  # column index: mirrored and mirrored back it reads w-1-x
    out = I.predict_logits(net, torch.zeros(1, 3, 2, 5), {"mode": "full", "flip": True})
    assert torch.equal(out[0, 0, 0], torch.full((5,), 2.0))  # (x + (4 - x)) / 2


# ------------------------------------------------------------------------------ through the data module
def write_cityscapes(root, name: str, classes: np.ndarray) -> None:
    img_dir, gt_dir = root / "leftImg8bit" / "val" / "toy", root / "gtFine" / "val" / "toy"
    img_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    img = np.full((*classes.shape, 3), 255, np.uint8)  # void stays white
    ids = np.zeros(classes.shape, np.uint8)
    for c, lid in CS_LABEL_ID.items():
        ids[classes == c] = lid
        if c in COLOURS:
            img[classes == c] = COLOURS[c]
    cv2.imwrite(str(img_dir / f"toy_{name}_000000_leftImg8bit.png"), img[..., ::-1])
    cv2.imwrite(str(gt_dir / f"toy_{name}_000000_gtFine_labelIds.png"), ids)


@pytest.fixture
def toy_cityscapes(tmp_path):
    """Two val images of different sizes whose masks hold 1-pixel details (lost when resized)."""
    a = two_aligned_blocks(64, 96)
    a[:, 11] = 2  # a 1-px building line
    a[60:, :8] = 255  # void
    b = np.zeros((48, 80), np.int64)
    b[:, 41:] = 1
    b[7, :] = 2  # a 1-px row
    b[30:33, 50:53] = 255
    write_cityscapes(tmp_path, "000000", a)
    write_cityscapes(tmp_path, "000001", b)
    return tmp_path, [a, b]


def toy_dm(root, **kw):
    return SegmentationDataModule(root=str(root), layout="cityscapes", base_size=48, image_size=32,
                                  mean=[0, 0, 0], std=[1, 1, 1], batch_size=2, num_workers=0,
                                  split_dirs={"train": "val", "val": "val", "test": "val"}, **kw)


def run_test(module, dm):
    import pytorch_lightning as pl

    trainer = pl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.test(module, datamodule=dm, verbose=False)
    return trainer


def cs_module(mode: dict) -> SegmentationModule:
    return SegmentationModule(ColourNet(19), class_names=label_space("cityscapes").class_names,
                              label_space="cityscapes", eval=mode)


@pytest.mark.parametrize("mode", [{"mode": "full"}, {"mode": "sliding", "crop": 32, "stride": 20},
                                  {"mode": "full", "flip": True}])
def test_full_resolution_scores_every_original_pixel_exactly(toy_cityscapes, mode):
    root, truths = toy_cityscapes
    dm = toy_dm(root)
    module = cs_module(mode)
    trainer = run_test(module, dm)
    cm = module.test_confusion
    valid = sum(int((t != 255).sum()) for t in truths)
    assert int(cm.sum()) == valid  # scored at the masks' own size, both images (padded batch of two)
    counts = np.bincount(np.concatenate([t[t != 255] for t in truths]), minlength=19)
    assert torch.equal(torch.diagonal(cm[:, :19]), torch.from_numpy(counts))  # every pixel right
    metrics = trainer.callback_metrics
    assert float(metrics["test/miou"]) == 1.0 and float(metrics["test/pixel_acc"]) == 1.0
    assert float(metrics[TEST_IS_VAL]) == 1.0  # test reads the val folder
    assert [r["miou"] for r in module.test_images] == [1.0, 1.0]


def test_resized_mode_scores_the_resized_masks(toy_cityscapes):
    root, truths = toy_cityscapes
    dm = toy_dm(root)
    module = cs_module({"mode": "resized"})
    run_test(module, dm)
    resized_valid = sum(int((dm.dataset("test")[i]["mask"] != 255).sum()) for i in range(2))
    assert int(module.test_confusion.sum()) == resized_valid < sum(int((t != 255).sum()) for t in truths)
    assert dm.eval_resolution == "base"


def test_data_module_serves_original_masks_and_pads_mixed_sizes(toy_cityscapes):
    root, truths = toy_cityscapes
    dm = toy_dm(root)
    dm.setup()
    assert dm.dataset("val")[0]["mask"].shape == (32, 64)  # base_size 48, padded to /32
    dm.set_eval_resolution("original")
    items = [dm.dataset("val")[i] for i in range(2)]
    assert [tuple(it["mask"].shape) for it in items] == [(64, 96), (48, 80)]
    assert np.array_equal(items[1]["mask"].numpy(), np.where(truths[1] == 255, 255, truths[1]))
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape == (2, 3, 64, 96) and batch["size"].tolist() == [[64, 96], [48, 80]]
    assert bool((batch["mask"][1, 48:] == 255).all()) and bool((batch["mask"][1, :, 80:] == 255).all())
    assert dm.dataset("train", augment=True)[0]["image"].shape[-1] == 32  # training unchanged
    with pytest.raises(ConfigError):
        dm.set_eval_resolution("native")


def test_pad_collate():
    items = [{"image": torch.ones(3, 2, 3), "mask": torch.zeros(2, 3, dtype=torch.long), "id": "a", "index": 0},
             {"image": torch.ones(3, 4, 1), "mask": torch.ones(4, 1, dtype=torch.long), "id": "b", "index": 5}]
    b = pad_collate(items)
    assert b["image"].shape == (2, 3, 4, 3) and b["mask"].shape == (2, 4, 3)
    assert b["size"].tolist() == [[2, 3], [4, 1]] and b["index"].tolist() == [0, 5] and b["id"] == ["a", "b"]
    assert float(b["image"][0, :, 2:].abs().sum()) == 0 and bool((b["mask"][1, :, 1:] == 255).all())


def test_evaluation_record_and_test_is_val_line(toy_cityscapes, tmp_path, caplog):
    from cvexp.analysis.seg_report import write_evaluation_record

    root, _ = toy_cityscapes
    dm = toy_dm(root)
    with caplog.at_level(logging.WARNING, logger="cvexp.data.segmentation"):
        dm.setup()
    lines = [r.getMessage() for r in caplog.records if "test = val" in r.getMessage()]
    assert len(lines) == 1 and "Cityscapes" in lines[0] and "\n" not in lines[0]
    module = cs_module({"mode": "sliding", "crop": 32})
    module.adapt_to(dm)
    assert dm.eval_resolution == "original" and module.test_is_val is True
    record = json.loads(write_evaluation_record(tmp_path, module, dm).read_text())
    assert record["mode"] == "sliding" and record["crop"] == [32, 32] and record["labels"] == "original size"
    assert record["test_is_val"] is True and record["scored_split"] == "test"
    module.scored_split = "train"
    assert module.test_is_val is False
    flat = SegmentationDataModule(root=str(root), layout="idd_flat")
    assert not flat.test_is_val  # a random split has its own test images


def test_inference_leaves_the_input_alone():
    x = torch.rand(1, 3, 8, 12)
    x0 = x.clone()
    out = I.predict_logits(nn.Identity(), x, {"mode": "full", "scales": [1.0, 0.5], "flip": True})
    assert torch.equal(x, x0) and out.shape == x.shape


# ------------------------------------------------------------------------------ result pictures

def test_panel_candidates_keep_exactly_what_the_pictures_pick():
    """The test pass keeps the predictions of the images the pictures will show (first n, lowest
    mIoU, failing classes; ties in test order, NaN mIoU) and no others."""
    from cvexp.analysis.seg_report import MAX_FAILURE_PANELS, PanelCandidates, panel_picks

    rng = np.random.default_rng(0)
    names = ["a", "b", "c"]
    for trial in range(30):
        n = int(rng.integers(1, 40))
        records = []
        for i in range(n):
            iou = rng.choice([0.0, 0.3, 0.5, 0.8, 1.0, np.nan], size=3)
            miou = float(np.nanmean(iou)) if not np.isnan(iou).all() else float("nan")
            records.append({"id": f"img{i}", "index": 100 + i, "miou": miou, "iou": iou,
                            "truth_pixels": np.where(np.isnan(iou), 0, rng.integers(1, 50, 3))})
        nv, k = int(rng.integers(0, 5)), int(rng.integers(0, 7))
        keep = PanelCandidates(nv, k, 0.5)
        for r in records:
            keep.offer(r, torch.full((2, 2), r["index"] % 7))
        picks = panel_picks(records, nv, k, 0.5, names)
        assert set(keep.preds) == picks.indices, trial
        assert len(picks.failing) <= MAX_FAILURE_PANELS and len(picks.worst) == min(
            k, sum(not np.isnan(r["miou"]) for r in records))
        for i, p in keep.preds.items():
            assert p.dtype == np.uint8 and int(p[0, 0]) == i % 7


def test_result_pictures_reuse_the_test_pass_predictions(toy_cityscapes, tmp_path, monkeypatch):
    """The pictures are drawn from the test pass's predictions (no second forward pass) and are the
    same pictures a second pass would draw."""
    from cvexp.analysis import seg_report

    root, _ = toy_cityscapes
    dm = toy_dm(root)
    module = cs_module({"mode": "full"})
    module.n_visualize, module.k_failures = 2, 1
    run_test(module, dm)
    assert set(module.panel_preds) == {0, 1}
    calls = []
    monkeypatch.setattr(module, "infer", lambda x: calls.append(x) or ColourNet(19)(x))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    reused = seg_report.write_segmentation_results(tmp_path / "a", module, dm)
    assert calls == []  # no forward pass for the pictures
    module._panel_candidates.preds.clear()  # an older module without them: predicted again
    again = seg_report.write_segmentation_results(tmp_path / "b", module, dm)
    assert len(calls) == 2
    from PIL import Image

    for key in ("predictions", "failures_lowest_miou"):
        assert np.array_equal(np.asarray(Image.open(reused[key])), np.asarray(Image.open(again[key])))
