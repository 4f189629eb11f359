"""Supervisely projects: the hand-built documented example, bitmaps, generated round trips, bad input."""

from __future__ import annotations

import base64
import io
import json
import shutil
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from PIL import Image
from pycocotools import mask as mask_utils

from imagine.curate.cli import main
from imagine.curate.formats import convert, detect_format, get_format, read_dataset, write_dataset
from imagine.curate.model import Dataset, loads_attrs
from imagine.kernel import InputError
from tests.strategies import datasets

PROJECT = Path(__file__).parent / "fixtures" / "supervisely" / "project"
ANN = PROJECT / "dive_1" / "ann" / "frame_0001.jpg.json"


def _flat(ring: list[list[float]]) -> list[float]:
    return [float(v) for p in ring for v in p]


def test_documented_example_reads_every_geometry() -> None:
    doc = json.loads(ANN.read_text())
    ds = read_dataset(PROJECT)
    assert detect_format(PROJECT) == "supervisely"
    assert len(ds) == 2  # the image without objects is kept
    assert ds.images.column("file_name").to_pylist() == ["dive_1/img/frame_0001.jpg", "dive_1/img/frame_0002.jpg"]
    assert ds.images.column("split").to_pylist() == ["dive_1", "dive_1"]
    assert (ds.images.column("width")[0].as_py(), ds.images.column("height")[0].as_py()) == \
        (doc["size"]["width"], doc["size"]["height"])
    assert loads_attrs(ds.images.column("attributes")[0].as_py()) == {"visibility": "good"}
    meta = json.loads((PROJECT / "meta.json").read_text())
    assert ds.categories.column("id").to_pylist() == [c["id"] for c in meta["classes"]]
    a = ds.annotations.to_pylist()
    assert [r["id"] for r in a] == [o["id"] for o in doc["objects"]]
    assert [r["kind"] for r in a] == ["box", "polygon", "point", "polyline", "mask", "keypoints"]
    # The graph: nodes in the class template's order, disabled = labelled but not visible, missing = 0.
    graph = doc["objects"][5]["nodes"]
    assert a[5]["geometry"] == [[*graph["n1"]["loc"], 2, *graph["n2"]["loc"], 1, 0, 0, 0]]
    cats = {c["id"]: c for c in ds.categories.to_pylist()}
    assert cats[9006]["keypoints"] == ["snout", "fork", "tail_tip"] and cats[9006]["skeleton"] == [[1, 2], [2, 3]]
    rect = doc["objects"][0]["points"]["exterior"]
    assert (a[0]["bbox_x"], a[0]["bbox_y"], a[0]["bbox_x"] + a[0]["bbox_w"], a[0]["bbox_y"] + a[0]["bbox_h"]) == \
        (rect[0][0], rect[0][1], rect[1][0], rect[1][1])
    poly = doc["objects"][1]["points"]
    assert a[1]["geometry"] == [_flat(poly["exterior"]), [], _flat(poly["interior"][0])]
    assert loads_attrs(a[0]["attributes"]) == {"length_cm": 12.5, "createdAt": "2023-03-01T10:00:00.000Z",
                                               "updatedAt": "2023-03-01T10:05:00.000Z"}
    assert a[0]["annotator"] == "ana"
    assert loads_attrs(a[2]["attributes"]) == {"reviewed": None}
    # The bitmap: decode the PNG ourselves, place it at its origin, compare with the RLE.
    bm = doc["objects"][4]["bitmap"]
    with Image.open(io.BytesIO(zlib.decompress(base64.b64decode(bm["data"])))) as im:
        crop = np.asarray(im.convert("L")) > 0
    full = np.zeros((doc["size"]["height"], doc["size"]["width"]), dtype=np.uint8)
    x0, y0 = bm["origin"]
    full[y0:y0 + crop.shape[0], x0:x0 + crop.shape[1]] = crop
    decoded = mask_utils.decode({"size": [60, 80], "counts": a[4]["rle"].encode()})
    assert np.array_equal(decoded, full)
    assert (a[4]["bbox_x"], a[4]["bbox_y"], a[4]["bbox_w"], a[4]["bbox_h"]) == (20, 40, 5, 3)


def test_project_round_trip_is_identical(tmp_path: Path) -> None:
    ds = read_dataset(PROJECT)
    report = write_dataset(ds, tmp_path / "out", "supervisely")
    assert report.counts == {"image-missing": 1}, report.render()  # frame_0002.jpg is not on disk
    back = read_dataset(tmp_path / "out")
    assert back.equals(ds)
    assert (tmp_path / "out" / "dive_1" / "img" / "frame_0001.jpg").is_file()
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert {t["name"] for t in meta["tags"]} >= {"visibility", "length_cm", "reviewed"}
    assert [c["shape"] for c in meta["classes"]] == ["rectangle", "polygon", "point", "line", "bitmap", "graph"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ds=datasets(kinds=("box", "polygon", "polyline", "point", "label"), splits=True, crowd=True))
def test_round_trip_generated(ds: Dataset, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("sly") / "p"
    report = write_dataset(ds, out, "supervisely")
    back = read_dataset(out, "supervisely")
    kinds = ds.annotations.column("kind").to_pylist()
    if "label" in kinds:  # whole-image labels become image tags, and say so
        assert report.counts["label-to-tag"] == kinds.count("label")
    # Images come back keyed "<split>/img/<file>", sorted by dataset and item (reported when that reorders).
    src_img = {i["id"]: i for i in ds.images.to_pylist()}
    key = {i: f"{r['split']}/img/{r['file_name']}" for i, r in src_img.items()}
    back_img = {r["file_name"]: r for r in back.images.to_pylist()}
    assert sorted(back_img) == sorted(key.values())
    for i, r in src_img.items():
        b = back_img[key[i]]
        assert (b["width"], b["height"], b["split"]) == (r["width"], r["height"], r["split"])
    if [back_img[key[i]]["id"] for i in src_img] != list(src_img):
        assert "image-ids-renumbered" in report.counts
    back_to_src = {back_img[key[i]]["id"]: i for i in src_img}
    expected = sorted((r for r in ds.annotations.to_pylist() if r["kind"] != "label"), key=lambda r: r["id"])
    got = sorted(back.annotations.to_pylist(), key=lambda r: r["id"])
    assert len(got) == len(expected)
    for b, r in zip(got, expected, strict=True):
        assert (b["id"], back_to_src[b["image_id"]], b["category_id"], b["kind"]) == \
            (r["id"], r["image_id"], r["category_id"], r["kind"])
        if r["kind"] == "box":  # corners: equal up to x + w - x
            np.testing.assert_allclose([b["bbox_x"], b["bbox_y"], b["bbox_w"], b["bbox_h"]],
                                       [r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"]], rtol=1e-12, atol=1e-9)
        else:
            assert b["geometry"] == r["geometry"]
            assert (b["bbox_x"], b["bbox_y"], b["bbox_w"], b["bbox_h"]) == \
                (r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"])
    assert back.categories.select(["id", "name"]).equals(ds.categories.select(["id", "name"]))
    if any(ds.annotations.column("iscrowd").to_pylist()):
        assert "crowd-flag-dropped" in report.counts


def test_keypoints_from_another_format_become_a_graph(tmp_path: Path) -> None:
    ds = Dataset.from_records([{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
                              [{"id": 3, "image_id": 1, "category_id": 1, "kind": "keypoints",
                                "geometry": [[1.5, 2.0, 2, 0, 0, 0, 7.25, 8.0, 1]], "bbox_x": 1.5, "bbox_y": 2.0,
                                "bbox_w": 5.75, "bbox_h": 6.0}],
                              [{"id": 1, "name": "fish", "keypoints": ["snout", "eye", "tail"],
                                "skeleton": [[1, 3]]}])
    report = write_dataset(ds, tmp_path / "p", "supervisely", images="none")
    assert report.lossless, report.render()
    back = read_dataset(tmp_path / "p")
    assert back.annotations.select(["id", "kind", "geometry", "bbox_x", "bbox_y", "bbox_w", "bbox_h"]).equals(
        ds.annotations.select(["id", "kind", "geometry", "bbox_x", "bbox_y", "bbox_w", "bbox_h"]))
    assert back.categories.select(["keypoints", "skeleton"]).equals(ds.categories.select(["keypoints", "skeleton"]))


def test_mask_round_trip_exact(tmp_path: Path) -> None:
    m = np.zeros((30, 40), dtype=np.uint8)
    m[3:9, 5:17] = 1
    m[20:25, 30:39] = 1
    rle = mask_utils.encode(np.asfortranarray(m))["counts"].decode()
    ds = Dataset.from_records([{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
                              [{"id": 7, "image_id": 1, "category_id": 2, "kind": "mask", "rle": rle,
                                "geometry": [[30.0, 40.0]], "bbox_x": 5.0, "bbox_y": 3.0, "bbox_w": 34.0,
                                "bbox_h": 22.0}],
                              [{"id": 2, "name": "kelp"}])
    write_dataset(ds, tmp_path / "p", "supervisely", images="none")
    back = read_dataset(tmp_path / "p")
    assert back.annotations.column("rle").to_pylist() == [rle]
    assert back.annotations.column("id").to_pylist() == [7]


# ------------------------------------------------------------------------------------------ bad input


def _broken_copy(tmp_path: Path, text: str) -> Path:
    src = tmp_path / "src"
    shutil.copytree(PROJECT, src)
    (src / "dive_1" / "ann" / "frame_0001.jpg.json").write_text(text)
    return src


def _edited(path: tuple[object, ...], value: object) -> str:
    doc = json.loads(ANN.read_text())
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return json.dumps(doc, indent=1)


@pytest.mark.parametrize(("text", "place"), [
    (ANN.read_text()[:300], f"line {ANN.read_text()[:300].count(chr(10)) + 1}, column"),  # truncated
    (_edited(("objects", 0, "classTitle"), 5), "/objects/0/classTitle"),
    (_edited(("objects", 0, "points", "exterior", 0, 0), "x"), "/objects/0/points/exterior/0/0"),
    (_edited(("size",), [60, 80]), "/size"),
])
def test_bad_input_names_file_and_place(text: str, place: str, tmp_path: Path) -> None:
    src = _broken_copy(tmp_path, text)
    with pytest.raises(InputError) as err:
        convert(src, tmp_path / "out", "native", "supervisely")
    assert err.value.file is not None and Path(err.value.file).name == "frame_0001.jpg.json"
    assert place in (err.value.place or "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    result = CliRunner().invoke(main, ["convert", str(src), str(tmp_path / "out"), "--to", "via"])
    assert result.exit_code == 2 and "frame_0001.jpg.json" in result.output and place in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    check = get_format("supervisely").check
    assert check is not None and check(src)
    assert check(PROJECT) == []


def test_item_escaping_the_project_is_refused(tmp_path: Path) -> None:
    src = _broken_copy(tmp_path, ANN.read_text())
    ds = read_dataset(src)
    bad = ds.with_tables(images=ds.images.set_column(1, "file_name", [["../../../../evil.jpg", "ok.jpg"]]))
    with pytest.raises(InputError):
        write_dataset(bad, tmp_path / "out", "supervisely", images="none")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_bitmap_reaching_outside_the_image_is_cropped_and_reported(tmp_path: Path) -> None:
    doc = json.loads(ANN.read_text())
    doc["objects"] = [o for o in doc["objects"] if o["geometryType"] == "bitmap"]
    doc["objects"][0]["bitmap"]["origin"] = [78, 58]  # a 6x4 crop at (78, 58) on an 80x60 image
    src = _broken_copy(tmp_path, json.dumps(doc))
    from imagine.kernel import ConversionReport

    report = ConversionReport()
    ds = read_dataset(src, report=report)
    assert report.counts == {"mask-cropped": 1}
    m = mask_utils.decode({"size": [60, 80], "counts": ds.annotations.column("rle")[0].as_py().encode()})
    assert m[58:, 78:].tolist() == [[1, 0], [0, 1]]  # the crop's (0, 0) pixel and row 1 from column 1
    assert int(m.sum()) == 2
