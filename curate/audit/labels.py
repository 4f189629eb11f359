"""Label issues with cleanlab: classification, multi-label tags, object detection, and Datalab's other types.

Each function returns per-example columns (``is_label_issue``, ``label_quality``, a suggested
label) plus a summary, following the audit convention of ``DESIGN.md``. The calls into cleanlab
are cleanlab's own defaults, so what the audit reports is what cleanlab finds on the same inputs.
"""

from __future__ import annotations

import contextlib
import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.compute as pc

from imagine.kernel import Finding, require

from ..model import Dataset
from .predictions import ClassPredictions, DetPredictions

# cleanlab.object_detection only counts predicted boxes above this confidence (constants.py).
HIGH_PROBABILITY_THRESHOLD = 0.95


@dataclass
class LabelIssues:
    """Per-example results of a label-issue search; ``rows`` index images (or annotations)."""

    task: str
    rows: np.ndarray
    is_issue: np.ndarray
    quality: np.ndarray
    given: list[Any]
    suggested: list[Any]
    summary: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def top(self, ds: Dataset, n: int = 20) -> list[dict[str, Any]]:
        """The ``n`` most suspect examples (issues first, lowest quality first)."""
        names = ds.images.column("file_name").to_pylist()
        order = np.lexsort((self.quality, ~self.is_issue))[:n]
        return [{"image": names[int(self.rows[i])], "given": self.given[i], "suggested": self.suggested[i],
                 "label_quality": float(self.quality[i]), "is_label_issue": bool(self.is_issue[i]),
                 **{k: v[i] for k, v in self.details.items() if isinstance(v, list)}}
                for i in order]


def image_labels(ds: Dataset) -> dict[int, list[int]]:
    """Image row → category ids of its whole-image ``label`` annotations (source order)."""
    rows = ds.image_index()
    out: dict[int, list[int]] = {}
    kinds = ds.annotations.column("kind").to_pylist()
    for img, cat, kind in zip(ds.annotations.column("image_id").to_pylist(),
                              ds.annotations.column("category_id").to_pylist(), kinds, strict=True):
        if kind == "label" and cat is not None and img in rows:
            out.setdefault(rows[img], []).append(cat)
    return out


def label_counts(ds: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Per image row: the number of its whole-image ``label`` annotations, and one of their category ids.

    The columnar form of :func:`image_labels` for single-label work on millions of images (the
    category is meaningful where the count is 1). Image ids map to rows as ``Dataset.image_index``.
    """
    n = len(ds)
    ann = ds.annotations
    ok = pc.fill_null(pc.and_(pc.equal(ann.column("kind"), "label"), pc.is_valid(ann.column("category_id"))), False)
    ann_img = ann.column("image_id").filter(ok).to_numpy()
    cat = ann.column("category_id").filter(ok).to_numpy()
    count, first = np.zeros(n, dtype=np.int64), np.full(n, -1, dtype=np.int64)
    if n == 0 or len(ann_img) == 0:
        return count, first
    img_ids = ds.images.column("id").to_numpy()
    sorter = np.argsort(img_ids, kind="stable")
    # the last row of a repeated image id, as the dict of ``image_index`` keeps it
    row = sorter[np.clip(np.searchsorted(img_ids, ann_img, side="right", sorter=sorter) - 1, 0, n - 1)]
    found = img_ids[row] == ann_img
    row, cat = row[found], cat[found]
    count += np.bincount(row, minlength=n)
    first[row] = cat
    return count, first


def classification_issues(ds: Dataset, preds: ClassPredictions) -> LabelIssues:
    """Single-label issues: ``cleanlab.filter.find_label_issues`` and ``rank.get_label_quality_scores``."""
    filt = require("cleanlab.filter", "audit")
    rank = require("cleanlab.rank", "audit")
    count, first = label_counts(ds)
    index = {c: k for k, c in enumerate(preds.class_ids)}
    valid = (preds.image_rows >= 0) & (preds.image_rows < len(count))
    keep = np.flatnonzero(valid & (count[np.where(valid, preds.image_rows, 0)] == 1)) if len(count) \
        else np.zeros(0, dtype=np.int64)
    findings = list(preds.findings)
    skipped = len(preds.image_rows) - len(keep)
    if skipped:
        findings.append(Finding("not-single-label", f"{skipped} predicted image(s) have no or several image labels; "
                                "left out of the single-label search", severity="warning"))
    rows = preds.image_rows[keep]
    # map category ids to probability columns once per distinct id, not once per image
    uniq, inverse = np.unique(first[rows], return_inverse=True)
    labels = np.array([index[int(c)] for c in uniq], dtype=np.int64)[inverse.reshape(-1)]
    probs = preds.probs if skipped == 0 else preds.probs[keep]  # no copy of an (N, K) array when all are kept
    if len(np.unique(labels)) < 2:
        findings.append(Finding("too-few-classes", f"{len(labels)} predicted image(s) with a label cover fewer than "
                                "two classes; cleanlab needs at least two", severity="warning"))
        return LabelIssues("classification", rows[:0], np.zeros(0, bool), np.zeros(0), [], [],
                           {"examples": 0, "issues": 0}, findings=findings)
    is_issue = np.asarray(filt.find_label_issues(labels, probs), dtype=bool)
    quality = np.asarray(rank.get_label_quality_scores(labels, probs), dtype=np.float64)
    names = ds.category_names()
    name_of = np.empty(len(preds.class_ids), dtype=object)
    name_of[:] = [names[c] for c in preds.class_ids]
    predicted = probs.argmax(axis=1)
    given = name_of[labels].tolist()
    suggested = name_of[predicted].tolist()
    issues_of = np.bincount(labels[is_issue], minlength=len(preds.class_ids))
    per_class = {names[c]: int(issues_of[k]) for k, c in enumerate(preds.class_ids)}
    summary = {"examples": int(len(labels)), "issues": int(is_issue.sum()),
               "issue_rate": float(is_issue.mean()), "issues_per_class": per_class,
               "accuracy_of_predictions": float((predicted == labels).mean())}
    return LabelIssues("classification", rows, is_issue, quality, given, suggested, summary, findings=findings)


def multilabel_issues(ds: Dataset, preds: ClassPredictions) -> LabelIssues:
    """Multi-label tags: cleanlab's ``multi_label=True`` search over per-class probabilities."""
    filt = require("cleanlab.filter", "audit")
    ml_rank = require("cleanlab.multilabel_classification.rank", "audit")
    labels_of = image_labels(ds)
    index = {c: k for k, c in enumerate(preds.class_ids)}
    labels = [sorted({index[c] for c in labels_of.get(int(r), []) if c in index}) for r in preds.image_rows]
    is_issue = np.asarray(filt.find_label_issues(labels, preds.probs, multi_label=True), dtype=bool)
    quality = np.asarray(ml_rank.get_label_quality_scores(labels, preds.probs), dtype=np.float64)
    names = ds.category_names()
    given = [[names[preds.class_ids[k]] for k in ls] for ls in labels]
    suggested = [[names[preds.class_ids[k]] for k in np.flatnonzero(p >= 0.5)] for p in preds.probs]
    summary = {"examples": len(labels), "issues": int(is_issue.sum()), "issue_rate": float(is_issue.mean())}
    return LabelIssues("multilabel", preds.image_rows, is_issue, quality, given, suggested, summary,
                       findings=list(preds.findings))


def _iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between xyxy boxes a (N,4) and b (M,4)."""
    if not len(a) or not len(b):
        return np.zeros((len(a), len(b)))
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def calibrate_scores(gt: list[tuple[np.ndarray, np.ndarray]], pred: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                     iou: float = 0.5) -> tuple[Any, dict[str, Any]]:
    """Platt-scale detector scores against matches with the given boxes (IoU ≥ ``iou``, any class).

    Returns a function mapping raw scores to calibrated probabilities and what was fitted. A
    detector whose raw confidences never pass cleanlab's 0.95 cut would otherwise flag nothing.
    Matching ignores the class on purpose: swapped classes are what the audit looks for, and
    counting them as detector mistakes would pull every confidence down.
    """
    xs, ys = [], []
    for (gb, _gl), (pb, _pl, ps) in zip(gt, pred, strict=True):
        m = _iou_matrix(pb, gb)
        for j in range(len(pb)):
            ys.append(bool(m.shape[1] and (m[j] >= iou).any()))
            xs.append(ps[j])
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=bool)
    info: dict[str, Any] = {"method": "platt", "boxes": int(len(x)), "matched": int(y.sum()), "iou": iou}
    if len(x) < 10 or y.all() or not y.any():
        info["method"] = "identity"
        info["why"] = "too few boxes, or all / none matched: nothing to calibrate against"
        return (lambda s: np.asarray(s, dtype=np.float64)), info
    sk = require("sklearn.linear_model", "audit")
    eps = 1e-6
    logit = np.log(np.clip(x, eps, 1 - eps) / np.clip(1 - x, eps, 1))
    lr = sk.LogisticRegression(C=1e4).fit(logit[:, None], y)
    a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    info.update({"slope": a, "intercept": b})

    def f(s: Any) -> np.ndarray:
        z = np.log(np.clip(np.asarray(s, np.float64), eps, 1 - eps) / np.clip(1 - np.asarray(s, np.float64), eps, 1))
        return 1.0 / (1.0 + np.exp(-(a * z + b)))

    return f, info


def detection_issues(ds: Dataset, preds: DetPredictions, *, calibrate: bool = True) -> LabelIssues:
    """Swapped, badly located and overlooked boxes per image with ``cleanlab.object_detection``."""
    od_filter = require("cleanlab.object_detection.filter", "audit")
    od_rank = require("cleanlab.object_detection.rank", "audit")
    class_ids = ds.categories.column("id").to_pylist()
    index = {c: k for k, c in enumerate(class_ids)}
    K = len(class_ids)
    order, starts, ends = ds.annotations_by_image()
    kinds = np.asarray(ds.annotations.column("kind").to_pylist(), dtype=object)
    cat = ds.annotations.column("category_id").to_pylist()
    xywh = np.stack([ds.annotations.column(c).to_numpy(zero_copy_only=False).astype(float)
                     for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")], axis=1) if ds.num_annotations else \
        np.zeros((0, 4))
    gt: list[tuple[np.ndarray, np.ndarray]] = []
    ann_rows: list[np.ndarray] = []
    for i in range(len(ds)):
        rows = order[starts[i]:ends[i]]
        rows = rows[(kinds[rows] != "label") & np.array([cat[r] in index for r in rows], dtype=bool)] \
            if len(rows) else rows
        b = xywh[rows]
        gt.append((np.c_[b[:, :2], b[:, :2] + b[:, 2:]], np.array([index[cat[r]] for r in rows], np.int64)))
        ann_rows.append(rows)
    p_img = preds.image_rows
    pb = np.c_[preds.boxes[:, :2], preds.boxes[:, :2] + preds.boxes[:, 2:]] if len(preds.boxes) else np.zeros((0, 4))
    pl = np.array([index[c] for c in preds.category_ids], np.int64)
    by_img = np.argsort(p_img, kind="stable")
    bounds = np.searchsorted(p_img[by_img], np.arange(len(ds) + 1))
    pred = [(pb[by_img[bounds[i]:bounds[i + 1]]], pl[by_img[bounds[i]:bounds[i + 1]]],
             preds.scores[by_img[bounds[i]:bounds[i + 1]]]) for i in range(len(ds))]
    cal, cal_info = calibrate_scores(gt, pred) if calibrate else ((lambda s: s), {"method": "none"})
    labels = [{"bboxes": g[0].astype(np.float32).reshape(-1, 4), "labels": g[1]} for g in gt]
    predictions = []
    for b, lab, s in pred:
        cs = cal(s)
        predictions.append([np.c_[b[lab == k], cs[lab == k]].astype(np.float32).reshape(-1, 5) for k in range(K)])
    quality = np.asarray(od_rank.get_label_quality_scores(labels, predictions, verbose=False), dtype=np.float64)
    is_issue = np.asarray(od_filter.find_label_issues(labels, predictions), dtype=bool)
    swap = od_rank.compute_swap_box_scores(labels=labels, predictions=predictions)
    badloc = od_rank.compute_badloc_box_scores(labels=labels, predictions=predictions)
    overlooked = od_rank.compute_overlooked_box_scores(labels=labels, predictions=predictions)
    thr = 0.1
    n_swap = [int((np.asarray(s) < thr).sum()) for s in swap]
    n_badloc = [int((np.asarray(s) < thr).sum()) for s in badloc]
    n_over = [int((np.asarray(s) < thr).sum()) for s in overlooked]
    names = ds.category_names()
    given = [[names[class_ids[k]] for k in g[1]] for g in gt]
    summary = {"images": len(ds), "issues": int(is_issue.sum()), "issue_rate": float(is_issue.mean()) if len(ds)
               else math.nan, "swapped_boxes": int(sum(n_swap)), "badly_located_boxes": int(sum(n_badloc)),
               "overlooked_boxes": int(sum(n_over)), "calibration": cal_info,
               "high_probability_threshold": HIGH_PROBABILITY_THRESHOLD, "box_score_threshold": thr}
    box_scores = {"swap": swap, "badloc": badloc, "overlooked": overlooked, "annotation_rows": ann_rows}
    return LabelIssues("detection", np.arange(len(ds)), is_issue, quality, given, given, summary,
                       details={"swapped": n_swap, "badly_located": n_badloc, "overlooked": n_over,
                                "box_scores": box_scores},
                       findings=list(preds.findings))


def datalab_issues(labels: np.ndarray, pred_probs: np.ndarray | None, *, features: np.ndarray | None = None,
                   cluster_ids: np.ndarray | None = None) -> dict[str, Any]:
    """Datalab's other issue types the inputs allow: outlier, near-duplicate, non-IID, imbalance, groups.

    Labels must be 0..K-1 with the probability columns in that order (Datalab sorts class names,
    and integer names sort in index order). Returns per-type summaries and per-example flags.
    """
    cleanlab = require("cleanlab", "audit")
    lab = cleanlab.Datalab(data={"label": labels.tolist()}, label_name="label", verbosity=0)
    issue_types: dict[str, Any] = {"class_imbalance": {}}
    if pred_probs is not None or features is not None:
        issue_types.update({"outlier": {}, "non_iid": {}})
    if features is not None:
        issue_types["near_duplicate"] = {}
    if pred_probs is not None and (features is not None or cluster_ids is not None):
        issue_types["underperforming_group"] = {} if cluster_ids is None else {"cluster_ids": cluster_ids}
    with contextlib.redirect_stdout(io.StringIO()):  # Datalab prints progress even at verbosity 0
        lab.find_issues(pred_probs=pred_probs, features=features, issue_types=issue_types)
    summary = lab.get_issue_summary()
    out: dict[str, Any] = {"types": {}, "flags": {}}
    for rec in summary.to_dict("records"):
        t = rec["issue_type"]
        issues = lab.get_issues(t)
        col = f"is_{t}_issue"
        flags = issues[col].to_numpy(dtype=bool) if col in issues else np.zeros(len(labels), bool)
        out["types"][t] = {"score": float(rec["score"]), "num_issues": int(rec["num_issues"])}
        out["flags"][t] = flags
    return out
