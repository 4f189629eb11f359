"""The Zenodo HTTP client: one session, safe retries, rate limits, streaming checksummed transfers.

Works against zenodo.org, the sandbox, or any Zenodo-compatible base URL (the default is the local
repository of :mod:`imagine.publish.localrepo`). It speaks the legacy deposit API with bucket
uploads, the path Zenodo documents and that behaves as catalogued in the project's notes.

Rules it follows: a clear ``User-Agent``; connect/read timeouts; retries with exponential backoff
and jitter only for idempotent calls (GET, PUT, DELETE) on connection errors and 5xx; 429 honours
``Retry-After`` / ``X-RateLimit-Reset`` for every call (the server did nothing); pacing when
``X-RateLimit-Remaining`` reaches 0; non-idempotent calls (create, new version, publish, discard)
re-read server state through a ``reconcile`` callback before being retried; both error body
shapes (``errors[].messages[]`` and the pre-2023 ``errors[].message``) become readable messages.
The token is sent only in the ``Authorization`` header and never appears in URLs, logs, errors or
files written by this module.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import http.client
import json
import logging
import os
import queue
import random
import re
import socket
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from imagine.kernel import InputError, RemoteError, UsageError, require

__all__ = ["ZenodoClient", "resolve_target", "load_token", "error_message", "file_md5", "TARGETS",
           "config_path", "USER_AGENT", "PendingCreateError"]

log = logging.getLogger("imagine.publish.zenodo")

TARGETS = {"zenodo": "https://zenodo.org/api", "sandbox": "https://sandbox.zenodo.org/api"}
CHUNK = 1 << 20
READ = 1 << 16  # download read size: bytes already received survive a dropped connection
RETRY_STATUSES = (500, 502, 503, 504)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("imagine-aquatic")
    except Exception:  # pragma: no cover - not installed
        return "0"


USER_AGENT = f"imagine-publish/{_version()} (+https://github.com/imagine-aquatic/imagine; python-requests)"


def resolve_target(target: str | None) -> str:
    """Base API URL for ``zenodo``, ``sandbox``, ``local`` (default) or any URL."""
    from .localrepo import DEFAULT_PORT

    if target in (None, "", "local"):
        return f"http://127.0.0.1:{DEFAULT_PORT}/api"
    assert target is not None
    if target in TARGETS:
        return TARGETS[target]
    parts = urlsplit(target)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"unknown target {target!r}: use zenodo, sandbox, local or an http(s) base URL")
    if parts.query or "@" in parts.netloc:
        raise UsageError("the target URL must not carry credentials or a query string; "
                         "put the token in ZENODO_TOKEN or the config file")
    path = parts.path.rstrip("/")
    if not path.endswith("/api"):
        path += "/api"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def config_path() -> Path:
    """``$XDG_CONFIG_HOME/imagine/zenodo.json``: ``{"zenodo": TOKEN, "sandbox": TOKEN, "<base url>": TOKEN}``."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "imagine" / "zenodo.json"


def _is_local(base_url: str) -> bool:
    host = urlsplit(base_url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1")


def load_token(base_url: str, *, config: str | os.PathLike[str] | None = None,
               local_root: str | os.PathLike[str] | None = None) -> str | None:
    """The token for ``base_url``: ``ZENODO_TOKEN`` (``ZENODO_SANDBOX_TOKEN`` for the sandbox), else the
    config file, which must not be readable by group or others; for a local repository, its own token file.
    """
    env = "ZENODO_SANDBOX_TOKEN" if base_url == TARGETS["sandbox"] else "ZENODO_TOKEN"
    if os.environ.get(env):
        return os.environ[env].strip()
    path = Path(config) if config is not None else config_path()
    if path.exists():
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UsageError(f"token file is readable by others (mode {stat.S_IMODE(mode):o}); "
                             f"run: chmod 600 {path}", file=path)
        try:
            doc = json.loads(path.read_text("utf-8"))
        except ValueError as exc:
            raise InputError(f"malformed JSON: {exc}", file=path) from None
        if not isinstance(doc, dict):
            raise InputError("expected an object mapping targets to tokens", file=path, place="/")
        name = next((k for k, v in TARGETS.items() if v == base_url), None)
        for key in (base_url, name, "local" if _is_local(base_url) else None):
            if key and isinstance(doc.get(key), str):
                return str(doc[key]).strip()
    if _is_local(base_url):
        from .localrepo import default_root

        tokens = Path(local_root or default_root()) / "tokens.json"
        if tokens.exists():
            with contextlib.suppress(ValueError, OSError):
                return next(iter(json.loads(tokens.read_text("utf-8"))), None)
    return None


def _strip_html(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()


def error_message(status: int, body: bytes | str, reason: str = "") -> str:
    """A readable one-paragraph message from either Zenodo error body shape (or an HTML proxy page)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    parts = []
    if isinstance(doc, dict):
        if doc.get("message"):
            parts.append(str(doc["message"]))
        errs = doc.get("errors")
        if isinstance(errs, list):
            for e in errs:
                if not isinstance(e, dict):
                    parts.append(str(e))
                    continue
                msgs = e.get("messages")
                if msgs is None:
                    msgs = [e.get("message", "")]
                elif not isinstance(msgs, list):
                    msgs = [msgs]
                detail = "; ".join(str(m) for m in msgs if m)
                parts.append(f"{e.get('field')}: {detail}" if e.get("field") else detail)
        elif isinstance(errs, str):
            parts.append(errs)
    elif text.strip():
        parts.append(_strip_html(text)[:300])
    msg = " — ".join(p for p in parts if p) or reason or "no details"
    hint = {401: "check the token", 403: "check the token and that it belongs to this target "
                                         "(a sandbox token does not work on zenodo.org, nor the reverse)",
            413: "the request is too large for the server", 429: "rate limited"}.get(status)
    return f"HTTP {status}: {msg}" + (f" ({hint})" if hint else "")


def file_md5(path: str | os.PathLike[str]) -> str:
    """Hex MD5 of a file, streamed."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


class FileChangedError(InputError):
    """A file changed on disk between checksumming and uploading."""


class PendingCreateError(RemoteError):
    """A create may have happened unheard and the search does not show it yet: nothing was created (resumable)."""


class _HashingReader:
    """A file body for ``requests`` that streams from disk and computes MD5 on the fly (``hashing``).

    Through requests (HTTPS), a helper thread reads and hashes 4 MiB blocks ahead (bounded queue)
    while the caller sends the previous one; over plain HTTP, :class:`_SendfileAdapter` sends with
    the kernel's ``sendfile`` while the helper thread hashes. Memory stays bounded either way.
    """

    DEPTH = 4
    BLOCK = 4 * CHUNK

    def __init__(self, path: Path, size: int, hashing: bool = True):
        self.path, self.size, self.hashing = path, size, hashing
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sent = 0
        self._q: queue.Queue[bytes | BaseException | None] = queue.Queue(self.DEPTH)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _start(self, target: Callable[[], None]) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=target, name="imagine-upload-reader", daemon=True)
            self._thread.start()

    def _pump(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                left = self.size
                while left > 0 and not self._stop.is_set():
                    chunk = fh.read(min(self.BLOCK, left))
                    if not chunk:
                        raise FileChangedError(f"file shrank while uploading ({self.size - left} of {self.size} "
                                               "bytes)", file=self.path)
                    if self.hashing:
                        self.md5.update(chunk)
                    left -= len(chunk)
                    self._put(chunk)
            self._put(None)
        except BaseException as exc:  # handed to the sending thread
            self._put(exc)

    def _put(self, item: bytes | BaseException | None) -> None:
        while not self._stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __len__(self) -> int:
        return self.size

    def read(self, n: int = -1) -> bytes:
        if self.sent >= self.size:
            return b""
        self._start(self._pump)
        item = self._q.get()
        if isinstance(item, BaseException):
            raise item
        if item is None:
            return b""
        self.sent += len(item)
        return item

    def _hash_file(self) -> None:
        """MD5 of the file read through one reused buffer (bounded memory), alongside a kernel ``sendfile``."""
        buf = bytearray(self.BLOCK)
        view = memoryview(buf)
        try:
            with open(self.path, "rb", buffering=0) as fh:
                left = self.size
                while left > 0 and not self._stop.is_set():
                    n = fh.readinto(view[:min(self.BLOCK, left)])
                    if not n:
                        break
                    self.md5.update(view[:n])
                    left -= n
        except OSError as exc:  # e.g. removed under us: the digest will not match
            self.md5.update(repr(exc).encode())
        finally:
            view.release()

    def sendfile(self, sock: socket.socket) -> None:
        """Send the whole file with the kernel's ``sendfile`` while a helper thread hashes it."""
        if self.hashing:
            self._start(self._hash_file)
        with open(self.path, "rb") as fh:
            self.sent = sock.sendfile(fh, 0, self.size)
        if self.sent < self.size:
            raise FileChangedError(f"file shrank while uploading ({self.sent} of {self.size} bytes)", file=self.path)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self.sent < self.size:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def hexdigest(self) -> str:
        """MD5 of the bytes read (complete once the whole body was sent)."""
        if self._thread is not None:
            self._thread.join()
        return self.md5.hexdigest()


class _SendfileAdapter:
    """Transport for streamed uploads over plain HTTP: the kernel copies file to socket (``sendfile``).

    Mounted on the session for ``http://`` so every other call, HTTPS (where TLS needs user-space
    copies) and proxies go through the normal requests adapter. Same headers (token, User-Agent,
    Content-Length), same timeouts; errors become requests' ConnectionError/Timeout so the one
    retry loop handles them.
    """

    def __init__(self, inner: Any):
        self.inner = inner

    def send(self, request: Any, stream: bool = False, timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Any = None) -> Any:
        requests = require("requests", "publish")
        body = request.body
        proxied = bool(proxies) and any(proxies.get(k) for k in ("http", "all"))
        if not isinstance(body, _HashingReader) or not request.url.startswith("http://") or proxied:
            return self.inner.send(request, stream=stream, timeout=timeout, verify=verify, cert=cert,
                                   proxies=proxies)
        parts = urlsplit(request.url)
        connect_t, read_t = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        conn = http.client.HTTPConnection(parts.hostname or "localhost", parts.port or 80, timeout=connect_t)
        try:
            conn.connect()
            assert conn.sock is not None
            conn.sock.settimeout(read_t)
            conn.putrequest(request.method, parts.path + (f"?{parts.query}" if parts.query else ""),
                            skip_accept_encoding=True)
            for k, v in request.headers.items():
                conn.putheader(k, v)
            conn.endheaders()
            body.sendfile(conn.sock)
            raw = conn.getresponse()
            content = raw.read()
        except TimeoutError as exc:
            raise requests.Timeout(exc, request=request) from None
        except (OSError, http.client.HTTPException) as exc:
            raise requests.ConnectionError(exc, request=request) from None
        finally:
            conn.close()
        resp = requests.Response()
        resp.status_code, resp.reason, resp.url, resp.request = raw.status, raw.reason, request.url, request
        resp.headers = requests.structures.CaseInsensitiveDict(raw.getheaders())
        resp._content = content
        resp.encoding = requests.utils.get_encoding_from_headers(resp.headers)
        return resp

    def close(self) -> None:
        self.inner.close()


class _BearerAuth:
    """Adds the token header at send time; ``repr`` never shows it."""

    def __init__(self, token: str | None):
        self._token = token

    def __call__(self, r: Any) -> Any:
        if self._token:
            r.headers["Authorization"] = f"Bearer {self._token}"
        return r

    def __repr__(self) -> str:
        return "<token hidden>"


@dataclass
class Call:
    """One request as recorded for ``--dry-run`` and the request log (never holds the token)."""

    method: str
    url: str
    note: str = ""
    status: int | None = None

    def render(self) -> str:
        tail = f"  # {self.note}" if self.note else ""
        return f"{self.method} {self.url}" + (f" -> {self.status}" if self.status is not None else "") + tail


@dataclass
class ZenodoClient:
    """Requests to one Zenodo-compatible API (``base_url`` ends with ``/api``)."""

    base_url: str
    token: str | None = None
    timeout: tuple[float, float] = (10.0, 300.0)
    max_retries: int = 6
    backoff: float = 0.5
    max_wait: float = 120.0
    dry_run: bool = False
    stream_md5: bool = True
    sleep: Callable[[float], None] = time.sleep
    calls: list[Call] = field(default_factory=list)
    # After a create whose answer was lost, the search-backed listing is re-read with backoff
    # (1 s, 2 s, 4 s, ...) for at most ``search_wait`` seconds; the create is taken as never made
    # only once ``create_settle`` seconds have passed since it without the draft showing up.
    search_wait: float = 30.0
    create_settle: float = 30.0

    def __post_init__(self) -> None:
        requests = require("requests", "publish")
        self.base_url = self.base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        self.session.auth = _BearerAuth(self.token)
        self.session.mount("http://", _SendfileAdapter(requests.adapters.HTTPAdapter()))
        self._rl_remaining: int | None = None
        self._rl_reset: float | None = None
        self._rng = random.Random()
        self.last_upload: _HashingReader | None = None
        self.last_resumed = 0  # bytes the last download took from an earlier part file (resumed)

    def __repr__(self) -> str:
        return f"ZenodoClient({self.base_url!r}, token={'<hidden>' if self.token else None})"

    def url(self, path: str, **query: Any) -> str:
        u = path if path.startswith("http") else self.base_url + path
        return u + ("?" + urlencode(query) if query else "")

    # ---------------------------------------------------------------- the one request loop
    def _wait_for(self, resp: Any) -> float:
        """Seconds to wait after a 429: Retry-After (seconds or HTTP date), else X-RateLimit-Reset."""
        ra = resp.headers.get("Retry-After")
        if ra:
            with contextlib.suppress(ValueError):
                return float(ra)
            with contextlib.suppress(TypeError, ValueError):
                when = email.utils.parsedate_to_datetime(ra).timestamp()
                return max(0.0, when - time.time())
        reset = resp.headers.get("X-RateLimit-Reset")
        if reset:
            with contextlib.suppress(ValueError):
                return max(0.0, float(reset) - time.time())
        return 1.0

    def _note_rate(self, resp: Any) -> None:
        with contextlib.suppress(TypeError, ValueError):
            self._rl_remaining = int(resp.headers.get("X-RateLimit-Remaining"))
            self._rl_reset = float(resp.headers.get("X-RateLimit-Reset"))

    def _pace(self) -> None:
        """Sleep until the window resets when the server said no call is left in it."""
        if self._rl_remaining == 0 and self._rl_reset is not None:
            wait = self._rl_reset - time.time()
            if wait > 0:
                log.info("rate limit reached; waiting %.1f s", min(wait, self.max_wait))
                self.sleep(min(wait, self.max_wait))
            self._rl_remaining = None

    def _backoff(self, attempt: int) -> float:
        return min(self.max_wait, self.backoff * (2 ** attempt)) * (0.5 + self._rng.random() / 2)

    def request(self, method: str, path: str, *, json_body: Any = None, body: Callable[[], Any] | None = None,
                headers: dict[str, str] | None = None, expect: tuple[int, ...] = (200,),
                idempotent: bool | None = None, reconcile: Callable[[], Any] | None = None,
                stream: bool = False, note: str = "") -> Any:
        """Send one call with the retry policy; return the ``requests.Response`` of the accepted answer.

        ``body`` is a factory (called per attempt) for streamed bodies. A non-idempotent call that
        failed ambiguously (connection error, 5xx) is retried only after ``reconcile()`` returned
        None ("it did not happen"); a non-None result is returned instead of a response.
        """
        requests = require("requests", "publish")
        url = self.url(path)
        idem = method in ("GET", "HEAD", "PUT", "DELETE") if idempotent is None else idempotent
        call = Call(method, url, note)
        self.calls.append(call)
        if self.dry_run:
            return None
        last = ""
        for attempt in range(self.max_retries + 1):
            self._pace()
            data = body() if body is not None else None
            try:
                resp = self.session.request(method, url, json=json_body, data=data, headers=headers,
                                            timeout=self.timeout, stream=stream, allow_redirects=False)
            except (requests.ConnectionError, requests.Timeout) as exc:
                resp = None
                last = f"{type(exc).__name__}: connection failed or timed out"
            finally:
                if data is not None and hasattr(data, "close"):
                    data.close()
                if isinstance(data, _HashingReader):
                    self.last_upload = data
            if resp is not None:
                call.status = resp.status_code
                self._note_rate(resp)
                log.debug("%s %s -> %s", method, url, resp.status_code)
                if resp.status_code in expect:
                    return resp
                if resp.status_code == 429:
                    wait = self._wait_for(resp)
                    if wait > self.max_wait:
                        raise RemoteError(f"rate limited by the server; retry in {wait:.0f} s (nothing was lost: "
                                          "re-run the same command)", status=429, url=url)
                    last = error_message(429, resp.content, resp.reason)
                    log.info("429 from %s; waiting %.1f s", url, wait)
                    self.sleep(wait)
                    self._rl_remaining = None  # the wait above already covers the window
                    continue
                if resp.status_code not in RETRY_STATUSES:
                    if attempt > 0 and reconcile is not None and resp.status_code in (400, 404):
                        # A retried action answered as if the first attempt had worked: check.
                        got = reconcile()
                        if got is not None:
                            return got
                    raise RemoteError(error_message(resp.status_code, resp.content, resp.reason),
                                      status=resp.status_code, url=url)
                last = error_message(resp.status_code, resp.content, resp.reason)
            else:
                log.debug("%s %s -> %s", method, url, last)
            if attempt == self.max_retries:
                break
            if not idem:
                if reconcile is None:
                    break
                got = reconcile()
                if got is not None:
                    return got
            self.sleep(self._backoff(attempt))
        raise RemoteError(f"{method} failed after {attempt + 1} attempt(s): {last}. The local state is saved; "
                          "re-run the same command to continue", status=None, url=url)

    def json(self, method: str, path: str, **kw: Any) -> Any:
        """A call answered with JSON (None for 204 or a dry run)."""
        resp = self.request(method, path, **kw)
        if resp is None or not hasattr(resp, "status_code"):
            return resp
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError:
            raise RemoteError(f"expected JSON, got {resp.headers.get('Content-Type')}: {resp.text[:200]!r}",
                              status=resp.status_code, url=resp.url) from None

    # ---------------------------------------------------------------- deposit API
    def list_depositions(self, q: str = "", size: int = 100) -> list[dict[str, Any]]:
        out = self.json("GET", self.url("/deposit/depositions", q=q, size=size, allversions="true"),
                        note="find draft by key")
        return list(out or [])

    def get_deposition(self, dep_id: int) -> dict[str, Any]:
        return self.json("GET", f"/deposit/depositions/{dep_id}")

    def find_by_key(self, key: str, *, patience: int = 0) -> dict[str, Any] | None:
        """The deposition whose metadata carries our idempotency key, read afresh (None if none).

        The listing is search-backed on Zenodo and may lag behind a create by a moment, so
        ``patience`` extra looks (1 s, 2 s, ...) are taken before concluding it does not exist.
        """
        for attempt in range(patience + 1):
            hits = [d for d in self.list_depositions(f'"{KEY_PREFIX}{key}"') if key_of(d.get("metadata") or {}) == key]
            if hits:
                break
            if attempt < patience:
                self.sleep(1.0 + attempt)
        else:
            return None
        drafts = [d for d in hits if d.get("state") != "done"]
        return self.get_deposition(int((drafts or hits)[0]["id"]))

    def find_created(self, key: str, since: float) -> dict[str, Any] | None:
        """After a create attempted at ``since`` (epoch seconds) whose answer we did not get: its draft, or None.

        The listing is search-backed and lags behind a create, so it is re-read with backoff for at
        most ``search_wait`` seconds. None ("it never happened", safe to create) only once the search
        has had ``create_settle`` seconds since the attempt without showing it; before that a
        :class:`PendingCreateError` is raised, so a second draft is never created on a guess.
        """
        slept, attempt = 0.0, 0
        while True:
            found = self.find_by_key(key)
            if found is not None:
                return found
            if slept >= self.search_wait:
                break
            pause = min(2.0 ** attempt, self.search_wait - slept)
            log.info("draft with key %s not listed yet; searching again in %.1f s", key, pause)
            self.sleep(pause)
            slept += pause
            attempt += 1
        if max(time.time() - since, slept) >= self.create_settle:
            return None
        when = time.strftime("%H:%M:%S", time.gmtime(since + self.create_settle))
        raise PendingCreateError(
            f"a draft may have been created at {time.strftime('%H:%M:%S', time.gmtime(since))} UTC by an "
            f"interrupted run (key {key}), but the server's search does not list it yet; nothing was created "
            f"now, to avoid a duplicate. The local state is saved: re-run the same command (after {when} UTC a "
            "create the search still does not show is taken as never made)", url=self.url("/deposit/depositions"))

    def create_deposition(self, metadata: dict[str, Any], key: str, *,
                          on_attempt: Callable[[], None] | None = None) -> dict[str, Any]:
        """POST a new draft; on an ambiguous failure, look for the key (:meth:`find_created`) before trying again.

        ``on_attempt`` runs before every POST is sent, e.g. to persist a "create in flight" marker.
        """
        last = [time.time()]

        def body() -> bytes:
            if on_attempt is not None:
                on_attempt()
            last[0] = time.time()
            return json.dumps({"metadata": metadata}).encode()

        return self.json("POST", "/deposit/depositions", body=body, headers={"Content-Type": "application/json"},
                         expect=(201,), idempotent=False, reconcile=lambda: self.find_created(key, last[0]),
                         note="create draft")

    def update_metadata(self, dep_id: int, metadata: dict[str, Any]) -> dict[str, Any]:
        return self.json("PUT", f"/deposit/depositions/{dep_id}", json_body={"metadata": metadata},
                         note="full metadata")

    def list_files(self, dep_id: int) -> list[dict[str, Any]]:
        return list(self.json("GET", f"/deposit/depositions/{dep_id}/files") or [])

    def delete_file(self, dep_id: int, file_id: str) -> None:
        self.request("DELETE", f"/deposit/depositions/{dep_id}/files/{file_id}", expect=(204, 404),
                     note="remove stale file")

    def publish(self, dep_id: int) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            dep = self.get_deposition(dep_id)
            return dep if dep.get("state") == "done" and dep.get("submitted") else None

        return self.json("POST", f"/deposit/depositions/{dep_id}/actions/publish", expect=(202,),
                         idempotent=False, reconcile=done, note="publish")

    def new_version(self, record_id: int) -> dict[str, Any]:
        """The next-version draft of ``record_id`` with the previous files imported.

        ``POST /records/{id}/versions`` (idempotent: returns the existing next draft) finds or
        creates it; the legacy ``newversion`` action then imports the files only if the draft has
        none, so a re-run after a crash never makes a second draft nor hits "Please remove all
        files first.".
        """
        draft = self.json("POST", f"/records/{record_id}/versions", expect=(200, 201), idempotent=True,
                          note="find or create the next-version draft")
        if draft is None:  # dry run
            return {}
        dep_id = int(draft["id"])
        dep = self.get_deposition(dep_id)
        if not dep.get("files"):
            def imported() -> dict[str, Any] | None:
                d = self.get_deposition(dep_id)
                return d if d.get("files") else None

            self.json("POST", f"/deposit/depositions/{record_id}/actions/newversion", expect=(201,),
                      idempotent=False, reconcile=imported, note="import the previous version's files")
            dep = self.get_deposition(dep_id)
        return dep

    def discard(self, dep_id: int) -> None:
        def gone() -> bool | None:
            try:
                dep = self.get_deposition(dep_id)
            except RemoteError as exc:
                if exc.status in (404, 410):
                    return True
                raise
            return True if dep.get("state") == "done" else None

        self.request("POST", f"/deposit/depositions/{dep_id}/actions/discard", expect=(201, 204),
                     idempotent=False, reconcile=gone, note="discard draft")

    def get_record(self, record_id: int | str) -> dict[str, Any]:
        return self.json("GET", f"/records/{record_id}")

    # ---------------------------------------------------------------- transfers
    def upload(self, bucket_url: str, path: Path, key: str, md5: str) -> dict[str, Any]:
        """Stream ``path`` to ``{bucket}/{key}``; verify the MD5 we sent and the server's ``md5:`` checksum."""
        st0 = path.stat()
        size = st0.st_size
        self.last_upload = None
        obj = self.json("PUT", f"{bucket_url}/{quote(key)}",
                        body=lambda: _HashingReader(path, size, hashing=self.stream_md5),
                        headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
                        expect=(200, 201), note=f"upload {size} bytes, md5 {md5}")
        if self.dry_run:
            return {}
        sent = self.last_upload
        server = str(obj.get("checksum", "")).removeprefix("md5:")
        if not self.stream_md5:
            # No second hash while sending (saves ~1.4 CPU-s/GB): the server's MD5 of the bytes it got
            # must equal the checksum computed before; on any doubt, re-hash to say which side changed.
            st1 = path.stat()
            if (st1.st_size, st1.st_mtime_ns) != (st0.st_size, st0.st_mtime_ns) or server != md5:
                if file_md5(path) != md5 or (st1.st_size, st1.st_mtime_ns) != (st0.st_size, st0.st_mtime_ns):
                    raise FileChangedError("file changed on disk between checksum and upload (its MD5 differs); "
                                           "re-run to re-checksum and upload it again", file=path)
        elif sent is None or sent.sent != size or sent.hexdigest() != md5:
            raise FileChangedError("file changed on disk between checksum and upload (its MD5 differs); "
                                   "re-run to re-checksum and upload it again", file=path)
        if server != md5 or int(obj.get("size", size)) != size:
            raise RemoteError(f"server stored a different file for {key!r} (checksum {obj.get('checksum')}, "
                              f"expected md5:{md5}); re-run to upload it again", url=bucket_url)
        return obj

    def download(self, url: str, dst: Path, md5: str | None, size: int | None = None) -> str:
        """Stream ``url`` to ``dst`` through ``<name>.part``; verify MD5 (and size); rename into place atomically.

        A part file left by an earlier attempt or run is resumed with ``Range: bytes=N-`` when the
        server answers 206 (restarted from zero on 200 or 416). A connection error keeps the part
        and retries (resuming); a checksum mismatch deletes the part and raises, after one fresh
        restart when the bytes came from a resumed part.
        """
        requests = require("requests", "publish")
        part = dst.with_name(dst.name + ".part")
        self.last_resumed = 0
        last, fresh_retry = "", False
        for attempt in range(self.max_retries + 1):
            have = part.stat().st_size if part.exists() else 0
            if size is not None and have > size:
                part.unlink()
                have = 0
            resp = None
            try:
                h = hashlib.md5(usedforsecurity=False)
                if not (size is not None and have == size > 0):  # else: the part is complete, verify it
                    resp = self.request("GET", url, stream=True, headers={"Range": f"bytes={have}-"} if have else None,
                                        expect=(200, 206, 416), note=f"download {dst.name}"
                                        + (f" from byte {have}" if have else ""))
                    if resp is None:  # dry run
                        return md5 or ""
                    if resp.status_code == 416:  # our part is not a prefix the server can continue
                        part.unlink(missing_ok=True)
                        last = "the server refused to resume (416)"
                        continue
                    crange = resp.headers.get("Content-Range") or ""
                    if resp.status_code != 206 or not crange.startswith(f"bytes {have}-"):
                        have = 0  # a whole answer: restart from zero
                if have:
                    with open(part, "rb") as fh:
                        while chunk := fh.read(CHUNK):
                            h.update(chunk)
                    self.last_resumed = have
                if resp is not None:
                    with open(part, "ab" if have else "wb") as out:
                        for chunk in resp.iter_content(READ):  # small reads: a reset loses little
                            h.update(chunk)
                            out.write(chunk)
            except (requests.ConnectionError, requests.Timeout, OSError) as exc:
                last = f"{type(exc).__name__} while downloading"
                if attempt < self.max_retries:
                    self.sleep(self._backoff(attempt))
                continue
            finally:
                if resp is not None:
                    resp.close()
            got, n = h.hexdigest(), part.stat().st_size
            if size is not None and n < size:  # the stream ended early without an error: resume
                last = f"incomplete ({n} of {size} bytes)"
                continue
            etag = (resp.headers.get("ETag") or "").strip('"').removeprefix("md5:") if resp is not None else ""
            if (md5 and got != md5) or (size is not None and n != size) or (etag and not md5 and etag != got):
                part.unlink(missing_ok=True)
                last = (f"checksum mismatch for {dst.name} (got md5:{got}, {n} bytes; expected md5:{md5}, "
                        f"{size} bytes); the partial file was deleted")
                if have and not fresh_retry:  # a stale part may be the cause: one fresh download
                    fresh_retry = True
                    continue
                raise RemoteError(f"download of {dst.name} failed: {last}", url=url)
            os.replace(part, dst)
            return got
        kept = f"; {part.name} is kept: re-run to resume" if part.exists() else ""
        raise RemoteError(f"download of {dst.name} failed: {last}{kept}", url=url)


KEY_PREFIX = "urn:imagine:deposit:"


def key_of(metadata: dict[str, Any]) -> str | None:
    """The idempotency key stored in a deposit's metadata (an ``isAlternateIdentifier`` URN), if any."""
    for rel in metadata.get("related_identifiers") or []:
        ident = str(rel.get("identifier", "")) if isinstance(rel, dict) else ""
        if ident.startswith(KEY_PREFIX) and rel.get("relation") == "isAlternateIdentifier":
            return ident[len(KEY_PREFIX):]
    return None


def with_key(metadata: dict[str, Any], key: str) -> dict[str, Any]:
    """Metadata with exactly one idempotency-key identifier (ours)."""
    rels = [r for r in metadata.get("related_identifiers") or []
            if not (isinstance(r, dict) and str(r.get("identifier", "")).startswith(KEY_PREFIX))]
    rels.append({"identifier": KEY_PREFIX + key, "relation": "isAlternateIdentifier", "scheme": "urn"})
    return {**metadata, "related_identifiers": rels}
