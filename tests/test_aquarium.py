"""The real Aquarium dataset (638 images, YOLO as Roboflow exported it): to COCO, VOC and CVAT and back,
and what `validate` finds in it, checked against the label files themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from imagine.curate.cli import main
from imagine.curate.formats import read_dataset, write_dataset
from imagine.curate.model import Dataset

from .test_format_matrix import _assert_same_boxes

AQUARIUM = Path(__file__).parent / "fixtures" / "aquarium"


@pytest.fixture(scope="module")
def aquarium() -> Dataset:
    return read_dataset(AQUARIUM, "yolo")


@pytest.mark.parametrize("fmt", ["coco", "voc", "cvat"])
def test_aquarium_to_format_and_back(aquarium: Dataset, fmt: str, tmp_path: Path) -> None:
    write_dataset(aquarium, tmp_path / fmt, fmt, images="link")
    back = read_dataset(tmp_path / fmt, fmt)
    assert len(back) == 638 and back.num_annotations == 4817
    _assert_same_boxes(aquarium, back, 1e-6)
    # and on to YOLO again: the same boxes as the original label files describe
    write_dataset(back, tmp_path / "yolo", "yolo", images="link")
    _assert_same_boxes(aquarium, read_dataset(tmp_path / "yolo", "yolo"), 1e-6)


def test_validate_reports_what_is_wrong_in_aquarium() -> None:
    # independent look at the label files: zero-size boxes and empty files
    zero, empty = [], []
    for lab in sorted(AQUARIUM.glob("*/labels/*.txt")):
        lines = lab.read_text().split("\n")
        if not lab.read_text().strip():
            empty.append(str(lab))
        for k, line in enumerate(lines, start=1):
            parts = line.split()
            if parts and (float(parts[3]) == 0 or float(parts[4]) == 0):
                zero.append((lab.name, f"line {k}"))
    r = CliRunner().invoke(main, ["validate", str(AQUARIUM), "--json"])
    assert r.exit_code == 1, r.output
    out = json.loads(r.output)
    found = [(Path(f["file"]).name, f["place"]) for f in out["findings"] if f["code"] == "box-degenerate"]
    assert sorted(found) == sorted(zero) and len(zero) == 2
    assert [f["file"] for f in out["findings"] if f["code"] == "empty-label-file"] == empty
    assert not [f for f in out["findings"] if f["code"] in ("image-missing", "size-mismatch", "image-unreadable")]
