"""Everything before publishing: the dataset model, formats, geometry, validation, statistics,
deduplication, consensus, splits, audits and the ``imagine-curate`` command line."""

from .formats import convert, detect_format, read_dataset, write_dataset
from .model import Dataset

__all__ = ["Dataset", "convert", "detect_format", "read_dataset", "write_dataset"]
