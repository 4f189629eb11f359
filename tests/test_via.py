"""VIA reader/writer: the real globox VIA export, hand-built project/VIA 1/CSV files, round trips, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, assume, given, settings
from PIL import Image

from imagine.curate.cli import main
from imagine.curate.formats import convert, detect_format, read_dataset, write_dataset
from imagine.curate.model import Dataset, loads_attrs
from imagine.kernel import ConversionReport, InputError
from tests.strategies import datasets

FIX = Path(__file__).parent / "fixtures"
REAL = FIX / "samples" / "via_annotations.json"
PROJECT = FIX / "via" / "project_all_shapes.json"


def test_real_sample_reads_every_region_exactly() -> None:
    raw = json.loads(REAL.read_text())
    ds = read_dataset(REAL)
    assert detect_format(REAL) == "via"
    assert len(ds) == len(raw)
    assert ds.num_annotations == sum(len(e["regions"]) for e in raw.values())
    assert ds.info["via_label_key"] == "label_id"
    names = ds.category_names()
    files = ds.images.column("file_name").to_pylist()
    assert files == [e["filename"] for e in raw.values()]
    assert ds.images.column("source_id").to_pylist() == list(raw)
    order, starts, ends = ds.annotations_by_image()
    a = ds.annotations.to_pylist()
    for i, entry in enumerate(raw.values()):
        rows = [a[r] for r in order[starts[i]:ends[i]]]
        assert len(rows) == len(entry["regions"])
        for row, reg in zip(rows, entry["regions"], strict=True):
            sa = reg["shape_attributes"]
            assert row["kind"] == "box"
            assert (row["bbox_x"], row["bbox_y"], row["bbox_w"], row["bbox_h"]) == \
                (sa["x"], sa["y"], sa["width"], sa["height"])
            assert names[row["category_id"]] == reg["region_attributes"]["label_id"]
    # Dense category ids in order of first appearance.
    first_seen = list(dict.fromkeys(r["region_attributes"]["label_id"] for e in raw.values() for r in e["regions"]))
    assert ds.categories.column("name").to_pylist() == first_seen
    assert ds.categories.column("id").to_pylist() == list(range(1, len(first_seen) + 1))


def test_project_file_all_shapes_and_image_size_from_header() -> None:
    doc = json.loads(PROJECT.read_text())
    ds = read_dataset(PROJECT)
    assert ds.info["via_label_key"] == "species"  # the dropdown attribute, not the free-text one
    with Image.open(PROJECT.parent / "reef_001.png") as im:
        assert ds.images.column("width").to_pylist() == [im.size[0], None]
        assert ds.images.column("height").to_pylist() == [im.size[1], None]
    assert loads_attrs(ds.images.column("attributes")[0].as_py()) == {"site": "Heron Island", "depth_m": "6"}
    regions = next(iter(doc["_via_img_metadata"].values()))["regions"]
    rows = ds.annotations.to_pylist()
    assert [r["kind"] for r in rows] == ["box", "polygon", "polyline", "circle", "ellipse", "point"]
    poly = regions[1]["shape_attributes"]
    assert rows[1]["geometry"] == [[float(v) for xy in zip(poly["all_points_x"], poly["all_points_y"], strict=True)
                                    for v in xy]]
    circle = regions[3]["shape_attributes"]
    assert rows[3]["geometry"] == [[circle["cx"], circle["cy"], circle["r"]]]
    ell = regions[4]["shape_attributes"]
    assert rows[4]["geometry"][0][:4] == [ell["cx"], ell["cy"], ell["rx"], ell["ry"]]
    assert math.isclose(math.radians(rows[4]["geometry"][0][4]), ell["theta"], rel_tol=1e-15)
    assert loads_attrs(rows[0]["attributes"]) == {"occluded": {"yes": True}}
    assert loads_attrs(rows[1]["attributes"]) == {"notes": "bleached"}
    assert len(ds) == 2  # the image without regions is kept


def test_via1_csv_and_label_key_option() -> None:
    v1 = read_dataset(FIX / "via" / "via1_regions_dict.json")
    assert [r["kind"] for r in v1.annotations.to_pylist()] == ["box", "polygon"]
    assert v1.categories.column("name").to_pylist() == ["cod", "haddock"]
    csv_ds = read_dataset(FIX / "via" / "via_export.csv")
    assert detect_format(FIX / "via" / "via_export.csv") == "via"
    assert len(csv_ds) == 2 and csv_ds.num_annotations == 2
    proj = read_dataset(PROJECT)
    # The CSV holds the first and the last region of the project file: same values.
    for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h"):
        assert csv_ds.annotations.column(c)[0].as_py() == proj.annotations.column(c)[0].as_py()
    assert csv_ds.annotations.column("geometry")[1].as_py() == proj.annotations.column("geometry")[5].as_py()
    forced = read_dataset(PROJECT, label_key="notes")
    assert forced.categories.column("name").to_pylist() == ["bleached"]


def test_write_read_keeps_shapes_attributes_and_copies_images(tmp_path: Path) -> None:
    ds = read_dataset(PROJECT)
    report = write_dataset(ds, tmp_path / "out", "via", label_key="species")
    assert (tmp_path / "out" / "reef_001.png").is_file()
    assert report.counts.get("image-missing") == 1  # missing_002.jpg is not on disk, and says so
    back = read_dataset(tmp_path / "out", "via")
    cols = ["id", "image_id", "category_id", "kind", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "attributes"]
    assert back.annotations.select(cols).to_pylist()[:4] == ds.annotations.select(cols).to_pylist()[:4]
    assert back.images.select(["file_name", "width", "height", "source_id", "attributes"]).equals(
        ds.images.select(["file_name", "width", "height", "source_id", "attributes"]))


def _comparable(ds: Dataset) -> list[tuple[object, ...]]:
    names = ds.category_names()
    out: list[tuple[object, ...]] = []
    for r in ds.annotations.to_pylist():
        g = r["geometry"]
        if r["kind"] == "ellipse":  # theta goes through radians: equal to the last bits only
            g = [[*g[0][:4], round(g[0][4], 9)]]
        box = tuple(round(v, 9) for v in (r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"])) \
            if r["kind"] == "ellipse" else (r["bbox_x"], r["bbox_y"], r["bbox_w"], r["bbox_h"])
        out.append((r["id"], r["image_id"], names[r["category_id"]], r["kind"], box, g,
                    loads_attrs(r["attributes"])))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ds=datasets(kinds=("box", "polygon", "polyline", "point", "circle", "ellipse"), attributes=True))
def test_round_trip_generated(ds: Dataset, tmp_path_factory: pytest.TempPathFactory) -> None:
    attrs = [loads_attrs(a) for a in ds.annotations.column("attributes").to_pylist()]
    assume(all("label" not in a for a in attrs))
    out = tmp_path_factory.mktemp("via") / "via_region_data.json"
    report = write_dataset(ds, out, "via")
    back = read_dataset(out, "via", read_sizes=False)
    assert _comparable(back) == _comparable(ds)
    assert back.images.column("file_name").to_pylist() == ds.images.column("file_name").to_pylist()
    # What VIA cannot hold is in the report: image sizes, and category ids when they are not 1..n.
    assert report.counts.get("image-size-dropped") == len(ds)
    used = list(dict.fromkeys(ds.annotations.column("category_id").to_pylist()))
    if used != list(range(1, len(used) + 1)):
        assert "category-ids-renumbered" in report.counts
    if len(used) < ds.categories.num_rows:
        assert "category-dropped" in report.counts


def test_rotation_and_masks_are_reported(tmp_path: Path) -> None:
    ds = Dataset.from_records(
        [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
        [{"id": 1, "image_id": 1, "category_id": 3, "kind": "rbox", "geometry": [[5, 5, 4, 2, 30]],
          "bbox_x": 0, "bbox_y": 0, "bbox_w": 1, "bbox_h": 1, "iscrowd": True, "score": 0.5}],
        [{"id": 3, "name": "fish"}])
    report = write_dataset(ds, tmp_path / "v", "via", images="none")
    assert {"rotation-to-polygon", "crowd-flag-dropped", "score-dropped", "category-ids-renumbered"} <= \
        set(report.counts)
    back = read_dataset(tmp_path / "v", "via")
    assert back.annotations.column("kind").to_pylist() == ["polygon"]


# ------------------------------------------------------------------------------------------ bad input


def _bad(tmp_path: Path, name: str, text: str) -> Path:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    p = src / name
    p.write_text(text)
    return p


def _assert_nothing_left(tmp_path: Path) -> None:
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


@pytest.mark.parametrize(("name", "text", "place"), [
    # truncated: the error is on the last line there is
    ("t.json", REAL.read_text()[:500], f"line {REAL.read_text()[:500].count(chr(10)) + 1}, column"),
    ("m.json", '{"a.jpg1": {"filename": "a.jpg", "regions": [}\n', "line 1, column 46"),
    ("w.json", '{"a.jpg1": {"filename": "a.jpg", "size": 1, "regions": [{"shape_attributes": '
               '{"name": "rect", "x": [1], "y": 2, "width": 3, "height": 4}}]}}',
     "/a.jpg1/regions/0/shape_attributes/x"),
    ("p.json", '{"a.jpg1": {"filename": "../../etc/a.jpg", "size": 1, "regions": []}}', "/a.jpg1/filename"),
    ("c.csv", "filename,file_size,file_attributes,region_count,region_id,region_shape_attributes,region_attributes\n"
              'a.jpg,1,{},1,0,"{""name"":""point"",""cx"":1,""cy"":2}",{}\nb.jpg,1,{},1\n', "line 3"),
    ("j.csv", "filename,file_size,file_attributes,region_count,region_id,region_shape_attributes,region_attributes\n"
              'a.jpg,1,{},1,0,"{""name"":""point"",""cx"":1,""cy"":2}",{}\nb.jpg,1,{},1,0,"{""name"":",{}\n', "line 3"),
])
def test_bad_input_names_file_and_place(tmp_path: Path, name: str, text: str, place: str) -> None:
    src = _bad(tmp_path, name, text)
    with pytest.raises(InputError) as err:
        convert(src, tmp_path / "out", "native", "via")
    assert err.value.file is not None and Path(err.value.file).name == name
    assert place in (err.value.place or "")
    _assert_nothing_left(tmp_path)
    result = CliRunner().invoke(main, ["convert", str(src), str(tmp_path / "out"), "--to", "native", "--from", "via"])
    assert result.exit_code == 2
    assert name in result.output and place in result.output
    _assert_nothing_left(tmp_path)


def test_check_reports_schema_findings(tmp_path: Path) -> None:
    from imagine.curate.formats import get_format

    src = _bad(tmp_path, "w.json", '{"a.jpg1": {"filename": "a.jpg", "regions": [{"shape_attributes": '
                                    '{"name": "circle", "cx": 1, "cy": 2}}]}}')
    check = get_format("via").check
    assert check is not None
    findings = check(src)
    assert findings and findings[0].place == "/a.jpg1/regions/0/shape_attributes"
    assert "'r' is a required property" in findings[0].message
    assert check(REAL) == []
    assert ConversionReport().lossless


def test_project_default_filepath_is_the_image_root(tmp_path: Path) -> None:
    doc = json.loads(PROJECT.read_text())
    doc["_via_settings"]["core"]["default_filepath"] = "images/"
    (tmp_path / "images").mkdir()
    Image.new("RGB", (33, 21)).save(tmp_path / "images" / "reef_001.png")
    (tmp_path / "project.json").write_text(json.dumps(doc))
    ds = read_dataset(tmp_path / "project.json")
    assert ds.info["root"] == str((tmp_path / "images").resolve())
    assert ds.images.column("width").to_pylist() == [33, None]
    write_dataset(ds, tmp_path / "out", "via")
    assert (tmp_path / "out" / "reef_001.png").read_bytes() == (tmp_path / "images" / "reef_001.png").read_bytes()
