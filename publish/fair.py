"""FAIR check before publishing: the 41 RDA indicators with FAIR EVA's weights, thresholds and aggregation.

Two scores side by side, both over the metadata that will be deposited:

* **FAIR EVA-compatible** — what FAIR EVA (release 4.0.0, core ``EvaluatorBase`` with the
  ``oai_pmh`` plugin configuration FAIR EVA uses for Zenodo) computes from the Dublin Core that
  Zenodo's OAI-PMH serves for the record. The Dublin Core is derived from ``zenodo.json``; the DOI,
  concept DOI and ``oai:`` identifier Zenodo adds at publication are assumed (``assume_doi``).
  Indicators that FAIR EVA measures on the landing page are *predicted* and say so.
* **aquatic profile** — the same indicators, judged on all the metadata (DCAT-AP, Croissant,
  zenodo.json) and crediting the domain vocabularies FAIR EVA's core does not recognise (NVS,
  WoRMS, EDMO, OSO, EU authority tables, SPDX, IANA).

Scoring (fair-eva.md §1.4): indicator points 0–100; status pass ≥ 75, indeterminate 50 < p < 75,
else fail; weights Essential 20, Important 15, Useful 10 (total 680); principle and total scores
are Σ points·w / Σ w over their indicators (the total is *not* the mean of F, A, I, R).
:func:`fair_score` returns a :class:`FairResult` whose ``score`` (0–100) the deposit can gate on.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imagine.kernel import InputError, RemoteError, UsageError
from imagine.vocab import bundle

__all__ = ["INDICATORS", "Indicator", "FairResult", "fair_score", "weighted", "status_of", "oai_dc_rows",
           "constant_cap", "zenodo_cap", "ask_fair_eva", "TOTAL_WEIGHT"]

# (id, principle, weight, what it asks) — weights from FAIR EVA's fair-api.yaml x-level.
INDICATORS: tuple[tuple[str, str, int, str], ...] = (
    ("RDA-F1-01M", "F", 20, "Metadata is identified by a persistent identifier"),
    ("RDA-F1-01D", "F", 20, "Data is identified by a persistent identifier"),
    ("RDA-F1-02M", "F", 20, "Metadata is identified by a globally unique identifier"),
    ("RDA-F1-02D", "F", 20, "Data is identified by a globally unique identifier"),
    ("RDA-F2-01M", "F", 20, "Rich metadata is provided to allow discovery"),
    ("RDA-F3-01M", "F", 20, "Metadata includes the identifier for the data"),
    ("RDA-F4-01M", "F", 20, "Metadata is offered in such a way that it can be harvested and indexed"),
    ("RDA-A1-01M", "A", 15, "Metadata contains information to enable the user to get access to the data"),
    ("RDA-A1-02M", "A", 20, "Metadata can be accessed manually (with human intervention)"),
    ("RDA-A1-02D", "A", 20, "Data can be accessed manually"),
    ("RDA-A1-03M", "A", 20, "Metadata identifier resolves to a metadata record"),
    ("RDA-A1-03D", "A", 20, "Data identifier resolves to a digital object"),
    ("RDA-A1-04M", "A", 20, "Metadata is accessed through standardised protocol"),
    ("RDA-A1-04D", "A", 20, "Data is accessible through standardised protocol"),
    ("RDA-A1-05D", "A", 15, "Data can be accessed automatically (machine-actionable)"),
    ("RDA-A1.1-01M", "A", 20, "Metadata is accessible through a free access protocol"),
    ("RDA-A1.1-01D", "A", 15, "Data is accessible through a free access protocol"),
    ("RDA-A1.2-01D", "A", 10, "Data is accessible through an access protocol that supports authentication"),
    ("RDA-A2-01M", "A", 20, "Metadata is guaranteed to remain available after data is no longer available"),
    ("RDA-I1-01M", "I", 15, "Metadata uses knowledge representation expressed in standardised format"),
    ("RDA-I1-01D", "I", 15, "Data uses knowledge representation expressed in standardised format"),
    ("RDA-I1-02M", "I", 15, "Metadata uses machine-understandable knowledge representation"),
    ("RDA-I1-02D", "I", 15, "Data uses machine-understandable knowledge representation"),
    ("RDA-I2-01M", "I", 15, "Metadata uses FAIR-compliant vocabularies"),
    ("RDA-I2-01D", "I", 10, "Data uses FAIR-compliant vocabularies"),
    ("RDA-I3-01M", "I", 15, "Metadata includes references to other metadata"),
    ("RDA-I3-01D", "I", 10, "Data includes references to other data"),
    ("RDA-I3-02M", "I", 10, "Metadata includes references to other data"),
    ("RDA-I3-02D", "I", 10, "Data includes qualified references to other data"),
    ("RDA-I3-03M", "I", 15, "Metadata includes qualified references to other metadata"),
    ("RDA-I3-04M", "I", 10, "Metadata includes qualified references to other data"),
    ("RDA-R1-01M", "R", 20, "Plurality of accurate and relevant attributes are provided to allow reuse"),
    ("RDA-R1.1-01M", "R", 20, "Metadata includes information about the licence under which the data can be reused"),
    ("RDA-R1.1-02M", "R", 15, "Metadata refers to a standard reuse licence"),
    ("RDA-R1.1-03M", "R", 15, "Metadata refers to a machine-understandable reuse licence"),
    ("RDA-R1.2-01M", "R", 15, "Metadata includes provenance information according to community-specific standards"),
    ("RDA-R1.2-02M", "R", 10, "Metadata includes provenance information according to a cross-community language"),
    ("RDA-R1.3-01M", "R", 20, "Metadata complies with a community standard"),
    ("RDA-R1.3-01D", "R", 20, "Data complies with a community standard"),
    ("RDA-R1.3-02M", "R", 20, "Metadata is expressed in compliance with a machine-understandable community standard"),
    ("RDA-R1.3-02D", "R", 15, "Data is expressed in compliance with a machine-understandable community standard"),
)
WEIGHT = {i: w for i, _, w, _ in INDICATORS}
TOTAL_WEIGHT = sum(WEIGHT.values())  # 680
PRINCIPLES = {"F": "findable", "A": "accessible", "I": "interoperable", "R": "reusable"}

# FAIR EVA core constants and stubs (fair-eva.md §1.3): indicator -> points, whatever the record.
CONSTANTS = {"RDA-A1-05D": 0.0, "RDA-A1.2-01D": 100.0, "RDA-A2-01M": 50.0, "RDA-R1.2-01M": 0.0, "RDA-R1.2-02M": 0.0}
# Further maxima of the core with the oai_pmh configuration on Zenodo's Dublin Core (see each rule below).
ZENODO_MAX = {**CONSTANTS, "RDA-F2-01M": 40.0, "RDA-I1-02M": 0.0, "RDA-I1-02D": 0.0, "RDA-R1-01M": 0.0,
              "RDA-R1.1-03M": 0.0, "RDA-R1.3-01D": 0.0, "RDA-R1.3-02D": 0.0}
# oai_pmh plugin configuration (fair-eva.md §1.5).
F2_TERMS = (("contributor", "author"), ("date", "issued"), ("title", ""), ("identifier", "citation"),
            ("publisher", ""), ("identifier", "uri"), ("type", ""), ("language", "iso"), ("relation", "csic"),
            ("rights", ""))
SUPPORTED_DATA_FORMATS = (".txt", ".pdf", ".csv", ".nc", ".doc", ".xls", ".zip", ".rar", ".tar", ".png", ".jpg")
FAIR_EVA_CVS = {"wikidata.org": "Wikidata", "id.loc.gov": "LOC", "geonames.org": "GeoNames",
                "vocab.getty.edu": "Getty", "purl.org/coar": "COAR", "orcid.org": "ORCID"}
API_ENDPOINT = "https://zenodo.org/oai2d"
ACCESS_PROTOCOLS = ("http", "https", "oai-pmh")


def status_of(points: float) -> str:
    """FAIR EVA's ``test_status``: pass ≥ 75, indeterminate 50 < p < 75, fail otherwise (50 fails)."""
    return "pass" if points >= 75 else "indeterminate" if points > 50 else "fail"


def weighted(points: dict[str, float], ids: list[str] | None = None) -> float:
    """Σ points·w / Σ w over ``ids`` (all 41 by default), rounded to 2 decimals like FAIR EVA."""
    ids = ids if ids is not None else list(points)
    w = sum(WEIGHT[i] for i in ids)
    return round(sum(points[i] * WEIGHT[i] for i in ids) / w, 2) if w else 0.0


def constant_cap() -> float:
    """Highest FAIR EVA total the core's constant indicators allow (all others at 100)."""
    return weighted({i: CONSTANTS.get(i, 100.0) for i in WEIGHT})


def zenodo_cap() -> float:
    """Highest FAIR EVA total for a Zenodo record read through OAI-PMH (constants + oai_pmh limits)."""
    return weighted({i: ZENODO_MAX.get(i, 100.0) for i in WEIGHT})


@dataclass
class Indicator:
    """One RDA indicator: points and status in both scores, why, and how to raise it."""

    id: str
    principle: str
    weight: int
    name: str
    points: float
    status: str
    why: str
    how: str
    max_points: float
    predicted: bool = False
    aquatic_points: float = 0.0
    aquatic_status: str = "fail"
    aquatic_why: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FairResult:
    """The FAIR check: ``score`` is the FAIR EVA-compatible total (0–100), ``aquatic_score`` the profile's."""

    indicators: list[Indicator]
    score: float
    aquatic_score: float
    principles: dict[str, float]
    aquatic_principles: dict[str, float]
    cap: float
    constant_cap: float
    source: str = ""
    assumptions: list[str] = field(default_factory=list)
    fair_eva: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "score": self.score, "aquatic_score": self.aquatic_score,
                "principles": self.principles, "aquatic_principles": self.aquatic_principles, "cap": self.cap,
                "constant_cap": self.constant_cap, "assumptions": self.assumptions,
                "indicators": [i.to_dict() for i in self.indicators], "fair_eva": self.fair_eva}

    def render(self) -> str:
        lines = [f"FAIR check of {self.source}",
                 f"  FAIR EVA-compatible score: {self.score:.2f} / 100 (cap for a Zenodo record: {self.cap:.2f}; "
                 f"constant indicators alone cap it at {self.constant_cap:.2f})",
                 f"  aquatic-profile score:     {self.aquatic_score:.2f} / 100",
                 "  by principle (FAIR EVA | aquatic): " + ", ".join(
                     f"{k} {self.principles[k]:.1f} | {self.aquatic_principles[k]:.1f}" for k in "FAIR"), "",
                 f"  {'indicator':<14}{'w':>3} {'EVA':>6} {'max':>5} {'status':<14}{'aquatic':>8}  why / how to raise"]
        pad = " " * 45
        for i in self.indicators:
            flag = "~" if i.predicted else " "
            lines.append(f"  {i.id:<14}{i.weight:>3} {i.points:>5.0f}{flag} {i.max_points:>5.0f} {i.status:<14}"
                         f"{i.aquatic_points:>8.0f}  {i.why}")
            if i.points < i.max_points:
                lines.append(f"{pad}  → {i.how}")
            if i.aquatic_points < 100:
                lines.append(f"{pad}  aquatic: {i.aquatic_why}")
        lines.append("")
        lines.append("  ~ predicted: FAIR EVA reads this from the landing page, which exists only after publishing.")
        if self.fair_eva is not None:
            fe = self.fair_eva
            lines.append(f"  FAIR EVA service ({fe.get('url')}): score {fe.get('score')}"
                         + (f" — differences: {fe.get('differences')}" if fe.get("differences") else ""))
        return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# Inputs


@dataclass
class _Input:
    md: dict[str, Any]
    files: list[str]
    doi: str | None
    graph: Any = None
    croissant: bool = False
    schema_org: bool = False
    assumptions: list[str] = field(default_factory=list)


def _load(src: str | os.PathLike[str] | dict[str, Any], assume_doi: bool) -> tuple[_Input, str]:
    if isinstance(src, dict):
        md = src.get("metadata", src)
        files = [f.get("key") or f.get("filename", "") for f in src.get("files", []) if isinstance(f, dict)]
        inp = _Input(md=md, files=files, doi=src.get("doi") or md.get("doi"))
        name = "metadata"
    else:
        p = Path(src)
        if p.is_dir():
            zen = p / "zenodo.json"
            if not zen.is_file():
                raise InputError("no zenodo.json here; run imagine-publish describe first", file=p)
            doc = _read(zen)
            md = doc.get("metadata", {})
            files = sorted(f.name for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
            inp = _Input(md=md, files=files, doi=md.get("doi"))
            if (p / "dcat.ttl").is_file():
                from rdflib import Graph

                inp.graph = Graph().parse(p / "dcat.ttl", format="turtle")
            inp.croissant = (p / "croissant.json").is_file()
            inp.schema_org = (p / "schema-org.jsonld").is_file()
        elif p.is_file():
            doc = _read(p)
            md = doc.get("metadata", doc)
            files = [f.get("key") or f.get("filename", "") for f in doc.get("files", []) if isinstance(f, dict)]
            inp = _Input(md=md, files=files, doi=doc.get("doi") or md.get("doi"))
        else:
            raise InputError("no such metadata folder or record file", file=p)
        name = str(p)
    if not isinstance(inp.md, dict):
        raise InputError("expected Zenodo metadata (an object)", file=name, place="/metadata")
    if inp.doi is None and assume_doi:
        inp.doi = "10.5281/zenodo.0000000"
        inp.assumptions.append("the DOI and OAI identifier Zenodo mints at publication are assumed")
    inp.assumptions += [
        "FAIR EVA 4.0.0 core with the oai_pmh plugin configuration, reading Zenodo's oai_dc",
        "oai_dc modelled on InvenioRDM's Dublin Core serializer: keywords become dc:subject, legacy "
        "'subjects' are not exported, locations become dc:coverage",
        "indicators marked predicted read Zenodo's landing page, which exists only after publishing",
    ]
    return inp, name


def _read(p: Path) -> dict[str, Any]:
    try:
        doc = json.loads(p.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", file=p, place=f"line {exc.lineno}") from None
    if not isinstance(doc, dict):
        raise InputError("expected a JSON object", file=p, place="/")
    return doc


def oai_dc_rows(inp_md: dict[str, Any], files: list[str], doi: str | None) -> list[tuple[str, str]]:
    """The Dublin Core (element, value) pairs Zenodo's OAI-PMH ``oai_dc`` serves for this metadata.

    Modelled on InvenioRDM's Dublin Core serializer: keywords become ``subject`` (legacy
    ``subjects`` do not), locations become ``coverage``, licence URL and title and the
    ``info:eu-repo`` access token become ``rights``.
    """
    md = inp_md
    rows: list[tuple[str, str]] = []
    if not md:
        return [("identifier", f"https://doi.org/{doi}")] if doi else []

    def add(el: str, v: Any) -> None:
        if v not in (None, ""):
            rows.append((el, str(v)))
    add("title", md.get("title"))
    for c in md.get("creators") or []:
        add("creator", c.get("name") if isinstance(c, dict) else c)
    for c in md.get("contributors") or []:
        add("contributor", c.get("name") if isinstance(c, dict) else c)
    for k in md.get("keywords") or []:
        add("subject", k)
    add("date", md.get("publication_date"))
    add("description", md.get("description"))
    if md.get("method"):
        add("description", md["method"])
    if doi:
        add("identifier", f"https://doi.org/{doi}")
        add("identifier", f"oai:zenodo.org:{doi.rsplit('.', 1)[-1]}")
    for r in md.get("related_identifiers") or []:
        if isinstance(r, dict):
            add("identifier" if r.get("relation") == "isAlternateIdentifier" else "relation", r.get("identifier"))
    for c in md.get("communities") or []:
        add("relation", f"https://zenodo.org/communities/{c.get('identifier') if isinstance(c, dict) else c}")
    lic = bundle.licence(str(md.get("license", ""))) if md.get("license") else None
    if lic is not None:
        add("rights", lic.zenodo_url)
        add("rights", lic.name)
    elif md.get("license"):
        add("rights", md["license"])
    access = md.get("access_right", "open")
    token = {"open": "openAccess", "embargoed": "embargoedAccess", "restricted": "restrictedAccess",
             "closed": "closedAccess"}.get(access, "openAccess")
    add("rights", f"info:eu-repo/semantics/{token}")
    add("type", "info:eu-repo/semantics/other")
    add("publisher", "Zenodo")
    add("language", md.get("language"))
    for loc in md.get("locations") or []:
        if isinstance(loc, dict):
            add("coverage", f"name={loc.get('place')}" + (f"; east={loc['lon']}; north={loc['lat']}"
                                                          if "lat" in loc and "lon" in loc else ""))
    for f in files:
        mt, _ = bundle.media_type(f)
        if mt:
            add("format", mt)
    return rows


_PID_RE = re.compile(r"^(https?://\S+|doi:\S+|10\.\d{4,9}/\S+|urn:\S+|hdl:\S+|ark:/\S+)$", re.I)


def _is_pid(v: str) -> bool:
    """What ``idutils.detect_identifier_schemes`` would recognise (URL, DOI, handle, URN, ARK...), roughly."""
    return bool(_PID_RE.match(v.strip()))


def _is_doi_or_handle(v: str) -> bool:
    return bool(re.search(r"(^|doi\.org/|^doi:)10\.\d{4,9}/", v) or "hdl.handle.net" in v or v.startswith("hdl:"))


# ------------------------------------------------------------------------------------------
# FAIR EVA core, oai_pmh configuration


def _fair_eva(inp: _Input) -> dict[str, tuple[float, str, str, bool]]:
    """indicator -> (points, why, how to raise, predicted) as FAIR EVA's core would compute them."""
    rows = oai_dc_rows(inp.md, inp.files, inp.doi)
    by: dict[str, list[str]] = {}
    for el, v in rows:
        by.setdefault(el, []).append(v)
    ids = by.get("identifier", [])
    own = f"https://doi.org/{inp.doi}" if inp.doi else None
    r: dict[str, tuple[float, str, str, bool]] = {}
    pid = [v for v in ids if _is_pid(v)]
    f1 = (100.0, f"identifier {pid[0]} is a persistent identifier", "") if pid else \
        (0.0, "no identifier", "publish on Zenodo, which mints a DOI")
    for i in ("RDA-F1-01M", "RDA-F1-01D"):
        r[i] = (*f1, False)
    gu = [v for v in ids if _is_doi_or_handle(v)]
    f12 = (100.0, "the DOI is globally unique", "") if gu else (0.0, "no DOI or handle", "publish on Zenodo (DOI)")
    for i in ("RDA-F1-02M", "RDA-F1-02D"):
        r[i] = (*f12, False)
    # F2: check_metadata_terms — a None qualifier only matches a '' config qualifier (oai_dc has none).
    found = [el for el, q in F2_TERMS if q == "" and el in by]
    f2 = 100.0 * len(found) / len(F2_TERMS)
    r["RDA-F2-01M"] = (f2, f"{len(found)}/10 oai_pmh terms found ({', '.join(found) or 'none'}); qualified terms "
                       "never match unqualified Dublin Core, so 40 is the most a Zenodo record gets",
                       "give a title and licence (rights); publisher and type come from Zenodo", False)
    r["RDA-F3-01M"] = (100.0, "the metadata carries the data identifier (DOI)", "", False) if ids else \
        (0.0, "no identifier in the metadata", "publish on Zenodo (DOI)", False)
    r["RDA-F4-01M"] = (100.0, "metadata harvestable over OAI-PMH", "", False) if rows else \
        (0.0, "no metadata", "write a description and run describe", False)
    acc = by.get("rights", []) + by.get("access", [])
    r["RDA-A1-01M"] = (100.0, "access information present (dc:rights)", "", False) if acc else \
        (0.0, "no access information", "set access_right and a licence", False)
    r["RDA-A1-02D"] = r["RDA-A1-01M"][:3] + (False,)
    # A1-02M / A1-03M: share of metadata values found in the landing page (predicted).
    vals = [v for el, v in rows if not v.startswith(("info:eu-repo", "oai:"))]
    shown = [v for el, v in rows if el in ("title", "creator", "contributor", "subject", "date", "description",
                                           "identifier", "relation", "rights", "publisher", "language", "coverage",
                                           "format") and not v.startswith(("info:eu-repo", "oai:"))]
    a12 = 100.0 * len(shown) / len(vals) if vals else 0.0
    for i in ("RDA-A1-02M", "RDA-A1-03M"):
        r[i] = (round(a12, 2), f"{len(shown)}/{len(vals)} metadata values rendered on Zenodo's landing page "
                "(predicted)", "keep metadata values that the landing page shows (title, creators, keywords...)", True)
    data_files = [f for f in inp.files if f.lower().endswith(SUPPORTED_DATA_FORMATS)]
    open_files = inp.md.get("access_right", "open") == "open" and bool(data_files)
    a13 = (100.0, f"landing page links downloadable files in supported formats ({', '.join(data_files[:3])})",
           "") if open_files else (0.0, "no open file in a format FAIR EVA's oai_pmh config knows "
                                   f"({' '.join(SUPPORTED_DATA_FORMATS)})",
                                   "deposit openly at least one file in such a format "
                                   "(describe writes annotations.csv)")
    for i in ("RDA-A1-03D", "RDA-A1-04D", "RDA-A1.1-01D"):
        r[i] = (*a13, True)
    scheme = API_ENDPOINT.split(":", 1)[0]
    a14 = (100.0, f"OAI-PMH endpoint over {scheme}, an open protocol", "") if scheme in ACCESS_PROTOCOLS else \
        (0.0, "endpoint protocol not recognised", "")
    for i in ("RDA-A1-04M", "RDA-A1.1-01M"):
        r[i] = (*a14, False)
    r["RDA-A1-05D"] = (0.0, "constant 0 in FAIR EVA's core (\"OAI-PMH does not support machine-actionable access\")",
                       "cannot be raised on FAIR EVA's oai_pmh plugin", False)
    r["RDA-A1.2-01D"] = (100.0, "constant 100 in FAIR EVA's core", "", False)
    r["RDA-A2-01M"] = (50.0, "constant 50 in FAIR EVA's core (\"depends on the authority\")",
                       "cannot be raised on FAIR EVA's core", False)
    cv_vals = by.get("coverage", []) + by.get("subject", []) + by.get("type", [])
    r["RDA-I1-01M"] = (100.0, "a controlled-vocabulary field has a value (FAIR EVA scores any value)", "", False) \
        if cv_vals else (0.0, "no subject, coverage or type", "add keywords", False)
    fmts = by.get("format", [])
    r["RDA-I1-01D"] = (100.0, f"files with IANA media types ({', '.join(sorted(set(fmts))[:3])})", "", True) if fmts \
        else (0.0, "no file with a registered media type", "deposit files with standard extensions", True)
    for i in ("RDA-I1-02M", "RDA-I1-02D"):
        r[i] = (0.0, "Zenodo's OAI-PMH lists no metadata format whose prefix contains 'rdf'",
                "cannot be raised through Zenodo's OAI-PMH (the aquatic score credits dcat.ttl)", False)
    recog = sorted({name for v in cv_vals for host, name in FAIR_EVA_CVS.items() if host in v})
    i2 = (100.0, f"recognised vocabularies: {', '.join(recog)}", "") if recog else \
        (0.0, "no value from the 6 vocabularies FAIR EVA recognises (LOC, ORCID, GeoNames, Getty, COAR, Wikidata); "
         "NVS and WoRMS earn nothing here", "add a subject with a Wikidata/GeoNames/LOC identifier to the description")
    r["RDA-I2-01M"] = (*i2, False)
    r["RDA-I2-01D"] = (*i2, False)
    other = [v for v in ids if _is_pid(v) and v != own and not v.startswith("oai:")]
    r["RDA-I3-01M"] = (100.0, f"references another identifier ({other[0]})", "", False) if other else \
        (0.0, "no identifier other than the record's own", "add an alternate identifier (isAlternateIdentifier), "
         "e.g. the dataset's original URL", False)
    rel = [v for v in by.get("relation", []) + by.get("contributor", []) if _is_pid(v)]
    i3 = (100.0, f"relations with PIDs ({len(rel)})", "") if rel else (0.0, "no relation with a PID",
                                                                        "add related identifiers (papers, models)")
    for i in ("RDA-I3-01D", "RDA-I3-02M", "RDA-I3-02D", "RDA-I3-03M", "RDA-I3-04M"):
        r[i] = (*i3, False)
    r["RDA-R1-01M"] = (0.0, "the oai_pmh config looks for 'rigths/license' and 'license' elements, which Dublin "
                       "Core does not have", "cannot be raised through Zenodo's oai_dc", False)
    r["RDA-R1.1-01M"] = (100.0, "licence present (dc:rights)", "", False) if by.get("rights") else \
        (0.0, "no licence", "give an SPDX licence id", False)
    lic = bundle.licence(str(inp.md.get("license", ""))) if inp.md.get("license") else None
    spdx_urls = {u for x in bundle.licences().values() for u in (x.reference, *x.see_also)}
    hit = [v for v in by.get("rights", []) if v in spdx_urls]
    r["RDA-R1.1-02M"] = (100.0, f"licence URL {hit[0]} is in the SPDX list", "", False) if hit else \
        (0.0, "the licence URL Zenodo serves is not an SPDX reference or seeAlso URL"
         + (f" ({lic.zenodo_url})" if lic else ""), "use a licence whose Zenodo URL SPDX lists (e.g. CC-BY-4.0)", False)
    ref_hit = [v for v in by.get("rights", []) if v in {x.reference for x in bundle.licences().values()}]
    r["RDA-R1.1-03M"] = (100.0, "licence given as its SPDX reference URL", "", False) if ref_hit else \
        (0.0, "only https://spdx.org/licenses/<id>.html counts and Zenodo serves the licence's own URL",
         "cannot be raised through Zenodo's oai_dc (the aquatic score credits the SPDX URI in DCAT)", False)
    r["RDA-R1.2-01M"] = (0.0, "constant 0 in FAIR EVA's core (\"no provenance information in Dublin Core\")",
                         "cannot be raised on FAIR EVA's oai_pmh plugin", False)
    r["RDA-R1.2-02M"] = r["RDA-R1.2-01M"]
    r["RDA-R1.3-01M"] = (100.0, "metadata standard DCES is in FAIRsharing", "", False) if rows else \
        (0.0, "no metadata", "", False)
    r["RDA-R1.3-02M"] = r["RDA-R1.3-01M"]
    for i in ("RDA-R1.3-01D", "RDA-R1.3-02D"):
        r[i] = (0.0, "looks for an EPOS 'availableFormats' element; always 0 outside EPOS",
                "cannot be raised on the oai_pmh plugin", False)
    return r


# ------------------------------------------------------------------------------------------
# Aquatic profile


_KNOWN_VOCABS = ("vocab.nerc.ac.uk", "marinespecies.org", "publications.europa.eu/resource/authority",
                 "spdx.org/licenses", "iana.org/assignments/media-types", "edmo.seadatanet.org",
                 "w3id.org/earthsemantics/OSO", "marineregions.org", "orcid.org", "ror.org", "gbif.org/species",
                 *FAIR_EVA_CVS)


def _aquatic(inp: _Input) -> dict[str, tuple[float, str]]:
    """indicator -> (points, why) judged on all the metadata, crediting domain vocabularies."""
    md = inp.md
    g = inp.graph
    r: dict[str, tuple[float, str]] = {}
    doi = bool(inp.doi)
    for i in ("RDA-F1-01M", "RDA-F1-01D", "RDA-F1-02M", "RDA-F1-02D", "RDA-F3-01M"):
        r[i] = (100.0, "DOI") if doi else (0.0, "no DOI")
    fields = {"title": md.get("title"), "creators": md.get("creators"), "description": md.get("description"),
              "publication date": md.get("publication_date"), "resource type": md.get("upload_type"),
              "identifier": inp.doi, "access rights": md.get("access_right"), "licence": md.get("license"),
              "subjects/keywords": md.get("keywords") or md.get("subjects"), "version": md.get("version")}
    have = [k for k, v in fields.items() if v]
    r["RDA-F2-01M"] = (100.0 * len(have) / len(fields), f"{len(have)}/10 discovery fields ("
                       + ", ".join(k for k in fields if k not in have) + " missing)" if len(have) < 10 else
                       "all 10 discovery fields")
    r["RDA-F4-01M"] = (100.0, "schema.org JSON-LD and DCAT for harvesters") if md and inp.schema_org else \
        ((50.0, "harvestable through Zenodo only") if md else (0.0, "no metadata"))
    r["RDA-A1-01M"] = (100.0, f"access right {md['access_right']}") if md.get("access_right") else (0.0, "none")
    for i in ("RDA-A1-02M", "RDA-A1-03M", "RDA-A1-04M", "RDA-A1.1-01M"):
        r[i] = (100.0, "Zenodo serves the metadata over HTTPS and OAI-PMH") if md else (0.0, "no metadata")
    open_files = md.get("access_right", "open") == "open" and bool(inp.files)
    for i in ("RDA-A1-02D", "RDA-A1-03D", "RDA-A1-04D", "RDA-A1.1-01D"):
        r[i] = (100.0, "open files over HTTPS") if open_files else (0.0, "no open files")
    r["RDA-A1-05D"] = (100.0, "open files reachable through Zenodo's REST API and described by Croissant") if \
        open_files and inp.croissant else (50.0, "files reachable through Zenodo's REST API, no Croissant") if \
        open_files else (0.0, "no open files")
    r["RDA-A1.2-01D"] = (100.0, "Zenodo supports authenticated access (restricted files, tokens)")
    r["RDA-A2-01M"] = (100.0, "Zenodo keeps the metadata and DOI of withdrawn records (tombstone pages)") if md else \
        (0.0, "no metadata")
    concepts: list[str] = []
    if g is not None:
        from rdflib import URIRef
        from rdflib.namespace import RDF, SKOS

        concepts = [str(c) for c in g.subjects(RDF.type, SKOS.Concept) if isinstance(c, URIRef)]
        concepts += [str(o) for o in g.objects(None, URIRef("http://purl.org/dc/terms/license"))]
    known = [c for c in concepts if any(k in c for k in _KNOWN_VOCABS)]
    r["RDA-I1-01M"] = ((100.0 * len(known) / len(concepts), f"{len(known)}/{len(concepts)} concept values from "
                        "controlled vocabularies") if concepts else (0.0, "no controlled-vocabulary values"))
    typed = [f for f in inp.files if bundle.media_type(f)[0]]
    r["RDA-I1-01D"] = ((100.0 * len(typed) / len(inp.files), f"{len(typed)}/{len(inp.files)} files with IANA media "
                        "types") if inp.files else (0.0, "no files"))
    r["RDA-I1-02M"] = (100.0, "DCAT-AP in RDF (Turtle, JSON-LD)") if g is not None else (0.0, "no RDF metadata")
    r["RDA-I1-02D"] = (100.0, "Croissant JSON-LD describes the data records") if inp.croissant else \
        (0.0, "no Croissant")
    parts = {
        "taxa (WoRMS/GBIF)": any("marinespecies.org" in c or "gbif.org" in c for c in concepts),
        "instrument/platform (NVS L22/L05/L06)": any(re.search(r"/collection/L(22|05|06)/", c) for c in concepts),
        "themes/parameters (EU data theme, NVS P01/P02)": any("data-theme" in c or re.search(r"/collection/P0[12]/", c)
                                                              for c in concepts),
        "licence (SPDX)": any("spdx.org/licenses" in c for c in concepts),
    }
    got = [k for k, v in parts.items() if v]
    r["RDA-I2-01M"] = (25.0 * len(got), ("uses " + ", ".join(got)) if got else "no FAIR vocabulary")
    taxa = sorted({c for c in concepts if "marinespecies.org" in c or "gbif.org" in c})
    r["RDA-I2-01D"] = (100.0, f"annotations carry {len(taxa)} taxon LSIDs") if taxa else \
        (0.0, "no class mapped to a taxon")
    creators = md.get("creators") or []
    refs = [c for c in creators if isinstance(c, dict) and c.get("orcid")] + (md.get("grants") or [])
    r["RDA-I3-01M"] = (100.0, "ORCIDs / grant ids reference other metadata") if refs else \
        (0.0, "no ORCID, ROR or grant id")
    related = [x for x in md.get("related_identifiers") or [] if isinstance(x, dict)]
    pids = [x for x in related if _is_pid(str(x.get("identifier", ""))) or _is_doi_or_handle(str(x.get("identifier")))]
    for i in ("RDA-I3-01D", "RDA-I3-02M", "RDA-I3-02D", "RDA-I3-03M"):
        r[i] = (100.0, f"{len(pids)} qualified relations with PIDs") if pids else (0.0, "no related identifiers")
    outward = [x for x in related if x.get("relation") in ("isSourceOf", "isCitedBy", "isReferencedBy",
                                                           "isDocumentedBy", "isSupplementTo", "isDerivedFrom")]
    r["RDA-I3-04M"] = (100.0, "links to papers, models or source data") if outward else (0.0, "none")
    rich = {"licence": md.get("license"), "instrument": parts["instrument/platform (NVS L22/L05/L06)"],
            "taxa": bool(taxa), "location": md.get("locations") or (g is not None and _has(g, "spatial")),
            "time span": md.get("dates") or (g is not None and _has(g, "temporal")),
            "method": md.get("method"), "version": md.get("version"), "keywords": md.get("keywords"),
            "counts": "annotations" in (md.get("description") or ""), "annotation data": "annotations.csv" in inp.files}
    hv = [k for k, v in rich.items() if v]
    r["RDA-R1-01M"] = (100.0 * len(hv) / len(rich), f"{len(hv)}/{len(rich)} reuse attributes"
                       + (f" (missing: {', '.join(k for k in rich if k not in hv)})" if len(hv) < len(rich) else ""))
    lic = bundle.licence(str(md.get("license", ""))) if md.get("license") else None
    r["RDA-R1.1-01M"] = (100.0, f"licence {md['license']}") if md.get("license") else (0.0, "no licence")
    r["RDA-R1.1-02M"] = (100.0, f"SPDX licence {lic.spdx}") if lic else (0.0, "not an SPDX licence")
    spdx_in_rdf = any("spdx.org/licenses" in c for c in concepts)
    r["RDA-R1.1-03M"] = (100.0, "SPDX licence URI in DCAT (dct:license)") if spdx_in_rdf else \
        (0.0, "no machine-readable licence URI")
    prov = 0
    if g is not None:
        from rdflib import URIRef

        prov = len(list(g.objects(None, URIRef("http://www.w3.org/ns/prov#wasGeneratedBy"))))
        has_statement = _has(g, "provenance")
    else:
        has_statement = False
    r["RDA-R1.2-01M"] = (100.0, "provenance statement and acquisition/curation activities") if prov and \
        has_statement else (50.0, "partial provenance") if prov or has_statement or md.get("method") else \
        (0.0, "no provenance")
    r["RDA-R1.2-02M"] = (100.0, f"PROV-O: {prov} activities") if prov else (0.0, "no PROV-O")
    std = g is not None
    for i in ("RDA-R1.3-01M", "RDA-R1.3-02M"):
        r[i] = (100.0, "DCAT-AP 3 + Croissant + DataCite") if std and inp.croissant else \
            (50.0, "DataCite/Zenodo only") if md else (0.0, "no metadata")
    open_fmt = [f for f in inp.files if f.lower().endswith((".csv", ".json", ".jsonld", ".ttl", ".md", ".txt", ".png",
                                                            ".jpg", ".jpeg", ".tif", ".tiff", ".zip", ".tar", ".gz",
                                                            ".parquet"))]
    for i in ("RDA-R1.3-01D", "RDA-R1.3-02D"):
        r[i] = ((100.0 * len(open_fmt) / len(inp.files), f"{len(open_fmt)}/{len(inp.files)} files in open community "
                 "formats") if inp.files else (0.0, "no files"))
    return r


def _has(g: Any, term: str) -> bool:
    from rdflib import URIRef

    return any(True for _ in g.objects(None, URIRef(f"http://purl.org/dc/terms/{term}")))


# ------------------------------------------------------------------------------------------


def fair_score(src: str | os.PathLike[str] | dict[str, Any], *, assume_doi: bool = True) -> FairResult:
    """FAIR check of a metadata folder (``describe`` output), a Zenodo record JSON file or a metadata dict.

    ``score`` is the FAIR EVA-compatible total (0–100) a deposit can gate on (``--min-fair``).
    """
    inp, name = _load(src, assume_doi)
    eva = _fair_eva(inp)
    aq = _aquatic(inp)
    out = []
    for iid, principle, w, what in INDICATORS:
        p, why, how, predicted = eva[iid]
        mx = ZENODO_MAX.get(iid, 100.0)
        ap, awhy = aq[iid]
        out.append(Indicator(iid, principle, w, what, round(p, 2), status_of(p), why,
                             how or "already at its maximum", mx, predicted, round(ap, 2), status_of(ap), awhy))
    pts = {i.id: i.points for i in out}
    apts = {i.id: i.aquatic_points for i in out}
    by_p = {p: [i.id for i in out if i.principle == p] for p in "FAIR"}
    return FairResult(out, weighted(pts), weighted(apts), {p: weighted(pts, ids) for p, ids in by_p.items()},
                      {p: weighted(apts, ids) for p, ids in by_p.items()}, zenodo_cap(), constant_cap(), name,
                      inp.assumptions)


def ask_fair_eva(url: str, record_id: str, *, repo: str = "oai_pmh", api_endpoint: str = API_ENDPOINT,
                 timeout: float = 60.0, post: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Ask a running FAIR EVA service (``POST /v1.0/rda/rda_all``) and aggregate its answer like FAIR EVA does.

    Returns ``{"url", "score", "principles", "indicators": {id: points}}``.
    """
    import requests

    from imagine.vocab.http import USER_AGENT

    endpoint = url.rstrip("/") + "/v1.0/rda/rda_all"
    body = {"id": record_id, "repo": repo, "api_endpoint": api_endpoint, "lang": "en"}
    try:
        r = (post or requests.post)(endpoint, json=body, timeout=timeout, headers={"User-Agent": USER_AGENT})
    except requests.RequestException as exc:
        raise RemoteError(f"FAIR EVA could not be reached: {exc.__class__.__name__}", url=endpoint) from None
    if r.status_code != 200:
        raise RemoteError(f"FAIR EVA answered HTTP {r.status_code}" + (" (FAIR EVA answers 500 when one indicator "
                          "fails, e.g. offline landing-page checks)" if r.status_code == 500 else ""),
                          status=r.status_code, url=endpoint)
    try:
        doc = r.json()
    except ValueError:
        raise RemoteError("FAIR EVA answered something that is not JSON", url=endpoint) from None
    if not isinstance(doc, dict) or not doc:
        raise RemoteError("FAIR EVA's answer is empty", url=endpoint)
    item = doc.get(record_id) or next((v for k, v in doc.items() if k != "evaluator_logs" and isinstance(v, dict)),
                                      None)
    if not isinstance(item, dict):
        raise RemoteError("FAIR EVA's answer has no result for the record", url=endpoint)
    points: dict[str, float] = {}
    weights: dict[str, float] = {}
    for principle in PRINCIPLES.values():
        for key, ind in (item.get(principle) or {}).items():
            if not isinstance(ind, dict) or "points" not in ind:
                continue
            iid = _indicator_id(key, ind)
            points[iid] = float(ind["points"])
            weights[iid] = float(ind.get("weight", WEIGHT.get(iid, 0)))
    if not points:
        raise RemoteError("FAIR EVA's answer holds no indicator points", url=endpoint)
    total_w = sum(weights.values())
    score = round(sum(points[i] * weights[i] for i in points) / total_w, 2) if total_w else 0.0
    return {"url": url, "record": record_id, "score": score, "indicators": points}


def _indicator_id(key: str, ind: dict[str, Any]) -> str:
    """``rda_a1_1_01m`` / ``RDA-A1.1-01M`` / a name field → ``RDA-A1.1-01M``."""
    for cand in (str(ind.get("name", "")), key):
        m = re.search(r"(?i)rda[-_]([fair])(\d)(?:[._](\d))?[-_](\d{2})([md])", cand)
        if m:
            sub = f".{m.group(3)}" if m.group(3) else ""
            iid = f"RDA-{m.group(1).upper()}{m.group(2)}{sub}-{m.group(4)}{m.group(5).upper()}"
            if iid in WEIGHT:
                return iid
    raise UsageError(f"FAIR EVA indicator {key!r} is not one of the 41 RDA indicators")


def compare(ours: FairResult, theirs: dict[str, Any]) -> dict[str, Any]:
    """Attach FAIR EVA's answer to our result, listing indicators where the points differ."""
    diffs = {i.id: {"ours": i.points, "fair_eva": theirs["indicators"][i.id]} for i in ours.indicators
             if i.id in theirs["indicators"] and abs(theirs["indicators"][i.id] - i.points) > 0.5}
    out = dict(theirs) | {"differences": diffs}
    ours.fair_eva = out
    return out
