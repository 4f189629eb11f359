"""Validate a metadata folder written by ``describe``: JSON Schemas, SHACL (DCAT-AP 3.0.1 + aquatic
profile, with pyshacl), RDF round trip, and Croissant (``mlcroissant`` when installed).

Every problem is a :class:`~imagine.kernel.Finding` naming the file and the place in it (JSON
pointer, or focus node and property path for SHACL), so one run lists everything to fix.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from imagine.kernel import Finding, InputError, require

__all__ = ["ValidationResult", "validate_dir", "shacl_findings", "shapes_graph", "SHAPE_FILES"]

SHAPE_FILES = ("dcat-ap-3.0.1.ttl", "eu-vocabularies.ttl", "aquatic-profile.ttl")


@dataclass
class ValidationResult:
    """Findings of every check, and which checks ran."""

    folder: Path
    findings: list[Finding] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "ok": self.ok, "checks": self.checks,
                "findings": [f.to_dict() for f in self.findings]}


def _shape_text(name: str) -> str:
    return resources.files(__package__).joinpath("shapes", name).read_text("utf-8")


@cache
def shapes_graph() -> Any:
    """The bundled shapes (DCAT-AP 3.0.1 constraints, EU-table URI checks, aquatic profile) as one rdflib graph."""
    from rdflib import Graph

    g = Graph()
    for name in SHAPE_FILES:
        g.parse(data=_shape_text(name), format="turtle")
    return g


def shacl_findings(data: Any, *, file: str | None = None) -> list[Finding]:
    """pyshacl on an rdflib graph with the bundled shapes; one finding per result (Violation → error)."""
    pyshacl = require("pyshacl", "publish")
    from rdflib import Namespace

    sh = Namespace("http://www.w3.org/ns/shacl#")
    logging.getLogger("pyshacl").setLevel(logging.ERROR)
    _conforms, report, _text = pyshacl.validate(data, shacl_graph=shapes_graph(), inference="none",
                                                advanced=False, allow_warnings=True)
    out = []
    for res in report.subjects(predicate=None, object=sh.ValidationResult):
        sev = report.value(res, sh.resultSeverity)
        focus = report.value(res, sh.focusNode)
        path = report.value(res, sh.resultPath)
        msg = report.value(res, sh.resultMessage)
        severity = "error" if sev == sh.Violation else "warning" if sev == sh.Warning else "info"
        place = str(focus) + (f" {path.n3(data.namespace_manager)}" if path is not None else "")
        out.append(Finding("shacl", str(msg), severity, file=file, place=place))
    out.sort(key=lambda f: (f.severity != "error", f.place or ""))
    return out


def _json(path: Path, findings: list[Finding]) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        findings.append(Finding("missing-file", "file missing; run imagine-publish describe", file=str(path)))
    except json.JSONDecodeError as exc:
        findings.append(Finding("json", f"not valid JSON: {exc.msg}", file=str(path), place=f"line {exc.lineno}"))
    return None


def _schema_findings(doc: Any, schema: dict[str, Any], file: str) -> list[Finding]:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema)
    v = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return [Finding("schema", e.message, file=file,
                    place="/" + "/".join(str(p) for p in e.absolute_path)) for e in v.iter_errors(doc)]


def validate_dir(folder: str | os.PathLike[str], *, croissant: bool = True) -> ValidationResult:
    """Check every metadata file of ``folder`` (see module docstring)."""
    from rdflib import Graph

    d = Path(folder)
    if not d.is_dir():
        raise InputError("not a metadata folder (run imagine-publish describe first)", file=d)
    res = ValidationResult(d)
    f = res.findings
    zen = _json(d / "zenodo.json", f)
    if zen is not None:
        schema = json.loads(_shape_text("zenodo-metadata.schema.json"))
        f.extend(_schema_findings(zen, schema, str(d / "zenodo.json")))
        res.checks["zenodo.json"] = "json-schema"
    ttl = d / "dcat.ttl"
    g = Graph()
    try:
        g.parse(ttl, format="turtle")
        res.checks["dcat.ttl"] = "rdflib+shacl"
        f.extend(shacl_findings(g, file=str(ttl)))
    except FileNotFoundError:
        f.append(Finding("missing-file", "file missing; run imagine-publish describe", file=str(ttl)))
    except Exception as exc:  # rdflib raises several parser exception types
        f.append(Finding("rdf", f"not valid Turtle: {exc}", file=str(ttl)))
    jl = d / "dcat.jsonld"
    if jl.is_file():
        g2 = Graph()
        try:
            g2.parse(jl, format="json-ld")
            if len(g2) != len(g):
                f.append(Finding("rdf-roundtrip", f"dcat.jsonld has {len(g2)} triples, dcat.ttl {len(g)}",
                                 file=str(jl)))
            res.checks["dcat.jsonld"] = "rdflib"
        except Exception as exc:
            f.append(Finding("rdf", f"not valid JSON-LD: {exc}", file=str(jl)))
    else:
        f.append(Finding("missing-file", "file missing; run imagine-publish describe", file=str(jl)))
    sdo = _json(d / "schema-org.jsonld", f)
    if sdo is not None:
        for key in ("name", "description", "creator", "license", "datePublished"):
            if not sdo.get(key):
                f.append(Finding("schema-org", f"schema.org Dataset lacks {key!r}",
                                 "error" if key in ("name", "description") else "warning",
                                 file=str(d / "schema-org.jsonld"), place=f"/{key}"))
        res.checks["schema-org.jsonld"] = "required fields"
    cr = _json(d / "croissant.json", f)
    if cr is not None:
        for key in ("name", "description", "url", "creator", "datePublished", "license", "distribution",
                    "conformsTo"):
            if not cr.get(key):
                f.append(Finding("croissant", f"Croissant dataset lacks {key!r}", file=str(d / "croissant.json"),
                                 place=f"/{key}"))
        res.checks["croissant.json"] = "required fields"
        if croissant:
            f.extend(_mlcroissant(d / "croissant.json", res))
    if not (d / "README.md").is_file():
        f.append(Finding("missing-file", "dataset card missing", "warning", file=str(d / "README.md")))
    return res


def _mlcroissant(path: Path, res: ValidationResult) -> list[Finding]:
    """Run mlcroissant's own validation when it is installed (it is offline)."""
    try:
        import mlcroissant as mlc
    except ImportError:
        res.checks["mlcroissant"] = "not installed"
        return []
    logging.getLogger("absl").setLevel(logging.ERROR)
    res.checks["mlcroissant"] = getattr(mlc, "__version__", "installed")
    try:
        mlc.Dataset(jsonld=str(path))
    except Exception as exc:  # mlcroissant raises ValidationError and others
        return [Finding("mlcroissant", " ".join(str(exc).split())[:2000], file=str(path))]
    return []
