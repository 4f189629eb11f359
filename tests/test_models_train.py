"""Train tiny baselines on the real fixtures through the CLI, check the cards, reproduce them exactly.

FishCam crops (classification) and Aquarium images (detection) are written to the native form in a
temporary folder (so the tests can alter the data for the bad-input cases) and trained for a few
steps at 32–128 px.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from tests.fixtures.models.helpers import aquarium_dataset, fishcam_dataset

pytest.importorskip("torch")

from imagine.curate.cli import main
from imagine.curate.formats import read_dataset, write_dataset
from imagine.models.card import load_card
from imagine.models.metrics import coco_detection_metrics
from imagine.schemas import validate

CLS_ARGS = ["--task", "classify", "--epochs", "2", "--image-size", "32", "--width", "8", "--batch-size", "16",
            "--seed", "7"]
DET_ARGS = ["--task", "detect", "--epochs", "2", "--image-size", "128", "--width", "8", "--batch-size", "4"]


def _cli(args: list[str]) -> Any:
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def fishcam_native(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ds = fishcam_dataset(per_class=8)
    out = tmp_path_factory.mktemp("fishcam") / "native"
    write_dataset(ds, out, "native", root=ds.info["root"])
    return out


@pytest.fixture(scope="module")
def fishcam_card(fishcam_native: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fishcam-out") / "baseline"
    res = _cli(["baseline", str(fishcam_native), "--out", str(out), "--cv", "3", "--mlflow", "--json", *CLS_ARGS])
    assert res.exit_code == 0, res.output
    return out


def test_classification_card_is_schema_valid_and_complete(fishcam_card: Path) -> None:
    card = json.loads((fishcam_card / "card.json").read_text())
    assert validate(card, "benchmark-card") == []
    assert card["task"] == "classify" and card["seed"] == 7
    d = card["dataset"]
    assert d["split_origin"] == "seeded-stratified" and d["num_examples"] == 56
    assert d["split_counts"] == {"train": 42, "test": 14}          # 2 of 8 per species held out
    assert d["content_hash"].startswith("sha256:") and d["split_manifest_hash"].startswith("sha256:")
    manifest = json.loads((fishcam_card / d["split_manifest"]).read_text())
    assert manifest["hash"] == d["split_manifest_hash"]
    assert sorted(manifest["splits"]) == ["test", "train"] and len(manifest["splits"]["test"]) == 14
    for name in ("accuracy", "macro_f1", "weighted_f1", "roc_auc_ovr_macro", "ece", "nll"):
        assert name in card["metrics"]
    lo, hi = card["metrics"]["accuracy"]["ci95"]
    assert lo <= card["metrics"]["accuracy"]["value"] <= hi
    assert len(card["per_class"]) == 7 and sum(r["support"] for r in card["per_class"]) == 14
    assert np.asarray(card["confusion_matrix"]["matrix"]).sum() == 14
    assert (fishcam_card / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (fishcam_card / "card.md").read_text()
    assert f"imagine-curate reproduce {fishcam_card / 'card.json'}" in md and d["content_hash"] in md
    assert card["dataset"]["name"] == "fishcam-sample"
    assert card["training"]["images_per_s"] > 0 and card["hardware"]["device"] in ("cpu", "cuda")
    assert card["limitations"] and "imagine-curate baseline" in card["command"]


def test_pred_probs_file_is_out_of_sample_for_every_image(fishcam_card: Path, fishcam_native: Path) -> None:
    card = json.loads((fishcam_card / "card.json").read_text())
    cv = card["cross_validation"]
    assert cv["k"] == 3
    with open(fishcam_card / cv["pred_probs"]["file"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    ds = read_dataset(fishcam_native, "native")
    cat_ids = sorted(ds.categories.column("id").to_pylist())
    assert list(rows[0]) == cv["pred_probs"]["columns"]
    assert [c for c in rows[0] if c.startswith("prob_")] == [f"prob_{c}" for c in cat_ids]
    assert len(rows) == len(ds) and len({r["image_id"] for r in rows}) == len(ds)
    probs = np.array([[float(r[f"prob_{c}"]) for c in cat_ids] for r in rows])
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
    folds = np.array([int(r["fold"]) for r in rows])
    assert set(folds) == {0, 1, 2}
    labels = np.array([int(r["label"]) for r in rows])
    for c in cat_ids:   # stratified: every species in every fold
        assert set(folds[labels == c]) == {0, 1, 2}
    acc = (np.asarray(cat_ids)[probs.argmax(1)] == labels).mean()
    assert acc == pytest.approx(cv["metrics"]["accuracy"]["value"], abs=1e-12)


def test_mlflow_run_logged_to_local_store(fishcam_card: Path) -> None:
    mlflow = pytest.importorskip("mlflow")
    card = json.loads((fishcam_card / "card.json").read_text())
    info = card["mlflow"]
    assert info["tracking_uri"].startswith("file://") and (fishcam_card / "mlruns").is_dir()
    client = mlflow.tracking.MlflowClient(tracking_uri=info["tracking_uri"])
    run = client.get_run(info["run_id"])
    assert run.data.metrics["accuracy"] == pytest.approx(card["metrics"]["accuracy"]["value"])
    assert run.data.params["dataset.content_hash"] == card["dataset"]["content_hash"]
    assert "card.json" in [a.path for a in client.list_artifacts(info["run_id"])]


def test_reproduce_matches_the_card_exactly(fishcam_card: Path) -> None:
    res = _cli(["reproduce", str(fishcam_card / "card.json"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["ok"] and out["exact"] and out["same_split"]
    assert all(r["difference"] == 0 for r in out["metrics"] if r["difference"] is not None)
    assert {r["metric"] for r in out["metrics"]} >= {"accuracy", "cv.accuracy", "nll"}


def test_reproduce_exits_1_when_a_metric_is_outside_tolerance(fishcam_card: Path, tmp_path: Path) -> None:
    card = json.loads((fishcam_card / "card.json").read_text())
    card["metrics"]["accuracy"]["value"] = min(1.0, card["metrics"]["accuracy"]["value"] + 0.25)
    shutil.copy(fishcam_card / "split-manifest.json", tmp_path / "split-manifest.json")
    (tmp_path / "card.json").write_text(json.dumps(card))
    res = _cli(["reproduce", str(tmp_path / "card.json"), "--tolerance", "0.1"])
    assert res.exit_code == 1
    assert "BAD accuracy" in res.output and "NOT reproduced" in res.output


def test_reproduce_refuses_changed_data_before_training(fishcam_card: Path, fishcam_native: Path,
                                                        tmp_path: Path) -> None:
    # one label changed: same files, different content hash
    data = tmp_path / "data"
    shutil.copytree(fishcam_native, data)
    ds = read_dataset(data, "native")
    cats = ds.annotations.column("category_id").to_pylist()
    cats[0] = cats[-1]
    import pyarrow as pa

    ann = ds.annotations.set_column(ds.annotations.schema.get_field_index("category_id"), "category_id",
                                    pa.array(cats, pa.int64()))
    write_dataset(ds.with_tables(annotations=ann), tmp_path / "relabelled", "native", root=ds.info["root"])
    res = CliRunner().invoke(main, ["reproduce", str(fishcam_card / "card.json"), "--data",
                                    str(tmp_path / "relabelled")])
    assert res.exit_code == 2
    assert "content hash" in res.output and str(tmp_path / "relabelled") in res.output
    assert "Traceback" not in res.output


def test_reproduce_names_missing_files_of_the_manifest(fishcam_card: Path, fishcam_native: Path,
                                                       tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(fishcam_native, data)
    manifest = json.loads((fishcam_card / "split-manifest.json").read_text())
    gone = manifest["splits"]["test"][0]["file"]
    (data / "images" / gone).unlink()
    res = CliRunner().invoke(main, ["reproduce", str(fishcam_card / "card.json"), "--data", str(data)])
    assert res.exit_code == 2
    assert "split-manifest.json" in res.output and gone in res.output and "missing" in res.output


def test_bad_card_is_refused_with_its_place(tmp_path: Path) -> None:
    (tmp_path / "card.json").write_text(json.dumps({"kind": "imagine-benchmark-card", "card_version": 1,
                                                    "task": "segment"}))
    res = CliRunner().invoke(main, ["reproduce", str(tmp_path / "card.json")])
    assert res.exit_code == 2 and "card.json" in res.output and "not a valid benchmark card" in res.output


def test_detection_on_a_classification_dataset_fails_before_training(fishcam_native: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["baseline", str(fishcam_native), "--out", str(out), *DET_ARGS])
    assert res.exit_code == 2
    assert "whole-image labels" in res.output
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_classification_on_a_box_dataset_is_refused(tmp_path: Path) -> None:
    ds = aquarium_dataset({"train": 4, "test": 2})
    write_dataset(ds, tmp_path / "aq", "native", root=ds.info["root"])
    res = CliRunner().invoke(main, ["baseline", str(tmp_path / "aq"), "--out", str(tmp_path / "out"), *CLS_ARGS])
    assert res.exit_code == 2 and "no whole-image labels" in res.output


def test_seed_changes_the_run_and_mobilenet_trains(fishcam_native: Path, fishcam_card: Path, tmp_path: Path) -> None:
    from imagine.models.train import TrainConfig, run

    ds = read_dataset(fishcam_native, "native")
    cfg = TrainConfig.for_task("classify", image_size=32, width=8, epochs=1, batch_size=16, seed=8, bootstrap=0)
    other = run(ds, ds.info["root"], cfg)
    assert other.predictions_sha256 != load_card(fishcam_card / "card.json")["predictions"]["sha256"]
    mob = run(ds, ds.info["root"], TrainConfig.for_task("classify", arch="mobilenet", image_size=32, width=8,
                                                       epochs=1, batch_size=16, bootstrap=0, balance="sampler"))
    assert mob.predictions.shape == (14, 7) and np.allclose(mob.predictions.sum(1), 1, atol=1e-6)


@pytest.fixture(scope="module")
def aquarium_card(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ds = aquarium_dataset({"train": 8, "test": 4})
    base = tmp_path_factory.mktemp("aquarium")
    write_dataset(ds, base / "native", "native", root=ds.info["root"])
    out = base / "baseline"
    res = _cli(["baseline", str(base / "native"), "--out", str(out), *DET_ARGS])
    assert res.exit_code == 0, res.output
    return out


def test_detection_card_metrics_equal_pycocotools_on_its_predictions(aquarium_card: Path) -> None:
    card = load_card(aquarium_card / "card.json")
    d = card["dataset"]
    assert d["split_origin"] == "dataset" and d["evaluation_split"] == "test"
    assert d["split_counts"] == {"train": 8, "test": 4}
    ds = read_dataset(Path(d["source"]), "native")
    test = ds.filter_images(np.asarray(ds.images.column("split").to_pylist()) == "test")
    order, starts, ends = test.annotations_by_image()
    env = np.stack([test.col("annotations", c) for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")], 1)
    cats = test.col("annotations", "category_id")
    gt = [{"image_id": iid, "boxes": env[order[starts[r]:ends[r]]], "labels": cats[order[starts[r]:ends[r]]]}
          for r, iid in enumerate(test.images.column("id").to_pylist())]
    dets: dict[int, dict[str, list[Any]]] = {}
    with open(aquarium_card / "predictions.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            e = dets.setdefault(int(row["image_id"]), {"boxes": [], "scores": [], "labels": []})
            e["boxes"].append([float(row[k]) for k in ("x", "y", "w", "h")])
            e["scores"].append(float(row["score"]))
            e["labels"].append(int(row["category_id"]))
    assert sum(len(e["scores"]) for e in dets.values()) == card["metrics"]["detections"]["value"]
    ref = coco_detection_metrics(gt, [{"image_id": k, **v} for k, v in dets.items()],
                                 ds.categories.column("id").to_pylist())
    assert card["metrics"]["map50"]["value"] == ref["map50"]
    assert card["metrics"]["map50_95"]["value"] == ref["map50_95"]
    assert [r["ap50"] for r in card["per_class"]] == [r["ap50"] for r in ref["per_class"]]


def test_detection_reproduces_exactly(aquarium_card: Path) -> None:
    res = _cli(["reproduce", str(aquarium_card / "card.json"), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["ok"] and out["exact"]


def test_group_aware_split_and_folds_keep_each_video_on_one_side() -> None:
    from imagine.models.train import TrainConfig, run

    fishcam = Path(__file__).parent / "fixtures" / "fishcam" / "data"
    full = read_dataset(fishcam, "imagefolder")
    files = np.asarray(full.images.column("file_name").to_pylist())
    species = np.asarray([f.split("/")[0] for f in files])
    keep = np.zeros(len(full), dtype=bool)
    for sp in np.unique(species):                      # the first 12 frames of each species: a few videos each
        keep[np.flatnonzero(species == sp)[np.argsort(files[species == sp])[:12]]] = True
    ds = full.filter_images(keep)
    cfg = TrainConfig.for_task("classify", image_size=32, width=8, epochs=1, batch_size=16, bootstrap=0, cv=3,
                               group_by=["video"])
    r = run(ds, full.info["root"], cfg)
    video = dict(zip(ds.images.column("file_name").to_pylist(), ds.images.column("video").to_pylist(), strict=True))
    vids = np.asarray([video[f] for f in r.examples.files])
    assert r.split_origin == "group-aware-stratified"
    assert not set(vids[r.train_idx]) & set(vids[r.eval_idx]) and len(r.eval_idx) > 0
    assert r.folds is not None and r.cv is not None and r.cv["grouped_by"] == ["video"]
    for v in set(vids):
        assert len(set(r.folds[vids == v])) == 1
    assert len(set(r.folds)) == 3


def test_training_starts_from_a_local_weights_file(fishcam_card: Path, fishcam_native: Path, tmp_path: Path) -> None:
    out = tmp_path / "warm"
    res = _cli(["baseline", str(fishcam_native), "--out", str(out), "--weights", str(fishcam_card / "model.pt"),
                "--max-steps", "1", *CLS_ARGS])
    assert res.exit_code == 0, res.output
    card = load_card(out / "card.json")
    assert card["model"]["init"] == "weights" and card["training"]["steps"] == 1
    assert card["model"]["weights_file"]["sha256"].startswith("sha256:")
    assert "--weights" in card["command"] and "from a local weights file" in card["limitations"][0]
    missing = CliRunner().invoke(main, ["baseline", str(fishcam_native), "--out", str(tmp_path / "x"),
                                        "--weights", str(tmp_path / "nope.pt"), *CLS_ARGS])
    assert missing.exit_code == 2 and "nope.pt" in missing.output and "weights file not found" in missing.output


def test_tiled_detection_trains_and_evaluates_per_tile() -> None:
    from imagine.models.train import TrainConfig, run

    ds = aquarium_dataset({"train": 4, "test": 2})
    r = run(ds, ds.info["root"], TrainConfig.for_task("detect", image_size=64, width=8, epochs=1, batch_size=4,
                                                     tile=2, bootstrap=10))
    assert len(r.examples) == 4 * len(ds) and len(r.eval_idx) == 8
    tile_ids = set(r.examples.image_ids[r.eval_idx].tolist())
    assert len(tile_ids) == 8 and {d["image_id"] for d in r.predictions} <= tile_ids
    assert 0.0 <= r.metrics["map50"] <= 1.0
