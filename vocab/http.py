"""The one HTTP layer for online vocabulary look-ups: polite, cached, retrying, and offline-capable.

Every request carries a descriptive User-Agent and a timeout, is spaced per host (rate limit),
retried with exponential backoff on 429 and 5xx (honouring ``Retry-After``) and on connection
errors, and its answer (200, 204 or 404) is cached on disk with atomic writes. In offline mode
only the cache answers; a miss raises :class:`OfflineMiss`, so callers fall back to bundled data.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from imagine.kernel import RemoteError, atomic_write

__all__ = ["HttpClient", "Response", "OfflineMiss", "default_cache_dir", "USER_AGENT"]

USER_AGENT = "imagine-aquatic/0.1 (aquatic image dataset publishing toolchain; vocabulary look-ups)"
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
CACHE_STATUS = frozenset({200, 204, 404})

Params = Mapping[str, str | int | float | bool | Sequence[str]] | None


class OfflineMiss(RemoteError):
    """Offline mode and the answer is not in the cache."""


@dataclass
class Response:
    """What a request answered: status, body, a few headers, and whether it came from the cache."""

    url: str
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    from_cache: bool = False

    def json(self) -> Any:
        """The body as JSON (None for an empty body, e.g. 204)."""
        if not self.body.strip():
            return None
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise RemoteError(f"answer is not JSON: {exc}", status=self.status, url=self.url) from exc


def default_cache_dir() -> Path:
    """``$IMAGINE_CACHE/http`` or ``~/.cache/imagine/http``."""
    root = os.environ.get("IMAGINE_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "imagine")
    return Path(root) / "http"


def _full_url(url: str, params: Params) -> str:
    if not params:
        return url
    pairs: list[tuple[str, str]] = []
    for k, v in params.items():
        if isinstance(v, list | tuple):
            pairs.extend((k, str(x)) for x in v)
        elif isinstance(v, bool):
            pairs.append((k, "true" if v else "false"))
        else:
            pairs.append((k, str(v)))
    return url + ("&" if "?" in url else "?") + urlencode(pairs)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpClient:
    """GET with rate limiting, retries, an on-disk cache and an offline mode (see module docstring).

    ``min_interval`` is the least time between two requests to one host (WoRMS asks for ≤1–2 req/s);
    ``retries`` the number of extra attempts; ``backoff`` the first wait, doubled each time and
    capped at ``max_wait``. ``sleep`` is injectable so tests can count waits.
    """

    def __init__(self, *, cache_dir: str | os.PathLike[str] | None = None, offline: bool | None = None,
                 user_agent: str = USER_AGENT, timeout: float | tuple[float, float] = (5.0, 30.0),
                 min_interval: float = 0.5, retries: int = 3, backoff: float = 1.0, max_wait: float = 30.0,
                 use_cache: bool = True, sleep: Callable[[float], None] = time.sleep) -> None:
        import requests

        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        if offline is None:
            offline = os.environ.get("IMAGINE_OFFLINE", "") not in ("", "0", "false")
        self.offline = offline
        self.timeout = timeout
        self.min_interval = min_interval
        self.retries = retries
        self.backoff = backoff
        self.max_wait = max_wait
        self.use_cache = use_cache
        self.sleep = sleep
        self.session = requests.Session()
        self.session.headers["User-Agent"] = user_agent
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()
        self.requests_sent = 0

    # ------------------------------------------------------------------ cache
    def _key(self, url: str, accept: str) -> Path:
        digest = hashlib.sha256(f"GET {url} {accept}".encode()).hexdigest()
        return self.cache_dir / digest[:2] / f"{digest}.json"

    def _cache_get(self, url: str, accept: str) -> Response | None:
        if not self.use_cache:
            return None
        path = self._key(url, accept)
        try:
            doc = json.loads(path.read_text("utf-8"))
            return Response(url=url, status=int(doc["status"]), body=base64.b64decode(doc["body"]),
                            headers=dict(doc.get("headers", {})), from_cache=True)
        except (OSError, ValueError, KeyError):
            return None

    def _cache_put(self, resp: Response, accept: str) -> None:
        if not self.use_cache or resp.status not in CACHE_STATUS:
            return
        doc = {"url": resp.url, "status": resp.status, "fetched": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "headers": {k: v for k, v in resp.headers.items() if k.lower() == "content-type"},
               "body": base64.b64encode(resp.body).decode()}
        try:
            with atomic_write(self._key(resp.url, accept)) as fh:
                json.dump(doc, fh)
        except OSError:  # a read-only cache must not break a look-up
            pass

    # ------------------------------------------------------------------ requests
    def _wait_turn(self, host: str) -> None:
        with self._lock:
            now = time.monotonic()
            last = self._last.get(host)
            wait = 0.0 if last is None else self.min_interval - (now - last)
            self._last[host] = now + max(0.0, wait)
        if wait > 0:
            self.sleep(wait)

    def get(self, url: str, params: Params = None, *, accept: str = "application/json",
            refresh: bool = False) -> Response:
        """GET ``url`` (+ ``params``); cached answers first unless ``refresh``; raises RemoteError when it fails."""
        import requests

        full = _full_url(url, params)
        if not refresh or self.offline:
            hit = self._cache_get(full, accept)
            if hit is not None:
                return hit
        if self.offline:
            raise OfflineMiss("offline and not in the cache; run once online or use the bundled vocabularies",
                              url=full)
        host = urlsplit(full).netloc
        attempt = 0
        while True:
            self._wait_turn(host)
            self.requests_sent += 1
            try:
                r = self.session.get(full, headers={"Accept": accept}, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                if attempt >= self.retries:
                    kind = "timed out" if isinstance(exc, requests.Timeout) else "could not be reached"
                    raise RemoteError(f"service {kind} after {attempt + 1} attempt(s)", url=full) from None
                self.sleep(min(self.max_wait, self.backoff * 2 ** attempt))
                attempt += 1
                continue
            resp = Response(url=full, status=r.status_code, body=r.content, headers=dict(r.headers))
            if r.status_code in RETRY_STATUS and attempt < self.retries:
                wait = _retry_after(r.headers.get("Retry-After"))
                self.sleep(min(self.max_wait, wait if wait is not None else self.backoff * 2 ** attempt))
                attempt += 1
                continue
            if r.status_code in CACHE_STATUS:
                self._cache_put(resp, accept)
                return resp
            text = r.text[:200].strip()
            raise RemoteError(f"service answered HTTP {r.status_code}" + (f": {text}" if text else ""),
                              status=r.status_code, url=full)

    def get_json(self, url: str, params: Params = None, **kw: Any) -> tuple[int, Any]:
        """(status, parsed JSON or None) for a GET."""
        resp = self.get(url, params, **kw)
        return resp.status, resp.json()
