"""Annotation formats: one module per format, each registering a reader and/or writer by name.

``read_dataset`` / ``write_dataset`` / ``convert`` are the only entry points the rest of the
project uses; they detect formats, carry a :class:`~imagine.kernel.ConversionReport` through the
reader and the writer, and make every write atomic (a temporary sibling renamed into place), so a
failing conversion leaves nothing half-written.
"""

from __future__ import annotations

import importlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagine.kernel import ConversionReport, Finding, InputError, UsageError, atomic_dir, safe_join

from ..model import Dataset

__all__ = ["Format", "ReadContext", "WriteContext", "register", "get_format", "formats", "detect_format",
           "read_dataset", "write_dataset", "convert"]

# Modules imported on first use of the registry; each calls ``register`` at import time.
FORMAT_MODULES = ("native", "coco", "yolo", "voc", "cvat", "labelstudio", "via", "biigle", "viame", "dive",
                  "supervisely", "labelbox", "imagefolder", "hf")


@dataclass
class ReadContext:
    """What a reader gets besides the path: the report to fill and format options."""

    report: ConversionReport
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class WriteContext:
    """What a writer gets besides the dataset and output folder.

    ``images`` says what to do with image files: ``copy`` (default), ``link`` (hard link, falling
    back to copy) or ``none`` (write annotations only). ``root`` is where the source images are.
    """

    report: ConversionReport
    root: Path | None = None
    images: str = "copy"
    options: dict[str, Any] = field(default_factory=dict)
    single_file: bool = False  # True when only ``Format.file_name`` is kept (DST is that one file)

    def put_image(self, file_name: str, out: Path) -> bool:
        """Place the source image ``file_name`` at ``out``; report and return False when missing."""
        if self.images == "none":
            return False
        if self.root is None:
            self.report.add("image-not-copied", "the source has no image folder; images were not written",
                            file_name)
            return False
        src = safe_join(self.root, file_name)
        if not src.is_file():
            self.report.add("image-missing", "image file not found in the source; not written", file_name)
            return False
        out.parent.mkdir(parents=True, exist_ok=True)
        if self.images == "link":
            try:
                os.link(src, out)
                return True
            except OSError:
                pass
        shutil.copyfile(src, out)
        return True


Reader = Callable[[Path, ReadContext], Dataset]
Writer = Callable[[Dataset, Path, WriteContext], None]
Detector = Callable[[Path], int]


@dataclass
class Format:
    """A registered format. ``detect`` returns a confidence (0 = not this format, 100 = certain).

    ``file_name`` is set for formats whose whole output is one file: when DST ends with that file's
    suffix, the file itself is written at DST instead of a folder holding it.
    ``check`` (optional) runs the format's structural checks (e.g. its JSON Schema) and returns
    every finding at once, with file and place, where ``read`` would stop at the first error.
    """

    name: str
    description: str
    read: Reader | None = None
    write: Writer | None = None
    detect: Detector | None = None
    file_name: str | None = None
    check: Callable[[Path], list[Finding]] | None = None


_REGISTRY: dict[str, Format] = {}
_LOADED = False


def register(fmt: Format) -> Format:
    """Register a format under its name (called by each format module at import)."""
    _REGISTRY[fmt.name] = fmt
    return fmt


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for mod in FORMAT_MODULES:
        try:
            importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as exc:
            # A format module not written yet, or whose optional dependency is missing, is skipped;
            # asking for it by name then says so.
            if exc.name not in (f"{__name__}.{mod}",) and not (exc.name or "").startswith(("datasets",)):
                raise


def formats() -> dict[str, Format]:
    """All registered formats by name."""
    _load()
    return dict(_REGISTRY)


def get_format(name: str) -> Format:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UsageError(f"unknown format {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def detect_format(src: str | os.PathLike[str]) -> str:
    """Name of the format that most confidently claims ``src``; UsageError when none does."""
    _load()
    path = Path(src)
    if not path.exists():
        raise InputError("no such file or folder", file=path)
    best, score = None, 0
    for fmt in _REGISTRY.values():
        if fmt.detect is None or fmt.read is None:
            continue
        s = fmt.detect(path)
        if s > score:
            best, score = fmt.name, s
    if best is None:
        raise UsageError("cannot tell the annotation format; name it with --from "
                         f"({', '.join(sorted(n for n, f in _REGISTRY.items() if f.read))})", file=path)
    return best


def read_dataset(src: str | os.PathLike[str], fmt: str | None = None, *, report: ConversionReport | None = None,
                 **options: Any) -> Dataset:
    """Read ``src`` (file or folder) in format ``fmt`` (detected when None) into a Dataset."""
    path = Path(src)
    name = fmt or detect_format(path)
    f = get_format(name)
    if f.read is None:
        raise UsageError(f"format {name!r} can only be written")
    if not path.exists():
        raise InputError("no such file or folder", file=path)
    report = report if report is not None else ConversionReport()
    report.source_format = name
    ds = f.read(path, ReadContext(report, options))
    ds.info.setdefault("source_format", name)
    return ds


def write_dataset(ds: Dataset, dst: str | os.PathLike[str], fmt: str, *, report: ConversionReport | None = None,
                  root: str | os.PathLike[str] | None = None, images: str = "copy", overwrite: bool = True,
                  **options: Any) -> ConversionReport:
    """Write ``ds`` to ``dst`` in format ``fmt`` atomically; return the conversion report.

    ``root`` is the folder the dataset's image file names are relative to (defaults to where it
    was read from, ``ds.info['root']``).
    """
    f = get_format(fmt)
    if f.write is None:
        raise UsageError(f"format {fmt!r} can only be read")
    if images not in ("copy", "link", "none"):
        raise UsageError(f"images must be copy, link or none, not {images!r}")
    report = report if report is not None else ConversionReport()
    report.target_format = fmt
    root_p = Path(root) if root is not None else (Path(ds.info["root"]) if ds.info.get("root") else None)
    ctx = WriteContext(report, root_p, images, options)
    dst_p = Path(dst)
    single = f.file_name is not None and dst_p.suffix and dst_p.suffix == Path(f.file_name).suffix
    if single:
        if dst_p.exists() and not overwrite:
            raise UsageError("output exists", file=dst_p)
        ctx.images = "none"
        ctx.single_file = True
        with atomic_dir(dst_p.with_name(dst_p.name + ".d")) as tmp:
            f.write(ds, tmp, ctx)
            os.replace(tmp / str(f.file_name), dst_p)
        shutil.rmtree(dst_p.with_name(dst_p.name + ".d"), ignore_errors=True)
    else:
        with atomic_dir(dst_p, overwrite=overwrite) as tmp:
            f.write(ds, tmp, ctx)
    return report


def convert(src: str | os.PathLike[str], dst: str | os.PathLike[str], to: str, from_: str | None = None, *,
            images: str = "copy", read_options: dict[str, Any] | None = None,
            write_options: dict[str, Any] | None = None) -> tuple[Dataset, ConversionReport]:
    """Read ``src`` and write it to ``dst`` as ``to``; one report covers both sides."""
    if get_format(to).write is None:  # fail before reading a large source
        raise UsageError(f"format {to!r} can only be read")
    report = ConversionReport()
    ds = read_dataset(src, from_, report=report, **(read_options or {}))
    write_dataset(ds, dst, to, report=report, images=images, **(write_options or {}))
    return ds, report
