"""Label Studio JSON: real polygon and rotated-rectangle exports, rotation maths, brush RLE, annotators,
generated round trips and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from imagine.curate.cli import main
from imagine.curate.formats import convert, detect_format, get_format, read_dataset, write_dataset
from imagine.curate.formats.labelstudio import (
    brush_to_coco,
    decode_brush_rle,
    file_name_from_url,
    ls_rect_to_rbox,
    pct_to_px,
    px_to_pct,
    rbox_to_ls_rect,
)
from imagine.curate.geometry import rbox_corners
from imagine.curate.model import Dataset, loads_attrs
from imagine.kernel import ConversionReport, InputError
from tests.strategies import datasets

FIX = Path(__file__).parent / "fixtures"
POLY = FIX / "samples" / "labelstudio_polygons.json"
OBB = FIX / "labelstudio" / "rotated_rectangles.json"
MIXED = FIX / "labelstudio" / "annotators_predictions.json"


# ------------------------------------------------------------------------------------------- real samples


def test_real_polygon_export_exact_pixels() -> None:
    raw = json.loads(POLY.read_text())
    ds = read_dataset(POLY)
    assert detect_format(POLY) == "labelstudio"
    assert ds.images.to_pylist()[0]["id"] == 68501
    assert ds.images.column("file_name").to_pylist() == ["image2"]  # basename of data.image "/image2"
    assert (ds.images.column("width")[0].as_py(), ds.images.column("height")[0].as_py()) == (640, 426)
    poly = raw[0]["annotations"][0]["result"][0]
    rows = ds.annotations.to_pylist()
    assert len(rows) == 1 and rows[0]["kind"] == "polygon"
    assert rows[0]["geometry"] == [[c for x, y in poly["value"]["points"] for c in (x * 640 / 100, y * 426 / 100)]]
    assert rows[0]["annotator"] == "1" and rows[0]["source_id"] == "djbpw94CXj"
    assert ds.category_names() == {1: "Airplane"}
    # The per-region choices result sharing the polygon's id stays with the polygon.
    ls = loads_attrs(rows[0]["attributes"])["ls"]
    assert ls["extra"][0]["value"]["choices"] == ["uncertain"] and ls["from_name"] == "label"
    img_attrs = loads_attrs(ds.images.column("attributes")[0].as_py())
    assert img_attrs["ls_annotations"][0]["was_cancelled"] is False
    assert img_attrs["ls_annotations"][0]["ground_truth"] is False


def test_real_rotated_rectangles_match_corners() -> None:
    """The rbox's first corner is LS's (x, y); the second is (x, y) + width along the rotation."""
    raw = json.loads(OBB.read_text())
    ds = read_dataset(OBB)
    rows = ds.annotations.to_pylist()
    results = [r for t in raw for a in t["annotations"] for r in a["result"]]
    assert len(rows) == len(results) == 5
    for row, res in zip(rows, results, strict=True):
        v, W, H = res["value"], res["original_width"], res["original_height"]
        assert row["kind"] == "rbox" and row["geometry"][0][4] == v["rotation"]
        c = rbox_corners(*row["geometry"][0])
        x, y = v["x"] * W / 100, v["y"] * H / 100
        w, h = v["width"] * W / 100, v["height"] * H / 100
        a = math.radians(v["rotation"])
        assert c[0:2] == pytest.approx([x, y], abs=1e-9)
        assert c[2:4] == pytest.approx([x + w * math.cos(a), y + w * math.sin(a)], abs=1e-9)
        assert row["geometry"][0][2:4] == [w, h]
    assert ds.category_names() == {1: "Butterfly", 2: "butterfly"}  # case kept, not merged


@pytest.mark.parametrize("src", [POLY, OBB, MIXED], ids=["polygons", "rotated", "mixed"])
def test_ls_round_trip_identical(src: Path, tmp_path: Path) -> None:
    ds = read_dataset(src)
    report = write_dataset(ds, tmp_path / "out", "labelstudio", images="none")
    assert report.lossless, report.render()
    back = read_dataset(tmp_path / "out" / "tasks.json")
    assert back.images.to_pylist() == ds.images.to_pylist()
    assert back.categories.to_pylist() == ds.categories.to_pylist()
    # Bit for bit, rotated boxes included (LS's own numbers are written back while a box is unchanged).
    assert back.annotations.to_pylist() == ds.annotations.to_pylist()
    # The written JSON keeps the LS structure: same tasks, annotations, region ids and types.
    a, b = json.loads(src.read_text()), json.loads((tmp_path / "out" / "tasks.json").read_text())
    assert [t["id"] for t in a] == [t["id"] for t in b]
    assert [t["data"] for t in a] == [t["data"] for t in b]
    for ta, tb in zip(a, b, strict=True):
        for key in ("annotations", "predictions"):
            ra = [(r["id"], r["type"]) for x in ta.get(key, []) for r in x["result"]]
            rb = [(r["id"], r["type"]) for x in tb.get(key, []) for r in x["result"]]
            assert sorted(ra) == sorted(rb)
    if src == OBB:  # the rotated rectangles' values are written exactly as Label Studio wrote them
        assert [r["value"] for t in a for x in t["annotations"] for r in x["result"]] == \
            [r["value"] for t in b for x in t["annotations"] for r in x["result"]]


def test_annotators_predictions_choices_and_names() -> None:
    report = ConversionReport()
    ds = read_dataset(MIXED, report=report)
    assert report.counts == {"ls-result-not-converted": 1}  # the textarea: kept raw, said so
    assert ds.images.column("file_name").to_pylist() == ["9f2c1a7e-cod_001.jpg", "img 002.png", "img_003.jpg"]
    assert len(ds) == 3  # the task without annotations is kept
    rows = ds.annotations.to_pylist()
    names = ds.category_names()
    assert [(names[r["category_id"]], r["kind"]) for r in rows] == [
        ("cod", "box"), ("herring", "polygon"), ("cod", "point"), ("jellyfish", "ellipse"), ("turbid", "label"),
        ("night", "label"), ("cod", "box"), ("herring", "box"), ("empty", "label")]
    assert (rows[0]["bbox_x"], rows[0]["bbox_y"], rows[0]["bbox_w"], rows[0]["bbox_h"]) == (100.0, 120.0, 200.0,
                                                                                          60.0)
    assert rows[2]["geometry"] == [[400.0, 300.0]]
    assert rows[3]["geometry"] == [[320.0, 360.0, 40.0, 15.0, 15.0]]
    assert [r["annotator"] for r in rows] == ["4"] * 6 + ["yolov8-fish"] * 2 + ["4"]
    assert [r["score"] for r in rows[6:8]] == [0.93, 0.8]  # region score, else the prediction's
    # Each region carries its annotation's flags, for consensus and cleaning.
    assert loads_attrs(rows[0]["attributes"])["ls"]["ground_truth"] is True
    assert loads_attrs(rows[0]["attributes"])["ls"]["was_cancelled"] is False
    assert "ground_truth" not in loads_attrs(rows[6]["attributes"])["ls"]  # predictions have none
    assert rows[8]["bbox_w"] == 640.0  # whole-image label sized from the choices result
    meta = loads_attrs(ds.images.column("attributes")[0].as_py())
    assert [(a["ground_truth"], a["was_cancelled"]) for a in meta["ls_annotations"]] == [(True, False), (False, True)]
    assert meta["ls_annotations"][1]["completed_by"] == {"id": 7, "email": "ana@example.org"}
    assert meta["ls_annotations"][0]["other_results"][0]["value"] == {"text": ["checked twice"]}
    assert meta["ls_data"]["site"] == "Kiel Fjord"


@pytest.mark.parametrize(("url", "name"), [
    ("/data/upload/1/abc.jpg", "abc.jpg"),
    ("https://host/x/y%20z.jpg?sig=1/2", "y z.jpg"),
    ("/data/local-files/?d=dir/sub/y.png", "y.png"),
    ("s3://bucket/a/b.tif", "b.tif"),
    ("gs://bucket/c.jpeg", "c.jpeg"),
    ("train/images/a b%20.jpg", "train/images/a b%20.jpg"),  # plain relative paths are kept whole
])
def test_image_references_to_basenames(url: str, name: str) -> None:
    assert file_name_from_url(url) == name


# ------------------------------------------------------------------------------------------- maths


def test_rotation_hand_checked() -> None:
    # 40×20 box at (10, 20) rotated 90° clockwise about its top-left: it hangs to the left of x = 10,
    # spanning x ∈ [-10, 10], y ∈ [20, 60]; centre (0, 40).
    cx, cy, w, h, a = ls_rect_to_rbox(10, 20, 40, 20, 90)
    assert (cx, cy, w, h, a) == pytest.approx((0, 40, 40, 20, 90), abs=1e-12)
    # 180°: the box flips up-left of its corner: centre (10 - 20, 20 - 10).
    assert ls_rect_to_rbox(10, 20, 40, 20, 180)[:2] == pytest.approx((-10, 10), abs=1e-12)
    # 30°: centre = corner + R(30°)·(20, 10) = (10 + 20·cos30 − 10·sin30, 20 + 20·sin30 + 10·cos30).
    c30, s30 = math.sqrt(3) / 2, 0.5
    assert ls_rect_to_rbox(10, 20, 40, 20, 30)[:2] == pytest.approx((10 + 20 * c30 - 10 * s30,
                                                                     20 + 20 * s30 + 10 * c30), abs=1e-12)
    assert ls_rect_to_rbox(10, 20, 40, 20, 0) == (30, 30, 40, 20, 0)
    for rot in (0.0, 13.7, 90.0, 181.0, 359.9):
        back = rbox_to_ls_rect(*ls_rect_to_rbox(12.3, 45.6, 7.8, 9.1, rot))
        assert back == pytest.approx((12.3, 45.6, 7.8, 9.1, rot), abs=1e-12)


@given(st.one_of(st.just(0.0), st.floats(1e-9, 5000)), st.integers(1, 10000))
@settings(max_examples=300, deadline=None)
def test_percentages_round_trip_to_the_ulp(px: float, size: int) -> None:
    # Exact whenever some float64 percentage maps back to px under LS's p * W / 100; otherwise one ulp off
    # (e.g. 301 px of 329): a property of LS's percentages.
    back = pct_to_px(px_to_pct(px, size), size)
    assert abs(back - px) <= math.ulp(px)


def test_percentages_mostly_exact() -> None:
    rng = np.random.default_rng(7)
    pxs, sizes = rng.uniform(0, 4000, 2000).round(2), rng.integers(100, 8000, 2000)
    exact = sum(pct_to_px(px_to_pct(float(p), int(s)), int(s)) == p for p, s in zip(pxs, sizes, strict=True))
    assert exact >= 1900  # measured 1919; the naive p = px * 100 / W alone gives 1870


# ------------------------------------------------------------------------------------------- brush


def _encode_brush(values: np.ndarray) -> list[int]:
    """Independent LS/rle-pack encoder using only repeat runs: 8-bit words, 16-bit run lengths."""
    bits: list[int] = []

    def put(v: int, n: int) -> None:
        bits.extend((v >> (n - 1 - i)) & 1 for i in range(n))

    put(len(values), 32)
    put(7, 5)
    for _ in range(4):
        put(15, 4)
    i = 0
    while i < len(values):
        j = i
        while j < len(values) and values[j] == values[i] and j - i < 65536:
            j += 1
        put(1, 1)
        put(0, 2)
        put(j - i - 1, 16)
        put(int(values[i]), 8)
        i = j
    bits += [0] * (-len(bits) % 8)
    return [int("".join(map(str, bits[k:k + 8])), 2) for k in range(0, len(bits), 8)]


def test_brush_rle_decodes_to_the_painted_mask(tmp_path: Path) -> None:
    h, w = 6, 9
    mask = np.zeros((h, w), dtype=np.uint8)
    mask[1:4, 2:7] = 1
    mask[5, 0] = 1
    rgba = np.zeros((h, w, 4), dtype=np.uint8)
    rgba[mask == 1] = (255, 0, 0, 255)
    rgba[0, 8] = (0, 0, 0, 100)  # faint anti-aliasing: alpha ≤ 128 is outside, as label-studio-converter
    rle = _encode_brush(rgba.reshape(-1))
    assert (decode_brush_rle(rle) == rgba.reshape(-1)).all()
    coco = brush_to_coco(rle, w, h)
    assert (mask_utils.decode({"size": [h, w], "counts": coco.encode()}) == mask).all()
    task = [{"id": 5, "data": {"image": "/data/upload/2/m.png"}, "annotations": [{"id": 1, "result": [
        {"id": "b1", "type": "brushlabels", "from_name": "tag", "to_name": "image", "original_width": w,
         "original_height": h, "value": {"format": "rle", "rle": rle, "brushlabels": ["kelp"]}}]}]}]
    src = tmp_path / "brush.json"
    src.write_text(json.dumps(task))
    ds = read_dataset(src)
    row = ds.annotations.to_pylist()[0]
    assert row["kind"] == "mask" and row["rle"] == coco and row["geometry"] == [[6.0, 9.0]]
    assert (row["bbox_x"], row["bbox_y"], row["bbox_w"], row["bbox_h"]) == (0.0, 1.0, 7.0, 5.0)
    report = write_dataset(ds, tmp_path / "out", "labelstudio", images="none")
    assert report.counts == {"mask-dropped": 1, "category-dropped": 1}  # brush is read only; "kelp" unused


# ------------------------------------------------------------------------------------------- generated


@given(ds=datasets(kinds=("box", "rbox", "polygon", "point", "ellipse", "label", "polyline"), attributes=True,
                   crowd=True, scores=True, splits=True))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_generated_round_trip(ds: Dataset, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("ls") / "out"
    report = write_dataset(ds, out, "labelstudio", images="none")
    back = read_dataset(out / "tasks.json")
    names, back_names = ds.category_names(), back.category_names()
    keep = ["id", "file_name", "width", "height", "split"]
    assert back.images.select(keep).to_pylist() == ds.images.select(keep).to_pylist()

    def key(r: dict[str, Any], nm: dict[int, str]) -> tuple[Any, ...]:
        return (r["image_id"], r["kind"], nm[r["category_id"]], r["score"] is not None, r["bbox_x"], r["bbox_y"])

    want_rows = [r for r in ds.annotations.to_pylist() if r["kind"] != "polyline"]
    for r in want_rows:
        if r["kind"] == "rbox" and r["geometry"][0][4] % 360.0 == 0:
            assert "rbox-to-box" in report.counts
            r["kind"] = "box"
            cx, cy, w, h, _ = r.pop("geometry")[0]
            r["geometry"], r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"] = None, cx - w / 2, cy - h / 2, w, h
    got = sorted(back.annotations.to_pylist(), key=lambda r: key(r, back_names))
    want = sorted(want_rows, key=lambda r: key(r, names))
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert (g["image_id"], g["kind"], back_names[g["category_id"]], g["score"]) == \
            (w["image_id"], w["kind"], names[w["category_id"]], w["score"])
        # Exact or within two ulps where no float64 percentage holds the value; rotated boxes go through
        # sin/cos (~1e-12).
        rotated = w["kind"] == "rbox" or "rbox-to-box" in report.counts
        want_g = [[v % 360.0 if w["kind"] == "rbox" and i == 4 else v for i, v in enumerate(w["geometry"][0])]] \
            if w["geometry"] is not None else None
        pairs = [(g[k], w[k], rotated or w["kind"] == "ellipse")  # envelopes of rotated shapes: via sin/cos
                 for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")]
        if want_g is not None:
            pairs += [(a, b, rotated) for a, b in zip(g["geometry"][0], want_g[0], strict=True)]
        for got_v, want_v, loose in pairs:
            if loose:
                assert math.isclose(got_v, want_v, rel_tol=1e-12, abs_tol=1e-9), (g, w)
            else:
                assert abs(got_v - want_v) <= 2 * math.ulp(max(abs(want_v), 1.0)), (g, w)
    # What LS cannot hold is reported.
    rows = ds.annotations.to_pylist()
    expect = {
        "polyline-dropped": any(r["kind"] == "polyline" for r in rows),
        "crowd-flag-dropped": any(r["iscrowd"] for r in rows),
        "attributes-dropped": any(r["attributes"] for r in rows),
        "category-dropped": len({r["category_id"] for r in rows if r["kind"] != "polyline"}) < len(names),
    }
    for code, present in expect.items():
        assert (code in report.counts) == present, (code, report.counts)


# ------------------------------------------------------------------------------------------- bad input


BAD = [
    ("truncated.json", POLY.read_text()[:300], "line"),
    ("malformed.json", '[{"id": 1, "data": {"image": "a.jpg"},}]', "line 1, column 38"),
    ("wrongtype.json", '[{"id": 1, "data": {"image": "a.jpg"}, "annotations": [{"result": [{"type": "rectanglelabels",'
                       ' "value": {"x": "ten", "y": 1, "width": 2, "height": 3}, "original_width": 10,'
                       ' "original_height": 10}]}]}]', "/0/annotations/0/result/0/value/x"),
    ("nodata.json", '[{"id": 1, "annotations": []}]', "/0"),
    ("nosize.json", '[{"id": 1, "data": {"image": "a.jpg"}, "annotations": [{"result": [{"id": "r",'
                    ' "type": "rectanglelabels", "value": {"x": 1, "y": 1, "width": 2, "height": 3}}]}]}]',
     "/0/annotations/0/result/0"),
    ("escape.json", '[{"id": 1, "data": {"image": "/data/upload/.."}}]', "/0/data/image"),
    ("missingkey.json", '[{"id": 1, "data": {"image": "a.jpg"}, "annotations": [{"result": [{"id": "r",'
                        ' "type": "polygonlabels", "value": {"polygonlabels": ["x"]}, "original_width": 10,'
                        ' "original_height": 10}]}]}]', "/0/annotations/0/result/0/value"),
]


@pytest.mark.parametrize(("name", "text", "place"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_file_and_place(tmp_path: Path, name: str, text: str, place: str) -> None:
    (tmp_path / "in").mkdir()
    src = tmp_path / "in" / name
    src.write_text(text)
    with pytest.raises(InputError) as err:
        convert(src, tmp_path / "out", "native", "labelstudio")
    assert err.value.file is not None and Path(err.value.file).name == name
    assert place in (err.value.place or ""), err.value.render()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
    result = CliRunner().invoke(main, ["convert", str(src), str(tmp_path / "out"), "--to", "native",
                                       "--from", "labelstudio"])
    assert result.exit_code == 2, result.output
    assert name in result.output and place in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_check_lists_every_schema_error(tmp_path: Path) -> None:
    check = get_format("labelstudio").check
    assert check is not None
    assert check(POLY) == [] and check(OBB) == [] and check(MIXED) == []
    src = tmp_path / "two.json"
    src.write_text('[{"data": {}, "annotations": [{"result": [{"type": 3, "value": {}}]}]}, {"data": 5}]')
    places = sorted(f.place or "" for f in check(src))
    assert places == ["/0/annotations/0/result/0/type", "/1/data"]
