"""Hypothesis strategies that generate datasets of the model, for round-trip tests."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from imagine.curate.geometry import envelope
from imagine.curate.model import Dataset, dumps_attrs

coord = st.floats(min_value=0, max_value=4000, allow_nan=False, allow_infinity=False)
size = st.floats(min_value=0.5, max_value=800, allow_nan=False, allow_infinity=False)
name = st.text(alphabet=st.characters(whitelist_categories=("Ll", "Lu", "Nd"), whitelist_characters="_- "),
               min_size=1, max_size=12).map(str.strip).filter(bool)
attr_value = st.one_of(st.booleans(), st.integers(-1000, 1000), name)


@st.composite
def geometry(draw: Any, kind: str, W: int, H: int) -> dict[str, Any]:
    """One annotation's geometry fields for ``kind`` inside a W x H image."""
    def pt() -> list[float]:
        return [draw(st.floats(0, W, allow_nan=False)), draw(st.floats(0, H, allow_nan=False))]

    if kind == "box":
        x, y = pt()
        w = draw(st.floats(0.5, max(W - x, 0.5), allow_nan=False))
        h = draw(st.floats(0.5, max(H - y, 0.5), allow_nan=False))
        return {"geometry": None, "bbox": (x, y, w, h)}
    if kind == "polygon":
        n = draw(st.integers(3, 8))
        ring: list[float] = sum((pt() for _ in range(n)), [])
        g = [ring]
    elif kind == "polyline":
        g = [sum((pt() for _ in range(draw(st.integers(2, 5)))), [])]
    elif kind == "point":
        g = [pt()]
    elif kind == "rbox":
        cx, cy = pt()
        g = [[cx, cy, draw(size), draw(size), draw(st.floats(-179, 180, allow_nan=False))]]
    elif kind == "circle":
        cx, cy = pt()
        g = [[cx, cy, draw(st.floats(0.5, 200, allow_nan=False))]]
    elif kind == "ellipse":
        cx, cy = pt()
        g = [[cx, cy, draw(size), draw(size), draw(st.floats(-89, 90, allow_nan=False))]]
    elif kind == "label":
        return {"geometry": None, "bbox": (0.0, 0.0, float(W), float(H))}
    else:
        raise ValueError(kind)
    return {"geometry": g, "bbox": envelope(kind, g)}


@st.composite
def datasets(draw: Any, kinds: tuple[str, ...] = ("box",), max_images: int = 4, max_annotations: int = 5,
             attributes: bool = False, crowd: bool = False, scores: bool = False, splits: bool = False,
             category_ids: str = "any") -> Dataset:
    """A small random dataset: images with sizes, categories with ids, annotations of ``kinds``.

    ``category_ids``: ``any`` (arbitrary distinct ids, e.g. 1, 2, 4), ``dense`` (0..n-1).
    """
    n_cat = draw(st.integers(1, 4))
    if category_ids == "dense":
        cat_ids = list(range(n_cat))
    else:
        cat_ids = sorted(draw(st.sets(st.integers(0, 100), min_size=n_cat, max_size=n_cat)))
    cat_names = draw(st.lists(name, min_size=n_cat, max_size=n_cat, unique_by=str.lower))
    categories = [{"id": i, "name": n} for i, n in zip(cat_ids, cat_names, strict=True)]
    n_img = draw(st.integers(1, max_images))
    images, annotations = [], []
    aid = 1
    for i in range(n_img):
        W, H = draw(st.integers(16, 4000)), draw(st.integers(16, 4000))
        img: dict[str, Any] = {"id": i + 1, "file_name": f"img_{i:03d}.jpg", "width": W, "height": H}
        if splits:
            img["split"] = draw(st.sampled_from(["train", "val", "test"]))
        images.append(img)
        for _ in range(draw(st.integers(0, max_annotations))):
            kind = draw(st.sampled_from(kinds))
            g = draw(geometry(kind, W, H))
            x, y, w, h = g["bbox"]
            a: dict[str, Any] = {"id": aid, "image_id": i + 1, "category_id": draw(st.sampled_from(cat_ids)),
                                 "kind": kind, "bbox_x": x, "bbox_y": y, "bbox_w": w, "bbox_h": h,
                                 "geometry": g["geometry"], "iscrowd": draw(st.booleans()) if crowd else False}
            if scores:
                a["score"] = draw(st.floats(0, 1, allow_nan=False))
            if attributes and draw(st.booleans()):
                a["attributes"] = dumps_attrs(draw(st.dictionaries(name, attr_value, min_size=1, max_size=3)))
            assert all(math.isfinite(v) for v in (x, y, w, h))
            annotations.append(a)
            aid += 1
    return Dataset.from_records(images, annotations, categories, {"name": "generated"})
