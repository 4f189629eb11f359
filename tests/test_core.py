"""Kernel, dataset model, native form, statistics, validation and the convert/stats/validate CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from PIL import Image

from imagine.curate.cli import main
from imagine.curate.formats import read_dataset, write_dataset
from imagine.curate.manifest import dataset_hash, split_manifest, verify_manifest, with_checksums
from imagine.curate.model import Dataset
from imagine.curate.stats import dataset_stats
from imagine.curate.validate import validate_source
from imagine.kernel import ConversionReport, InputError, atomic_dir, atomic_write, image_size, safe_join

from .strategies import datasets

ALL_KINDS = ("box", "rbox", "polygon", "polyline", "point", "circle", "ellipse", "label")


# ------------------------------------------------------------------ kernel
def test_safe_join_refuses_escapes(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "a/b.jpg") == (tmp_path / "a/b.jpg").resolve()
    for bad in ("../x.jpg", "/etc/passwd", "a/../../x", "C:\\x.jpg", "a\x00b"):
        with pytest.raises(InputError) as exc:
            safe_join(tmp_path, bad, source="ann.json", place="/images/0/file_name")
        assert "ann.json" in str(exc.value) and "/images/0/file_name" in str(exc.value)


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_write(target) as fh:
        fh.write("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
    with atomic_write(target) as fh:
        fh.write("whole")
    assert target.read_text() == "whole"


def test_atomic_dir_keeps_previous_output_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_dir(out) as d:
        (d / "a.txt").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(out) as d:
        (d / "b.txt").write_text("2")
        raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["a.txt"]


def test_image_size_and_decompression_bomb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "im.png"
    Image.new("L", (37, 21)).save(p)
    assert image_size(p) == (37, 21)
    import imagine.kernel as k

    monkeypatch.setattr(k, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(InputError, match="decompression bomb") as exc:
        image_size(p)
    assert str(p) in str(exc.value)
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(InputError, match="unreadable image"):
        image_size(tmp_path / "bad.jpg")


def test_conversion_report_counts_and_examples() -> None:
    r = ConversionReport("coco", "yolo")
    assert r.lossless
    for i in range(8):
        r.add("crowd-flag-dropped", "YOLO has no crowd flag", i)
    d = r.to_dict()
    assert not d["lossless"] and d["losses"][0]["count"] == 8 and len(d["losses"][0]["examples"]) == 5
    assert "crowd-flag-dropped: 8" in r.render()


# ------------------------------------------------------------------ model
def test_from_columns_fills_nulls_and_checks_lengths() -> None:
    ds = Dataset.from_columns(images={"id": [1, 2], "file_name": ["a.jpg", "b.jpg"]})
    assert ds.images.column("width").null_count == 2
    assert ds.annotations.num_rows == 0
    with pytest.raises(ValueError, match="different lengths"):
        Dataset.from_columns(images={"id": [1, 2], "file_name": ["a.jpg"]})
    with pytest.raises(ValueError, match="unknown"):
        Dataset.from_columns(images={"id": [1], "file_name": ["a"], "colour": ["red"]})


def test_annotations_by_image_groups_in_source_order() -> None:
    ds = Dataset.from_columns(
        images={"id": [10, 5, 7], "file_name": ["a", "b", "c"]},
        annotations={"id": [1, 2, 3, 4, 5], "image_id": [5, 10, 5, 99, 10], "kind": ["box"] * 5})
    order, starts, ends = ds.annotations_by_image()
    groups = [order[s:e].tolist() for s, e in zip(starts, ends, strict=True)]
    assert groups == [[1, 4], [0, 2], []]  # rows of image 10, 5, 7; image 99 does not exist


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets(kinds=ALL_KINDS, attributes=True, crowd=True, scores=True, splits=True))
def test_native_round_trip_is_identical(tmp_path_factory: pytest.TempPathFactory, ds: Dataset) -> None:
    out = tmp_path_factory.mktemp("native") / "ds"
    report = write_dataset(ds, out, "native", images="none")
    assert report.lossless
    back = read_dataset(out)
    assert back.equals(ds)
    assert {k: v for k, v in back.info.items() if k not in ("root", "source_format")} == ds.info


def test_native_bad_input(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text('{"format": "imagine-native", "version": 1')
    with pytest.raises(InputError, match="malformed JSON") as exc:
        read_dataset(tmp_path, "native")
    assert "dataset.json" in str(exc.value)
    (tmp_path / "dataset.json").write_text('{"format": "imagine-native", "version": 1}')
    with pytest.raises(InputError, match="missing") as exc:
        read_dataset(tmp_path, "native")
    assert "images.parquet" in str(exc.value)


# ------------------------------------------------------------------ manifest
def test_split_manifest_and_hash_follow_the_files(tmp_path: Path) -> None:
    for n in ("a.png", "b.png"):
        Image.new("L", (4, 4), color=10 if n == "a.png" else 20).save(tmp_path / n)
    ds = Dataset.from_columns(images={"id": [1, 2], "file_name": ["a.png", "b.png"], "split": ["train", "test"]},
                              info={"root": str(tmp_path)})
    m = split_manifest(ds)
    assert [r["file"] for r in m["splits"]["train"]] == ["a.png"]
    assert verify_manifest(m, tmp_path) == []
    h1 = dataset_hash(ds)
    assert dataset_hash(with_checksums(ds)) == h1
    Image.new("L", (4, 4), color=30).save(tmp_path / "b.png")
    assert verify_manifest(m, tmp_path) == ["test: b.png has changed"]
    assert dataset_hash(ds) != h1


# ------------------------------------------------------------------ stats and validate (model level)
def _tiny(tmp_path: Path) -> Dataset:
    Image.new("RGB", (100, 50)).save(tmp_path / "a.jpg")
    return Dataset.from_columns(
        images={"id": [1, 2], "file_name": ["a.jpg", "missing.jpg"], "width": [100, 10], "height": [60, 10],
                "split": ["train", "val"]},
        annotations={"id": [1, 2, 3, 3, 5], "image_id": [1, 1, 1, 7, 1], "category_id": [1, 4, 9, 1, 5],
                     "kind": ["box"] * 5, "bbox_x": [10.0, 90.0, 200.0, 1.0, 3.0],
                     "bbox_y": [5.0, 5.0, 0.0, 1.0, 3.0], "bbox_w": [20.0, 20.0, 5.0, 0.0, 0.0],
                     "bbox_h": [10.0, 10.0, 5.0, 1.0, 4.0]},
        categories={"id": [1, 4, 5], "name": ["fish", "shark", "ray"]}, info={"root": str(tmp_path)})


def test_stats_counts_per_class_and_split(tmp_path: Path) -> None:
    s = dataset_stats(_tiny(tmp_path))
    fish = next(r for r in s["per_class"] if r["name"] == "fish")
    assert fish["annotations"] == 2 and fish["per_split"] == {"train": 1, "val": 0}
    assert s["images_per_split"] == {"train": 1, "val": 1}
    assert s["box_area_buckets"]["small"] == 5


def test_validate_finds_every_kind_of_problem(tmp_path: Path) -> None:
    ds = _tiny(tmp_path)
    write_dataset(ds, tmp_path / "native", "native", images="none")
    # point the native copy's images at the folder holding a.jpg
    header = json.loads((tmp_path / "native/dataset.json").read_text())
    assert header["format"] == "imagine-native"
    findings = validate_source(tmp_path / "native")
    codes = sorted(f.code for f in findings)
    # native images live under native/images, which we did not copy: both images are missing there
    assert codes.count("image-missing") == 2
    assert {"duplicate-id", "unknown-image", "unknown-category", "box-outside-image", "box-exceeds-image",
            "box-degenerate"} <= set(codes)
    for f in findings:
        assert f.file


# ------------------------------------------------------------------ CLI
def test_cli_convert_stats_validate_on_bundled_sample(tmp_path: Path) -> None:
    from imagine.curate.demo import sample_path

    runner = CliRunner()
    with sample_path() as src:
        r = runner.invoke(main, ["convert", str(src), str(tmp_path / "n"), "--to", "native", "--json",
                                 "--report", str(tmp_path / "report.json")])
        assert r.exit_code == 0, r.output
        report = json.loads(r.output)
        assert report["lossless"] and report["stats"]["images"] == 23
        assert json.loads((tmp_path / "report.json").read_text()) == report
        r = runner.invoke(main, ["stats", str(tmp_path / "n"), "--json"])
        assert r.exit_code == 0 and json.loads(r.output)["annotations"] == report["stats"]["annotations"]
        r = runner.invoke(main, ["validate", str(tmp_path / "n")])
        assert r.exit_code in (0, 1), r.output
        assert "error(s)" in r.output


def test_cli_errors_are_one_paragraph_with_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["convert", str(tmp_path / "nope"), str(tmp_path / "out"), "--to", "native"])
    assert r.exit_code == 2 and "no such file or folder" in r.output and "Traceback" not in r.output
    (tmp_path / "x.bin").write_bytes(os.urandom(64))
    r = runner.invoke(main, ["stats", str(tmp_path / "x.bin")])
    assert r.exit_code == 2 and "--from" in r.output
    r = runner.invoke(main, ["convert", str(tmp_path / "x.bin"), str(tmp_path / "out"), "--to", "nosuch",
                             "--from", "native"])
    assert r.exit_code == 2 and "unknown format" in r.output
    assert not (tmp_path / "out").exists()


def test_filter_images_drops_their_annotations(tmp_path: Path) -> None:
    ds = _tiny(tmp_path)
    kept = ds.filter_images(np.array([True, False]))
    assert kept.images.column("id").to_pylist() == [1]
    assert set(kept.annotations.column("image_id").to_pylist()) == {1}
    assert isinstance(kept.images, pa.Table)
