"""Metadata (DCAT-AP, schema.org, Croissant), SHACL validation, the FAIR check, the Zenodo client,
the local Zenodo-compatible repository and the ``imagine-publish`` command line."""
