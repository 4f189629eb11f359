"""Map class labels to taxa: WoRMS first, GBIF for what WoRMS lacks, bundled names offline.

Each label gets a :class:`TaxonMatch` saying what matched (verbatim name, match type, authority),
the accepted name and AphiaID / LSID it resolves to, and whether a person should review it
(WoRMS ``near_2``/``near_3``, several candidates, offline fuzzy guesses). Labels that name no
organism (debris, bubbles, "multiple objects", divers...) stay unmapped as ``non-taxon``.
:func:`write_mapping` saves the result as a reviewable JSON or YAML file that ``describe`` reads.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imagine.kernel import Finding, InputError, RemoteError, atomic_write

from . import bundle
from .http import HttpClient, OfflineMiss
from .services import GBIF_URL, WORMS_URL, Gbif, Worms

__all__ = ["TaxonMatch", "match_labels", "write_mapping", "read_mapping", "is_non_taxon", "mapping_findings",
           "NON_TAXON_WORDS"]

# Words that mark a class as "not an organism" (the VLIZ FlowCam classes and litter/observatory sets).
NON_TAXON_WORDS = frozenset({
    "artefact", "artifact", "artefacts", "artifacts", "background", "bubble", "bubbles", "debris", "detritus",
    "diver", "divers", "fiber", "fibers", "fibre", "fibres", "litter", "plastic", "plastics", "trash", "waste",
    "unknown", "other", "others", "noise", "blurry", "blur", "dark", "empty", "multiple", "objects", "object",
    "sediment", "sand", "rock", "rocks", "pollen", "marine snow", "snow", "bottle", "bag", "net", "rope", "can",
    "wood", "paper", "glass", "metal", "cloth", "tyre", "tire", "footprint", "person", "people", "human", "boat",
    "ship", "vessel", "shadow", "reflection", "particle", "particles", "aggregate", "aggregates", "cluster",
    "badfocus", "bad focus", "out of focus", "not living", "nonliving", "non-living", "egg-like", "fragment",
})
AUTO_ACCEPT = ("exact", "exact_genus", "exact_subgenus", "exact_species")
WARN_ACCEPT = ("phonetic", "near_1")


@dataclass
class TaxonMatch:
    """What a class label maps to; ``status`` is matched, unmatched or non-taxon."""

    label: str
    status: str
    query: str = ""
    match_type: str | None = None
    authority: str | None = None
    scientific_name: str | None = None
    aphia_id: int | None = None
    name_status: str | None = None
    accepted_name: str | None = None
    accepted_aphia_id: int | None = None
    lsid: str | None = None
    url: str | None = None
    rank: str | None = None
    gbif_key: int | None = None
    needs_review: bool = False
    note: str = ""
    candidates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def uri(self) -> str | None:
        """The URI to publish: accepted WoRMS LSID, else the GBIF species page."""
        if self.accepted_aphia_id:
            return bundle.lsid(self.accepted_aphia_id)
        if self.gbif_key:
            return f"https://www.gbif.org/species/{self.gbif_key}"
        return None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["uri"] = self.uri
        return {k: v for k, v in d.items() if v not in (None, "", [])} | {"label": self.label, "status": self.status}


def _query(label: str) -> str:
    """A label as a name query: underscores and dashes to spaces, one space, Genus capitalised."""
    q = " ".join(re.sub(r"[_]+", " ", label).split())
    return q[:1].upper() + q[1:] if q else q


def is_non_taxon(label: str) -> bool:
    """True for labels that name no organism (debris, bubbles, "multiple objects", ...)."""
    q = _query(label).lower()
    if q in NON_TAXON_WORDS:
        return True
    words = set(re.split(r"[\s/,;()-]+", q)) - {""}
    return bool(words) and words <= NON_TAXON_WORDS | {"of", "and", "the", "a", "in", "on", "like"}


def _from_worms(m: TaxonMatch, rec: dict[str, Any], authority: str = "WoRMS") -> None:
    m.status = "matched"
    m.authority = authority
    m.match_type = rec.get("match_type") or m.match_type
    m.scientific_name = rec.get("scientificname")
    m.aphia_id = rec.get("AphiaID")
    m.name_status = rec.get("status")
    m.accepted_aphia_id = rec.get("valid_AphiaID") or rec.get("AphiaID")
    m.accepted_name = rec.get("valid_name") or rec.get("scientificname")
    m.rank = rec.get("rank")
    m.url = (f"https://www.marinespecies.org/aphia.php?p=taxdetails&id={m.accepted_aphia_id}"
             if m.accepted_aphia_id else None)
    m.lsid = bundle.lsid(m.accepted_aphia_id) if m.accepted_aphia_id else None
    if m.name_status and m.name_status != "accepted":
        m.note = (f"'{m.scientific_name}' is {m.name_status} in WoRMS"
                  + (f" ({rec.get('unacceptreason')})" if rec.get("unacceptreason") else "")
                  + f"; accepted name {m.accepted_name} ({m.accepted_aphia_id})")
    if m.match_type in WARN_ACCEPT:
        m.note = (m.note + "; " if m.note else "") + f"WoRMS match type {m.match_type}: check the spelling"
    elif m.match_type and m.match_type not in AUTO_ACCEPT:
        m.needs_review = True
        m.note = (m.note + "; " if m.note else "") + f"WoRMS match type {m.match_type}: needs a human check"


def _from_bundle(m: TaxonMatch, t: bundle.Taxon, match_type: str) -> None:
    m.status = "matched"
    m.authority = "WoRMS (bundled subset)"
    m.match_type = match_type
    m.scientific_name = t.name
    m.aphia_id = t.aphia_id
    m.name_status = t.status
    m.accepted_aphia_id = t.valid_aphia_id
    m.accepted_name = t.valid_name or None
    m.rank = t.rank or None
    m.lsid = bundle.lsid(t.valid_aphia_id) if t.valid_aphia_id else None
    m.url = f"https://www.marinespecies.org/aphia.php?p=taxdetails&id={t.valid_aphia_id}" if t.valid_aphia_id else None
    notes = []
    if t.status != "accepted":
        accepted = f"; accepted name {t.valid_name} ({t.valid_aphia_id})" if t.valid_aphia_id else \
            "; accepted name unknown offline"
        notes.append(f"'{t.name}' is {t.status} in WoRMS{accepted}")
        if not t.valid_aphia_id:
            m.needs_review = True
    if match_type != "exact":
        m.needs_review = True
        notes.append("offline fuzzy match against the bundled names: check it")
    m.note = "; ".join(notes)


def _offline(m: TaxonMatch, why: str) -> None:
    t = bundle.taxon_by_name(m.query)
    if t is not None:
        _from_bundle(m, t, "exact")
        return
    names = [x.name for x in bundle.taxa()]
    close = difflib.get_close_matches(m.query, names, n=1, cutoff=0.85)
    if close:
        t2 = bundle.taxon_by_name(close[0])
        assert t2 is not None
        _from_bundle(m, t2, "near (offline)")
        return
    m.status = "unmatched"
    m.note = f"no match in the bundled WoRMS subset ({why}); run online or add the taxon to the mapping by hand"


def match_labels(labels: list[str], *, http: HttpClient | None = None, offline: bool = False,
                 worms_url: str = WORMS_URL, gbif_url: str = GBIF_URL, marine_only: bool = False
                 ) -> tuple[list[TaxonMatch], list[Finding]]:
    """Match class labels to taxa (see module docstring); returns matches and findings (unmatched, service down)."""
    findings: list[Finding] = []
    out = [TaxonMatch(label=lab, status="unmatched", query=_query(lab)) for lab in labels]
    todo = []
    for m in out:
        if not m.query:
            m.note = "empty label"
        elif is_non_taxon(m.label):
            m.status = "non-taxon"
            m.note = "not an organism: left unmapped on purpose"
        else:
            todo.append(m)
    online = not offline and (http is None or not http.offline)
    if todo and online:
        http = http or HttpClient()
        worms = Worms(http, worms_url)
        try:
            results = worms.match_names([m.query for m in todo], marine_only=marine_only)
        except RemoteError as exc:
            findings.append(Finding("vocab-service", f"WoRMS look-up failed ({exc.message}); used the bundled names "
                                    "and the cache instead", "warning", file=exc.file))
            results = None
        if results is None:
            for m in todo:
                _offline(m, "WoRMS unavailable")
        else:
            gbif = Gbif(http, gbif_url)
            for m, recs in zip(todo, results, strict=True):
                accepted = [r for r in recs if r.get("status") == "accepted"]
                if len(recs) == 1 or (len(recs) > 1 and len(accepted) == 1):
                    _from_worms(m, recs[0] if len(recs) == 1 else accepted[0])
                    if len(recs) > 1:
                        m.needs_review = True
                        m.candidates = [{"AphiaID": r.get("AphiaID"), "name": r.get("scientificname"),
                                         "status": r.get("status")} for r in recs]
                        m.note = (m.note + "; " if m.note else "") + f"{len(recs)} WoRMS candidates: check the choice"
                elif len(recs) > 1:
                    m.status = "unmatched"
                    m.needs_review = True
                    m.candidates = [{"AphiaID": r.get("AphiaID"), "name": r.get("scientificname"),
                                     "status": r.get("status"), "kingdom": r.get("kingdom")} for r in recs]
                    m.note = f"{len(recs)} WoRMS candidates (homonyms?): choose one in the mapping file"
                else:
                    try:
                        g = gbif.match(m.query)
                    except RemoteError as exc:
                        findings.append(Finding("vocab-service", f"GBIF look-up failed ({exc.message})", "warning",
                                                file=exc.file))
                        g = None
                    if g is not None and g.get("matchType") in ("EXACT", "FUZZY"):
                        m.status = "matched"
                        m.authority = "GBIF Backbone Taxonomy"
                        m.match_type = str(g.get("matchType")).lower()
                        m.scientific_name = g.get("scientificName")
                        m.gbif_key = g.get("acceptedUsageKey") or g.get("usageKey")
                        m.name_status = str(g.get("status", "")).lower() or None
                        m.accepted_name = g.get("species") if g.get("synonym") else g.get("canonicalName")
                        m.rank = str(g.get("rank", "")).capitalize() or None
                        m.url = f"https://www.gbif.org/species/{m.gbif_key}"
                        m.note = "not in WoRMS; matched in the GBIF backbone"
                        if m.match_type == "fuzzy" or int(g.get("confidence", 100)) < 90:
                            m.needs_review = True
                    elif g is not None:
                        m.note = (f"WoRMS: no match; GBIF: only a higher-rank match ({g.get('rank')} "
                                  f"{g.get('canonicalName')}): map by hand")
                        m.needs_review = True
                    else:
                        m.note = "no match in WoRMS nor GBIF: check the spelling or map by hand"
    elif todo:
        for m in todo:
            _offline(m, "offline")
    for m in out:
        if m.status == "unmatched":
            findings.append(Finding("taxon-unmatched", f"class label {m.label!r} matched no taxon: {m.note}. Fix: "
                                    "correct the label or give scientific_name / aphia_id in the mapping file",
                                    "warning", place=f"label {m.label!r}"))
    return out, findings


def mapping_findings(matches: list[TaxonMatch]) -> list[Finding]:
    """Review items of a mapping: labels flagged for a human check."""
    return [Finding("taxon-review", f"class label {m.label!r}: {m.note}", "info", place=f"label {m.label!r}")
            for m in matches if m.needs_review]


def write_mapping(matches: list[TaxonMatch], path: str | os.PathLike[str], *, sources_used: list[str] | None = None
                  ) -> None:
    """Save the mapping for review: JSON, or YAML when the file name ends in .yaml/.yml (atomic)."""
    doc = {
        "version": 1,
        "generated": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "sources": sources_used or ["WoRMS https://www.marinespecies.org (doi:10.14284/170)",
                                    "GBIF Backbone Taxonomy https://www.gbif.org"],
        "review": "Check entries with needs_review: true; edit scientific_name / accepted_aphia_id by hand if needed.",
        "classes": [m.to_dict() for m in matches],
    }
    p = Path(path)
    with atomic_write(p) as fh:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            yaml.safe_dump(doc, fh, sort_keys=False, allow_unicode=True)
        else:
            json.dump(doc, fh, indent=2, ensure_ascii=False)
            fh.write("\n")


def read_mapping(path: str | os.PathLike[str]) -> list[TaxonMatch]:
    """Load a mapping file written by :func:`write_mapping` (possibly edited by a curator)."""
    p = Path(path)
    try:
        text = p.read_text("utf-8")
    except OSError as exc:
        raise InputError(f"cannot read the mapping file: {exc.strerror}", file=p) from None
    try:
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            doc = yaml.safe_load(text)
        else:
            doc = json.loads(text)
    except Exception as exc:  # yaml and json raise different types
        raise InputError(f"not valid JSON/YAML: {exc}", file=p) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("classes"), list):
        raise InputError("expected an object with a 'classes' list", file=p, place="/classes")
    out = []
    known = {f for f in TaxonMatch.__dataclass_fields__}
    for i, c in enumerate(doc["classes"]):
        if not isinstance(c, dict) or "label" not in c:
            raise InputError("each class needs a 'label'", file=p, place=f"/classes/{i}")
        out.append(TaxonMatch(**{k: v for k, v in c.items() if k in known and k != "uri"}
                              | {"status": c.get("status", "matched")}))
    return out


__all__ += ["OfflineMiss"]
