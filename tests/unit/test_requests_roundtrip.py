"""Write random requests in each trace format, read them back: the same requests (hypothesis)."""

from __future__ import annotations

import gzip
import json
from datetime import datetime, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sim.requests.readers import read_trace
from sim.requests.record import Request

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@st.composite
def traces(draw: st.DrawFn, step_ps: int) -> list[Request]:
    """Requests whose arrivals are whole multiples of ``step_ps`` (the format's resolution)."""
    n = draw(st.integers(1, 30))
    t = 0
    out = []
    for i in range(n):
        if i:
            t += draw(st.integers(0, 10**6)) * step_ps
        hashes = tuple(draw(st.lists(st.integers(0, 10**6), max_size=4)))
        out.append(
            Request(
                i, t, draw(st.integers(1, 10**5)), draw(st.integers(1, 5000)), hashes, 512 if hashes else 0
            )
        )
    return out


def write(path: Path, text: str, zipped: bool) -> Path:
    if zipped:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def plain(reqs: list[Request]) -> list[Request]:
    return [Request(r.id, r.arrival_ps, r.prompt_tokens, r.output_tokens) for r in reqs]


@SETTINGS
@given(traces(step_ps=100_000), st.integers(0, 10**9), st.booleans())
def test_azure_roundtrip_across_day_and_year_boundaries(tmp_path, reqs, origin_s, zipped):
    origin = datetime(2023, 12, 31, 23, 0, 0) + timedelta(seconds=origin_s % 7200)
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for r in reqs:
        ticks = r.arrival_ps // 100_000  # 100 ns units, as the Azure files give 7 digits
        stamp = origin + timedelta(microseconds=ticks // 10)
        text = stamp.strftime("%Y-%m-%d %H:%M:%S") + f".{stamp.microsecond:06d}{ticks % 10}"
        lines.append(f"{text},{r.prompt_tokens},{r.output_tokens}")
    path = write(tmp_path / "a.csv", "\r\n".join(lines), zipped)
    assert read_trace(path) == plain(reqs)


@SETTINGS
@given(traces(step_ps=1_000_000), st.integers(0, 10**6), st.booleans())
def test_splitwise_roundtrip(tmp_path, reqs, origin_us, zipped):
    lines = ["arrived_at,num_prefill_tokens,num_decode_tokens"]
    for r in reqs:
        us = origin_us + r.arrival_ps // 1_000_000
        lines.append(f"{us // 10**6}.{us % 10**6:06d},{r.prompt_tokens},{r.output_tokens}")
    path = write(tmp_path / "s.csv", "\n".join(lines) + "\n", zipped)
    assert read_trace(path) == plain(reqs)


@SETTINGS
@given(traces(step_ps=10**9), st.integers(0, 10**9), st.booleans())
def test_mooncake_roundtrip(tmp_path, reqs, origin_ms, zipped):
    lines = []
    for r in reqs:
        obj = {
            "timestamp": origin_ms + r.arrival_ps // 10**9,
            "input_length": r.prompt_tokens,
            "output_length": r.output_tokens,
        }
        if r.prefix_hash_ids:
            obj["hash_ids"] = list(r.prefix_hash_ids)
        lines.append(json.dumps(obj))
    path = write(tmp_path / "m.jsonl", "\n".join(lines) + "\n", zipped)
    assert read_trace(path) == reqs
