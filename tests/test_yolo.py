"""YOLO reader/writer: Ultralytics samples, the real Aquarium export, darknet, tasks, round trips, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imagine.curate.cli import main
from imagine.curate.formats import convert, read_dataset, write_dataset
from imagine.curate.model import Dataset
from imagine.kernel import ConversionReport, InputError

FIX = Path(__file__).parent / "fixtures"
AQUARIUM = FIX / "aquarium"
SAMPLES = FIX / "samples"
BOX = ["bbox_x", "bbox_y", "bbox_w", "bbox_h"]


def _boxes(ds: Dataset) -> np.ndarray:
    return np.stack([ds.annotations.column(c).to_numpy() for c in BOX], axis=1)


def test_ultralytics_detection_sample() -> None:
    ds = read_dataset(SAMPLES / "ultralytics_detection")
    assert ds.category_names() == {i: f"label_{i}" for i in range(10)}
    assert ds.images.to_pylist()[0]["file_name"] == "images/train/1.jpg"
    assert (ds.images.column("width")[0].as_py(), ds.images.column("height")[0].as_py()) == (15, 10)
    assert ds.annotations.column("category_id").to_pylist() == [2, 4]
    # "2 0.133333 0.300000 0.266667 0.200000" on a 15×10 image
    np.testing.assert_allclose(_boxes(ds)[0], [(0.133333 - 0.266667 / 2) * 15, 2.0, 0.266667 * 15, 2.0])


def test_ultralytics_segmentation_sample() -> None:
    ds = read_dataset(SAMPLES / "ultralytics_segmentation")
    a = ds.annotations.to_pylist()
    assert [x["kind"] for x in a] == ["polygon", "polygon"]
    assert a[0]["geometry"] == [[0.1 * 15, 0.1 * 10, 0.4 * 15, 0.1 * 10, 0.4 * 15, 0.5 * 10]]
    assert (a[0]["bbox_x"], a[0]["bbox_w"]) == (0.1 * 15, 0.4 * 15 - 0.1 * 15)


@pytest.fixture(scope="module")
def aquarium() -> tuple[Dataset, ConversionReport]:
    rep = ConversionReport()
    return read_dataset(AQUARIUM, report=rep), rep


def test_aquarium_reads_all_splits_including_the_test_folder_missing_from_yaml(
        aquarium: tuple[Dataset, ConversionReport]) -> None:
    ds, rep = aquarium
    assert len(ds) == 638 and ds.num_annotations == 4817
    assert ds.splits() == ["train", "val", "test"]
    assert rep.lossless and rep.notes["split-not-in-config"]["count"] == 1
    n_labels = sum(1 for _ in AQUARIUM.glob("*/labels/*.txt"))
    assert n_labels == 638
    assert ds.category_names()[6] == "stingray"


def test_aquarium_yolo_coco_yolo_gives_the_same_label_files(aquarium: tuple[Dataset, ConversionReport],
                                                          tmp_path: Path) -> None:
    ds, _ = aquarium
    write_dataset(ds, tmp_path / "coco", "coco", images="none")
    coco = read_dataset(tmp_path / "coco" / "annotations.json", images_dir=str(AQUARIUM))
    np.testing.assert_array_equal(_boxes(coco), _boxes(ds))  # COCO keeps float64 exactly
    assert coco.categories.equals(ds.categories) and coco.images.drop(["attributes"]).equals(
        ds.images.drop(["attributes"]))
    rep = write_dataset(coco, tmp_path / "yolo", "yolo", images="link")
    assert rep.lossless, rep.render()
    back = read_dataset(tmp_path / "yolo")
    np.testing.assert_allclose(_boxes(back), _boxes(ds), rtol=0, atol=1e-9)  # normalisation round trip
    assert back.annotations.column("category_id").equals(ds.annotations.column("category_id"))
    for lab in sorted(AQUARIUM.glob("*/labels/*.txt"))[:200]:
        ours = (tmp_path / "yolo" / lab.relative_to(AQUARIUM)).read_text()
        assert ours.split() == lab.read_text().split(), lab.name  # same numbers, digit for digit
    cfg = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    assert cfg["names"][:2] == ["fish", "jellyfish"] and cfg["test"] == "test/images"


def test_empty_label_files_for_images_without_objects(tmp_path: Path) -> None:
    ds = Dataset.from_records([{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4, "split": "train"},
                               {"id": 2, "file_name": "b.jpg", "width": 4, "height": 4, "split": "train"}],
                              [{"id": 1, "image_id": 2, "category_id": 0, "kind": "box", "bbox_x": 0.0,
                                "bbox_y": 0.0, "bbox_w": 2.0, "bbox_h": 1.0}], [{"id": 0, "name": "fish"}])
    write_dataset(ds, tmp_path / "y", "yolo", images="none")
    assert (tmp_path / "y" / "labels" / "train" / "a.txt").read_text() == ""
    assert (tmp_path / "y" / "labels" / "train" / "b.txt").read_text() == "0 0.25 0.125 0.5 0.25\n"


def test_arbitrary_category_ids_survive_as_names_dict(tmp_path: Path) -> None:
    coco = read_dataset(SAMPLES / "coco_instances_val.json")
    Image.new("RGB", (5, 10)).save(tmp_path / "b.jpg")
    rep = write_dataset(coco, tmp_path / "y", "yolo", images="none", task="detect")
    assert rep.counts["polygon-to-box"] == 1 and rep.counts["mask-to-box"] == 1
    assert rep.counts["crowd-flag-dropped"] == 1 and rep.counts["attributes-dropped"] == 1
    cfg = yaml.safe_load((tmp_path / "y" / "data.yaml").read_text())
    assert cfg["names"] == {1: "a", 2: "b", 4: "c"}
    assert cfg["train"] == "images" and rep.counts["split-set-to-train"] == 1
    (tmp_path / "y" / "images").mkdir(parents=True)
    shutil.copy(tmp_path / "b.jpg", tmp_path / "y" / "images" / "b.jpg")
    back = read_dataset(tmp_path / "y")
    assert back.categories.column("id").to_pylist() == [1, 2, 4]
    np.testing.assert_allclose(_boxes(back), _boxes(coco), atol=1e-12)


def _image_dataset(tmp_path: Path, n: int = 3) -> Path:
    """A small YOLO-style tree with real images from Aquarium (for the layouts below)."""
    imgs = sorted((AQUARIUM / "valid" / "images").glob("*.jpg"))[:n]
    for p in imgs:
        (tmp_path / "data" / "obj").mkdir(parents=True, exist_ok=True)
        shutil.copy(p, tmp_path / "data" / "obj" / p.name)
        shutil.copy(AQUARIUM / "valid" / "labels" / (p.stem + ".txt"), tmp_path / "data" / "obj" / (p.stem + ".txt"))
    return tmp_path


def test_darknet_obj_data(tmp_path: Path) -> None:
    root = _image_dataset(tmp_path)
    imgs = sorted((root / "data" / "obj").glob("*.jpg"))
    (root / "data" / "train.txt").write_text("".join(f"data/obj/{p.name}\n" for p in imgs[:2]))
    (root / "data" / "valid.txt").write_text(f"data/obj/{imgs[2].name}\n")
    (root / "data" / "obj.names").write_text("\n".join(
        ["fish", "jellyfish", "penguin", "puffin", "shark", "starfish", "stingray"]) + "\n")
    (root / "data" / "obj.data").write_text("classes = 7\ntrain = data/train.txt\nvalid = data/valid.txt\n"
                                            "names = data/obj.names\nbackup = backup/\n")
    ds = read_dataset(root / "data" / "obj.data", "yolo")
    assert ds.images.column("split").to_pylist() == ["train", "train", "val"]
    ref = read_dataset(AQUARIUM)
    ref_rows = {Path(f).name: i for i, f in enumerate(ref.images.column("file_name").to_pylist())}
    n_expected = sum(len((root / "data" / "obj" / (p.stem + ".txt")).read_text().split("\n")) for p in imgs)
    assert ds.num_annotations == n_expected
    assert ref_rows  # the same images are in the Aquarium reference


def test_yaml_with_lists_and_list_files(tmp_path: Path) -> None:
    root = _image_dataset(tmp_path)
    imgs = sorted((root / "data" / "obj").glob("*.jpg"))
    (root / "val.txt").write_text(f"./data/obj/{imgs[2].name}\n")
    (root / "data.yaml").write_text(yaml.safe_dump({
        "path": ".", "train": [f"data/obj/{imgs[0].name}.list"], "val": "val.txt", "names": {0: "fish", 3: "x"}}))
    (root / f"data/obj/{imgs[0].name}.list").write_text(f"{imgs[0].name}\n{imgs[1].name}\n")
    rep = ConversionReport()
    ds = read_dataset(root, report=rep)
    assert ds.images.column("split").to_pylist() == ["train", "train", "val"]
    assert set(ds.category_names().values()) >= {"fish", "x"}


def _pose_dataset() -> Dataset:
    return Dataset.from_records(
        [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 50, "split": "train"}],
        [{"id": 1, "image_id": 1, "category_id": 0, "kind": "keypoints", "bbox_x": 10.0, "bbox_y": 5.0,
          "bbox_w": 20.0, "bbox_h": 10.0, "geometry": [[12.5, 6.0, 2.0, 25.0, 14.0, 1.0]]}],
        [{"id": 0, "name": "fish", "keypoints": ["head", "tail"]}])


def test_pose_and_obb_round_trip(tmp_path: Path) -> None:
    ds = _pose_dataset()
    write_dataset(ds, tmp_path / "pose", "yolo", images="none")
    cfg = yaml.safe_load((tmp_path / "pose" / "data.yaml").read_text())
    assert cfg["kpt_shape"] == [2, 3] and cfg["task"] == "pose"
    assert (tmp_path / "pose/labels/train/a.txt").read_text() == "0 0.2 0.2 0.2 0.2 0.125 0.12 2 0.25 0.28 1\n"
    rb = Dataset.from_records(
        [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 50, "split": "train"}],
        [{"id": 1, "image_id": 1, "category_id": 0, "kind": "rbox", "bbox_x": 0.0, "bbox_y": 0.0,
          "bbox_w": 1.0, "bbox_h": 1.0, "geometry": [[50.0, 25.0, 20.0, 10.0, 30.0]]}], [{"id": 0, "name": "x"}])
    write_dataset(rb, tmp_path / "obb", "yolo", images="none")
    line = (tmp_path / "obb/labels/train/a.txt").read_text().split()
    assert len(line) == 9
    from imagine.curate.formats.yolo import _parse_line
    kind, geom, _ = _parse_line([float(v) for v in line[1:]], 100, 50, "obb", 0, 0)
    assert kind == "rbox"
    np.testing.assert_allclose(geom[0], [50.0, 25.0, 20.0, 10.0, 30.0], atol=1e-9)


@st.composite
def detect_sets(draw: st.DrawFn) -> Dataset:
    n = draw(st.integers(1, 4))
    images: list[dict[str, Any]] = [
        {"id": i + 1, "file_name": f"images/train/im{i}.png", "width": draw(st.integers(1, 300)),
         "height": draw(st.integers(1, 300)), "split": "train"} for i in range(n)]
    anns: list[dict[str, Any]] = []
    for k in range(draw(st.integers(0, 10))):
        im = draw(st.sampled_from(images))
        f = st.floats(-10, 400, allow_nan=False)
        anns.append({"id": k + 1, "image_id": im["id"], "category_id": draw(st.integers(0, 5)), "kind": "box",
                     "bbox_x": draw(f), "bbox_y": draw(f), "bbox_w": draw(st.floats(0, 400)),
                     "bbox_h": draw(st.floats(0, 400)), "iscrowd": draw(st.booleans()),
                     "score": draw(st.one_of(st.none(), st.floats(0, 1)))})
    anns.sort(key=lambda a: a["image_id"])  # YOLO is per image: group order is what comes back
    for k, a in enumerate(anns):
        a["id"] = k + 1
    return Dataset.from_records(images, anns, [{"id": i, "name": f"c{i}"} for i in range(6)])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ds=detect_sets())
def test_hypothesis_detect_round_trip(tmp_path_factory: pytest.TempPathFactory, ds: Dataset) -> None:
    out = tmp_path_factory.mktemp("y")
    rep = write_dataset(ds, out / "y", "yolo", images="none")
    crowd = sum(ds.annotations.column("iscrowd").to_pylist())
    scores = ds.annotations.num_rows - ds.annotations.column("score").null_count
    assert rep.counts.get("crowd-flag-dropped", 0) == crowd and rep.counts.get("score-dropped", 0) == scores
    assert "file-name-prefixed" not in rep.counts
    (out / "y" / "images" / "train").mkdir(parents=True, exist_ok=True)
    for r in ds.images.to_pylist():
        Image.new("L", (r["width"], r["height"])).save(out / "y" / r["file_name"])
    back = read_dataset(out / "y")
    assert back.images.select(["file_name", "width", "height", "split"]).equals(
        ds.images.select(["file_name", "width", "height", "split"]))
    assert back.annotations.column("category_id").equals(ds.annotations.column("category_id"))
    b, o = _boxes(back), _boxes(ds)
    scale = np.array([[r["width"], r["height"]] * 2 for r in ds.images.to_pylist()])
    rows = np.array([r - 1 for r in ds.annotations.column("image_id").to_pylist()], dtype=int)
    tol = 1e-12 * scale[rows] if len(rows) else 0
    assert np.all(np.abs(b - o) <= np.maximum(tol, 1e-9 * np.abs(o))), (b, o)


def test_missing_image_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("images/nothere.jpg\n")
    (tmp_path / "data.yaml").write_text("train: train.txt\nnames: [a]\n")
    out = tmp_path / "out"
    with pytest.raises(InputError) as exc:
        convert(tmp_path, out, "coco", "yolo")
    assert exc.value.place == "line 1" and "nothere.jpg" in exc.value.message
    assert not out.exists()


def test_bad_label_line_names_file_and_line(tmp_path: Path) -> None:
    root = _image_dataset(tmp_path, 1)
    img = next((root / "data" / "obj").glob("*.jpg"))
    lab = img.with_suffix(".txt")
    lab.write_text("0 0.5 0.5 0.1 0.1\n0 0.5 zero 0.1 0.1\n")
    (root / "data.yaml").write_text("train: data/obj\nnames: [fish]\n")
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["convert", str(root), str(out), "--to", "coco", "--from", "yolo"])
    assert res.exit_code == 2 and str(lab) in res.output and "line 2" in res.output
    assert not out.exists()


def test_malformed_yaml(tmp_path: Path) -> None:
    (tmp_path / "data.yaml").write_text("train: [a\nnames: {0: x\n")
    with pytest.raises(InputError) as exc:
        read_dataset(tmp_path / "data.yaml", "yolo")
    assert "line" in (exc.value.place or "")


def test_writer_refuses_unknown_sizes(tmp_path: Path) -> None:
    ds = read_dataset(SAMPLES / "viame_example.coco.json")
    with pytest.raises(InputError, match="width/height"):
        write_dataset(ds, tmp_path / "y", "yolo")
    assert not (tmp_path / "y").exists()


def test_report_is_json_serialisable(aquarium: tuple[Dataset, ConversionReport]) -> None:
    json.dumps(aquarium[1].to_dict())
