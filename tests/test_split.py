"""Group-aware, stratified, seeded splits on the real FishCam and Aquarium fixtures."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from imagine.curate.cli import main
from imagine.curate.dedup import dedup
from imagine.curate.formats import read_dataset, write_dataset
from imagine.curate.manifest import split_manifest, verify_manifest
from imagine.curate.model import Dataset
from imagine.curate.split import image_groups, split
from imagine.kernel import UsageError
from imagine.schemas import validate
from tests.fixtures.cleaning.data import AQUARIUM, aquarium, fishcam

SOURCE = r"^(?:.*/)?(IMG_\d+)"  # Aquarium: frames of one source photo or video share this prefix


@pytest.fixture(scope="module")
def fish() -> Dataset:
    return fishcam()


def splits_per_value(ds: Dataset, values: Sequence[object]) -> dict[object, set[str]]:
    out: dict[object, set[str]] = defaultdict(set)
    for v, s in zip(values, ds.images.column("split").to_pylist(), strict=True):
        if v is not None:
            out[v].add(s)
    return out


def test_group_by_video_keeps_tracks_together(fish: Dataset) -> None:
    res = split(fish, (0.8, 0.1, 0.1), group_by=["video"], seed=3)
    crossing = splits_per_value(res.dataset, fish.images.column("video").to_pylist())
    assert all(len(s) == 1 for s in crossing.values())
    # tracks (video + fish number in the file name) are inside videos, so none crosses either
    tracks = [f.rsplit("_frame", 1)[0] for f in fish.images.column("file_name").to_pylist()]
    assert all(len(s) == 1 for s in splits_per_value(res.dataset, tracks).values())
    rep = res.report()
    assert rep["groups_crossing_splits"] == 0
    assert rep["groups"] == len(set(fish.images.column("video").to_pylist()))
    assert validate(rep, "split-report") == []
    # requested ratios, as closely as whole videos allow
    for s in rep["splits"]:
        assert abs(s["ratio"] - s["target_ratio"]) < 0.05
        assert set(s["classes"]) == {"bream", "browntrout", "burbot", "chub", "nase", "perch", "rainbowtrout"}


def test_group_by_day_and_combined_columns(fish: Dataset) -> None:
    days = [d[:10] for d in fish.images.column("datetime").to_pylist()]
    res = split(fish, (0.7, 0.3), group_by=["day"], seed=0)
    assert all(len(s) == 1 for s in splits_per_value(res.dataset, days).values())
    assert res.names == ["train", "test"]
    # video and near-duplicate groups joined: near-duplicate crops of different tracks stay together too
    dup = dedup(fish, annotation_iou=None)
    both = split(fish, (0.8, 0.2), group_by=["video", "duplicate"], duplicate_groups=dup.group, seed=1)
    assert all(len(s) == 1 for s in splits_per_value(both.dataset, fish.images.column("video").to_pylist()).values())
    dup_vals = [int(g) if g >= 0 else None for g in dup.group]
    assert all(len(s) == 1 for s in splits_per_value(both.dataset, dup_vals).values())
    gid, _ = image_groups(fish, ["video", "duplicate"], duplicate_groups=dup.group)
    assert len(np.unique(gid)) < len(set(fish.images.column("video").to_pylist()))


def test_seeded_and_reproducible(fish: Dataset) -> None:
    a = split(fish, (0.8, 0.1, 0.1), group_by=["video"], seed=7).dataset.images.column("split").to_pylist()
    b = split(fish, (0.8, 0.1, 0.1), group_by=["video"], seed=7).dataset.images.column("split").to_pylist()
    c = split(fish, (0.8, 0.1, 0.1), group_by=["video"], seed=8).dataset.images.column("split").to_pylist()
    assert a == b
    assert a != c


def test_stratified_by_class_on_aquarium() -> None:
    ds = aquarium()
    res = split(ds, (0.8, 0.1, 0.1), group_by=["file_name"], pattern=SOURCE, seed=2)
    rep = res.report()
    totals: dict[str, int] = defaultdict(int)
    for s in rep["splits"]:
        for c, v in s["classes"].items():
            totals[c] += v
    train = next(s for s in rep["splits"] if s["name"] == "train")
    for c, total in totals.items():
        if total >= 100:  # every well-represented class gets close to its 80 % in train
            assert abs(train["classes"][c] / total - 0.8) < 0.05, c
    unstratified = split(ds, (0.8, 0.1, 0.1), group_by=["file_name"], pattern=SOURCE, seed=2, stratify=False)
    assert unstratified.report()["groups_crossing_splits"] == 0


def test_missing_group_column_names_existing_ones(fish: Dataset) -> None:
    with pytest.raises(UsageError) as exc:
        split(fish, (0.8, 0.2), group_by=["site"])
    msg = str(exc.value)
    assert "'site'" in msg and "video" in msg and "day" in msg and "file_name" in msg
    with pytest.raises(UsageError, match="ratios"):
        split(fish, (0.8, 0.3))
    with pytest.raises(UsageError, match="group-pattern"):
        split(fish, (0.8, 0.2), group_by=["video"], pattern="(")


@pytest.fixture(scope="module")
def native_aquarium(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("split") / "aqua"
    write_dataset(aquarium(), out, "native", images="link", root=AQUARIUM)
    return out


def test_cli_split_with_manifest(native_aquarium: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "split"
    args = ["-q", "split", str(native_aquarium), str(out), "--group-by", "file_name", "--group-by", "duplicate",
            "--group-pattern", SOURCE, "--ratios", "0.8,0.1,0.1", "--seed", "5", "--images", "link", "--json",
            "--workers", "1"]
    r = runner.invoke(main, args)
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert validate(rep, "split-report") == []
    assert rep["groups_crossing_splits"] == 0
    written = read_dataset(out)
    manifest = json.loads((out / "split-manifest.json").read_text())
    assert manifest == split_manifest(written)
    assert rep["manifest"]["hash"] == manifest["hash"]
    assert verify_manifest(manifest, written.info["root"]) == []
    assert {k: len(v) for k, v in manifest["splits"].items()} == {s["name"]: s["images"] for s in rep["splits"]}
    # whole source footage per split
    sources = splits_per_value(written, [f.split("/")[-1].split("_")[0] + "_" + f.split("/")[-1].split("_")[1]
                                         for f in written.images.column("file_name").to_pylist()])
    assert all(len(s) == 1 for s in sources.values())


def test_cli_split_usage_errors(native_aquarium: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["split", str(native_aquarium), str(tmp_path / "o"), "--group-by", "site"])
    assert r.exit_code == 2
    assert "'site'" in r.output and "file_name" in r.output
    r = runner.invoke(main, ["split", str(native_aquarium), str(tmp_path / "o"), "--ratios", "0.9,0.3"])
    assert r.exit_code == 2 and "ratios" in r.output
    assert not (tmp_path / "o").exists()
    # annotations without their images: the manifest cannot hash them (exit 2, nothing written) unless skipped
    bare = tmp_path / "bare"
    write_dataset(read_dataset(native_aquarium), bare, "native", images="none")
    r = runner.invoke(main, ["split", str(bare), str(tmp_path / "o")])
    assert r.exit_code == 2 and "image file not found" in r.output
    assert not (tmp_path / "o").exists()
    r = runner.invoke(main, ["-q", "split", str(bare), str(tmp_path / "o"), "--no-manifest", "--images", "none"])
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "o" / "split-manifest.json").exists()
    assert set(read_dataset(tmp_path / "o").splits()) == {"train", "val", "test"}
