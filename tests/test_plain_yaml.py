"""The scan that lets a plain document skip the event walk never clears one the walk
would refuse: `check` gives the same verdict, word for word, with the scan and without.
"""

import io
import textwrap
import time
from typing import Any, BinaryIO

import pytest
import yaml
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from syncjob import plain_yaml, validate
from syncjob.errors import ContentRefused

TYPES = ("prometheus-rules", "alertmanager", "prometheus")
CURRENT = {
    "prometheus-rules": b"groups:\n  - name: a\n    rules:\n      - alert: A\n        expr: up\n",
    "alertmanager": b"route: {receiver: a}\nreceivers:\n  - name: a\n",
    "prometheus": b"global: {}\n",
}


def verdict(content: bytes | BinaryIO, config_type: str, current: bytes | None) -> str:
    try:
        validate.check(content, current, config_type, allow_empty=False)
    except ContentRefused as exc:
        return str(exc)
    return "accepted"


def both_ways(content: bytes, config_type: str, current: bytes | None) -> tuple[str, str]:
    """`check` as it runs, and `check` with every document sent the slow way."""
    fast = verdict(content, config_type, current)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plain_yaml, "is_plain", lambda content: False)
        slow = verdict(content, config_type, current)
    return fast, slow


# Pieces of YAML syntax, the ones the scan looks for and the ones it must see past.
PIECES = [
    b"\n", b"  ", b" ", b"\t", b"- ", b"? ", b": ", b":", b",", b"a", b"1", b"groups",
    b"rules", b"receivers", b"name", b"[", b"]", b"{", b"}", b"&x ", b"*x", b"&x", b"!t ",
    b"!!str ", b"!", b"*", b"&", b"---", b"...", b"%YAML 1.1\n", b'"', b"'", b"\\", b"#",
    b"|\n", b">-\n", b"\r", b"\r\n", b"\xc2\x85", b"\xe2\x80\xa8", b"\xef\xbb\xbf", b"\xff",
    b"\xc3\xa9", b"up{job=\"a\"}[5m]", b"x * 2", b"a != b", b"{{ $labels.x }}", b"-",
    b"groups:\n", b"  - name: g\n", b"    rules:\n", b"      - alert: A\n", b"receivers:\n",
]  # fmt: skip
piece_soup = st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join)

scalars = st.one_of(
    st.sampled_from(["a", "groups", "rules", "receivers", "x * y", "a: b", "- c", "[d]", "{e}",
                     "&f", "*g", "!h", "? i", "# j", "---", "...", "%k", "l\nm", ""]),
    st.integers(), st.booleans(), st.none(), st.text(max_size=8),
)  # fmt: skip
keys = st.sampled_from(["groups", "rules", "receivers", "name", "alert", "expr", "a", "b"])
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(keys, inner, max_size=3),
    ),
    max_leaves=25,
)


@st.composite
def dumped(draw: st.DrawFn) -> bytes:
    """Valid YAML in the styles emitters produce, sometimes with anchors and aliases."""
    tree = draw(trees)
    if draw(st.booleans()):
        tree = {"groups": [{"name": "g", "rules": [tree, tree]}]}  # a shared node: an alias
    text = yaml.dump(
        tree,
        default_flow_style=draw(st.sampled_from([False, True, None])),
        indent=draw(st.integers(2, 9)),
        width=draw(st.sampled_from([20, 80, 10_000])),
        allow_unicode=draw(st.booleans()),
        explicit_start=draw(st.booleans()),
        sort_keys=False,
    )
    return text.encode()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid document with a few pieces cut in or out."""
    content = draw(dumped())
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(content)))
        if draw(st.booleans()):
            content = content[:at] + draw(st.sampled_from(PIECES)) + content[at:]
        else:
            content = content[:at] + content[at + draw(st.integers(1, 4)) :]
    return content


def nested(depth: int, *, flow: bool, step: int = 2) -> bytes:
    if flow:
        return b"a: " + b"[" * depth + b"]" * depth + b"\n"
    lines = [b" " * (step * i) + b"k:\n" for i in range(depth)]
    return b"".join(lines) + b" " * step * depth + b"v\n"


SAME = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SAME
@given(content=st.one_of(piece_soup, dumped(), mutated()), config_type=st.sampled_from(TYPES),
       with_current=st.booleans())  # fmt: skip
@example(b"groups:\n- &a {rules: [x]}\n- *a\n", "prometheus-rules", True)
@example(b"groups:\n  - name: a\n    rules: []\n---\nb: 1\n", "prometheus-rules", False)
@example(b"[a, b]: c\ngroups: []\n", "prometheus-rules", False)
@example(b"? [a]\n: b\n", "prometheus", False)
@example(b"[]groups:\n", "prometheus-rules", False)
@example(b"{ #}\n[a]}\n", "prometheus", False)  # a comment hid the collection's closing
@example(b"x: [ #]\n" + b" [ #]\n" * 250 + b" " + b"]" * 251 + b"\n", "prometheus", False)
@example(b"x: { #}\n [a]\n : b}\n", "prometheus", False)
@example(b"groups:\n  '*':\n    rules: [x]\ngroups: []\n", "prometheus-rules", False)
@example(b"a: !!python/object:os.system x\n", "prometheus", False)
@example(b"groups: []\nreceivers:\n  - x\n", "prometheus-rules", True)
@example(nested(150, flow=False), "prometheus", False)
@example(nested(150, flow=True), "prometheus", False)
@example(b"a: 1\r---\rb: 2\r", "prometheus", False)
@example(b"a: 1\xc2\x85---\xc2\x85b: 2\n", "prometheus", False)
@example(b"\xef\xbb\xbfa: 1\n\xef\xbb\xbf---\nb: 2\n", "prometheus", False)
def test_the_fast_way_gives_the_walks_verdict(
    content: bytes, config_type: str, with_current: bool
) -> None:
    fast, slow = both_ways(content, config_type, CURRENT[config_type] if with_current else None)
    event("plain" if plain_yaml.is_plain(content) else "walked")
    assert fast == slow


def test_a_rules_file_as_rendered_is_plain() -> None:
    rules = textwrap.dedent("""\
        groups:
          - name: api
            rules:
              - alert: HighErrorRate
                expr: sum(rate(http_requests_total{job="api",code=~"5.."}[5m])) by (instance) > 0.05
                for: 10m
                labels: {severity: critical, team: platform}
                annotations:
                  summary: "High error rate on {{ $labels.instance }}"
                  description: 'x != y * 2, see https://runbooks/x?a=b#c'
              - record: job:requests:rate5m
                expr: sum by (job) (rate(requests_total{code!~"2.."}[5m])) * 100
        """).encode()  # fmt: skip
    assert plain_yaml.is_plain(rules)
    assert plain_yaml.is_plain(b"---\n" + rules)
    assert plain_yaml.is_plain(rules.replace(b"\n", b"\r\n"))
    assert plain_yaml.is_plain(rules.replace(b"High", "Hohe Fehlerquote é 高".encode()))


@pytest.mark.parametrize(
    "content",
    [
        b"a: &x 1\nb: *x\n",  # anchors and aliases: the walk counts their expansion
        b"a: !custom 1\n",  # tags
        b"%YAML 1.1\n---\na: 1\n",  # directives
        b"a: 1\n---\nb: 2\n",  # a second document
        b"a: 1\n...\n",
        b"? [a, b]\n: c\n",  # a collection as a key
        b"[a, b]: c\n",
        b"a: [[b]]\n",  # nested flow
        b"a: {b: 'c'}\n",  # a quote inside a flow collection
        b"a: [b,\n  c]\n",  # a flow collection over two lines
        b"a: [b, # c]\n  d]\n",  # ... whose first line seems to close it, in a comment
        nested(70, flow=False, step=1),  # deeper than plain nesting allows
        b"a: 1\xe2\x80\xa8b: 2\n",  # a line break only libyaml knows
        b"\xff\xfea\x00:\x00",  # UTF-16
        b"a: " + b"x" * (2 << 20) + b"\n",  # a line longer than the scan's block
    ],
)
def test_what_the_scan_leaves_to_the_walk(content: bytes) -> None:
    assert not plain_yaml.is_plain(content)


def test_plain_nesting_stays_within_the_walks_limit() -> None:
    assert plain_yaml.MAX_NESTING <= validate.MAX_DEPTH
    deepest_plain = nested(plain_yaml.MAX_RUN - 1, flow=False, step=1)
    assert plain_yaml.is_plain(deepest_plain)
    validate.read_shape(deepest_plain)  # the walk agrees: not too deep


@SAME
@given(content=st.one_of(dumped(), mutated()), block=st.integers(1, 64))
def test_reading_in_blocks_changes_nothing_but_long_lines(content: bytes, block: int) -> None:
    whole = plain_yaml.is_plain(content)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plain_yaml, "_BLOCK", block)
        in_blocks = plain_yaml.is_plain(io.BytesIO(content))
    longest = max(len(line) + 1 for line in content.split(b"\n"))
    assert in_blocks == whole or (not in_blocks and longest > block)


def test_a_file_is_judged_like_its_bytes(tmp_path: Any) -> None:
    """The pass hands `check` an open file: read in blocks, rewound between its readers."""
    rules = b"groups:\n" + b"".join(
        b"  - name: g%d\n    rules:\n      - alert: A\n        expr: up == 0\n" % i
        for i in range(40_000)
    )
    path = tmp_path / "rules.yml"
    verdicts = []
    for content in (rules, rules + b"  - broken: a: b\n"):
        assert plain_yaml.is_plain(content)  # both go the fast way
        path.write_bytes(content)
        with path.open("rb") as f:
            verdicts.append(verdict(f, "prometheus-rules", None))
        assert verdicts[-1] == verdict(content, "prometheus-rules", None)
    assert verdicts[0] == "accepted"
    assert verdicts[1].endswith("not allowed in this context at line 160002, column 14")


@pytest.mark.parametrize(
    "line",
    [
        b"a: x" + b"]" * 200_000,  # every `]` might close a collection that is a key
        b"expr: " + b'rate(x{job="a"}[5m]) + ' * 10_000 + b"1",  # a generated expression
        b"- [- [- [" * 30_000,  # every `[` might open a collection
        b"- &a " * 50_000,
    ],
)
def test_the_scan_takes_time_in_proportion_to_the_line(line: bytes) -> None:
    """Long lines of what the patterns look for: a search that went back over the line for
    each of them would take minutes here (it took 17 s for 64,000 `]`)."""
    started = time.monotonic()
    plain_yaml.is_plain(line + b"\n")
    assert time.monotonic() - started < 2.0
