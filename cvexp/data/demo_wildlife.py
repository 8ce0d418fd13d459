"""A deterministic synthetic stand-in for the Russian Wildlife Dataset, in its real layout.

`write_demo_wildlife(root)` writes `<root>/<class>/<class>_<i>.jpg` for the ten classes, JPEGs of
varying size, imbalanced like the real data. Each class is told apart by what is drawn (shape,
texture and colour of the "animal", the scene around it), never by file name or image size:
sizes and positions are drawn from the same ranges for every class.

The writer is idempotent and safe to call from parallel jobs: it builds into a temporary folder
and renames it into place, with a marker file that records the generator version and settings.
Writing shows a progress bar (`cvexp.io.progress`); a copy already in place is not rewritten.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from cvexp.data.cache import write_once
from cvexp.data.labels import WILDLIFE_CLASSES, WILDLIFE_COUNTS
from cvexp.io.progress import progress

GENERATOR_VERSION = 1


def class_counts(n_images: int) -> dict[str, int]:
    """Split `n_images` over the classes in the real dataset's proportions (at least 5 each)."""
    total = sum(WILDLIFE_COUNTS.values())
    return {c: max(5, round(n_images * WILDLIFE_COUNTS[c] / total)) for c in WILDLIFE_CLASSES}


def write_demo_wildlife(root: str | os.PathLike, n_images: int = 1200, seed: int = 0) -> Path:
    """Write the demo dataset into `root` unless an identical one is already there; return `root`."""
    def fill(tmp: Path) -> None:
        counts = class_counts(n_images)
        jobs = [(label, cls, i) for label, cls in enumerate(WILDLIFE_CLASSES) for i in range(counts[cls])]
        for cls in WILDLIFE_CLASSES:
            (tmp / cls).mkdir()
        for label, cls, i in progress(jobs, len(jobs), "demo wildlife images"):
            img = render(cls, np.random.default_rng([seed, label, i]))
            cv2.imwrite(str(tmp / cls / f"{cls}_{i:04d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])

    return write_once(root, "demo_wildlife", {"version": GENERATOR_VERSION, "n_images": n_images, "seed": seed}, fill)


# ------------------------------------------------------------------------------ drawing helpers
def _jitter(rng: np.random.Generator, bgr, amount: int = 25):
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in bgr)


def _background(rng: np.random.Generator, h: int, w: int, kind: str) -> np.ndarray:
    """Forest, snow, grass or sky scenes; every animal class appears on several of them."""
    palettes = {
        "forest": ((40, 80, 40), (60, 110, 70)),
        "grass": ((60, 140, 110), (90, 170, 140)),
        "snow": ((215, 215, 210), (245, 245, 240)),
        "dirt": ((70, 100, 130), (100, 130, 160)),
        "sky": ((220, 170, 120), (250, 210, 170)),
    }
    lo, hi = palettes[kind]
    top = np.array(_jitter(rng, lo), np.float32)
    bottom = np.array(_jitter(rng, hi), np.float32)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    img = (top * (1 - t) + bottom * t) * np.ones((1, w, 1), np.float32)
    noise = rng.normal(0, 12, (h // 4 + 1, w // 4 + 1, 1)).astype(np.float32)
    img += cv2.resize(noise, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]
    for _ in range(int(rng.integers(0, 4))):  # distractor twigs/trunks
        x = int(rng.integers(0, w))
        cv2.line(img, (x, 0), (x + int(rng.integers(-20, 21)), h), _jitter(rng, (30, 50, 60), 15),
                 int(rng.integers(1, 4)))
    return np.clip(img, 0, 255).astype(np.uint8)


def _body(rng, h, w, scale=(0.35, 0.6), aspect=(1.4, 2.0)):
    bw = int(w * rng.uniform(*scale))
    bh = max(8, int(bw / rng.uniform(*aspect)))
    cx = int(rng.uniform(0.3, 0.7) * w)
    cy = int(rng.uniform(0.4, 0.7) * h)
    return cx, cy, bw // 2, bh // 2


def _ellipse_mask(h, w, cx, cy, ax, ay, angle=0.0):
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (cx, cy), (ax, ay), angle, 0, 360, 255, -1)
    return m


def _quadruped(img, rng, body_bgr, leg_len=0.9, leg_w=0.12, head=True):
    h, w = img.shape[:2]
    cx, cy, ax, ay = _body(rng, h, w)
    for k in (-0.7, -0.35, 0.35, 0.7):
        x = int(cx + k * ax)
        cv2.line(img, (x, cy), (x, int(cy + ay + leg_len * ay)), body_bgr, max(2, int(leg_w * ax)))
    cv2.ellipse(img, (cx, cy), (ax, ay), 0, 0, 360, body_bgr, -1)
    if head:
        side = 1 if rng.random() < 0.5 else -1
        cv2.circle(img, (int(cx + side * ax * 1.05), int(cy - ay * 0.6)), max(3, int(ay * 0.6)), body_bgr, -1)
    return cx, cy, ax, ay


def _spots(img, rng, mask, n, radius, bgr, ring=False):
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return
    for j in rng.integers(0, len(xs), n):
        r = max(1, int(radius * rng.uniform(0.7, 1.3)))
        if ring:
            cv2.circle(img, (int(xs[j]), int(ys[j])), r, bgr, max(1, r // 2))
        else:
            cv2.circle(img, (int(xs[j]), int(ys[j])), r, bgr, -1)


def _stripes(img, rng, mask, bgr, period, thickness):
    h, w = mask.shape
    stripes = np.zeros_like(mask)
    tilt = int(rng.integers(-6, 7))
    for x in range(-h, w + h, max(3, period)):
        cv2.line(stripes, (x, 0), (x + tilt, h), 255, thickness)
    img[(stripes > 0) & (mask > 0)] = bgr


# ------------------------------------------------------------------------------ one painter a class
def _leopard(img, rng):
    cx, cy, ax, ay = _quadruped(img, rng, _jitter(rng, (60, 170, 225), 20))
    _spots(img, rng, _ellipse_mask(*img.shape[:2], cx, cy, ax, ay), 40, max(2, ax // 9),
           _jitter(rng, (20, 30, 40), 10), ring=True)


def _tiger(img, rng):
    cx, cy, ax, ay = _quadruped(img, rng, _jitter(rng, (20, 110, 235), 20))
    _stripes(img, rng, _ellipse_mask(*img.shape[:2], cx, cy, ax, ay), _jitter(rng, (15, 15, 20), 10),
             period=max(4, ax // 3), thickness=max(2, ax // 10))


def _birds(img, rng):
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(2, 7))):
        x, y = int(rng.uniform(0.1, 0.9) * w), int(rng.uniform(0.1, 0.6) * h)
        s = int(rng.uniform(0.05, 0.12) * w)
        bgr = _jitter(rng, (40, 40, 40), 30)
        pts = np.array([[x - s, y - s // 2], [x, y], [x + s, y - s // 2]], np.int32)
        cv2.polylines(img, [pts], False, bgr, max(2, s // 4))


def _bear(img, rng, bgr):
    h, w = img.shape[:2]
    cx, cy, ax, ay = _body(rng, h, w, scale=(0.45, 0.7), aspect=(1.1, 1.4))
    cv2.ellipse(img, (cx, cy), (ax, ay), 0, 0, 360, bgr, -1)
    hr = max(4, int(ay * 0.55))
    hx, hy = cx + int(ax * 0.8) * (1 if rng.random() < 0.5 else -1), cy - int(ay * 0.7)
    cv2.circle(img, (hx, hy), hr, bgr, -1)
    for dx in (-0.6, 0.6):  # round ears
        cv2.circle(img, (int(hx + dx * hr), int(hy - 0.9 * hr)), max(2, hr // 3), bgr, -1)


def _black_bear(img, rng):
    _bear(img, rng, _jitter(rng, (25, 25, 28), 12))


def _brown_bear(img, rng):
    _bear(img, rng, _jitter(rng, (35, 75, 120), 18))


def _dog(img, rng):
    bgr = _jitter(rng, (190, 200, 210), 35)
    cx, cy, ax, ay = _quadruped(img, rng, bgr, leg_len=1.4, leg_w=0.1)
    tail = (int(cx - ax * 1.5), int(cy - ay * 1.6))
    cv2.line(img, (int(cx - ax * 0.9), cy), tail, bgr, max(2, ay // 4))


def _roe_deer(img, rng):
    cx, cy, ax, ay = _quadruped(img, rng, _jitter(rng, (50, 90, 160), 15), leg_len=2.2, leg_w=0.06)
    cv2.ellipse(img, (int(cx - ax * 0.85), cy), (max(2, ax // 5), max(2, ay // 2)), 0, 0, 360,
                (235, 235, 235), -1)  # white rump patch


def _sika_deer(img, rng):
    cx, cy, ax, ay = _quadruped(img, rng, _jitter(rng, (40, 80, 150), 15), leg_len=2.2, leg_w=0.06)
    _spots(img, rng, _ellipse_mask(*img.shape[:2], cx, cy, int(ax * 0.85), int(ay * 0.7)), 25,
           max(1, ax // 14), _jitter(rng, (235, 240, 240), 10))


def _wild_boar(img, rng):
    bgr = _jitter(rng, (45, 55, 65), 12)
    cx, cy, ax, ay = _quadruped(img, rng, bgr, leg_len=0.5, leg_w=0.15, head=False)
    side = 1 if rng.random() < 0.5 else -1
    snout = np.array([[cx + side * ax * 0.8, cy - ay * 0.5], [cx + side * ax * 1.6, cy + ay * 0.2],
                      [cx + side * ax * 0.8, cy + ay * 0.6]], np.int32)
    cv2.fillPoly(img, [snout], bgr)
    m = _ellipse_mask(*img.shape[:2], cx, cy, ax, ay)
    ys, xs = np.nonzero(m)
    for j in rng.integers(0, len(xs), 60):  # bristles
        x, y = int(xs[j]), int(ys[j])
        cv2.line(img, (x, y), (x + int(rng.integers(-3, 4)), y - 4), _jitter(rng, (90, 100, 110), 20), 1)


def _people(img, rng):
    h, w = img.shape[:2]
    for _ in range(int(rng.integers(1, 3))):
        ph = int(rng.uniform(0.5, 0.8) * h)
        pw = max(6, ph // 4)
        x = int(rng.uniform(0.2, 0.8) * w)
        y = int(rng.uniform(0.15, 0.3) * h)
        shirt = tuple(int(c) for c in rng.integers(0, 256, 3))
        cv2.rectangle(img, (x - pw // 2, y + pw), (x + pw // 2, y + ph // 2), shirt, -1)
        trousers = _jitter(rng, (60, 50, 40), 30)
        cv2.rectangle(img, (x - pw // 2, y + ph // 2), (x + pw // 2, y + ph), trousers, -1)
        cv2.circle(img, (x, y + pw // 2), max(3, pw // 2), _jitter(rng, (140, 170, 215), 25), -1)


PAINTERS = {
    "amur_leopard": (_leopard, ("forest", "snow", "grass")),
    "amur_tiger": (_tiger, ("forest", "snow", "grass")),
    "birds": (_birds, ("sky", "forest", "snow")),
    "black_bear": (_black_bear, ("forest", "grass", "dirt")),
    "brown_bear": (_brown_bear, ("forest", "grass", "snow")),
    "dog": (_dog, ("dirt", "grass", "snow")),
    "roe_deer": (_roe_deer, ("forest", "grass", "snow")),
    "sika_deer": (_sika_deer, ("forest", "grass", "dirt")),
    "wild_boar": (_wild_boar, ("forest", "dirt", "snow")),
    "people": (_people, ("dirt", "forest", "grass")),
}


def render(cls: str, rng: np.random.Generator) -> np.ndarray:
    """One BGR camera-trap-like image of class `cls`; size drawn from the same range for all."""
    painter, scenes = PAINTERS[cls]
    w = int(rng.integers(96, 193))
    h = int(rng.integers(80, 161))
    img = _background(rng, h, w, scenes[int(rng.integers(0, len(scenes)))])
    painter(img, rng)
    if rng.random() < 0.15:  # night-time infrared shot
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    img = img.astype(np.float32) * rng.uniform(0.75, 1.2) + rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)
