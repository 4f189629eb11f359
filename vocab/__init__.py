"""Aquatic controlled vocabularies: bundled offline subsets, online look-ups and label mapping."""
