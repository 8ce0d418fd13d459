"""Large JPEGs decode at reduced size when the network needs far fewer pixels (cvexp.data.images)."""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np
import pytest

from cvexp.data.images import decode_factor, jpeg_size, read_rgb
from cvexp.data.wildlife import WildlifeDataModule


def _photo(path, w=800, h=600):
    """A smooth picture with edges (what JPEG's DCT scaling is meant for)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // w), (y * 255 // h), ((x // 50 + y // 50) % 2) * 200], -1).astype(np.uint8)
    cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return path


def test_decode_factor():
    assert decode_factor((800, 600), 64) == 8  # 600 / 8 = 75 >= 64
    assert decode_factor((800, 600), 128) == 4
    assert decode_factor((800, 600), 300) == 2
    assert decode_factor((800, 600), 301) == 1
    assert decode_factor((800, 600), None) == 1 and decode_factor(None, 64) == 1


def test_reduced_read_is_the_full_image_scaled(tmp_path):
    path = _photo(tmp_path / "a.jpg")
    assert jpeg_size(path) == (800, 600)
    full = read_rgb(path)
    small = read_rgb(path, min_side=128)
    assert full.shape == (600, 800, 3) and small.shape == (150, 200, 3)
    a = cv2.resize(full, (64, 64), interpolation=cv2.INTER_AREA).astype(int)
    b = cv2.resize(small, (64, 64), interpolation=cv2.INTER_AREA).astype(int)
    assert np.abs(a - b).mean() < 3.0  # the same picture at the network's size (about 1% of the range)
    png = tmp_path / "b.png"
    cv2.imwrite(str(png), full[..., ::-1])
    assert jpeg_size(png) is None and read_rgb(png, min_side=64).shape == (600, 800, 3)  # PNGs: full decode


@pytest.mark.parametrize("train,expected", [([A.Resize(64, 64)], 128),
                                            ([A.RandomResizedCrop((64, 64))], None),
                                            ([A.Resize(64, 64), A.HorizontalFlip()], 128)])
def test_only_resizing_pipelines_decode_reduced(tmp_path, train, expected):
    dm = WildlifeDataModule(root=str(tmp_path), image_size=64, train_transforms=train,
                            eval_transforms=[A.Resize(64, 64)])
    assert dm.decode_min_side(dm.train_tf) == expected
    assert dm.decode_min_side(dm.eval_tf) == 128
    off = WildlifeDataModule(root=str(tmp_path), image_size=64, reduced_decode=False)
    assert off.decode_min_side(off.eval_tf) is None


def _png_header_only(path, width, height):
    """A PNG that declares width x height 1-bit pixels in a few dozen bytes (what a decompression
    bomb looks like to a header reader)."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) +
                     chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [10_000, 40_000])  # above MAX_PIXELS; above PIL's own error limit
def test_decompression_bombs_are_refused_before_decoding(tmp_path, monkeypatch, side):
    from cvexp.data import images
    from cvexp.errors import DataError
    from cvexp.predict import _read

    bomb = _png_header_only(tmp_path / "bomb.png", side, side)
    assert bomb.stat().st_size < 100
    monkeypatch.setattr(images.cv2, "imread", lambda *a, **k: pytest.fail("decoded a bomb"))
    with pytest.raises(DataError, match="more than cvexp decodes") as e:
        images.read_rgb(bomb)
    assert "\n" not in str(e.value) and str(bomb) in str(e.value)
    assert not images.is_readable_image(bomb)
    skipped = []
    assert _read(bomb, skipped) is None and skipped == [str(bomb)]


def test_header_size_of_ordinary_images(tmp_path):
    from cvexp.data.images import MAX_PIXELS, header_size

    from PIL import Image

    Image.new("RGB", (40, 30)).save(tmp_path / "a.png")
    assert header_size(tmp_path / "a.png") == ((40, 30), "PNG")
    (tmp_path / "b.txt").write_text("not an image")
    assert header_size(tmp_path / "b.txt") == (None, None)
    side = int(MAX_PIXELS ** 0.5)
    assert header_size(_png_header_only(tmp_path / "big.png", side, side))[0] == (side, side)  # at the limit: fine
