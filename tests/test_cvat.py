"""CVAT XML: the real task/project/video exports, every shape kind, round trips, generated data, bad input."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from defusedxml import ElementTree as DET
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools import mask as mask_utils

from imagine.curate.cli import main
from imagine.curate.formats import convert, detect_format, get_format, read_dataset, write_dataset
from imagine.curate.formats.cvat import coco_to_cvat_rle, cvat_rle_to_coco
from imagine.curate.geometry import rbox_corners
from imagine.curate.model import Dataset, dumps_attrs, loads_attrs
from imagine.kernel import InputError
from tests.strategies import datasets

FIX = Path(__file__).parent / "fixtures"
REAL = FIX / "samples" / "cvat_images_train.xml"
SHAPES = FIX / "cvat" / "all_shapes.xml"
PROJECT = FIX / "cvat" / "project_annotations.xml"
VIDEO = FIX / "cvat" / "video_annotations.xml"


def _same(a: Dataset, b: Dataset) -> None:
    assert a.images.to_pylist() == b.images.to_pylist()
    assert a.annotations.to_pylist() == b.annotations.to_pylist()
    assert a.categories.to_pylist() == b.categories.to_pylist()


def _round_trip(ds: Dataset, tmp: Path) -> tuple[Dataset, Any]:
    report = write_dataset(ds, tmp, "cvat", images="none")
    return read_dataset(tmp, "cvat"), report


# ------------------------------------------------------------------------------------------- real samples


def test_real_task_export_reads_every_shape_and_attribute() -> None:
    root = DET.parse(str(REAL)).getroot()
    ds = read_dataset(REAL)
    assert detect_format(REAL) == "cvat"
    assert ds.images.column("file_name").to_pylist() == [im.get("name") for im in root.findall("image")]
    assert ds.images.column("id").to_pylist() == [0, 1]
    assert ds.images.column("width").to_pylist() == [8, 10]
    rows = ds.annotations.to_pylist()
    assert [r["kind"] for r in rows] == ["box", "polyline", "polygon", "point"]
    box = rows[0]
    assert (box["bbox_x"], box["bbox_y"], box["bbox_w"], box["bbox_h"]) == (0.0, 2.0, 4.0, 2.0)
    assert loads_attrs(box["attributes"]) == {"occluded": True, "z_order": 1, "a1": "true", "a2": "v3",
                                              "a3": "0003", "a4": "2.4"}
    assert rows[1]["geometry"] == [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]]
    assert rows[1]["category_id"] is None  # label="" in the file: no category, not a made-up one
    assert rows[3]["geometry"] == [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]
    assert ds.category_names() == {1: "label1", 2: "label2"}
    spec = loads_attrs(ds.categories.column("attributes")[0].as_py())["cvat_attributes"]
    assert [a["name"] for a in spec] == ["a1", "a2", "a3", "a4"]
    assert spec[3] == {"name": "a4", "input_type": "number", "default_value": "0", "values": "2.4 1 -5.6"}


def test_real_task_export_round_trips_identically(tmp_path: Path) -> None:
    ds = read_dataset(REAL)
    back, report = _round_trip(ds, tmp_path / "out")
    assert report.lossless
    _same(ds, back)
    # The written file carries the meta labels with their attribute specs and every shape element.
    out = DET.parse(str(tmp_path / "out" / "annotations.xml")).getroot()
    src = DET.parse(str(REAL)).getroot()
    assert [lab.findtext("name") for lab in out.iter("label")] == [lab.findtext("name") for lab in src.iter("label")]
    for a, b in zip(src.iter("attribute"), out.iter("attribute"), strict=True):
        assert [(c.tag, c.text) for c in a] == [(c.tag, c.text) for c in b]
        assert a.get("name") == b.get("name") and a.text == b.text
    assert [e.tag for im in out.findall("image") for e in im] == [e.tag for im in src.findall("image") for e in im]


def test_all_shapes_exactly_as_written() -> None:
    ds = read_dataset(SHAPES)
    rows = ds.annotations.to_pylist()
    kinds = [r["kind"] for r in rows]
    assert kinds == ["rbox", "ellipse", "polygon", "mask", "polyline", "point", "keypoints", "label", "box"]
    rb = rows[0]
    # Two-decimal values kept exactly: centre/size from the corners as written, rotation as written.
    assert rb["geometry"] == [[(1.25 + 9.75) / 2, (2.5 + 6.13) / 2, 9.75 - 1.25, 6.13 - 2.5, 30.5]]
    corners = rbox_corners(*rb["geometry"][0])
    assert rb["bbox_x"] == pytest.approx(min(corners[0::2]), abs=1e-12)
    assert rb["group_id"] == 1 and rows[1]["group_id"] == 1 and rows[2]["group_id"] is None
    assert loads_attrs(rb["attributes"]) == {"occluded": False, "z_order": 0, "source": "manual",
                                             "confidence": "high"}
    assert rows[1]["geometry"] == [[8.1, 6.2, 3.33, 1.1, 12.0]]
    assert rows[2]["geometry"] == [[0.1, 0.2, 5.55, 0.2, 5.55, 4.44, 0.1, 4.44]]
    # Mask: CVAT's crop RLE (rows 2..4, columns 3..6) decoded by hand.
    mask = mask_utils.decode({"size": [12, 16], "counts": rows[3]["rle"].encode()})
    expected = np.zeros((12, 16), dtype=np.uint8)
    for y, x in [(2, 4), (2, 5), (3, 3), (3, 4), (3, 5), (3, 6), (4, 5)]:
        expected[y, x] = 1
    assert (mask == expected).all()
    assert rows[3]["geometry"] == [[12.0, 16.0]]
    assert (rows[3]["bbox_x"], rows[3]["bbox_y"], rows[3]["bbox_w"], rows[3]["bbox_h"]) == (3.0, 2.0, 4.0, 3.0)
    assert rows[6]["geometry"] == [[2.5, 3.5, 1.0, 7.25, 3.75, 0.0]]  # occluded → 1, outside → 0
    kp_cat = ds.categories.to_pylist()[2]
    assert kp_cat["name"] == "fish-kp" and kp_cat["keypoints"] == ["head", "tail"]
    assert rows[7]["kind"] == "label" and (rows[7]["bbox_w"], rows[7]["bbox_h"]) == (16.0, 12.0)
    assert ds.images.column("split").to_pylist() == ["train", "val", "val"]
    assert len(ds) == 3  # the image without shapes is kept


@pytest.mark.parametrize("src", [SHAPES, PROJECT], ids=["all_shapes", "project"])
def test_round_trip_every_shape_attribute_and_group(src: Path, tmp_path: Path) -> None:
    ds = read_dataset(src)
    back, report = _round_trip(ds, tmp_path / "out")
    assert report.lossless, report.render()
    _same(ds, back)
    assert (back.info.get("cvat") or {}).get("meta") == (ds.info.get("cvat") or {}).get("meta")


def test_project_export_with_repeated_frame_ids() -> None:
    ds = read_dataset(PROJECT)
    assert ds.images.column("id").to_pylist() == [0, 1, 2, 3, 4, 5]  # unique ids...
    assert ds.images.column("source_id").to_pylist() == ["0", "1"] * 3  # ...and CVAT's own kept
    assert ds.images.column("split").to_pylist() == ["Test", "Test", "Train", "Train", "Validation", "Validation"]
    assert loads_attrs(ds.images.column("attributes")[0].as_py()) == {"task_id": "39"}
    assert ds.info["cvat"]["meta"] == "project"


def test_images_without_ids_get_unique_ones(tmp_path: Path) -> None:
    src = tmp_path / "a.xml"
    src.write_text("<annotations><version>1.1</version><image name='a.jpg'/><image id='0' name='b.jpg'/>"
                   "</annotations>")
    ds = read_dataset(src)
    assert ds.images.column("id").to_pylist() == [0, 1]
    assert ds.images.column("source_id").to_pylist() == [None, "0"]


def test_video_tracks_frames_outside_and_skeletons() -> None:
    ds = read_dataset(VIDEO)
    img = ds.images.to_pylist()
    assert [i["frame"] for i in img] == [10, 13, 16, 19]  # start 10, stop 19, step=3
    assert {i["video"] for i in img} == {"t.mp4"} and {(i["width"], i["height"]) for i in img} == {(25, 20)}
    rows = ds.annotations.to_pylist()
    names = ds.category_names()
    # outside="1" shapes are not objects: track 0 has one box, track 1 one point set, track 2 one polyline.
    got = [(r["track_id"], r["image_id"], names[r["category_id"]], r["kind"]) for r in rows]
    assert got == [(0, 10, "II", "box"), (1, 10, "klhg", "point"), (2, 13, "II", "polyline"),
                   (3, 10, "skeleton", "keypoints"), (3, 13, "skeleton", "keypoints"),
                   (3, 16, "skeleton", "keypoints")]
    assert loads_attrs(rows[1]["attributes"])["hgl"] == "hgkf"
    assert loads_attrs(rows[0]["attributes"])["keyframe"] is True
    assert loads_attrs(rows[4]["attributes"])["keyframe"] is False
    # Keypoint "3" goes outside at frame 13 (v = 0); the others stay visible.
    assert rows[3]["geometry"][0][2::3] == [2.0, 2.0, 2.0, 2.0]
    assert rows[4]["geometry"][0][2::3] == [2.0, 2.0, 0.0, 2.0]
    assert ds.categories.to_pylist()[3]["keypoints"] == ["1", "2", "3", "4"]


def test_video_round_trip_and_images_mode(tmp_path: Path) -> None:
    ds = read_dataset(VIDEO)
    assert ds.annotations.to_pylist()[5]["geometry"][0][6:9] == [83.27, 106.61, 0.0]  # outside, where it was
    report = write_dataset(ds, tmp_path / "video", "cvat", images="none")  # auto: one video with tracks
    assert report.lossless, report.render()
    back = read_dataset(tmp_path / "video")
    _same(ds, back)
    out = DET.parse(str(tmp_path / "video" / "annotations.xml")).getroot()
    assert out.findtext("meta/task/mode") == "interpolation" and out.findtext("meta/source") == "t.mp4"
    assert out.findtext("meta/task/frame_filter") == "step=3"
    # Each track ends with an outside keyframe on the next frame, as CVAT expects.
    assert [(b.get("frame"), b.get("outside")) for b in out.find("track")] == [("10", "0"), ("13", "1")]
    report = write_dataset(ds, tmp_path / "images", "cvat", images="none", mode="images")
    assert report.counts["track-dropped"] == 6
    assert report.counts["image-metadata-dropped"] == 8  # video + frame of 4 frames
    assert read_dataset(tmp_path / "images").num_annotations == ds.num_annotations


# ------------------------------------------------------------------------------------------- masks, precision


@given(st.integers(1, 12), st.integers(1, 12), st.data())
@settings(max_examples=40, deadline=None)
def test_mask_rle_conversion_is_exact(h: int, w: int, data: st.DataObject) -> None:
    bits = data.draw(st.lists(st.booleans(), min_size=h * w, max_size=h * w))
    m = np.asfortranarray(np.array(bits, dtype=np.uint8).reshape(h, w))
    rle = mask_utils.encode(m)["counts"].decode()
    res = coco_to_cvat_rle(rle, h, w)
    if not m.any():
        assert res is None
        return
    assert res is not None
    runs, left, top, cw, ch = res
    assert sum(runs) == cw * ch
    assert cvat_rle_to_coco(runs, left, top, cw, ch, w, h) == rle


def test_full_precision_written_and_rotated_corners_exact(tmp_path: Path) -> None:
    ds = Dataset.from_records(
        [{"id": 0, "file_name": "a.jpg", "width": 100, "height": 80}],
        [{"id": 1, "image_id": 0, "category_id": 1, "kind": "box", "bbox_x": 0.1, "bbox_y": 1 / 3, "bbox_w": 10.5,
          "bbox_h": 2 / 7},
         {"id": 2, "image_id": 0, "category_id": 1, "kind": "rbox", "bbox_x": 0.0, "bbox_y": 0.0, "bbox_w": 1.0,
          "bbox_h": 1.0, "geometry": [[0.39999999999999997, 0.30000000000000004, 0.6, 0.7, 12.345678901234567]]}],
        [{"id": 1, "name": "fish"}])
    back, report = _round_trip(ds, tmp_path / "o")
    a, b = ds.annotations.to_pylist(), back.annotations.to_pylist()
    assert b[0]["bbox_x"] == 0.1 and b[0]["bbox_w"] == 10.5 and b[0]["bbox_y"] == 1 / 3
    # No pair of float64 corners has exactly 2/7 between them near 1/3: within one ulp of the corner, which
    # CVAT's corner form imposes (written at full precision, nothing to report).
    assert abs(b[0]["bbox_h"] - 2 / 7) <= math.ulp(1 / 3 + 2 / 7) and b[0]["bbox_h"] != 2 / 7
    assert report.lossless
    assert b[1]["geometry"] == a[1]["geometry"]  # the rotated box comes back bit for bit
    text = (tmp_path / "o" / "annotations.xml").read_text()
    assert "0.3333333333333333" in text


# ------------------------------------------------------------------------------------------- generated


def _expected(ds: Dataset) -> tuple[Dataset, set[str]]:
    """What CVAT gives back for a generated dataset, and the report codes that must say why."""
    codes: set[str] = set()
    rows = ds.annotations.to_pylist()
    order, starts, ends = ds.annotations_by_image()
    out = []
    for r in [rows[i] for i in order]:
        r = dict(r)
        attrs = loads_attrs(r["attributes"])
        new = {}
        for k, v in attrs.items():
            if not isinstance(v, str):
                codes.add("attribute-to-text")
                v = ("true" if v else "false") if isinstance(v, bool) else str(v)
            new[k] = v
        r["attributes"] = dumps_attrs(new)
        if r["kind"] == "rbox" and r["geometry"][0][4] % 360.0 == 0:
            codes.add("rbox-to-box")
            cx, cy, w, h, _ = r["geometry"][0]
            r["kind"], r["geometry"] = "box", None
            r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"] = cx - w / 2, cy - h / 2, w, h
        if r["kind"] == "rbox":
            g = list(r["geometry"][0])
            if g[4] % 360.0 != g[4]:
                codes.add("rotation-normalised")
            g[4] %= 360.0
            r["geometry"] = [g]
            corners = rbox_corners(*g)
            xs, ys = corners[0::2], corners[1::2]
            r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"] = min(xs), min(ys), max(xs) - min(xs), \
                max(ys) - min(ys)
        if r["kind"] == "circle":
            codes.add("circle-to-ellipse")
            cx, cy, rad = r["geometry"][0]
            r["kind"], r["geometry"] = "ellipse", [[cx, cy, rad, rad, 0.0]]
        if r["iscrowd"]:
            codes.add("crowd-flag-dropped")
        r["iscrowd"] = None
        if r["score"] is not None:
            codes.add("score-dropped")
        r["score"] = None
        r["id"] = len(out) + 1
        out.append(r)
    return Dataset.from_records(ds.images.to_pylist(), out, ds.categories.to_pylist()), codes


@given(ds=datasets(kinds=("box", "rbox", "polygon", "polyline", "point", "ellipse", "circle", "label"),
                   attributes=True, crowd=True, scores=True, splits=True, category_ids="dense"))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_generated_round_trip(ds: Dataset, tmp_path_factory: pytest.TempPathFactory) -> None:
    # CVAT has no category ids: generated ids are 1..n so that they survive.
    cats = ds.categories.to_pylist()
    remap = {c["id"]: i + 1 for i, c in enumerate(cats)}
    ann = [dict(a, category_id=remap[a["category_id"]]) for a in ds.annotations.to_pylist()]
    ds = Dataset.from_records(ds.images.to_pylist(), ann, [dict(c, id=remap[c["id"]]) for c in cats])
    back, report = _round_trip(ds, tmp_path_factory.mktemp("cvat") / "out")
    exp, codes = _expected(ds)
    assert back.images.to_pylist() == exp.images.to_pylist()
    assert back.categories.to_pylist() == exp.categories.to_pylist()
    got, want = back.annotations.to_pylist(), exp.annotations.to_pylist()
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        if w["kind"] == "box" and "rbox-to-box" not in report.counts:
            # Top-left exact; sizes exact or within one ulp of the far corner (CVAT stores corners).
            assert (g["bbox_x"], g["bbox_y"]) == (w["bbox_x"], w["bbox_y"])
            for k, c in (("bbox_w", "bbox_x"), ("bbox_h", "bbox_y")):
                assert abs(g[k] - w[k]) <= math.ulp(w[c] + w[k]), (k, g[k], w[k])
                g[k] = w[k]
        elif w["kind"] in ("rbox", "box"):  # envelope recomputed from the geometry
            for k in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"):
                assert math.isclose(g[k], w[k], rel_tol=1e-12, abs_tol=1e-9)
                g[k] = w[k]
            if w["kind"] == "rbox":  # centre and size exact, or within an ulp of the corners
                np.testing.assert_allclose(g["geometry"], w["geometry"], rtol=0, atol=1e-9)
                g["geometry"] = w["geometry"]
        assert g == w
    assert codes <= set(report.counts), (codes, report.counts)
    assert set(report.counts) <= codes


# ------------------------------------------------------------------------------------------- bad input


BAD = [
    ("truncated.xml", REAL.read_text()[:700], "line"),
    ("malformed.xml", "<annotations><version>1.1</version><image id='0' name='a.jpg'></annotations>", "line 1"),
    ("badnum.xml", "<annotations><version>1.1</version><image id='0' name='a.jpg' width='8' height='8'>"
                   "<box label='x' xtl='one' ytl='0' xbr='2' ybr='2'/></image></annotations>",
     "/annotations/image[1]/box[1]"),
    ("badpoints.xml", "<annotations><version>1.1</version><image id='0' name='a.jpg'>"
                      "<polygon label='x' points='1,2;3'/></image></annotations>", "/annotations/image[1]/polygon[1]"),
    ("escape.xml", "<annotations><version>1.1</version><image id='0' name='../../etc/passwd'/></annotations>",
     "/annotations/image[1]"),
    ("badmask.xml", "<annotations><version>1.1</version><image id='0' name='a.jpg' width='4' height='4'>"
                    "<mask label='x' rle='1, 2' left='0' top='0' width='2' height='2'/></image></annotations>",
     "/annotations/image[1]/mask[1]"),
]


def _nothing_left(tmp: Path) -> None:
    assert sorted(p.name for p in tmp.iterdir() if p.name != "in") == []


@pytest.mark.parametrize(("name", "text", "place"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_file_and_place(tmp_path: Path, name: str, text: str, place: str) -> None:
    (tmp_path / "in").mkdir()
    src = tmp_path / "in" / name
    src.write_text(text)
    with pytest.raises(InputError) as err:
        convert(src, tmp_path / "out", "native", "cvat")
    assert err.value.file is not None and Path(err.value.file).name == name
    assert place in (err.value.place or "")
    _nothing_left(tmp_path)
    result = CliRunner().invoke(main, ["convert", str(src), str(tmp_path / "out"), "--to", "native",
                                       "--from", "cvat"])
    assert result.exit_code == 2, result.output
    assert name in result.output and place in result.output
    assert "Traceback" not in result.output
    _nothing_left(tmp_path)


def test_entity_expansion_bomb_is_refused(tmp_path: Path) -> None:
    bomb = FIX / "cvat" / "bomb.xml"
    with pytest.raises(InputError) as err:
        convert(bomb, tmp_path / "out", "native", "cvat")
    assert err.value.file == str(bomb) and "refused" in err.value.message
    assert not (tmp_path / "out").exists()
    result = CliRunner().invoke(main, ["convert", str(bomb), str(tmp_path / "out"), "--to", "native"])
    assert result.exit_code == 2 and "bomb.xml" in result.output
    assert not (tmp_path / "out").exists()


def test_check_finds_the_bad_element(tmp_path: Path) -> None:
    check = get_format("cvat").check
    assert check is not None
    assert check(REAL) == []
    src = tmp_path / "b.xml"
    src.write_text(BAD[2][1].replace("</image>", "<polygon label='x' points='1,2;3'/><box label='x' xtl='0' "
                                                 "ytl='0' xbr='2' ybr='2'/></image><image id='1'/>"))
    findings = check(src)  # every bad element at once, not just the first
    assert [f.place for f in findings] == ["/annotations/image[1]/box[1]", "/annotations/image[1]/polygon[2]",
                                           "/annotations/image[2]"]
    assert "xtl" in findings[0].message and "name" in findings[2].message
    assert check(VIDEO) == [] and check(SHAPES) == []


def test_writes_images_and_single_file(tmp_path: Path) -> None:
    from PIL import Image

    src = tmp_path / "src"
    (src / "images" / "reef").mkdir(parents=True)
    for n, size in (("a", (16, 12)), ("b", (10, 10)), ("c", (10, 10))):
        Image.new("RGB", size).save(src / "images" / "reef" / f"{n}.jpg")
    (src / "annotations.xml").write_bytes(SHAPES.read_bytes())
    ds = read_dataset(src)
    assert ds.info["root"] == str((src / "images").resolve())
    write_dataset(ds, tmp_path / "out", "cvat")
    assert sorted(p.name for p in (tmp_path / "out" / "images" / "reef").iterdir()) == ["a.jpg", "b.jpg", "c.jpg"]
    write_dataset(ds, tmp_path / "one.xml", "cvat")
    _same(ds, read_dataset(tmp_path / "one.xml"))


@st.composite
def videos(draw: st.DrawFn) -> Dataset:
    """Frames of one video (evenly spaced) with box tracks that may leave and come back."""
    step, start, n = draw(st.integers(1, 3)), draw(st.integers(0, 20)), draw(st.integers(1, 6))
    frames = [start + k * step for k in range(n)]
    images = [{"id": f, "file_name": f"frame_{f:06d}.PNG", "width": 64, "height": 48, "video": "v.mp4",
               "frame": f} for f in frames]
    anns = []
    for tid in range(draw(st.integers(1, 3))):
        cat = draw(st.integers(1, 2))
        for f in draw(st.lists(st.sampled_from(frames), min_size=1, unique=True).map(sorted)):
            x, y = draw(st.integers(0, 40)) / 4, draw(st.integers(0, 30)) / 4
            anns.append({"id": len(anns) + 1, "image_id": f, "category_id": cat, "kind": "box", "bbox_x": x,
                         "bbox_y": y, "bbox_w": 8.5, "bbox_h": 4.25, "track_id": tid,
                         "attributes": dumps_attrs({"occluded": draw(st.booleans()), "keyframe": True,
                                                    "z_order": 0, "behaviour": draw(st.sampled_from(["swim",
                                                                                                     "rest"]))})})
    return Dataset.from_records(images, anns, [{"id": 1, "name": "cod"}, {"id": 2, "name": "eel"}])


@given(ds=videos())
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_generated_video_round_trip(ds: Dataset, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("video") / "out"
    report = write_dataset(ds, out, "cvat", images="none")
    assert report.lossless, report.render()
    back = read_dataset(out, "cvat")
    assert back.images.to_pylist() == ds.images.to_pylist()
    assert back.annotations.to_pylist() == ds.annotations.to_pylist()


def test_from_real_coco_attributes_become_cvat_attributes(tmp_path: Path) -> None:
    """Datumaro's COCO keeps tool attributes in a nested "attributes" object: they become CVAT attributes."""
    ds = read_dataset(FIX / "samples" / "coco_instances_val.json", "coco")
    report = write_dataset(ds, tmp_path / "out", "cvat", images="none")
    back = read_dataset(tmp_path / "out")
    assert loads_attrs(back.annotations.column("attributes")[0].as_py()) == {"x": "1", "y": "hello"}
    assert "attribute-to-text" in report.counts and "crowd-flag-dropped" in report.counts
    assert back.annotations.column("kind").to_pylist() == ds.annotations.column("kind").to_pylist()
    assert back.category_names() == {1: "a", 2: "b", 3: "c"} and report.counts["category-id-dropped"] == 3
