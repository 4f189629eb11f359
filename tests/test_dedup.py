"""Image and annotation duplicates on the real Aquarium and FishCam fixtures, and the search itself."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from imagine.curate.cli import main
from imagine.curate.dedup import (
    DedupResult,
    ImageHashes,
    _choose_blocks,
    _components_numpy,
    annotation_duplicates,
    components,
    cosine_pairs,
    dedup,
    hash_file,
    image_hashes,
    near_pairs,
    overlap_pairs,
)
from imagine.curate.formats import read_dataset, write_dataset
from imagine.curate.model import Dataset
from imagine.kernel import UsageError
from imagine.schemas import validate
from tests.fixtures.cleaning.data import AQUARIUM, aquarium, fishcam


@pytest.fixture(scope="module")
def aqua() -> Dataset:
    return aquarium()


@pytest.fixture(scope="module")
def aqua_hashes(aqua: Dataset) -> ImageHashes:
    return image_hashes(aqua)


@pytest.fixture(scope="module")
def aqua_dedup(aqua: Dataset, aqua_hashes: ImageHashes) -> DedupResult:
    return dedup(aqua, hashes=aqua_hashes)


def brute_pairs(h: np.ndarray, r: int) -> set[tuple[int, int]]:
    d = np.bitwise_count(h[:, None] ^ h[None, :])
    i, j = np.nonzero(np.triu(d <= r, 1))
    return set(zip(i.tolist(), j.tolist(), strict=True))


def clustered_hashes(n_base: int, copies: int, flips: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, n_base, dtype=np.int64).astype(np.uint64) * np.uint64(2) + np.uint64(1)
    out = [base]
    for _ in range(copies):
        h = base.copy()
        for _ in range(flips):
            h ^= np.uint64(1) << rng.integers(0, 64, n_base).astype(np.uint64)
        out.append(h)
    out.append(base[: n_base // 10])  # exact repeats
    return np.concatenate(out)


@pytest.mark.parametrize("r", [0, 1, 3, 6, 9])
def test_near_pairs_match_brute_force(r: int) -> None:
    h = clustered_hashes(400, 3, 4, seed=r)
    expected = brute_pairs(h, r)
    a, b, d = near_pairs(h, r, expand=True)
    assert set(zip(a.tolist(), b.tolist(), strict=True)) == expected
    assert len(a) == len(expected)
    assert np.array_equal(d, np.bitwise_count(h[a] ^ h[b]))
    # the default link set is smaller but gives the same groups
    la, lb, _ = near_pairs(h, r)
    ea, eb = (np.array(v, dtype=np.int64) for v in zip(*expected, strict=True)) if expected else (la, lb)
    assert np.array_equal(components(len(h), la, lb), components(len(h), ea, eb))


def test_block_choice_keeps_buckets_small() -> None:
    # textbook r + 1 blocks for small sets; more blocks (B - r equal) when buckets would crowd
    assert _choose_blocks(50, 6) == 7
    assert _choose_blocks(1_000_000, 6) > 7


def test_components_match_union_find() -> None:
    rng = np.random.default_rng(1)
    n = 500
    a, b = rng.integers(0, n, 300), rng.integers(0, n, 300)
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            x = parent[x]
        return x

    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    expected = [find(i) for i in range(n)]
    want = [min(i for i in range(n) if expected[i] == expected[k]) for k in range(n)]
    # same partition; labels are each component's smallest node, with SciPy and without
    assert components(n, a, b).tolist() == want
    assert _components_numpy(n, a, b).tolist() == want


def test_cosine_pairs_match_brute_force() -> None:
    rng = np.random.default_rng(2)
    e = rng.normal(size=(300, 16))
    e[100:150] = e[:50] + rng.normal(scale=0.05, size=(50, 16))
    a, b, s = cosine_pairs(e, 0.9, block=64)
    en = e / np.linalg.norm(e, axis=1, keepdims=True)
    sim = en @ en.T
    i, j = np.nonzero(np.triu(sim >= 0.9, 1))
    assert set(zip(a.tolist(), b.tolist(), strict=True)) == set(zip(i.tolist(), j.tolist(), strict=True))
    assert len(a) >= 50


def test_phash_survives_reencoding_and_separates_images(tmp_path: Path) -> None:
    src = sorted((AQUARIUM / "train" / "images").glob("*.jpg"))[:2]
    im = Image.open(src[0]).convert("RGB")
    small = tmp_path / "small.jpg"
    im.resize((im.width // 2, im.height // 2)).save(small, quality=60)
    png = tmp_path / "copy.png"
    im.save(png)
    h0, h1, h2, h3 = (hash_file(str(p))[1] for p in (src[0], small, png, src[1]))
    assert h0 is not None and h1 is not None and h2 is not None and h3 is not None
    assert bin(h0 ^ h1).count("1") <= 6
    assert bin(h0 ^ h2).count("1") <= 6
    assert bin(h0 ^ h3).count("1") > 6
    assert hash_file(str(src[0]))[0] == hashlib.sha256(src[0].read_bytes()).hexdigest()


def test_aquarium_groups_are_all_pairs_within_threshold(aqua: Dataset, aqua_hashes: ImageHashes,
                                                        aqua_dedup: DedupResult) -> None:
    """Every duplicate found is within the threshold of another member, and every such pair is found."""
    hashes = aqua_hashes
    assert hashes.ok.all()
    close = brute_pairs(hashes.phash, 6)
    # byte-identical files, counted independently
    digests = [hashlib.sha256((AQUARIUM / f).read_bytes()).hexdigest()
               for f in aqua.images.column("file_name").to_pylist()]
    assert len(set(digests)) == len(digests)
    res = aqua_dedup
    for i, j in close:
        assert res.group[i] == res.group[j] >= 0
    in_groups = set(np.flatnonzero(res.group >= 0).tolist())
    assert in_groups == {k for p in close for k in p}
    report = res.report()
    assert report["summary"]["groups"] >= 1
    assert report["summary"]["exact_groups"] == 0
    assert report["summary"]["removable_images"] == len(in_groups) - report["summary"]["groups"]
    # the Roboflow export has near-identical frames on both sides of its own train/valid split
    crossing = [g for g in report["groups"] if len(g["splits"]) > 1]
    assert len(crossing) == report["summary"]["groups_crossing_splits"] >= 1
    assert validate(report, "dedup-report") == []


def test_fishcam_track_frames_are_near_duplicates() -> None:
    ds = fishcam()
    res = dedup(ds)
    rep = res.report()
    assert rep["unreadable"] == 0
    assert rep["summary"]["near_groups"] > 0
    names = ds.images.column("file_name").to_pylist()
    # most groups are frames of one fish track (file name up to _frameN)
    tracks = [len({names[i].rsplit("_frame", 1)[0] for i in np.flatnonzero(res.group == g)})
              for g in np.unique(res.group[res.group >= 0])]
    assert sum(t == 1 for t in tracks) > len(tracks) / 2
    kept = res.deduplicated()
    assert len(kept) == len(ds) - rep["summary"]["removable_images"]
    assert kept.num_annotations == len(kept)


def test_unreadable_and_truncated_images_are_findings(tmp_path: Path, aqua: Dataset) -> None:
    files = aqua.images.column("file_name").to_pylist()[:6]
    for f in files:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(AQUARIUM / f, tmp_path / f)
    data = (tmp_path / files[0]).read_bytes()
    (tmp_path / files[0]).write_bytes(data[: len(data) // 3])  # truncated JPEG
    (tmp_path / files[1]).write_bytes(b"not an image at all")
    copy = "copy/" + Path(files[2]).name
    (tmp_path / "copy").mkdir()
    shutil.copyfile(tmp_path / files[2], tmp_path / copy)
    ds = Dataset.from_columns(images={"id": list(range(7)), "file_name": [*files, copy]}, info={"root": str(tmp_path)})
    res = dedup(ds)
    bad = {f.file for f in res.findings}
    assert bad == {files[0], files[1]}
    assert all(f.code == "image-unreadable" for f in res.findings)
    rep = res.report()
    assert rep["unreadable"] == 2
    assert rep["summary"]["exact_groups"] == 1
    assert res.group[2] == res.group[6] >= 0 and res.is_duplicate[6] and not res.is_duplicate[2]


def test_annotation_duplicates_brute_force(aqua: Dataset) -> None:
    # add shifted copies of three boxes: each must be found, pointing at its original
    a = aqua.annotations.slice(0, 3).to_pydict()
    a["id"] = [10_000 + i for i in range(3)]
    a["bbox_x"] = [x + 0.5 for x in a["bbox_x"]]
    extra = Dataset.from_columns(annotations=a).annotations
    import pyarrow as pa

    ds = aqua.with_tables(annotations=pa.concat_tables([aqua.annotations, extra]))
    dup, of, score = annotation_duplicates(ds, 0.9)
    ids = ds.annotations.column("id").to_numpy()
    # brute force, image by image
    x, y = ds.col("annotations", "bbox_x"), ds.col("annotations", "bbox_y")
    w, h = ds.col("annotations", "bbox_w"), ds.col("annotations", "bbox_h")
    img, cat = ds.col("annotations", "image_id"), ds.col("annotations", "category_id")
    expected = set()
    for i in range(len(ids)):
        same = np.flatnonzero((img == img[i]) & (cat == cat[i]) & (np.arange(len(ids)) > i))
        for j in same:
            iw = min(x[i] + w[i], x[j] + w[j]) - max(x[i], x[j])
            ih = min(y[i] + h[i], y[j] + h[j]) - max(y[i], y[j])
            inter = max(iw, 0) * max(ih, 0)
            if inter / (w[i] * h[i] + w[j] * h[j] - inter) >= 0.9:
                expected.add(j)
    assert set(np.flatnonzero(dup).tolist()) == expected
    assert {int(ids[k]) for k in np.flatnonzero(dup)} >= {10_000, 10_001, 10_002}
    n = len(ids)
    assert of[n - 3:].tolist() == [0, 1, 2] and (score[n - 3:] >= 0.9).all()
    res = dedup(ds, near=False)
    assert res.deduplicated(images=False).num_annotations == len(ids) - len(expected)


def test_threshold_out_of_range_is_usage_error(aqua: Dataset) -> None:
    with pytest.raises(UsageError, match="between 0 and 32"):
        near_pairs(np.zeros(3, np.uint64), 40)
    with pytest.raises(UsageError, match="annotation-iou"):
        dedup(aqua, annotation_iou=1.5)


@pytest.fixture(scope="module")
def native_subset(tmp_path_factory: pytest.TempPathFactory, aqua_dedup: DedupResult) -> Path:
    """Forty Aquarium images, including every near-duplicate group, written natively."""
    ds = aqua_dedup.dataset
    rows = set(np.flatnonzero(aqua_dedup.group >= 0).tolist()) | set(range(40 - int((aqua_dedup.group >= 0).sum())))
    mask = np.zeros(len(ds), bool)
    mask[sorted(rows)] = True
    out = tmp_path_factory.mktemp("native") / "aqua"
    write_dataset(ds.filter_images(mask), out, "native", images="copy", root=AQUARIUM)
    return out


def test_cli_dedup_report_and_output(native_subset: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["-q", "dedup", str(native_subset), "--json", "--markdown", str(tmp_path / "d.md")])
    assert r.exit_code == 1, r.output
    rep = json.loads(r.stdout)
    assert validate(rep, "dedup-report") == []
    assert rep["summary"]["groups"] >= 1
    assert (tmp_path / "d.md").read_text().startswith("# Duplicates")
    out = tmp_path / "clean"
    r = runner.invoke(main, ["-q", "dedup", str(native_subset), str(out), "--report", str(tmp_path / "d.json")])
    assert r.exit_code == 0, r.output
    clean = read_dataset(out)
    assert len(clean) == rep["images"] - rep["summary"]["removable_images"]
    assert json.loads((tmp_path / "d.json").read_text())["summary"] == rep["summary"]
    # the deduplicated output has no duplicates left
    r = runner.invoke(main, ["-q", "dedup", str(out), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["summary"]["groups"] == 0


def test_cli_dedup_bad_threshold_and_missing_source(native_subset: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["dedup", str(native_subset), str(tmp_path / "o"), "--max-distance", "40"])
    assert r.exit_code == 2 and "--max-distance" in r.output
    assert not (tmp_path / "o").exists()
    r = runner.invoke(main, ["dedup", str(tmp_path / "nope")])
    assert r.exit_code == 2 and "nope" in r.output and "no such file" in r.output


def test_embeddings_group_images_by_cosine(native_subset: Path, tmp_path: Path) -> None:
    ds = read_dataset(native_subset)
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(len(ds), 32))
    emb[5] = emb[9] * 3 + rng.normal(scale=0.01, size=32)  # same direction: cosine ~ 1
    res = dedup(ds, near=False, embeddings=emb, cosine=0.99, annotation_iou=None)
    assert res.group[5] == res.group[9] >= 0
    assert int((res.group >= 0).sum()) == 2
    with pytest.raises(UsageError, match="one row per image"):
        dedup(ds, near=False, embeddings=emb[:3])
    np.save(tmp_path / "emb.npy", emb)
    r = CliRunner().invoke(main, ["-q", "dedup", str(native_subset), "--no-near", "--embeddings",
                                  str(tmp_path / "emb.npy"), "--cosine", "0.99", "--json"])
    assert r.exit_code == 1, r.output
    assert json.loads(r.stdout)["summary"]["groups"] == 1
    r = CliRunner().invoke(main, ["dedup", str(native_subset), "--embeddings", str(tmp_path / "emb.npy"),
                                  "--cosine", "1.5"])
    assert r.exit_code == 2 and "--cosine" in r.output


@pytest.mark.parametrize("seed", range(6))
def test_overlap_pairs_match_brute_force(seed: int) -> None:
    """The sweep finds exactly the intersecting pairs of each group, touching edges and rounding included."""
    rng = np.random.default_rng(seed)
    n = 300
    g = rng.integers(0, 4, n)
    x1 = rng.uniform(0, 100, n).round(seed % 3)
    y1 = rng.uniform(0, 100, n).round(1)
    x2 = x1 + rng.uniform(0, 30, n).round(1)
    y2 = y1 + rng.uniform(0, 30, n).round(1)
    p, q, inter = overlap_pairs(g, x1, y1, x2, y2, chunk=int(rng.integers(1, 500)))
    got = {(min(a, b), max(a, b)): v for a, b, v in zip(p.tolist(), q.tolist(), inter.tolist(), strict=True)}
    assert len(got) == len(p)
    iw = np.minimum(x2[:, None], x2[None, :]) - np.maximum(x1[:, None], x1[None, :])
    ih = np.minimum(y2[:, None], y2[None, :]) - np.maximum(y1[:, None], y1[None, :])
    ok = np.triu((iw > 0) & (ih > 0) & (g[:, None] == g[None, :]), 1)
    i, j = np.nonzero(ok)
    assert set(got) == set(zip(i.tolist(), j.tolist(), strict=True))
    assert np.allclose([got[k] for k in zip(i.tolist(), j.tolist(), strict=True)], (iw * ih)[i, j])
