"""Citizen-science consensus: many volunteers box the same animal; keep what they agree on.

The two-step procedure of the DeepSeaSpy cleaning (both thresholds tuned by trial, so both are
parameters): (1) keep boxes with IoU >= ``iou`` with at least one other box, discard the rest;
(2) among the kept boxes, link those whose minimal IoU (overlap area / smaller box area) is
>= ``min_iou``; each connected group is one object. Each object becomes one merged box (median,
mean or highest-vote member), labelled by majority vote with the vote count and agreement kept
as attributes. Optional line → box and per-class padding run first, so a published cleaning
recipe is one command line. Everything is vectorised: 253 k boxes take well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imagine.kernel import ConversionReport, UsageError

from .dedup import box_columns, components, overlap_pairs
from .model import Dataset

__all__ = ["consensus", "ConsensusResult", "MERGES", "render_markdown"]

Merge = Literal["median", "mean", "highest-vote"]
MERGES = ("median", "mean", "highest-vote")


@dataclass
class ConsensusResult:
    """The consensus dataset, per-input-row outcome, and counts per class."""

    dataset: Dataset
    kept_step1: np.ndarray  # per input annotation row
    object_of: np.ndarray  # per input annotation row: object number, -1 when discarded or not a box
    per_class: list[dict[str, Any]]
    params: dict[str, Any]
    prepared: ConversionReport = field(default_factory=ConversionReport)
    other: int = 0  # annotations that are not boxes, passed through

    def report(self) -> dict[str, Any]:
        """The JSON report (schema ``consensus-report``)."""
        tot = {k: sum(int(c[k]) for c in self.per_class) for k in ("boxes_before", "kept_step1", "objects")}
        return {
            "kind": "consensus",
            "params": self.params,
            "summary": {**tot, "other_annotations": self.other,
                        "images": len(self.dataset)},
            "per_class": self.per_class,
            "preparation": self.prepared.to_dict()["losses"],
        }


def _segments(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For keys sorted ascending: start of each run, its length, and each position's run number."""
    starts = np.r_[0, np.flatnonzero(keys[1:] != keys[:-1]) + 1] if len(keys) else np.zeros(0, np.int64)
    counts = np.diff(np.r_[starts, len(keys)])
    seg = np.repeat(np.arange(len(starts)), counts)
    return starts, counts, seg


def _grouped_median(obj: np.ndarray, values: np.ndarray, n_obj: int) -> np.ndarray:
    """Median of ``values`` per object: one argsort of ``obj + scaled value`` (a float key in [obj, obj + 0.5])
    orders values inside each object; the medians are taken from the exact values."""
    lo_v, hi_v = float(values.min(initial=0.0)), float(values.max(initial=0.0))
    key = obj + (values - lo_v) * (0.5 / max(hi_v - lo_v, 1e-300))
    order = np.argsort(key, kind="stable")
    v = values[order]
    starts, counts, _ = _segments(obj[order])
    lo = v[starts + (counts - 1) // 2]
    hi = v[starts + counts // 2]
    out = np.full(n_obj, np.nan)
    out[obj[order][starts]] = (lo + hi) / 2
    return out


def _set_column(t: pa.Table, name: str, values: Any) -> pa.Table:
    i = t.schema.get_field_index(name)
    return t.set_column(i, t.schema.field(i), pa.array(values, type=t.schema.field(i).type))


def _lines_to_boxes(ds: Dataset, min_side: float = 1.0, *, report: ConversionReport) -> Dataset:
    """Polylines → their envelope, each side at least ``min_side`` (stand-in until geometry has it)."""
    a = ds.annotations
    is_line = np.asarray(pc.equal(a.column("kind"), "polyline").to_numpy(zero_copy_only=False), dtype=bool)
    if not is_line.any():
        return ds
    x, y, x2, y2 = box_columns(ds)
    w, h = x2 - x, y2 - y
    grow_w = is_line & (w < min_side)
    grow_h = is_line & (h < min_side)
    x = np.where(grow_w, x - (min_side - w) / 2, x)
    w = np.where(grow_w, min_side, w)
    y = np.where(grow_h, y - (min_side - h) / 2, y)
    h = np.where(grow_h, min_side, h)
    report.add("polyline-to-box", "polyline replaced by a box around it", count=int(is_line.sum()))
    report.add("line-box-widened", f"box around a line widened to the minimum side {min_side}",
               count=int((grow_w | grow_h).sum()))
    kind = np.where(is_line, "box", np.asarray(a.column("kind").to_pylist(), dtype=object))
    geom = [None if ln else g for ln, g in zip(is_line.tolist(), a.column("geometry").to_pylist(), strict=True)]
    t = a
    for name, v in (("bbox_x", x), ("bbox_y", y), ("bbox_w", w), ("bbox_h", h), ("kind", kind.tolist()),
                    ("geometry", geom)):
        t = _set_column(t, name, v)
    return ds.with_tables(annotations=t)


def _pad(ds: Dataset, pixels: float = 0.0, *, per_class: dict[int | str, float] | None = None,
         report: ConversionReport) -> Dataset:
    """Grow boxes by ``pixels`` a side (``per_class`` overrides), clipped to the image (stand-in for geometry.pad)."""
    a = ds.annotations
    cat = np.asarray(pc.fill_null(a.column("category_id"), -1).to_numpy(), dtype=np.int64)
    amount = np.full(a.num_rows, float(pixels))
    ids = {name: cid for cid, name in ds.category_names().items()}
    for key, px in (per_class or {}).items():
        amount[cat == (ids.get(key, -2) if isinstance(key, str) else key)] = float(px)
    is_box = np.asarray(pc.equal(a.column("kind"), "box").to_numpy(zero_copy_only=False), dtype=bool)
    amount = np.where(is_box, amount, 0.0)
    x1, y1, x2, y2 = box_columns(ds)
    x1, y1, x2, y2 = x1 - amount, y1 - amount, x2 + amount, y2 + amount
    rows = ds.image_index()
    r = np.array([rows.get(int(i), -1) for i in a.column("image_id").to_numpy()], dtype=np.int64)
    iw = np.append(np.asarray(pc.fill_null(ds.images.column("width"), -1).to_numpy(), dtype=np.float64), -1)[r]
    ih = np.append(np.asarray(pc.fill_null(ds.images.column("height"), -1).to_numpy(), dtype=np.float64), -1)[r]
    known = (iw > 0) & (ih > 0)
    x1 = np.where(known, np.clip(x1, 0, iw), x1)
    x2 = np.where(known, np.clip(x2, 0, iw), x2)
    y1 = np.where(known, np.clip(y1, 0, ih), y1)
    y2 = np.where(known, np.clip(y2, 0, ih), y2)
    report.add("box-padded", "boxes grown by the padding", count=int((amount != 0).sum()))
    t = a
    for name, v in (("bbox_x", x1), ("bbox_y", y1), ("bbox_w", x2 - x1), ("bbox_h", y2 - y1)):
        t = _set_column(t, name, v)
    return ds.with_tables(annotations=t)


def consensus(ds: Dataset, *, iou: float = 0.6, min_iou: float = 0.4, merge: Merge = "median",
              per_class: bool = False, min_votes: int = 2, lines_to_boxes: bool = False, line_min_side: float = 1.0,
              pad: float = 0.0, pad_per_class: dict[int | str, float] | None = None) -> ConsensusResult:
    """Merge redundant volunteer boxes into one box per object (see the module docstring).

    ``per_class`` restricts overlaps to boxes of the same class (then the vote is unanimous by
    construction); by default boxes of any class take part and the label is the majority.
    Annotations that are not boxes (points, labels, ...) pass through unchanged.
    """
    if not 0.0 < iou <= 1.0:
        raise UsageError(f"--iou must be in (0, 1], not {iou}")
    if not 0.0 < min_iou <= 1.0:
        raise UsageError(f"--min-iou must be in (0, 1], not {min_iou}")
    if merge not in MERGES:
        raise UsageError(f"--merge must be one of {', '.join(MERGES)}, not {merge!r}")
    if min_votes < 1:
        raise UsageError(f"--min-votes must be at least 1, not {min_votes}")
    if pad < 0 or any(v < 0 for v in (pad_per_class or {}).values()):
        raise UsageError("padding must not be negative")
    from . import geometry

    prepared = ConversionReport()
    if lines_to_boxes:
        to_boxes = getattr(geometry, "lines_to_boxes", None) or _lines_to_boxes
        ds = to_boxes(ds, line_min_side, report=prepared)
    if pad or pad_per_class:
        grow = getattr(geometry, "pad", None) or _pad
        ds = grow(ds, pad, per_class=pad_per_class, report=prepared)

    a = ds.annotations
    n = a.num_rows
    x1, y1, x2, y2 = box_columns(ds)
    is_box = np.asarray(pc.equal(a.column("kind"), "box").to_numpy(zero_copy_only=False), dtype=bool)
    is_box &= np.isfinite(x1) & np.isfinite(y1) & np.isfinite(x2) & np.isfinite(y2) & (x2 > x1) & (y2 > y1)
    img = a.column("image_id").to_numpy()
    cat = np.asarray(pc.fill_null(a.column("category_id"), -1).to_numpy(), dtype=np.int64)
    rows = np.flatnonzero(is_box)
    if per_class:
        _, key = np.unique(np.stack([img[rows], cat[rows]]), axis=1, return_inverse=True)
        key = key.ravel()
    else:
        key = img[rows]
    bx1, by1, bx2, by2 = x1[rows], y1[rows], x2[rows], y2[rows]
    p, q, inter = overlap_pairs(key, bx1, by1, bx2, by2)
    area = (bx2 - bx1) * (by2 - by1)
    pair_iou = inter / (area[p] + area[q] - inter)
    m = len(rows)
    # step 1: a box survives when at least one other box overlaps it with IoU >= iou
    strong = pair_iou >= iou
    deg = np.bincount(p[strong], minlength=m) + np.bincount(q[strong], minlength=m)
    kept = deg >= 1
    # step 2: objects = kept boxes linked by minimal IoU (overlap / smaller area) >= min_iou
    min_overlap = inter / np.minimum(area[p], area[q])
    link = kept[p] & kept[q] & (min_overlap >= min_iou)
    root = components(m, p[link], q[link])
    kr = np.flatnonzero(kept)
    obj_raw = root[kr]
    present = np.zeros(m, dtype=bool)
    present[obj_raw] = True
    obj = (np.cumsum(present) - 1)[obj_raw]  # dense object numbers, in order of their smallest box
    sizes = np.bincount(obj, minlength=int(present.sum()))
    good = sizes >= min_votes
    new_id = np.cumsum(good) - 1
    sel = good[obj]
    kr, obj = kr[sel], new_id[obj[sel]]
    n_obj = int(good.sum())
    votes = sizes[good]

    # label by majority (ties: smallest category id)
    ucat, kcode = np.unique(cat[rows[kr]], return_inverse=True)
    kcode = kcode.ravel()
    n_ucat = len(ucat)
    label = np.full(n_obj, -1, dtype=np.int64)
    label_votes = np.zeros(n_obj, dtype=np.int64)
    if n_obj and n_obj * n_ucat <= 50_000_000:  # a dense votes table; argmax takes the smallest id on ties
        table = np.bincount(obj * n_ucat + kcode, minlength=n_obj * n_ucat).reshape(n_obj, n_ucat)
        best_code = table.argmax(axis=1)
        label = ucat[best_code].astype(np.int64)
        label_votes = table[np.arange(n_obj), best_code].astype(np.int64)
    elif n_obj:
        uk, cnt = np.unique(obj.astype(np.int64) * n_ucat + kcode, return_counts=True)
        ko, kc = uk // n_ucat, uk % n_ucat
        best = np.lexsort((kc, -cnt, ko))
        first = best[np.r_[0, np.flatnonzero(np.diff(ko[best])) + 1]]
        label[ko[first]] = ucat[kc[first]]
        label_votes[ko[first]] = cnt[first]

    # merged box
    coords = (bx1[kr], by1[kr], bx2[kr], by2[kr])
    if merge == "median":
        mx1, my1, mx2, my2 = (_grouped_median(obj, c, n_obj) for c in coords)
    elif merge == "mean":
        mx1, my1, mx2, my2 = (np.bincount(obj, weights=c, minlength=n_obj) / votes for c in coords)
    else:
        # the member with the most IoU >= iou partners inside its object (ties: first row)
        member_obj = np.full(m, -1, dtype=np.int64)
        member_obj[kr] = obj
        same = strong & (member_obj[p] == member_obj[q]) & (member_obj[p] >= 0)
        d_in = np.bincount(p[same], minlength=m) + np.bincount(q[same], minlength=m)
        order = np.lexsort((kr, -d_in[kr], obj))
        starts, _, _ = _segments(obj[order])
        pick = kr[order[starts]]
        mx1, my1, mx2, my2 = bx1[pick], by1[pick], bx2[pick], by2[pick]

    # which input row ended where
    kept_rows = np.zeros(n, dtype=bool)
    kept_rows[rows[kept]] = True
    object_of = np.full(n, -1, dtype=np.int64)
    object_of[rows[kr]] = obj

    annotators = a.column("annotator")
    distinct = np.zeros(n_obj, dtype=np.int64)
    if annotators.null_count < n and n_obj:
        enc = pc.dictionary_encode(annotators.combine_chunks()) if isinstance(annotators, pa.ChunkedArray) else \
            pc.dictionary_encode(annotators)
        codes = np.asarray(pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False), dtype=np.int64)[rows[kr]]
        okc = codes >= 0
        width = int(codes.max(initial=0)) + 1
        pairs = np.sort(obj[okc].astype(np.int64) * width + codes[okc])  # a sort beats numpy's hash unique here
        ua = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if len(pairs) else pairs
        distinct = np.bincount(ua // width, minlength=n_obj)

    obj_img = np.zeros(n_obj, dtype=np.int64)
    obj_img[obj] = img[rows[kr]]
    agreement = label_votes / np.maximum(votes, 1)
    attrs = [f'{{"votes":{v},"label_votes":{lv},"agreement":{ag:.4g},"annotators":{dc}}}'
             for v, lv, ag, dc in zip(votes.tolist(), label_votes.tolist(), agreement.tolist(), distinct.tolist(),
                                      strict=True)]
    merged = Dataset.from_columns(annotations={
        "id": np.arange(1, n_obj + 1),
        "image_id": obj_img,
        "category_id": label,
        "kind": ["box"] * n_obj,
        "bbox_x": mx1, "bbox_y": my1, "bbox_w": mx2 - mx1, "bbox_h": my2 - my1,
        "area": (mx2 - mx1) * (my2 - my1),
        "iscrowd": np.zeros(n_obj, dtype=bool),
        "score": agreement,
        "attributes": attrs,
    }).annotations
    others = a.filter(pa.array(~is_box))
    if others.num_rows:
        idx = others.schema.get_field_index("id")
        new_ids = pa.array(np.arange(n_obj + 1, n_obj + 1 + others.num_rows), pa.int64())
        others = others.set_column(idx, others.schema.field(idx), new_ids)
    out_ann = pa.concat_tables([merged, others]).combine_chunks()
    order_rows = np.lexsort((np.arange(out_ann.num_rows), out_ann.column("image_id").to_numpy()))
    out_ann = out_ann.take(pa.array(order_rows))
    out_ann = out_ann.set_column(0, out_ann.schema.field(0), pa.array(np.arange(1, out_ann.num_rows + 1), pa.int64()))
    info = dict(ds.info)
    info.setdefault("provenance", [])
    if isinstance(info["provenance"], list):
        info["provenance"] = [*info["provenance"], {"step": "consensus", "iou": iou, "min_iou": min_iou,
                                                    "merge": merge, "per_class": per_class, "min_votes": min_votes}]
    out = ds.with_tables(annotations=out_ann, info=info)

    names = ds.category_names()
    cats = sorted(set(cat[rows].tolist()) | set(label.tolist()))
    before = {c: int(v) for c, v in zip(*np.unique(cat[rows], return_counts=True), strict=True)}
    k1 = {c: int(v) for c, v in zip(*np.unique(cat[rows[kept]], return_counts=True), strict=True)}
    after = {c: int(v) for c, v in zip(*np.unique(label, return_counts=True), strict=True)}
    per = []
    for c in cats:
        b, k, o = before.get(c, 0), k1.get(c, 0), after.get(c, 0)
        per.append({"category_id": int(c), "name": names.get(c, str(c)), "boxes_before": b, "kept_step1": k,
                    "objects": o, "mean_votes": float(votes[label == c].mean()) if o else 0.0,
                    "mean_agreement": float(agreement[label == c].mean()) if o else 0.0})
    params = {"iou": iou, "min_iou": min_iou, "merge": merge, "per_class": per_class, "min_votes": min_votes,
              "lines_to_boxes": lines_to_boxes, "pad": pad,
              "pad_per_class": {str(k): v for k, v in (pad_per_class or {}).items()}}
    return ConsensusResult(out, kept_rows, object_of, per, params, prepared, int((~is_box).sum()))


def render_markdown(report: dict[str, Any]) -> str:
    """The before/after table per class, for people."""
    p, s = report["params"], report["summary"]
    lines = [
        "# Consensus", "",
        f"Step 1 keeps boxes with IoU >= {p['iou']} with another box; step 2 groups them into objects at "
        f"minimal IoU >= {p['min_iou']}; merge: {p['merge']}; at least {p['min_votes']} vote(s) per object.", "",
        f"{s['boxes_before']} boxes → {s['kept_step1']} after step 1 → {s['objects']} objects "
        f"({s['other_annotations']} other annotations passed through).", "",
        "| class | boxes before | kept (step 1) | objects | mean votes | mean agreement |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c in report["per_class"]:
        lines.append(f"| {c['name']} | {c['boxes_before']} | {c['kept_step1']} | {c['objects']} | "
                     f"{c['mean_votes']:.1f} | {c['mean_agreement']:.2f} |")
    return "\n".join(lines) + "\n"
