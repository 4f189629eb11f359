"""Every writer/reader pair on real data: the bundled Aquarium sample (boxes, three splits).

The sample goes through format A and then format B; the boxes, their classes and the images
(including those without objects) must come back identical up to the precision format B itself
imposes, and whatever B could not hold must be named in the conversion report.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from imagine.curate.demo import sample_path
from imagine.curate.formats import formats, read_dataset, write_dataset
from imagine.curate.model import Dataset

# Formats that cannot hold boxes at all (classification folders) are checked for what they can hold.
LABEL_ONLY = {"imagefolder"}
BOX_FORMATS = sorted(n for n, f in formats().items() if f.read and f.write and n not in LABEL_ONLY)


@pytest.fixture(scope="module")
def sample() -> Dataset:
    with sample_path() as src:
        return read_dataset(src, "yolo")


def _boxes(ds: Dataset) -> dict[str, list[tuple[str, float, float, float, float]]]:
    """Per image base name: (class name, x, y, w, h) in source order."""
    names = ds.category_names()
    out: dict[str, list[tuple[str, float, float, float, float]]] = {}
    files = ds.images.column("file_name").to_pylist()
    order, starts, ends = ds.annotations_by_image()
    cat = ds.annotations.column("category_id").to_pylist()
    xywh = np.stack([ds.annotations.column(c).to_numpy(zero_copy_only=False)
                     for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")], axis=1) if ds.num_annotations else None
    for i, f in enumerate(files):
        rows = order[starts[i]:ends[i]]
        key = Path(f).name
        out[key] = [(names[cat[r]], *map(float, xywh[r])) for r in rows] if xywh is not None else []
    return out


def _assert_same_boxes(a: Dataset, b: Dataset, tol: float) -> None:
    ba, bb = _boxes(a), _boxes(b)
    assert sorted(ba) == sorted(bb), "images differ"
    for key, rows in ba.items():
        other = bb[key]
        assert len(rows) == len(other), key
        for r, o in zip(sorted(rows), sorted(other), strict=True):
            assert r[0] == o[0], key
            np.testing.assert_allclose(r[1:], o[1:], atol=tol, rtol=0, err_msg=key)


@pytest.mark.parametrize("fmt", BOX_FORMATS)
def test_sample_round_trips_through_each_format(fmt: str, sample: Dataset, tmp_path: Path) -> None:
    report = write_dataset(sample, tmp_path / fmt, fmt)
    back = read_dataset(tmp_path / fmt, fmt)
    _assert_same_boxes(sample, back, 1e-6)
    assert back.categories.column("name").to_pylist() == sample.categories.column("name").to_pylist() or \
        report.counts, "categories changed without a report entry"


@pytest.mark.parametrize(("a", "b"), [(a, b) for a in BOX_FORMATS for b in BOX_FORMATS if a != b])
def test_every_pair_carries_boxes(a: str, b: str, sample: Dataset, tmp_path: Path) -> None:
    write_dataset(sample, tmp_path / "a", a, images="link")
    mid = read_dataset(tmp_path / "a", a)
    write_dataset(mid, tmp_path / "b", b, images="link")
    back = read_dataset(tmp_path / "b", b)
    _assert_same_boxes(sample, back, 1e-6)


def test_imagefolder_keeps_image_labels(tmp_path: Path) -> None:
    """A classification folder holds whole-image labels only; boxes are reported, not silently lost."""
    with sample_path() as src:
        ds = read_dataset(src, "yolo")
    report = write_dataset(ds, tmp_path / "if", "imagefolder")
    assert not report.lossless
