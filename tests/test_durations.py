"""Go duration syntax, as SYNC_INTERVAL / HTTP_TIMEOUT / RETRY_BACKOFF are written."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncjob.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("2h30m15s", 9015.0),
        ("1m0.5s", 60.5),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("250us", 0.00025),
        ("250µs", 0.00025),  # U+00B5 MICRO SIGN
        ("1500000ns", 0.0015),
        ("1h1h", 7200.0),  # Go sums repeated units
        ("-5s", -5.0),  # Go accepts a sign; settings refuse negatives
        ("+5s", 5.0),
        (" 30s ", 30.0),
    ],
)
def test_parse_go_syntax(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "30",
        "1.5",
        "00",
        "s",
        "ms",
        "-",
        "+",
        ".s",
        "5 m",
        "1h 30m",
        "1h30",
        "5mins",
        "5sec",
        "1d",
        "30S",
        "1e3s",
        "abc",
        "thirty seconds",
        "1.5.5s",
        "0x10s",
    ],
)
def test_garbage_is_refused_with_the_text_and_the_syntax(text: str) -> None:
    with pytest.raises(ValueError, match=r"invalid duration .*use Go syntax: 500ms, 30s") as info:
        parse_duration(text)
    assert repr(text) in str(info.value)


@pytest.mark.parametrize("text", ["--5s", "+-5s", "-+5s", "++5s"])
def test_at_most_one_sign(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


def test_greek_mu_microseconds() -> None:
    assert parse_duration("250\u03bcs") == pytest.approx(0.00025)


def _go(h: int, m: int, s: int, ms: int) -> str:
    parts = [f"{n}{unit}" for n, unit in ((h, "h"), (m, "m"), (s, "s"), (ms, "ms")) if n]
    return "".join(parts) or "0"


components = st.integers(min_value=0, max_value=10_000)


@given(h=components, m=components, s=components, ms=components)
def test_go_string_parses_back_to_its_seconds(h: int, m: int, s: int, ms: int) -> None:
    expected = h * 3600 + m * 60 + s + ms / 1000
    assert math.isclose(parse_duration(_go(h, m, s, ms)), expected, rel_tol=1e-12, abs_tol=1e-9)


@given(st.integers(min_value=0, max_value=10**7))
def test_format_duration_parses_back(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (59, "59s"),
        (60, "1m0s"),
        (3600, "1h0m0s"),
        (9015, "2h30m15s"),
        (9015.9, "2h30m15s"),  # whole seconds: truncated, not rounded
        (100 * 3600 + 1, "100h0m1s"),  # no days: hours keep counting
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
