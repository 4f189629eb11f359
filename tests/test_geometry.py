"""Geometry operations on hand-checked cases, checked against pycocotools where it applies."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from pycocotools import mask as mask_utils

from imagine.curate import geometry as g
from imagine.curate.model import Dataset
from imagine.kernel import ConversionReport


def test_rbox_envelope_hand_checked() -> None:
    assert g.rbox_to_box(10, 20, 4, 2, 0) == pytest.approx((8, 19, 4, 2))
    assert g.rbox_to_box(10, 20, 4, 2, 90) == pytest.approx((9, 18, 2, 4))
    s = math.sqrt(2)  # a 2×2 square turned 45° spans its diagonal
    assert g.rbox_to_box(0, 0, 2, 2, 45) == pytest.approx((-s, -s, 2 * s, 2 * s))
    # agrees with the corners of the existing helper
    corners = g.rbox_corners(5, 5, 6, 2, 30)
    assert g.rbox_to_box(5, 5, 6, 2, 30) == pytest.approx(g.points_envelope([corners]))


def test_line_to_box_minimum_side() -> None:
    assert g.line_to_box([0, 10, 100, 10], 8) == (0, 6, 100, 8)  # flat line → 8 px high, centred
    assert g.line_to_box([5, 5, 5, 5], 4) == (3, 3, 4, 4)
    assert g.line_to_box([0, 0, 30, 40], 8) == (0, 0, 30, 40)  # already big enough: the envelope
    assert all(math.isnan(v) for v in g.line_to_box([], 4))


def test_pad_and_clip_arrays() -> None:
    b = np.array([[10.0, 10, 5, 5], [0, 0, 2, 2]])
    np.testing.assert_array_equal(g.pad_boxes(b, 25), [[-15, -15, 55, 55], [-25, -25, 52, 52]])
    np.testing.assert_array_equal(g.pad_boxes(b, np.array([1.0, 0])), [[9, 9, 7, 7], [0, 0, 2, 2]])
    np.testing.assert_array_equal(g.clip_boxes([[-5.0, 2, 10, 20], [50, 50, 5, 5]], 12, 15),
                                  [[0, 2, 5, 13], [12, 15, 0, 0]])


def _ds() -> Dataset:
    return Dataset.from_records(
        [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 50}, {"id": 2, "file_name": "b.jpg"}],
        [{"id": 1, "image_id": 1, "category_id": 1, "kind": "box", "bbox_x": 10.0, "bbox_y": 10.0, "bbox_w": 5.0,
          "bbox_h": 5.0},
         {"id": 2, "image_id": 1, "category_id": 2, "kind": "box", "bbox_x": 90.0, "bbox_y": 40.0, "bbox_w": 5.0,
          "bbox_h": 5.0},
         {"id": 3, "image_id": 1, "category_id": 2, "kind": "polyline", "bbox_x": 0.0, "bbox_y": 20.0,
          "bbox_w": 60.0, "bbox_h": 0.0, "geometry": [[0.0, 20.0, 60.0, 20.0]]},
         {"id": 4, "image_id": 2, "category_id": 1, "kind": "rbox", "bbox_x": 8.0, "bbox_y": 19.0, "bbox_w": 4.0,
          "bbox_h": 2.0, "geometry": [[10.0, 20.0, 4.0, 2.0, 90.0]]}],
        [{"id": 1, "name": "fish"}, {"id": 2, "name": "crab"}])


def test_dataset_pad_per_class_with_clipping() -> None:
    rep = ConversionReport()
    out = g.pad(_ds(), 2, per_class={"crab": 25}, report=rep)
    b = np.stack([out.annotations.column(c).to_numpy() for c in ("bbox_x", "bbox_y", "bbox_w", "bbox_h")], 1)
    np.testing.assert_array_equal(b[0], [8, 8, 9, 9])           # fish: 2 px
    np.testing.assert_array_equal(b[1], [65, 15, 35, 35])       # crab: 25 px, clipped at 100 × 50
    assert rep.counts == {"box-padded": 2, "pad-skipped": 2}
    assert _ds().annotations.column("bbox_x")[0].as_py() == 10.0  # the input is untouched


def test_dataset_lines_rotated_and_clip() -> None:
    rep = ConversionReport()
    out = g.lines_to_boxes(_ds(), min_side=10, report=rep)
    row = out.annotations.to_pylist()[2]
    assert (row["kind"], row["bbox_y"], row["bbox_h"], row["geometry"]) == ("box", 15.0, 10.0, None)
    assert rep.counts == {"line-box-widened": 1, "polyline-to-box": 1}
    out = g.rotated_to_boxes(out, report=rep)
    assert out.annotations.to_pylist()[3]["kind"] == "box"
    assert rep.counts["rbox-to-box"] == 1
    padded = g.pad(_ds(), 20, clip=False)
    rep = ConversionReport()
    g.clip(padded, report=rep)
    assert rep.counts["box-clipped"] == 2 and rep.counts["clip-size-unknown"] == 1


def test_contour_tracer_exact_with_holes_and_diagonals() -> None:
    m = np.zeros((9, 10), np.uint8)
    m[1:7, 1:7] = 1
    m[3:5, 3:5] = 0          # a hole
    m[7, 7] = 1              # touches the square only at a corner
    polys = g.mask_to_polygons(m)
    outers = polys[:polys.index([])]
    assert sorted(outers) == sorted([[1.0, 1.0, 1.0, 7.0, 7.0, 7.0, 7.0, 1.0], [8.0, 7.0, 7.0, 7.0, 7.0, 8.0, 8.0,
                                                                                  8.0]])
    holes = polys[polys.index([]) + 1:]
    assert len(holes) == 1 and g.ring_area(holes[0]) == 4.0  # positive: a hole
    assert set(zip(holes[0][0::2], holes[0][1::2], strict=True)) == {(3, 3), (5, 3), (5, 5), (3, 5)}
    assert all(g.ring_area(r) < 0 for r in outers)
    rle = g.polygons_to_rle(polys, 9, 10)
    np.testing.assert_array_equal(g.rle_to_mask(rle, 9, 10), m)


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.integers(0, 1)))
def test_rle_polygon_rle_is_exact(m: np.ndarray) -> None:
    h, w = m.shape
    rle = g.mask_to_rle(m)
    polys = g.rle_to_polygons(rle, h, w)
    assert g.polygons_to_rle(polys, h, w) == rle
    counts = g.rle_to_counts(rle, h, w)
    assert sum(counts) == h * w and g.counts_to_rle(counts, h, w) == rle
    if m.any():
        assert g.mask_to_box(rle, h, w) == tuple(float(v) for v in mask_utils.toBbox(
            {"size": [h, w], "counts": rle.encode()}))


def test_dataset_masks_and_polygons() -> None:
    m = np.zeros((6, 8), np.uint8)
    m[1:4, 2:6] = 1
    ds = Dataset.from_records([{"id": 1, "file_name": "a.jpg", "width": 8, "height": 6}],
                              [{"id": 1, "image_id": 1, "category_id": 1, "kind": "mask", "bbox_x": 2.0,
                                "bbox_y": 1.0, "bbox_w": 4.0, "bbox_h": 3.0, "geometry": [[6.0, 8.0]],
                                "rle": g.mask_to_rle(m)}], [{"id": 1, "name": "x"}])
    rep = ConversionReport()
    poly = g.masks_to_polygons(ds, report=rep)
    assert poly.annotations.column("geometry")[0].as_py() == [[2.0, 1.0, 2.0, 4.0, 6.0, 4.0, 6.0, 1.0]]
    back = g.polygons_to_masks(poly, report=rep)
    assert back.annotations.column("rle").equals(ds.annotations.column("rle"))
    assert rep.counts == {"mask-to-polygon": 1, "polygon-to-mask": 1}
    boxes = g.to_boxes(ds, report=rep)
    assert boxes.annotations.column("kind")[0].as_py() == "box" and rep.counts["mask-to-box"] == 1
