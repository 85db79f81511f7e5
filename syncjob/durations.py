"""Go duration syntax (`500ms`, `30s`, `1h30m`), as the original's settings used it."""

import re

# Go accepts both micro signs: U+00B5 MICRO SIGN and U+03BC GREEK SMALL LETTER MU.
_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0,
          "m": 60.0, "h": 3600.0}  # fmt: skip
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Seconds in a Go duration string; raises ValueError with the offending text."""
    s = text.strip()
    sign = -1.0 if s.startswith("-") else 1.0
    if s.startswith(("+", "-")):  # one sign at most, as in Go
        s = s[1:]
    if s == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(s):
        match = _PART.match(s, pos)
        if match is None:
            raise ValueError(f"invalid duration {text!r} (use Go syntax: 500ms, 30s, 5m, 1h30m)")
        total += float(match[1]) * _UNITS[match[2]]
        pos = match.end()
    if pos == 0:
        raise ValueError(f"invalid duration {text!r} (use Go syntax: 500ms, 30s, 5m, 1h30m)")
    return sign * total


def format_duration(seconds: float) -> str:
    """`2h30m15s`, the seed's uptime format: whole seconds, largest units first."""
    rest = int(seconds)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
    return f"{out}{secs}s"
