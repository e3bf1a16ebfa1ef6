"""Typed parameters: conversion, checks, unknown keys and key paths in every error."""

from dataclasses import dataclass

import pytest

from sim.core.errors import ConfigError
from sim.core.params import ParamSet, one_of, param, parse_override, positive
from sim.core.units import SIZE, TIME


@dataclass(frozen=True)
class Toy(ParamSet):
    tR: int = param("20us", TIME, "page read time", check=positive)
    page: int = param("16KiB", SIZE, "page size", check=positive)
    policy: str = param("open", str, "row policy", check=one_of("open", "closed"))
    refresh: bool = param(True, bool, "model refresh")

    def validate(self) -> None:
        if self.page > 10**9:
            raise ConfigError("expected page <= 1GB", where="page")


def test_defaults_and_strings_convert():
    p = Toy()
    assert (p.tR, p.page, p.policy, p.refresh) == (20_000_000, 16384, "open", True)
    assert Toy(tR="30us").tR == 30_000_000
    assert Toy.from_mapping({"refresh": "false"}).refresh is False


def test_unknown_key_names_file_key_and_choices():
    with pytest.raises(ConfigError) as info:
        Toy.from_mapping({"tRR": "1us"}, where="dev.toml: device.params")
    msg = str(info.value)
    assert msg.startswith("dev.toml: device.params.tRR: unknown parameter 'tRR'")
    assert "page, policy, refresh, tR" in msg


@pytest.mark.parametrize(
    ("data", "key", "expected"),
    [
        ({"tR": "-5us"}, "tR", "> 0"),
        ({"tR": "5 parsecs"}, "tR", "20us"),
        ({"page": 0}, "page", "> 0"),
        ({"policy": "lru"}, "policy", "'open', 'closed'"),
        ({"page": "2GB"}, "page", "page <= 1GB"),
        ({"refresh": "maybe"}, "refresh", "true or false"),
    ],
)
def test_bad_values_name_key_and_expected_form(data, key, expected):
    with pytest.raises(ConfigError) as info:
        Toy.from_mapping(data, where="sys.toml: mem")
    assert f"sys.toml: mem.{key}:" in str(info.value)
    assert expected in str(info.value)
    assert "\n" not in str(info.value)


def test_replace_and_as_dict_are_in_internal_units():
    p = Toy().replace({"tR": "1us"})
    assert p.as_dict() == {"tR": 1_000_000, "page": 16384, "policy": "open", "refresh": True}
    assert list(name for name, _, _ in Toy.specs()) == ["tR", "page", "policy", "refresh"]


def test_parse_override():
    assert parse_override("tR = 15us") == ("tR", "15us")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("tR")
