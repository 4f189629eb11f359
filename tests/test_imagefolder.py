"""Image folders (one folder per class): the real FishCam crops with their metadata CSV, splits,
generated round trips, what cannot be carried, bad input."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imagine.curate.cli import main
from imagine.curate.formats import convert, detect_format, get_format, read_dataset, write_dataset
from imagine.curate.model import Dataset, dumps_attrs, loads_attrs
from imagine.kernel import ConversionReport, InputError

FISHCAM = Path(__file__).parent / "fixtures" / "fishcam" / "data"
SPECIES = ["bream", "browntrout", "burbot", "chub", "nase", "perch", "rainbowtrout"]


@pytest.fixture(scope="module")
def fishcam() -> Dataset:
    return read_dataset(FISHCAM, "imagefolder")


def test_fishcam_classes_images_and_labels(fishcam: Dataset) -> None:
    files = sorted(p.relative_to(FISHCAM).as_posix() for p in FISHCAM.rglob("*.png"))
    assert detect_format(FISHCAM) == "imagefolder"
    assert sorted(fishcam.images.column("file_name").to_pylist()) == files
    assert fishcam.categories.column("name").to_pylist() == SPECIES
    assert fishcam.categories.column("id").to_pylist() == list(range(7))
    names = fishcam.category_names()
    a = fishcam.annotations.to_pylist()
    assert len(a) == len(files) and {r["kind"] for r in a} == {"label"}
    by_image = {r["image_id"]: names[r["category_id"]] for r in a}
    for im in fishcam.images.to_pylist():
        assert by_image[im["id"]] == im["file_name"].split("/")[0]
    im0 = fishcam.images.to_pylist()[0]
    with Image.open(FISHCAM / im0["file_name"]) as pil:
        assert (im0["width"], im0["height"]) == pil.size
    assert (a[0]["bbox_w"], a[0]["bbox_h"]) == (float(im0["width"]), float(im0["height"]))


def test_fishcam_metadata_csv_joined(fishcam: Dataset) -> None:
    with open(FISHCAM / "test-sample.csv", newline="") as fh:
        rows = {r["image"]: r for r in csv.DictReader(fh, delimiter=";")}
    images = fishcam.images.to_pylist()
    assert len(rows) == len(images)
    for im in images:
        r = rows[im["file_name"]]
        assert im["video"] == r["video_name"] and im["datetime"] == r["date"]
        attrs = loads_attrs(im["attributes"])
        assert attrs["length"] == r["length"] and attrs["specie"] == r["specie"]
        assert "image" not in attrs and "video_name" not in attrs
    assert len({im["video"] for im in images}) > 20  # enough videos for group-aware splits


def test_fishcam_through_native_and_back(fishcam: Dataset, tmp_path: Path) -> None:
    report = ConversionReport()
    write_dataset(fishcam, tmp_path / "native", "native", images="link", report=report)
    mid = read_dataset(tmp_path / "native", "native")
    write_dataset(mid, tmp_path / "folder", "imagefolder", images="link", report=report)
    assert report.lossless, report.render()
    back = read_dataset(tmp_path / "folder")
    assert back.images.to_pylist() == fishcam.images.to_pylist()
    assert back.annotations.to_pylist() == fishcam.annotations.to_pylist()
    assert back.categories.to_pylist() == fishcam.categories.to_pylist()
    for fn in fishcam.images.column("file_name").to_pylist()[:50]:
        assert (tmp_path / "folder" / fn).read_bytes() == (FISHCAM / fn).read_bytes()


def _fishcam_subset(root: Path, layout: dict[str, dict[str, int]]) -> None:
    for split, classes in layout.items():
        for cls, n in classes.items():
            d = root / split / cls
            d.mkdir(parents=True)
            for p in sorted((FISHCAM / cls).iterdir())[:n]:
                shutil.copyfile(p, d / p.name)


def test_split_layout_and_semicolon_metadata(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _fishcam_subset(src, {"train": {"bream": 2, "chub": 1}, "val": {"bream": 1}, "test": {"perch": 2}})
    (src / "README.md").write_text("not an image")
    first = sorted((src / "train" / "bream").iterdir())[0].name
    (src / "sites.csv").write_text(f"path;site;latitude;depth\ntrain/bream/{first};Lake Geneva;46.45;12.5\n"
                                   "train/bream/nowhere.png;x;1;2\n")
    report = ConversionReport()
    ds = read_dataset(src, "imagefolder", report=report)
    assert ds.images.column("split").to_pylist() == ["train"] * 3 + ["val"] + ["test"] * 2
    assert ds.categories.column("name").to_pylist() == ["bream", "chub", "perch"]
    im = ds.images.to_pylist()[0]
    assert im["file_name"] == f"train/bream/{first}"
    assert (im["site"], im["latitude"], im["depth"]) == ("Lake Geneva", 46.45, 12.5)
    assert report.counts == {"metadata-row-unmatched": 1}
    out = write_dataset(ds, tmp_path / "out", "imagefolder")
    assert out.lossless
    back = read_dataset(tmp_path / "out")
    assert back.images.to_pylist() == ds.images.to_pylist()
    assert back.annotations.to_pylist() == ds.annotations.to_pylist()


def test_explicit_metadata_option_and_bad_csv(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _fishcam_subset(src, {".": {"nase": 2}})
    meta = tmp_path / "meta.csv"
    name = sorted((src / "nase").iterdir())[0].name
    meta.write_text(f"file_name,frame,station,id\nnase/{name},17,Ammersee,NS-17\n")
    ds = read_dataset(src, "imagefolder", metadata=str(meta))
    assert ds.images.to_pylist()[0]["frame"] == 17 and ds.images.to_pylist()[0]["site"] == "Ammersee"
    # A non-integer "id" column is an ordinary metadata column, not the image id.
    assert ds.images.column("id").to_pylist() == [0, 1]
    assert loads_attrs(ds.images.to_pylist()[0]["attributes"]) == {"id": "NS-17"}
    assert read_dataset(src, "imagefolder", metadata=None).images.column("frame").to_pylist() == [None, None]
    meta.write_text(f"file_name,latitude\nnase/{name},north\n")
    with pytest.raises(InputError) as err:
        read_dataset(src, "imagefolder", metadata=str(meta))
    assert err.value.file == str(meta) and err.value.place == "line 2, column 'latitude'"
    meta.write_text("a,b\nx,y\n")
    with pytest.raises(InputError) as err:
        read_dataset(src, "imagefolder", metadata=str(meta))
    assert "names the dataset's images" in err.value.message


def test_what_a_folder_cannot_hold_is_reported(tmp_path: Path) -> None:
    img_root = tmp_path / "imgs"
    img_root.mkdir()
    for n in ("a.png", "b.png", "c.png"):
        Image.new("RGB", (8, 6)).save(img_root / n)
    ds = Dataset.from_records(
        [{"id": 1, "file_name": "a.png", "width": 8, "height": 6, "split": "fold1"},
         {"id": 2, "file_name": "b.png", "width": 8, "height": 6},
         {"id": 3, "file_name": "c.png", "width": 8, "height": 6}],
        [{"id": 1, "image_id": 1, "category_id": 5, "kind": "label", "bbox_x": 0.0, "bbox_y": 0.0, "bbox_w": 8.0,
          "bbox_h": 6.0, "score": 0.7},
         {"id": 2, "image_id": 1, "category_id": 9, "kind": "label", "bbox_x": 0.0, "bbox_y": 0.0, "bbox_w": 8.0,
          "bbox_h": 6.0},
         {"id": 3, "image_id": 2, "category_id": 9, "kind": "box", "bbox_x": 1.0, "bbox_y": 1.0, "bbox_w": 2.0,
          "bbox_h": 2.0}],
        [{"id": 5, "name": "cod/adult"}, {"id": 9, "name": "herring", "taxon": "urn:lsid:marinespecies.org:126417"}],
        {"root": str(img_root)})
    report = write_dataset(ds, tmp_path / "out", "imagefolder")
    assert set(report.counts) == {"category-name-changed", "category-id-dropped", "category-attributes-dropped",
                                  "split-dropped", "score-dropped", "extra-labels-dropped", "annotation-dropped"}
    back = read_dataset(tmp_path / "out")
    assert back.categories.column("name").to_pylist() == ["cod_adult", "herring"]
    assert back.images.column("file_name").to_pylist() == ["b.png", "c.png", "cod_adult/a.png"]
    assert back.images.column("id").to_pylist() == [2, 3, 1]  # ids kept through metadata.csv
    assert back.num_annotations == 1  # the image without a label (b.png) stays, unlabelled


# ------------------------------------------------------------------------------------------- generated


word = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)


@st.composite
def labelled(draw: Any) -> Dataset:
    classes = sorted(draw(st.sets(word, min_size=1, max_size=3)))
    split_layout = draw(st.booleans())
    images, anns = [], []
    for i in range(draw(st.integers(1, 6))):
        cls = draw(st.sampled_from([*classes, None]))
        split = draw(st.sampled_from(["train", "val", "test"])) if split_layout else None
        parts = [p for p in (split, cls) if p]
        w, h = draw(st.integers(1, 12)), draw(st.integers(1, 12))
        meta: dict[str, Any] = {"id": 100 + i, "file_name": "/".join([*parts, f"f{i}.png"]), "width": w,
                                "height": h, "split": split}
        if draw(st.booleans()):
            meta["video"] = draw(word)
            meta["depth"] = draw(st.floats(-100, 100, allow_nan=False))
            meta["attributes"] = dumps_attrs({"note": draw(word), "Tag": draw(word)})
        images.append(meta)
        if cls is not None:
            anns.append({"id": 0, "image_id": 100 + i, "category_id": classes.index(cls), "kind": "label",
                         "bbox_x": 0.0, "bbox_y": 0.0, "bbox_w": float(w), "bbox_h": float(h)})
    return Dataset.from_records(images, anns, [{"id": k, "name": c} for k, c in enumerate(classes)])


@given(ds=labelled())
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_generated_round_trip(ds: Dataset, tmp_path_factory: pytest.TempPathFactory) -> None:
    base = tmp_path_factory.mktemp("if")
    for im in ds.images.to_pylist():
        p = base / "src" / Path(im["file_name"]).name
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.new("L", (im["width"], im["height"])).save(p)
    # The source has every image flat in one folder; the writer sorts them into [split/]class/.
    flat = pa.array([Path(f).name for f in ds.images.column("file_name").to_pylist()])
    src = ds.with_tables(images=ds.images.set_column(1, "file_name", flat), info={"root": str(base / "src")})
    report = write_dataset(src, base / "out", "imagefolder")
    back = read_dataset(base / "out", "imagefolder")
    assert report.lossless, report.render()
    assert back.categories.to_pylist() == ds.categories.to_pylist()  # empty class folders keep classes
    want = sorted(ds.images.to_pylist(), key=lambda r: r["id"])
    got = sorted(back.images.to_pylist(), key=lambda r: r["id"])
    assert got == want
    names, back_names = ds.category_names(), back.category_names()
    want_labels = {r["image_id"]: names[r["category_id"]] for r in ds.annotations.to_pylist()}
    got_labels = {r["image_id"]: back_names[r["category_id"]] for r in back.annotations.to_pylist()}
    assert got_labels == want_labels


# ------------------------------------------------------------------------------------------- bad input


def test_bad_input(tmp_path: Path) -> None:
    src = tmp_path / "in"
    (src / "cod").mkdir(parents=True)
    (src / "cod" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (src / "cod" / "notes.txt").write_text("seen at dusk")
    (src / "eel").mkdir()
    check = get_format("imagefolder").check
    assert check is not None and check(FISHCAM) == []
    found = {(f.code, Path(f.file or "").name) for f in check(src)}
    assert found == {("empty-class", "eel"), ("not-an-image", "notes.txt"), ("unreadable", "broken.png")}
    with pytest.raises(InputError) as err:
        convert(src, tmp_path / "out", "native", "imagefolder")
    assert err.value.file is not None and err.value.file.endswith("broken.png")
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(main, ["convert", str(src), str(tmp_path / "out"), "--to", "native",
                                       "--from", "imagefolder"])
    assert result.exit_code == 2 and "broken.png" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
    f = tmp_path / "file.txt"
    f.write_text("x")
    result = CliRunner().invoke(main, ["convert", str(f), str(tmp_path / "out"), "--to", "native",
                                       "--from", "imagefolder", "--json"])
    assert result.exit_code == 2 and "folder of class folders" in result.output
