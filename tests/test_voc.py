"""Pascal VOC reader/writer: the real VOC sample, Aquarium round trip, options, round trips, bad XML."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagine.curate.cli import main
from imagine.curate.formats import convert, read_dataset, write_dataset
from imagine.curate.model import Dataset
from imagine.kernel import ConversionReport, InputError

FIX = Path(__file__).parent / "fixtures"
SAMPLE = FIX / "samples" / "voc_2007_000001.xml"
BOX = ["bbox_x", "bbox_y", "bbox_w", "bbox_h"]


def _boxes(ds: Dataset) -> np.ndarray:
    return np.stack([ds.annotations.column(c).to_numpy() for c in BOX], axis=1)


def test_real_voc_sample_and_identical_round_trip(tmp_path: Path) -> None:
    ds = read_dataset(SAMPLE)
    assert ds.category_names() == {1: "cat", 2: "person"}
    im = ds.images.to_pylist()[0]
    assert (im["file_name"], im["width"], im["height"]) == ("2007_000001.jpg", 20, 10)
    assert json.loads(im["attributes"]) == {"channels": 3, "folder": "VOC2007", "segmented": 1}
    a = ds.annotations.to_pylist()
    assert (a[0]["bbox_x"], a[0]["bbox_y"], a[0]["bbox_w"], a[0]["bbox_h"]) == (1.0, 2.0, 2.0, 2.0)
    assert json.loads(a[0]["attributes"]) == {"pose": "Unspecified", "truncated": 1, "difficult": 0}
    assert json.loads(a[1]["attributes"])["part"]["bndbox"]["xmin"] == 5.5
    rep = write_dataset(ds, tmp_path / "voc", "voc", images="none")
    assert rep.lossless, rep.render()
    back = read_dataset(tmp_path / "voc")
    assert back.annotations.equals(ds.annotations) and back.categories.equals(ds.categories)
    assert back.images.drop(["attributes"]).equals(ds.images.drop(["attributes"]))
    assert json.loads(back.images.column("attributes")[0].as_py()) == json.loads(im["attributes"])


def test_aquarium_to_voc_and_back(tmp_path: Path) -> None:
    ds = read_dataset(FIX / "aquarium")
    rep = write_dataset(ds, tmp_path / "voc", "voc", images="none")
    assert rep.counts == {"category-renumbered": 7}  # YOLO ids 0..6; VOC has none (1..7 via labels.txt)
    assert len(list((tmp_path / "voc" / "Annotations").rglob("*.xml"))) == 638  # background images too
    back = read_dataset(tmp_path / "voc")
    np.testing.assert_array_equal(_boxes(back), _boxes(ds))  # no rounding at all
    assert back.images.column("file_name").equals(ds.images.column("file_name"))
    assert back.images.column("split").equals(ds.images.column("split"))
    assert [n for _, n in sorted(back.category_names().items())] == [n for _, n in sorted(ds.category_names().items())]
    empty = [i for i, n in enumerate(np.bincount(ds.annotations.column("image_id").to_numpy(),
                                                 minlength=len(ds) + 1)[1:]) if n == 0]
    assert len(empty) == len(ds) - len(set(ds.annotations.column("image_id").to_pylist()))


def test_integer_and_one_based_options(tmp_path: Path) -> None:
    ds = Dataset.from_records([{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
                              [{"id": 1, "image_id": 1, "category_id": 1, "kind": "box", "bbox_x": 0.4,
                                "bbox_y": 1.0, "bbox_w": 2.2, "bbox_h": 3.0}], [{"id": 1, "name": "fish"}])
    rep = write_dataset(ds, tmp_path / "f", "voc", images="none")
    xml = (tmp_path / "f" / "Annotations" / "a.xml").read_text()
    assert "<xmin>0.4</xmin>" in xml and "<ymin>1</ymin>" in xml and "<xmax>2.6</xmax>" in xml
    assert rep.lossless
    rep = write_dataset(ds, tmp_path / "i", "voc", images="none", integers=True, one_based=True)
    xml = (tmp_path / "i" / "Annotations" / "a.xml").read_text()
    assert "<xmin>1</xmin>" in xml and "<ymin>2</ymin>" in xml and "<xmax>3</xmax>" in xml
    assert rep.counts == {"coordinates-rounded": 2}
    back = read_dataset(tmp_path / "f", one_based=False)
    np.testing.assert_array_equal(_boxes(back), _boxes(ds) + [[0, 0, 2.6 - 0.4 - 2.2, 0]])


@st.composite
def voc_sets(draw: st.DrawFn) -> Dataset:
    """What VOC can hold: boxes, names, sizes, splits (in blocks), text/number attributes, crowd."""
    n = draw(st.integers(1, 5))
    splits = sorted(draw(st.lists(st.sampled_from(["train", "val", "test", None]), min_size=n, max_size=n)),
                    key=lambda s: ["train", "val", "test", None].index(s))
    images = [{"id": i + 1, "file_name": f"sub{i % 2}/im{i}.jpg", "width": draw(st.integers(1, 4000)),
               "height": draw(st.integers(1, 4000)), "split": splits[i]} for i in range(n)]
    names = draw(st.lists(st.text("abcxyz <&>é", min_size=1, max_size=6).map(str.strip).filter(bool),
                          min_size=1, max_size=3, unique=True))
    anns: list[dict[str, Any]] = []
    for im in images:
        for _ in range(draw(st.integers(0, 3))):
            f = st.floats(-50, 5000, allow_nan=False, allow_infinity=False)
            attrs = draw(st.dictionaries(st.sampled_from(["pose", "difficult", "colour", "length"]),
                                         st.one_of(st.integers(0, 9), st.text("abcdef", min_size=1, max_size=4)),
                                         max_size=2))
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": draw(st.integers(1, len(names))),
                         "kind": "box", "bbox_x": draw(f), "bbox_y": draw(f), "bbox_w": draw(st.floats(0, 500)),
                         "bbox_h": draw(st.floats(0, 500)), "iscrowd": draw(st.booleans()),
                         "attributes": json.dumps(attrs, separators=(",", ":"), ensure_ascii=False) if attrs
                         else None})
    return Dataset.from_records(images, anns, [{"id": i + 1, "name": n} for i, n in enumerate(names)])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ds=voc_sets())
def test_hypothesis_round_trip(tmp_path_factory: pytest.TempPathFactory, ds: Dataset) -> None:
    out = tmp_path_factory.mktemp("v") / "voc"
    rep = write_dataset(ds, out, "voc", images="none")
    crowd = sum(ds.annotations.column("iscrowd").to_pylist())
    assert rep.counts == ({"crowd-flag-nonstandard": crowd} if crowd else {})
    back = read_dataset(out)
    assert back.images.select(["id", "file_name", "width", "height", "split"]).equals(
        ds.images.select(["id", "file_name", "width", "height", "split"]))
    assert back.categories.select(["id", "name"]).equals(ds.categories.select(["id", "name"]))
    ba, oa = back.annotations, ds.annotations
    for c in ["id", "image_id", "category_id", "kind", "iscrowd"]:
        assert ba.column(c).to_pylist() == oa.column(c).to_pylist(), c
    assert [json.loads(v) if v else None for v in ba.column("attributes").to_pylist()] == \
        [json.loads(v) if v else None for v in oa.column("attributes").to_pylist()]
    x0 = oa.column("bbox_x").to_numpy()
    # xmin/xmax are stored, so w = (x + w) - x may differ from w in the last bits: exact corners instead
    np.testing.assert_array_equal(ba.column("bbox_x").to_numpy(), x0)
    np.testing.assert_array_equal(ba.column("bbox_x").to_numpy() + ba.column("bbox_w").to_numpy(),
                                  x0 + oa.column("bbox_w").to_numpy())


def test_non_box_kinds_are_reported(tmp_path: Path) -> None:
    coco = read_dataset(FIX / "samples" / "coco_instances_val.json")
    rep = write_dataset(coco, tmp_path / "v", "voc", images="none")
    assert rep.counts["polygon-to-box"] == 1 and rep.counts["mask-to-box"] == 1
    assert rep.counts["category-renumbered"] == 3


# ------------------------------------------------------------------------------------------ bad input

BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<annotation><filename>&lol3;</filename></annotation>
"""


@pytest.mark.parametrize("text,expect,place", [
    (BOMB, "entity", None),
    ("<annotation>\n<filename>a.jpg</filename>\n<object><name>x</nam></object></annotation>", "malformed XML",
     "line 3"),
    ("<annotation><filename>a.jpg</filename><object>", "truncated XML", "line 1"),
    ("<annotation><filename>../../x.jpg</filename></annotation>", "outside", "annotation/filename"),
    ("<annotation><filename>a.jpg</filename><object><name>x</name><bndbox><xmin>1</xmin><ymin>a</ymin>"
     "</bndbox></object></annotation>", "must be a number", "annotation/object[1]/bndbox/ymin"),
])
def test_bad_xml(tmp_path: Path, text: str, expect: str, place: str | None) -> None:
    src = tmp_path / "src"
    (src / "Annotations").mkdir(parents=True)
    bad = src / "Annotations" / "a.xml"
    bad.write_text(text)
    out = tmp_path / "out"
    with pytest.raises(InputError) as exc:
        convert(src, out, "coco", "voc")
    assert exc.value.file == str(bad) and expect in exc.value.message
    if place:
        assert (exc.value.place or "").startswith(place)
    assert not out.exists()
    res = CliRunner().invoke(main, ["convert", str(src), str(out), "--to", "yolo", "--from", "voc"])
    assert res.exit_code == 2 and str(bad) in res.output and not out.exists()


def test_labelimg_folder_reads_image_sizes_when_missing(tmp_path: Path) -> None:
    img = sorted((FIX / "aquarium" / "valid" / "images").glob("*.jpg"))[0]
    shutil.copy(img, tmp_path / "x.jpg")
    (tmp_path / "x.xml").write_text("<annotation><folder>f</folder><filename>x.jpg</filename><object><name>fish"
                                    "</name><bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax>"
                                    "</bndbox></object></annotation>")
    rep = ConversionReport()
    ds = read_dataset(tmp_path, "voc", report=rep)
    assert rep.counts == {"size-from-image": 1}
    assert ds.images.column("width")[0].as_py() > 0
