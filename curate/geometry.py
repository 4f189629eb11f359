"""Geometry helpers on the model's conventions (see :mod:`imagine.curate.model`).

Envelopes for every geometry kind, rotated-box and ellipse corners. Operations that change
annotations (polygon/mask → box, RLE ↔ polygon, line → box, padding, clipping) build on these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Rings = Sequence[Sequence[float]]
Box = tuple[float, float, float, float]  # x, y, w, h

NAN_BOX: Box = (math.nan, math.nan, math.nan, math.nan)


def rbox_corners(cx: float, cy: float, w: float, h: float, angle: float) -> list[float]:
    """Corners ``[x1, y1, ..., x4, y4]`` of a box rotated by ``angle`` degrees clockwise on screen.

    Order: top-left, top-right, bottom-right, bottom-left of the unrotated box, each rotated about
    the centre (the order CVAT, DOTA and Ultralytics OBB use).
    """
    a = math.radians(angle)
    c, s = math.cos(a), math.sin(a)
    out: list[float] = []
    for dx, dy in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)):
        out += [cx + dx * c - dy * s, cy + dx * s + dy * c]
    return out


def corners_to_rbox(pts: Sequence[float]) -> tuple[float, float, float, float, float]:
    """Inverse of :func:`rbox_corners` for four corners (a rectangle, possibly rotated).

    Width is the first edge (corner 1 → 2), height the second (2 → 3); the angle is that of the
    first edge, in degrees clockwise on screen, in (-180, 180].
    """
    if len(pts) != 8:
        raise ValueError("a rotated box needs exactly four corners")
    x1, y1, x2, y2, x3, y3, x4, y4 = pts
    cx, cy = (x1 + x2 + x3 + x4) / 4, (y1 + y2 + y3 + y4) / 4
    w = math.hypot(x2 - x1, y2 - y1)
    h = math.hypot(x3 - x2, y3 - y2)
    angle = math.degrees(math.atan2(y2 - y1, x2 - x1))
    return cx, cy, w, h, angle


def ellipse_envelope(cx: float, cy: float, rx: float, ry: float, angle: float) -> Box:
    """Axis-aligned envelope of an ellipse rotated by ``angle`` degrees."""
    a = math.radians(angle)
    hw = math.sqrt((rx * math.cos(a)) ** 2 + (ry * math.sin(a)) ** 2)
    hh = math.sqrt((rx * math.sin(a)) ** 2 + (ry * math.cos(a)) ** 2)
    return cx - hw, cy - hh, 2 * hw, 2 * hh


def points_envelope(rings: Rings) -> Box:
    """Envelope of the (x, y) pairs of every ring; NaN box when there are none."""
    xs: list[float] = []
    ys: list[float] = []
    for r in rings:
        xs.extend(r[0::2])
        ys.extend(r[1::2])
    if not xs:
        return NAN_BOX
    x0, y0 = min(xs), min(ys)
    return x0, y0, max(xs) - x0, max(ys) - y0


def keypoints_envelope(flat: Sequence[float]) -> Box:
    """Envelope of the labelled keypoints (v > 0) of a flat ``[x, y, v, ...]`` list."""
    pts = [(flat[i], flat[i + 1]) for i in range(0, len(flat) - 2, 3) if flat[i + 2] > 0]
    if not pts:
        return NAN_BOX
    xs, ys = zip(*pts, strict=True)
    return min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)


def envelope(kind: str, geometry: Rings | None, *, rle: str | None = None, width: int | None = None,
             height: int | None = None) -> Box:
    """The axis-aligned envelope (x, y, w, h) of any geometry kind of the model."""
    if kind == "rbox":
        assert geometry is not None
        return points_envelope([rbox_corners(*geometry[0][:5])])
    if kind in ("polygon", "polyline", "point"):
        return points_envelope(geometry or [])
    if kind == "keypoints":
        return keypoints_envelope(geometry[0]) if geometry else NAN_BOX
    if kind == "circle":
        assert geometry is not None
        cx, cy, r = geometry[0][:3]
        return cx - r, cy - r, 2 * r, 2 * r
    if kind == "ellipse":
        assert geometry is not None
        return ellipse_envelope(*geometry[0][:5])
    if kind == "mask":
        if rle is None or geometry is None:
            return NAN_BOX
        from pycocotools import mask as mask_utils

        h, w = int(geometry[0][0]), int(geometry[0][1])
        bx = mask_utils.toBbox({"size": [h, w], "counts": rle.encode("ascii")})
        return float(bx[0]), float(bx[1]), float(bx[2]), float(bx[3])
    if kind == "label":
        if width and height:
            return 0.0, 0.0, float(width), float(height)
        return NAN_BOX
    raise ValueError(f"no envelope for geometry kind {kind!r}")
