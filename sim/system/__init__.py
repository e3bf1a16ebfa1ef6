"""Systems: chips (compute die, memories, near-memory units) on a fabric, from TOML."""
