"""Leakage across existing splits on the real Aquarium export and a FishCam split."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from imagine.curate.cli import main
from imagine.curate.dedup import DedupResult, dedup
from imagine.curate.formats import write_dataset
from imagine.curate.leakage import leakage, render_markdown
from imagine.curate.model import Dataset
from imagine.curate.split import split
from imagine.kernel import UsageError
from imagine.schemas import validate
from tests.fixtures.cleaning.data import AQUARIUM, FISHCAM, aquarium, fishcam

SOURCE = r"^(?:.*/)?(IMG_\d+)"


def crossing_count(values: Sequence[object], splits: Sequence[str]) -> int:
    seen: dict[object, set[str]] = defaultdict(set)
    for v, s in zip(values, splits, strict=True):
        if v is not None:
            seen[v].add(s)
    return sum(len(s) > 1 for s in seen.values())


@pytest.fixture(scope="module")
def aqua() -> Dataset:
    return aquarium()


@pytest.fixture(scope="module")
def aqua_dups(aqua: Dataset) -> DedupResult:
    return dedup(aqua, annotation_iou=None)


@pytest.fixture(scope="module")
def aqua_report(aqua: Dataset, aqua_dups: DedupResult) -> dict[str, Any]:
    return leakage(aqua, columns=["file_name"], pattern=SOURCE, dedup_result=aqua_dups)


def test_aquarium_export_leaks_source_footage(aqua: Dataset, aqua_report: dict[str, Any],
                                              aqua_dups: DedupResult) -> None:
    rep = aqua_report
    assert validate(rep, "leakage-report") == []
    names = [f.split("/")[-1] for f in aqua.images.column("file_name").to_pylist()]
    sources = ["_".join(n.split("_")[:2]) for n in names]
    splits = aqua.images.column("split").to_pylist()
    by = {c["check"]: c for c in rep["checks"]}
    expected = crossing_count(sources, splits)  # frames of one video (IMG_8497_MOV-0, -1, ...) in several splits
    assert expected > 0
    assert by["file_name"]["crossing_groups"] == expected
    for ex in by["file_name"]["examples"]:
        assert len(ex["splits"]) >= 2 and sum(ex["splits"].values()) == ex["images"]
    assert by["duplicate"]["crossing_groups"] == aqua_dups.report()["summary"]["groups_crossing_splits"] >= 1
    assert rep["leaking"] and rep["crossing_groups"] == expected + by["duplicate"]["crossing_groups"]
    assert "## file_name: examples" in render_markdown(rep)


def test_grouped_resplit_leaves_nothing_crossing(aqua: Dataset, aqua_dups: DedupResult) -> None:
    dup = aqua_dups
    res = split(aqua, (0.8, 0.1, 0.1), group_by=["file_name", "duplicate"], pattern=SOURCE,
                duplicate_groups=dup.group, seed=4)
    rep = leakage(res.dataset, columns=["file_name"], pattern=SOURCE, dedup_result=dup)
    assert not rep["leaking"] and rep["crossing_groups"] == 0


def test_fishcam_frame_split_leaks_videos_and_days() -> None:
    ds = fishcam()
    frames = split(ds, (0.8, 0.2), seed=0)  # no grouping: frames of one track land on both sides
    rep = leakage(frames.dataset, duplicates=False)
    assert rep["params"]["columns"] == ["video", "day"]
    by = {c["check"]: c for c in rep["checks"]}
    sp = frames.dataset.images.column("split").to_pylist()
    assert by["video"]["crossing_groups"] == crossing_count(ds.images.column("video").to_pylist(), sp) > 0
    days = [d[:10] for d in ds.images.column("datetime").to_pylist()]
    assert by["day"]["crossing_groups"] == crossing_count(days, sp) > 0
    grouped = split(ds, (0.8, 0.2), group_by=["day"], seed=0)
    rep2 = leakage(grouped.dataset, duplicates=False)
    assert rep2["crossing_groups"] == 0


def test_no_split_and_missing_column_are_usage_errors(aqua: Dataset) -> None:
    ds = fishcam()
    with pytest.raises(UsageError, match="at least two"):
        leakage(ds, duplicates=False)
    with pytest.raises(UsageError) as exc:
        leakage(aqua, columns=["site"], duplicates=False)
    assert "'site'" in str(exc.value) and "file_name" in str(exc.value)


def test_unreadable_images_are_listed(tmp_path: Path, aqua: Dataset) -> None:
    keep = np.zeros(len(aqua), bool)
    keep[:20] = True
    keep[-20:] = True
    sub = aqua.filter_images(keep)
    sub.info["root"] = str(tmp_path)  # no image there: every read fails, none crashes
    rep = leakage(sub, columns=["file_name"], pattern=SOURCE)
    assert rep["unreadable"] == 40
    assert {f["code"] for f in rep["findings"]} == {"image-unreadable"}


def test_cli_leakage(tmp_path: Path, aqua: Dataset) -> None:
    src = tmp_path / "aqua"
    write_dataset(aqua, src, "native", images="link", root=AQUARIUM)
    runner = CliRunner()
    r = runner.invoke(main, ["-q", "leakage", str(src), "--column", "file_name", "--pattern", SOURCE, "--json",
                             "--markdown", str(tmp_path / "l.md"), "--workers", "1"])
    assert r.exit_code == 1, r.output
    rep = json.loads(r.stdout)
    assert validate(rep, "leakage-report") == []
    assert rep["leaking"]
    assert (tmp_path / "l.md").read_text().startswith("# Leakage")
    r = runner.invoke(main, ["leakage", str(src), "--column", "depth"])
    assert r.exit_code == 2 and "'depth'" in r.output
    r = runner.invoke(main, ["leakage", str(src), "--max-distance", "-1"])
    assert r.exit_code == 2


def test_cli_on_fishcam_folder_split_by_video_then_checked(tmp_path: Path) -> None:
    """The real FishCam folder (image folder + test-sample.csv), split by video, checked for leakage."""
    from imagine.curate.formats import formats

    if "imagefolder" not in formats():
        pytest.skip("the imagefolder format is not available")
    src = str(FISHCAM)
    runner = CliRunner()
    out = tmp_path / "by-video"
    r = runner.invoke(main, ["-q", "split", src, str(out), "--from", "imagefolder", "--group-by", "video",
                             "--ratios", "0.8,0.2", "--seed", "11", "--images", "link", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["groups_crossing_splits"] == 0
    r = runner.invoke(main, ["-q", "leakage", str(out), "--no-duplicates", "--json"])
    rep = json.loads(r.stdout)
    by = {c["check"]: c for c in rep["checks"]}
    assert by["video"]["groups"] == len({row["video"] for row in fishcam().images.to_pylist()})
    assert by["video"]["crossing_groups"] == 0
    # whole videos per split still put several videos of one day on both sides: reported, exit code 1
    assert by["day"]["crossing_groups"] > 0 and r.exit_code == 1
    r = runner.invoke(main, ["-q", "leakage", str(out), "--no-duplicates", "--column", "video"])
    assert r.exit_code == 0, r.output
    # the same images split frame by frame leak videos, and the check says so with exit code 1
    frames = tmp_path / "by-frame"
    r = runner.invoke(main, ["-q", "split", src, str(frames), "--from", "imagefolder", "--ratios", "0.8,0.2",
                             "--images", "none"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["-q", "leakage", str(frames), "--no-duplicates", "--column", "video", "--json"])
    assert r.exit_code == 1
    assert json.loads(r.stdout)["checks"][0]["crossing_groups"] > 0


def test_cli_on_raw_yolo_export(aqua: Dataset) -> None:
    """Straight on the Roboflow YOLOv5 folder: the export's own split leaks source footage and a duplicate."""
    from imagine.curate.formats import formats

    if "yolo" not in formats():
        pytest.skip("the yolo format is not available")
    r = CliRunner().invoke(main, ["-q", "leakage", str(AQUARIUM), "--from", "yolo", "--column", "file_name",
                                  "--pattern", SOURCE, "--workers", "1", "--json"])
    assert r.exit_code == 1, r.output
    rep = json.loads(r.stdout)
    by = {c["check"]: c for c in rep["checks"]}
    names = [f.split("/")[-1] for f in aqua.images.column("file_name").to_pylist()]
    expected = crossing_count(["_".join(n.split("_")[:2]) for n in names], aqua.images.column("split").to_pylist())
    assert by["file_name"]["crossing_groups"] == expected
    assert by["duplicate"]["crossing_groups"] >= 1
    assert rep["images"] == len(aqua)
