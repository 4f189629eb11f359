"""Bias and balance: class imbalance, site/time/annotator/size structure, coverage gaps, mitigation.

Everything here is counted from the dataset tables; a view whose metadata column is empty is
reported as unavailable with the column it needs, and the rest still runs.
"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

import numpy as np

from imagine.kernel import Finding, UsageError

from ..model import Dataset, loads_attrs

RARE_FRACTION = 0.01
SEASONS = {12: "DJF", 1: "DJF", 2: "DJF", 3: "MAM", 4: "MAM", 5: "MAM", 6: "JJA", 7: "JJA", 8: "JJA",
           9: "SON", 10: "SON", 11: "SON"}
# Numeric image attributes that describe the organism or the sampling, looked for by name.
KNOWN_NUMERIC = ("length", "size", "depth", "temperature", "salinity", "weight")


def _parse_dt(s: str | None) -> datetime | None:
    if not s:
        return None
    s = s.strip().replace("T", " ").rstrip("Z")
    for fmt in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d", "%Y%m%d_%H%M%S",
                "%Y:%m:%d %H:%M:%S"):
        try:
            return datetime.strptime(s[:26], fmt)
        except ValueError:
            continue
    return None


def _dist(values: list[float]) -> dict[str, float] | None:
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if not v.size:
        return None
    q = np.quantile(v, [0, 0.25, 0.5, 0.75, 1])
    return {"n": int(v.size), "min": float(q[0]), "p25": float(q[1]), "median": float(q[2]), "p75": float(q[3]),
            "max": float(q[4]), "mean": float(v.mean())}


def image_class(ds: Dataset) -> list[list[int]]:
    """Per image row, the category ids of its annotations (any kind)."""
    rows = ds.image_index()
    out: list[list[int]] = [[] for _ in range(len(ds))]
    for img, cat in zip(ds.annotations.column("image_id").to_pylist(), ds.annotations.column("category_id").to_pylist(),
                        strict=True):
        if cat is not None and img in rows:
            out[rows[img]].append(cat)
    return out


def class_balance(ds: Dataset) -> dict[str, Any]:
    """Counts per class, imbalance ratio, effective number of classes (exp of entropy), rare classes."""
    names = ds.category_names()
    counts = Counter(c for c in ds.annotations.column("category_id").to_pylist() if c is not None)
    img_counts = Counter(c for cats in image_class(ds) for c in set(cats))
    per_class: list[dict[str, Any]] = [{"id": c, "name": n, "annotations": counts.get(c, 0),
                                        "images": img_counts.get(c, 0)} for c, n in names.items()]
    total = sum(counts.values())
    nonzero = [int(r["annotations"]) for r in per_class if r["annotations"] > 0]
    p = np.asarray(nonzero, dtype=np.float64) / max(total, 1)
    entropy = float(-(p * np.log(p)).sum()) if total else 0.0
    rare = [r["name"] for r in per_class if total and r["annotations"] < RARE_FRACTION * total]
    return {"per_class": per_class, "total": total,
            "imbalance_ratio": (max(nonzero) / min(nonzero)) if nonzero else None,
            "effective_number_of_classes": math.exp(entropy) if total else 0.0,
            "classes_without_examples": [r["name"] for r in per_class if r["annotations"] == 0],
            "rare_classes": rare, "rare_fraction": RARE_FRACTION}


def _by_group(ds: Dataset, keys: list[Any], classes: list[list[int]]) -> dict[str, Any]:
    names = ds.category_names()
    table: dict[str, Counter[str]] = defaultdict(Counter)
    images: Counter[str] = Counter()
    for k, cats in zip(keys, classes, strict=True):
        if k is None:
            continue
        images[str(k)] += 1
        for c in cats:
            table[str(k)][names.get(c, str(c))] += 1
    return {"images": dict(sorted(images.items())),
            "per_class": {k: dict(sorted(v.items())) for k, v in sorted(table.items())}}


def bias_report(ds: Dataset, *, numeric_attributes: list[str] | None = None) -> dict[str, Any]:
    """All bias views the dataset's columns allow, plus findings for the views it cannot give."""
    classes = image_class(ds)
    names = ds.category_names()
    out: dict[str, Any] = {"class_balance": class_balance(ds), "views": {}, "unavailable": {}}
    findings: list[Finding] = []

    def unavailable(view: str, column: str) -> None:
        out["unavailable"][view] = f"needs the image column {column!r}, which is empty in this dataset"

    for view, col in (("site", "site"), ("track", "video"), ("annotator", "annotator"), ("instrument", "instrument")):
        vals = ds.images.column(col).to_pylist()
        if any(v is not None for v in vals):
            g = _by_group(ds, vals, classes)
            sizes = list(g["images"].values())
            g["groups"] = len(sizes)
            g["images_per_group"] = _dist([float(s) for s in sizes])
            out["views"][view] = g
        else:
            unavailable(view, col)
    depth = ds.images.column("depth").to_pylist()
    if any(d is not None for d in depth):
        out["views"]["depth"] = {"distribution": _dist(depth),
                                 "per_class": {names[c]: _dist([d for d, cs in zip(depth, classes, strict=True)
                                                                if c in cs]) for c in names}}
    else:
        unavailable("depth", "depth")
    lat = ds.images.column("latitude").to_pylist()
    lon = ds.images.column("longitude").to_pylist()
    if any(v is not None for v in lat):
        regions = [f"{math.floor(a):+d},{math.floor(b):+d}" if a is not None and b is not None else None
                   for a, b in zip(lat, lon, strict=True)]
        out["views"]["region"] = _by_group(ds, regions, classes) | {"cell": "1 degree"}
    else:
        unavailable("region", "latitude")

    dts = [_parse_dt(s) for s in ds.images.column("datetime").to_pylist()]
    if any(dts):
        months = [d.strftime("%Y-%m") if d else None for d in dts]
        out["views"]["month"] = _by_group(ds, months, classes)
        out["views"]["month_of_year"] = _by_group(ds, [d.month if d else None for d in dts], classes)
        out["views"]["season"] = _by_group(ds, [SEASONS[d.month] if d else None for d in dts], classes)
        out["views"]["hour_of_day"] = _by_group(ds, [d.hour if d else None for d in dts], classes)
        out["views"]["day"] = {"days": len({d.date() for d in dts if d})}
        present = sorted({(d.year, d.month) for d in dts if d})
        (y0, m0), (y1, m1) = present[0], present[-1]
        span = [(y, m) for y in range(y0, y1 + 1) for m in range(1, 13) if (y0, m0) <= (y, m) <= (y1, m1)]
        gaps = [f"{y}-{m:02d}" for y, m in span if (y, m) not in set(present)]
        out["coverage_gaps"] = {"empty_months": gaps, "months_in_span": len(span)}
    else:
        for v in ("month", "season", "hour_of_day"):
            unavailable(v, "datetime")

    if "site" in out["views"]:
        site_cls = out["views"]["site"]["per_class"]
        out.setdefault("coverage_gaps", {})["sites_without_class"] = {
            n: sorted(s for s in out["views"]["site"]["images"] if not site_cls.get(s, {}).get(n))
            for n in names.values()}

    # box sizes (a morphology proxy) per class and per site
    kinds = ds.annotations.column("kind").to_pylist()
    w = ds.annotations.column("bbox_w").to_numpy(zero_copy_only=False).astype(float)
    h = ds.annotations.column("bbox_h").to_numpy(zero_copy_only=False).astype(float)
    cat = ds.annotations.column("category_id").to_pylist()
    boxed = [k not in ("label",) for k in kinds]
    if any(boxed):
        sqrt_area = np.sqrt(np.clip(w * h, 0, None))
        out["views"]["box_size"] = {
            "measure": "sqrt(box area) in pixels",
            "per_class": {names.get(c, str(c)): _dist([float(sqrt_area[i]) for i in range(len(cat))
                                                         if cat[i] == c and boxed[i]]) for c in names}}
        site = ds.images.column("site").to_pylist()
        if any(s is not None for s in site):
            row = ds.image_index()
            per_site: dict[str, list[float]] = defaultdict(list)
            for i, img in enumerate(ds.annotations.column("image_id").to_pylist()):
                s = site[row[img]] if img in row else None
                if s is not None and boxed[i]:
                    per_site[str(s)].append(float(sqrt_area[i]))
            out["views"]["box_size"]["per_site"] = {k: _dist(v) for k, v in sorted(per_site.items())}
    else:
        unavailable("box_size", "annotations with boxes")

    attrs = [loads_attrs(a) for a in ds.images.column("attributes").to_pylist()]
    wanted = numeric_attributes if numeric_attributes is not None else \
        [k for k in KNOWN_NUMERIC if any(k in a for a in attrs)]
    for key in wanted:
        nums: list[float | None] = []
        for a in attrs:
            try:
                nums.append(float(a[key]) if key in a and a[key] not in ("", None) else None)
            except (TypeError, ValueError):
                nums.append(None)
        if not any(v is not None for v in nums):
            out["unavailable"][f"attribute:{key}"] = f"no image has a numeric attribute {key!r}"
            continue
        out["views"][f"attribute:{key}"] = {
            "distribution": _dist([v for v in nums if v is not None]),
            "per_class": {names[c]: _dist([v for v, cs in zip(nums, classes, strict=True) if v is not None and c in cs])
                          for c in names}}
    for view, why in out["unavailable"].items():
        findings.append(Finding("bias-view-unavailable", f"{view}: {why}", severity="info"))
    out["findings"] = [f.to_dict() for f in findings]
    return out


def class_weights(ds: Dataset, *, method: str = "inverse", beta: float = 0.999) -> dict[int, float]:
    """Per-class loss weights, normalised to mean 1 over the classes that have examples.

    ``inverse``: 1 / count; ``sqrt``: 1 / sqrt(count); ``effective``: (1 - beta) / (1 - beta^count)
    (Cui et al. 2019, class-balanced loss).
    """
    counts = {r["id"]: r["annotations"] for r in class_balance(ds)["per_class"]}
    raw: dict[int, float] = {}
    for c, n in counts.items():
        if n == 0:
            continue
        if method == "inverse":
            raw[c] = 1.0 / n
        elif method == "sqrt":
            raw[c] = 1.0 / math.sqrt(n)
        elif method == "effective":
            raw[c] = (1 - beta) / (1 - beta**n)
        else:
            raise UsageError(f"unknown class-weight method {method!r} (inverse, sqrt, effective)")
    mean = sum(raw.values()) / max(len(raw), 1)
    return {c: v / mean for c, v in raw.items()}


def rebalance(ds: Dataset, *, min_per_class: int = 100, max_per_class: int = 10_000, seed: int = 0,
              oversample: bool = False, split: str | None = None) -> tuple[Dataset, dict[str, Any]]:
    """A reproducible training selection with per-class caps on images (the field's 100 / 10,000 rule).

    Each image counts for its most frequent class (its primary class). Classes above
    ``max_per_class`` are subsampled without replacement; classes below ``min_per_class`` are
    dropped, or with ``oversample`` drawn with replacement up to the minimum (repeated images get
    new ids and keep their file). Only images of ``split`` take part when it is given.
    """
    if min_per_class < 0 or max_per_class < 1 or min_per_class > max_per_class:
        raise UsageError(f"need 0 <= min ({min_per_class}) <= max ({max_per_class})")
    rng = np.random.default_rng(seed)
    classes = image_class(ds)
    splits = ds.images.column("split").to_pylist()
    primary: dict[int, list[int]] = defaultdict(list)
    for row, cats in enumerate(classes):
        if not cats or (split is not None and splits[row] != split):
            continue
        primary[Counter(cats).most_common(1)[0][0]].append(row)
    names = ds.category_names()
    chosen: list[int] = []
    summary: dict[str, Any] = {}
    for c in names:
        rows = np.asarray(primary.get(c, []), dtype=np.int64)
        n = len(rows)
        if n > max_per_class:
            pick = np.sort(rng.choice(rows, max_per_class, replace=False))
            action = "subsampled"
        elif n < min_per_class and not oversample:
            pick = np.zeros(0, np.int64)
            action = "dropped" if n else "absent"
        elif n < min_per_class:
            extra = rng.choice(rows, min_per_class - n, replace=True) if n else np.zeros(0, np.int64)
            pick = np.concatenate([rows, extra])
            action = "oversampled" if n else "absent"
        else:
            pick, action = rows, "kept"
        chosen.extend(pick.tolist())
        summary[names[c]] = {"available": n, "selected": int(len(pick)), "action": action}
    rows_sel = np.asarray(chosen, dtype=np.int64)
    images = ds.images.take(rows_sel) if len(rows_sel) else ds.images.slice(0, 0)
    # repeated images (oversampling) get fresh ids; their annotations are repeated with them
    ids = ds.images.column("id").to_numpy()
    order, starts, ends = ds.annotations_by_image()
    next_img = int(ids.max()) + 1 if len(ids) else 0
    next_ann = int(ds.annotations.column("id").to_numpy().max()) + 1 if ds.num_annotations else 0
    seen: set[int] = set()
    new_img_ids, ann_take, ann_img, ann_ids = [], [], [], []
    for r in rows_sel.tolist():
        arows = order[starts[r]:ends[r]].tolist()
        if r in seen:
            new_img_ids.append(next_img)
            ann_take += arows
            ann_img += [next_img] * len(arows)
            ann_ids += list(range(next_ann, next_ann + len(arows)))
            next_img += 1
            next_ann += len(arows)
        else:
            seen.add(r)
            new_img_ids.append(int(ids[r]))
            ann_take += arows
            ann_img += [int(ids[r])] * len(arows)
            ann_ids += ds.annotations.column("id").take(arows).to_pylist() if arows else []
    import pyarrow as pa

    images = images.set_column(0, "id", pa.array(new_img_ids, pa.int64()))
    ann = ds.annotations.take(pa.array(ann_take, pa.int64())) if ann_take else ds.annotations.slice(0, 0)
    ann = ann.set_column(ann.schema.get_field_index("image_id"), "image_id", pa.array(ann_img, pa.int64()))
    ann = ann.set_column(0, "id", pa.array(ann_ids, pa.int64()))
    info = dict(ds.info)
    info.setdefault("provenance", [])
    info["provenance"] = [*info["provenance"], {"step": "rebalance", "min_per_class": min_per_class,
                                                 "max_per_class": max_per_class, "seed": seed,
                                                 "oversample": oversample}]
    return ds.with_tables(images=images, annotations=ann, info=info), {
        "min_per_class": min_per_class, "max_per_class": max_per_class, "seed": seed, "oversample": oversample,
        "images": int(len(rows_sel)), "per_class": summary}


_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def slug(s: str) -> str:
    """A file-name-safe version of a label."""
    return _SAFE.sub("_", s).strip("_") or "x"
