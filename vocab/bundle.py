"""Bundled offline vocabulary subsets (package data under ``vocab/data``), with their provenance.

NVS collections (L05, L06, L22, P01, P02, P06, C19, C17, L19, L35, S11), EDMO organisations, EMSO
OSO sites, Marine Regions, EU authority tables (data theme, access right, language, frequency,
file type), SPDX licences, IANA media types and a small WoRMS taxa table. ``SOURCES.json`` gives
source, version and retrieval date of each; :func:`sources` returns it for attribution.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["Concept", "Licence", "Taxon", "concepts", "concept", "resolve", "normalise_uri", "sources", "licence",
           "licences", "media_type", "taxa", "taxon_by_name", "NVS_BASE", "EU_BASE", "IANA_BASE", "lsid"]

NVS_BASE = "http://vocab.nerc.ac.uk/collection/"
EU_BASE = "http://publications.europa.eu/resource/authority/"
IANA_BASE = "https://www.iana.org/assignments/media-types/"
NVS_COLLECTIONS = ("L22", "L05", "L06", "L19", "L35", "P01", "P02", "P06", "C19", "C17", "S11")


@dataclass(frozen=True)
class Concept:
    """One concept of a controlled vocabulary: collection key, code, URI, label, status."""

    collection: str
    code: str
    uri: str
    label: str
    status: str = "accepted"
    note: str = ""
    alt_label: str = ""

    @property
    def deprecated(self) -> bool:
        return self.status == "deprecated"

    @property
    def urn(self) -> str | None:
        """``SDN:{COL}::{ID}`` for NVS concepts (the EMSO name + URN + URI convention)."""
        return f"SDN:{self.collection}::{self.code}" if self.collection in NVS_COLLECTIONS else None


@dataclass(frozen=True)
class Licence:
    """An SPDX licence with its URLs, the EU licence code and Zenodo's licence id and URL."""

    spdx: str
    name: str
    reference: str
    see_also: tuple[str, ...]
    eu_code: str
    zenodo_id: str
    zenodo_url: str
    open: bool

    @property
    def uri(self) -> str:
        """``https://spdx.org/licenses/<id>`` (the form DCAT and EMSO use)."""
        return f"https://spdx.org/licenses/{self.spdx}"

    @property
    def eu_uri(self) -> str | None:
        return f"{EU_BASE}licence/{self.eu_code}" if self.eu_code else None


@dataclass(frozen=True)
class Taxon:
    """A WoRMS name from the bundled subset, with its accepted name."""

    name: str
    aphia_id: int | None
    status: str
    valid_aphia_id: int | None
    valid_name: str
    rank: str
    source: str


def lsid(aphia_id: int) -> str:
    """WoRMS LSID of an AphiaID."""
    return f"urn:lsid:marinespecies.org:taxname:{aphia_id}"


def _read(name: str) -> str:
    return resources.files(__package__).joinpath("data", name).read_text("utf-8")


@cache
def sources() -> dict[str, Any]:
    """Source, version, retrieval date, licence and attribution of every bundled collection."""
    out: dict[str, Any] = json.loads(_read("SOURCES.json"))
    return out


def normalise_uri(uri: str) -> str:
    """NVS URIs as ``http://…/`` with a trailing slash (the canonical RDF form); others unchanged."""
    u = uri.strip()
    if "vocab.nerc.ac.uk/collection/" in u:
        u = re.sub(r"^https?://", "http://", u)
        if not u.endswith("/"):
            u += "/"
    return u


@cache
def concepts() -> dict[str, Concept]:
    """All bundled concepts by normalised URI."""
    out: dict[str, Concept] = {}
    for row in csv.DictReader(io.StringIO(_read("concepts.csv"))):
        c = Concept(row["collection"], row["code"], normalise_uri(row["uri"]), row["label"],
                    row["status"] or "accepted", row.get("note") or "", row.get("alt_label") or "")
        out[c.uri] = c
    for lic in licences().values():
        out[lic.uri] = Concept("SPDX", lic.spdx, lic.uri, lic.name)
    for ext, (mt, _) in _media_types().items():
        uri = IANA_BASE + mt
        out.setdefault(uri, Concept("IANA", mt, uri, mt))
        del ext
    return out


@cache
def _by_code() -> dict[tuple[str, str], Concept]:
    return {(c.collection.upper(), c.code.upper()): c for c in concepts().values()}


def concept(uri: str) -> Concept | None:
    """The bundled concept with this URI (http/https and trailing slash tolerated), or None."""
    return concepts().get(normalise_uri(uri))


def resolve(ref: str) -> Concept | None:
    """A concept from a URI, an NVS URN (``SDN:L22::TOOL1583``) or ``COLLECTION:CODE`` (``L06:11``)."""
    ref = ref.strip()
    if ref.startswith(("http://", "https://", "urn:")):
        return concept(ref)
    m = re.fullmatch(r"SDN:([A-Z0-9]+)::(.+)", ref)
    if m:
        return _by_code().get((m.group(1), m.group(2).upper()))
    if ":" in ref:
        coll, code = ref.split(":", 1)
        return _by_code().get((coll.strip().upper(), code.strip().upper()))
    return None


@cache
def licences() -> dict[str, Licence]:
    """Bundled SPDX licences by lower-cased SPDX id."""
    out = {}
    for row in csv.DictReader(io.StringIO(_read("licences.csv"))):
        lic = Licence(row["spdx"], row["name"], row["reference"], tuple(filter(None, row["see_also"].split("|"))),
                      row["eu_code"], row["zenodo_id"], row["zenodo_url"], row["open"] == "true")
        out[lic.spdx.lower()] = lic
    return out


def licence(spdx_id: str) -> Licence | None:
    """The licence with this SPDX id (case-insensitive; an ``https://spdx.org/licenses/<id>`` URL works too)."""
    s = spdx_id.strip()
    m = re.match(r"https?://spdx\.org/licenses/([^/]+?)(\.html)?$", s)
    if m:
        s = m.group(1)
    return licences().get(s.lower())


@cache
def _media_types() -> dict[str, tuple[str, str]]:
    return {row["ext"]: (row["media_type"], row["eu_file_type"])
            for row in csv.DictReader(io.StringIO(_read("media-types.csv")))}


def media_type(file_name: str) -> tuple[str | None, str | None]:
    """(IANA media type, EU file-type code) for a file name, by extension; None when unknown."""
    name = file_name.lower()
    ext = "gz" if name.endswith(".gz") else name.rsplit(".", 1)[-1] if "." in name else ""
    mt, eu = _media_types().get(ext, ("", ""))
    return mt or None, eu or None


@cache
def taxa() -> tuple[Taxon, ...]:
    """The bundled WoRMS subset (example taxa of the field's datasets)."""
    def num(s: str) -> int | None:
        return int(s) if s.strip() else None
    return tuple(Taxon(r["name"], num(r["aphia_id"]), r["status"], num(r["valid_aphia_id"]), r["valid_name"], r["rank"],
                       r["source"]) for r in csv.DictReader(io.StringIO(_read("taxa.csv"))))


def taxon_by_name(name: str) -> Taxon | None:
    """Exact (case- and space-insensitive) bundled name match."""
    key = " ".join(name.split()).lower()
    for t in taxa():
        if t.name.lower() == key:
            return t
    return None
