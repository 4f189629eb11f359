"""Evaluation metrics: classification (checked against scikit-learn) and detection (COCO-style).

Classification metrics are computed in NumPy so that bootstrap resampling stays fast; the tests
check each against scikit-learn. Detection metrics come from pycocotools (:func:`coco_detection_metrics`);
a NumPy re-implementation of COCOeval's matching and 101-point interpolated AP
(:class:`DetectionMatcher`) gives the same numbers and makes bootstrap intervals affordable.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["classification_metrics", "confusion_matrix", "expected_calibration_error", "nll", "roc_auc_ovr",
           "bootstrap_ci", "bootstrap_classification", "coco_detection_metrics", "DetectionMatcher",
           "IOU_THRESHOLDS"]

EPS = float(np.finfo(np.float64).eps)  # as scikit-learn's log_loss clips
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
REC_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts ``[true, predicted]`` (rows are the true class), as scikit-learn's."""
    return np.bincount(np.asarray(y_true) * n_classes + np.asarray(y_pred),
                       minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _prf(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(cm).astype(np.float64)
    pred = cm.sum(axis=0).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred > 0, tp / pred, 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = precision + recall
        f1 = np.where(denom > 0, 2 * precision * recall / denom, 0.0)
    return precision, recall, f1, support


def expected_calibration_error(probs: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE: Σ_b (n_b / N) |accuracy_b − confidence_b| over equal-width confidence bins (0, 1]."""
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    acc = np.bincount(bins, weights=correct, minlength=n_bins)
    cs = np.bincount(bins, weights=conf, minlength=n_bins)
    return float(np.abs(acc - cs).sum() / max(len(y_true), 1))


def nll(probs: np.ndarray, y_true: np.ndarray) -> float:
    """Mean negative log-likelihood of the true class (scikit-learn's ``log_loss`` on normalised probabilities)."""
    p = probs / probs.sum(axis=1, keepdims=True)
    p = np.clip(p[np.arange(len(y_true)), y_true], EPS, 1.0)
    return float(-np.log(p).mean())


def _rankdata(x: np.ndarray) -> np.ndarray:
    """Average ranks (1-based), ties sharing their mean rank."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(xs)]
    avg = (starts + ends + 1) / 2.0
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = avg[group]
    return ranks


def _binary_auc(pos: np.ndarray, score: np.ndarray) -> float:
    n_pos = int(pos.sum())
    n_neg = len(pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _rankdata(score)
    return float((r[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc_ovr(probs: np.ndarray, y_true: np.ndarray) -> tuple[float, np.ndarray]:
    """One-vs-rest ROC-AUC per class and their macro mean (classes absent from ``y_true`` are NaN, left out)."""
    per = np.array([_binary_auc(y_true == k, probs[:, k]) for k in range(probs.shape[1])])
    ok = ~np.isnan(per)
    return (float(per[ok].mean()) if ok.any() else float("nan")), per


def classification_metrics(y_true: Sequence[int] | np.ndarray, probs: np.ndarray,
                           class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1, macro and weighted averages, confusion matrix, ROC-AUC, ECE, NLL.

    ``probs`` is ``(N, K)`` in class-index order; the prediction is its argmax. Precision of a
    class never predicted is 0, as scikit-learn's ``zero_division=0``.
    """
    y = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    k = probs.shape[1]
    pred = probs.argmax(axis=1)
    cm = confusion_matrix(y, pred, k)
    precision, recall, f1, support = _prf(cm)
    present = support > 0
    labels_used = present | (cm.sum(axis=0) > 0)
    w = support / max(support.sum(), 1)
    auc, auc_per = roc_auc_ovr(probs, y)
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    return {
        "accuracy": float((pred == y).mean()) if len(y) else float("nan"),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else float("nan"),
        "macro_precision": float(precision[labels_used].mean()),
        "macro_recall": float(recall[labels_used].mean()),
        "macro_f1": float(f1[labels_used].mean()),
        "weighted_precision": float((precision * w).sum()),
        "weighted_recall": float((recall * w).sum()),
        "weighted_f1": float((f1 * w).sum()),
        "roc_auc_ovr_macro": auc,
        "ece": expected_calibration_error(probs, y),
        "nll": nll(probs, y),
        "per_class": [{"index": i, "name": names[i], "precision": float(precision[i]), "recall": float(recall[i]),
                       "f1": float(f1[i]), "support": int(support[i]),
                       "roc_auc": None if np.isnan(auc_per[i]) else float(auc_per[i])} for i in range(k)],
        "confusion_matrix": cm.tolist(),
    }


def bootstrap_ci(stat: Callable[[np.ndarray], float], n: int, *, resamples: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of ``stat(indices)`` over ``resamples`` resamplings of ``n`` items."""
    if n == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    vals = np.array([stat(rng.integers(0, n, n)) for _ in range(resamples)], dtype=np.float64)
    vals = vals[~np.isnan(vals)]
    if len(vals) == 0:
        return float("nan"), float("nan")
    a = (1 - level) / 2
    return float(np.quantile(vals, a)), float(np.quantile(vals, 1 - a))


def bootstrap_classification(y_true: np.ndarray, probs: np.ndarray, *, resamples: int = 1000, seed: int = 0
                             ) -> dict[str, tuple[float, float]]:
    """Bootstrap intervals of accuracy, macro F1, ECE and NLL (the headline classification metrics)."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    k = p.shape[1]
    pred = p.argmax(axis=1)

    def macro_f1(ix: np.ndarray) -> float:
        cm = confusion_matrix(y[ix], pred[ix], k)
        _, _, f1, support = _prf(cm)
        used = (support > 0) | (cm.sum(axis=0) > 0)
        return float(f1[used].mean())

    stats: dict[str, Callable[[np.ndarray], float]] = {
        "accuracy": lambda ix: float((pred[ix] == y[ix]).mean()),
        "macro_f1": macro_f1,
        "ece": lambda ix: expected_calibration_error(p[ix], y[ix]),
        "nll": lambda ix: nll(p[ix], y[ix]),
    }
    return {name: bootstrap_ci(fn, len(y), resamples=resamples, seed=seed) for name, fn in stats.items()}


# --------------------------------------------------------------------------------------------
# Detection


def _coco_dicts(gt: Sequence[dict[str, Any]], dets: Sequence[dict[str, Any]], categories: Sequence[int]
                ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    images, anns = [], []
    aid = 1
    for img in gt:
        images.append({"id": int(img["image_id"]), "width": int(img.get("width", 1)),
                       "height": int(img.get("height", 1))})
        for box, c in zip(np.asarray(img["boxes"], dtype=np.float64).reshape(-1, 4), img["labels"], strict=True):
            x, y, w, h = (float(v) for v in box)
            anns.append({"id": aid, "image_id": int(img["image_id"]), "category_id": int(c), "bbox": [x, y, w, h],
                         "area": w * h, "iscrowd": 0})
            aid += 1
    res = []
    for d in dets:
        for box, s, c in zip(np.asarray(d["boxes"], dtype=np.float64).reshape(-1, 4), d["scores"], d["labels"],
                             strict=True):
            res.append({"image_id": int(d["image_id"]), "category_id": int(c),
                        "bbox": [float(v) for v in box], "score": float(s)})
    return ({"images": images, "annotations": anns, "categories": [{"id": int(c), "name": str(c)}
                                                                   for c in categories]}, res)


def coco_detection_metrics(gt: Sequence[dict[str, Any]], dets: Sequence[dict[str, Any]],
                           categories: Sequence[int]) -> dict[str, Any]:
    """mAP50-95, mAP@50, mAP@75 and per-class AP through pycocotools' COCOeval (boxes ``x, y, w, h``).

    ``gt``: one dict per image ``{image_id, width, height, boxes (n, 4), labels (n)}``;
    ``dets``: ``{image_id, boxes, scores, labels}``. Labels are category ids.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_dict, res = _coco_dicts(gt, dets, categories)
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt_dict
        coco.createIndex()
        coco_dt = coco.loadRes(res) if res else COCO()
        if not res:
            coco_dt.dataset = {"images": gt_dict["images"], "annotations": [], "categories": gt_dict["categories"]}
            coco_dt.createIndex()
        ev = COCOeval(coco, coco_dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    prec = ev.eval["precision"]  # [T, R, K, A, M]
    per_class = []
    for ki, c in enumerate(ev.params.catIds):
        p_all = prec[:, :, ki, 0, -1]
        p50 = prec[0, :, ki, 0, -1]
        per_class.append({"category_id": int(c),
                          "ap50_95": float(p_all[p_all > -1].mean()) if (p_all > -1).any() else None,
                          "ap50": float(p50[p50 > -1].mean()) if (p50 > -1).any() else None})
    return {"map50_95": float(ev.stats[0]), "map50": float(ev.stats[1]), "map75": float(ev.stats[2]),
            "per_class": per_class}


def _iou_xywh(d: np.ndarray, g: np.ndarray) -> np.ndarray:
    dx2, dy2 = d[:, 0] + d[:, 2], d[:, 1] + d[:, 3]
    gx2, gy2 = g[:, 0] + g[:, 2], g[:, 1] + g[:, 3]
    iw = np.minimum(dx2[:, None], gx2[None]) - np.maximum(d[:, None, 0], g[None, :, 0])
    ih = np.minimum(dy2[:, None], gy2[None]) - np.maximum(d[:, None, 1], g[None, :, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = (d[:, 2] * d[:, 3])[:, None] + (g[:, 2] * g[:, 3])[None] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@dataclass
class _Matched:
    scores: np.ndarray   # (D,) detection scores, COCO order within the image
    tp: np.ndarray       # (T, D) matched at each IoU threshold
    n_gt: int


class DetectionMatcher:
    """COCOeval's per-image greedy matching and 101-point AP in NumPy (area "all", 100 detections per image).

    Matching is done once per image and class; :meth:`summary` then takes image weights (counts
    of each image in a bootstrap resample) so intervals cost one sort per class, not a COCOeval run.
    """

    def __init__(self, gt: Sequence[dict[str, Any]], dets: Sequence[dict[str, Any]], categories: Sequence[int],
                 max_dets: int = 100):
        self.categories = sorted(int(c) for c in categories)
        self.image_ids = sorted(int(g["image_id"]) for g in gt)
        by_gt = {int(g["image_id"]): g for g in gt}
        by_dt: dict[int, dict[str, Any]] = {int(d["image_id"]): d for d in dets}
        self.matched: dict[int, list[_Matched | None]] = {c: [] for c in self.categories}
        for iid in self.image_ids:
            g = by_gt[iid]
            gb = np.asarray(g["boxes"], dtype=np.float64).reshape(-1, 4)
            gl = np.asarray(g["labels"], dtype=np.int64)
            d = by_dt.get(iid)
            db = np.asarray(d["boxes"], dtype=np.float64).reshape(-1, 4) if d else np.zeros((0, 4))
            ds = np.asarray(d["scores"], dtype=np.float64) if d else np.zeros(0)
            dl = np.asarray(d["labels"], dtype=np.int64) if d else np.zeros(0, dtype=np.int64)
            for c in self.categories:
                self.matched[c].append(self._match(gb[gl == c], db[dl == c], ds[dl == c], max_dets))

    @staticmethod
    def _match(g: np.ndarray, d: np.ndarray, s: np.ndarray, max_dets: int) -> _Matched | None:
        if len(g) == 0 and len(d) == 0:
            return None
        order = np.argsort(-s, kind="mergesort")[:max_dets]
        d, s = d[order], s[order]
        t_n = len(IOU_THRESHOLDS)
        tp = np.zeros((t_n, len(d)), dtype=bool)
        if len(g) and len(d):
            ious = _iou_xywh(d, g)
            for ti, t in enumerate(IOU_THRESHOLDS):
                taken = np.zeros(len(g), dtype=bool)
                for di in range(len(d)):
                    best, m = min(t, 1 - 1e-10), -1
                    for gi in range(len(g)):
                        if taken[gi] or ious[di, gi] < best:
                            continue
                        best, m = ious[di, gi], gi
                    if m >= 0:
                        taken[m] = True
                        tp[ti, di] = True
        return _Matched(s, tp, len(g))

    def _ap(self, c: int, weights: np.ndarray | None) -> np.ndarray | None:
        """AP per IoU threshold for class ``c`` (None when it has no ground truth)."""
        rows = [(i, m) for i, m in enumerate(self.matched[c]) if m is not None]
        if weights is not None:
            rows = [(i, m) for i, m in rows for _ in range(int(weights[i]))]
        n_gt = sum(m.n_gt for _, m in rows)
        if n_gt == 0:
            return None
        if not rows:
            return None
        scores = np.concatenate([m.scores for _, m in rows])
        tp = np.concatenate([m.tp for _, m in rows], axis=1)
        order = np.argsort(-scores, kind="mergesort")
        tp = tp[:, order]
        fp = ~tp
        tps = np.cumsum(tp, axis=1).astype(np.float64)
        fps = np.cumsum(fp, axis=1).astype(np.float64)
        out = np.zeros(len(IOU_THRESHOLDS))
        nd = tp.shape[1]
        for ti in range(len(IOU_THRESHOLDS)):
            if nd == 0:
                continue
            rc = tps[ti] / n_gt
            pr = (tps[ti] / (fps[ti] + tps[ti] + np.spacing(1))).tolist()
            for i in range(nd - 1, 0, -1):
                if pr[i] > pr[i - 1]:
                    pr[i - 1] = pr[i]
            inds = np.searchsorted(rc, REC_THRESHOLDS, side="left")
            q = np.zeros(len(REC_THRESHOLDS))
            ok = inds < nd
            q[ok] = np.asarray(pr)[inds[ok]]
            out[ti] = q.mean()
        return out

    def summary(self, weights: np.ndarray | None = None) -> dict[str, Any]:
        """mAP50-95, mAP@50 and per-class AP, weighting images by ``weights`` (None: each once)."""
        per = {c: self._ap(c, weights) for c in self.categories}
        valid = [v for v in per.values() if v is not None]
        if not valid:
            return {"map50_95": -1.0, "map50": -1.0, "per_class": []}
        arr = np.stack(valid)
        return {"map50_95": float(arr.mean()), "map50": float(arr[:, 0].mean()),
                "per_class": [{"category_id": c, "ap50_95": None if v is None else float(v.mean()),
                               "ap50": None if v is None else float(v[0])} for c, v in per.items()]}

    def bootstrap(self, *, resamples: int = 200, seed: int = 0, level: float = 0.95
                  ) -> dict[str, tuple[float, float]]:
        """Percentile intervals of mAP@50 and mAP50-95 over image resamples."""
        rng = np.random.default_rng(seed)
        n = len(self.image_ids)
        vals: dict[str, list[float]] = {"map50": [], "map50_95": []}
        for _ in range(resamples):
            w = np.bincount(rng.integers(0, n, n), minlength=n)
            s = self.summary(w)
            for k in vals:
                if s[k] >= 0:
                    vals[k].append(s[k])
        a = (1 - level) / 2
        return {k: (float(np.quantile(v, a)), float(np.quantile(v, 1 - a))) if v else (float("nan"), float("nan"))
                for k, v in vals.items()}
