"""Runners behind the commands: an end-to-end run (``run``), memory microbenchmarks (``membench``),
synthetic-traffic NoC runs (``noc``), single collectives (``collective``) and sweeps (``sweep``)."""
