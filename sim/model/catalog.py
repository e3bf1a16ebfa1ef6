"""The models memwall knows by name, and where their configs live in the package data.

Each known model is a Hugging Face ``config.json`` (or a table of ``architectures.toml`` keyed like
one) under ``sim/data/models/``; see the SOURCES.md there for origins and licences. Entries are
registered under kind ``model`` so ``memwall describe model`` lists them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from sim.core.registry import register


def data_dir() -> Path:
    """The directory holding the shipped model configs (``sim/data/models``)."""
    return Path(str(files("sim"))) / "data" / "models"


@dataclass(frozen=True)
class CatalogEntry:
    """A known model: its config file in the package data, and the table key inside a TOML file."""

    name: str
    file: str
    key: str | None
    hf_id: str
    description: str

    def path(self) -> Path:
        return data_dir() / self.file


CATALOG = (
    CatalogEntry(
        "llama-2-70b", "architectures.toml", "llama-2-70b", "meta-llama/Llama-2-70b-hf", "dense, GQA 64/8"
    ),
    CatalogEntry(
        "llama-3.1-8b", "architectures.toml", "llama-3.1-8b", "meta-llama/Llama-3.1-8B", "dense, GQA 32/8"
    ),
    CatalogEntry(
        "llama-3.1-70b", "architectures.toml", "llama-3.1-70b", "meta-llama/Llama-3.1-70B", "dense, GQA 64/8"
    ),
    CatalogEntry(
        "llama-3.1-405b",
        "architectures.toml",
        "llama-3.1-405b",
        "meta-llama/Llama-3.1-405B",
        "dense, GQA 128/8",
    ),
    CatalogEntry(
        "deepseek-v3",
        "architectures.toml",
        "deepseek-v3",
        "deepseek-ai/DeepSeek-V3",
        "MLA + MoE: 3 dense layers, then 256 routed experts top-8 + 1 shared",
    ),
    CatalogEntry(
        "mixtral-8x7b",
        "Mixtral-8x7B-v0.1.json",
        None,
        "mistralai/Mixtral-8x7B-v0.1",
        "MoE: 8 experts top-2, GQA 32/8",
    ),
    CatalogEntry(
        "qwen3-30b-a3b",
        "Qwen3-30B-A3B-Instruct-2507.json",
        None,
        "Qwen/Qwen3-30B-A3B-Instruct-2507",
        "MoE: 128 experts top-8, GQA 32/4, q/k norms",
    ),
    CatalogEntry(
        "qwen3-32b", "Qwen3-32B.json", None, "Qwen/Qwen3-32B", "dense, GQA 64/8, head_dim 128, q/k norms"
    ),
    CatalogEntry(
        "gpt-oss-120b",
        "gpt-oss-120b.json",
        None,
        "openai/gpt-oss-120b",
        "MoE: 128 experts top-4; alternating sliding-window (128) and full attention; MXFP4 experts",
    ),
)

for _entry in CATALOG:
    register("model", _entry.name)(_entry)

_BY_NAME = {e.name: e for e in CATALOG} | {e.hf_id.lower(): e for e in CATALOG}


def known_names() -> list[str]:
    return [e.name for e in CATALOG]


def find_entry(name: str) -> CatalogEntry | None:
    """The entry for a memwall name or a Hugging Face id (case-insensitive), else None."""
    return _BY_NAME.get(name.strip().lower())
