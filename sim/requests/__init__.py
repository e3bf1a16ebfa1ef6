"""Inputs: inference requests. The record (``record``), request-trace readers for Azure, Splitwise,
Mooncake and length-only traces (``readers``) and synthetic arrival processes (``synthetic``)."""
