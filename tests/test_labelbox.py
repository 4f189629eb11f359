"""Labelbox export v2 NDJSON (read only): the hand-built documented example, conversion, bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from imagine.curate.cli import main
from imagine.curate.formats import convert, detect_format, get_format, read_dataset
from imagine.curate.model import loads_attrs
from imagine.kernel import ConversionReport, InputError, UsageError

EXPORT = Path(__file__).parent / "fixtures" / "labelbox" / "export_v2.ndjson"


def _rows() -> list[dict]:
    return [json.loads(line) for line in EXPORT.read_text().splitlines() if line.strip()]


def test_documented_export_reads_objects_and_classifications() -> None:
    rows = _rows()
    report = ConversionReport()
    ds = read_dataset(EXPORT, report=report)
    assert detect_format(EXPORT) == "labelbox"
    assert len(ds) == len(rows)  # the data row without labels is kept
    imgs = ds.images.to_pylist()
    for img, row in zip(imgs, rows, strict=True):
        assert img["file_name"] == row["data_row"]["external_id"]
        assert img["source_id"] == row["data_row"]["id"]
        assert (img["width"], img["height"]) == (row["media_attributes"]["width"], row["media_attributes"]["height"])
    label = next(iter(rows[0]["projects"].values()))["labels"][0]
    objects = label["annotations"]["objects"]
    a = ds.annotations.to_pylist()
    names = ds.category_names()
    geo = [r for r in a if r["kind"] != "label"]
    # The mask is a URL to Labelbox's API: not fetched, and reported.
    assert report.counts == {"mask-dropped": 1}
    assert [names[r["category_id"]] for r in geo] == [o["name"] for o in objects if "mask" not in o]
    bb = objects[0]["bounding_box"]
    assert (geo[0]["bbox_x"], geo[0]["bbox_y"], geo[0]["bbox_w"], geo[0]["bbox_h"]) == \
        (bb["left"], bb["top"], bb["width"], bb["height"])
    assert geo[1]["geometry"] == [[v for p in objects[1]["polygon"] for v in (p["x"], p["y"])]]
    assert geo[2]["kind"] == "polyline" and geo[3]["kind"] == "point"
    assert geo[3]["geometry"] == [[objects[3]["point"]["x"], objects[3]["point"]["y"]]]
    assert loads_attrs(geo[0]["attributes"]) == {"behaviour": "feeding"}
    assert {r["annotator"] for r in a} == {label["label_details"]["created_by"]}
    assert [r["source_id"] for r in geo] == [o["feature_id"] for o in objects if "mask" not in o]
    # Global radio and checklist answers: whole-image labels under their question; free text: image attribute.
    tags = [(names[r["category_id"]], r["bbox_w"], r["bbox_h"]) for r in a if r["kind"] == "label"]
    assert tags == [("good", 2560, 1707), ("sand", 2560, 1707), ("rock", 2560, 1707)]
    sup = dict(zip(ds.categories.column("name").to_pylist(), ds.categories.column("supercategory").to_pylist(),
                   strict=True))
    assert (sup["good"], sup["sand"], sup["fish"]) == ("visibility", "substrate", None)
    assert loads_attrs(imgs[0]["attributes"])["notes"] == "strong current"
    assert loads_attrs(imgs[0]["attributes"])["site"] == "north reef"
    assert ds.categories.column("id").to_pylist() == list(range(1, ds.categories.num_rows + 1))


def test_converts_to_via_and_is_read_only(tmp_path: Path) -> None:
    ds, report = convert(EXPORT, tmp_path / "via", "via", images="none")
    back = read_dataset(tmp_path / "via", "via")
    assert back.num_annotations == sum(1 for k in ds.annotations.column("kind").to_pylist() if k != "label")
    assert "label-to-file-attribute" in report.counts and "mask-dropped" in report.counts
    with pytest.raises(UsageError):
        convert(tmp_path / "via", tmp_path / "lb", "labelbox")
    check = get_format("labelbox").check
    assert check is not None and check(EXPORT) == []


def _with(mutate: Callable[[list[dict]], None]) -> str:
    rows = _rows()
    mutate(rows)
    return "\n".join(json.dumps(r) for r in rows) + "\n"


def _set_top(rows: list[dict]) -> None:
    label = next(iter(rows[0]["projects"].values()))["labels"][0]
    label["annotations"]["objects"][0]["bounding_box"]["top"] = "high"


def _escape(rows: list[dict]) -> None:
    rows[1]["data_row"]["external_id"] = "../../../etc/passwd"


@pytest.mark.parametrize(("text", "place"), [
    (EXPORT.read_text().splitlines()[0] + "\n" + EXPORT.read_text().splitlines()[1][:120] + "\n", "line 2, column"),
    ("\n".join(EXPORT.read_text().splitlines()[:1]) + "\n{\"data_row\": 5}\n", "line 2: /data_row"),
    (_with(_set_top), "line 1: /projects/cltd3vkju021907u63w2odj69/labels/0/annotations/objects/0/bounding_box/top"),
    (_with(_escape), "line 2: /data_row"),
])
def test_bad_input_names_file_line_and_pointer(text: str, place: str, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    src = tmp_path / "src" / "export.ndjson"
    src.write_text(text)
    with pytest.raises(InputError) as err:
        convert(src, tmp_path / "out", "native", "labelbox")
    assert err.value.file is not None and Path(err.value.file).name == "export.ndjson"
    assert place in (err.value.place or "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    result = CliRunner().invoke(main, ["convert", str(src), str(tmp_path / "out"), "--to", "native"])
    assert result.exit_code == 2 and "export.ndjson" in result.output and place in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_size_from_the_image_header_when_media_attributes_are_missing(tmp_path: Path) -> None:
    from PIL import Image

    rows = _rows()
    del rows[1]["media_attributes"]
    (tmp_path / "export.ndjson").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    Image.new("RGB", (31, 17)).save(tmp_path / "reef_0002.jpg")
    ds = read_dataset(tmp_path / "export.ndjson")
    assert ds.images.column("width").to_pylist() == [2560, 31]
    assert ds.images.column("height").to_pylist() == [1707, 17]
