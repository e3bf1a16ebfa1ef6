"""Simulation core: root, component base, params and units, registry, RNG streams, errors."""
