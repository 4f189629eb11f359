"""Layers, NMS, weights loading and the data pipeline (letterbox, augmentation with boxes, tiling, sampling)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.models.helpers import AQUARIUM, aquarium_dataset

torch = pytest.importorskip("torch")

from imagine.kernel import InputError  # noqa: E402
from imagine.models.data import (  # noqa: E402
    Augment,
    augment_batch,
    balanced_order,
    channel_stats,
    class_weights,
    detection_examples,
    letterbox_params,
    load_letterboxed,
    stratified_folds,
    stratified_split,
    tile_windows,
)
from imagine.models.nets import (  # noqa: E402
    CenterNet,
    build_classifier,
    build_detector,
    decode_centernet,
    load_weights,
    nms,
)


@pytest.mark.parametrize("arch", ["resnet", "mobilenet"])
@pytest.mark.parametrize("depth", [1, 2])
def test_classifiers_shapes_and_width(arch: str, depth: int) -> None:
    small = build_classifier(arch, 5, width=8, depth=depth)
    big = build_classifier(arch, 5, width=16, depth=depth)
    assert small(torch.zeros(2, 3, 64, 64)).shape == (2, 5)
    n = sum(p.numel() for p in small.parameters())
    assert sum(p.numel() for p in big.parameters()) > 2 * n


def test_detector_heads_at_stride_4_and_decode() -> None:
    det = build_detector(3, width=8)
    out = det(torch.zeros(1, 3, 128, 128))
    assert out["heat"].shape == (1, 3, 32, 32) and out["size"].shape == (1, 2, 32, 32)
    # a hand-made peak decodes to the box it encodes
    heat = torch.full((1, 3, 32, 32), -10.0)
    heat[0, 2, 10, 20] = 5.0
    size = torch.zeros(1, 2, 32, 32)
    size[0, :, 10, 20] = torch.log(torch.tensor([8.0, 4.0]))   # 32 × 16 px
    off = torch.zeros(1, 2, 32, 32)
    off[0, :, 10, 20] = torch.tensor([0.5, 0.25])
    (boxes, scores, cls), = decode_centernet({"heat": heat, "size": size, "offset": off}, threshold=0.5)
    assert cls.tolist() == [2]
    cx, cy = (20.5) * CenterNet.stride, (10.25) * CenterNet.stride
    assert boxes[0].tolist() == pytest.approx([cx - 16, cy - 8, cx + 16, cy + 8])


def test_nms_greedy_and_class_wise() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert nms(boxes, scores, iou=0.5).tolist() == [0, 3]
    labels = torch.tensor([0, 0, 1, 0])
    assert nms(boxes, scores, labels, iou=0.5).tolist() == [0, 2, 3]
    assert nms(boxes, scores, iou=0.99).tolist() == [0, 1, 3]
    assert nms(torch.zeros(0, 4), torch.zeros(0)).tolist() == []


def test_local_weights_initialise_matching_layers(tmp_path: Path) -> None:
    src = build_classifier("resnet", 10, width=8)
    torch.save({"state_dict": src.state_dict()}, tmp_path / "w.pt")
    dst = build_classifier("resnet", 7, width=8)
    info = load_weights(dst, str(tmp_path / "w.pt"))
    assert info["skipped"] == ["head.bias", "head.weight"]     # another dataset's head
    assert torch.equal(dst.state_dict()["backbone.stem.0.0.weight"], src.state_dict()["backbone.stem.0.0.weight"])
    with pytest.raises(InputError, match="do not match"):
        load_weights(dst, str(tmp_path / "w.pt"), strict=True)
    (tmp_path / "junk.pt").write_text("not weights")
    with pytest.raises(InputError, match="junk.pt"):
        load_weights(dst, str(tmp_path / "junk.pt"))
    with pytest.raises(InputError, match="no tensor"):
        load_weights(build_classifier("mobilenet", 7, width=8), str(tmp_path / "w.pt"))


def test_letterbox_keeps_boxes_on_the_objects() -> None:
    ds = aquarium_dataset({"test": 2})
    ex = detection_examples(ds)
    imgs, tf = load_letterboxed(AQUARIUM, ex, 128)
    assert imgs.shape == (2, 3, 128, 128) and imgs.dtype == torch.uint8
    s, nw, nh, px, py = letterbox_params(768, 1024, 128)
    assert (nw, nh, px, py) == (96, 128, 16, 0) and tf[0].tolist()[:3] == [s, 16, 0]
    assert (imgs[0, :, :, :16] == 114).all() and not (imgs[0, :, :, 16:112] == 114).all()
    mean, std = channel_stats(imgs)
    assert all(0 < m < 1 for m in mean) and all(0 < v < 1 for v in std)


def _square(size: int, box: tuple[int, int, int, int]) -> tuple[Any, np.ndarray]:
    x = torch.zeros(1, 3, size, size)
    x1, y1, x2, y2 = box
    x[0, :, y1:y2, x1:x2] = 1.0
    return x, np.array([box], dtype=np.float64)


def test_horizontal_flip_moves_the_box_with_the_image() -> None:
    x, b = _square(64, (5, 10, 25, 30))
    aug = Augment.none()
    aug.hflip = 1.0
    y, boxes, kept = augment_batch(x, [b], aug, torch.Generator().manual_seed(0))
    assert boxes is not None and kept is not None and kept[0].tolist() == [True]
    assert boxes[0][0].tolist() == pytest.approx([39, 10, 59, 30])
    assert torch.allclose(y[0], torch.flip(x[0], dims=[2]), atol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_random_affine_boxes_cover_the_moved_object(seed: int) -> None:
    x, b = _square(96, (30, 40, 60, 56))
    aug = Augment(hflip=0.5, vflip=0.5, rotate=30, rot90=True, scale=(0.8, 1.2), translate=0.1,
                  brightness=0, contrast=0, saturation=0)
    y, boxes, _ = augment_batch(x, [b], aug, torch.Generator().manual_seed(seed))
    assert boxes is not None
    ys, xs = np.nonzero(y[0, 0].numpy() > 0.5)
    bx = boxes[0][0]
    # the object's pixels lie inside the transformed box (1 px for interpolation) and fill most of it
    assert xs.min() >= bx[0] - 1 and xs.max() + 1 <= bx[2] + 1 and ys.min() >= bx[1] - 1 and ys.max() + 1 <= bx[3] + 1
    assert len(xs) > 0.3 * (bx[2] - bx[0]) * (bx[3] - bx[1])


def test_augmentation_is_seeded() -> None:
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    a, _, _ = augment_batch(x.clone(), None, Augment(), torch.Generator().manual_seed(5))
    b, _, _ = augment_batch(x.clone(), None, Augment(), torch.Generator().manual_seed(5))
    c, _, _ = augment_batch(x.clone(), None, Augment(), torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_tiling_covers_the_image_and_clips_boxes() -> None:
    wins = tile_windows(1024, 768, 2)
    xs = {x for x, _, _, _ in wins}
    assert len(wins) == 4 and min(xs) == 0 and max(x + w for x, _, w, _ in wins) == 1024
    ds = aquarium_dataset({"test": 2})
    plain, tiled = detection_examples(ds), detection_examples(ds, tile=2)
    assert len(tiled) == 4 * len(plain)
    for i, bx in enumerate(tiled.boxes):
        x, y, w, h = tiled.windows[i]
        assert ((bx >= 0) & (bx[:, [0, 2]] <= w).all() & (bx[:, [1, 3]] <= h).all()).all()
    assert sum(len(b) for b in tiled.boxes) >= sum(len(b) for b in plain.boxes) // 2


def test_class_balance_weights_and_sampler() -> None:
    labels = np.array([0] * 90 + [1] * 10)
    w = class_weights(labels, 3)
    assert w[2] == 0 and w[1] == pytest.approx(9 * w[0]) and w[:2].mean() == pytest.approx(1)
    order = balanced_order(labels, 3, torch.Generator().manual_seed(0)).numpy()
    share = (labels[order] == 1).mean()
    assert 0.35 < share < 0.65


def test_stratified_split_and_folds() -> None:
    labels = np.repeat(np.arange(4), [10, 20, 5, 1])
    hold = stratified_split(labels, 0.2, seed=0)
    assert [int(hold[labels == k].sum()) for k in range(4)] == [2, 4, 1, 0]
    assert np.array_equal(hold, stratified_split(labels, 0.2, seed=0))
    folds = stratified_folds(labels, 5, seed=0)
    assert np.bincount(folds).tolist() == [8, 7, 7, 7, 7] or sorted(np.bincount(folds)) == [7, 7, 7, 7, 8]
    assert set(folds[labels == 1]) == set(range(5))
