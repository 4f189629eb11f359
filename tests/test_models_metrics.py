"""Metrics against their references: scikit-learn for classification, pycocotools for detection.

Classification inputs are the real VGG softmax outputs shipped with FishCam (eval/*.csv);
detection inputs are the real Aquarium boxes with seeded perturbations as predictions.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from tests.fixtures.models.helpers import aquarium_dataset

pytest.importorskip("torch")
sklearn_metrics = pytest.importorskip("sklearn.metrics")

from imagine.models.metrics import (  # noqa: E402
    DetectionMatcher,
    bootstrap_ci,
    bootstrap_classification,
    classification_metrics,
    coco_detection_metrics,
    expected_calibration_error,
)

EVAL = Path(__file__).parent / "fixtures" / "fishcam" / "eval"


def _vgg(name: str) -> tuple[np.ndarray, np.ndarray]:
    with open(EVAL / name, newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))
    y = np.array([int(float(r["label"])) for r in rows])
    p = np.array([[float(r[f"score{k}"]) for k in range(7)] for r in rows])
    return y, p


@pytest.mark.parametrize("name", ["vgg_results_sample.csv", "vgg_w_all_results_sample.csv"])
def test_classification_metrics_equal_sklearn(name: str) -> None:
    y, p = _vgg(name)
    m = classification_metrics(y, p)
    pred = p.argmax(1)
    assert m["accuracy"] == pytest.approx(sklearn_metrics.accuracy_score(y, pred), abs=1e-12)
    assert m["balanced_accuracy"] == pytest.approx(sklearn_metrics.balanced_accuracy_score(y, pred), abs=1e-12)
    prec, rec, f1, sup = sklearn_metrics.precision_recall_fscore_support(y, pred, labels=range(7), zero_division=0)
    assert [r["precision"] for r in m["per_class"]] == pytest.approx(prec, abs=1e-12)
    assert [r["recall"] for r in m["per_class"]] == pytest.approx(rec, abs=1e-12)
    assert [r["f1"] for r in m["per_class"]] == pytest.approx(f1, abs=1e-12)
    assert [r["support"] for r in m["per_class"]] == sup.tolist()
    for avg in ("macro", "weighted"):
        ref = sklearn_metrics.precision_recall_fscore_support(y, pred, average=avg, zero_division=0)
        assert m[f"{avg}_precision"] == pytest.approx(ref[0], abs=1e-12)
        assert m[f"{avg}_recall"] == pytest.approx(ref[1], abs=1e-12)
        assert m[f"{avg}_f1"] == pytest.approx(ref[2], abs=1e-12)
    assert m["confusion_matrix"] == sklearn_metrics.confusion_matrix(y, pred, labels=range(7)).tolist()
    pn = p / p.sum(1, keepdims=True)  # sklearn's multi-class AUC wants rows summing to 1 exactly
    assert classification_metrics(y, pn)["roc_auc_ovr_macro"] == pytest.approx(
        sklearn_metrics.roc_auc_score(y, pn, multi_class="ovr", average="macro"), abs=1e-12)
    for k in range(7):
        assert m["per_class"][k]["roc_auc"] == pytest.approx(sklearn_metrics.roc_auc_score(y == k, p[:, k]),
                                                            abs=1e-12)
    assert m["nll"] == pytest.approx(sklearn_metrics.log_loss(y, pn, labels=range(7)), abs=1e-12)


def test_metrics_when_a_class_is_never_predicted_or_absent() -> None:
    y = np.array([0, 0, 1, 1, 2])
    p = np.array([[.9, .1, 0, 0], [.2, .8, 0, 0], [.3, .7, 0, 0], [.6, .4, 0, 0], [.5, .5, 0, 0]])
    m = classification_metrics(y, p)
    pred = p.argmax(1)
    ref = sklearn_metrics.precision_recall_fscore_support(y, pred, average="macro", zero_division=0)
    assert m["macro_f1"] == pytest.approx(ref[2])
    assert m["per_class"][3]["roc_auc"] is None  # class 3 has no example


def test_ece_matches_explicit_binning() -> None:
    y, p = _vgg("vgg_results_sample.csv")
    conf, pred = p.max(1), p.argmax(1)
    total = 0.0
    for lo in np.arange(15) / 15:
        inb = (conf > lo) & (conf <= lo + 1 / 15 + 1e-12) if lo > 0 else (conf <= 1 / 15)
        if inb.any():
            total += inb.sum() / len(y) * abs((pred[inb] == y[inb]).mean() - conf[inb].mean())
    assert expected_calibration_error(p, y) == pytest.approx(total, abs=1e-9)
    # a perfectly confident, always right model is perfectly calibrated
    assert expected_calibration_error(np.eye(3)[[0, 1, 2, 1]], np.array([0, 1, 2, 1])) == 0.0


def test_bootstrap_intervals_are_seeded_and_contain_the_estimate() -> None:
    y, p = _vgg("vgg_results_sample.csv")
    a = bootstrap_classification(y, p, resamples=300, seed=3)
    b = bootstrap_classification(y, p, resamples=300, seed=3)
    assert a == b
    acc = (p.argmax(1) == y).mean()
    lo, hi = a["accuracy"]
    assert lo < acc < hi and hi - lo < 0.1
    assert bootstrap_ci(lambda ix: float(ix.mean()), 0) != bootstrap_ci(lambda ix: float(ix.mean()), 10)


def _aquarium_gt_and_predictions(seed: int) -> tuple[list[dict], list[dict], list[int]]:
    ds = aquarium_dataset({"valid": 40})
    rng = np.random.default_rng(seed)
    order, starts, ends = ds.annotations_by_image()
    env = np.stack([ds.col("annotations", c) for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")], 1)
    cats = ds.col("annotations", "category_id")
    gt, dets = [], []
    for r, iid in enumerate(ds.images.column("id").to_pylist()):
        rows = order[starts[r]:ends[r]]
        b, c = env[rows], cats[rows]
        gt.append({"image_id": iid, "boxes": b, "labels": c})
        keep = rng.random(len(b)) < 0.8                       # some objects missed
        jitter = b[keep] + rng.normal(0, 1, (keep.sum(), 4)) * np.c_[b[keep, 2:] * 0.08, b[keep, 2:] * 0.08]
        jitter[:, 2:] = np.abs(jitter[:, 2:]) + 1
        lab = np.where(rng.random(keep.sum()) < 0.1, rng.integers(1, 8, keep.sum()), c[keep])  # some confused
        fp = np.c_[rng.uniform(0, 600, (3, 2)), rng.uniform(10, 200, (3, 2))]  # false positives
        dets.append({"image_id": iid, "boxes": np.r_[jitter, fp],
                     "scores": np.r_[rng.uniform(0.3, 1, keep.sum()), rng.uniform(0, 0.6, 3)].round(3),
                     "labels": np.r_[lab, rng.integers(1, 8, 3)]})
    return gt, dets, ds.categories.column("id").to_pylist()


@pytest.mark.parametrize("seed", [0, 1])
def test_numpy_detection_ap_equals_pycocotools(seed: int) -> None:
    gt, dets, cats = _aquarium_gt_and_predictions(seed)
    ref = coco_detection_metrics(gt, dets, cats)
    ours = DetectionMatcher(gt, dets, cats).summary()
    assert 0.2 < ref["map50"] < 1.0
    assert ours["map50"] == pytest.approx(ref["map50"], abs=1e-12)
    assert ours["map50_95"] == pytest.approx(ref["map50_95"], abs=1e-12)
    for a, b in zip(ours["per_class"], ref["per_class"], strict=True):
        assert a["category_id"] == b["category_id"]
        assert (a["ap50"] is None) == (b["ap50"] is None)
        if a["ap50"] is not None:
            assert a["ap50"] == pytest.approx(b["ap50"], abs=1e-12)
            assert a["ap50_95"] == pytest.approx(b["ap50_95"], abs=1e-12)
    lo, hi = DetectionMatcher(gt, dets, cats).bootstrap(resamples=50, seed=0)["map50"]
    assert lo <= ref["map50"] <= hi


def test_detection_perfect_and_empty_predictions() -> None:
    gt, _, cats = _aquarium_gt_and_predictions(0)
    perfect = [{"image_id": g["image_id"], "boxes": g["boxes"], "scores": np.ones(len(g["labels"])),
                "labels": g["labels"]} for g in gt]
    assert coco_detection_metrics(gt, perfect, cats)["map50_95"] == pytest.approx(1.0)
    assert DetectionMatcher(gt, perfect, cats).summary()["map50_95"] == pytest.approx(1.0)
    assert coco_detection_metrics(gt, [], cats)["map50"] == 0.0
    assert DetectionMatcher(gt, [], cats).summary()["map50"] == 0.0
