"""Network architectures in plain PyTorch (torchvision is not available): classifiers and a detector.

Classifiers: a small ResNet-style network (basic residual blocks) and a MobileNetV2-style network
(inverted residuals with depthwise convolutions), both with ``width`` and ``depth`` parameters so a
baseline fits the data size and the hardware. Detector: a CenterNet-style single-stage, anchor-free
detector (class heat maps + box size + centre offset at stride 4) whose decoded boxes go through
our own class-wise non-maximum suppression.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imagine.kernel import InputError

__all__ = ["ResNet", "MobileNet", "CenterNet", "build_classifier", "build_detector", "nms", "box_iou",
           "load_weights", "ARCHS"]

ARCHS = ("resnet", "mobilenet")


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with an identity (or 1×1 projection) shortcut, as in ResNet-18."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(cin, cout, 3, stride), _conv_bn(cout, cout, 3, 1, act=False))
        self.short: nn.Module = nn.Identity() if stride == 1 and cin == cout else \
            _conv_bn(cin, cout, 1, stride, act=False)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.body(x) + self.short(x))


class ResNetBackbone(nn.Module):
    """Stem + four stages of basic blocks; widths ``width × (1, 2, 4, 8)``, ``depth`` blocks per stage.

    ``features`` returns the stage outputs at strides 4, 8, 16 and 32 (the detector uses them).
    """

    def __init__(self, width: int = 16, depth: int = 1):
        super().__init__()
        self.stem = nn.Sequential(_conv_bn(3, width, 3, 2), _conv_bn(width, width, 3, 1))
        chans = [width, width * 2, width * 4, width * 8]
        stages = []
        cin = width
        for i, c in enumerate(chans):
            blocks = [BasicBlock(cin, c, 2)]
            blocks += [BasicBlock(c, c, 1) for _ in range(max(depth, 1) - 1)]
            stages.append(nn.Sequential(*blocks))
            cin = c
            del i
        self.stages = nn.ModuleList(stages)
        self.channels = chans

    def features(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        out = []
        for s in self.stages:
            x = s(x)
            out.append(x)
        return out


class ResNet(nn.Module):
    """ResNet-style classifier: backbone, global average pooling, dropout, linear head."""

    def __init__(self, num_classes: int, width: int = 16, depth: int = 1, dropout: float = 0.0):
        super().__init__()
        self.backbone = ResNetBackbone(width, depth)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(self.backbone.channels[-1], num_classes)

    def forward(self, x: Tensor) -> Tensor:
        f = self.backbone.features(x)[-1]
        return self.head(self.drop(f.mean(dim=(2, 3))))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1×1 expansion, 3×3 depthwise, 1×1 linear projection, residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hid = cin * expand
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(_conv_bn(cin, hid, 1))
        layers += [_conv_bn(hid, hid, 3, stride, groups=hid), _conv_bn(hid, cout, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class MobileNet(nn.Module):
    """MobileNetV2-style classifier; ``width`` is the stem width, ``depth`` the blocks per stage."""

    def __init__(self, num_classes: int, width: int = 16, depth: int = 1, expand: int = 4, dropout: float = 0.0):
        super().__init__()
        chans = [width, int(width * 1.5), width * 2, width * 4, width * 6]
        strides = [1, 2, 2, 2, 1]
        layers: list[nn.Module] = [_conv_bn(3, width, 3, 2)]
        cin = width
        for c, s in zip(chans, strides, strict=True):
            for j in range(max(depth, 1)):
                layers.append(InvertedResidual(cin, c, s if j == 0 else 1, 1 if c == width else expand))
                cin = c
        last = width * 16
        layers.append(_conv_bn(cin, last, 1))
        self.features = nn.Sequential(*layers)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(last, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.drop(self.features(x).mean(dim=(2, 3))))


def build_classifier(arch: str, num_classes: int, width: int = 16, depth: int = 1, dropout: float = 0.0
                     ) -> nn.Module:
    """A classifier by name (``resnet`` or ``mobilenet``)."""
    if arch == "resnet":
        return ResNet(num_classes, width, depth, dropout)
    if arch == "mobilenet":
        return MobileNet(num_classes, width, depth, dropout=dropout)
    raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHS)}")


# --------------------------------------------------------------------------------------------
# Detector


class CenterNet(nn.Module):
    """CenterNet-style detector: ResNet backbone, a small FPN-like neck up to stride 4, three heads.

    Heads: ``heat`` (one sigmoid heat map per class, peaks at box centres), ``size`` (box width and
    height in input pixels, log-encoded) and ``offset`` (sub-cell centre offset).
    """

    stride = 4

    def __init__(self, num_classes: int, width: int = 16, depth: int = 1, head: int = 64):
        super().__init__()
        self.num_classes = num_classes
        self.backbone = ResNetBackbone(width, depth)
        c = self.backbone.channels
        self.lat = nn.ModuleList([nn.Conv2d(ci, head, 1) for ci in c])
        self.smooth = _conv_bn(head, head, 3)

        def head_branch(out: int) -> nn.Sequential:
            return nn.Sequential(_conv_bn(head, head, 3), nn.Conv2d(head, out, 1))

        self.heat = head_branch(num_classes)
        self.size = head_branch(2)
        self.offset = head_branch(2)
        # Focal-loss prior: start with low scores everywhere (CenterNet's bias −2.19).
        last = self.heat[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.constant_(last.bias, -2.19)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        feats = self.backbone.features(x)
        y = self.lat[-1](feats[-1])
        for f, lat in zip(reversed(feats[:-1]), reversed(list(self.lat[:-1])), strict=True):
            y = F.interpolate(y, size=f.shape[-2:], mode="nearest") + lat(f)
        y = self.smooth(y)
        return {"heat": self.heat(y), "size": self.size(y), "offset": self.offset(y)}


def build_detector(num_classes: int, width: int = 16, depth: int = 1) -> CenterNet:
    return CenterNet(num_classes, width, depth, head=max(32, width * 4))


def box_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU of boxes in ``x1, y1, x2, y2`` form: (N, 4) × (M, 4) → (N, M)."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def nms(boxes: Tensor, scores: Tensor, labels: Tensor | None = None, iou: float = 0.5) -> Tensor:
    """Greedy non-maximum suppression; indices kept, by decreasing score (class-wise when labels given).

    Class-wise suppression uses the usual offset trick: boxes of different classes are moved apart
    so they never overlap, then one greedy pass runs over all of them.
    """
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long)
    b = boxes
    if labels is not None:
        span = boxes.max() - boxes.min() + 1
        b = boxes + (labels.to(boxes.dtype) * span)[:, None]
    order = torch.argsort(scores, descending=True, stable=True)
    b = b[order]
    ious = box_iou(b, b)
    n = len(order)
    keep = torch.ones(n, dtype=torch.bool)
    for i in range(n):
        if not keep[i]:
            continue
        sup = ious[i, i + 1:] > iou
        keep[i + 1:] &= ~sup
    return order[keep]


def decode_centernet(out: dict[str, Tensor], top_k: int = 100, threshold: float = 0.01, nms_iou: float = 0.5
                     ) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Heads → per image ``(boxes xyxy in input pixels, scores, class indices)`` after peak picking and NMS."""
    heat = out["heat"].sigmoid()
    bsz, ncls, h, w = heat.shape
    peaks = F.max_pool2d(heat, 3, 1, 1)
    heat = heat * (peaks == heat).to(heat.dtype)
    stride = CenterNet.stride
    results = []
    for i in range(bsz):
        flat = heat[i].reshape(-1)
        k = min(top_k, flat.numel())
        scores, idx = torch.topk(flat, k)
        keep = scores >= threshold
        scores, idx = scores[keep], idx[keep]
        cls = idx // (h * w)
        pix = idx % (h * w)
        ys, xs = pix // w, pix % w
        off = out["offset"][i, :, ys, xs]
        size = out["size"][i, :, ys, xs].clamp(-10, 10).exp() * stride
        cx = (xs.to(heat.dtype) + off[0]) * stride
        cy = (ys.to(heat.dtype) + off[1]) * stride
        boxes = torch.stack([cx - size[0] / 2, cy - size[1] / 2, cx + size[0] / 2, cy + size[1] / 2], dim=1)
        kept = nms(boxes, scores, cls, nms_iou)
        results.append((boxes[kept], scores[kept], cls[kept]))
    return results


def load_weights(model: nn.Module, path: str, *, strict: bool = False) -> dict[str, Any]:
    """Load a local weights file (a state dict, or a checkpoint holding ``state_dict``/``model``).

    Layers whose shapes differ (typically the classification head of another dataset) are
    skipped, so a backbone trained elsewhere initialises this one; returns what was loaded/skipped.
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError("weights file not found", file=path) from None
    except Exception as exc:  # torch raises pickle, zip and runtime errors for foreign files
        raise InputError(f"not a PyTorch weights file this can load: {exc}", file=path) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    elif isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    if not isinstance(obj, dict):
        raise InputError("the weights file holds no state dict", file=path)
    own = model.state_dict()
    take = {k: v for k, v in obj.items() if k in own and hasattr(v, "shape") and v.shape == own[k].shape}
    skipped = sorted(set(obj) - set(take))
    if strict and (skipped or len(take) != len(own)):
        raise InputError(f"weights do not match the model: {len(skipped)} tensor(s) skipped", file=path)
    if not take:
        raise InputError("no tensor of the weights file matches this model (another architecture or width?)",
                         file=path)
    model.load_state_dict(take, strict=False)
    return {"loaded": len(take), "skipped": skipped[:20], "missing": len(own) - len(take)}
