"""Audit: label issues against cleanlab on the real FishCam VGG outputs, bias views, detection issues
with known injected errors, Aquarium imbalance and box sizes against an independent count, rebalancing."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from imagine.curate.audit import audit, bias_report, class_weights, rebalance, write_audit
from imagine.curate.audit.labels import detection_issues
from imagine.curate.audit.predictions import DetPredictions, load_class_predictions
from imagine.curate.cli import main
from imagine.curate.formats import read_dataset
from imagine.curate.model import Dataset
from imagine.schemas import validate

FIX = Path(__file__).parent / "fixtures"
FISHCAM = FIX / "fishcam"
AQUARIUM = FIX / "aquarium"


@pytest.fixture(scope="module")
def fishcam() -> Dataset:
    return read_dataset(FISHCAM / "data", "imagefolder")


def vgg_predictions(ds: Dataset, out: Path, model: str = "vgg_results") -> tuple[Path, np.ndarray, np.ndarray]:
    """The real VGG softmax outputs as a pred_probs file, with VGG's class indices mapped to our category ids
    through the species/label columns of test-sample.csv; returns the file and cleanlab's own inputs."""
    meta = list(csv.DictReader(open(FISHCAM / "data/test-sample.csv"), delimiter=";"))
    vgg_to_name = {int(float(m["label"])): m["specie"] for m in meta}
    name_to_id = {v: k for k, v in ds.category_names().items()}
    rows = list(csv.DictReader(open(FISHCAM / f"eval/{model}_sample.csv"), delimiter=";"))
    path = out / "pred_probs.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file_name"] + [f"prob_{name_to_id[vgg_to_name[k]]}" for k in range(7)])
        for r in rows:
            w.writerow([r["image_path"]] + [r[f"score{k}"] for k in range(7)])
    # cleanlab's inputs built independently: labels from the folder names, columns in category-id order
    order = sorted(range(7), key=lambda k: name_to_id[vgg_to_name[k]])
    probs = np.array([[float(r[f"score{k}"]) for k in order] for r in rows])
    labels = np.array([name_to_id[r["image_path"].split("/")[0]] for r in rows])
    return path, labels, probs


def test_fishcam_label_issues_equal_cleanlab(fishcam: Dataset, tmp_path: Path) -> None:
    import cleanlab

    pred, labels, probs = vgg_predictions(fishcam, tmp_path)
    res = audit(fishcam, predictions=pred, duplicates=False, source="fishcam")
    expected = cleanlab.filter.find_label_issues(labels, probs)
    expected_scores = cleanlab.rank.get_label_quality_scores(labels, probs)
    names = fishcam.images.column("file_name").to_pylist()
    rows = list(csv.DictReader(open(FISHCAM / "eval/vgg_results_sample.csv"), delimiter=";"))
    by_file = {r["image_path"]: i for i, r in enumerate(rows)}
    got = np.zeros(len(rows), bool)
    got_scores = np.zeros(len(rows))
    for name, flag, score in zip(names, res.columns["is_label_issue"], res.columns["label_quality"], strict=True):
        got[by_file[name]] = flag
        got_scores[by_file[name]] = score
    assert got.sum() == expected.sum() > 0
    assert (got == expected).all()
    np.testing.assert_allclose(got_scores, expected_scores)
    summary = res.report["label_issues"]["summary"]
    # the shipped VGG probabilities are 86.3 % accurate on this sample (reference figure)
    assert summary["accuracy_of_predictions"] == pytest.approx(0.863, abs=5e-4)
    assert summary["issues"] == int(expected.sum())
    assert validate(res.report, "audit-report") == []


def test_fishcam_bias_shows_tracks_dates_and_lengths(fishcam: Dataset) -> None:
    b = bias_report(fishcam)
    meta = list(csv.DictReader(open(FISHCAM / "data/test-sample.csv"), delimiter=";"))
    # tracks: one per video name
    assert b["views"]["track"]["groups"] == len({m["video_name"] for m in meta})
    assert sum(b["views"]["track"]["images"].values()) == len(meta)
    # dates: images per month, independently counted
    months = Counter(m["date"][:7] for m in meta)
    assert b["views"]["month"]["images"] == dict(sorted(months.items()))
    assert b["coverage_gaps"]["empty_months"]  # the sample spans months without images
    # fish length per class
    lengths = [float(m["length"]) for m in meta if m["specie"] == "bream"]
    d = b["views"]["attribute:length"]["per_class"]["bream"]
    assert d["median"] == pytest.approx(float(np.median(lengths)))
    assert "site" in b["unavailable"] and "needs the image column 'site'" in b["unavailable"]["site"]


def test_aquarium_imbalance_and_box_sizes_match_independent_count() -> None:
    ds = read_dataset(AQUARIUM, "yolo")
    b = bias_report(ds)
    names = ["fish", "jellyfish", "penguin", "puffin", "shark", "starfish", "stingray"]
    counts: Counter[str] = Counter()
    sizes: dict[str, list[float]] = {n: [] for n in names}
    from PIL import Image

    for lab in sorted(AQUARIUM.glob("*/labels/*.txt")):
        img = next(AQUARIUM.glob(f"{lab.parent.parent.name}/images/{lab.stem}.*"))
        W, H = Image.open(img).size
        for line in lab.read_text().split("\n"):
            if line.strip():
                c, _, _, w, h = line.split()
                counts[names[int(c)]] += 1
                sizes[names[int(c)]].append(math.sqrt(float(w) * W * float(h) * H))
    per = {r["name"]: r["annotations"] for r in b["class_balance"]["per_class"]}
    assert per == dict(counts)
    assert b["class_balance"]["imbalance_ratio"] == pytest.approx(max(counts.values()) / min(counts.values()))
    p = np.array(list(counts.values())) / sum(counts.values())
    assert b["class_balance"]["effective_number_of_classes"] == pytest.approx(math.exp(-(p * np.log(p)).sum()))
    for n in names:
        assert b["views"]["box_size"]["per_class"][n]["median"] == pytest.approx(float(np.median(sizes[n])))
    w = class_weights(ds)
    assert w[0] < w[6] and np.mean(list(w.values())) == pytest.approx(1.0)


def _generated_detection(seed: int = 3) -> tuple[Dataset, Dataset, DetPredictions, dict[str, set[int]]]:
    """True boxes, a corrupted copy (swaps, shifts, deletions) and confident predictions of the truth."""
    rng = np.random.default_rng(seed)
    images, truth = [], []
    aid = 0
    for i in range(60):
        images.append({"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480})
        for _ in range(3):
            x, y = rng.uniform(0, 500), rng.uniform(0, 350)
            w, h = rng.uniform(40, 120), rng.uniform(40, 120)
            truth.append({"id": aid, "image_id": i, "category_id": int(rng.integers(0, 3)), "kind": "box",
                          "bbox_x": x, "bbox_y": y, "bbox_w": w, "bbox_h": h})
            aid += 1
    cats = [{"id": 0, "name": "fish"}, {"id": 1, "name": "crab"}, {"id": 2, "name": "starfish"}]
    injected: dict[str, set[int]] = {"swap": set(), "shift": set(), "delete": set()}
    noisy = []
    for a in truth:
        b = dict(a)
        img = a["image_id"]
        first = a["id"] % 3 == 0  # one corrupted box in each affected image
        if img % 10 == 1 and first:
            b["category_id"] = (a["category_id"] + 1) % 3
            injected["swap"].add(img)
        elif img % 10 == 2 and first:
            b["bbox_x"] += a["bbox_w"] * 0.8
            injected["shift"].add(img)
        elif img % 10 == 3 and first:
            injected["delete"].add(img)
            continue
        noisy.append(b)
    # an under-confident detector: true boxes at 0.6-0.95 by size (never above cleanlab's 0.95 cut) and one
    # spurious box per image at 0.05-0.45; calibration must lift the true boxes over 0.95
    fp = [{"image_id": i, "category_id": int(rng.integers(0, 3)), "bbox_x": rng.uniform(0, 500),
           "bbox_y": rng.uniform(0, 350), "bbox_w": 30.0, "bbox_h": 30.0} for i in range(len(images))]
    det = truth + fp
    pred_rows = np.array([a["image_id"] for a in det])
    area = np.array([a["bbox_w"] * a["bbox_h"] for a in truth])
    tp = 0.6 + 0.35 * (area - area.min()) / (area.max() - area.min())  # bigger objects, surer detections
    scores = np.r_[tp, rng.uniform(0.05, 0.45, len(fp))]
    boxes = np.array([[a["bbox_x"], a["bbox_y"], a["bbox_w"], a["bbox_h"]] for a in det])
    preds = DetPredictions(pred_rows, np.array([a["category_id"] for a in det]), scores, boxes)
    return (Dataset.from_records(images, truth, cats), Dataset.from_records(images, noisy, cats), preds, injected)


def test_detection_issues_find_injected_errors() -> None:
    _, noisy, preds, injected = _generated_detection()
    res = detection_issues(noisy, preds)
    flagged = set(np.flatnonzero(res.is_issue).tolist())
    bad = injected["swap"] | injected["shift"] | injected["delete"]
    assert res.summary["calibration"]["method"] == "platt"
    assert flagged <= bad, sorted(flagged - bad)  # nothing clean is flagged
    assert injected["shift"] <= flagged
    # swaps and deletions are found where the calibrated detector is confident (> 0.95), as cleanlab intends
    assert len(flagged & injected["swap"]) >= 3 and len(flagged & injected["delete"]) >= 2
    assert all(res.details["swapped"][i] >= 1 for i in flagged & injected["swap"])
    assert all(res.details["overlooked"][i] >= 1 for i in flagged & injected["delete"])
    assert all(res.details["badly_located"][i] >= 1 for i in injected["shift"]) or \
        all(res.quality[i] < 0.5 for i in injected["shift"])
    # without calibration the raw confidences never pass cleanlab's 0.95 cut: no swap or overlooked box at all
    raw = detection_issues(noisy, preds, calibrate=False)
    assert sum(raw.details["swapped"]) == 0 and sum(raw.details["overlooked"]) == 0
    assert set(np.flatnonzero(raw.is_issue).tolist()) < flagged


def test_bad_predictions_are_findings_and_the_audit_goes_on(fishcam: Dataset, tmp_path: Path) -> None:
    pred, _, _ = vgg_predictions(fishcam, tmp_path)
    lines = pred.read_text().splitlines()
    header = lines[0].split(",")
    header[-1] = "prob_99"  # a class the dataset does not have
    rows = [lines[1].split(",")]
    rows[0][1] = "0.9"  # no longer sums to one
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join([",".join(header), ",".join(rows[0]), "nosuch.png" + ",0.1" * 7]) + "\n")
    p = load_class_predictions(bad, fishcam)
    codes = {f.code for f in p.findings}
    assert {"predictions-unknown-class", "predictions-missing-class", "predictions-not-normalised",
            "predictions-unknown-image"} <= codes
    assert np.allclose(p.probs.sum(axis=1), 1)
    res = audit(fishcam, predictions=bad, duplicates=False)
    assert res.report["bias"]["class_balance"]["total"] == 1053
    broken = tmp_path / "broken.csv"
    broken.write_text("file_name,prob_0\nx.png,0.5,0.5\n")
    res = audit(fishcam, predictions=broken, duplicates=False)
    f = next(f for f in res.findings if f.code == "label-issues-failed")
    assert f.file == str(broken) and f.place == "line 2"
    assert res.report["bias"]["class_balance"]["total"] == 1053


def test_rebalance_caps_are_reproducible(fishcam: Dataset) -> None:
    a, sa = rebalance(fishcam, min_per_class=70, max_per_class=150, seed=1)
    b, _ = rebalance(fishcam, min_per_class=70, max_per_class=150, seed=1)
    c, _ = rebalance(fishcam, min_per_class=70, max_per_class=150, seed=2)
    assert a.images.equals(b.images) and not a.images.equals(c.images)
    assert sa["per_class"]["burbot"]["action"] == "dropped"  # 65 < 70
    assert sa["per_class"]["browntrout"]["selected"] == 150
    counts = Counter(a.annotations.column("category_id").to_pylist())
    assert max(counts.values()) == 150 and 2 not in counts
    over, so = rebalance(fishcam, min_per_class=100, max_per_class=150, seed=1, oversample=True)
    assert so["per_class"]["burbot"]["selected"] == 100
    ids = over.images.column("id").to_pylist()
    assert len(ids) == len(set(ids))  # repeated images got fresh ids


def test_audit_cli_writes_report_columns_and_plots(fishcam: Dataset, tmp_path: Path) -> None:
    pred, _, _ = vgg_predictions(fishcam, tmp_path)
    out = tmp_path / "audit"
    r = CliRunner().invoke(main, ["audit", str(FISHCAM / "data"), "--out", str(out), "--predictions", str(pred),
                                  "--cluster-by", "video", "--attribute", "length", "--json"])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert validate(report, "audit-report") == []
    assert report["duplicates"]["summary"]["groups"] > 0  # frames of one track are near-duplicates
    assert "underperforming_group" in report["label_issues"]["datalab"]["types"]
    for f in ("audit.json", "audit.md", "audit-columns.parquet", "class-histogram.png", "label-issues.png",
              "site-month.png"):
        assert (out / f).is_file(), f
    md = (out / "audit.md").read_text()
    assert "![Class histogram](class-histogram.png)" in md and "Label issues" in md
    r = CliRunner().invoke(main, ["audit", str(FISHCAM / "data"), "--out", str(tmp_path / "x"),
                                  "--cluster-by", "nosuch", "--no-duplicates"])
    assert r.exit_code == 2 and "no image column 'nosuch'" in r.output and not (tmp_path / "x").exists()


def test_write_audit_for_detection_dataset(tmp_path: Path) -> None:
    truth, noisy, preds, _ = _generated_detection()
    res = audit(noisy, duplicates=False)
    assert res.report["label_issues"] is None and res.report["task"] == "detection"
    write_audit(noisy, res, tmp_path / "a")
    assert (tmp_path / "a/box-sizes.png").is_file()
