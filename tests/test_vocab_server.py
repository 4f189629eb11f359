"""A local HTTP server that answers like WoRMS, GBIF, NVS and FAIR EVA do (shapes from the reference).

Started by the tests on 127.0.0.1 in a thread; it records every request path so tests can check
what the client sent, and has routes for errors (503 then OK, 429 with Retry-After, 500, slow).
"""

from __future__ import annotations

import email.utils
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# AphiaRecords as WoRMS returns them (fields from the reference). The unaccepted record of
# "Oblada melanura" has a placeholder AphiaID: its real id was not available offline.
WORMS = {
    "Oblada melanura": [{"AphiaID": 900000001, "scientificname": "Oblada melanura", "authority": "(Linnaeus, 1758)",
                         "status": "unaccepted", "unacceptreason": "misspelling", "rank": "Species",
                         "valid_AphiaID": 1577363, "valid_name": "Oblada melanurus",
                         "lsid": "urn:lsid:marinespecies.org:taxname:900000001", "match_type": "exact",
                         "kingdom": "Animalia", "isMarine": 1}],
    "Diplodus vulgaris": [{"AphiaID": 127054, "scientificname": "Diplodus vulgaris", "status": "accepted",
                           "rank": "Species", "valid_AphiaID": 127054, "valid_name": "Diplodus vulgaris",
                           "match_type": "exact", "kingdom": "Animalia"}],
    "Diplodus vulgari": [{"AphiaID": 127054, "scientificname": "Diplodus vulgaris", "status": "accepted",
                          "rank": "Species", "valid_AphiaID": 127054, "valid_name": "Diplodus vulgaris",
                          "match_type": "near_1", "kingdom": "Animalia"}],
    "Chromis chromis": [{"AphiaID": 127000, "scientificname": "Chromis chromis", "status": "accepted",
                         "rank": "Species", "valid_AphiaID": 127000, "valid_name": "Chromis chromis",
                         "match_type": "exact", "kingdom": "Animalia"}],
    "Halophila": [{"AphiaID": 1, "scientificname": "Halophila", "status": "accepted", "kingdom": "Plantae",
                   "match_type": "exact", "valid_AphiaID": 1, "valid_name": "Halophila"},
                  {"AphiaID": 2, "scientificname": "Halophila", "status": "accepted", "kingdom": "Animalia",
                   "match_type": "exact", "valid_AphiaID": 2, "valid_name": "Halophila"}],
}
GBIF = {"Navicula radiosa": {"usageKey": 5415, "acceptedUsageKey": None, "scientificName": "Navicula radiosa Kützing",
                             "canonicalName": "Navicula radiosa", "rank": "SPECIES", "status": "ACCEPTED",
                             "synonym": False, "confidence": 98, "matchType": "EXACT", "kingdom": "Chromista"},
        "Xyzzy plugh": {"usageKey": 6, "canonicalName": "Chromista", "rank": "KINGDOM", "matchType": "HIGHERRANK",
                        "confidence": 50}}
NVS = {"/collection/L22/current/TOOL1583/": {
    "@id": "http://vocab.nerc.ac.uk/collection/L22/current/TOOL1583/", "@type": "skos:Concept",
    "skos:prefLabel": {"@language": "en", "@value": "Yokogawa Fluid Imaging Technologies FlowCam VS"},
    "skos:definition": {"@language": "en", "@value": "Benchtop particle imaging system."},
    "skos:notation": "SDN:L22::TOOL1583", "owl:deprecated": "false"},
    # a concept that is not in the bundle (label made up for the test server)
    "/collection/L22/current/TOOL9999/": {
    "@id": "http://vocab.nerc.ac.uk/collection/L22/current/TOOL9999/",
    "skos:prefLabel": [{"@language": "fr", "@value": "caméra de test"}, {"@language": "en", "@value": "Test camera"}],
    "owl:deprecated": "false"},
    "/collection/L05/current/180/": {
    "@id": "http://vocab.nerc.ac.uk/collection/L05/current/180/", "skos:prefLabel": "underwater cameras",
    "owl:deprecated": "true", "skos:note": {"@language": "en", "@value": "deprecated"}}}


class State:
    def __init__(self) -> None:
        self.requests: list[str] = []
        self.counters: dict[str, int] = {}
        self.fair_eva_answer: dict[str, Any] = {}
        self.fair_eva_bodies: list[dict[str, Any]] = []


def _handler(state: State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            data = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
            try:
                self.send_response(status)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if data:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                pass

        def do_GET(self) -> None:
            state.requests.append(self.path)
            u = urlsplit(self.path)
            q = parse_qs(u.query)
            path = u.path
            n = state.counters[path] = state.counters.get(path, 0) + 1
            if path == "/worms/AphiaRecordsByMatchNames":
                names = q.get("scientificnames[]", [])
                out = [WORMS.get(name, []) for name in names]
                if not any(out):
                    return self._send(204)
                return self._send(200, out)
            if path.startswith("/worms/AphiaRecordByAphiaID/"):
                aid = int(path.rsplit("/", 1)[1])
                rec = next((r for rs in WORMS.values() for r in rs if r["AphiaID"] == aid), None)
                return self._send(200, rec) if rec else self._send(204)
            if path == "/gbif/species/match":
                name = q.get("name", [""])[0]
                return self._send(200, GBIF.get(name, {"matchType": "NONE", "confidence": 100}))
            if path.startswith("/nvs/"):
                doc = NVS.get(path[4:])
                return self._send(200, doc) if doc else self._send(404, {"detail": "Not Found"})
            if path == "/flaky":
                if n <= 2:
                    return self._send(503, {"error": "busy"}, {"Retry-After": "0"})
                return self._send(200, {"ok": n})
            if path == "/ratelimited":
                return self._send(429, {"error": "slow down"}, {"Retry-After": "2"}) if n == 1 else \
                    self._send(200, {"ok": n})
            if path == "/ratelimited-date":
                when = email.utils.formatdate(time.time() + 3, usegmt=True)
                return self._send(429, {"error": "slow down"}, {"Retry-After": when}) if n == 1 else \
                    self._send(200, {"ok": n})
            if path == "/ratelimited-long":
                return self._send(429, {"error": "slow down"}, {"Retry-After": "3600"}) if n == 1 else \
                    self._send(200, {"ok": n})
            if path == "/down" or path.startswith("/worms-down/"):
                return self._send(500, b"Internal Server Error")
            if path == "/slow" or path.startswith("/worms-slow/"):
                time.sleep(1.0)
                return self._send(200, [[]])
            if path == "/bad-request":
                return self._send(400, b"invalid input")
            return self._send(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            state.requests.append(self.path)
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            state.fair_eva_bodies.append(body)
            if self.path == "/v1.0/rda/rda_all":
                if body.get("id") == "broken":
                    return self._send(500, b"KeyError")
                return self._send(200, state.fair_eva_answer)
            return self._send(404)
    return Handler


@contextmanager
def serve() -> Iterator[tuple[str, State]]:
    """Run the server on a free 127.0.0.1 port; yields (base URL, state)."""
    state = State()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}", state
    finally:
        srv.shutdown()
        srv.server_close()
