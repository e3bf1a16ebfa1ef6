"""Unit parsing: every accepted form converts to the internal unit exactly; bad forms say what's expected."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sim.core import units
from sim.core.units import UnitError


@pytest.mark.parametrize(
    ("text", "ps"),
    [
        ("20us", 20_000_000),
        ("1.5ns", 1500),
        ("3ms", 3_000_000_000),
        ("1s", 10**12),
        ("250ps", 250),
        (42, 42),
        ("0.5 us", 500_000),
    ],
)
def test_time_parses_to_integer_picoseconds(text, ps):
    assert units.parse_time(text) == ps
    assert isinstance(units.parse_time(text), int)


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("4KiB", 4096),
        ("4kB", 4000),
        ("512GB", 512 * 10**9),
        ("1GiB", 2**30),
        ("1024b", 128),
        ("16Kib", 2048),
        (64, 64),
    ],
)
def test_size_decimal_and_binary_prefixes(text, nbytes):
    assert units.parse_size(text) == nbytes


@pytest.mark.parametrize(
    ("text", "bps"),
    [("1.6TB/s", 1.6e12), ("6.4Gb/s", 0.8e9), ("819GB/s", 819e9), ("1GiB/s", 2**30), ("6400Mbps", 0.8e9)],
)
def test_bandwidth_bytes_and_bits(text, bps):
    assert units.parse_bandwidth(text) == pytest.approx(bps)


def test_frequency_energy_power_ratio():
    assert units.parse_frequency("1.6GHz") == pytest.approx(1.6e9)
    assert units.parse_energy("1.2nJ") == pytest.approx(1200.0)
    assert units.parse_power("350mW") == pytest.approx(0.35)
    assert units.parse_ratio("85%") == pytest.approx(0.85)
    assert units.parse_count("16") == 16


@pytest.mark.parametrize(
    ("parser", "text", "expected_form"),
    [
        (units.parse_time, "20uss", "20us"),
        (units.parse_size, "4KIB", "4KiB"),
        (units.parse_bandwidth, "1.6TB", "1.6TB/s"),
        (units.parse_time, "fast", "20us"),
        (units.parse_size, "1.5B", "whole number of bytes"),
        (units.parse_count, 2.5, "whole number"),
        (units.parse_time, True, "20us"),
        (units.parse_time, float("nan"), "finite"),
    ],
)
def test_bad_units_name_the_expected_form(parser, text, expected_form):
    with pytest.raises(UnitError, match="expected") as info:
        parser(text)
    assert expected_form in str(info.value)


@given(st.integers(min_value=0, max_value=10**15))
def test_time_round_trip_through_ns_string(ps):
    # ps -> "X ns" -> ps is exact whenever ps is a whole number of ns
    ns = ps // 1000
    assert units.parse_time(f"{ns}ns") == ns * 1000


def test_transfer_never_faster_than_peak():
    assert units.transfer_ps(64, 64e9) == 1000
    assert units.transfer_ps(1, 3e9) == 334  # 333.3 ps rounds up
    assert units.cycles_to_ps(4, 1e9) == 4000
