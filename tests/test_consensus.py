"""Citizen-science consensus: a hand-checked case, a generated case with known truth, the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from imagine.curate.cli import main
from imagine.curate.consensus import consensus
from imagine.curate.formats import read_dataset, write_dataset
from imagine.curate.model import Dataset, loads_attrs
from imagine.kernel import UsageError
from imagine.schemas import validate

# Hand-checked case on one 300 x 300 image (x1, y1, x2, y2, class):
#   object A: A1-A2 IoU 81/119 = 0.68, A1-A3 90/110 = 0.82, A2-A3 0.82 -> kept, one object;
#             classes 1, 1, 2 -> label 1, 2 votes of 3; median box (0, 1, 10, 11)
#   object B: IoU 360/440 = 0.82 -> kept; median of two = mean = (51, 50, 71, 70); label 2, 2 of 2
#   C: alone -> dropped in step 1
#   D1-D2: IoU 400/800 = 0.5 -> both dropped at --iou 0.6, one object at --iou 0.5
#   E1-E2: IoU 36/39 = 0.92 -> kept; overlap / smaller area with A at most 9/36 = 0.25,
#          so a separate object at --min-iou 0.4 and part of A at --min-iou 0.2
HAND = [
    (0, 0, 10, 10, 1), (1, 1, 11, 11, 1), (0, 1, 10, 11, 2),
    (50, 50, 70, 70, 2), (52, 50, 72, 70, 2),
    (100, 100, 110, 110, 1),
    (200, 200, 230, 220, 1), (210, 200, 240, 220, 1),
    (8, 8, 14, 14, 1), (8, 8, 14, 14.5, 2),
]


def hand_dataset() -> Dataset:
    n = len(HAND)
    x1, y1, x2, y2, c = (list(v) for v in zip(*HAND, strict=True))
    return Dataset.from_columns(
        images={"id": [7], "file_name": ["a.jpg"], "width": [300], "height": [300]},
        annotations={"id": list(range(1, n + 2)), "image_id": [7] * (n + 1), "category_id": [*c, 1],
                     "kind": ["box"] * n + ["point"],
                     "bbox_x": [*x1, 5.0], "bbox_y": [*y1, 5.0],
                     "bbox_w": [b - a for a, b in zip(x1, x2, strict=True)] + [0.0],
                     "bbox_h": [b - a for a, b in zip(y1, y2, strict=True)] + [0.0],
                     "geometry": [None] * n + [[[5.0, 5.0]]],
                     "annotator": [f"v{i % 4}" for i in range(n + 1)]},
        categories={"id": [1, 2], "name": ["holothurian", "crab"]})


def boxes_of(ds: Dataset) -> list[tuple[float, float, float, float, int, dict[str, Any]]]:
    a = ds.annotations.filter(np.asarray(ds.col("annotations", "kind") == "box", dtype=bool)).to_pylist()
    out = [(r["bbox_x"], r["bbox_y"], r["bbox_x"] + r["bbox_w"], r["bbox_y"] + r["bbox_h"], r["category_id"],
            loads_attrs(r["attributes"])) for r in a]
    return sorted(out, key=lambda t: (t[0], t[1]))


def test_hand_checked_case() -> None:
    res = consensus(hand_dataset(), iou=0.6, min_iou=0.4)
    got = boxes_of(res.dataset)
    assert [g[:5] for g in got] == [(0, 1, 10, 11, 1), (8, 8, 14, 14.25, 1), (51, 50, 71, 70, 2)]
    assert got[0][5]["votes"] == 3 and got[0][5]["label_votes"] == 2
    assert got[0][5]["agreement"] == pytest.approx(2 / 3, abs=1e-3)
    assert got[0][5]["annotators"] == 3
    assert got[2][5] == {"votes": 2, "label_votes": 2, "agreement": 1, "annotators": 2}
    # the tie in E (one vote each) goes to the smallest class id
    assert got[1][5]["label_votes"] == 1
    # the point passes through untouched
    kinds = res.dataset.col("annotations", "kind").tolist()
    assert kinds.count("point") == 1 and len(kinds) == 4
    assert res.kept_step1.tolist() == [True] * 5 + [False] * 3 + [True, True, False]
    rep = res.report()
    assert validate(rep, "consensus-report") == []
    assert rep["summary"] == {"boxes_before": 10, "kept_step1": 7, "objects": 3, "other_annotations": 1,
                              "images": 1}
    per = {c["name"]: c for c in rep["per_class"]}
    assert (per["holothurian"]["boxes_before"], per["holothurian"]["kept_step1"], per["holothurian"]["objects"]) == \
        (6, 3, 2)
    assert (per["crab"]["boxes_before"], per["crab"]["kept_step1"], per["crab"]["objects"]) == (4, 4, 1)


def test_hand_checked_thresholds_and_merges() -> None:
    ds = hand_dataset()
    # a looser step 1 keeps D as one object
    assert len(boxes_of(consensus(ds, iou=0.5).dataset)) == 4
    # a looser step 2 joins E to A: five votes, median (1, 1, 11, 11), label 1 with 3 of 5
    got = boxes_of(consensus(ds, min_iou=0.2).dataset)
    assert [g[:5] for g in got] == [(1, 1, 11, 11, 1), (51, 50, 71, 70, 2)]
    assert got[0][5]["votes"] == 5 and got[0][5]["label_votes"] == 3
    mean = boxes_of(consensus(ds, merge="mean").dataset)
    assert mean[0][:4] == pytest.approx((1 / 3, 2 / 3, 31 / 3, 32 / 3))
    # highest vote: every A box has two strong partners; the tie goes to the first, A1
    hv = boxes_of(consensus(ds, merge="highest-vote").dataset)
    assert hv[0][:4] == (0, 0, 10, 10)
    # per class: A3 (class 2) has no class-2 partner, A1-A2 stay; E splits into two singletons
    pc = boxes_of(consensus(ds, per_class=True).dataset)
    assert [g[:5] for g in pc] == [(0.5, 0.5, 10.5, 10.5, 1), (51, 50, 71, 70, 2)]
    assert all(g[5]["agreement"] == 1 for g in pc)
    # min votes 3 drops B
    assert len(boxes_of(consensus(ds, min_votes=3).dataset)) == 1


def test_lines_and_padding_run_first() -> None:
    ds = hand_dataset()
    rows: list[dict[str, Any]] = ds.annotations.to_pylist()
    # two volunteers measure the same animal with a line: a box around the line, then consensus
    for k, (x0, y0, x1, y1) in enumerate([(150, 150, 170, 160), (151, 150, 170, 161)]):
        rows.append({"id": 100 + k, "image_id": 7, "category_id": 1, "kind": "polyline", "bbox_x": x0,
                     "bbox_y": y0, "bbox_w": x1 - x0, "bbox_h": y1 - y0, "geometry": [[x0, y0, x1, y1]],
                     "annotator": "v9"})
    lines = Dataset.from_records(ds.images.to_pylist(), rows, ds.categories.to_pylist())
    without = boxes_of(consensus(lines).dataset)
    assert len(without) == 3  # the lines pass through as lines
    got = boxes_of(consensus(lines, lines_to_boxes=True).dataset)
    assert (150.5, 150, 170, 160.5, 1) in [g[:5] for g in got]
    padded = boxes_of(consensus(ds, pad_per_class={"crab": 2.0}).dataset)
    # B (all crab) grows by 2 px on every side; A mixes classes so its median moves by less
    assert (49, 48, 73, 72, 2) in [g[:5] for g in padded]
    prep = consensus(ds, pad=1.0).report()["preparation"]
    assert {p["code"] for p in prep} >= {"box-padded"}


def generated(seed: int) -> tuple[Dataset, dict[int, tuple[np.ndarray, int, int]], int]:
    """Objects on a grid (no two touch), each boxed 3-9 times with jitter; lone noise boxes elsewhere."""
    rng = np.random.default_rng(seed)
    rows: list[tuple[int, float, float, float, float, int]] = []
    truth: dict[int, tuple[np.ndarray, int, int]] = {}
    noise = 0
    for img in range(40):
        for cell in range(16):
            cx, cy = (cell % 4) * 100 + 50, (cell // 4) * 100 + 50
            u = rng.random()
            if u < 0.5:
                k = int(rng.integers(3, 10))
                w, h = rng.uniform(30, 60, 2)
                label = int(rng.integers(0, 5))
                n_major = k // 2 + 1
                others = rng.choice([c for c in range(5) if c != label], k - n_major)
                labels = rng.permutation(np.r_[np.full(n_major, label), others])
                first = len(rows)
                for i in range(k):
                    jx, jy, jw, jh = rng.normal(0, 1.0, 4)
                    rows.append((img, cx - w / 2 + jx, cy - h / 2 + jy, w + jw, h + jh, int(labels[i])))
                truth[len(truth)] = (np.arange(first, first + k), label, k)
            elif u < 0.7:
                rows.append((img, cx - 10, cy - 10, 20, 20, int(rng.integers(0, 5))))
                noise += 1
    img_, x, y, w, h, c = (np.array(v) for v in zip(*rows, strict=True))
    n = len(rows)
    ds = Dataset.from_columns(
        images={"id": np.arange(40), "file_name": [f"{i}.jpg" for i in range(40)]},
        annotations={"id": np.arange(n), "image_id": img_, "category_id": c, "kind": ["box"] * n,
                     "bbox_x": x, "bbox_y": y, "bbox_w": w, "bbox_h": h},
        categories={"id": np.arange(5), "name": [f"taxon{i}" for i in range(5)]})
    return ds, truth, noise


@pytest.mark.parametrize("seed", [0, 1])
def test_generated_case_with_known_truth(seed: int) -> None:
    ds, truth, noise = generated(seed)
    res = consensus(ds)
    assert int((~res.kept_step1).sum()) == noise
    out = res.dataset.annotations.to_pylist()
    assert len(out) == len(truth)
    x1, y1 = ds.col("annotations", "bbox_x"), ds.col("annotations", "bbox_y")
    x2, y2 = x1 + ds.col("annotations", "bbox_w"), y1 + ds.col("annotations", "bbox_h")
    found = {}
    for members, label, k in truth.values():
        obj = set(res.object_of[members].tolist())
        assert len(obj) == 1 and -1 not in obj
        found[obj.pop()] = (members, label, k)
    assert len(found) == len(truth)
    # output rows are ordered by image; map them back through object_of via their medians
    by_box = {(round(r["bbox_x"], 6), round(r["bbox_y"], 6)): r for r in out}
    for members, label, k in found.values():
        key = (round(float(np.median(x1[members])), 6), round(float(np.median(y1[members])), 6))
        r = by_box[key]
        assert r["category_id"] == label
        assert r["bbox_w"] == pytest.approx(np.median(x2[members]) - np.median(x1[members]))
        assert r["bbox_h"] == pytest.approx(np.median(y2[members]) - np.median(y1[members]))
        attrs = loads_attrs(r["attributes"])
        assert attrs["votes"] == k and attrs["label_votes"] == k // 2 + 1
    rep = res.report()
    assert sum(c["objects"] for c in rep["per_class"]) == len(truth)
    assert sum(c["boxes_before"] for c in rep["per_class"]) == ds.num_annotations


def test_bad_thresholds_are_usage_errors() -> None:
    ds = hand_dataset()
    for kw in ({"iou": 0.0}, {"iou": 1.2}, {"min_iou": -0.1}, {"merge": "max"}, {"min_votes": 0}, {"pad": -1.0}):
        with pytest.raises(UsageError):
            consensus(ds, **kw)


def test_cli_consensus(tmp_path: Path) -> None:
    src = tmp_path / "raw"
    write_dataset(hand_dataset(), src, "native", images="none")
    runner = CliRunner()
    out = tmp_path / "clean"
    r = runner.invoke(main, ["-q", "consensus", str(src), str(out), "--iou", "0.6", "--min-iou", "0.4",
                             "--pad-class", "crab=2", "--json", "--markdown", str(tmp_path / "c.md")])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert validate(rep, "consensus-report") == []
    assert rep["params"]["pad_per_class"] == {"crab": 2.0}
    clean = read_dataset(out)
    assert clean.num_annotations == rep["summary"]["objects"] + rep["summary"]["other_annotations"]
    assert "| crab |" in (tmp_path / "c.md").read_text()
    for bad in (["--iou", "1.5"], ["--min-iou", "0"], ["--pad-class", "crab"]):
        r = runner.invoke(main, ["consensus", str(src), str(tmp_path / "bad"), *bad])
        assert r.exit_code == 2, r.output
        assert bad[0] in r.output
        assert not (tmp_path / "bad").exists()


def test_fallback_preparation_matches_geometry() -> None:
    """consensus.py's stand-ins for line → box and padding agree with geometry's operations when both exist."""
    from imagine.curate import consensus as mod
    from imagine.curate import geometry
    from imagine.kernel import ConversionReport

    ds = hand_dataset()
    rows: list[dict[str, Any]] = ds.annotations.to_pylist()
    rows.append({"id": 99, "image_id": 7, "category_id": 2, "kind": "polyline", "bbox_x": 150.0, "bbox_y": 150.0,
                 "bbox_w": 20.0, "bbox_h": 0.0, "geometry": [[150.0, 150.0, 170.0, 150.0]]})
    ds = Dataset.from_records(ds.images.to_pylist(), rows, ds.categories.to_pylist())
    mine = mod._pad(mod._lines_to_boxes(ds, 4.0, report=ConversionReport()), 1.0, per_class={"crab": 2.0},
                    report=ConversionReport())
    assert mine.annotations.column("kind").to_pylist()[-1] == "box"
    assert mine.annotations.to_pylist()[-1]["bbox_h"] == 4 + 2 * 2
    if not hasattr(geometry, "pad") or not hasattr(geometry, "lines_to_boxes"):
        pytest.skip("geometry has no line → box / padding yet")
    theirs = geometry.pad(geometry.lines_to_boxes(ds, 4.0), 1.0, per_class={"crab": 2.0})
    for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h", "kind"):
        assert mine.annotations.column(c).to_pylist() == theirs.annotations.column(c).to_pylist(), c
