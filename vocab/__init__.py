"""Aquatic controlled vocabularies: bundled offline subsets, online look-ups and label mapping.

* :mod:`.bundle` — NVS, EDMO, OSO, EU authority tables, SPDX, IANA and a WoRMS subset, offline;
* :mod:`.http` — the one HTTP layer (rate limit, retries, disk cache, offline mode);
* :mod:`.services` — WoRMS, GBIF and NVS clients;
* :mod:`.taxa` — class label → taxon mapping and its reviewable mapping file.
"""

from .bundle import Concept, Licence, concept, licence, media_type, resolve, sources
from .http import HttpClient, OfflineMiss
from .taxa import TaxonMatch, is_non_taxon, match_labels, read_mapping, write_mapping

__all__ = ["Concept", "Licence", "concept", "licence", "media_type", "resolve", "sources", "HttpClient",
           "OfflineMiss", "TaxonMatch", "is_non_taxon", "match_labels", "read_mapping", "write_mapping"]
