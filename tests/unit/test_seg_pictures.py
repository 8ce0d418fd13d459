"""Segmentation result pictures (`plot_panels`): numpy + PIL, one row per image, palette colours
in the truth/prediction tiles, a legend of exactly the classes shown."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from cvexp.analysis import seg_visualize as V

PALETTE = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (40, 220, 220)]
NAMES = ["road", "car", "sky", "sign", "pole"]


def _row(truth_classes, pred_classes, h=16, w=32, label="img  mIoU 0.50"):
    """Left half / right half in two classes; the prediction likewise."""
    truth = np.full((h, w), truth_classes[0], np.uint8)
    truth[:, w // 2:] = truth_classes[1]
    pred = np.full((h, w), pred_classes[0], np.uint8)
    pred[:, w // 2:] = pred_classes[1]
    image = np.full((h, w, 3), 128, np.uint8)
    return {"image": image, "truth": truth, "pred": pred, "label": label}


def _layout(rows):
    """Where the tiles are: the tile side and the top of each row, as plot_panels lays them out."""
    side = V._tile_side(*rows[0]["truth"].shape)
    h_head = V._text_height(V._font(14))
    tops, y = [], V._MARGIN + h_head + 2
    for row in rows:
        tops.append(y)
        y += row["truth"].shape[0] * side // max(row["truth"].shape) + 2 + V._text_height(V._font(12)) + V._GAP
    return side, tops


def test_picture_grows_with_the_rows(tmp_path):
    one = Image.open(V.plot_panels([_row((0, 1), (0, 1))], NAMES, PALETTE, tmp_path / "one.png"))
    three = Image.open(V.plot_panels([_row((0, 1), (0, 1))] * 3, NAMES, PALETTE, tmp_path / "three.png"))
    assert one.format == "PNG" and one.width == three.width
    side, _ = _layout([_row((0, 1), (0, 1))])
    row_h = 16 * side // 32 + 2 + V._text_height(V._font(12)) + V._GAP
    assert three.height - one.height == 2 * row_h
    titled = Image.open(V.plot_panels([_row((0, 1), (0, 1))], NAMES, PALETTE, tmp_path / "t.png", title="a title"))
    assert titled.height > one.height and titled.width == one.width


def test_truth_and_prediction_tiles_show_the_palette_colours(tmp_path):
    rows = [_row((0, 1), (0, 2)), _row((3, 255), (3, 4))]
    pic = np.asarray(Image.open(V.plot_panels(rows, NAMES, PALETTE, tmp_path / "p.png")).convert("RGB"))
    side, tops = _layout(rows)
    tile_w, tile_h = side, 16 * side // 32

    def at(r, col, right):  # centre of the left/right half of tile `col` in row `r`
        x = V._MARGIN + col * (tile_w + V._GAP) + (3 * tile_w // 4 if right else tile_w // 4)
        return tuple(int(v) for v in pic[tops[r] + tile_h // 2, x])

    assert at(0, 1, False) == PALETTE[0] and at(0, 1, True) == PALETTE[1]  # truth
    assert at(0, 2, False) == PALETTE[0] and at(0, 2, True) == PALETTE[2]  # prediction
    assert at(0, 3, False) == V.CORRECT_COLOR and at(0, 3, True) == V.WRONG_COLOR  # errors
    assert at(1, 1, False) == PALETTE[3] and at(1, 1, True) == V.IGNORE_COLOR  # ignore is black
    assert at(1, 2, True) == PALETTE[4]
    assert at(1, 3, True) == V.IGNORE_COLOR  # no error drawn where the truth is ignored
    assert at(0, 0, False) == (128, 128, 128)  # the image itself


def test_legend_lists_exactly_the_classes_present(tmp_path):
    rows = [_row((0, 1), (0, 4)), _row((1, 255), (1, 9))]  # 9: no name, not listed
    assert V._present_classes(rows, len(NAMES), len(PALETTE), 255) == [0, 1, 4]
    drawn = []
    from PIL import ImageDraw

    real = ImageDraw.ImageDraw.text

    def spy(self, xy, text, *a, **k):
        drawn.append(text)
        return real(self, xy, text, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ImageDraw.ImageDraw, "text", spy)
        V.plot_panels(rows, NAMES, PALETTE, tmp_path / "l.png", title="t")
    legend = [t for t in drawn if t in NAMES or t.startswith("ignore")]
    assert legend == ["road", "car", "pole", "ignore (255)"]
    assert {"image", "truth", "prediction", "errors (red)", "t", "img  mIoU 0.50"} <= set(drawn)


def test_big_tiles_are_shrunk_and_empty_rows_still_draw(tmp_path):
    big = _row((0, 1), (0, 1), h=600, w=1200)
    pic = Image.open(V.plot_panels([big], NAMES, PALETTE, tmp_path / "b.png"))
    assert pic.width == 4 * V.TILE_MAX + 3 * V._GAP + 2 * V._MARGIN
    assert Image.open(V.plot_panels([], NAMES, PALETTE, tmp_path / "e.png")).width > 0


def test_panels_do_not_need_matplotlib(tmp_path, monkeypatch):
    """Drawn with numpy + PIL alone: with matplotlib made unimportable the picture is still made."""
    import sys

    assert not hasattr(V, "plt")  # not imported at module top either
    for name in ("matplotlib", "matplotlib.pyplot", "matplotlib.patches"):
        monkeypatch.setitem(sys.modules, name, None)  # `import matplotlib...` now raises ImportError
    assert V.plot_panels([_row((0, 1), (0, 2))], NAMES, PALETTE, tmp_path / "m.png").is_file()
