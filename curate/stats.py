"""Dataset statistics: counts per class and split, geometry kinds, image and box size distributions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow.compute as pc

from .model import Dataset

QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def _quantiles(values: np.ndarray) -> dict[str, float] | None:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return None
    qs = np.quantile(v, QUANTILES)
    return {f"p{int(q * 100)}": float(x) for q, x in zip(QUANTILES, qs, strict=True)} | {"mean": float(v.mean())}


def _value_counts(arr: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    vc = pc.value_counts(arr)
    for item in vc.to_pylist():
        key = item["values"]
        out["(none)" if key is None else str(key)] = int(item["counts"])
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def dataset_stats(ds: Dataset) -> dict[str, Any]:
    """Counts per class and split, kinds, image sizes and box sizes (COCO size buckets too).

    Classes are reported by name with their id, in category-table order, so that ids that are not
    contiguous (COCO 1, 2, 4) show as they are.
    """
    names = ds.category_names()
    ann = ds.annotations
    cat_ids = ann.column("category_id").to_numpy(zero_copy_only=False)
    img_split = dict(zip(ds.images.column("id").to_pylist(),
                         (s or "(none)" for s in ds.images.column("split").to_pylist()), strict=True))
    splits = list(dict.fromkeys(img_split.values()))
    ann_split = np.array([img_split.get(i, "(none)") for i in ann.column("image_id").to_pylist()], dtype=object)

    per_class: list[dict[str, Any]] = []
    for cid, name in names.items():
        sel = cat_ids == cid
        row: dict[str, Any] = {"id": cid, "name": name, "annotations": int(sel.sum())}
        row["per_split"] = {s: int((sel & (ann_split == s)).sum()) for s in splits}
        row["images"] = len(set(np.asarray(ann.column("image_id").to_numpy())[sel].tolist()))
        per_class.append(row)

    w = ann.column("bbox_w").to_numpy(zero_copy_only=False).astype(float)
    h = ann.column("bbox_h").to_numpy(zero_copy_only=False).astype(float)
    area = w * h
    finite = np.isfinite(area)
    buckets = {"small": int((finite & (area < 32**2)).sum()),
               "medium": int((finite & (area >= 32**2) & (area < 96**2)).sum()),
               "large": int((finite & (area >= 96**2)).sum())}
    img_w = ds.images.column("width").to_numpy(zero_copy_only=False).astype(float)
    img_h = ds.images.column("height").to_numpy(zero_copy_only=False).astype(float)
    annotated = set(ann.column("image_id").to_pylist())
    return {
        "images": len(ds),
        "annotations": ds.num_annotations,
        "categories": ds.categories.num_rows,
        "images_without_annotations": sum(1 for i in ds.images.column("id").to_pylist() if i not in annotated),
        "images_per_split": _value_counts(ds.images.column("split")),
        "annotations_per_kind": _value_counts(ann.column("kind")),
        "per_class": per_class,
        "box_width": _quantiles(w),
        "box_height": _quantiles(h),
        "box_area_buckets": buckets,
        "image_width": _quantiles(img_w),
        "image_height": _quantiles(img_h),
    }


def render_stats(s: dict[str, Any]) -> str:
    """The statistics as a short human table."""
    lines = [f"{s['images']} images, {s['annotations']} annotations, {s['categories']} categories "
             f"({s['images_without_annotations']} images without annotations)"]
    lines.append("images per split: " + ", ".join(f"{k} {v}" for k, v in s["images_per_split"].items()))
    lines.append("annotations per kind: " + ", ".join(f"{k} {v}" for k, v in s["annotations_per_kind"].items()))
    if s["per_class"]:
        splits = list(s["images_per_split"])
        width = max(len(str(r["name"])) for r in s["per_class"]) + 2
        lines.append(f"{'id':>5}  {'class':<{width}}{'total':>8}" + "".join(f"{sp:>10}" for sp in splits))
        for r in s["per_class"]:
            lines.append(f"{r['id']:>5}  {str(r['name']):<{width}}{r['annotations']:>8}"
                         + "".join(f"{r['per_split'].get(sp, 0):>10}" for sp in splits))
    bw, bh = s["box_width"], s["box_height"]
    if bw and bh:
        lines.append(f"box width  px: min {bw['p0']:.1f}  median {bw['p50']:.1f}  max {bw['p100']:.1f}")
        lines.append(f"box height px: min {bh['p0']:.1f}  median {bh['p50']:.1f}  max {bh['p100']:.1f}")
        b = s["box_area_buckets"]
        lines.append(f"box sizes (COCO buckets): small {b['small']}, medium {b['medium']}, large {b['large']}")
    return "\n".join(lines)
