"""Packaging a deposit folder and the Zenodo deposit lifecycle that never loses or duplicates anything.

A *deposit folder* is flat (Zenodo records have no folders): images in ZIP shards sized to the
100-file and 50 GB limits, the native Parquet tables, annotation exports as ZIPs, the metadata files
written by ``imagine-publish describe`` (``zenodo.json`` is the one the deposit sends), the dataset
card ``README.md``, benchmark cards, and ``manifest.json`` (size, MD5 and SHA-256 of every file).

The lifecycle keeps a local state file (``.imagine-deposit.json`` in the folder; schema
``deposit-state``) holding a stable idempotency key, also stored in the deposit's metadata as an
``isAlternateIdentifier`` URN, so a re-run or a crash finds the same draft instead of creating a
second one. Before every create request a "create in flight" marker (``creating``) is saved: a run
that finds it (the previous one died or lost the answer) waits for the search-backed listing to
show the draft rather than creating another, and gives up with a resumable error if it does not.
Files are uploaded only when the server does not already hold them with the right MD5.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
import zipfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imagine.kernel import (
    EXIT_FINDINGS,
    Finding,
    ImagineError,
    InputError,
    RemoteError,
    UsageError,
    atomic_dir,
    dump_json,
    progress,
    safe_join,
)

from .zenodo import CHUNK, ZenodoClient, load_token, resolve_target, with_key

__all__ = ["package", "deposit", "new_version", "status", "discard", "fetch", "publish_dataset", "plan",
           "validate_deposit", "DepositResult", "PackageResult", "FetchResult", "STATE_FILE", "MANIFEST"]

STATE_FILE = ".imagine-deposit.json"
MANIFEST = "manifest.json"
MAX_FILES = 100
QUOTA = 50 * 10**9
METADATA_FILES = ("zenodo.json", "README.md", "dcat.ttl", "dcat.jsonld", "schema-org.jsonld", "croissant.json")
REQUIRED_FILES = ("zenodo.json", "README.md")
UPLOAD_TYPES = {"publication", "poster", "presentation", "dataset", "image", "video", "software", "lesson",
                "physicalobject", "other"}


class GateError(ImagineError):
    """The deposit was refused by validation or the FAIR gate (exit code 1)."""

    exit_code = EXIT_FINDINGS


# --------------------------------------------------------------------------------------------
# Packaging


@dataclass
class PackageResult:
    """What ``package`` wrote."""

    out: str
    files: list[dict[str, Any]]
    shards: int
    total_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _hash_file(path: Path) -> tuple[int, str, str]:
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    n = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            md5.update(chunk)
            sha.update(chunk)
            n += len(chunk)
    return n, md5.hexdigest(), sha.hexdigest()


def write_manifest(folder: Path) -> dict[str, Any]:
    """Write ``manifest.json`` listing size, MD5 and SHA-256 of every other file of the folder."""
    rows = []
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.name != MANIFEST)
    for name in progress(names, desc="checksums", unit="file"):
        size, md5, sha = _hash_file(folder / name)
        rows.append({"name": name, "size": size, "md5": md5, "sha256": sha})
    doc = {"version": 1, "files": rows}
    dump_json(doc, folder / MANIFEST)
    return doc


def _shard_plan(sizes: list[int], n_slots: int, shard_bytes: int) -> list[list[int]]:
    """Group image indices into at most ``n_slots`` shards of about ``shard_bytes`` each (in order)."""
    total = sum(sizes)
    if total > QUOTA:
        raise UsageError(f"the images total {total / 1e9:.1f} GB, above Zenodo's 50 GB per record; "
                         "split the dataset into several records")
    target = max(shard_bytes, -(-total // max(1, n_slots)))
    shards: list[list[int]] = [[]]
    acc = 0
    for i, s in enumerate(sizes):
        if shards[-1] and acc + s > target and len(shards) < n_slots:
            shards.append([])
            acc = 0
        shards[-1].append(i)
        acc += s
    return [s for s in shards if s]


def package(src: str | os.PathLike[str], meta: str | os.PathLike[str], out: str | os.PathLike[str], *,
            src_format: str | None = None, formats: Iterable[str] = (), cards: Iterable[str | os.PathLike[str]] = (),
            shard_bytes: int = 2 * 10**9, overwrite: bool = False) -> PackageResult:
    """Build the deposit folder ``out`` from dataset ``src`` and the ``describe`` output folder ``meta``.

    ``formats`` are extra annotation formats written with ``write_dataset`` (each zipped as
    ``annotations-<fmt>.zip``); ``cards`` are benchmark-card files copied as they are.
    """
    from imagine.curate.formats import read_dataset, write_dataset

    meta_p = Path(meta)
    missing = [n for n in REQUIRED_FILES if not (meta_p / n).is_file()]
    if missing:
        raise InputError(f"metadata folder lacks {', '.join(missing)}; run imagine-publish describe first",
                         file=meta_p)
    _read_zenodo_json(meta_p / "zenodo.json")
    ds = read_dataset(src, src_format)
    root = Path(ds.info.get("root") or (Path(src) if Path(src).is_dir() else Path(src).parent))
    names = [str(n) for n in ds.images.column("file_name").to_pylist()]
    paths = [safe_join(root, n, source=src, place=f"images[{i}].file_name") for i, n in enumerate(names)]
    present = [(n, p) for n, p in zip(names, paths, strict=True) if p.is_file()]
    if len(present) < len(names):
        lost = [n for n, p in zip(names, paths, strict=True) if not p.is_file()][:5]
        raise InputError(f"{len(names) - len(present)} image file(s) listed in the dataset are missing "
                         f"(e.g. {', '.join(lost)})", file=root)
    formats = [f for f in formats if f != "native"]
    card_paths = [Path(c) for c in cards]
    for c in card_paths:
        if not c.is_file():
            raise InputError("benchmark card not found", file=c)
    other = 4 + len(formats) + len(card_paths) + sum((meta_p / n).is_file() for n in METADATA_FILES) + 1
    slots = MAX_FILES - other
    if slots < 1:
        raise UsageError(f"too many files besides the images ({other}); Zenodo allows {MAX_FILES} per record")
    plan_ = _shard_plan([p.stat().st_size for _, p in present], slots, shard_bytes) if present else []
    with atomic_dir(out, overwrite=overwrite) as tmp:
        width = max(3, len(str(len(plan_))))
        for k, idx in enumerate(progress(plan_, desc="image shards", unit="shard")):
            with zipfile.ZipFile(tmp / f"images-{k + 1:0{width}d}.zip", "w", zipfile.ZIP_STORED,
                                 allowZip64=True) as zf:
                for i in idx:
                    zf.write(present[i][1], f"images/{present[i][0]}")
        with tempfile.TemporaryDirectory(dir=tmp.parent) as scratch:
            write_dataset(ds, Path(scratch) / "native", "native", images="none")
            for p in sorted((Path(scratch) / "native").iterdir()):
                if p.is_file():
                    shutil.copyfile(p, tmp / p.name)
            for fmt in formats:
                d = Path(scratch) / fmt
                write_dataset(ds, d, fmt, images="none")
                with zipfile.ZipFile(tmp / f"annotations-{fmt}.zip", "w", zipfile.ZIP_DEFLATED) as zf:
                    for p in sorted(d.rglob("*")):
                        if p.is_file():
                            zf.write(p, p.relative_to(d).as_posix())
        for n in METADATA_FILES:
            if (meta_p / n).is_file():
                shutil.copyfile(meta_p / n, tmp / n)
        for c in card_paths:
            shutil.copyfile(c, tmp / c.name)
        manifest = write_manifest(tmp)
    total = sum(r["size"] for r in manifest["files"])
    return PackageResult(str(out), manifest["files"], len(plan_), total)


# --------------------------------------------------------------------------------------------
# Deposit folder, validation and state


def _read_zenodo_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise InputError("deposit metadata zenodo.json is missing; run imagine-publish describe", file=path) from None
    except ValueError as exc:
        raise InputError(f"malformed JSON: {exc}", file=path, place=f"line {getattr(exc, 'lineno', '?')}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
        raise InputError('expected {"metadata": {...}} (Zenodo deposit metadata)', file=path, place="/metadata")
    return doc["metadata"]


def validate_metadata(meta: dict[str, Any], file: str | None = None) -> list[Finding]:
    """Check Zenodo deposit metadata locally: what publish would refuse, and what the server drops silently."""
    out: list[Finding] = []

    def err(place: str, msg: str, sev: str = "error") -> None:
        out.append(Finding("zenodo-metadata", msg, sev, file, place))

    if meta.get("upload_type") not in UPLOAD_TYPES:
        err("/metadata/upload_type", f"upload_type must be one of {', '.join(sorted(UPLOAD_TYPES))}")
    if len(str(meta.get("title") or "")) < 3:
        err("/metadata/title", "title is required (3 characters or more)")
    if len(str(meta.get("description") or "")) < 3:
        err("/metadata/description", "description is required")
    creators = meta.get("creators")
    if not isinstance(creators, list) or not creators:
        err("/metadata/creators", "at least one creator is required")
    else:
        for i, c in enumerate(creators):
            if not isinstance(c, dict) or not c.get("name"):
                err(f"/metadata/creators/{i}/name", "each creator needs a name ('Family, Given')")
            elif str(c["name"]).count(",") != 1:
                err(f"/metadata/creators/{i}/name", "Zenodo splits names on exactly one comma: use 'Family, Given'",
                    "warning")
    pd = meta.get("publication_date")
    if pd is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(pd)):
        err("/metadata/publication_date", "publication_date must be a date YYYY-MM-DD")
    if meta.get("access_right") == "embargoed" and not meta.get("embargo_date"):
        err("/metadata/embargo_date", "an embargoed deposit needs embargo_date")
    for i, loc in enumerate(meta.get("locations") or []):
        if isinstance(loc, dict) and not loc.get("place"):
            err(f"/metadata/locations/{i}/place", "each location needs a place")
        if isinstance(loc, dict) and (loc.get("lat") == 0 or loc.get("lon") == 0):
            err(f"/metadata/locations/{i}", "Zenodo drops the point when lat or lon is exactly 0", "warning")
    for i, rel in enumerate(meta.get("related_identifiers") or []):
        if not isinstance(rel, dict) or not isinstance(rel.get("relation"), str) or not rel.get("identifier"):
            err(f"/metadata/related_identifiers/{i}", "needs identifier and relation")
    from .localrepo import KNOWN_METADATA

    for k in meta:
        if k not in KNOWN_METADATA:
            err(f"/metadata/{k}", f"unknown key {k!r}: Zenodo drops it silently", "warning")
    return out


@dataclass
class LocalFile:
    name: str
    path: Path
    size: int
    md5: str


def deposit_files(folder: Path, cache: dict[str, Any] | None = None) -> list[LocalFile]:
    """The files to upload (top level, not hidden) with their MD5, reusing cached sums of unchanged files."""
    if not folder.is_dir():
        raise InputError("deposit folder not found", file=folder)
    cache = cache or {}
    out = []
    names = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    for name in progress(names, desc="checksums", unit="file"):
        p = folder / name
        st = p.stat()
        c = cache.get(name) or {}
        if c.get("size") == st.st_size and c.get("mtime_ns") == st.st_mtime_ns and c.get("md5"):
            md5 = str(c["md5"])
        else:
            md5 = _hash_file(p)[1]
        out.append(LocalFile(name, p, st.st_size, md5))
    return out


def validate_deposit(folder: str | os.PathLike[str]) -> tuple[dict[str, Any], list[LocalFile], list[Finding]]:
    """Read and check a deposit folder: metadata, limits, manifest agreement."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError("deposit folder not found", file=folder)
    zpath = folder / "zenodo.json"
    meta = _read_zenodo_json(zpath)
    findings = validate_metadata(meta, str(zpath))
    state = load_state(folder)
    files = deposit_files(folder, state.get("checksums"))
    if len(files) > MAX_FILES:
        findings.append(Finding("zenodo-limit", f"{len(files)} files; Zenodo allows {MAX_FILES} per record "
                                "(package images into ZIP shards)", file=str(folder)))
    total = sum(f.size for f in files)
    if total > QUOTA:
        findings.append(Finding("zenodo-limit", f"{total / 1e9:.1f} GB; Zenodo allows 50 GB per record",
                                file=str(folder)))
    mpath = folder / MANIFEST
    if mpath.is_file():
        try:
            rows = {r["name"]: r for r in json.loads(mpath.read_text("utf-8")).get("files", [])}
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise InputError(f"malformed manifest: {exc}", file=mpath) from None
        for f in files:
            r = rows.get(f.name)
            if f.name == MANIFEST:
                continue
            if r is None:
                findings.append(Finding("manifest", f"{f.name} is not in the manifest", file=str(mpath)))
            elif r.get("md5") != f.md5 or r.get("size") != f.size:
                findings.append(Finding("manifest", f"{f.name} differs from its manifest entry (changed since "
                                        "packaging?)", file=str(mpath), place=f"/files/{f.name}"))
        for name in rows:
            if not (folder / name).is_file():
                findings.append(Finding("manifest", f"{name} is listed in the manifest but missing",
                                        file=str(mpath)))
    return meta, files, findings


def load_state(folder: Path) -> dict[str, Any]:
    """The deposit state (validated against its schema); an empty state when none exists."""
    from imagine.schemas import validate

    path = folder / STATE_FILE
    if not path.exists():
        return {"version": 1, "targets": {}, "checksums": {}}
    try:
        doc = json.loads(path.read_text("utf-8"))
    except ValueError as exc:
        raise InputError(f"malformed deposit state: {exc}", file=path) from None
    problems = validate(doc, "deposit-state", file=str(path))
    if problems:
        raise InputError(problems[0].message, file=path, place=problems[0].place)
    return doc


def save_state(folder: Path, state: dict[str, Any]) -> None:
    state["updated"] = dt.datetime.now(dt.UTC).isoformat()
    dump_json(state, folder / STATE_FILE)


# --------------------------------------------------------------------------------------------
# The lifecycle


@dataclass
class DepositResult:
    """Outcome of a deposit or new version."""

    target: str
    record_id: int | None
    doi: str | None
    conceptdoi: str | None
    url: str | None
    state: str
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    fair_score: float | None = None
    plan: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _fair_gate(folder: Path, min_fair: float | None, force: bool, warnings: list[str]) -> float | None:
    """Score with ``imagine.publish.fair`` when present; refuse below ``min_fair`` unless forced."""
    import importlib

    fair: Any
    try:
        fair = importlib.import_module(f"{__package__}.fair")
    except ImportError:
        fair = None
    if fair is None or not hasattr(fair, "fair_score"):
        if min_fair is not None and not force:
            raise GateError("the FAIR check is unavailable (imagine.publish.fair is not installed); "
                            "use --force to deposit without it")
        if min_fair is not None:
            warnings.append("FAIR check unavailable; deposited anyway (--force)")
        return None
    score = float(fair.fair_score(folder).score)
    if min_fair is not None and score < min_fair:
        if not force:
            raise GateError(f"FAIR score {score:.0f} is below --min-fair {min_fair:.0f}; improve the metadata "
                            "or use --force", file=folder)
        warnings.append(f"FAIR score {score:.0f} below {min_fair:.0f}; deposited anyway (--force)")
    return score


def _gate(folder: Path, findings: list[Finding], force: bool, warnings: list[str]) -> None:
    errors = [f for f in findings if f.severity == "error"]
    warnings.extend(f.render() for f in findings if f.severity != "error")
    if errors:
        limit = [f for f in errors if f.code == "zenodo-limit"]
        if limit or not force:
            raise GateError("the deposit is not valid:\n" + "\n".join(f.render() for f in errors), file=folder)
        warnings.extend(f.render() for f in errors)


def _client(target: str | None, token: str | None, dry_run: bool, **kw: Any) -> ZenodoClient:
    base = resolve_target(target)
    if not dry_run and target in (None, "", "local") and not _listening(base):
        raise UsageError(f"no local repository is listening at {base}: start it with `imagine-publish serve` "
                         "(or choose --target zenodo, sandbox or a URL)")
    tok = token if token is not None else load_token(base)
    if tok is None and not dry_run:
        raise UsageError(f"no token for {base}: set ZENODO_TOKEN (ZENODO_SANDBOX_TOKEN for the sandbox) or "
                         f"write it to the config file (mode 600)")
    return ZenodoClient(base, tok, dry_run=dry_run, **kw)


def _full_metadata(meta: dict[str, Any], key: str) -> dict[str, Any]:
    m = dict(meta)
    m.setdefault("publication_date", dt.date.today().isoformat())
    return with_key(m, key)


def _target_state(state: dict[str, Any], base: str) -> dict[str, Any]:
    return state.setdefault("targets", {}).setdefault(base, {"files": {}})


def _remember_checksums(state: dict[str, Any], files: list[LocalFile]) -> None:
    state["checksums"] = {f.name: {"size": f.size, "md5": f.md5, "mtime_ns": f.path.stat().st_mtime_ns}
                          for f in files}


def plan(folder: str | os.PathLike[str], target: str | None = None, *, new_version_of: bool = False) -> list[str]:
    """Every request a deposit (or new version) would make, computed offline from the local state."""
    folder = Path(folder)
    meta, files, _ = validate_deposit(folder)
    base = resolve_target(target)
    t = load_state(folder).get("targets", {}).get(base, {})
    out = []
    dep = t.get("draft_id")
    if t.get("phase") == "published" and not new_version_of and not dep:
        return [f"GET {base}/records/{t.get('record_id')}  # already published as {t.get('doi')}: compare the "
                "files; if they changed, use new-version"]
    if new_version_of and not dep:
        rid = t.get("record_id") or "<record>"
        out.append(f"POST {base}/deposit/depositions/{rid}/actions/newversion")
        dep = None
    elif not dep and t.get("creating"):
        out.append(f"GET {base}/deposit/depositions?q=\"<key>\"  # a create was in flight since "
                   f"{t['creating']['at']}: search (with backoff) until its draft shows; create only once settled")
    elif not dep:
        out.append(f"GET {base}/deposit/depositions?q=\"<key>\"  # find an existing draft by its key")
        out.append(f"POST {base}/deposit/depositions  # create the draft (metadata carries the key)")
    dep_s = str(dep or "<draft>")
    bucket = t.get("bucket") or f"{base}/files/<bucket>"
    out.append(f"GET {base}/deposit/depositions/{dep_s}/files  # skip files already there with the right MD5")
    known = t.get("files", {})
    for f in files:
        if known.get(f.name) != f.md5:
            out.append(f"PUT {bucket}/{f.name}  # {f.size} bytes, md5 {f.md5}")
    out.append(f"PUT {base}/deposit/depositions/{dep_s}  # full metadata: {str(meta.get('title'))[:60]!r}")
    out.append(f"POST {base}/deposit/depositions/{dep_s}/actions/publish")
    out.append(f"GET {base}/records/{dep_s}  # verify files, checksums, metadata and DOI")
    return out


def _sync_files(client: ZenodoClient, dep: dict[str, Any], files: list[LocalFile], t: dict[str, Any],
                folder: Path, state: dict[str, Any], result: DepositResult) -> None:
    """Make the draft's files exactly the local ones: skip matches, replace changed, remove stale."""
    dep_id = int(dep["id"])
    remote = {f["filename"]: f for f in client.list_files(dep_id)}
    local = {f.name for f in files}
    for name, rf in remote.items():
        if name not in local:
            client.delete_file(dep_id, rf["id"])
            result.removed.append(name)
    bucket = dep["links"]["bucket"]
    t["files"] = {n: str(rf["checksum"]).removeprefix("md5:") for n, rf in remote.items() if n in local}
    save_state(folder, state)
    for f in progress(files, desc="uploading", unit="file"):
        rf2 = remote.get(f.name)
        if rf2 is not None and str(rf2.get("checksum", "")).removeprefix("md5:") == f.md5:
            result.skipped.append(f.name)
            continue
        client.upload(bucket, f.path, f.name, f.md5)
        t["files"][f.name] = f.md5
        save_state(folder, state)
        result.uploaded.append(f.name)


def _verify(client: ZenodoClient, record_id: int, files: list[LocalFile], meta: dict[str, Any]) -> dict[str, Any]:
    """Read the published record back and check files, checksums, title and DOI; raise on any mismatch."""
    rec = client.get_record(record_id)
    problems = []
    got = {f["key"]: f for f in rec.get("files", [])}
    for f in files:
        r = got.get(f.name)
        if r is None:
            problems.append(f"{f.name} is missing from the record")
        elif str(r.get("checksum", "")).removeprefix("md5:") != f.md5 or int(r.get("size", -1)) != f.size:
            problems.append(f"{f.name}: record has {r.get('checksum')} ({r.get('size')} bytes), local md5:{f.md5}")
    extra = set(got) - {f.name for f in files}
    if extra:
        problems.append(f"unexpected files in the record: {', '.join(sorted(extra))}")
    if not rec.get("doi"):
        problems.append("the record has no DOI")
    if (rec.get("metadata") or {}).get("title") != meta.get("title"):
        problems.append("the record's title differs from zenodo.json")
    if problems:
        raise RemoteError("published record does not match the deposit folder: " + "; ".join(problems),
                          url=client.url(f"/records/{record_id}"))
    return rec


def _finish(client: ZenodoClient, folder: Path, state: dict[str, Any], t: dict[str, Any], dep: dict[str, Any],
            meta: dict[str, Any], files: list[LocalFile], result: DepositResult) -> DepositResult:
    dep_id = int(dep["id"])
    if dep.get("state") != "done":
        _sync_files(client, dep, files, t, folder, state, result)
        client.update_metadata(dep_id, _full_metadata(meta, state["key"]))
        t["phase"] = "metadata"
        save_state(folder, state)
        client.publish(dep_id)
    rec = _verify(client, dep_id, files, meta)
    versions = t.setdefault("versions", [])
    if dep_id not in versions:
        versions.append(dep_id)
    t.update({"phase": "published", "record_id": dep_id, "draft_id": None, "doi": rec.get("doi"),
              "conceptdoi": rec.get("conceptdoi"), "conceptrecid": str(rec.get("conceptrecid")),
              "url": (rec.get("links") or {}).get("self_html") or (rec.get("links") or {}).get("self")})
    save_state(folder, state)
    result.record_id, result.doi, result.conceptdoi = dep_id, rec.get("doi"), rec.get("conceptdoi")
    result.url, result.state = t["url"], "published"
    return result


def _checked_start(folder: Path, target: str | None, client: ZenodoClient | None, dry_run: bool,
                   min_fair: float | None, force: bool) -> tuple[DepositResult, dict[str, Any], list[LocalFile]]:
    """The result to fill, the metadata and the files, once the local checks and the FAIR gate have passed."""
    result = DepositResult(resolve_target(target) if client is None else client.base_url, None, None, None, None,
                           "planned" if dry_run else "draft")
    meta, files, findings = validate_deposit(folder)
    _gate(folder, findings, force, result.warnings)
    result.fair_score = _fair_gate(folder, min_fair, force, result.warnings)
    return result, meta, files


def deposit(folder: str | os.PathLike[str], target: str | None = None, *, token: str | None = None,
            min_fair: float | None = None, force: bool = False, dry_run: bool = False,
            client: ZenodoClient | None = None) -> DepositResult:
    """Find or create the draft, upload what is missing, set the full metadata, publish and verify.

    Safe to re-run after any failure: it resumes from the saved state and the server's files.
    """
    folder = Path(folder)
    result, meta, files = _checked_start(folder, target, client, dry_run, min_fair, force)
    if dry_run:
        result.plan = plan(folder, target)
        return result
    client = client or _client(target, token, dry_run)
    state = load_state(folder)
    state.setdefault("key", str(uuid.uuid4()))
    _remember_checksums(state, files)
    t = _target_state(state, client.base_url)
    save_state(folder, state)  # the key is on disk before any request
    dep = _find_draft(client, state, t)
    if dep is None:
        if t.get("phase") == "published" and t.get("record_id"):
            rec = client.get_record(t["record_id"])
            mine = {f.name: f.md5 for f in files}
            theirs = {f["key"]: str(f["checksum"]).removeprefix("md5:") for f in rec.get("files", [])}
            if mine == theirs:
                dep = {"id": t["record_id"], "state": "done"}
            else:
                raise UsageError("this folder is already published and its files changed: use new-version",
                                 file=folder)
        else:
            dep = _create(client, folder, state, t, meta)
    t.pop("creating", None)
    if dep.get("state") != "done":
        t.update({"draft_id": int(dep["id"]), "bucket": dep["links"]["bucket"], "phase": "draft",
                  "conceptrecid": str(dep.get("conceptrecid"))})
        save_state(folder, state)
    return _finish(client, folder, state, t, dep, meta, files, result)


def _create(client: ZenodoClient, folder: Path, state: dict[str, Any], t: dict[str, Any],
            meta: dict[str, Any]) -> dict[str, Any]:
    """Create the draft, saving the "create in flight" marker (with the time) before each POST is sent."""

    def in_flight() -> None:
        t["creating"] = {"at": dt.datetime.now(dt.UTC).isoformat()}
        save_state(folder, state)

    return client.create_deposition(_full_metadata(meta, state["key"]), state["key"], on_attempt=in_flight)


def _find_draft(client: ZenodoClient, state: dict[str, Any], t: dict[str, Any]) -> dict[str, Any] | None:
    """The current draft (from state, else by key on the server), or a published deposition of ours.

    When a create was in flight (marker in the state), the lagging search is re-read until it shows
    the draft; :class:`~imagine.publish.zenodo.PendingCreateError` if it may still appear.
    """
    if t.get("draft_id"):
        try:
            dep = client.get_deposition(int(t["draft_id"]))
            if "bucket" not in dep.get("links", {}) and dep.get("state") != "done":
                raise RemoteError("the server did not return the draft's bucket link")
            return dep
        except RemoteError as exc:
            if exc.status not in (404, 410):
                raise
            t["draft_id"] = None  # discarded elsewhere: look again by key
    if t.get("phase") == "published":
        return None
    pending = t.get("creating")
    if pending:
        since = dt.datetime.fromisoformat(pending["at"]).timestamp()
        found = client.find_created(state["key"], since)
    else:
        found = client.find_by_key(state["key"])
    if found is not None and found.get("state") == "done" and t.get("versions"):
        return None
    return found


def new_version(folder: str | os.PathLike[str], target: str | None = None, *, token: str | None = None,
                record: int | None = None, min_fair: float | None = None, force: bool = False,
                dry_run: bool = False, client: ZenodoClient | None = None) -> DepositResult:
    """Publish the folder as a new version of its record: full metadata re-sent, changed files replaced,
    unchanged ones kept (imported by Zenodo), removed ones deleted; resumable like ``deposit``."""
    folder = Path(folder)
    result, meta, files = _checked_start(folder, target, client, dry_run, min_fair, force)
    if dry_run:
        result.plan = plan(folder, target, new_version_of=True)
        return result
    client = client or _client(target, token, dry_run)
    state = load_state(folder)
    t = _target_state(state, client.base_url)
    rid = record or t.get("record_id")
    if not rid:
        raise UsageError("no published record for this folder on this target: deposit it first or give --record",
                         file=folder)
    state.setdefault("key", str(uuid.uuid4()))
    _remember_checksums(state, files)
    save_state(folder, state)
    dep = None
    if t.get("draft_id"):
        try:
            dep = client.get_deposition(int(t["draft_id"]))
        except RemoteError as exc:
            if exc.status not in (404, 410):
                raise
    if dep is None:
        dep = client.new_version(int(rid))
        t.update({"draft_id": int(dep["id"]), "bucket": dep["links"]["bucket"], "phase": "new-version"})
        save_state(folder, state)
    return _finish(client, folder, state, t, dep, meta, files, result)


def status(folder: str | os.PathLike[str], target: str | None = None, *, token: str | None = None,
           offline: bool = False, client: ZenodoClient | None = None) -> dict[str, Any]:
    """Local state, local files versus what the server holds, and the remote draft's state."""
    folder = Path(folder)
    base = resolve_target(target) if client is None else client.base_url
    state = load_state(folder)
    t = state.get("targets", {}).get(base, {})
    _, files, findings = validate_deposit(folder)
    out: dict[str, Any] = {"target": base, "phase": t.get("phase", "new"), "draft_id": t.get("draft_id"),
                           "record_id": t.get("record_id"), "doi": t.get("doi"), "conceptdoi": t.get("conceptdoi"),
                           "files": {f.name: ("uploaded" if t.get("files", {}).get(f.name) == f.md5 else "pending")
                                     for f in files},
                           "findings": [f.to_dict() for f in findings], "remote": None,
                           "create_in_flight_since": (t.get("creating") or {}).get("at")}
    if offline:
        return out
    client = client or _client(target, token, False)
    if t.get("draft_id"):
        try:
            dep = client.get_deposition(int(t["draft_id"]))
            remote = {f["filename"]: f["checksum"] for f in client.list_files(int(dep["id"]))}
            out["remote"] = {"state": dep.get("state"), "files": remote}
            out["files"] = {f.name: ("uploaded" if str(remote.get(f.name, "")).removeprefix("md5:") == f.md5
                                     else "pending") for f in files}
        except RemoteError as exc:
            out["remote"] = {"error": exc.message}
    elif t.get("record_id"):
        rec = client.get_record(int(t["record_id"]))
        out["remote"] = {"state": rec.get("state"), "doi": rec.get("doi"),
                         "files": {f["key"]: f["checksum"] for f in rec.get("files", [])}}
    return out


def discard(folder: str | os.PathLike[str], target: str | None = None, *, token: str | None = None,
            client: ZenodoClient | None = None) -> dict[str, Any]:
    """Discard the folder's unpublished draft on the target and forget it locally."""
    folder = Path(folder)
    client = client or _client(target, token, False)
    state = load_state(folder)
    t = state.get("targets", {}).get(client.base_url, {})
    dep_id = t.get("draft_id")
    if not dep_id:
        raise UsageError("there is no draft to discard for this folder on this target", file=folder)
    try:
        client.discard(int(dep_id))
    except RemoteError as exc:
        if exc.status not in (404, 410):
            raise
    t.update({"draft_id": None, "bucket": None, "files": {},
              "phase": "published" if t.get("record_id") else "new"})
    save_state(folder, state)
    return {"discarded": int(dep_id), "target": client.base_url}


# --------------------------------------------------------------------------------------------
# Fetch


@dataclass
class FetchResult:
    record_id: int
    doi: str | None
    dst: str
    files: list[dict[str, Any]]
    manifest_checked: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _record_id(record: str) -> str:
    m = re.search(r"(?:zenodo\.|records?/|^)(\d+)/?$", record.strip())
    if not m:
        raise UsageError(f"cannot tell the record id from {record!r}: give an id, a Zenodo DOI or a record URL")
    return m.group(1)


def fetch(record: str | int, dst: str | os.PathLike[str], target: str | None = None, *,
          token: str | None = None, client: ZenodoClient | None = None, overwrite: bool = False) -> FetchResult:
    """Download every file of a published record into ``dst``, verifying MD5s (and the manifest's SHA-256).

    Resumable: each file goes to ``<name>.part`` (continued with an HTTP Range request on a re-run
    or after a dropped connection) and is renamed into place once its MD5 matches; files already in
    ``dst`` with the record's checksum are kept. A file there with another checksum is an error
    unless ``overwrite``.
    """
    if client is None:
        base = resolve_target(target)
        client = ZenodoClient(base, token if token is not None else os.environ.get("ZENODO_TOKEN"))
    rid = _record_id(str(record))
    rec = client.get_record(rid)
    files = rec.get("files") or []
    out = Path(dst)
    if out.exists() and not out.is_dir():
        raise UsageError("output exists and is not a directory", file=out)
    for f in files:
        key = str(f["key"])
        if "/" in key or "\\" in key or key.startswith(".") or key.endswith(".part"):
            raise RemoteError(f"refusing the file name {key!r} from the record", url=client.url(f"/records/{rid}"))
    out.mkdir(parents=True, exist_ok=True)
    done = []
    for f in progress(files, desc="downloading", unit="file"):
        key = str(f["key"])
        md5 = str(f.get("checksum", "")).removeprefix("md5:") or None
        size = f.get("size")
        final = out / key
        if final.is_file():
            have_size, have_md5, _ = _hash_file(final)
            if md5 and have_md5 == md5 and (size is None or have_size == size):
                done.append({"name": key, "size": have_size, "md5": have_md5, "status": "present"})
                continue
            if not overwrite:
                raise UsageError(f"{key} is already there with another checksum (md5:{have_md5}, record has "
                                 f"md5:{md5}); use --overwrite to replace it", file=final)
        got = client.download(f["links"]["self"], final, md5, size)
        done.append({"name": key, "size": size, "md5": got,
                     "status": "resumed" if client.last_resumed else "downloaded"})
    checked = False
    if (out / MANIFEST).is_file() and any(f["key"] == MANIFEST for f in files):
        try:
            rows = json.loads((out / MANIFEST).read_text("utf-8")).get("files", [])
        except (ValueError, AttributeError) as exc:
            raise RemoteError(f"the record's manifest is not valid JSON: {exc}",
                              url=client.url(f"/records/{rid}")) from None
        for r in rows:
            p = safe_join(out, str(r["name"]), source=out / MANIFEST, place="files")
            if not p.is_file():
                raise RemoteError(f"{r['name']} is listed in the record's manifest but was not published",
                                  url=client.url(f"/records/{rid}"))
            if _hash_file(p)[2] != r.get("sha256"):
                raise RemoteError(f"{r['name']} does not match the SHA-256 in the record's manifest",
                                  url=client.url(f"/records/{rid}"))
        checked = True
    return FetchResult(int(rid), rec.get("doi"), str(dst), done, checked)


def _listening(base_url: str) -> bool:
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=1):
            return True
    except OSError:
        return False


def publish_dataset(deposit_dir: str | os.PathLike[str], target: str | None = None, *, token: str | None = None,
                    min_fair: float | None = None, force: bool = False,
                    local_root: str | os.PathLike[str] | None = None) -> DepositResult:
    """The whole deposit path for one folder (what the README's main job calls); returns DOI, record id, URL.

    With the default ``local`` target, a local repository is started in-process for the duration
    of the call when ``local_root`` is given (on a free port) or when none listens on port 5005
    (data under ``~/.local/share/imagine/localrepo``), so the path works offline in one call; run
    ``imagine-publish serve [--root DIR]`` afterwards to browse what was published.
    """
    from .localrepo import DEFAULT_PORT, start_server

    base = resolve_target(target)
    server = None
    if target in (None, "", "local") and (local_root is not None or not _listening(base)):
        from .localrepo import default_root

        # a given root gets its own in-process repository on a free port (never someone else's on 5005)
        server = start_server(local_root or default_root(), port=0 if local_root is not None else DEFAULT_PORT)
        token = token or server.token
        target = server.url
    elif token is None and local_root is not None:
        token = load_token(base, local_root=local_root)
    try:
        return deposit(deposit_dir, target, token=token, min_fair=min_fair, force=force)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
