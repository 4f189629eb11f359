"""BIIGLE reports: the real CHUBACAPP image report, hand-built image/video reports, write-back, bad input."""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

from imagine.curate.cli import main
from imagine.curate.formats import convert, detect_format, read_dataset, write_dataset
from imagine.curate.model import Dataset, loads_attrs
from imagine.kernel import ConversionReport, InputError
from tests.strategies import datasets

FIX = Path(__file__).parent / "fixtures"
REAL = FIX / "samples" / "biigle_image_report.csv"
SEMI = FIX / "biigle" / "image_report_semicolon.csv"
VIDEO = FIX / "biigle" / "video_report.csv"


def _rows(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text("utf-8")), delimiter=delimiter))


def test_real_report_reads_with_the_right_shapes_and_values() -> None:
    rows = _rows(REAL)
    ds = read_dataset(REAL)
    assert detect_format(REAL) == "biigle"
    assert ds.num_annotations == len(rows)
    kinds = Counter(ds.annotations.column("kind").to_pylist())
    shapes = Counter(r["shape_name"] for r in rows)
    assert kinds == {"circle": shapes["Circle"], "polygon": shapes["Polygon"]}
    # One image per distinct (image_id, filename): the sample reuses one image_id for four files.
    assert len(ds) == len({(r["image_id"], r["filename"]) for r in rows})
    assert sorted(set(ds.images.column("source_id").to_pylist())) == sorted({r["image_id"] for r in rows})
    a = ds.annotations.to_pylist()
    for row, ann in zip(rows, a, strict=True):
        assert ann["id"] == int(row["annotation_label_id"])
        assert ann["group_id"] == int(row["annotation_id"])
        assert ann["category_id"] == int(row["label_id"])
        assert ann["geometry"] == [json.loads(row["points"])]
        assert ann["annotator"] == f"{row['firstname']} {row['lastname']}"
    # Coordinates outside the image are kept as written (the sample has y = -10.74).
    assert min(v for ann in a for v in ann["geometry"][0][1::2]) == -10.74
    img = {r["file_name"]: r for r in ds.images.to_pylist()}
    for row in rows:
        i = img[row["filename"]]
        attrs = json.loads(row["attributes"])
        assert (i["width"], i["height"]) == (attrs["width"], attrs["height"])
        assert (i["latitude"], i["longitude"]) == (float(row["image_latitude"]), float(row["image_longitude"]))
        assert loads_attrs(i["attributes"])["metadata"] == attrs["metadata"]
    cats = {c["id"]: c for c in ds.categories.to_pylist()}
    for row in rows:
        c = cats[int(row["label_id"])]
        assert c["name"] == row["label_name"]
        parts = row["label_hierarchy"].split(" > ")
        assert c["supercategory"] == (parts[-2] if len(parts) > 1 else None)


@pytest.mark.parametrize(("src", "delim"), [(REAL, ","), (SEMI, ";"), (VIDEO, ",")])
def test_write_back_reproduces_the_rows(src: Path, delim: str, tmp_path: Path) -> None:
    ds = read_dataset(src)
    native = tmp_path / "native"
    write_dataset(ds, native, "native", images="none")
    report = write_dataset(read_dataset(native), tmp_path / "report.csv", "biigle")
    assert report.lossless, report.render()
    assert _rows(tmp_path / "report.csv", delim) == _rows(src, delim)
    assert (tmp_path / "report.csv").read_bytes() == src.read_bytes().replace(b"\r\n", b"\n")


def test_multi_label_rotated_rectangle_and_ellipse() -> None:
    ds = read_dataset(SEMI)
    a = {r["id"]: r for r in ds.annotations.to_pylist()}
    # One annotation (102) with labels by two users: two rows, one group, both annotators kept.
    assert a[12]["group_id"] == a[13]["group_id"] == 102
    assert {a[12]["annotator"], a[13]["annotator"]} == {"Ada Lovelace", "Grace Hopper"}
    assert a[12]["kind"] == "box" and (a[12]["bbox_x"], a[12]["bbox_y"], a[12]["bbox_w"], a[12]["bbox_h"]) == \
        (100, 50, 100, 100)
    cx, cy, w, h, ang = a[14]["geometry"][0]
    assert a[14]["kind"] == "rbox"
    np.testing.assert_allclose([cx, cy, w, h, ang], [10, 20, math.sqrt(200), math.sqrt(200), 45], rtol=1e-12)
    assert (a[14]["bbox_x"], a[14]["bbox_y"], a[14]["bbox_w"], a[14]["bbox_h"]) == (0, 10, 20, 20)
    assert a[15]["kind"] == "ellipse" and a[15]["geometry"] == [[50, 50, 50, 10, 0]]
    assert a[11]["kind"] == "point" and a[16]["kind"] == "polyline" and a[17]["kind"] == "polygon"
    assert ds.images.column("latitude").to_pylist() == [52.25, None]


def test_video_report_keyframes_tracks_and_gaps() -> None:
    ds = read_dataset(VIDEO)
    a = ds.annotations.to_pylist()
    times = {r["id"]: loads_attrs(r["attributes"])["time"] for r in ds.images.to_pylist()}
    by_track: dict[int, list[float]] = {}
    for r in a:
        by_track.setdefault(r["track_id"], []).append(times[r["image_id"]])
    assert by_track == {21: [0.5, 1.25], 22: [2.0, 3.5], 23: [4.0, 6.0]}
    assert [r["kind"] for r in a] == ["point", "point", "circle", "circle", "label", "label"]
    assert loads_attrs(a[3]["attributes"])["gap_before"] is True
    assert set(ds.images.column("video").to_pylist()) == {"transect.mp4"}


def _assert_same_annotations(back: Dataset, ds: Dataset, report: ConversionReport) -> None:
    """Ids, classes and kinds identical; coordinates identical for the shapes BIIGLE stores as given,
    within 1e-6 px for those it stores as corners (box, rotated box, ellipse)."""
    assert back.num_annotations == ds.num_annotations
    for b, r in zip(back.annotations.to_pylist(), ds.annotations.to_pylist(), strict=True):
        g, kind = r["geometry"], r["kind"]
        if kind == "rbox" and b["kind"] == "box":  # unrotated (to a nanopixel): a box in BIIGLE, reported
            assert abs((g[0][4] + 180) % 360 - 180) < 1e-6 and "rbox-to-box" in report.counts
            g, kind = None, "box"
        assert (b["id"], b["image_id"], b["category_id"], b["kind"]) == (r["id"], r["image_id"], r["category_id"], kind)
        if kind in ("polygon", "polyline", "point", "circle"):
            assert b["geometry"] == g
        elif g is not None:
            np.testing.assert_allclose(b["geometry"], g, rtol=1e-9, atol=1e-6)
        box = [r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"]]
        np.testing.assert_allclose([b["bbox_x"], b["bbox_y"], b["bbox_w"], b["bbox_h"]], box, rtol=1e-9, atol=1e-6)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ds=datasets(kinds=("box", "rbox", "polygon", "polyline", "point", "circle", "ellipse", "label"),
                   attributes=True, crowd=True))
def test_round_trip_generated(ds: Dataset, tmp_path_factory: pytest.TempPathFactory) -> None:
    out = tmp_path_factory.mktemp("biigle") / "report.csv"
    report = write_dataset(ds, out, "biigle")
    annotated = set(ds.annotations.column("image_id").to_pylist())
    if not annotated:
        assert report.counts["image-without-annotations-dropped"] == len(ds)
        return
    back = read_dataset(out, "biigle")
    _assert_same_annotations(back, ds, report)
    kept = ds.images.filter(np.isin(ds.images.column("id").to_numpy(), list(annotated)))
    cols = ["id", "file_name", "width", "height"]
    assert back.images.select(cols).sort_by("id").equals(kept.select(cols).sort_by("id"))
    names = ds.category_names()
    assert all(names[c] == n for c, n in back.category_names().items())
    dropped = len(ds) - len(annotated)
    assert report.counts.get("image-without-annotations-dropped", 0) == dropped
    if any(ds.annotations.column("iscrowd").to_pylist()):
        assert "crowd-flag-dropped" in report.counts
    if any(ds.annotations.column("attributes").to_pylist()):
        assert "attributes-dropped" in report.counts


# ------------------------------------------------------------------------------------------ bad input

HEADER = REAL.read_text().splitlines()[0]
GOOD = REAL.read_text().splitlines()[1]


@pytest.mark.parametrize(("text", "place"), [
    (f"{HEADER}\n{GOOD}\n{GOOD}\n171286,791,Zoantharia\n", "line 4"),  # wrong number of fields
    (f"{HEADER}\n{GOOD}\n{GOOD[:200]}", "line 3"),  # truncated inside a quoted field
    (f"{HEADER}\n{GOOD.replace('[1245.12,1126.34,115.02]', '[1245.12,1126.34')}\n", "line 2"),  # bad points JSON
    (f"{HEADER}\n{GOOD.replace('[1245.12,1126.34,115.02]', '[1245.12,1126.34]')}\n", "line 2"),  # circle arity
    (f"{HEADER}\n{GOOD.replace('20190404T030509.627385Z.jpg', '../../x.jpg')}\n", "line 2"),
])
def test_bad_input_names_file_and_line(text: str, place: str, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    src = tmp_path / "src" / "report.csv"
    src.write_text(text)
    with pytest.raises(InputError) as err:
        convert(src, tmp_path / "out", "native", "biigle")
    assert err.value.file is not None and Path(err.value.file).name == "report.csv"
    assert err.value.place == place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    result = CliRunner().invoke(main, ["convert", str(src), str(tmp_path / "out.csv"), "--to", "biigle"])
    assert result.exit_code == 2
    assert "report.csv" in result.output and place in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_folder_of_reports_reads_as_one(tmp_path: Path) -> None:
    """BIIGLE can split a report into one CSV per label tree or user (a ZIP); the folder reads as one dataset."""
    lines = REAL.read_text().splitlines()
    (tmp_path / "a.csv").write_text("\n".join(lines[:60]) + "\n")
    (tmp_path / "b.csv").write_text("\n".join([lines[0], *lines[60:]]) + "\n")
    whole, parts = read_dataset(REAL), read_dataset(tmp_path)
    assert detect_format(tmp_path) == "biigle"
    assert parts.annotations.equals(whole.annotations)
    assert parts.images.equals(whole.images) and parts.categories.equals(whole.categories)


def test_check_reports_every_bad_row(tmp_path: Path) -> None:
    from imagine.curate.formats import get_format

    check = get_format("biigle").check
    assert check is not None and check(REAL) == []
    bad = tmp_path / "r.csv"
    bad.write_text(f"{HEADER}\n{GOOD}\n{GOOD.replace('4,Circle', '9,Blob')}\n{GOOD}\n1,2,3\n")
    findings = check(bad)
    assert [f.place for f in findings] == ["line 3", "line 5"]
    assert "unknown shape" in findings[0].message and "expected 16 fields, found 3" in findings[1].message
