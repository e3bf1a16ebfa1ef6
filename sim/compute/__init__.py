"""Compute: the roofline compute die and near-memory / in-memory MAC units."""
