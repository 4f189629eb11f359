"""Many small files from Arrow batches (curate/formats/bulk.py) and the writers that use it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from imagine.curate.formats import write_dataset
from imagine.curate.formats.bulk import FileWriter, make_dirs, num_strings
from imagine.curate.model import Dataset
from imagine.kernel import InputError


def test_groups_of_rows_become_files_byte_for_byte(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 5, 300)
    rows = [f"row {i} é\n" for i in range(int(counts.sum()))]
    arr = pa.concat_arrays([pa.array(["dropped"]), pa.array(rows)]).slice(1)  # a slice: offset ≠ 0
    paths = [f"d{i % 3}/f{i}.txt" for i in range(len(counts))]
    make_dirs(tmp_path, paths)
    with FileWriter(tmp_path, threads=2) as files:
        files.write_groups(paths[:100], arr.slice(0, int(counts[:100].sum())), counts[:100], {7: b"override"})
        files.write_groups(paths[100:], arr.slice(int(counts[:100].sum())), counts[100:])
    k = 0
    for i, (p, c) in enumerate(zip(paths, counts, strict=True)):
        want = "".join(rows[k:k + c])
        k += c
        assert (tmp_path / p).read_bytes() == (b"override" if i == 7 else want.encode())


def test_a_failing_file_is_raised_when_the_writer_closes(tmp_path: Path) -> None:
    (tmp_path / "taken.txt").write_text("old")
    with pytest.raises(FileExistsError), FileWriter(tmp_path) as files:
        files.write_groups(["new.txt", "taken.txt"], pa.array(["a", "b"]), np.array([1, 1]))
    assert (tmp_path / "taken.txt").read_text() == "old"  # never overwritten


def test_counts_must_cover_the_rows(tmp_path: Path) -> None:
    with pytest.raises(ValueError), FileWriter(tmp_path) as files:
        files.write_groups(["a.txt"], pa.array(["x", "y"]), np.array([1]))


def test_numbers_are_written_shortest_round_trip() -> None:
    v = np.array([0.1, 1 / 3, 2.0, 1e-7, 123456789.125])
    s = num_strings(v).to_pylist()
    assert [float(x) for x in s] == v.tolist() and s[2] == "2"
    assert num_strings(v, 2).to_pylist()[1] == "0.33"


@pytest.mark.parametrize("fmt", ["yolo", "voc"])
def test_two_images_with_one_label_file_are_refused(tmp_path: Path, fmt: str) -> None:
    ds = Dataset.from_records(
        [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10},
         {"id": 2, "file_name": "a.png", "width": 10, "height": 10}],
        [{"id": 1, "image_id": 1, "category_id": 0, "kind": "box", "bbox_x": 1.0, "bbox_y": 1.0, "bbox_w": 2.0,
          "bbox_h": 2.0}],
        [{"id": 0, "name": "fish"}])
    with pytest.raises(InputError, match="'a.jpg' and 'a.png'"):
        write_dataset(ds, tmp_path / "out", fmt, images="none")
    assert not (tmp_path / "out").exists() and list(tmp_path.iterdir()) == []
