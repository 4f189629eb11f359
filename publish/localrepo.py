"""A local Zenodo-compatible repository: the deposit API as Zenodo really behaves, on disk.

Clean-room stand-in written from the behaviour catalogued in the project's Zenodo notes (no
zenodo-rdm code): the legacy ``/api/deposit/depositions`` shim with its real status codes (bucket
PUT 201 with ``md5:`` checksums, publish 202, discard/DELETE 204, newversion 201 returning the new
draft, 404 on published drafts, 405 for sort/rename, 403 for a missing token), the 100-file limit
and a per-record quota, ``POST /api/records/{id}/versions`` (idempotent), read access to published
records (Zenodo JSON, schema.org JSON-LD, DCAT-AP RDF/XML), file downloads with ``ETag: "md5:…"``,
an OAI-PMH endpoint (``oai_dc`` and ``dcat``) for harvesters such as FAIR EVA, DOIs under the test
prefix ``10.5072``, ``X-RateLimit-*``/``Retry-After`` on every response, and switchable fault
injection (connection reset mid-upload or mid-download, 5xx, 429, "failed after it succeeded", slow
responses) plus the search-lag quirk (``lag=N``: the search-backed deposition list and the records
search do not show a new draft or record for N calls). File downloads honour ``Range: bytes=N-``
(206 with ``Content-Range``, 416 when unsatisfiable), so clients can resume. The InvenioRDM draft
file routes (``/api/records/{id}/draft/files``: init, content, commit, metadata, delete, list) work
with the reference's status codes, on the same drafts and files as the legacy API.

It serves offline work, the README's main job and the tests. Run it with ``imagine-publish serve``
or in-process with :func:`start_server`.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import socket
import struct
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape

from imagine.kernel import UsageError, dump_json

__all__ = ["LocalRepository", "Fault", "FaultPlan", "RepoServer", "start_server", "default_root",
           "DEFAULT_PORT", "DOI_PREFIX"]

DEFAULT_PORT = 5005
DOI_PREFIX = "10.5072"
MAX_FILES = 100
DEFAULT_QUOTA = 50 * 10**9
CHUNK = 1 << 20

# Legacy metadata keys the shim keeps; anything else inside ``metadata`` is silently dropped.
KNOWN_METADATA = {
    "upload_type", "publication_type", "image_type", "publication_date", "title", "creators", "description",
    "access_right", "license", "embargo_date", "access_conditions", "doi", "prereserve_doi", "keywords", "notes",
    "related_identifiers", "contributors", "references", "communities", "grants", "journal_title", "journal_volume",
    "journal_issue", "journal_pages", "conference_title", "conference_acronym", "conference_dates",
    "conference_place", "conference_url", "conference_session", "conference_session_part", "imprint_publisher",
    "imprint_isbn", "imprint_place", "partof_title", "partof_pages", "thesis_supervisors", "thesis_university",
    "subjects", "version", "language", "locations", "dates", "method", "custom",
}
LICENSES = {
    "cc-by-4.0": "cc-by-4.0", "cc-by": "cc-by-4.0", "cc0-1.0": "cc-zero", "cc-zero": "cc-zero",
    "cc-by-sa-4.0": "cc-by-sa-4.0", "cc-by-nc-4.0": "cc-by-nc-4.0", "cc-by-nc-sa-4.0": "cc-by-nc-sa-4.0",
    "cc-by-nd-4.0": "cc-by-nd-4.0", "odc-by-1.0": "odc-by", "odc-by": "odc-by", "odbl-1.0": "odc-odbl",
    "odc-odbl": "odc-odbl", "mit": "mit-license", "mit-license": "mit-license", "apache-2.0": "apache-2.0",
}
LICENSE_URLS = {
    "cc-by-4.0": "https://creativecommons.org/licenses/by/4.0/legalcode",
    "cc-zero": "https://creativecommons.org/publicdomain/zero/1.0/legalcode",
    "cc-by-sa-4.0": "https://creativecommons.org/licenses/by-sa/4.0/legalcode",
    "cc-by-nc-4.0": "https://creativecommons.org/licenses/by-nc/4.0/legalcode",
}
UPLOAD_TYPES = {"publication", "poster", "presentation", "dataset", "image", "video", "software", "lesson",
                "physicalobject", "other"}
MIMETYPES = {".csv": "text/csv", ".json": "application/json", ".zip": "application/zip", ".md": "text/markdown",
             ".txt": "text/plain", ".parquet": "application/octet-stream", ".ttl": "text/turtle",
             ".jsonld": "application/ld+json", ".png": "image/png", ".jpg": "image/jpeg"}


def default_root() -> Path:
    """Where ``imagine-publish serve`` keeps its data unless ``--root`` says otherwise."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "imagine" / "localrepo"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _today() -> str:
    return dt.date.today().isoformat()


class HTTPFailure(Exception):
    """An error answer: status plus Zenodo's JSON envelope."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"status": status, "message": message}
        if errors:
            self.body["errors"] = errors


def _validation(field_: str, message: str) -> HTTPFailure:
    return HTTPFailure(400, "A validation error occurred.", [{"field": field_, "messages": [message]}])


# --------------------------------------------------------------------------------------------
# Fault injection


@dataclass
class Fault:
    """One injected fault, matched on method and a regular expression searched in the path.

    kinds: ``reset`` (drop the connection; for uploads after ``after_bytes`` of the request body, for
    file downloads after ``after_bytes`` of the file have been sent),
    ``status`` (answer ``status`` without doing anything), ``ratelimit`` (429 with Retry-After),
    ``after`` (do the work, then answer ``status`` — e.g. a publish that fails after it succeeded),
    ``slow`` (do the work, then wait ``delay`` seconds before answering).
    ``times`` is how often it fires (-1: always); ``skip`` lets that many matching calls through first.
    """

    kind: str
    method: str = "*"
    path: str = ""
    status: int = 503
    times: int = 1
    skip: int = 0
    delay: float = 0.0
    retry_after: int = 1
    after_bytes: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and re.search(self.path, path) is not None


KINDS = ("reset", "status", "ratelimit", "after", "slow")


@dataclass
class FaultPlan:
    """Scripted faults, an optional seeded random mode (probability ``rate`` per API call) and quirks.

    ``lag`` is Zenodo's search lag, counted in calls rather than seconds so tests are deterministic:
    a draft (or a published record) created when the repository had answered S list/search calls
    stays out of ``GET /deposit/depositions`` and ``GET /records`` until call S + lag + 1, i.e. it
    is missing from the next ``lag`` list/search calls. Direct reads by id always see it. The
    lag in force at query time applies, so switching it off shows everything at once.
    """

    faults: list[Fault] = field(default_factory=list)
    rate: float = 0.0
    seed: int | None = None
    kinds: tuple[str, ...] = KINDS
    delay: float = 0.3
    lag: int = 0
    fired: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def pick(self, method: str, path: str, body_len: int) -> Fault | None:
        """The fault to apply to this request, if any (consumes one firing)."""
        if path.startswith("/_faults") or path.startswith("/oai2d"):
            return None
        with self._lock:
            for f in self.faults:
                if f.times != 0 and f.matches(method, path):
                    if f.skip > 0:
                        f.skip -= 1
                        continue
                    if f.times > 0:
                        f.times -= 1
                    self.fired.append({"kind": f.kind, "method": method, "path": path})
                    return f
            if self.rate > 0 and self._rng.random() < self.rate:
                kind = self._rng.choice(self.kinds)
                status = self._rng.choice((500, 502, 503, 504))
                # an upload is cut inside its body; a download (no body) inside its first 512 KiB
                after = self._rng.randrange(0, max(1, body_len)) if body_len else self._rng.randrange(1, 1 << 19)
                f = Fault(kind, status=status, delay=self.delay, after_bytes=after, retry_after=1)
                self.fired.append({"kind": kind, "method": method, "path": path})
                return f
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"faults": [asdict(f) for f in self.faults], "rate": self.rate, "seed": self.seed,
                "kinds": list(self.kinds), "lag": self.lag, "fired": len(self.fired)}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> FaultPlan:
        try:
            faults = [Fault(**f) for f in doc.get("faults", [])]
            for f in faults:
                if f.kind not in KINDS:
                    raise ValueError(f"unknown fault kind {f.kind!r}; known: {', '.join(KINDS)}")
            lag = int(doc.get("lag", 0))
            if lag < 0:
                raise ValueError("lag must be 0 or more")
            return cls(faults, float(doc.get("rate", 0.0)), doc.get("seed"),
                       tuple(doc.get("kinds", KINDS)), float(doc.get("delay", 0.3)), lag)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"bad fault plan: {exc}") from None

    @classmethod
    def parse(cls, spec: str) -> FaultPlan:
        """From the CLI: ``random:0.2:SEED``, ``lag=N`` or ``KIND@METHOD:PATHREGEX[*TIMES]`` items, comma-separated."""
        plan = cls()
        for item in filter(None, (s.strip() for s in spec.split(","))):
            if lag := re.fullmatch(r"lag=(\d+)", item):
                plan.lag = int(lag.group(1))
                continue
            if item.startswith("random:"):
                parts = item.split(":")
                plan.rate = float(parts[1])
                plan.seed = int(parts[2]) if len(parts) > 2 else None
                plan._rng = random.Random(plan.seed)
                continue
            m = re.fullmatch(r"(\w+)(?:=(\d+))?@(\*|[A-Z]+):([^*]*)(?:\*(-?\d+))?", item)
            if not m or m.group(1) not in KINDS:
                raise UsageError(f"bad fault {item!r}: expected KIND[=STATUS]@METHOD:PATH[*TIMES] "
                                 f"with KIND one of {', '.join(KINDS)}, random:RATE[:SEED] or lag=N")
            plan.faults.append(Fault(m.group(1), m.group(3), m.group(4), status=int(m.group(2) or 503),
                                     times=int(m.group(5) or 1), delay=1.0))
        return plan


# --------------------------------------------------------------------------------------------
# Repository state


class LocalRepository:
    """Records, drafts, buckets and files of the local repository; one JSON state file plus files on disk."""

    def __init__(self, root: str | os.PathLike[str], *, tokens: dict[str, int] | None = None,
                 quota: int = DEFAULT_QUOTA, max_files: int = MAX_FILES, prefix: str = DOI_PREFIX,
                 rate_limit: int = 1000, guest_rate_limit: int = 133, quirks: bool = True):
        self.root = Path(root)
        (self.root / "files").mkdir(parents=True, exist_ok=True)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        self.quota, self.max_files, self.prefix = quota, max_files, prefix
        self.rate_limit, self.guest_rate_limit, self.quirks = rate_limit, guest_rate_limit, quirks
        self.lock = threading.RLock()
        self.tokens = tokens if tokens is not None else self._load_tokens()
        self._hits: dict[str, list[float]] = {}
        state_file = self.root / "state.json"
        if state_file.exists():
            st = json.loads(state_file.read_text("utf-8"))
        else:
            st = {"next_id": 1, "records": {}, "buckets": {}}
        self.next_id: int = st["next_id"]
        self.records: dict[str, dict[str, Any]] = st["records"]
        self.buckets: dict[str, str] = st["buckets"]
        # search-lag bookkeeping (in memory: after a restart the index has caught up)
        self.search_calls = 0
        self.born: dict[str, int] = {}

    def _load_tokens(self) -> dict[str, int]:
        """Tokens from ``<root>/tokens.json`` (created with one fresh token, mode 0600, on first use)."""
        path = self.root / "tokens.json"
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump({secrets.token_urlsafe(24): 1}, fh)
        return {str(k): int(v) for k, v in json.loads(path.read_text("utf-8")).items()}

    def save(self) -> None:
        with self.lock:
            dump_json({"next_id": self.next_id, "records": self.records, "buckets": self.buckets},
                      self.root / "state.json", indent=None)

    # ---------------------------------------------------------------- ids and rate limits
    def _new_id(self) -> int:
        i = self.next_id
        self.next_id += 1
        return i

    def rate(self, who: str, limit: int) -> tuple[bool, dict[str, str]]:
        """Count one call for ``who`` in a one-minute window; (allowed, rate-limit headers)."""
        now = time.time()
        with self.lock:
            hits = [t for t in self._hits.get(who, []) if t > now - 60]
            allowed = len(hits) < limit
            if allowed:
                hits.append(now)
            self._hits[who] = hits
            reset = int((hits[0] if hits else now) + 60)
        remaining = max(0, limit - len(hits))
        headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
                   "X-RateLimit-Reset": str(reset), "Retry-After": str(max(1, reset - int(now)) if not allowed else 60)}
        return allowed, headers

    # ---------------------------------------------------------------- search lag
    def indexed(self, kind: str, rid: int | str) -> None:
        """Note that draft (``dep``) or published record (``rec``) ``rid`` just entered the search index."""
        with self.lock:
            self.born[f"{kind}:{rid}"] = self.search_calls

    def search_tick(self) -> int:
        """Count one list/search call; returns its sequence number."""
        with self.lock:
            self.search_calls += 1
            return self.search_calls

    def visible(self, kind: str, rid: int | str, seq: int, lag: int) -> bool:
        """Whether search call number ``seq`` sees ``rid`` under a lag of ``lag`` calls."""
        born = self.born.get(f"{kind}:{rid}")
        return born is None or seq - born > lag

    # ---------------------------------------------------------------- records
    def get(self, rid: str | int, owner: int | None = None) -> dict[str, Any]:
        rec = self.records.get(str(rid))
        if rec is None or rec.get("deleted"):
            raise HTTPFailure(404, "The persistent identifier does not exist.")
        if owner is not None and rec["owner"] != owner:
            raise HTTPFailure(403, "Permission denied.")
        return rec

    def _concept_versions(self, concept: str) -> list[dict[str, Any]]:
        return sorted((r for r in self.records.values() if r["conceptrecid"] == concept and not r.get("deleted")),
                      key=lambda r: r["id"])

    def create(self, owner: int, metadata: dict[str, Any] | None, concept: str | None = None) -> dict[str, Any]:
        with self.lock:
            if concept is None:
                concept = str(self._new_id())
            rid = self._new_id()
            bucket = str(uuid.uuid4())
            meta = {"access_right": "open", **(metadata or {})}
            rec = {"id": rid, "conceptrecid": concept, "owner": owner, "created": _now(), "modified": _now(),
                   "state": "unsubmitted", "submitted": False, "metadata": meta, "files": [], "bucket": bucket,
                   "published": None}
            self.records[str(rid)] = rec
            self.buckets[bucket] = str(rid)
            (self.root / "files" / bucket).mkdir(parents=True, exist_ok=True)
            self.indexed("dep", rid)
            self.save()
            return rec

    def normalize_metadata(self, body: Any) -> dict[str, Any]:
        """Legacy deserializer: unknown top-level keys are 400, unknown metadata keys are dropped."""
        if not isinstance(body, dict):
            raise _validation("_schema", "Invalid input type.")
        for k in body:
            if k not in ("metadata", "files"):
                raise _validation(k, "Unknown field.")
        meta = body.get("metadata") or {}
        if not isinstance(meta, dict):
            raise _validation("metadata", "Not a valid mapping type.")
        out = {k: v for k, v in meta.items() if k in KNOWN_METADATA}
        if "license" in out:
            lic = out["license"]
            lic_id = lic.get("id") if isinstance(lic, dict) else lic
            norm = LICENSES.get(str(lic_id).lower())
            if norm is None:
                raise _validation("metadata.license", f"Invalid license provided: {lic_id}")
            out["license"] = norm
        if "creators" in out:
            if not isinstance(out["creators"], list):
                raise _validation("metadata.creators", "Not a valid list.")
            out["creators"] = [{"name": c.get("name"), "affiliation": c.get("affiliation"),
                                **({"orcid": c["orcid"]} if c.get("orcid") else {})}
                               for c in out["creators"] if isinstance(c, dict)]
        if out.get("access_right") == "embargoed" and not out.get("embargo_date"):
            raise _validation("metadata.access_right", "Unknown access type.")
        for i, rel in enumerate(out.get("related_identifiers") or []):
            if not isinstance(rel, dict) or not isinstance(rel.get("relation"), str):
                raise _validation(f"metadata.related_identifiers.{i}.relation", "Missing data for required field.")
        if out.get("publication_date") is None:
            out["publication_date"] = _today()
        out.setdefault("access_right", "open")
        out.setdefault("imprint_publisher", "Zenodo")
        if "license" not in out and out.get("access_right") in ("open", "embargoed"):
            out["license"] = "cc-zero" if out.get("upload_type") == "dataset" else "cc-by-4.0"
        return out

    def check_publishable(self, rec: dict[str, Any]) -> None:
        """Publish-time validation, the first place Zenodo refuses bad metadata."""
        meta, errors = rec["metadata"], []
        if not meta.get("upload_type") or meta.get("upload_type") not in UPLOAD_TYPES:
            errors.append({"field": "metadata.resource_type", "messages": ["Missing data for required field."]})
        title = meta.get("title") or ""
        if not title:
            errors.append({"field": "metadata.title", "messages": ["Missing data for required field."]})
        elif len(title) < 3:
            errors.append({"field": "metadata.title", "messages": ["Shorter than minimum length 3."]})
        if not meta.get("creators"):
            errors.append({"field": "metadata.creators", "messages": ["Missing data for required field."]})
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(meta.get("publication_date", ""))):
            errors.append({"field": "metadata.publication_date", "messages": ["Not a valid date."]})
        if not rec["files"]:
            errors.append({"field": "files.enabled", "messages": [
                "Missing uploaded files. To disable files for this record please mark it as metadata-only."]})
        if errors:
            raise HTTPFailure(400, "A validation error occurred.", errors)

    def doi(self, rid: int | str) -> str:
        return f"{self.prefix}/zenodo.{rid}"

    # ---------------------------------------------------------------- files
    def file_path(self, rec: dict[str, Any], key: str) -> Path:
        return self.root / "files" / rec["bucket"] / quote(key, safe="")

    def pending_path(self, rec: dict[str, Any], key: str) -> Path:
        """Where uploaded but uncommitted content of an InvenioRDM file init waits."""
        return self.root / "pending" / rec["bucket"] / quote(key, safe="")

    def used(self, rec: dict[str, Any], except_key: str | None = None) -> int:
        return sum(f["size"] for f in rec["files"] if f["key"] != except_key)

    def put_file(self, rec: dict[str, Any], key: str, tmp: Path, size: int, md5: str) -> dict[str, Any]:
        """Store an uploaded file under ``key`` (overwriting the same key, as Files-REST does)."""
        with self.lock:
            old = next((f for f in rec["files"] if f["key"] == key), None)
            if old is None and len(rec["files"]) >= self.max_files:
                raise HTTPFailure(400, "Uploading selected files will result in exceeding the max amount per record.")
            if self.used(rec, key) + size > self.quota:
                raise HTTPFailure(400, "Bucket quota exceeded.")
            dest = self.file_path(rec, key)
            os.replace(tmp, dest)
            entry = {"id": str(uuid.uuid4()), "key": key, "size": size, "md5": md5, "version_id": str(uuid.uuid4()),
                     "created": _now(), "updated": _now(), "path": dest.name}
            rec["files"] = [f for f in rec["files"] if f["key"] != key] + [entry]
            rec["modified"] = _now()
            self.save()
            return entry

    def import_files(self, src: dict[str, Any], dst: dict[str, Any]) -> None:
        for f in src["files"]:
            a, b = self.root / "files" / src["bucket"] / f["path"], self.file_path(dst, f["key"])
            try:
                os.link(a, b)
            except OSError:
                shutil.copyfile(a, b)
            dst["files"].append({**f, "id": str(uuid.uuid4()), "version_id": str(uuid.uuid4()), "path": b.name})


# --------------------------------------------------------------------------------------------
# Serializers (Zenodo's legacy-flavoured JSON)


def _mimetype(key: str) -> str:
    return MIMETYPES.get(os.path.splitext(key)[1].lower(), "application/octet-stream")


class Serializer:
    """Legacy deposition / record JSON with links built from the request's base URL."""

    def __init__(self, repo: LocalRepository, base: str):
        self.repo, self.base = repo, base  # base: http://host:port

    def api(self, path: str) -> str:
        return f"{self.base}/api{path}"

    def legacy_file(self, rec: dict[str, Any], f: dict[str, Any]) -> dict[str, Any]:
        rid = rec["id"]
        return {"id": f["id"], "filename": f["key"], "filesize": f["size"], "checksum": f["md5"],
                "links": {"self": self.api(f"/deposit/depositions/{rid}/files/{f['id']}"),
                          "download": self.api(f"/records/{rid}/draft/files/{quote(f['key'])}/content")}}

    def bucket_object(self, rec: dict[str, Any], f: dict[str, Any]) -> dict[str, Any]:
        url = self.api(f"/files/{rec['bucket']}/{quote(f['key'])}")
        return {"created": f["created"], "updated": f["updated"], "version_id": f["version_id"], "key": f["key"],
                "size": f["size"], "mimetype": _mimetype(f["key"]), "checksum": "md5:" + f["md5"],
                "links": {"self": url, "version": f"{url}?versionId={f['version_id']}", "uploads": f"{url}?uploads"},
                "is_head": True, "delete_marker": False}

    def rdm_file(self, rec: dict[str, Any], f: dict[str, Any], *, pending: bool) -> dict[str, Any]:
        """An InvenioRDM draft file entry: ``pending`` after init/content, ``completed`` after commit."""
        url = self.api(f"/records/{rec['id']}/draft/files/{quote(f['key'])}")
        out: dict[str, Any] = {"key": f["key"], "created": f["created"], "updated": f["updated"], "metadata": None,
                               "access": {"hidden": False}, "transfer": {"type": "L"},
                               "status": "pending" if pending else "completed",
                               "links": {"self": url, "content": f"{url}/content", "commit": f"{url}/commit"}}
        if not pending:
            out.update({"checksum": "md5:" + f["md5"], "size": f["size"], "mimetype": _mimetype(f["key"]),
                        "storage_class": "L", "file_id": f["id"], "version_id": f["version_id"],
                        "bucket_id": rec["bucket"]})
        return out

    def rdm_files(self, rec: dict[str, Any]) -> dict[str, Any]:
        entries = [self.rdm_file(rec, f, pending=False) for f in rec["files"]]
        entries += [self.rdm_file(rec, f, pending=True) for f in (rec.get("pending") or {}).values()]
        return {"enabled": True, "entries": entries, "default_preview": None, "order": [],
                "links": {"self": self.api(f"/records/{rec['id']}/draft/files")}}

    def deposition(self, rec: dict[str, Any], *, listing: bool = False) -> dict[str, Any]:
        rid, concept = rec["id"], rec["conceptrecid"]
        published = rec["state"] == "done"
        dep = f"/deposit/depositions/{rid}"
        links = {"self": self.api(f"/records/{rid}" if published else dep),
                 "html": f"{self.base}/deposit/{rid}", "files": self.api(f"{dep}/files"),
                 "latest_draft": self.api(dep), "latest_draft_html": f"{self.base}/deposit/{rid}",
                 "publish": self.api(f"{dep}/actions/publish"), "edit": self.api(f"{dep}/actions/edit"),
                 "discard": self.api(f"{dep}/actions/discard"), "newversion": self.api(f"{dep}/actions/newversion"),
                 "registerconceptdoi": self.api(f"{dep}/actions/registerconceptdoi"),
                 "badge": f"{self.base}/badge/doi/.svg"}
        if not listing:
            links["bucket"] = self.api(f"/files/{rec['bucket']}")
        meta = dict(rec["metadata"])
        meta["prereserve_doi"] = {"doi": f"10.5281/zenodo.{rid}", "recid": rid}  # hard-coded, as on Zenodo
        out: dict[str, Any] = {"created": rec["created"], "modified": rec["modified"], "id": rid,
                               "conceptrecid": concept, "metadata": meta, "title": meta.get("title", ""),
                               "links": links, "record_id": rid, "owner": rec["owner"],
                               "files": [self.legacy_file(rec, f) for f in rec["files"]],
                               "state": rec["state"], "submitted": rec["submitted"]}
        if rec.get("published") is not None or rec["state"] != "unsubmitted":
            doi = self.repo.doi(rid)
            out.update({"doi": doi, "doi_url": f"https://doi.org/{doi}", "conceptdoi": self.repo.doi(concept)})
            meta["doi"] = doi
            links.update({"doi": f"https://doi.org/{doi}", "record": self.api(f"/records/{rid}"),
                          "latest": self.api(f"/records/{rid}/versions/latest"),
                          "parent_doi": f"{self.base}/doi/{self.repo.doi(concept)}"})
        elif any(r.get("published") for r in self.repo._concept_versions(concept)):
            out["conceptdoi"] = self.repo.doi(concept)
        return out

    def record(self, rec: dict[str, Any]) -> dict[str, Any]:
        """``GET /api/records/{id}``: the published version as Zenodo JSON."""
        pub = rec["published"]
        rid, concept = rec["id"], rec["conceptrecid"]
        doi = self.repo.doi(rid)
        meta = dict(pub["metadata"], doi=doi)
        versions = [r for r in self.repo._concept_versions(concept) if r.get("published")]
        idx = [r["id"] for r in versions].index(rid)
        meta["relations"] = {"version": [{"index": idx, "is_last": idx == len(versions) - 1,
                                          "parent": {"pid_type": "recid", "pid_value": concept}}]}
        files = [{"id": f["id"], "key": f["key"], "size": f["size"], "checksum": "md5:" + f["md5"],
                  "links": {"self": self.api(f"/records/{rid}/files/{quote(f['key'])}/content")}}
                 for f in pub["files"]]
        return {"created": pub["created"], "modified": pub["created"], "updated": pub["created"], "id": rid,
                "recid": str(rid), "conceptrecid": concept, "doi": doi, "conceptdoi": self.repo.doi(concept),
                "doi_url": f"https://doi.org/{doi}", "title": meta.get("title", ""), "metadata": meta,
                "links": {"self": self.api(f"/records/{rid}"), "self_html": f"{self.base}/records/{rid}",
                          "doi": f"https://doi.org/{doi}", "parent": self.api(f"/records/{concept}"),
                          "parent_doi": f"https://doi.org/{self.repo.doi(concept)}",
                          "files": self.api(f"/records/{rid}/files"),
                          "latest": self.api(f"/records/{rid}/versions/latest"),
                          "versions": self.api(f"/records/{rid}/versions")},
                "files": files, "owners": [{"id": str(rec["owner"])}], "status": "published",
                "stats": {"downloads": 0, "unique_downloads": 0, "views": 0, "unique_views": 0},
                "state": "done", "submitted": True, "revision": 1}

    def schema_org(self, rec: dict[str, Any]) -> dict[str, Any]:
        r = self.record(rec)
        m = r["metadata"]
        return {"@context": "http://schema.org", "@type": "Dataset", "@id": r["doi_url"], "identifier": r["doi_url"],
                "name": m.get("title"), "description": m.get("description"),
                "datePublished": m.get("publication_date"), "version": m.get("version"),
                "keywords": m.get("keywords", []), "url": r["links"]["self_html"],
                "license": LICENSE_URLS.get(m.get("license", ""), m.get("license")),
                "creator": [{"@type": "Person", "name": c.get("name"),
                             **({"@id": f"https://orcid.org/{c['orcid']}"} if c.get("orcid") else {})}
                            for c in m.get("creators", [])],
                "distribution": [{"@type": "DataDownload", "name": f["key"], "contentUrl": f["links"]["self"],
                                  "encodingFormat": _mimetype(f["key"]), "contentSize": str(f["size"])}
                                 for f in r["files"]]}

    def dcat_xml(self, rec: dict[str, Any], *, standalone: bool = True) -> str:
        r = self.record(rec)
        m = r["metadata"]
        e = escape
        parts = [f'<dcat:Dataset rdf:about="{e(r["doi_url"])}">',
                 f"<dct:identifier>{e(r['doi_url'])}</dct:identifier>",
                 f"<dct:title>{e(m.get('title', ''))}</dct:title>",
                 f"<dct:description>{e(m.get('description', ''))}</dct:description>",
                 f"<dct:issued>{e(m.get('publication_date', ''))}</dct:issued>",
                 f'<dcat:landingPage rdf:resource="{e(r["links"]["self_html"])}"/>']
        if m.get("version"):
            parts.append(f"<owl:versionInfo>{e(str(m['version']))}</owl:versionInfo>")
        for kw in m.get("keywords", []):
            parts.append(f"<dcat:keyword>{e(str(kw))}</dcat:keyword>")
        for c in m.get("creators", []):
            parts.append(f"<dct:creator><foaf:Agent><foaf:name>{e(str(c.get('name')))}</foaf:name>"
                         f"</foaf:Agent></dct:creator>")
        lic = LICENSE_URLS.get(m.get("license", ""))
        for f in r["files"]:
            parts.append(f"<dcat:distribution><dcat:Distribution>"
                         f"<dct:title>{e(f['key'])}</dct:title>"
                         f'<dcat:accessURL rdf:resource="{e(r["links"]["self_html"])}"/>'
                         f'<dcat:downloadURL rdf:resource="{e(f["links"]["self"])}"/>'
                         f"<dcat:mediaType>{e(_mimetype(f['key']))}</dcat:mediaType>"
                         f"<dcat:byteSize>{f['size']}</dcat:byteSize>"
                         + (f'<dct:license rdf:resource="{e(lic)}"/>' if lic else "")
                         + "</dcat:Distribution></dcat:distribution>")
        parts.append("</dcat:Dataset>")
        body = "".join(parts)
        ns = ('xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:dcat="http://www.w3.org/ns/dcat#" '
              'xmlns:dct="http://purl.org/dc/terms/" xmlns:foaf="http://xmlns.com/foaf/0.1/" '
              'xmlns:owl="http://www.w3.org/2002/07/owl#"')
        return (('<?xml version="1.0" encoding="UTF-8"?>\n' if standalone else "") + f"<rdf:RDF {ns}>{body}</rdf:RDF>")

    def oai_dc(self, rec: dict[str, Any]) -> str:
        r = self.record(rec)
        m = r["metadata"]
        e = escape
        items = [f"<dc:title>{e(m.get('title', ''))}</dc:title>"]
        items += [f"<dc:creator>{e(str(c.get('name')))}</dc:creator>" for c in m.get("creators", [])]
        items += [f"<dc:subject>{e(str(k))}</dc:subject>" for k in m.get("keywords", [])]
        items += [f"<dc:description>{e(m.get('description', ''))}</dc:description>",
                  f"<dc:date>{e(m.get('publication_date', ''))}</dc:date>",
                  "<dc:type>info:eu-repo/semantics/other</dc:type>",
                  f"<dc:identifier>{e(r['doi_url'])}</dc:identifier>",
                  f"<dc:identifier>oai:zenodo.org:{r['id']}</dc:identifier>",
                  f"<dc:rights>{e(LICENSE_URLS.get(m.get('license', ''), str(m.get('license', ''))))}</dc:rights>",
                  "<dc:rights>info:eu-repo/semantics/openAccess</dc:rights>",
                  f"<dc:publisher>{e(m.get('imprint_publisher', 'Zenodo'))}</dc:publisher>"]
        return ('<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" '
                'xmlns:dc="http://purl.org/dc/elements/1.1/" '
                'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                'xsi:schemaLocation="http://www.openarchives.org/OAI/2.0/oai_dc/ '
                'http://www.openarchives.org/OAI/2.0/oai_dc.xsd">' + "".join(items) + "</oai_dc:dc>")


# --------------------------------------------------------------------------------------------
# HTTP


RDM_CONTENT = re.compile(r"^/api/records/\d+/draft/files/.+/content$")
DOWNLOAD = re.compile(r"^/api/(?:records/\d+/(?:draft/)?files/.+/content|files/[0-9a-f-]+/.+)$")


class _Reset(Exception):
    """Drop the connection without an answer (injected fault)."""


class RepoServer(ThreadingHTTPServer):
    """The HTTP server: a :class:`LocalRepository` plus a :class:`FaultPlan`."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr: tuple[str, int], repo: LocalRepository, faults: FaultPlan | None = None):
        self.repo = repo
        self.faults = faults or FaultPlan()
        # the last answers (method, path, status or 0 for a dropped connection, Range header), for tests and
        # debugging; never the query string
        self.log: collections.deque[dict[str, Any]] = collections.deque(maxlen=2000)
        super().__init__(addr, Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def token(self) -> str | None:
        """A token this repository accepts (for in-process use, e.g. the README's main job)."""
        return next(iter(self.repo.tokens), None)


class Handler(BaseHTTPRequestHandler):
    """One request: authentication, rate limit, fault injection, routing, Zenodo-shaped answers."""

    server: RepoServer
    protocol_version = "HTTP/1.1"
    server_version = "imagine-localrepo/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet by default (the server must never echo tokens of query strings)."""

    # ---------------------------------------------------------------- plumbing
    def _send(self, status: int, body: Any = None, *, ctype: str = "application/json",
              headers: dict[str, str] | None = None) -> None:
        data = b""
        if body is not None:
            data = body if isinstance(body, bytes) else (
                body.encode() if isinstance(body, str) else json.dumps(body).encode())
        self._log(status)
        self.send_response(status)
        if data or status not in (204, 304):
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in {**self._rl_headers, **(headers or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)

    def _log(self, status: int) -> None:
        self.server.log.append({"method": self.command, "path": unquote(urlsplit(self.path).path),
                                "status": status, "range": self.headers.get("Range")})

    def _reset(self, *, graceful: bool = False) -> None:
        """Close the socket with an RST, as a proxy dropping a large upload does.

        ``graceful`` closes with a FIN instead (a download cut short: the client gets the bytes
        already sent, then end-of-stream before ``Content-Length``); an RST would also discard
        whatever the client had not read yet, which makes tests of resuming timing-dependent.
        """
        self._log(0)  # 0 in the log: the connection was dropped
        with contextlib.suppress(OSError):
            if graceful:
                self.connection.shutdown(socket.SHUT_WR)
            else:
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        raise _Reset()

    def _read(self, n: int) -> bytes:
        """Read up to ``n`` bytes of the request body (never past its end)."""
        n = min(n, self._left)
        if n <= 0:
            return b""
        data = self.rfile.read(n)
        self._left -= len(data)
        return data

    def _json_body(self) -> Any:
        raw = self._read(self._left)
        if not raw:
            return {}
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if ctype != "application/json":
            raise HTTPFailure(415, "Invalid 'Content-Type' header. Expected one of: application/json")
        try:
            return json.loads(raw)
        except ValueError:
            raise HTTPFailure(400, "Unable to decode JSON data in request body.") from None

    def _owner(self) -> int | None:
        auth = self.headers.get("Authorization") or ""
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        if token is None:
            token = next(iter(parse_qs(urlsplit(self.path).query).get("access_token") or []), None)
        return self.server.repo.tokens.get(token) if token else None

    def _base(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{self.headers.get('Host') or f'{host!s}:{port}'}"

    def _drain(self) -> None:
        while self._left > 0 and self._read(CHUNK):
            pass

    def _handle(self) -> None:
        self._rl_headers: dict[str, str] = {}
        self._fault: Fault | None = None
        self._left = int(self.headers.get("Content-Length") or 0)
        repo = self.server.repo
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        owner = self._owner()
        who = f"user:{owner}" if owner is not None else f"guest:{self.client_address[0]}"
        allowed, self._rl_headers = repo.rate(who, repo.rate_limit if owner is not None else repo.guest_rate_limit)
        body_len = int(self.headers.get("Content-Length") or 0)
        fault = self.server.faults.pick(self.command, path, body_len)
        try:
            if not allowed:
                self._drain()
                raise HTTPFailure(429, f"{repo.rate_limit} per 1 minute")
            upload = self.command == "PUT" and body_len > 0 and (
                path.startswith("/api/files/") or bool(RDM_CONTENT.search(path)))
            download = self.command == "GET" and bool(DOWNLOAD.search(path))
            if fault is not None and fault.kind in ("reset", "status", "ratelimit") and not (
                    fault.kind == "reset" and (upload or (download and fault.after_bytes > 0))):
                if fault.kind == "reset":
                    self._reset()
                self._drain()
                if fault.kind == "ratelimit":
                    self._rl_headers.update({"Retry-After": str(fault.retry_after), "X-RateLimit-Remaining": "0"})
                    raise HTTPFailure(429, f"{repo.rate_limit} per 1 minute")
                raise HTTPFailure(fault.status, "The server encountered an internal error and was unable to complete "
                                  "your request. Either the server is overloaded or there is an error in the "
                                  "application." if fault.status == 500 else "Service unavailable (injected).")
            self._fault = fault
            self._route(path, parse_qs(parts.query), owner)
        except HTTPFailure as exc:
            with contextlib.suppress(OSError):
                self._drain()
            self._send(exc.status, exc.body)

    def _after(self) -> None:
        """Apply an ``after``/``slow`` fault once the work is done."""
        f = self._fault
        if f is None:
            return
        if f.kind == "slow":
            time.sleep(f.delay)
        elif f.kind == "after":
            if f.status == 0:
                self._reset()
            raise HTTPFailure(f.status, "The server encountered an internal error and was unable to complete your "
                              "request. Either the server is overloaded or there is an error in the application.")

    def _dispatch(self) -> None:
        try:
            self._handle()
        except _Reset:
            return
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch

    # ---------------------------------------------------------------- routing
    def _route(self, path: str, query: dict[str, list[str]], owner: int | None) -> None:
        m = self.command
        if path.startswith("/_faults"):
            return self._faults_admin()
        if path == "/oai2d":
            return self._oai(query)
        if not path.startswith("/api/"):
            raise HTTPFailure(404, "Not found.")
        p = path[4:]
        rdm = re.fullmatch(r"/records/(\d+)/draft/files(?:/(.+?))?(/content|/commit)?", p)
        if rdm and not (m in ("GET", "HEAD") and rdm.group(3) == "/content"):  # downloads: _records_read
            if owner is None:
                self._drain()
                raise HTTPFailure(403, "Permission denied.")
            return self._rdm_files(owner, rdm.group(1), rdm.group(2), rdm.group(3) or "")
        if re.fullmatch(r"/records/\d+(/.*)?", p) and m in ("GET", "HEAD"):
            return self._records_read(p, query)
        if p == "/records" and m == "GET":
            return self._records_search(query)
        if p == "/licenses" and m == "GET":
            hits = [{"id": k, "title": {"en": k}, "props": {"url": LICENSE_URLS.get(v, "")}}
                    for k, v in LICENSES.items()]
            return self._send(200, {"hits": {"hits": hits, "total": len(hits)}})
        if owner is None:
            self._drain()
            raise HTTPFailure(403, "Permission denied.")
        s = Serializer(self.server.repo, self._base())
        if p == "/deposit/depositions":
            if m == "GET":
                return self._list(s, owner, query)
            if m == "POST":
                body = self._json_body()
                meta = self.server.repo.normalize_metadata(body) if body else {}
                rec = self.server.repo.create(owner, meta)
                self._after()
                return self._send(201, s.deposition(rec))
        if mm := re.fullmatch(r"/deposit/depositions/(\d+)(/.*)?", p):
            return self._deposition(s, owner, mm.group(1), mm.group(2) or "")
        if mm := re.fullmatch(r"/records/(\d+)/versions", p):
            if m == "POST":
                return self._versions(s, owner, mm.group(1))
        if mm := re.fullmatch(r"/files/([0-9a-f-]+)(?:/(.+))?", p):
            return self._bucket(s, owner, mm.group(1), mm.group(2))
        if p.startswith("/deposit"):
            raise HTTPFailure(405, "The method is not allowed for the requested URL.")
        raise HTTPFailure(404, "Not found.")

    def _faults_admin(self) -> None:
        if self.command == "GET":
            return self._send(200, self.server.faults.to_dict())
        if self.command == "DELETE":
            self.server.faults = FaultPlan()
            return self._send(204)
        if self.command in ("POST", "PUT"):
            body = self._json_body()
            try:
                self.server.faults = FaultPlan.from_dict(body)
            except UsageError as exc:
                raise HTTPFailure(400, exc.message) from None
            return self._send(200, self.server.faults.to_dict())
        raise HTTPFailure(405, "The method is not allowed for the requested URL.")

    def _list(self, s: Serializer, owner: int, query: dict[str, list[str]]) -> None:
        repo = self.server.repo
        q = (query.get("q") or [""])[0]
        terms = re.findall(r'"([^"]+)"', q) or [t.split(":", 1)[-1] for t in q.split() if t]
        seq, lag = repo.search_tick(), self.server.faults.lag
        with repo.lock:
            recs = [r for r in repo.records.values() if r["owner"] == owner and not r.get("deleted")
                    and repo.visible("dep", r["id"], seq, lag)]
            out = []
            for r in sorted(recs, key=lambda r: -r["id"]):
                blob = json.dumps(r["metadata"]) + f" {r['conceptrecid']} {r['id']}"
                if all(t in blob for t in terms):
                    out.append(s.deposition(r, listing=True))
        size = int((query.get("size") or ["10"])[0])
        page = int((query.get("page") or ["1"])[0])
        self._send(200, out[(page - 1) * size: page * size])

    def _deposition(self, s: Serializer, owner: int, rid: str, rest: str) -> None:
        repo, m = self.server.repo, self.command
        with repo.lock:
            rec = repo.get(rid, owner)
            editable = rec["state"] in ("unsubmitted", "inprogress")
            if rest == "" and m == "GET":
                return self._send(200, s.deposition(rec))
            if rest == "" and m == "PUT":
                body = self._json_body()
                if not editable:
                    raise HTTPFailure(404, "The persistent identifier is not registered.")
                meta = repo.normalize_metadata(body)
                if rec["state"] == "inprogress":
                    meta.pop("doi", None)
                rec["metadata"], rec["modified"] = meta, _now()
                repo.save()
                self._after()
                return self._send(200, s.deposition(rec))
            if rest == "" and m == "DELETE":
                if rec["state"] != "unsubmitted":
                    raise HTTPFailure(404, "The persistent identifier is not registered.")
                self._delete_draft(rec)
                self._after()
                return self._send(204)
            if rest == "/files" and m == "GET":
                return self._send(200, [s.legacy_file(rec, f) for f in rec["files"]])
            if rest == "/files" and m == "PUT":
                raise HTTPFailure(405, "The method is not allowed for the requested URL.")
            if (mm := re.fullmatch(r"/files/([^/]+)", rest)) is not None:
                f = next((f for f in rec["files"] if f["id"] == mm.group(1)), None)
                if m == "PUT":
                    raise HTTPFailure(405, "The method is not allowed for the requested URL.")
                if rec["state"] != "unsubmitted":
                    raise HTTPFailure(403, "Permission denied.")
                if f is None:
                    raise HTTPFailure(404, "Not found.")
                if m == "GET":
                    return self._send(200, s.legacy_file(rec, f))
                if m == "DELETE":
                    rec["files"].remove(f)
                    with contextlib.suppress(FileNotFoundError):
                        repo.file_path(rec, f["key"]).unlink()
                    repo.save()
                    self._after()
                    return self._send(204)
            if rest.startswith("/actions/") and m == "POST":
                self._drain()
                return self._action(s, owner, rec, rest[len("/actions/"):])
        raise HTTPFailure(405, "The method is not allowed for the requested URL.")

    def _delete_draft(self, rec: dict[str, Any]) -> None:
        repo = self.server.repo
        rec["deleted"] = True
        shutil.rmtree(repo.root / "files" / rec["bucket"], ignore_errors=True)
        shutil.rmtree(repo.root / "pending" / rec["bucket"], ignore_errors=True)
        repo.buckets.pop(rec["bucket"], None)
        repo.save()

    def _action(self, s: Serializer, owner: int, rec: dict[str, Any], action: str) -> None:
        repo = self.server.repo
        if action == "publish":
            if rec["state"] == "done":
                raise HTTPFailure(404, "The persistent identifier is not registered.")
            repo.check_publishable(rec)
            rec["state"], rec["submitted"], rec["modified"] = "done", True, _now()
            meta = dict(rec["metadata"], doi=repo.doi(rec["id"]))
            rec["metadata"] = meta
            first = rec.get("published") is None
            rec["published"] = {"metadata": meta, "files": [dict(f) for f in rec["files"]],
                                "created": (rec.get("published") or {}).get("created") or _now()}
            if first:
                repo.indexed("rec", rec["id"])
            repo.save()
            self._after()
            return self._send(202, s.deposition(rec))
        if action == "edit":
            if rec["state"] != "done":
                raise HTTPFailure(400, "Deposition is already in edit mode." if rec["state"] == "inprogress"
                                  else "The persistent identifier is not registered.")
            rec["state"] = "inprogress"
            repo.save()
            self._after()
            return self._send(201, s.deposition(rec))
        if action == "discard":
            if rec["state"] == "inprogress":
                rec["state"], rec["metadata"] = "done", dict(rec["published"]["metadata"])
                repo.save()
            elif rec["state"] == "unsubmitted":
                self._delete_draft(rec)
            else:
                raise HTTPFailure(404, "The persistent identifier is not registered.")
            self._after()
            return self._send(204)
        if action == "newversion":
            if rec["state"] == "unsubmitted" and not rec.get("published"):
                raise HTTPFailure(404, "The persistent identifier is not registered.")
            draft = self._next_draft(owner, rec)
            if draft["files"]:
                raise _validation("files.enabled", "Please remove all files first.")
            latest = [r for r in repo._concept_versions(rec["conceptrecid"]) if r.get("published")][-1]
            repo.import_files(latest, draft)
            repo.save()
            self._after()
            return self._send(201, s.deposition(draft))
        if action == "registerconceptdoi":
            raise HTTPFailure(405, "The method is not allowed for the requested URL.")
        raise HTTPFailure(404, "Not found.")

    def _next_draft(self, owner: int, rec: dict[str, Any]) -> dict[str, Any]:
        """The concept's unpublished next-version draft, created (metadata copied, version/date reset) if absent."""
        repo = self.server.repo
        versions = repo._concept_versions(rec["conceptrecid"])
        draft = next((r for r in versions if r["state"] == "unsubmitted" and not r.get("published")), None)
        if draft is None:
            latest = [r for r in versions if r.get("published")][-1]
            meta = {k: v for k, v in latest["published"]["metadata"].items() if k not in ("doi", "version")}
            meta["publication_date"] = _today()
            meta["version"] = ""
            draft = repo.create(owner, meta, concept=rec["conceptrecid"])
        return draft

    def _versions(self, s: Serializer, owner: int, rid: str) -> None:
        repo = self.server.repo
        self._drain()
        with repo.lock:
            rec = repo.get(rid, owner)
            if not rec.get("published"):
                raise HTTPFailure(404, "The persistent identifier is not registered.")
            draft = self._next_draft(owner, rec)
            self._after()
            self._send(201, s.deposition(draft))

    def _bucket(self, s: Serializer, owner: int, bucket: str, key: str | None) -> None:
        repo, m = self.server.repo, self.command
        rid = repo.buckets.get(bucket)
        if rid is None:
            self._drain()
            raise HTTPFailure(404, "Bucket does not exist.")
        rec = repo.get(rid, owner)
        if key is None:
            if m == "GET" and repo.quirks:
                raise HTTPFailure(500, "The server encountered an internal error and was unable to complete your "
                                  "request. Either the server is overloaded or there is an error in the application.")
            if m == "GET":
                return self._send(200, {"contents": [s.bucket_object(rec, f) for f in rec["files"]]})
            raise HTTPFailure(405, "The method is not allowed for the requested URL.")
        f = next((f for f in rec["files"] if f["key"] == key), None)
        if m in ("GET", "HEAD"):
            if f is None:
                raise HTTPFailure(404, "Object does not exists.")
            return self._send_file(repo.file_path(rec, key), f)
        if m == "DELETE":
            if repo.quirks:
                raise HTTPFailure(500, "The server encountered an internal error and was unable to complete your "
                                  "request. Either the server is overloaded or there is an error in the application.")
            if rec["state"] != "unsubmitted":
                raise HTTPFailure(403, "Bucket is locked for modifications.")
            if f is None:
                raise HTTPFailure(404, "Object does not exists.")
            rec["files"].remove(f)
            repo.file_path(rec, key).unlink(missing_ok=True)
            repo.save()
            return self._send(204)
        if m == "PUT":
            if rec["state"] != "unsubmitted":
                self._drain()
                raise HTTPFailure(403, "Bucket is locked for modifications.")
            if "/" in key or key in (".", "..") or "\x00" in key:
                self._drain()
                raise HTTPFailure(400, "Invalid file name.")
            length = self.headers.get("Content-Length")
            if length is None:
                raise HTTPFailure(411, "Content-Length required.")
            size = int(length)
            if size > repo.quota or repo.used(rec, key) + size > repo.quota:
                self._drain()
                raise HTTPFailure(400, "Bucket quota exceeded.")
            if f is None and len(rec["files"]) >= repo.max_files:
                self._drain()
                raise HTTPFailure(400, "Uploading selected files will result in exceeding the max amount per record.")
            entry = self._receive(rec, key, size)
            self._after()
            return self._send(201, s.bucket_object(rec, entry))
        raise HTTPFailure(405, "The method is not allowed for the requested URL.")

    def _receive(self, rec: dict[str, Any], key: str, size: int) -> dict[str, Any]:
        """Stream the body to a temporary file with its MD5 and store it as ``key`` (resets per the fault plan)."""
        tmp, md5 = self._receive_tmp(size)
        try:
            return self.server.repo.put_file(rec, key, tmp, size, md5)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _range(self, size: int) -> tuple[int, int] | None:
        """The single byte range asked for (``bytes=N-``, ``bytes=N-M``, ``bytes=-K``), None for the whole file.

        Raises 416 when it starts at or past the end; a header it cannot parse is ignored (RFC 9110).
        """
        spec = (self.headers.get("Range") or "").strip()
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", spec)
        if not m or not (m.group(1) or m.group(2)):
            return None
        if not m.group(1):  # suffix: the last K bytes
            k = int(m.group(2))
            if k == 0:
                raise HTTPFailure(416, "Requested range not satisfiable.")
            return max(0, size - k), size - 1
        start = int(m.group(1))
        end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        if start >= size or (m.group(2) and int(m.group(2)) < start):
            raise HTTPFailure(416, "Requested range not satisfiable.")
        return start, end

    def _send_file(self, path: Path, f: dict[str, Any]) -> None:
        """Send a stored file (whole: 200; one range: 206 with Content-Range; 416 if unsatisfiable)."""
        size = path.stat().st_size
        try:
            rng = self._range(size)
        except HTTPFailure:
            self._rl_headers["Content-Range"] = f"bytes */{size}"
            raise
        start, end = rng if rng is not None else (0, size - 1)
        length = max(0, end - start + 1)
        status = 206 if rng is not None else 200
        self._log(status)
        self.send_response(status)
        self.send_header("Content-Type", _mimetype(f["key"]))
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if rng is not None:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("ETag", f'"md5:{f["md5"]}"')
        self.send_header("Content-MD5", f["md5"])
        self.send_header("Content-Disposition", f"attachment; filename={quote(f['key'])}")
        self.send_header("Last-Modified", formatdate(usegmt=True))
        for k, v in self._rl_headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "HEAD":
            return
        cut = self._fault.after_bytes if (self._fault and self._fault.kind == "reset") else -1
        with open(path, "rb") as fh:
            fh.seek(start)
            left = length
            while left > 0:
                n = min(CHUNK, left) if cut < 0 else min(CHUNK, left, max(0, cut))
                if cut == 0:
                    self.wfile.flush()
                    self._reset(graceful=True)
                chunk = fh.read(n)
                if not chunk:
                    break
                self.wfile.write(chunk)
                left -= len(chunk)
                if cut > 0:
                    cut -= len(chunk)

    # ---------------------------------------------------------------- InvenioRDM draft files
    def _rdm_files(self, owner: int, rid: str, key: str | None, action: str) -> None:
        """``/api/records/{id}/draft/files[/{key}[/content|/commit]]`` as InvenioRDM answers them.

        Init makes ``pending`` entries (declared size/checksum stored, not verified), content PUT
        stores the bytes (200, still pending), commit computes the real MD5 and makes the file part
        of the draft (the same files the legacy API and the bucket see).
        """
        repo, m = self.server.repo, self.command
        s = Serializer(repo, self._base())
        with repo.lock:
            rec = repo.get(rid, owner)
            if rec["state"] == "done":
                self._drain()
                raise HTTPFailure(404, "The persistent identifier is not registered.")
            pending: dict[str, dict[str, Any]] = rec.setdefault("pending", {})
            locked = rec["state"] != "unsubmitted"
            if key is None:
                if m == "GET":
                    return self._send(200, s.rdm_files(rec))
                if m == "POST":
                    body = self._json_body()
                    if locked:
                        raise HTTPFailure(403, "Bucket is locked for modifications.")
                    if not isinstance(body, list) or not all(isinstance(e, dict) and isinstance(e.get("key"), str)
                                                             for e in body):
                        raise _validation("_schema", "Expected a list of objects with a key.")
                    keys = [e["key"] for e in body]
                    for k in keys:
                        if "/" in k or k in ("", ".", "..") or "\x00" in k:
                            raise HTTPFailure(400, "Invalid file name.")
                        if k in pending or any(f["key"] == k for f in rec["files"]) or keys.count(k) > 1:
                            raise HTTPFailure(400, f"File with key {k} already exists.")
                    if len(rec["files"]) + len(pending) + len(keys) > repo.max_files:
                        raise HTTPFailure(400, "Uploading selected files will result in exceeding the max amount "
                                          "per record.")
                    for e in body:
                        pending[e["key"]] = {"key": e["key"], "size": e.get("size"), "checksum": e.get("checksum"),
                                             "created": _now(), "updated": _now(), "uploaded": None}
                    rec["modified"] = _now()
                    repo.save()
                    self._after()
                    return self._send(201, s.rdm_files(rec))
                raise HTTPFailure(405, "The method is not allowed for the requested URL.")
            done = next((f for f in rec["files"] if f["key"] == key), None)
            entry = pending.get(key)
            if done is None and entry is None:
                self._drain()
                raise HTTPFailure(404, f"File with key {key} not found.")
            if action == "":
                if m in ("GET", "HEAD"):
                    return self._send(200, s.rdm_file(rec, done or entry or {}, pending=done is None))
                if m == "DELETE":
                    if locked:
                        raise HTTPFailure(403, "Bucket is locked for modifications.")
                    if done is not None:
                        rec["files"].remove(done)
                        repo.file_path(rec, key).unlink(missing_ok=True)
                    else:
                        pending.pop(key, None)
                        repo.pending_path(rec, key).unlink(missing_ok=True)
                    rec["modified"] = _now()
                    repo.save()
                    self._after()
                    return self._send(204)
                raise HTTPFailure(405, "The method is not allowed for the requested URL.")
            if action == "/content" and m == "PUT":
                if done is not None:
                    self._drain()
                    raise HTTPFailure(400, f'File with key "{key}" is already committed.')
                if locked:
                    self._drain()
                    raise HTTPFailure(403, "Bucket is locked for modifications.")
                length = self.headers.get("Content-Length")
                if length is None:
                    raise HTTPFailure(411, "Content-Length required.")
                size = int(length)
                if size > repo.quota or repo.used(rec) + size > repo.quota:
                    self._drain()
                    raise HTTPFailure(400, "Bucket quota exceeded.")
        # the body is streamed outside the lock (large files); the entry is re-checked afterwards
        if action == "/content" and m == "PUT":
            tmp, md5 = self._receive_tmp(size)
            with repo.lock:
                entry = rec.get("pending", {}).get(key)
                if entry is None:
                    tmp.unlink(missing_ok=True)
                    raise HTTPFailure(404, f"File with key {key} not found.")
                dest = repo.pending_path(rec, key)
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, dest)
                entry.update({"uploaded": {"size": size, "md5": md5}, "updated": _now()})
                repo.save()
                self._after()
                return self._send(200, s.rdm_file(rec, entry, pending=True))
        with repo.lock:
            if action == "/commit" and m == "POST":
                self._drain()
                done = next((f for f in rec["files"] if f["key"] == key), None)
                entry = rec.get("pending", {}).get(key)
                if done is None and entry is None:
                    raise HTTPFailure(404, f"File with key {key} not found.")
                if done is not None:
                    return self._send(200, s.rdm_file(rec, done, pending=False))  # committing again: no-op
                assert entry is not None
                if not entry.get("uploaded"):
                    raise HTTPFailure(400, f"File with key {key} has no content yet; upload it before committing.")
                up = entry["uploaded"]
                f = repo.put_file(rec, key, repo.pending_path(rec, key), int(up["size"]), str(up["md5"]))
                rec["pending"].pop(key, None)
                repo.save()
                self._after()
                return self._send(200, s.rdm_file(rec, f, pending=False))
        raise HTTPFailure(405, "The method is not allowed for the requested URL.")

    def _receive_tmp(self, size: int) -> tuple[Path, str]:
        """Stream the request body to a temporary file; (path, MD5). Honours reset faults mid-body."""
        repo = self.server.repo
        fd, name = tempfile.mkstemp(suffix=".part", dir=repo.root / "tmp")
        path = Path(name)
        md5 = hashlib.md5(usedforsecurity=False)
        got = 0
        cut = self._fault.after_bytes if (self._fault and self._fault.kind == "reset") else -1
        try:
            with os.fdopen(fd, "wb") as out:
                while got < size:
                    if 0 <= cut <= got:
                        self._reset()
                    n = min(CHUNK, size - got) if cut < 0 else min(CHUNK, size - got, max(1, cut - got))
                    chunk = self._read(n)
                    if not chunk:
                        raise _Reset()
                    md5.update(chunk)
                    out.write(chunk)
                    got += len(chunk)
            return path, md5.hexdigest()
        except BaseException:
            path.unlink(missing_ok=True)
            raise

    # ---------------------------------------------------------------- public records
    def _published(self, rid: str) -> dict[str, Any]:
        rec = self.server.repo.records.get(rid)
        if rec is None or not rec.get("published"):
            raise HTTPFailure(404, "The persistent identifier does not exist.")
        return rec

    def _records_read(self, p: str, query: dict[str, list[str]]) -> None:
        repo = self.server.repo
        s = Serializer(repo, self._base())
        mm = re.fullmatch(r"/records/(\d+)(/.*)?", p)
        assert mm is not None
        rid, rest = mm.group(1), mm.group(2) or ""
        with repo.lock:
            if rest == "/versions/latest":
                rec = self._published(rid)
                latest = [r for r in repo._concept_versions(rec["conceptrecid"]) if r.get("published")][-1]
                loc = s.api(f"/records/{latest['id']}")
                return self._send(301, {"status": 301, "message": "Redirecting...", "location": loc},
                                  headers={"Location": loc})
            if mm2 := re.fullmatch(r"/(?:draft/)?files/(.+)/content", rest):
                if rest.startswith("/draft") and self._owner() is None:
                    raise HTTPFailure(403, "Permission denied.")
                rec = self._published(rid) if not rest.startswith("/draft") else repo.get(rid, self._owner())
                files = rec["published"]["files"] if not rest.startswith("/draft") else rec["files"]
                f = next((f for f in files if f["key"] == mm2.group(1)), None)
                if f is None:
                    raise HTTPFailure(404, "Not found.")
                path = repo.root / "files" / rec["bucket"] / f["path"]
            elif rest == "/files":
                rec = self._published(rid)
                return self._send(200, {"enabled": True, "entries": s.record(rec)["files"]})
            elif rest == "":
                rec = self._published(rid)
                accept = (self.headers.get("Accept") or "application/json").split(",")[0].split(";")[0].strip()
                if accept in ("application/json", "*/*", ""):
                    return self._send(200, s.record(rec))
                if accept == "application/ld+json":
                    return self._send(200, s.schema_org(rec), ctype="application/ld+json")
                if accept == "application/dcat+xml":
                    return self._send(200, s.dcat_xml(rec), ctype="application/dcat+xml")
                raise HTTPFailure(406, "Invalid 'Accept' header. Expected one of: application/json, "
                                  "application/ld+json, application/dcat+xml")
            else:
                raise HTTPFailure(404, "Not found.")
        self._send_file(path, f)

    def _records_search(self, query: dict[str, list[str]]) -> None:
        repo = self.server.repo
        s = Serializer(repo, self._base())
        q = (query.get("q") or [""])[0]
        seq, lag = repo.search_tick(), self.server.faults.lag
        with repo.lock:
            hits = [s.record(r) for r in sorted(repo.records.values(), key=lambda r: -r["id"])
                    if r.get("published") and (not q or q in json.dumps(r["published"]["metadata"]))
                    and repo.visible("rec", r["id"], seq, lag)]
        self._send(200, {"hits": {"hits": hits, "total": len(hits)}})

    # ---------------------------------------------------------------- OAI-PMH
    def _oai(self, query: dict[str, list[str]]) -> None:
        repo = self.server.repo
        s = Serializer(repo, self._base())
        verb = (query.get("verb") or [""])[0]
        prefix = (query.get("metadataPrefix") or [""])[0]
        ident = (query.get("identifier") or [""])[0]
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        attrs = " ".join(f'{k}="{escape(v[0])}"' for k, v in query.items() if k in
                         ("verb", "metadataPrefix", "identifier"))
        head = ('<?xml version="1.0" encoding="UTF-8"?>\n<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/" '
                'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                'xsi:schemaLocation="http://www.openarchives.org/OAI/2.0/ '
                f'http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd"><responseDate>{now}</responseDate>'
                f'<request {attrs}>{escape(s.base)}/oai2d</request>')

        def error(code: str, msg: str) -> None:
            self._send(200, head + f'<error code="{code}">{escape(msg)}</error></OAI-PMH>', ctype="text/xml")

        def record_xml(rec: dict[str, Any], with_meta: bool) -> str:
            header = (f"<header><identifier>oai:zenodo.org:{rec['id']}</identifier>"
                      f"<datestamp>{rec['published']['created'][:19]}Z</datestamp></header>")
            if not with_meta:
                return header
            meta = s.oai_dc(rec) if prefix == "oai_dc" else s.dcat_xml(rec, standalone=False)
            return f"<record>{header}<metadata>{meta}</metadata></record>"

        if verb == "Identify":
            return self._send(200, head + "<Identify><repositoryName>imagine local repository</repositoryName>"
                              f"<baseURL>{escape(s.base)}/oai2d</baseURL><protocolVersion>2.0</protocolVersion>"
                              "<adminEmail>nobody@localhost</adminEmail>"
                              "<earliestDatestamp>2000-01-01T00:00:00Z</earliestDatestamp>"
                              "<deletedRecord>no</deletedRecord><granularity>YYYY-MM-DDThh:mm:ssZ</granularity>"
                              "</Identify></OAI-PMH>", ctype="text/xml")
        if verb == "ListMetadataFormats":
            fmts = [("oai_dc", "http://www.openarchives.org/OAI/2.0/oai_dc.xsd",
                     "http://www.openarchives.org/OAI/2.0/oai_dc/"),
                    ("dcat", "https://www.w3.org/ns/dcat.rdf", "http://www.w3.org/ns/dcat#")]
            body = "".join(f"<metadataFormat><metadataPrefix>{p}</metadataPrefix><schema>{sc}</schema>"
                           f"<metadataNamespace>{ns}</metadataNamespace></metadataFormat>" for p, sc, ns in fmts)
            return self._send(200, head + f"<ListMetadataFormats>{body}</ListMetadataFormats></OAI-PMH>",
                              ctype="text/xml")
        if verb in ("GetRecord", "ListRecords", "ListIdentifiers"):
            if verb != "ListIdentifiers" or prefix:
                if prefix not in ("oai_dc", "dcat"):
                    return error("cannotDisseminateFormat", f"unknown metadataPrefix {prefix!r}")
            with repo.lock:
                if verb == "GetRecord":
                    mm = re.fullmatch(r"oai:zenodo\.org:(\d+)", ident)
                    rec = repo.records.get(mm.group(1)) if mm else None
                    if rec is None or not rec.get("published"):
                        return error("idDoesNotExist", f"no record {ident!r}")
                    return self._send(200, head + f"<GetRecord>{record_xml(rec, True)}</GetRecord></OAI-PMH>",
                                      ctype="text/xml")
                recs = [r for r in sorted(repo.records.values(), key=lambda r: r["id"]) if r.get("published")]
                if not recs:
                    return error("noRecordsMatch", "no records")
                body = "".join(record_xml(r, verb == "ListRecords") for r in recs)
            return self._send(200, head + f"<{verb}>{body}</{verb}></OAI-PMH>", ctype="text/xml")
        return error("badVerb", f"illegal verb {verb!r}")


def start_server(root: str | os.PathLike[str], *, host: str = "127.0.0.1", port: int = 0,
                 faults: FaultPlan | None = None, **repo_options: Any) -> RepoServer:
    """Start the repository in a background thread (port 0 = a free port); ``.shutdown()`` to stop."""
    repo = LocalRepository(root, **repo_options)
    server = RepoServer((host, port), repo, faults)
    threading.Thread(target=server.serve_forever, args=(0.05,), name="imagine-localrepo", daemon=True).start()
    return server


def serve(root: str | os.PathLike[str] | None = None, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
          faults: FaultPlan | None = None, quota: int = DEFAULT_QUOTA, rate_limit: int = 1000) -> RepoServer:
    """Build the server for ``imagine-publish serve`` (the caller runs ``serve_forever``)."""
    repo = LocalRepository(root or default_root(), quota=quota, rate_limit=rate_limit)
    try:
        return RepoServer((host, port), repo, faults)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
