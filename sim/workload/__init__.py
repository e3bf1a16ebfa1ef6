"""Workloads that drive the system: memory microbenchmarks now, decode traces later."""
