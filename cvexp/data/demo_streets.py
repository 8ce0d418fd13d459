"""Deterministic synthetic street scenes in the real IDD and Cityscapes layouts, for demo runs.

`write_demo_streets(root)` writes

    <root>/idd/leftImg8bit/{train,val}/<seq>/<id>_leftImg8bit.png
    <root>/idd/gtFine/{train,val}/<seq>/<id>_gtFine_polygons.json          (IDD raw label names)
    <root>/cityscapes/leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/cityscapes/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png (+ _color.png)

Every scene is a list of polygons drawn back to front; the image is painted object by object with
the same PIL fill the official mask tool uses, so the rasterised labels match the pixels exactly.
Each class has its own look (colour, texture, shape, place in the scene), so it can be learned.
The two domains differ visibly: IDD scenes are hazy and warm, with dusty roads without markings,
dirt road sides (`drivable fallback`), black-and-yellow curbs, many motorcycles with riders,
autorickshaws, billboards and striped poles, irregular colourful buildings; Cityscapes scenes are
cool and clear, with dark marked roads, sidewalks on both sides, more cars, regular grey building
rows, grass (`terrain`) strips and the ego car's hood at the bottom (void). IDD JSONs also hold
an occasional deleted object and a degenerate (2-point) polygon, which the rasteriser must skip.

The writer is idempotent and safe to call from parallel jobs: it builds into a temporary folder
and renames it into place, with a marker file that records the generator version and settings.
Writing shows a progress bar (`cvexp.io.progress`); a copy already in place is not rewritten.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from cvexp.data.cache import write_once
from cvexp.data.idd import fill_polygon, rasterize_polygons
from cvexp.data.labels import CITYSCAPES_LABELS, CITYSCAPES_NAME_TO_ID
from cvexp.io.progress import progress

GENERATOR_VERSION = 2  # bump whenever the output changes: cached copies are then rewritten
LAYOUTS = ("idd", "cityscapes")
SPLIT_DIRS = ("train", "val")
CS_CITIES = {"train": ("aachen", "bremen", "zurich"), "val": ("frankfurt", "lindau")}


@dataclass
class Obj:
    """One polygon of a scene: its label, points, how it is painted."""

    label: str
    polygon: list[list[int]]
    paint: str
    params: dict = field(default_factory=dict)
    deleted: bool = False

    @property
    def drawn(self) -> bool:
        return not self.deleted and len(self.polygon) >= 3


# --------------------------------------------------------------------------- the two domains
STYLES: dict[str, dict] = {
    "idd": {
        "horizon": (0.36, 0.5), "vp": (0.3, 0.7), "road_half": (0.32, 0.55),
        "sky": ((196, 202, 205), (228, 224, 212)),
        "buildings": ((205, 160, 140), (215, 190, 120), (150, 190, 188), (222, 150, 162), (185, 172, 150)),
        "p_building": 0.5, "p_tree": 0.4, "building_h": (0.15, 0.45),
        "vegetation": (84, 112, 52), "road": (118, 110, 100), "lane_marks": 0.1, "potholes": True,
        "side": {"drivable fallback": 0.65, "sidewalk": 0.35}, "curb_with_dirt": 0.3,
        "p_terrain": 0.0,
        "counts": {"car": (0, 2), "motorcycle": (1, 4), "autorickshaw": (0, 2), "person": (0, 3),
                   "bicycle": (0, 0), "pole": (1, 2), "billboard": (0, 1)},
        "p_rider": 0.8, "p_sign": 0.5, "p_ego": 0.0, "p_deleted": 0.25, "p_degenerate": 0.2,
        "car_colors": ((232, 232, 232), (190, 190, 196), (172, 32, 30), (60, 62, 150)),
        "clothes": ((220, 40, 120), (240, 150, 20), (30, 150, 200), (200, 30, 40), (250, 220, 60)),
        "pole": "striped", "sign": "triangle",
        "haze": ((215, 205, 185), (0.08, 0.25)), "brightness": (0.9, 1.15), "cast": (1.06, 1.0, 0.9),
    },
    "cityscapes": {
        "horizon": (0.4, 0.48), "vp": (0.42, 0.58), "road_half": (0.3, 0.45),
        "sky": ((95, 145, 205), (170, 200, 235)),
        "buildings": ((122, 120, 118), (150, 142, 128), (102, 102, 108), (166, 156, 142)),
        "p_building": 0.85, "p_tree": 0.15, "building_h": (0.25, 0.6),
        "vegetation": (58, 102, 40), "road": (80, 78, 86), "lane_marks": 0.9, "potholes": False,
        "side": {"sidewalk": 1.0}, "curb_with_dirt": 0.0,
        "p_terrain": 0.35,
        "counts": {"car": (2, 5), "motorcycle": (0, 1), "autorickshaw": (0, 0), "person": (1, 3),
                   "bicycle": (0, 1), "pole": (2, 4), "billboard": (0, 0)},
        "p_rider": 0.5, "p_sign": 0.6, "p_ego": 0.7, "p_deleted": 0.0, "p_degenerate": 0.0,
        "car_colors": ((28, 40, 130), (180, 24, 24), (200, 200, 206), (32, 32, 34), (236, 236, 236)),
        "clothes": ((70, 70, 90), (120, 40, 40), (40, 80, 120), (160, 160, 150), (90, 110, 70)),
        "pole": "grey", "sign": "disc",
        "haze": ((200, 210, 225), (0.0, 0.06)), "brightness": (0.85, 1.1), "cast": (0.96, 1.0, 1.06),
    },
}


def _jit(rng, rgb, amount=18):
    return tuple(float(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb)


def _pick(rng, seq):
    return seq[int(rng.integers(0, len(seq)))]


def _pts(points) -> list[list[int]]:
    return [[int(round(x)), int(round(y))] for x, y in points]


def _ellipse(cx, cy, rx, ry, n=12):
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return _pts(zip(cx + rx * np.cos(a), cy + ry * np.sin(a)))


# --------------------------------------------------------------------------- scene layout
def build_scene(rng: np.random.Generator, style: dict, w: int, h: int) -> list[Obj]:
    """The polygons of one scene, back to front."""
    hz = int(h * rng.uniform(*style["horizon"]))
    vp = w * rng.uniform(*style["vp"])
    objs: list[Obj] = [Obj("sky", _pts([(0, 0), (w - 1, 0), (w - 1, hz + 1), (0, hz + 1)]), "sky", {"hz": hz})]

    # far layer: building rows and trees along the horizon, taller towards the image sides
    x = -float(rng.integers(0, 8))
    while x < w:
        bw = float(rng.integers(max(6, w // 12), max(8, w // 5)))
        side_gain = 0.6 + 0.8 * abs(x + bw / 2 - vp) / w
        r = rng.random()
        if r < style["p_building"]:
            top = hz - h * rng.uniform(*style["building_h"]) * side_gain
            objs.append(Obj("building", _pts([(x, top), (x + bw, top), (x + bw, hz + 2), (x, hz + 2)]),
                            "building", {"color": _jit(rng, _pick(rng, style["buildings"])),
                                         "regular": style is STYLES["cityscapes"]}))
        elif r < style["p_building"] + style["p_tree"]:
            rad = bw * rng.uniform(0.5, 0.8)
            cy = hz - rad * rng.uniform(0.4, 0.9)
            angles = np.linspace(0, 2 * np.pi, 14, endpoint=False)
            pts = [(x + bw / 2 + rad * np.cos(a) * rng.uniform(0.8, 1.15),
                    cy + rad * np.sin(a) * rng.uniform(0.75, 1.1)) for a in angles]
            objs.append(Obj("vegetation", _pts(pts), "vegetation", {"color": _jit(rng, style["vegetation"], 10)}))
        x += bw

    # ground: road sides, then the road over them
    half = w * rng.uniform(*style["road_half"])
    centre = vp + w * rng.uniform(-0.1, 0.1)
    xl, xr = centre - half, centre + half
    bottom = h - 1
    edges = {"left": (xl, [(-2, hz), (vp, hz), (xl, bottom), (-2, bottom)]),
             "right": (xr, [(w + 1, hz), (vp, hz), (xr, bottom), (w + 1, bottom)])}
    for side, (xe, poly) in edges.items():
        kinds = list(style["side"])
        kind = kinds[int(rng.choice(len(kinds), p=np.array([style["side"][k] for k in kinds])))]
        objs.append(Obj(kind, _pts(poly), kind, {"hz": hz}))
        out = -1 if side == "left" else 1
        if style["p_terrain"] and rng.random() < style["p_terrain"]:
            tw = w * rng.uniform(0.06, 0.14)
            objs.append(Obj("terrain", _pts([(vp, hz), (xe, bottom), (xe + out * tw, bottom)]), "terrain"))
        if kind == "sidewalk" and style is STYLES["idd"] or (kind == "drivable fallback"
                                                              and rng.random() < style["curb_with_dirt"]):
            cw = rng.uniform(2.5, 4.0)
            objs.append(Obj("curb", _pts([(vp, hz), (xe, bottom), (xe + out * cw, bottom), (vp, hz + 1)]), "curb"))
    objs.append(Obj("road", _pts([(vp - 1, hz), (vp + 1, hz), (xr, bottom), (xl, bottom)]), "road",
                    {"hz": hz, "vp": vp, "centre": centre, "marks": rng.random() < style["lane_marks"],
                     "potholes": style["potholes"]}))

    def road_x(y: float, inside: bool) -> float:
        t = (y - hz) / max(1.0, bottom - hz)
        lo, hi = vp + (xl - vp) * t, vp + (xr - vp) * t
        if inside:
            return rng.uniform(lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo))
        sides = [r for r in ((max(-5.0, lo - 0.25 * w * t - 4), lo - 1), (hi + 1, min(w + 5.0, hi + 0.25 * w * t + 4)))
                 if r[1] > r[0]]
        if not sides:  # the road fills the width here
            return rng.uniform(lo, hi)
        return rng.uniform(*sides[int(rng.integers(0, len(sides)))])

    # things, sorted far to near so nearer ones overwrite
    things: list[tuple[float, list[Obj]]] = []
    for kind, (lo, hi) in style["counts"].items():
        for _ in range(int(rng.integers(lo, hi + 1))):
            yb = rng.uniform(hz + 4, h + 4)
            s = float(np.clip((yb - hz) / (h - hz), 0.15, 1.15))
            on_road = kind in ("car", "motorcycle", "autorickshaw", "bicycle") or (
                kind == "person" and style is STYLES["idd"] and rng.random() < 0.4)
            xc = road_x(yb, on_road)
            things.append((yb, _thing(kind, rng, style, xc, yb, s, w, h, hz)))
    for _, group in sorted(things, key=lambda t: t[0]):
        objs += group

    if rng.random() < style["p_ego"]:  # the hood of the recording car
        rise = h * rng.uniform(0.08, 0.14)
        pts = [(-2, h + 2), (-2, h - rise * 0.4), (w * 0.25, h - rise * 0.9), (w * 0.5, h - rise),
               (w * 0.75, h - rise * 0.9), (w + 1, h - rise * 0.4), (w + 1, h + 2)]
        objs.append(Obj("ego vehicle", _pts(pts), "ego"))
    if rng.random() < style["p_deleted"]:  # an annotator's deleted object: in the JSON, not in the image
        cx, cy = rng.uniform(0, w), rng.uniform(hz, h)
        objs.append(Obj("car", _pts([(cx - 9, cy), (cx + 9, cy), (cx + 9, cy - 7), (cx - 9, cy - 7)]),
                        "none", deleted=True))
    if rng.random() < style["p_degenerate"]:  # a 2-point polygon: skipped by the official tool
        cx = rng.uniform(0, w)
        objs.append(Obj("pole", _pts([(cx, hz - 10), (cx, h - 2)]), "none"))
    return objs


def _thing(kind, rng, style, x, yb, s, w, h, hz) -> list[Obj]:
    if kind == "car":
        cw = s * w * rng.uniform(0.22, 0.32)
        ch = cw * rng.uniform(0.5, 0.62)
        pts = [(x - cw / 2, yb), (x + cw / 2, yb), (x + cw / 2, yb - ch * 0.55), (x + cw * 0.3, yb - ch),
               (x - cw * 0.3, yb - ch), (x - cw / 2, yb - ch * 0.55)]
        return [Obj("car", _pts(pts), "car", {"color": _jit(rng, _pick(rng, style["car_colors"]), 12),
                                              "yb": yb, "ch": ch})]
    if kind == "autorickshaw":
        aw = s * w * rng.uniform(0.13, 0.17)
        ah = aw * rng.uniform(0.95, 1.15)
        pts = [(x - aw / 2, yb), (x + aw / 2, yb), (x + aw / 2, yb - ah * 0.6)]
        pts += [(x + aw / 2 * np.cos(a), yb - ah * 0.6 - ah * 0.4 * np.sin(a))
                for a in np.linspace(0.3, np.pi - 0.3, 6)]
        pts += [(x - aw / 2, yb - ah * 0.6)]
        top, body = ((22, 22, 22), (232, 196, 34)) if rng.random() < 0.5 else ((236, 200, 30), (36, 140, 64))
        return [Obj("autorickshaw", _pts(pts), "auto", {"top": top, "body": body, "yb": yb, "ah": ah})]
    if kind in ("motorcycle", "bicycle"):
        mw = s * w * rng.uniform(0.09, 0.12)
        mh = mw * 0.65
        pts = [(x - mw / 2, yb), (x + mw / 2, yb), (x + mw / 2, yb - mh * 0.6), (x + mw * 0.15, yb - mh),
               (x - mw * 0.3, yb - mh), (x - mw / 2, yb - mh * 0.5)]
        color = _jit(rng, (150, 22, 24) if rng.random() < 0.4 else (30, 30, 36), 10)
        out = [Obj(kind, _pts(pts), kind, {"yb": yb, "mh": mh, "color": color})]
        if rng.random() < style["p_rider"]:
            rh = s * h * 0.26
            ry = yb - mh * 0.7
            rpts = [(x - mw * 0.3, ry), (x + mw * 0.15, ry), (x + mw * 0.1, ry - rh * 0.7), (x + mw * 0.12, ry - rh),
                    (x - mw * 0.18, ry - rh), (x - mw * 0.22, ry - rh * 0.7)]
            out.append(Obj("rider", _pts(rpts), "human", {"shirt": _jit(rng, _pick(rng, style["clothes"]), 20),
                                                           "top": ry - rh, "height": rh, "helmet": True}))
        return out
    if kind == "person":
        ph = s * h * rng.uniform(0.32, 0.42)
        pw = ph * 0.32
        pts = [(x - pw / 2, yb), (x - pw * 0.45, yb - ph * 0.75), (x - pw * 0.22, yb - ph), (x + pw * 0.22, yb - ph),
               (x + pw * 0.45, yb - ph * 0.75), (x + pw / 2, yb)]
        return [Obj("person", _pts(pts), "human", {"shirt": _jit(rng, _pick(rng, style["clothes"]), 20),
                                                    "top": yb - ph, "height": ph, "helmet": False})]
    if kind == "pole":
        pw = max(1.6, s * 2.6)
        top = hz - h * rng.uniform(0.15, 0.35) * (0.5 + s)
        out = [Obj("pole", _pts([(x - pw / 2, yb), (x + pw / 2, yb), (x + pw / 2, top), (x - pw / 2, top)]), "pole",
                   {"kind": style["pole"]})]
        if rng.random() < style["p_sign"]:
            r = max(2.2, s * w * 0.035)
            cy = top + r
            if style["sign"] == "triangle":
                pts = _pts([(x - r * 1.1, cy + r * 0.8), (x + r * 1.1, cy + r * 0.8), (x, cy - r * 1.1)])
            else:
                pts = _ellipse(x, cy, r, r, 10)
            color = (30, 72, 172) if rng.random() < 0.6 else (196, 32, 30)
            out.append(Obj("traffic sign", pts, "sign", {"kind": style["sign"], "cx": x, "cy": cy, "r": r,
                                                         "color": color}))
        return out
    if kind == "billboard":
        bw, bh = w * rng.uniform(0.16, 0.26), h * rng.uniform(0.12, 0.2)
        bx = rng.uniform(0, w * 0.2) if rng.random() < 0.5 else rng.uniform(w * 0.8 - bw, w - bw)
        by = hz - h * rng.uniform(0.12, 0.3)
        color = tuple(float(c) for c in rng.integers(40, 256, 3))
        return [Obj("billboard", _pts([(bx, by), (bx + bw, by), (bx + bw, by + bh), (bx, by + bh)]), "billboard",
                    {"color": color, "y0": by, "y1": by + bh})]
    raise ValueError(kind)


# --------------------------------------------------------------------------- painting
def _object_mask(obj: Obj, w: int, h: int) -> np.ndarray:
    img = Image.new("L", (w, h), 0)
    fill_polygon(ImageDraw.Draw(img), obj.polygon, 1)
    return np.asarray(img) > 0


def _paint(canvas: np.ndarray, m: np.ndarray, obj: Obj, rng: np.random.Generator, style: dict) -> None:
    h, w = m.shape
    yy, xx = np.mgrid[0:h, 0:w]
    p = obj.params
    noise = rng.normal(0, 1, (h, w, 1))

    def put(color, where=None, grain=0.0):
        sel = m if where is None else (m & where)
        canvas[sel] = np.asarray(color, np.float32) + grain * noise[sel]

    kind = obj.paint
    if kind == "sky":
        lo, hi = np.asarray(style["sky"][0], np.float32), np.asarray(style["sky"][1], np.float32)
        t = np.clip(yy / max(1, p["hz"]), 0, 1)[..., None]
        canvas[m] = (lo * (1 - t) + hi * t)[m] + 2 * noise[m]
    elif kind == "building":
        put(p["color"], grain=4)
        dark = np.asarray(p["color"], np.float32) * 0.5
        if p["regular"]:
            win = ((yy % 5) < 2) & ((xx % 4) < 2)
        else:
            cell = ((yy // 6) * 31 + (xx // 5) * 17 + int(rng.integers(0, 1000))) % 7
            win = ((yy % 6) < 3) & ((xx % 5) < 2) & (cell < 3)
        put(dark, win, 3)
    elif kind == "vegetation":
        base = np.asarray(p["color"], np.float32)
        blotch = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 1.2)[..., None]
        canvas[m] = (base + 26 * blotch)[m] + 4 * noise[m]
    elif kind == "terrain":
        put((138, 168, 88), grain=9)
    elif kind == "road":
        put(_jit(rng, style["road"], 6), grain=4)
        if p["marks"]:
            t = np.clip((yy - p["hz"]) / max(1, h - p["hz"]), 0, 1)
            cx = p["vp"] + (p["centre"] - p["vp"]) * t
            dash = (np.abs(xx - cx) <= 0.4 + 1.2 * t) & ((yy + int(rng.integers(0, 6))) % 6 < 3) & (yy > p["hz"] + 2)
            put((222, 222, 218), dash, 4)
        if p["potholes"]:
            for _ in range(int(rng.integers(1, 4))):
                cx, cy = rng.uniform(0, w), rng.uniform(p["hz"] + 4, h)
                hole = ((xx - cx) / (2 + 0.2 * cy)) ** 2 + ((yy - cy) / 1.5) ** 2 < 1
                put(np.asarray(style["road"], np.float32) * 0.65, hole, 4)
    elif kind == "sidewalk":
        base = (158, 146, 150) if style is STYLES["cityscapes"] else (170, 164, 152)
        put(base, grain=4)
        put(np.asarray(base, np.float32) * 0.8, ((yy % 3) == 0) | ((xx % 5) == 0), 3)
    elif kind == "drivable fallback":
        put((152, 122, 86), grain=11)
    elif kind == "curb":
        put((28, 28, 28), ((yy // 2) % 2) == 0)
        put((228, 200, 42), ((yy // 2) % 2) == 1)
    elif kind == "car":
        put(p["color"], grain=3)
        put((52, 62, 78), (yy < p["yb"] - p["ch"] * 0.6) & (yy > p["yb"] - p["ch"] * 0.92), 3)  # windows
        put((18, 18, 20), yy > p["yb"] - p["ch"] * 0.14, 2)  # wheels and shadow
    elif kind == "auto":
        put(p["body"], grain=3)
        put(p["top"], yy < p["yb"] - p["ah"] * 0.55, 3)
        put((16, 16, 16), yy > p["yb"] - p["ah"] * 0.12, 2)
    elif kind in ("motorcycle", "bicycle"):
        if kind == "motorcycle":
            put(p["color"], grain=3)
            put((182, 182, 190), (yy > p["yb"] - p["mh"] * 0.55) & (yy < p["yb"] - p["mh"] * 0.4), 3)
        else:
            put((150, 150, 146), grain=3)
            put((118, 18, 30), (xx + yy) % 3 == 0, 3)  # the frame
        put((14, 14, 14), yy > p["yb"] - p["mh"] * 0.3, 2)
    elif kind == "human":
        put(p["shirt"], grain=4)
        head = yy < p["top"] + p["height"] * 0.2
        put((30, 30, 34) if p["helmet"] else (150, 105, 80), head, 3)
        if not p["helmet"]:
            put((44, 42, 60), yy > p["top"] + p["height"] * 0.6, 3)  # trousers
    elif kind == "pole":
        if p["kind"] == "striped":
            put((236, 236, 230), ((yy // 3) % 2) == 0, 3)
            put((26, 26, 26), ((yy // 3) % 2) == 1, 3)
        else:
            put((126, 126, 132), grain=3)
    elif kind == "sign":
        d = np.hypot(xx - p["cx"], yy - p["cy"])
        if p["kind"] == "triangle":
            put((240, 240, 240), grain=2)
            put((205, 28, 28), d > p["r"] * 0.55, 2)
        else:
            put(p["color"], grain=2)
            put((240, 240, 240), (d > p["r"] * 0.45) & (d < p["r"] * 0.7), 2)
    elif kind == "billboard":
        put(p["color"], grain=4)
        put(np.asarray(p["color"], np.float32) * 0.3, (((yy - int(p["y0"])) % 4) == 2) & ((xx % 7) < 5), 2)
    elif kind == "ego":
        put((38, 42, 52), grain=2)
        put((92, 98, 112), yy > h - 3, 2)
    else:
        raise ValueError(kind)


def render_scene(rng: np.random.Generator, layout: str, w: int = 128, h: int = 64) -> tuple[np.ndarray, list[Obj]]:
    """(H, W, 3) uint8 RGB image and the polygons it was painted from."""
    style = STYLES[layout]
    objs = build_scene(rng, style, w, h)
    canvas = np.zeros((h, w, 3), np.float32)
    for obj in objs:
        if obj.drawn:
            _paint(canvas, _object_mask(obj, w, h), obj, rng, style)
    haze_color, haze_range = style["haze"]
    a = rng.uniform(*haze_range)
    canvas = canvas * (1 - a) + np.asarray(haze_color, np.float32) * a
    canvas = canvas * rng.uniform(*style["brightness"]) * np.asarray(style["cast"], np.float32)
    canvas += rng.normal(0, 2.5, canvas.shape)
    return np.clip(canvas, 0, 255).astype(np.uint8), objs


def scene_json(objs: list[Obj], w: int, h: int) -> dict:
    """The IDD/Cityscapes polygons JSON of a scene."""
    return {"imgHeight": h, "imgWidth": w, "objects": [
        {"date": "01-Jan-2024 00:00:00", "deleted": int(o.deleted), "draw": True, "id": k, "label": o.label,
         "polygon": o.polygon, "user": "cvexp-demo", "verified": 0} for k, o in enumerate(objs)]}


_CS_COLORS = np.zeros((256, 3), np.uint8)
for _lb in CITYSCAPES_LABELS:
    if _lb.id >= 0:
        _CS_COLORS[_lb.id] = _lb.color


# --------------------------------------------------------------------------- writing
def _write_idd(root: Path, split: str, i: int, img: np.ndarray, objs: list[Obj]) -> None:
    seq, ident = str(i // 10), f"{i:06d}"
    h, w = img.shape[:2]
    (root / "leftImg8bit" / split / seq).mkdir(parents=True, exist_ok=True)
    (root / "gtFine" / split / seq).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "leftImg8bit" / split / seq / f"{ident}_leftImg8bit.png"), img[..., ::-1])
    (root / "gtFine" / split / seq / f"{ident}_gtFine_polygons.json").write_text(json.dumps(scene_json(objs, w, h)))


def _write_cityscapes(root: Path, split: str, i: int, img: np.ndarray, objs: list[Obj]) -> None:
    cities = CS_CITIES[split]
    city = cities[i % len(cities)]
    stem = f"{city}_{i // len(cities):06d}_000019"
    h, w = img.shape[:2]
    (root / "leftImg8bit" / split / city).mkdir(parents=True, exist_ok=True)
    (root / "gtFine" / split / city).mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"), img[..., ::-1])
    ids = rasterize_polygons(scene_json(objs, w, h), CITYSCAPES_NAME_TO_ID, background=0, on_unknown="error")
    cv2.imwrite(str(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png"), ids)
    cv2.imwrite(str(root / "gtFine" / split / city / f"{stem}_gtFine_color.png"), _CS_COLORS[ids][..., ::-1])


def write_demo_streets(root: str | os.PathLike, n_train: int = 40, n_val: int = 12, seed: int = 0,
                       width: int = 128, height: int = 64) -> Path:
    """Write both layouts (`<root>/idd`, `<root>/cityscapes`) unless identical ones are already there;
    return `root`. Scene k of a split depends only on (seed, layout, split, k)."""
    settings = {"version": GENERATOR_VERSION, "n_train": n_train, "n_val": n_val, "seed": seed,
                "width": width, "height": height}

    def fill(tmp: Path) -> None:
        jobs = [(li, layout, si, split, i) for li, layout in enumerate(LAYOUTS)
                for si, (split, n) in enumerate(zip(SPLIT_DIRS, (n_train, n_val))) for i in range(n)]
        for li, layout, si, split, i in progress(jobs, len(jobs), "demo street scenes"):
            writer = _write_idd if layout == "idd" else _write_cityscapes
            img, objs = render_scene(np.random.default_rng([seed, li, si, i]), layout, width, height)
            writer(tmp / layout, split, i, img, objs)

    return write_once(root, "demo_streets", settings, fill)
