"""Clients of the online vocabulary services: WoRMS, GBIF (taxa) and the NERC Vocabulary Server.

Each is a thin layer over :class:`~imagine.vocab.http.HttpClient` that knows the service's request
and answer shapes (WoRMS: 204 means no match; GBIF: ``matchType`` NONE; NVS: JSON-LD with values
as strings, language maps or lists). Base URLs are parameters so tests point them at local servers.
"""

from __future__ import annotations

from typing import Any

from imagine.kernel import RemoteError

from .bundle import Concept, normalise_uri
from .http import HttpClient

__all__ = ["Worms", "Gbif", "Nvs", "WORMS_URL", "GBIF_URL", "NVS_URL"]

WORMS_URL = "https://www.marinespecies.org/rest"
GBIF_URL = "https://api.gbif.org/v1"
NVS_URL = "https://vocab.nerc.ac.uk"
WORMS_BATCH = 50


class Worms:
    """WoRMS REST: fuzzy name matching (TAXAMATCH) and records by AphiaID."""

    def __init__(self, http: HttpClient, base_url: str = WORMS_URL) -> None:
        self.http = http
        self.base = base_url.rstrip("/")

    def match_names(self, names: list[str], *, marine_only: bool = False) -> list[list[dict[str, Any]]]:
        """``AphiaRecordsByMatchNames`` in batches of 50: one list of candidate records per name (empty = none)."""
        out: list[list[dict[str, Any]]] = []
        for i in range(0, len(names), WORMS_BATCH):
            batch = names[i:i + WORMS_BATCH]
            status, data = self.http.get_json(f"{self.base}/AphiaRecordsByMatchNames",
                                              {"scientificnames[]": batch, "marine_only": marine_only})
            if status == 204 or data is None:
                out.extend([] for _ in batch)
                continue
            if not isinstance(data, list) or len(data) != len(batch):
                raise RemoteError("WoRMS AphiaRecordsByMatchNames answered an unexpected shape "
                                  f"(expected a list of {len(batch)} lists)",
                                  url=f"{self.base}/AphiaRecordsByMatchNames")
            out.extend([r for r in (item or []) if isinstance(r, dict)] for item in data)
        return out

    def record(self, aphia_id: int) -> dict[str, Any] | None:
        """``AphiaRecordByAphiaID``; None when WoRMS does not know the id (204)."""
        status, data = self.http.get_json(f"{self.base}/AphiaRecordByAphiaID/{int(aphia_id)}")
        return data if status == 200 and isinstance(data, dict) else None


class Gbif:
    """GBIF backbone ``/species/match`` (fallback for freshwater taxa such as diatoms)."""

    def __init__(self, http: HttpClient, base_url: str = GBIF_URL) -> None:
        self.http = http
        self.base = base_url.rstrip("/")

    def match(self, name: str, *, kingdom: str | None = None) -> dict[str, Any] | None:
        """The best backbone match, or None when ``matchType`` is NONE."""
        params: dict[str, Any] = {"name": name, "strict": False, "verbose": False}
        if kingdom:
            params["kingdom"] = kingdom
        status, data = self.http.get_json(f"{self.base}/species/match", params)
        if status != 200 or not isinstance(data, dict) or data.get("matchType", "NONE") == "NONE":
            return None
        return data


def _value(v: Any) -> str | None:
    """A JSON-LD value as text: string, ``{"@value"}``, ``{"@id"}`` or the first of a list (English first)."""
    if v is None:
        return None
    if isinstance(v, list):
        en = [x for x in v if isinstance(x, dict) and x.get("@language") == "en"]
        return _value((en or v)[0]) if v else None
    if isinstance(v, dict):
        return str(v.get("@value", v.get("@id", ""))) or None
    return str(v)


class Nvs:
    """NERC Vocabulary Server: one concept by URI (``_profile=nvs``, JSON-LD)."""

    def __init__(self, http: HttpClient, base_url: str = NVS_URL) -> None:
        self.http = http
        self.base = base_url.rstrip("/")

    def concept(self, uri: str) -> Concept | None:
        """The concept at ``uri`` as served now (label, deprecation); None when NVS answers 404."""
        uri = normalise_uri(uri)
        path = uri.split("vocab.nerc.ac.uk", 1)[1] if "vocab.nerc.ac.uk" in uri else uri
        resp = self.http.get(f"{self.base}{path}", {"_profile": "nvs", "_mediatype": "application/ld+json"},
                             accept="application/ld+json")
        if resp.status != 200:
            return None
        doc = resp.json()
        if isinstance(doc, dict) and "@graph" in doc:
            doc = next((n for n in doc["@graph"] if normalise_uri(str(n.get("@id", ""))) == uri), None)
        if not isinstance(doc, dict):
            raise RemoteError("NVS answered JSON-LD without the concept", url=resp.url)

        def get(*keys: str) -> str | None:
            for k in keys:
                if k in doc:
                    return _value(doc[k])
            return None

        label = get("skos:prefLabel", "prefLabel", "http://www.w3.org/2004/02/skos/core#prefLabel") or ""
        deprecated = (get("owl:deprecated", "deprecated") or "false").lower() == "true"
        parts = uri.rstrip("/").split("/")
        return Concept(parts[-3] if len(parts) >= 3 else "", parts[-1], uri, label,
                       "deprecated" if deprecated else "accepted", get("skos:definition", "definition") or "")
