"""COCO reader/writer: real samples, flavours (results, panoptic, string ids), round trips, bad input."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

from imagine.curate.cli import main
from imagine.curate.formats import convert, get_format, read_dataset, write_dataset
from imagine.curate.geometry import mask_to_rle
from imagine.curate.model import Dataset
from imagine.kernel import ConversionReport, InputError

SAMPLES = Path(__file__).parent / "fixtures" / "samples"
FIX = Path(__file__).parent / "fixtures" / "coco"


def _write(tmp: Path, doc: object, name: str = "ann.json") -> Path:
    p = tmp / name
    p.write_bytes(orjson.dumps(doc))
    return p


# ------------------------------------------------------------------------------------------ real samples


def test_datumaro_sample_keeps_ids_crowd_rle_attributes_and_writes_them_back(tmp_path: Path) -> None:
    src = SAMPLES / "coco_instances_val.json"
    rep = ConversionReport()
    ds = read_dataset(src, report=rep)
    assert rep.lossless
    assert ds.categories.column("id").to_pylist() == [1, 2, 4]
    assert ds.images.column("id").to_pylist() == [40]
    a = ds.annotations.to_pylist()
    assert a[0]["kind"] == "polygon" and a[0]["geometry"] == [[0.0, 0.0, 1.0, 0.0, 1.0, 2.0, 0.0, 2.0]]
    assert json.loads(a[0]["attributes"]) == {"attributes": {"x": 1, "y": "hello"}}
    assert a[1]["kind"] == "mask" and a[1]["iscrowd"] is True
    m = mask_utils.decode({"size": [10, 5], "counts": a[1]["rle"].encode()})
    assert m.sum() == 20 and m.ravel(order="F")[:20].all()  # counts [0, 20, 30]: starts with ones
    out = tmp_path / "out.json"
    report = write_dataset(ds, out, "coco")
    assert report.lossless
    orig, back = json.loads(src.read_text()), json.loads(out.read_text())
    assert back["info"] == orig["info"] and back["licenses"] == orig["licenses"]
    assert back["images"] == orig["images"]  # header junk ("date_captured": 0) kept verbatim
    assert back["categories"] == orig["categories"]
    for o, b in zip(orig["annotations"], back["annotations"], strict=True):
        assert b == o  # uncompressed crowd RLE written back uncompressed, attributes nested as they were


def test_kwcoco_without_sizes_keypoints_tracks_scores(tmp_path: Path) -> None:
    rep = ConversionReport()
    ds = read_dataset(SAMPLES / "viame_example.coco.json", report=rep)
    assert ds.images.column("width").null_count == len(ds)
    assert rep.counts["size-unknown"] == len(ds)
    a = ds.annotations
    assert a.column("kind").to_pylist()[0] == "keypoints"
    assert a.column("geometry").to_pylist()[0] == [[120.0, 320.0, 2.0, 180.0, 340.0, 2.0]]
    assert ds.categories.column("keypoints").to_pylist()[0] == ["head", "tail"]
    assert a.column("score").to_pylist()[:2] == [0.92, 0.9]
    assert a.column("track_id").to_pylist()[:4] == [0, 0, 1, 2]
    assert ds.images.column("frame").to_pylist() == [0, 1]
    # the original file's extra top-level keys survive a COCO → COCO round trip
    out = tmp_path / "o.json"
    write_dataset(ds, out, "coco")
    back = json.loads(out.read_text())
    orig = json.loads((SAMPLES / "viame_example.coco.json").read_text())
    assert back["tracks"] == orig["tracks"] and back["keypoint_categories"] == orig["keypoint_categories"]
    assert read_dataset(out).annotations.equals(ds.annotations)


def test_missing_size_is_read_from_the_image_header(tmp_path: Path) -> None:
    Image.new("RGB", (7, 5)).save(tmp_path / "a.png")
    p = _write(tmp_path, {"images": [{"id": 1, "file_name": "a.png"}], "annotations": [],
                          "categories": [{"id": 3, "name": "fish"}]})
    rep = ConversionReport()
    ds = read_dataset(p, report=rep)
    assert (ds.images.column("width")[0].as_py(), ds.images.column("height")[0].as_py()) == (7, 5)
    assert rep.counts == {"size-from-image": 1}


def test_string_ids_are_kept_and_written_back(tmp_path: Path) -> None:
    doc = {"images": [{"id": "img-a", "file_name": "a.jpg", "width": 10, "height": 10},
                      {"id": "img-b", "file_name": "b.jpg", "width": 10, "height": 10}],
           "annotations": [{"id": "x1", "image_id": "img-b", "category_id": "cat", "bbox": [1, 2, 3, 4]},
                           {"id": "x2", "image_id": "img-a", "category_id": "cat", "bbox": [0.5, 0, 1, 1]}],
           "categories": [{"id": "cat", "name": "fish"}]}
    ds = read_dataset(_write(tmp_path, doc))
    assert ds.images.column("source_id").to_pylist() == ["img-a", "img-b"]
    img_of = dict(zip(ds.images.column("id").to_pylist(), ds.images.column("source_id").to_pylist(), strict=True))
    assert [img_of[i] for i in ds.annotations.column("image_id").to_pylist()] == ["img-b", "img-a"]
    out = tmp_path / "out.json"
    write_dataset(ds, out, "coco")
    back = json.loads(out.read_text())
    assert [im["id"] for im in back["images"]] == ["img-a", "img-b"]
    assert [(a["id"], a["image_id"], a["category_id"]) for a in back["annotations"]] == \
        [("x1", "img-b", "cat"), ("x2", "img-a", "cat")]
    assert back["categories"] == [{"id": "cat", "name": "fish"}]


def test_results_flavour_round_trip(tmp_path: Path) -> None:
    rle = mask_to_rle(np.eye(4, dtype=np.uint8))
    doc = [{"image_id": 7, "category_id": 2, "bbox": [1.25, 2, 3, 4], "score": 0.875},
           {"image_id": 3, "category_id": 1, "bbox": [0, 0, 4, 4], "score": 0.5,
            "segmentation": {"size": [4, 4], "counts": rle}}]
    ds = read_dataset(_write(tmp_path, doc, "results.json"))
    assert ds.images.column("id").to_pylist() == [7, 3]
    assert ds.annotations.column("score").to_pylist() == [0.875, 0.5]
    out = tmp_path / "back.json"
    write_dataset(ds, out, "coco")
    back = json.loads(out.read_text())
    assert isinstance(back, list)
    assert [(b["image_id"], b["category_id"], b["bbox"], b["score"]) for b in back] == \
        [(d["image_id"], d["category_id"], d["bbox"], d["score"]) for d in doc]
    assert back[1]["segmentation"] == {"size": [4, 4], "counts": rle}


def test_panoptic_read_and_write(tmp_path: Path) -> None:
    idmap = np.zeros((6, 8), np.uint32)
    idmap[1:3, 1:4] = 5
    idmap[3:6, 4:8] = 300  # needs the G channel: 300 = 44 + 256·1
    rgb = np.stack([idmap % 256, idmap // 256 % 256, idmap // 65536], -1).astype(np.uint8)
    (tmp_path / "panoptic_val").mkdir()
    Image.fromarray(rgb).save(tmp_path / "panoptic_val" / "a.png")
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 6}],
           "annotations": [{"image_id": 1, "file_name": "a.png", "segments_info": [
               {"id": 5, "category_id": 1, "bbox": [1, 1, 3, 2], "area": 6, "iscrowd": 0},
               {"id": 300, "category_id": 2, "bbox": [4, 3, 4, 3], "area": 12, "iscrowd": 0, "isthing": 1}]}],
           "categories": [{"id": 1, "name": "fish", "isthing": 1}, {"id": 2, "name": "sand", "isthing": 0}]}
    ds = read_dataset(_write(tmp_path, doc, "panoptic_val.json"))
    a = ds.annotations.to_pylist()
    assert [x["kind"] for x in a] == ["mask", "mask"]
    for x, sid in zip(a, (5, 300), strict=True):
        m = mask_utils.decode({"size": [6, 8], "counts": x["rle"].encode()})
        assert np.array_equal(m.astype(bool), idmap == sid)
    out = tmp_path / "out"
    write_dataset(ds, out, "coco", images="none")
    back = json.loads((out / "annotations.json").read_text())
    assert back["annotations"][0]["segments_info"] == doc["annotations"][0]["segments_info"]
    png = np.asarray(Image.open(out / "annotations" / "a.png"), dtype=np.uint32)
    assert np.array_equal(png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2], idmap)
    again = read_dataset(out / "annotations.json", panoptic_dir=str(out / "annotations"))
    assert again.annotations.column("rle").equals(ds.annotations.column("rle"))


def test_chunked_parse_of_large_files_equals_a_whole_parse() -> None:
    from imagine.curate.formats.coco import _loads_chunked

    for name in ("coco_instances_val.json", "viame_example.coco.json"):
        data = (SAMPLES / name).read_bytes()
        for text in (data, json.dumps(json.loads(data)).encode(), json.dumps(json.loads(data), indent=3).encode()):
            for chunk in (1, 40, 300):
                got = _loads_chunked(text, chunk=chunk)
                assert got is None or got == orjson.loads(text)
    big = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 9, "height": 9} for i in range(300)],
           "annotations": [{"id": k, "image_id": k % 300, "category_id": 1, "bbox": [k, 1.5, 2, 2],
                            "note": "},{ inside a string"} for k in range(2000)],
           "categories": [{"id": 1, "name": "fish"}]}
    for text in (orjson.dumps(big), json.dumps(big, indent=2).encode()):
        assert _loads_chunked(text, chunk=1000) == big  # cut in slices, same document


def _box_doc(n_img: int, n_ann: int, seed: int) -> dict[str, Any]:
    """A box-only COCO document with mixed int/float numbers, crowd, a missing area and a null category."""
    rng = np.random.default_rng(seed)
    anns: list[dict[str, Any]] = []
    for k in range(n_ann):
        a: dict[str, Any] = {"id": int(rng.integers(1, 10**12)), "image_id": int(rng.integers(1, n_img + 1)),
                             "category_id": int(rng.integers(1, 4)),
                             "bbox": [float(v) if rng.random() < 0.5 else int(v)
                                      for v in np.round(rng.uniform(0, 500, 4), int(rng.integers(0, 17)))],
                             "area": float(rng.uniform(0, 9e4)) if k % 7 else 12, "iscrowd": int(k % 13 == 0),
                             "segmentation": []}
        if k % 11 == 5:
            del a["area"]
        if k % 17 == 3:
            a["category_id"] = None
        anns.append(a)
    return {"info": {"year": 2026}, "licenses": [],
            "images": [{"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in range(1, n_img + 1)],
            "annotations": anns, "categories": [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]}


@pytest.mark.parametrize("dumps", [orjson.dumps, lambda d: json.dumps(d).encode()], ids=["compact", "python-json"])
def test_arrow_parse_of_box_only_files_equals_the_general_path(tmp_path: Path, dumps: Any) -> None:
    from imagine.curate.formats.coco import _arrow_boxes

    p = tmp_path / "boxes.json"
    p.write_bytes(dumps(_box_doc(50, 3000, seed=1)))
    assert _arrow_boxes(p) is not None  # the fast path really ran
    fast, slow = read_dataset(p, "coco", parser="arrow"), read_dataset(p, "coco", parser="python")
    assert fast.equals(slow, check_info=True)
    assert fast.annotations.column("bbox_x").to_pylist() == [float(a["bbox"][0]) for a in
                                                               _box_doc(50, 3000, seed=1)["annotations"]]


@pytest.mark.parametrize("change", ["polygon", "string-id", "extra-key", "pretty", "brace-in-string",
                                    "nested-objects", "bbox-3", "bool-bbox"])
def test_arrow_parse_gives_way_to_the_general_path(tmp_path: Path, change: str) -> None:
    """Whatever the Arrow path does not read exactly as the general path does makes it give way."""
    from imagine.curate.formats.coco import _arrow_boxes

    doc = _box_doc(5, 40, seed=2)
    a = doc["annotations"][17]
    if change == "polygon":
        a["segmentation"] = [[1, 1, 9, 1, 9, 9]]
    elif change == "string-id":
        a["id"] = "ann-17"
    elif change == "extra-key":
        a["occluded"] = True
    elif change == "brace-in-string":
        doc["annotations"] = [{**x, "note": "a},{b"} for x in doc["annotations"]]
    elif change == "nested-objects":
        a["parts"] = [{"x": 1}, {"y": 2}]
    elif change == "bbox-3":
        a["bbox"] = a["bbox"][:3]
    elif change == "bool-bbox":
        a["bbox"][0] = True
    p = tmp_path / "a.json"
    p.write_bytes(json.dumps(doc, indent=1).encode() if change == "pretty" else orjson.dumps(doc))
    assert _arrow_boxes(p) is None
    if change in ("bbox-3",):
        with pytest.raises(InputError):
            read_dataset(p, "coco", parser="arrow")
        return
    fast, slow = read_dataset(p, "coco", parser="arrow"), read_dataset(p, "coco", parser="python")
    assert fast.equals(slow, check_info=True)


# ------------------------------------------------------------------------------------------ round trips


@st.composite
def datasets(draw: st.DrawFn) -> Dataset:
    """Random datasets of what COCO can hold: every kind it has, crowd, scores, tracks, attributes."""
    n_img = draw(st.integers(1, 4))
    cat_ids = draw(st.lists(st.integers(0, 1000), min_size=1, max_size=4, unique=True))
    images: list[dict[str, Any]] = []
    for i in range(n_img):
        images.append({"id": draw(st.integers(1, 10**9)) * 10 + i, "file_name": f"d{i}/im{i}.jpg",
                       "width": draw(st.integers(4, 40)), "height": draw(st.integers(4, 40)),
                       "split": draw(st.sampled_from([None, "train", "val"])),
                       "latitude": draw(st.one_of(st.none(), st.floats(-90, 90)))})
    coord = st.floats(0, 40, allow_nan=False)
    anns: list[dict[str, Any]] = []
    for k in range(draw(st.integers(0, 8))):
        im = draw(st.sampled_from(images))
        kind = draw(st.sampled_from(["box", "polygon", "mask", "keypoints"]))
        box = [draw(coord) for _ in range(4)]
        row: dict[str, Any] = {
               "id": k + 1, "image_id": im["id"], "category_id": draw(st.sampled_from(cat_ids)), "kind": kind,
               "bbox_x": box[0], "bbox_y": box[1], "bbox_w": box[2], "bbox_h": box[3],
               "area": draw(coord), "iscrowd": draw(st.booleans()),
               "score": draw(st.one_of(st.none(), st.floats(0, 1))),
               "track_id": draw(st.one_of(st.none(), st.integers(0, 50))),
               "attributes": draw(st.one_of(st.none(), st.dictionaries(
                   st.sampled_from(["x_a", "x_b", "note"]),
                   st.one_of(st.integers(-2**63, 2**63 - 1), st.text(max_size=5)),
                   min_size=1).map(lambda d: json.dumps(d, separators=(",", ":"), ensure_ascii=False))))}
        if kind == "polygon":
            row["geometry"] = [[draw(coord) for _ in range(6)] for _ in range(draw(st.integers(1, 2)))]
        elif kind == "mask":
            h, w = im["height"], im["width"]
            m = np.array(draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w))).reshape(h, w)
            row["geometry"], row["rle"] = [[float(h), float(w)]], mask_to_rle(m)
        elif kind == "keypoints":
            row["geometry"] = [[v for _ in range(3) for v in (draw(coord), draw(coord),
                                                                float(draw(st.integers(0, 2))))]]
        anns.append(row)
    cats = [{"id": c, "name": f"c{c}", "supercategory": draw(st.sampled_from([None, "animal"]))} for c in cat_ids]
    return Dataset.from_records(images, anns, cats)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ds=datasets())
def test_hypothesis_round_trip_is_identical(tmp_path_factory: pytest.TempPathFactory, ds: Dataset) -> None:
    out = tmp_path_factory.mktemp("c") / "x.json"
    report = write_dataset(ds, out, "coco")
    assert report.lossless, report.render()
    back = read_dataset(out)
    assert back.images.equals(ds.images)
    assert back.categories.equals(ds.categories)
    assert back.annotations.equals(ds.annotations), (back.annotations.to_pylist(), ds.annotations.to_pylist())


def test_what_coco_cannot_hold_is_reported(tmp_path: Path) -> None:
    ds = Dataset.from_records(
        [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        [{"id": 1, "image_id": 1, "category_id": 1, "kind": "rbox", "bbox_x": 1.0, "bbox_y": 1.0, "bbox_w": 2.0,
          "bbox_h": 2.0, "geometry": [[2.0, 2.0, 2.0, 1.0, 30.0]], "area": 2.0},
         {"id": 2, "image_id": 1, "category_id": 1, "kind": "polygon", "bbox_x": 0.0, "bbox_y": 0.0,
          "bbox_w": 5.0, "bbox_h": 5.0, "geometry": [[0, 0, 5, 0, 5, 5], [], [1, 1, 2, 1, 2, 2]], "area": 1.0}],
        [{"id": 1, "name": "fish"}])
    rep = write_dataset(ds, tmp_path / "o.json", "coco")
    assert rep.counts == {"rotation-dropped": 1, "polygon-holes-dropped": 1}


# ------------------------------------------------------------------------------------------ bad input


def _no_output(where: Path) -> None:
    assert not where.exists()
    assert not [p for p in where.parent.iterdir() if p.name.startswith(f".{where.name}")]


@pytest.mark.parametrize("text,place,what", [
    (b'{"images": [\n  {"id": 1,, "file_name": "a.jpg"}]}', "line 2, column", "malformed JSON"),
    (b'{"images": [{"id": 1, "file_name": "a.j', "line 1, column", "truncated JSON"),
])
def test_malformed_json_names_line_and_column(tmp_path: Path, text: bytes, place: str, what: str) -> None:
    src = tmp_path / "bad.json"
    src.write_bytes(text)
    out = tmp_path / "out"
    with pytest.raises(InputError) as exc:
        convert(src, out, "yolo", "coco")
    assert exc.value.file == str(src) and place in (exc.value.place or "") and what in exc.value.message
    _no_output(out)


def test_wrong_types_give_a_json_pointer(tmp_path: Path) -> None:
    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 4, "height": 4}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]},
                           {"id": 2, "image_id": 1, "category_id": 1, "bbox": "0 0 1 1"}],
           "categories": [{"id": 1, "name": "a"}]}
    src = _write(tmp_path, doc)
    with pytest.raises(InputError) as exc:
        read_dataset(src, "coco")
    assert exc.value.place == "/annotations/1/bbox"
    findings = get_format("coco").check(src)
    assert [f.place for f in findings] == ["/annotations/1/bbox"]


def test_path_escape_and_cli_exit_code(tmp_path: Path) -> None:
    doc = {"images": [{"id": 1, "file_name": "../../etc/passwd", "width": 4, "height": 4}], "annotations": [],
           "categories": []}
    src = _write(tmp_path, doc)
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["convert", str(src), str(out), "--to", "voc", "--from", "coco"])
    assert res.exit_code == 2
    assert str(src) in res.output and "/images/0/file_name" in res.output and "outside" in res.output
    _no_output(out)


def _bomb_png(path: Path, w: int = 40000, h: int = 40000) -> None:
    """A PNG whose header claims w×h pixels (1.6 G): opening it must be refused, not decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 10))
                     + chunk(b"IEND", b""))


def test_decompression_bomb_image_is_refused(tmp_path: Path) -> None:
    _bomb_png(tmp_path / "bomb.png")
    src = _write(tmp_path, {"images": [{"id": 1, "file_name": "bomb.png"}], "annotations": [], "categories": []})
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["convert", str(src), str(out), "--to", "yolo"])
    assert res.exit_code == 2 and "decompression bomb" in res.output and "bomb.png" in res.output
    _no_output(out)


def test_fixture_sources_documented() -> None:
    assert (FIX / "SOURCE.md").is_file()
