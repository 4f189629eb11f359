"""VIAME CSV and DIVE JSON: DIVE's own CSV→track cases, the VIAME trio, round trips, bad input.

Real data: ``tests/fixtures/samples/viame_example.{viame.csv,dive.json,coco.json}`` (the same
annotations written by VIAME in three formats) and ``dive_viame_spec_cases.json`` (Kitware/dive's
``testutils/viame.spec.json``: VIAME CSV lines → the tracks and attribute definitions DIVE builds).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagine.curate.cli import main
from imagine.curate.formats import detect_format, get_format, read_dataset, write_dataset
from imagine.curate.formats.dive import attribute_definitions, to_dive
from imagine.curate.formats.viame import dataset_detections, deduce_value, fmt_num
from imagine.curate.geometry import rbox_corners
from imagine.curate.model import Dataset, loads_attrs
from imagine.kernel import ConversionReport, InputError

from .strategies import datasets

SAMPLES = Path(__file__).parent / "fixtures" / "samples"
FIXTURES = Path(__file__).parent / "fixtures" / "viame"
SPEC_CASES = json.loads((SAMPLES / "dive_viame_spec_cases.json").read_text("utf-8"))
HYP = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _csv(tmp: Path, lines: list[str], name: str = "annotations.csv") -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    p = tmp / name
    p.write_text("\n".join(lines) + "\n", "utf-8")
    return p


def _rows(ds: Dataset) -> list[dict[str, Any]]:
    return ds.annotations.to_pylist()


# ------------------------------------------------------------------------------------------ DIVE's spec cases


def _strip_closure(ring: list[list[float]]) -> list[list[float]]:
    return ring[:-1] if len(ring) > 3 and ring[0] == ring[-1] else ring


def _norm_geometry(g: dict[str, Any] | None) -> list[Any] | None:
    if g is None:
        return None
    out = []
    for f in g["features"]:
        geo = f["geometry"]
        coords = geo["coordinates"]
        if geo["type"] == "Polygon":
            coords = [_strip_closure(r) for r in coords]
        out.append((f["properties"]["key"], geo["type"], coords))
    return out


@pytest.mark.parametrize("case", range(len(SPEC_CASES)), ids=[f"spec{i}" for i in range(len(SPEC_CASES))])
def test_dive_spec_case(case: int, tmp_path: Path) -> None:
    """Each CSV of DIVE's viame.spec.json → our model → the DIVE tracks and attribute types DIVE expects.

    DIVE rounds boxes to integers on import; we keep them exactly, so bounds are compared rounded
    here and checked exact separately. Polygon rings are closed by our writer (GeoJSON) and not by
    DIVE's importer, so the closing point is ignored.
    """
    lines, expected_tracks, expected_attrs = SPEC_CASES[case]
    ds = read_dataset(_csv(tmp_path, lines), "viame")
    doc, meta, _ = to_dive(ds, ConversionReport())
    tracks = doc["tracks"]
    assert list(map(int, tracks)) == sorted(map(int, expected_tracks)) or set(tracks) == set(expected_tracks)
    assert set(tracks) == set(expected_tracks)
    for tid, exp in expected_tracks.items():
        got = tracks[tid]
        for key in ("id", "attributes", "confidencePairs", "begin", "end"):
            assert got[key] == exp[key], (tid, key)
        assert set(got) - set(exp) <= {"meta"}
        assert len(got["features"]) == len(exp["features"])
        for gf, ef in zip(got["features"], exp["features"], strict=True):
            assert gf["frame"] == ef["frame"]
            assert [round(v) for v in gf["bounds"]] == ef["bounds"]
            for key in ("attributes", "notes", "fishLength"):
                assert gf.get(key) == ef.get(key), (tid, ef["frame"], key)
            assert _norm_geometry(gf.get("geometry")) == _norm_geometry(ef.get("geometry"))
            assert set(gf) - set(ef) <= {"keyframe", "interpolate", "head", "tail"}
    assert meta["attributes"] == expected_attrs


def test_spec_boxes_are_kept_exactly(tmp_path: Path) -> None:
    """DIVE rounds 884.66 to 885 on import; the model keeps the CSV's float64 values as written."""
    ds = read_dataset(_csv(tmp_path, SPEC_CASES[0][0]), "viame")
    first = _rows(ds)[0]
    assert (first["bbox_x"], first["bbox_y"]) == (884.66, 510.0)
    assert first["bbox_x"] + first["bbox_w"] == 1219.66 and first["bbox_y"] + first["bbox_h"] == 737.66
    doc, _, _ = to_dive(ds, ConversionReport())
    assert doc["tracks"]["0"]["features"][0]["bounds"] == [884.66, 510.0, 1219.66, 737.66]


def test_spec_classes_scores_and_tracks(tmp_path: Path) -> None:
    """Model view of spec case 0: top class per row, full pairs kept in file order, track ids, no pairs."""
    ds = read_dataset(_csv(tmp_path, SPEC_CASES[0][0]), "viame")
    names = ds.category_names()
    rows = _rows(ds)
    assert [names[r["category_id"]] for r in rows] == ["ignored", "typestring", "type2", "type3", "type3", "type1",
                                                        "type1", "type1", "type1"]
    assert [r["track_id"] for r in rows] == [0, 0, 1, 2, 2, 3, 4, 5, 6]
    assert loads_attrs(rows[8]["attributes"])["confidence_pairs"] == [["type2", 0.65], ["type1", 0.89],
                                                                      ["type3", 0.24]]
    assert rows[6]["kind"] == "polygon" and rows[6]["geometry"] == [[1, -2.34, 3, 4, 5, 6, 7, 8.08, 9, -10]]
    assert (rows[6]["bbox_x"], rows[6]["bbox_w"]) == (10.0, 10.0)  # the CSV box, not the polygon's envelope
    assert rows[3]["kind"] == "keypoints"
    assert ds.categories.to_pylist()[list(names.values()).index("type3")]["keypoints"] == ["head", "tail"]
    assert rows[4]["geometry"] == [[22.4534, -45.6564, 2.0, 0.0, 0.0, 0.0]]  # tail absent
    no_class = read_dataset(_csv(tmp_path / "n", SPEC_CASES[3][0]), "viame")
    assert no_class.annotations.column("category_id").to_pylist() == [None, None, None]
    assert no_class.annotations.column("score").to_pylist() == [1.0, 1.0, 0.8]


def test_holes_follow_their_polygon(tmp_path: Path) -> None:
    lines = ["0,1.png,0,0,0,1000,1000,1,-1,region,1,(poly) 0 0 500 0 500 500 0 500,(hole) 10 10 20 10 20 20,"
             "(poly) 600 600 900 600 900 900,(hole) 700 650 800 650 800 700"]
    ds = read_dataset(_csv(tmp_path, lines), "viame")
    assert _rows(ds)[0]["geometry"] == [[0, 0, 500, 0, 500, 500, 0, 500], [600, 600, 900, 600, 900, 900], [],
                                        [10, 10, 20, 10, 20, 20], [700, 650, 800, 650, 800, 700]]
    write_dataset(ds, tmp_path / "out", "viame", images="none")
    row = (tmp_path / "out" / "annotations.csv").read_text("utf-8").splitlines()[1]
    assert row.endswith(lines[0].split(",", 11)[-1])


# ------------------------------------------------------------------------------------------ the VIAME trio


def _by_track_frame(ds: Dataset) -> dict[tuple[int, int], dict[str, Any]]:
    frames = dict(zip(ds.images.column("id").to_pylist(), ds.images.column("frame").to_pylist(), strict=True))
    return {(r["track_id"], frames[r["image_id"]]): r for r in _rows(ds)}


def _pairs(ds: Dataset, r: dict[str, Any]) -> list[list[Any]]:
    return loads_attrs(r["attributes"]).get("confidence_pairs") or [[ds.category_names()[r["category_id"]],
                                                                      r["score"]]]


def test_viame_trio_reads_to_equivalent_datasets() -> None:
    """The same annotations as VIAME CSV, DIVE JSON and (kwcoco-style) COCO read to the same dataset.

    What differs is what the formats hold differently, checked explicitly: DIVE keeps one score per
    track (VIAME's writer averaged the two detections: 0.91) and copies the length into the track
    attributes; kwcoco writes attributes as ``:name=value`` notes and has no length.
    """
    csv_ds = read_dataset(SAMPLES / "viame_example.viame.csv", "viame")
    dive_ds = read_dataset(SAMPLES / "viame_example.dive.json", "dive",
                           images=["frame000000.png", "frame000001.png"])
    coco_ds = read_dataset(SAMPLES / "viame_example.coco.json", "coco")
    for ds in (dive_ds, coco_ds):
        assert ds.images.select(["file_name", "frame"]).equals(csv_ds.images.select(["file_name", "frame"]))
        assert ds.categories.select(["id", "name", "keypoints"]).equals(
            csv_ds.categories.select(["id", "name", "keypoints"]))
    ref = _by_track_frame(csv_ds)
    assert len(ref) == 4
    for ds in (dive_ds, coco_ds):
        other = _by_track_frame(ds)
        assert set(other) == set(ref)
        for key, r in ref.items():
            o = other[key]
            for col in ("kind", "category_id", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "geometry"):
                assert o[col] == r[col], (key, col)
    coco = _by_track_frame(coco_ds)
    dive = _by_track_frame(dive_ds)
    for key, r in ref.items():
        assert coco[key]["score"] == r["score"]
        assert _pairs(coco_ds, coco[key]) == _pairs(csv_ds, r)
    # DIVE: single-detection tracks keep the detection's score, the two-detection track the mean.
    assert dive[(1, 0)]["score"] == ref[(1, 0)]["score"] and dive[(2, 1)]["score"] == ref[(2, 1)]["score"]
    assert dive[(0, 0)]["score"] == dive[(0, 1)]["score"] == 0.91
    assert math.isclose((ref[(0, 0)]["score"] + ref[(0, 1)]["score"]) / 2, 0.91)
    assert _pairs(dive_ds, dive[(1, 0)]) == _pairs(csv_ds, ref[(1, 0)]) == [["scallop", 0.71], ["skate", 0.12]]
    cod = loads_attrs(ref[(2, 1)]["attributes"])
    assert cod == {"is_diseased": False, "length": 152.4, "notes": ["partially occluded"]}
    dive_cod = loads_attrs(dive[(2, 1)]["attributes"])
    assert dive_cod.pop("track_attributes") == {"length": 152.4}
    assert dive_cod == cod
    coco_notes = loads_attrs(coco[(2, 1)]["attributes"])["notes"]
    decoded = {n[1:].split("=")[0]: deduce_value(n.split("=", 1)[1]) for n in coco_notes if n.startswith(":")}
    assert decoded == {"is_diseased": False}
    assert [n for n in coco_notes if not n.startswith(":")] == cod["notes"]


def test_trio_csv_round_trips_to_dive_and_back(tmp_path: Path) -> None:
    """VIAME CSV → DIVE folder → VIAME CSV keeps every box, class, point and polygon of the sample."""
    ds = read_dataset(SAMPLES / "viame_example.viame.csv", "viame")
    rep = write_dataset(ds, tmp_path / "dive", "dive", images="none")
    assert rep.counts == {"score-dropped": 1}  # track 0: 0.92 then 0.90; DIVE keeps the last state's
    back = read_dataset(tmp_path / "dive", "dive")
    assert back.images.select(["file_name", "frame"]).equals(ds.images.select(["file_name", "frame"]))
    a, b = _by_track_frame(ds), _by_track_frame(back)
    for key in a:
        for col in ("kind", "category_id", "bbox_x", "bbox_y", "bbox_w", "bbox_h", "geometry", "track_id"):
            assert a[key][col] == b[key][col]


# ------------------------------------------------------------------------------------------ rotation


def test_dive_rotation_is_our_rbox_angle(tmp_path: Path) -> None:
    """DIVE's rotation (radians, about the centre of the unrotated ``bounds``) → rbox degrees, no sign flip.

    The corners are computed the way DIVE draws them (client/src/utils.ts applyRotationToPolygon:
    ``x' = x cos r - y sin r``, ``y' = x sin r + y cos r`` in pixel coordinates) and must be the
    corners of our rbox; a positive angle turns the box clockwise on screen (y down).
    """
    r = 0.5
    doc = {"version": 2, "tracks": {"3": {"id": 3, "confidencePairs": [["fish", 0.9]], "begin": 4, "end": 4,
                                          "features": [{"frame": 4, "bounds": [10, 20, 50, 40],
                                                        "attributes": {"rotation": r, "sex": "f"}}]}}}
    p = tmp_path / "rot.dive.json"
    p.write_text(json.dumps(doc), "utf-8")
    ds = read_dataset(p, "dive")
    a = _rows(ds)[0]
    assert a["kind"] == "rbox" and loads_attrs(a["attributes"]) == {"sex": "f"}
    cx, cy, w, h, ang = a["geometry"][0]
    assert (cx, cy, w, h) == (30.0, 30.0, 40.0, 20.0) and ang == math.degrees(r)
    c, s = math.cos(r), math.sin(r)
    dive_corners = {(round(cx + x * c - y * s, 9), round(cy + x * s + y * c, 9))
                    for x, y in ((-20, -10), (-20, 10), (20, 10), (20, -10))}
    ours = rbox_corners(cx, cy, w, h, ang)
    assert {(round(ours[i], 9), round(ours[i + 1], 9)) for i in range(0, 8, 2)} == dive_corners
    right_mid_y = (ours[3] + ours[5]) / 2
    assert right_mid_y > cy  # clockwise on screen
    assert (a["bbox_x"], a["bbox_y"]) == (min(ours[0::2]), min(ours[1::2]))
    write_dataset(ds, tmp_path / "out", "dive", images="none")
    back = json.loads((tmp_path / "out" / "annotations.dive.json").read_text("utf-8"))
    feat = back["tracks"]["3"]["features"][0]
    assert feat["bounds"] == [10, 20, 50, 40] and feat["attributes"] == {"sex": "f", "rotation": r}
    write_dataset(ds, tmp_path / "csv", "viame", images="none")
    assert "(atr) rotation 0.5" in (tmp_path / "csv" / "annotations.csv").read_text("utf-8")
    assert read_dataset(tmp_path / "csv", "viame").annotations.select(["kind", "geometry"]).equals(
        ds.annotations.select(["kind", "geometry"]))


def test_dive_groups_interpolation_meta_and_image_names(tmp_path: Path) -> None:
    src = FIXTURES / "dive_features"
    rep = ConversionReport()
    ds = read_dataset(src, "dive", report=rep)
    assert ds.images.column("file_name").to_pylist() == ["a_1.png", "a_2.png", "a_10.png"]  # meta.json order
    rows = _rows(ds)
    assert [r["group_id"] for r in rows] == [7, 7, 7, None]
    assert rows[2]["kind"] == "polyline" and rows[2]["geometry"] == [[1, 1, 5, 5, 9, 1]]
    assert loads_attrs(rows[0]["attributes"])["interpolate"] is True
    assert rep.counts == {"interpolation-not-expanded": 1}
    assert ds.info["fps"] == 5.0
    out = write_dataset(ds, tmp_path / "o", "dive", images="none")
    assert out.lossless, out.render()
    back = read_dataset(tmp_path / "o", "dive")
    assert back.annotations.equals(ds.annotations) and back.images.equals(ds.images)
    doc = json.loads((tmp_path / "o" / "annotations.dive.json").read_text("utf-8"))
    assert doc["groups"]["7"]["confidencePairs"] == [["school", 1.0]]
    assert doc["groups"]["7"]["members"] == {"1": {"ranges": [[0, 1]]}, "2": {"ranges": [[2, 2]]}}
    single = write_dataset(ds, tmp_path / "one.dive.json", "dive")
    assert single.counts.get("image-names-dropped") == 3


# ------------------------------------------------------------------------------------------ hypothesis

CLASSES = ["cod", "skate", "flounder", "sea star", "unknown fish"]
plain = st.text(alphabet="abcdefghij XYZ_-.", min_size=1, max_size=8).filter(
    lambda t: t == t.strip() and deduce_value(t) == t)
attr_name = st.text(alphabet="abcdefghijXYZ_", min_size=1, max_size=6).filter(lambda n: n not in (
    "length", "notes", "keypoints", "mask", "rotation", "confidence_pairs", "track_attributes", "viame_tokens",
    "track_meta", "keyframe", "interpolate"))
num = st.floats(-50, 5000, allow_nan=False, allow_infinity=False)
attr_val = st.one_of(st.booleans(), num, plain)


def _num(x: float) -> str:
    return fmt_num(x)


@st.composite
def viame_rows(draw: Any, dive_safe: bool = False) -> list[str]:
    """Random VIAME CSV data rows; ``dive_safe`` keeps to what DIVE holds (one class list per track...)."""
    n_img = draw(st.integers(1, 4))
    names = [draw(st.sampled_from([f"img_{k}.png", f"sub/img_{k}.jpg"])) for k in range(n_img)]
    rows = []
    track_info: dict[int, tuple[list[tuple[str, float]], dict[str, Any]]] = {}
    used: set[tuple[int, int]] = set()
    for _ in range(draw(st.integers(1, 8))):
        k = draw(st.integers(0, n_img - 1))
        tid = draw(st.integers(0, 5))
        if dive_safe and (tid, k) in used:
            continue
        used.add((tid, k))
        rotated = draw(st.booleans()) and draw(st.booleans())
        if rotated:
            x1, y1 = draw(st.integers(0, 900)), draw(st.integers(0, 900))
            x2, y2 = x1 + draw(st.integers(0, 300)), y1 + draw(st.integers(0, 300))
        else:
            x1, y1 = draw(num), draw(num)
            x2, y2 = x1 + draw(st.floats(0, 700)), y1 + draw(st.floats(0, 700))
        if dive_safe and tid in track_info:
            pairs, tattrs = track_info[tid]
        else:
            classes = draw(st.lists(st.sampled_from(CLASSES), unique=True, max_size=3,
                                    min_size=1 if dive_safe else 0))
            pairs = [(c, draw(st.floats(0, 1))) for c in classes]
            if dive_safe:
                pairs.sort(key=lambda p: p[1], reverse=True)
            tattrs = draw(st.dictionaries(attr_name, attr_val, max_size=2))
            track_info[tid] = (pairs, tattrs)
        conf = pairs[0][1] if dive_safe else draw(st.floats(0, 1))
        length = draw(st.one_of(st.just(-1.0), st.floats(0.5, 900)))
        row = [str(tid), names[k], str(k), _num(x1), _num(y1), _num(x2), _num(y2), _num(conf), _num(length)]
        for c, s in pairs:
            row += [c, _num(s)]
        polys = [] if rotated else draw(st.lists(st.integers(0, 1), max_size=2))
        kps = draw(st.sets(st.sampled_from(["head", "tail", "fin"]))) if not polys else set()
        for n in sorted(kps, key=["head", "tail", "fin"].index):
            row.append(f"(kp) {n} {_num(draw(num))} {_num(draw(num))}")
        if rotated:
            row.append(f"(atr) rotation {_num(draw(st.floats(-3.1, 3.1)))}")
        for n, v in draw(st.dictionaries(attr_name, attr_val, max_size=3)).items():
            row.append(f"(atr) {n} {_num(v) if isinstance(v, float) else str(v).lower() if isinstance(v, bool) else v}")
        for n, v in tattrs.items():
            row.append(f"(trk-atr) {n} "
                       f"{_num(v) if isinstance(v, float) else str(v).lower() if isinstance(v, bool) else v}")
        for holes in polys:
            ox, oy = draw(st.integers(0, 500)), draw(st.integers(0, 500))
            row.append(f"(poly) {ox} {oy} {ox + 100} {oy} {ox + 100} {oy + 100} {ox} {oy + 100}")
            if holes:
                row.append(f"(hole) {ox + 10} {oy + 10} {ox + 20} {oy + 10} {ox + 20} {oy + 20}")
        if polys and draw(st.booleans()):
            row.append(f"(poly) {_num(draw(num))} {_num(draw(num))} {_num(draw(num))} {_num(draw(num))} 1 2")
        for note in draw(st.lists(plain, max_size=2)):
            row.append(f"(note) {note}")
        if not dive_safe and draw(st.booleans()):
            row.append(f"(mask) masks/m{k}.png")
        rows.append(",".join(f'"{c}"' if "," in c else c for c in row))
    return rows


@HYP
@given(viame_rows())
def test_viame_round_trip(tmp_path: Path, rows: list[str]) -> None:
    """VIAME CSV → model → VIAME CSV → model is identical, and writing again gives the same text."""
    case = Path(tempfile.mkdtemp(dir=tmp_path))
    ds = read_dataset(_csv(case / "a", rows), "viame")
    rep = write_dataset(ds, case / "b", "viame", images="none")
    assert rep.lossless, rep.render()
    back = read_dataset(case / "b", "viame")
    assert back.equals(ds)
    write_dataset(back, case / "c", "viame", images="none")
    assert (case / "c" / "annotations.csv").read_text() == (case / "b" / "annotations.csv").read_text()


@st.composite
def dive_docs(draw: Any) -> dict[str, Any]:
    tracks: dict[str, Any] = {}
    for tid in draw(st.sets(st.integers(0, 40), min_size=1, max_size=4)):
        frames = sorted(draw(st.sets(st.integers(0, 9), min_size=1, max_size=3)))
        classes = draw(st.lists(st.sampled_from(CLASSES), unique=True, min_size=1, max_size=3))
        pairs = sorted(([c, draw(st.floats(0, 1))] for c in classes), key=lambda p: p[1], reverse=True)
        feats = []
        for fr in frames:
            rotated = draw(st.booleans())
            if rotated:
                x1, y1 = draw(st.integers(0, 900)), draw(st.integers(0, 900))
                b = [x1, y1, x1 + draw(st.integers(1, 99)) / 4, y1 + draw(st.integers(1, 99)) / 4]
            else:
                x1, y1 = draw(num), draw(num)
                b = [x1, y1, x1 + draw(st.floats(0, 500)), y1 + draw(st.floats(0, 500))]
            f: dict[str, Any] = {"frame": fr, "bounds": b, "keyframe": draw(st.booleans()),
                                 "interpolate": draw(st.booleans())}
            attrs = draw(st.dictionaries(attr_name, attr_val, max_size=2))
            if rotated:
                attrs["rotation"] = draw(st.floats(-3.1, 3.1))
            if attrs:
                f["attributes"] = attrs
            geo = []
            shape = draw(st.sampled_from(["none", "points", "poly", "line"]))
            if shape == "points":
                for key in sorted(draw(st.sets(st.sampled_from(["head", "tail", "eye"]), min_size=1))):
                    geo.append({"type": "Feature", "properties": {"key": key},
                                "geometry": {"type": "Point", "coordinates": [draw(num), draw(num)]}})
            elif shape == "poly" and not rotated:
                ring = [[draw(num), draw(num)] for _ in range(draw(st.integers(3, 6)))]
                geo.append({"type": "Feature", "properties": {"key": ""},
                            "geometry": {"type": "Polygon", "coordinates": [ring + [ring[0]]]}})
            elif shape == "line" and not rotated:
                geo.append({"type": "Feature", "properties": {"key": ""},
                            "geometry": {"type": "LineString", "coordinates": [[draw(num), draw(num)]
                                                                               for _ in range(3)]}})
            if geo:
                f["geometry"] = {"type": "FeatureCollection", "features": geo}
            if draw(st.booleans()):
                f["fishLength"] = draw(st.floats(0.5, 400))
            notes = draw(st.lists(plain, max_size=2))
            if notes:
                f["notes"] = notes
            feats.append(f)
        tracks[str(tid)] = {"id": tid, "meta": {}, "attributes": draw(st.dictionaries(attr_name, attr_val,
                                                                                        max_size=2)),
                            "confidencePairs": pairs, "features": feats, "begin": frames[0], "end": frames[-1]}
    return {"version": 2, "tracks": tracks, "groups": {}}


@HYP
@given(dive_docs())
def test_dive_round_trip(tmp_path: Path, doc: dict[str, Any]) -> None:
    """DIVE JSON → model → DIVE folder → model is identical."""
    case = Path(tempfile.mkdtemp(dir=tmp_path))
    (case / "in.dive.json").write_text(json.dumps(doc), "utf-8")
    ds = read_dataset(case / "in.dive.json", "dive")
    rep = write_dataset(ds, case / "out", "dive", images="none")
    assert rep.lossless, rep.render()
    back = read_dataset(case / "out", "dive")
    assert back.annotations.equals(ds.annotations)
    assert back.images.equals(ds.images) and back.categories.equals(ds.categories)


@HYP
@given(dive_docs())
def test_dive_viame_dive(tmp_path: Path, doc: dict[str, Any]) -> None:
    """DIVE → VIAME CSV → DIVE: all comes back but keyframe/interpolation flags and polylines, which are reported."""
    case = Path(tempfile.mkdtemp(dir=tmp_path))
    (case / "in.dive.json").write_text(json.dumps(doc), "utf-8")
    ds = read_dataset(case / "in.dive.json", "dive")
    rep = write_dataset(ds, case / "csv", "viame", images="none")
    flags = sum(1 for t in doc["tracks"].values() for f in t["features"]
                if f["keyframe"] is False or f["interpolate"] is True)
    lines = sum(1 for r in _rows(ds) if r["kind"] == "polyline")
    assert rep.counts == {k: v for k, v in (("track-metadata-dropped", flags), ("polyline-dropped", lines)) if v}
    mid = read_dataset(case / "csv", "viame")
    write_dataset(mid, case / "dive", "dive", images="none")
    back = read_dataset(case / "dive", "dive")

    def expected(r: dict[str, Any]) -> dict[str, Any]:
        r = dict(r)
        a = loads_attrs(r["attributes"])
        a.pop("keyframe", None)
        a.pop("interpolate", None)
        r["attributes"] = json.dumps(a, sort_keys=True)
        if r["kind"] == "polyline":
            r["kind"], r["geometry"] = "box", None
        return r

    got = [expected(r) for r in _rows(back)]
    assert got == [expected(r) for r in _rows(ds)]
    assert back.images.equals(ds.images) and back.categories.equals(ds.categories)


def _canonical(ds: Dataset) -> list[tuple[Any, ...]]:
    """Annotations as comparable tuples; keypoints by name (the order of names on a category is no content)."""
    names = ds.category_names()
    kp_names = dict(zip(ds.categories.column("id").to_pylist(), ds.categories.column("keypoints").to_pylist(),
                        strict=True))
    img = {r["id"]: (r["file_name"], r["frame"]) for r in ds.images.to_pylist()}
    out = []
    for r in _rows(ds):
        geom = r["geometry"]
        if r["kind"] == "keypoints":
            flat, kn = geom[0], kp_names[r["category_id"]]
            geom = sorted((kn[j], flat[3 * j], flat[3 * j + 1]) for j in range(len(kn)) if flat[3 * j + 2] > 0)
        out.append((img[r["image_id"]], r["track_id"], r["kind"], names.get(r["category_id"]), r["bbox_x"],
                    r["bbox_y"], r["bbox_w"], r["bbox_h"], geom, r["score"],
                    json.dumps(loads_attrs(r["attributes"]), sort_keys=True)))
    return sorted(out, key=repr)


@HYP
@given(viame_rows(dive_safe=True))
def test_viame_dive_viame(tmp_path: Path, rows: list[str]) -> None:
    """What DIVE holds of a VIAME CSV comes back identical through DIVE and back to VIAME."""
    case = Path(tempfile.mkdtemp(dir=tmp_path))
    ds = read_dataset(_csv(case / "a", rows), "viame")
    rep = write_dataset(ds, case / "dive", "dive", images="none")
    assert set(rep.counts) <= {"track-attributes-merged"}, rep.render()
    mid = read_dataset(case / "dive", "dive")
    assert _canonical(mid) == _canonical(ds)
    assert sorted(mid.images.select(["file_name", "frame"]).to_pylist(), key=repr) == sorted(
        ds.images.select(["file_name", "frame"]).to_pylist(), key=repr)
    rep2 = write_dataset(mid, case / "csv", "viame", images="none")
    assert rep2.lossless, rep2.render()
    assert _canonical(read_dataset(case / "csv", "viame")) == _canonical(ds)


def _general_to(fmt: str, tmp_path: Path, ds: Dataset) -> None:
    """A general dataset → ``fmt``: what the format holds comes back, everything else is in the report."""
    case = Path(tempfile.mkdtemp(dir=tmp_path)) / "out"
    rep = write_dataset(ds, case, fmt, images="none")
    back = read_dataset(case, fmt)
    src, got = _rows(ds), _rows(back)
    assert len(got) == len(src)
    names, back_names = ds.category_names(), back.category_names()
    kept = ("polygon", "polyline") if fmt == "dive" else ("polygon",)
    for a, b in zip(src, got, strict=True):
        assert back_names[b["category_id"]] == names[a["category_id"]]
        if a["kind"] in ("box", "polygon", "circle", "polyline", "point"):
            box_a = (a["bbox_x"], a["bbox_y"], a["bbox_w"], a["bbox_h"])
            box_b = (b["bbox_x"], b["bbox_y"], b["bbox_w"], b["bbox_h"])
            if box_b != box_a:  # a width no pair of float corners gives: 1 ulp off, and reported
                assert str(a["id"]) in rep.examples.get("box-rounded", []) or rep.counts["box-rounded"] > 5
                assert all(math.isclose(u, v, rel_tol=1e-15, abs_tol=1e-12) for u, v in zip(box_a, box_b,
                                                                                              strict=True))
        if a["kind"] in kept:
            assert b["kind"] == a["kind"] and b["geometry"] == a["geometry"]
        if a["kind"] == "rbox":
            assert b["kind"] == "rbox"
            for u, v in zip(b["geometry"][0], a["geometry"][0], strict=True):
                assert math.isclose(u, v, rel_tol=1e-12, abs_tol=1e-9)
    kinds = [a["kind"] for a in src]
    for kind in ("circle", "polyline", "point"):
        assert rep.counts.get(f"{kind}-dropped", 0) == (0 if kind in kept else kinds.count(kind))
    assert rep.counts.get("crowd-dropped", 0) == sum(bool(a["iscrowd"]) for a in src)
    assert rep.counts.get("split-dropped", 0) == len(ds)
    assert rep.counts.get("score-defaulted", 0) == len(src)
    reserved = ("length", "notes", "keypoints", "mask", "rotation", "confidence_pairs", "track_attributes",
                "viame_tokens", "track_meta", "keyframe", "interpolate")
    for a, b in zip(src, got, strict=True):
        sa, sb = loads_attrs(a["attributes"]), loads_attrs(b["attributes"])
        for k, v in sa.items():
            if (fmt == "viame" and any(ch.isspace() for ch in k)) or (k in reserved and not isinstance(v, str)):
                assert k not in sb and rep.counts.get("attributes-dropped", 0) > 0
            elif fmt == "viame" and isinstance(v, str) and deduce_value(v) != v:
                assert sb[k] == deduce_value(v) and rep.counts.get("attribute-type-changed", 0) > 0
            elif k not in reserved:
                assert sb[k] == v
        assert set(sb) <= set(sa) | {"notes"}
    assert len(back) == len(ds)  # images without annotations: input_list.txt (VIAME), meta.json (DIVE)


GENERAL = datasets(kinds=("box", "polygon", "circle", "polyline", "point", "rbox"), crowd=True, splits=True,
                   attributes=True)


@settings(HYP, max_examples=12)
@given(GENERAL)
def test_what_viame_cannot_hold_is_reported(tmp_path: Path, ds: Dataset) -> None:
    _general_to("viame", tmp_path, ds)


@settings(HYP, max_examples=12)
@given(GENERAL)
def test_what_dive_cannot_hold_is_reported(tmp_path: Path, ds: Dataset) -> None:
    _general_to("dive", tmp_path, ds)


# ------------------------------------------------------------------------------------------ detection, checks


def test_detect_formats(tmp_path: Path) -> None:
    assert detect_format(SAMPLES / "viame_example.viame.csv") == "viame"
    assert detect_format(SAMPLES / "viame_example.dive.json") == "dive"
    assert detect_format(SAMPLES / "viame_example.coco.json") != "dive"
    assert get_format("viame").detect(SAMPLES / "biigle_image_report.csv") == 0
    assert detect_format(FIXTURES / "dive_features") == "dive"
    assert get_format("dive").detect(SAMPLES / "dive_viame_spec_cases.json") == 0  # a list, not a DIVE file


def test_dive_check_reports_every_schema_error_with_pointer(tmp_path: Path) -> None:
    doc = {"version": 2, "tracks": {"0": {"id": 0, "confidencePairs": [["a", "high"]],
                                          "features": [{"frame": 0, "bounds": [1, 2, 3]}]}}}
    p = tmp_path / "bad.dive.json"
    p.write_text(json.dumps(doc), "utf-8")
    findings = get_format("dive").check(p)
    places = sorted(f.place or "" for f in findings)
    assert places == ["/tracks/0/confidencePairs/0/1", "/tracks/0/features/0/bounds"]
    assert all(f.file == str(p) for f in findings)
    assert get_format("dive").check(SAMPLES / "viame_example.dive.json") == []


# ------------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(("line", "place", "words"), [
    ("0,a.png,0,1,2,3", "line 2", "at least 9 columns"),
    ("0,a.png,0,1,x2,3,4,1,-1", "line 2, column 5 (TL_y)", "expected a number"),
    ("zero,a.png,0,1,2,3,4,1,-1", "line 2, column 1 (track_id)", "integer"),
    ("0,a.png,0,1,2,3,4,1,-1,fish,high", "line 2, column 11", "score for class 'fish'"),
    ("0,a.png,0,1,2,3,4,1,-1,fish,1,(poly) 1 2 3", "line 2, column 12", "x y pairs"),
    ("0,a.png,0,1,2,3,4,1,-1,fish,1,(hole) 1 2 3 4 5 6", "line 2, column 12", "before any (poly)"),
    ("0,../../etc/passwd,0,1,2,3,4,1,-1", "line 2, column 2 (image_or_timestamp)", "outside the dataset root"),
])
def test_bad_csv_names_file_and_place(tmp_path: Path, line: str, place: str, words: str) -> None:
    p = _csv(tmp_path / "d", ["# header", line])
    with pytest.raises(InputError) as err:
        read_dataset(p, "viame")
    assert err.value.file == str(p) and err.value.place == place and words in err.value.message


def test_truncated_files(tmp_path: Path) -> None:
    text = (SAMPLES / "viame_example.viame.csv").read_text("utf-8")
    cut = text[: text.index("(poly)") - 40]
    p = tmp_path / "cut.csv"
    p.write_text(cut, "utf-8")
    with pytest.raises(InputError) as err:
        read_dataset(p, "viame")
    assert err.value.place is not None and err.value.place.startswith("line 4")
    raw = (SAMPLES / "viame_example.dive.json").read_text("utf-8")
    j = tmp_path / "cut.dive.json"
    j.write_text(raw[:1000], "utf-8")
    with pytest.raises(InputError) as jerr:
        read_dataset(j, "dive")
    assert jerr.value.file == str(j) and jerr.value.place is not None and jerr.value.place.startswith("line ")
    assert "malformed JSON" in jerr.value.message


def test_malformed_and_wrong_dive(tmp_path: Path) -> None:
    p = tmp_path / "x.dive.json"
    p.write_text('{"version": 2,\n "tracks": {"0": {"features": [}}}', "utf-8")
    with pytest.raises(InputError) as err:
        read_dataset(p, "dive")
    assert err.value.place == "line 2, column 32"
    p.write_text(json.dumps({"tracks": {"0": {"id": 0, "features": [{"frame": "one", "bounds": [0, 0, 1, 1]}]}}}))
    with pytest.raises(InputError) as err2:
        read_dataset(p, "dive")
    assert err2.value.place == "/tracks/0/features/0/frame"


def test_cli_bad_input_exit_2_nothing_left(tmp_path: Path) -> None:
    bad = _csv(tmp_path / "src", ["# header", "0,a.png,0,1,2,3,4,1,-1", "1,b.png,1,5,6,seven,8,1,-1"])
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["convert", str(bad), str(out), "--to", "dive", "--from", "viame"])
    assert res.exit_code == 2
    assert str(bad) in res.output and "line 3, column 6 (BR_x)" in res.output
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    bad_json = tmp_path / "src" / "t.dive.json"
    bad_json.write_text('{"tracks": {"0": ', "utf-8")
    res2 = CliRunner().invoke(main, ["convert", str(bad_json), str(out), "--to", "viame"])
    assert res2.exit_code == 2 and "line 1, column 18" in res2.output and not out.exists()
    good = CliRunner().invoke(main, ["convert", str(SAMPLES / "viame_example.viame.csv"), str(out), "--to", "dive",
                                     "--json"])
    assert good.exit_code == 0, good.output
    assert (out / "annotations.dive.json").is_file() and (out / "meta.json").is_file()


def test_lone_csv_output(tmp_path: Path) -> None:
    ds = read_dataset(SAMPLES / "viame_example.viame.csv", "viame")
    images, dets = dataset_detections(ds, ConversionReport(), "viame")
    assert [d.track_id for d in dets] == [0, 0, 1, 2] and images[0].file_name == "frame000000.png"
    rep = write_dataset(ds, tmp_path / "one.csv", "viame")
    assert rep.lossless and (tmp_path / "one.csv").is_file() and not (tmp_path / "one.csv.d").exists()
    assert read_dataset(tmp_path / "one.csv", "viame").equals(ds)
    assert attribute_definitions(dets)["detection_is_diseased"]["datatype"] == "boolean"


def test_viame_check_lists_every_bad_row(tmp_path: Path) -> None:
    p = _csv(tmp_path, ["# h", "0,a.png,0,1,2,3,4,1,-1,fish,1", "1,a.png,0,1,2", "2,b.png,x,1,2,3,4,1,-1",
                        "3,b.png,1,1,2,3,4,1,-1,(kp) head 1"])
    findings = get_format("viame").check(p)
    assert [f.place for f in findings] == ["line 3", "line 4, column 3 (frame_index)", "line 5, column 10"]
    assert all(f.file == str(p) for f in findings)
    assert get_format("viame").check(SAMPLES / "viame_example.viame.csv") == []


def test_video_timestamps_metadata_and_unknown_tokens(tmp_path: Path) -> None:
    """DIVE's video export: timestamps in column 2 and a metadata line; both come back verbatim."""
    lines = ["# 1: Detection or Track-id,2: Video or Image Identifier", "# metadata,fps: 30,exported_by: \"dive\"",
             "0,00:00:01.000000,30,1,2,3,4,0.5,-1,fish,0.5,(mask) m/1.png,(zz) future token",
             "0,,31,1.5,2,3,4,0.5,12,fish,0.5"]
    src = _csv(tmp_path / "v", lines, "dive.csv")
    ds = read_dataset(src, "viame")
    imgs = ds.images.to_pylist()
    assert [(i["file_name"], i["frame"], i["video"]) for i in imgs] == [("frame000030", 30, "dive"),
                                                                        ("frame000031", 31, "dive")]
    assert loads_attrs(imgs[0]["attributes"]) == {"timestamp": "00:00:01.000000"}
    assert ds.info["fps"] == 30.0 and ds.info["viame_metadata"]["exported_by"] == "dive"
    attrs = loads_attrs(_rows(ds)[0]["attributes"])
    assert attrs == {"mask": "m/1.png", "viame_tokens": ["(zz) future token"]}
    assert loads_attrs(_rows(ds)[1]["attributes"]) == {"length": 12.0}
    rep = write_dataset(ds, tmp_path / "o", "viame", images="none")
    assert rep.lossless, rep.render()
    text = (tmp_path / "o" / "annotations.csv").read_text("utf-8").splitlines()
    assert text[1] == "# metadata,fps: 30,exported_by: dive,video: dive"  # the video keeps its name
    assert text[2:] == lines[2:]
    assert not (tmp_path / "o" / "input_list.txt").exists()  # video frames are not image files
    assert read_dataset(tmp_path / "o", "viame").images.equals(ds.images)
    rep_dive = write_dataset(ds, tmp_path / "d", "dive", images="none")
    assert rep_dive.counts == {"timestamp-dropped": 2, "mask-reference-dropped": 1, "attributes-dropped": 1}
    meta = json.loads((tmp_path / "d" / "meta.json").read_text("utf-8"))
    assert meta["type"] == "video" and meta["name"] == "dive" and meta["fps"] == 30.0
    back = read_dataset(tmp_path / "d", "dive")
    assert back.images.select(["file_name", "frame", "video"]).equals(ds.images.select(["file_name", "frame",
                                                                                        "video"]))


def test_dive_version_1_is_read(tmp_path: Path) -> None:
    """DIVE's first file version is the tracks object itself."""
    v2 = json.loads((SAMPLES / "viame_example.dive.json").read_text("utf-8"))
    p = tmp_path / "old.json"
    p.write_text(json.dumps(v2["tracks"]), "utf-8")
    assert detect_format(p) == "dive"
    old = read_dataset(p, "dive")
    new = read_dataset(SAMPLES / "viame_example.dive.json", "dive")
    assert old.annotations.equals(new.annotations) and old.images.equals(new.images)


def test_images_without_detections_are_kept_in_the_list(tmp_path: Path) -> None:
    ds = read_dataset(SAMPLES / "viame_example.viame.csv", "viame")
    more = Dataset.from_records(ds.images.to_pylist() + [{"id": 3, "file_name": "empty.png", "frame": 2}],
                                _rows(ds), ds.categories.to_pylist())
    rep = write_dataset(more, tmp_path / "f", "viame", images="none")
    assert rep.lossless
    assert (tmp_path / "f" / "input_list.txt").read_text() == "frame000000.png\nframe000001.png\nempty.png\n"
    back = read_dataset(tmp_path / "f", "viame")
    assert back.images.select(["id", "file_name", "frame"]).equals(more.images.select(["id", "file_name", "frame"]))
    assert back.annotations.equals(more.annotations)
    lone = write_dataset(more, tmp_path / "lone.csv", "viame")
    assert lone.counts == {"image-dropped": 1} and lone.examples["image-dropped"] == ["empty.png"]
    dive_rep = write_dataset(more, tmp_path / "dv", "dive", images="none")
    assert set(dive_rep.counts) == {"score-dropped"}
    assert read_dataset(tmp_path / "dv", "dive").images.column("file_name").to_pylist()[-1] == "empty.png"


GOOD_FEATURE = {"frame": 0, "bounds": [0, 0, 1, 1]}


@pytest.mark.parametrize(("doc", "place"), [
    ({"tracks": []}, "/tracks"),
    ({"tracks": {"a": {"features": []}}}, "/tracks/a/id"),
    ({"tracks": {"0": {"id": 0}}}, "/tracks/0/features"),
    ({"tracks": {"0": {"id": 0, "features": [{"frame": -1, "bounds": [0, 0, 1, 1]}]}}},
     "/tracks/0/features/0/frame"),
    ({"tracks": {"0": {"id": 0, "features": [{**GOOD_FEATURE, "bounds": [0, 0, "1", 1]}]}}},
     "/tracks/0/features/0/bounds"),
    ({"tracks": {"0": {"id": 0, "features": [{**GOOD_FEATURE, "head": [1]}]}}}, "/tracks/0/features/0/head"),
    ({"tracks": {"0": {"id": 0, "features": [{**GOOD_FEATURE, "geometry": {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"key": ""},
         "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, "x"], [1, 1]]]}}]}}]}}},
     "/tracks/0/features/0/geometry/features/0/geometry"),
    ({"tracks": {"0": {"id": 0, "features": [GOOD_FEATURE]}}, "groups": {"1": {"members": {"0": {"ranges": [[0]]}}}}},
     "/groups/1/members/0/ranges/0"),
])
def test_read_and_check_agree_on_bad_dive(tmp_path: Path, doc: dict[str, Any], place: str) -> None:
    """The reader's fast structural check and the JSON Schema point at the same place."""
    p = tmp_path / "bad.dive.json"
    p.write_text(json.dumps(doc), "utf-8")
    with pytest.raises(InputError) as err:
        read_dataset(p, "dive")
    assert err.value.file == str(p) and err.value.place is not None and err.value.place.startswith(place)
    findings = get_format("dive").check(p)
    assert findings and any((f.place or "").startswith(place) or place.startswith(f.place or "~")
                            for f in findings), [f.place for f in findings]


def test_not_utf8_names_the_byte(tmp_path: Path) -> None:
    p = tmp_path / "latin.csv"
    p.write_bytes(b"0,caf\xe9.png,0,1,2,3,4,1,-1\n")
    with pytest.raises(InputError) as err:
        read_dataset(p, "viame")
    assert err.value.file == str(p) and err.value.place == "line 1, byte 5"


def test_dive_interpolation_expanded_on_request(tmp_path: Path) -> None:
    """``interpolate=True`` adds DIVE's interpolated frames (round(a·(1-t) + b·t), keyframe false)."""
    doc = {"version": 2, "tracks": {"1": {"id": 1, "confidencePairs": [["fish", 0.5]], "begin": 0, "end": 4,
                                          "features": [{"frame": 0, "bounds": [0, 0, 10, 10], "interpolate": True},
                                                       {"frame": 4, "bounds": [8, 4, 20, 13]}]}}}
    p = tmp_path / "i.dive.json"
    p.write_text(json.dumps(doc), "utf-8")
    plain_rep = ConversionReport()
    plain = read_dataset(p, "dive", report=plain_rep)
    assert plain.num_annotations == 2 and plain_rep.counts["interpolation-not-expanded"] == 1
    rep = ConversionReport()
    ds = read_dataset(p, "dive", interpolate=True, report=rep)
    assert "interpolation-not-expanded" not in rep.counts
    boxes = {r["image_id"]: (r["bbox_x"], r["bbox_y"], r["bbox_x"] + r["bbox_w"], r["bbox_y"] + r["bbox_h"])
             for r in _rows(ds)}
    frames = dict(zip(ds.images.column("id").to_pylist(), ds.images.column("frame").to_pylist(), strict=True))
    by_frame = {frames[i]: b for i, b in boxes.items()}
    assert by_frame == {0: (0, 0, 10, 10), 1: (2, 1, 12, 11), 2: (4, 2, 15, 12), 3: (6, 3, 18, 12), 4: (8, 4, 20, 13)}
    assert [loads_attrs(r["attributes"]).get("keyframe") for r in _rows(ds)] == [None, False, False, False, None]


def test_dive_image_list_cannot_escape_the_root(tmp_path: Path) -> None:
    (tmp_path / "a.dive.json").write_text(json.dumps({"tracks": {}}), "utf-8")
    (tmp_path / "meta.json").write_text(json.dumps({"originalImageFiles": ["ok.png", "../../secret.png"]}), "utf-8")
    with pytest.raises(InputError) as err:
        read_dataset(tmp_path / "a.dive.json", "dive")
    assert err.value.file == str(tmp_path / "meta.json") and err.value.place == "image list entry 1"
    assert "outside the dataset root" in err.value.message
