"""The small kernel every imagine package shares.

It holds the root exception and its typed children, findings and reports, atomic file writes,
path safety, guarded image header reads and progress reporting. Everything else in the project
imports from here; this module imports nothing of the project.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

__all__ = [
    "ImagineError",
    "InputError",
    "UsageError",
    "MissingExtraError",
    "RemoteError",
    "Finding",
    "ConversionReport",
    "atomic_write",
    "atomic_dir",
    "safe_join",
    "image_size",
    "open_image",
    "progress",
    "set_quiet",
    "require",
    "dump_json",
    "read_json",
]

T = TypeVar("T")

# Exit codes shared by both command-line programs (DESIGN.md): 0 ok, 1 findings, 2 usage/input.
EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2


class ImagineError(Exception):
    """Root of every error the library raises on purpose; the CLI turns it into a message."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, file: str | os.PathLike[str] | None = None, place: str | None = None):
        self.message = message
        self.file = os.fspath(file) if file is not None else None
        self.place = place
        super().__init__(self.render())

    def render(self) -> str:
        """One paragraph: where, then what."""
        where = ""
        if self.file is not None:
            where = f"{self.file}"
            if self.place:
                where += f" ({self.place})"
            where += ": "
        return where + self.message


class InputError(ImagineError):
    """Unreadable or malformed input: names the file and the place in it (exit code 2)."""


class UsageError(ImagineError):
    """A call that does not make sense: unknown format, option out of range (exit code 2)."""


class MissingExtraError(ImagineError):
    """A feature needs an optional dependency that is not installed; says which extra to install."""

    def __init__(self, module: str, extra: str):
        super().__init__(f"this needs the '{module}' package: pip install 'imagine-aquatic[{extra}]'")


class RemoteError(ImagineError):
    """A remote service answered with an error or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None):
        self.status = status
        super().__init__(message, file=url)


def require(module: str, extra: str) -> Any:
    """Import an optional dependency or raise :class:`MissingExtraError` naming the extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingExtraError(module, extra) from exc


Severity = Literal["error", "warning", "info"]


@dataclass
class Finding:
    """One thing a check found: a stable code, a message, and where (file and place in it)."""

    code: str
    message: str
    severity: Severity = "error"
    file: str | None = None
    place: str | None = None

    def render(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f" ({self.place})" if self.place else "") + ": "
        elif self.place:
            where = f"({self.place}) "
        return f"{self.severity}: {where}{self.message} [{self.code}]"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass
class ConversionReport:
    """What a conversion could not carry, counted by stable code with a few example ids.

    Writers and readers call :meth:`add` for each thing lost or changed; the CLI prints the result
    and ``--report FILE`` saves it as JSON (schema ``conversion-report.schema.json``).
    """

    source_format: str | None = None
    target_format: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_examples: int = 5

    def add(self, code: str, message: str, example: object = None, count: int = 1) -> None:
        """Count ``count`` occurrences of ``code``; keep up to a few example ids."""
        if count <= 0:
            return
        self.counts[code] = self.counts.get(code, 0) + count
        self.messages.setdefault(code, message)
        if example is not None:
            ex = self.examples.setdefault(code, [])
            if len(ex) < self.max_examples:
                ex.append(str(example))

    def add_many(self, code: str, message: str, examples: Iterable[object], count: int) -> None:
        """Count ``count`` occurrences at once, taking the first few of ``examples``."""
        if count <= 0:
            return
        self.add(code, message, count=count)
        ex = self.examples.setdefault(code, [])
        for e in examples:
            if len(ex) >= self.max_examples:
                break
            ex.append(str(e))

    def note(self, code: str, message: str, example: object = None) -> None:
        """Record something worth knowing that is not a loss (e.g. a split folder found by convention)."""
        n = self.notes.setdefault(code, {"count": 0, "message": message, "examples": []})
        n["count"] += 1
        if example is not None and len(n["examples"]) < self.max_examples:
            n["examples"].append(str(example))

    @property
    def lossless(self) -> bool:
        return not self.counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_format": self.source_format,
            "target_format": self.target_format,
            "lossless": self.lossless,
            "losses": [
                {
                    "code": code,
                    "count": n,
                    "message": self.messages.get(code, ""),
                    "examples": self.examples.get(code, []),
                }
                for code, n in sorted(self.counts.items())
            ],
            "notes": [{"code": c, **v} for c, v in sorted(self.notes.items())],
            "stats": self.stats,
        }

    def render(self) -> str:
        head = f"conversion {self.source_format or '?'} -> {self.target_format or '?'}: "
        notes = [f"  note {c}: {v['count']} — {v['message']}" for c, v in sorted(self.notes.items())]
        if self.lossless:
            return "\n".join([head + "lossless", *notes])
        lines = [head + f"{sum(self.counts.values())} item(s) not carried or changed", *notes]
        for code, n in sorted(self.counts.items()):
            ex = self.examples.get(code)
            tail = f" (e.g. {', '.join(ex)})" if ex else ""
            lines.append(f"  {code}: {n} — {self.messages.get(code, '')}{tail}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Atomic writes: nothing half-written is ever left where a user looks.


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Write a file through a temporary sibling, renamed into place only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as fh:
            yield fh
            fh.flush()
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, overwrite: bool = True) -> Iterator[Path]:
    """Build a directory in a temporary sibling and move it into place only on success.

    An existing directory at ``path`` is replaced only once the new one is complete, so a failed
    run leaves the previous output (or nothing) behind, never a half-written tree.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError("output exists and is not a directory", file=path)
    if path.exists() and not overwrite:
        raise UsageError("output directory exists", file=path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def dump_json(obj: Any, path: str | os.PathLike[str], *, indent: int | None = 2) -> None:
    """Write JSON atomically (UTF-8, keys in insertion order)."""
    with atomic_write(path) as fh:
        json.dump(obj, fh, indent=indent, ensure_ascii=False)
        fh.write("\n")


def read_json(path: str | os.PathLike[str], missing: str) -> Any:
    """Parse a UTF-8 JSON file; a missing file or malformed JSON becomes an InputError naming the file.

    ``missing`` is the message when the file does not exist; a decode error keeps the parser's
    own text (which gives line and column).
    """
    try:
        return json.loads(Path(path).read_text("utf-8"))
    except FileNotFoundError:
        raise InputError(missing, file=path) from None
    except ValueError as exc:
        raise InputError(f"malformed JSON: {exc}", file=path) from None


# --------------------------------------------------------------------------------------------
# Paths and images


def safe_join(root: str | os.PathLike[str], name: str, *, source: str | os.PathLike[str] | None = None,
              place: str | None = None) -> Path:
    """Join a file name taken from an annotation file onto the dataset root, refusing escapes.

    Absolute names, ``..`` segments that leave ``root`` and NUL bytes raise :class:`InputError`
    naming the annotation file and place, so a crafted export cannot make us read or write
    outside the dataset.
    """
    if "\x00" in name:
        raise InputError(f"file name {name!r} contains a NUL byte", file=source, place=place)
    norm = name.replace("\\", "/")
    if norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        raise InputError(f"file name {name!r} is absolute; it must be relative to the dataset root",
                         file=source, place=place)
    root_p = Path(root).resolve()
    target = (root_p / norm).resolve()
    if target != root_p and root_p not in target.parents:
        raise InputError(f"file name {name!r} points outside the dataset root {root_p}", file=source, place=place)
    return target


# Pixels above which an image is treated as a decompression bomb (PIL's own default is ~89 M
# and warns only; aquatic mosaics reach a few hundred megapixels, so the cap is higher but hard).
MAX_IMAGE_PIXELS = 600_000_000


def open_image(path: str | os.PathLike[str]) -> Any:
    """Open an image lazily with PIL, turning decompression bombs and unreadable files into InputError."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise Image.DecompressionBombError(f"{w}x{h}")
            return im
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"image refused as a possible decompression bomb ({exc}); "
                         f"the limit is {MAX_IMAGE_PIXELS} pixels", file=path) from exc
    except FileNotFoundError as exc:
        raise InputError("image file not found", file=path) from exc
    except OSError as exc:
        raise InputError(f"unreadable image: {exc}", file=path) from exc


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(width, height) from the image header only, honouring EXIF orientation is *not* done.

    COCO, YOLO and the others store sizes of the pixel array as decoded, without EXIF rotation,
    so the raw header size is what annotations refer to.
    """
    im = open_image(path)
    try:
        return int(im.size[0]), int(im.size[1])
    finally:
        im.close()


# --------------------------------------------------------------------------------------------
# Progress


_QUIET = False


def set_quiet(quiet: bool) -> None:
    """Silence every progress bar of this process (the CLI's ``--quiet``)."""
    global _QUIET
    _QUIET = quiet


def progress(iterable: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it") -> Iterable[T]:
    """Wrap a long loop in a progress bar, silent under ``--quiet`` and when stderr is not a terminal."""
    if _QUIET or not sys.stderr.isatty():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, file=sys.stderr)
