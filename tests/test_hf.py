"""Hugging Face datasets: export that the real ``datasets.load_dataset`` loads (offline, local files), import
back from it, from ``save_to_disk`` folders and from Hub-style Parquet; generated round trips; bad input."""

from __future__ import annotations

import os

os.environ["HF_DATASETS_OFFLINE"] = "1"  # before datasets is imported anywhere: local files only

import shutil
from pathlib import Path

import datasets
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from PIL import Image

from imagine.curate.cli import main
from imagine.curate.formats import convert, detect_format, get_format, read_dataset, write_dataset
from imagine.curate.model import Dataset
from imagine.kernel import InputError
from tests.strategies import datasets as gen_datasets

FIX = Path(__file__).parent / "fixtures"
FISHCAM = FIX / "fishcam" / "data"
ALL_KINDS = ("box", "rbox", "polygon", "polyline", "point", "circle", "ellipse", "label")


def _same(a: Dataset, b: Dataset) -> None:
    assert b.images.to_pylist() == a.images.to_pylist()
    assert b.annotations.to_pylist() == a.annotations.to_pylist()
    assert b.categories.to_pylist() == a.categories.to_pylist()


@pytest.fixture(scope="module")
def fish(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few real FishCam crops in train/val class folders."""
    root = tmp_path_factory.mktemp("fish")
    for split, n in (("train", 3), ("val", 1)):
        for cls in ("burbot", "perch"):
            (root / split / cls).mkdir(parents=True)
            for p in sorted((FISHCAM / cls).iterdir())[:n]:
                shutil.copyfile(p, root / split / cls / p.name)
    return root


def test_export_loads_with_load_dataset(fish: Path, tmp_path: Path) -> None:
    ds = read_dataset(fish, "imagefolder")
    report = write_dataset(ds, tmp_path / "hf", "hf")
    assert report.lossless
    loaded = datasets.load_dataset(str(tmp_path / "hf"), cache_dir=str(tmp_path / "cache"))
    assert list(loaded) == ["train", "val"]
    assert loaded["train"].num_rows == 6 and loaded["val"].num_rows == 2
    feats = loaded["train"].features
    assert isinstance(feats["image"], datasets.Image)
    assert feats["objects"].feature["category"].names == ["burbot", "perch"]
    row = loaded["train"][0]
    assert isinstance(row["image"], Image.Image)
    with Image.open(fish / row["file_name"]) as pil:
        assert row["image"].size == pil.size == (row["width"], row["height"])
    assert feats["objects"].feature["category"].int2str(row["objects"][0]["category"]) == \
        row["file_name"].split("/")[1]
    assert row["objects"][0]["kind"] == "label" and row["objects"][0]["bbox"] == [0.0, 0.0, row["width"],
                                                                                   row["height"]]


def test_round_trips_and_save_to_disk(fish: Path, tmp_path: Path) -> None:
    ds = read_dataset(fish, "imagefolder")
    write_dataset(ds, tmp_path / "hf", "hf")
    assert detect_format(tmp_path / "hf") == "hf"
    hf_check = get_format("hf").check
    assert hf_check is not None and hf_check(tmp_path / "hf") == []
    back = read_dataset(tmp_path / "hf")
    _same(ds, back)
    # Embedded bytes are extracted so that writers can copy the images again.
    for fn in ds.images.column("file_name").to_pylist():
        assert (Path(back.info["root"]) / fn).read_bytes() == (fish / fn).read_bytes()
    loaded = datasets.load_dataset(str(tmp_path / "hf"), cache_dir=str(tmp_path / "cache"))
    loaded.save_to_disk(str(tmp_path / "saved"))
    assert detect_format(tmp_path / "saved") == "hf"
    saved = read_dataset(tmp_path / "saved", "hf")
    assert saved.images.to_pylist() == ds.images.to_pylist()
    assert saved.annotations.to_pylist() == ds.annotations.to_pylist()
    cols = ["id", "name"]
    assert saved.categories.select(cols).to_pylist() == ds.categories.select(cols).to_pylist()
    write_dataset(saved, tmp_path / "folder", "imagefolder")
    _same(ds, read_dataset(tmp_path / "folder", "imagefolder"))


@pytest.mark.parametrize("src", [FIX / "cvat" / "all_shapes.xml", FIX / "labelstudio" / "annotators_predictions.json",
                                 FIX / "cvat" / "video_annotations.xml"], ids=["cvat", "labelstudio", "video"])
def test_every_column_survives(src: Path, tmp_path: Path) -> None:
    ds = read_dataset(src)
    report = write_dataset(ds, tmp_path / "hf", "hf", images="none")
    assert report.lossless
    back = read_dataset(tmp_path / "hf", "hf")
    _same(ds, back)
    info = {k: v for k, v in ds.info.items() if k != "root"}
    assert {k: v for k, v in back.info.items() if k != "root"} == info


@given(ds=gen_datasets(kinds=ALL_KINDS, attributes=True, crowd=True, scores=True, splits=True))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_generated_round_trip(ds: Dataset, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("hf") / "out"
    report = write_dataset(ds, out, "hf", images="none")
    assert report.lossless
    _same(ds, read_dataset(out, "hf"))


def test_hub_style_detection_dataset(tmp_path: Path) -> None:
    """A dataset built the way Hub detection sets are (cppe-5 style: objects as a Sequence of dict)."""
    feats = datasets.Features({
        "image_id": datasets.Value("int64"), "image": datasets.Image(), "width": datasets.Value("int32"),
        "height": datasets.Value("int32"),
        "objects": datasets.Sequence({"id": datasets.Value("int64"), "area": datasets.Value("int64"),
                                      "bbox": datasets.Sequence(datasets.Value("float32"), length=4),
                                      "category": datasets.ClassLabel(names=["Coverall", "Face_Shield", "Gloves"])}),
    })
    img = tmp_path / "one.png"
    Image.new("RGB", (40, 30), (10, 20, 30)).save(img)
    hub = datasets.Dataset.from_dict({
        "image_id": [7, 8], "image": [str(img), str(img)], "width": [40, 40], "height": [30, 30],
        "objects": [{"id": [1, 2], "area": [20, 6], "bbox": [[1.5, 2.0, 5.0, 4.0], [10, 10, 3, 2]],
                     "category": [2, 0]}, {"id": [], "area": [], "bbox": [], "category": []}]}, features=feats)
    (tmp_path / "hub" / "data").mkdir(parents=True)
    hub.to_parquet(str(tmp_path / "hub" / "data" / "train-00000-of-00001.parquet"))
    ds = read_dataset(tmp_path / "hub", "hf")
    assert ds.category_names() == {0: "Coverall", 1: "Face_Shield", 2: "Gloves"}
    assert ds.images.column("id").to_pylist() == [7, 8]
    assert ds.images.column("split").to_pylist() == ["train", "train"]
    rows = ds.annotations.to_pylist()
    assert [(r["id"], r["image_id"], r["category_id"], r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"])
            for r in rows] == [(1, 7, 2, 1.5, 2.0, 5.0, 4.0), (2, 7, 0, 10.0, 10.0, 3.0, 2.0)]
    assert (rows[0]["area"], rows[0]["attributes"]) == (20.0, None)
    # The image bytes were embedded by datasets: extracted, sized and readable.
    fn = ds.images.column("file_name")[0].as_py()
    with Image.open(Path(ds.info["root"]) / fn) as pil:
        assert pil.size == (40, 30)
    xyxy = read_dataset(tmp_path / "hub", "hf", bbox_format="xyxy").annotations.to_pylist()[0]
    assert (xyxy["bbox_w"], xyxy["bbox_h"]) == (3.5, 2.0)


def test_hub_style_classification(tmp_path: Path) -> None:
    img = tmp_path / "x.png"
    Image.new("L", (5, 4)).save(img)
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["diatom", "ciliate"])})
    hub = datasets.Dataset.from_dict({"image": [str(img)] * 3, "label": [1, 0, 1]}, features=feats)
    hub.to_parquet(str(tmp_path / "test-00000-of-00001.parquet"))
    ds = read_dataset(tmp_path / "test-00000-of-00001.parquet", "hf")
    assert ds.category_names() == {0: "diatom", 1: "ciliate"}
    assert ds.annotations.column("category_id").to_pylist() == [1, 0, 1]
    assert set(ds.annotations.column("kind").to_pylist()) == {"label"}
    assert ds.images.column("width").to_pylist() == [5, 5, 5]
    assert ds.images.column("split").to_pylist() == ["test"] * 3
    assert ds.images.column("file_name").to_pylist() == ["x.png"] * 3  # the path datasets kept


def test_bad_input(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "data").mkdir(parents=True)
    (src / "data" / "train-00000-of-00001.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InputError) as err:
        convert(src, tmp_path / "out", "native", "hf")
    assert err.value.file is not None and err.value.file.endswith("train-00000-of-00001.parquet")
    check = get_format("hf").check
    assert check is not None
    assert [(f.code, Path(f.file or "").name) for f in check(src)] == [("unreadable", "train-00000-of-00001.parquet")]
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(main, ["convert", str(src), str(tmp_path / "out"), "--to", "native", "--from", "hf"])
    assert result.exit_code == 2 and "train-00000-of-00001.parquet" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(main, ["convert", str(empty), str(tmp_path / "out"), "--to", "native", "--from", "hf"])
    assert result.exit_code == 2 and "no Parquet files" in result.output
    # A file name that climbs out of the dataset is refused before anything is extracted.
    feats = datasets.Features({"image": datasets.Image(), "file_name": datasets.Value("string")})
    evil = datasets.Dataset.from_dict({"image": [{"bytes": b"x", "path": None}], "file_name": ["../../evil.png"]},
                                      features=feats)
    (tmp_path / "evil").mkdir()
    evil.to_parquet(str(tmp_path / "evil" / "train-0.parquet"))
    with pytest.raises(InputError) as err:
        read_dataset(tmp_path / "evil", "hf")
    assert "outside" in err.value.message and err.value.place == "train row 0"


def test_hub_style_string_categories_and_per_image_ids(tmp_path: Path) -> None:
    """Objects whose categories are plain strings and whose ids restart per image (common on the Hub)."""
    img = tmp_path / "p.png"
    Image.new("RGB", (20, 10)).save(img)
    hub = datasets.Dataset.from_dict({
        "image": [str(img), str(img), str(img)],
        "objects": [[{"id": 0, "bbox": [1.0, 1.0, 2.0, 2.0], "category": "copepod"},
                     {"id": 1, "bbox": [3.0, 3.0, 2.0, 2.0], "category": "diatom"}],
                    [{"id": 0, "bbox": [5.0, 5.0, 1.0, 1.0], "category": "copepod"}], []],
        "label": [-1, -1, -1]},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64"),
                                    "objects": [{"id": datasets.Value("int64"),
                                                 "bbox": datasets.Sequence(datasets.Value("float64")),
                                                 "category": datasets.Value("string")}]}))
    hub.to_parquet(str(tmp_path / "train-0.parquet"))
    ds = read_dataset(tmp_path / "train-0.parquet", "hf")
    assert ds.category_names() == {0: "copepod", 1: "diatom"}
    rows = ds.annotations.to_pylist()
    assert [(r["id"], r["source_id"], r["category_id"]) for r in rows] == [(1, "0", 0), (2, "1", 1), (3, "0", 0)]
    assert len(ds) == 3  # the image without objects is kept
