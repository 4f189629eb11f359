"""The curation part of the main job, on the bundled Aquarium sample.

Reads the sample (Ultralytics YOLO as Roboflow exported it), validates it, converts it to the
native form and to COCO, VOC and CVAT, and collects statistics and conversion reports. The whole
path to a deposit (``imagine-publish demo``) starts with this.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from imagine.kernel import Finding

from .formats import convert, read_dataset
from .model import Dataset
from .stats import dataset_stats, render_stats
from .validate import validate_source

SAMPLE_FORMATS = ("native", "coco", "voc", "cvat")


@contextlib.contextmanager
def sample_path(name: str = "aquarium") -> Iterator[Path]:
    """A filesystem path to a bundled sample dataset (extracted when installed as a zip)."""
    with resources.as_file(resources.files("imagine.curate.sample").joinpath(name)) as p:
        yield p


@dataclass
class DemoStep:
    name: str
    summary: str
    data: dict[str, Any] = field(default_factory=dict)
    ok: bool = True


@dataclass
class DemoResult:
    """Steps run so far, each with a one-line summary and its data for ``--json``."""

    steps: list[DemoStep] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps)

    def add(self, name: str, summary: str, data: dict[str, Any] | None = None, ok: bool = True,
            detail: str | None = None) -> None:
        self.steps.append(DemoStep(name, summary, data or {}, ok))
        if detail:
            self.details.append(detail)

    @property
    def text(self) -> str:
        lines = [f"[{'ok' if s.ok else '!!'}] {s.name}: {s.summary}" for s in self.steps]
        return "\n\n".join(self.details + ["\n".join(lines)])

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "steps": [{"name": s.name, "summary": s.summary, "ok": s.ok, **s.data}
                                         for s in self.steps]}


def run_curation(src: Path, out: Path, result: DemoResult) -> Dataset:
    """Validate, read, convert and describe ``src``; outputs under ``out``; returns the dataset."""
    findings: list[Finding] = validate_source(src)
    errors = [f for f in findings if f.severity == "error"]
    result.add("validate", f"{len(errors)} error(s), {len(findings) - len(errors)} warning(s) in {src.name}",
               {"findings": [f.to_dict() for f in findings]},
               detail="validation findings:\n" + ("\n".join(f"  {f.render()}" for f in findings) or "  none"))
    ds = read_dataset(src)
    stats = dataset_stats(ds)
    result.add("read", f"{stats['images']} images, {stats['annotations']} annotations, "
               f"{stats['categories']} classes ({ds.info.get('source_format')})", {"stats": stats},
               detail="statistics:\n" + render_stats(stats))
    for fmt in SAMPLE_FORMATS:
        _, report = convert(src, out / fmt, fmt, images="copy" if fmt == "native" else "none")
        result.add(f"convert to {fmt}", "lossless" if report.lossless else
                   f"{sum(report.counts.values())} item(s) not carried ({', '.join(sorted(report.counts))})",
                   {"report": report.to_dict(), "output": str(out / fmt)}, detail=report.render())
    return ds


def run_demo(out: Path) -> DemoResult:
    """The curation main job on the bundled sample; see the module docstring."""
    result = DemoResult()
    with sample_path() as src:
        run_curation(src, out, result)
    return result
