"""The gates before a swap: a config of its type, that does not empty the current one."""

import contextlib
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncjob.errors import ContentRefused, ExitCode
from syncjob.validate import check

PROMETHEUS = b"""\
global:
  scrape_interval: 15s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]
"""
ALERTMANAGER = b"""\
route:
  receiver: team
receivers:
  - name: team
"""
RULES = b"""\
groups:
  - name: node
    rules:
      - alert: NodeDown
        expr: up == 0
      - alert: DiskFull
        expr: node_filesystem_avail_bytes == 0
"""


def refused(content: bytes, config_type: str, current: bytes | None = None) -> str:
    with pytest.raises(ContentRefused) as info:
        check(content, current, config_type, allow_empty=False)
    assert info.value.exit_code == ExitCode.REFUSED
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("content", "config_type"),
    [
        (PROMETHEUS, "prometheus"),
        (ALERTMANAGER, "alertmanager"),
        (RULES, "prometheus-rules"),
        (RULES, "vmalert"),
        (b"groups: []\n", "prometheus-rules"),  # AlertAgent with no rules: a valid empty set
        (b"{}", "prometheus"),
        (b"\xef\xbb\xbfglobal: {}\n", "prometheus"),  # a UTF-8 BOM
        ("global: {}\n# température ✓\n".encode(), "prometheus"),
    ],
)
def test_valid_configs_pass(content: bytes, config_type: str) -> None:
    check(content, None, config_type, allow_empty=False)


@pytest.mark.parametrize("content", [b"", b"   ", b"\n\n", b"\t \r\n"])
def test_empty_is_refused(content: bytes) -> None:
    assert refused(content, "prometheus") == "source served an empty config"


@pytest.mark.parametrize(
    "content",
    [
        b"global: [15s\n",
        b"global: a: b\n",
        b"global:\n\t- tab\n",
        b"a: 1\n---\nb: 2\n",  # two documents
        b"'unterminated\n",
        b"a: *undefined_alias\n",
        b"a: !!python/object/apply:os.system ['true']\n",  # never constructed
    ],
)
def test_invalid_yaml_is_refused_in_one_line(content: bytes) -> None:
    assert refused(content, "prometheus").startswith("source served invalid YAML: ")


@pytest.mark.parametrize("content", [b"a: 2001-13-45\n", b"a: !!int twelve\n"])
def test_values_are_never_constructed(content: bytes) -> None:
    # Typing values is the target's checker's job (promtool, amtool, or the reload):
    # the gate reads structure only, so a value it cannot type is not a crash.
    check(content, None, "prometheus", allow_empty=False)


@pytest.mark.parametrize(
    ("content", "got"),
    [
        (b"- a\n- b\n", "got a list"),
        (b"just text\n", "got a scalar"),
        (b"# only a comment\n", "got nothing"),
        (b"42\n", "got a scalar"),
        (b"true\n", "got a scalar"),
    ],
)
@pytest.mark.parametrize("config_type", ["prometheus", "alertmanager", "prometheus-rules"])
def test_not_a_mapping_is_refused(content: bytes, got: str, config_type: str) -> None:
    expected = f"the {config_type} config must be a YAML mapping, {got}"
    assert refused(content, config_type) == expected


@pytest.mark.parametrize(
    "content", [b"rules: []\n", b"groups: {}\n", b"groups:\n", b"groups: node\n", PROMETHEUS]
)
@pytest.mark.parametrize("config_type", ["prometheus-rules", "vmalert"])
def test_rules_without_a_groups_list_are_refused(content: bytes, config_type: str) -> None:
    assert refused(content, config_type) == f"the {config_type} file must have a `groups` list"


def test_groups_are_not_required_of_a_prometheus_config() -> None:
    check(b"global: {}\n", None, "prometheus", allow_empty=False)


def test_invalid_yaml_message_says_what_and_where() -> None:
    message = refused(b"global:\n  scrape_interval: 15s\n  labels: [a, b\n", "prometheus")
    assert "expected ',' or ']'" in message
    assert "line 4" in message


# The guard against an outage that serves an empty rule set or receiver list.


@pytest.mark.parametrize(
    ("config_type", "current", "new", "what", "count"),
    [
        ("prometheus-rules", RULES, b"groups: []\n", "rules", 2),
        ("vmalert", RULES, b"groups:\n  - name: node\n    rules: []\n", "rules", 2),
        ("prometheus-rules", RULES, b"groups:\n  - name: node\n", "rules", 2),
        (
            "alertmanager",
            ALERTMANAGER,
            b"route:\n  receiver: team\nreceivers: []\n",
            "receivers",
            1,
        ),
        ("alertmanager", ALERTMANAGER, b"route: {}\n", "receivers", 1),
    ],
)
def test_emptying_the_current_config_is_refused(
    config_type: str, current: bytes, new: bytes, what: str, count: int
) -> None:
    assert refused(new, config_type, current=current) == (
        f"the new config has no {what} but the current one has some: refused "
        "(ALLOW_EMPTY / --allow-empty accepts it)"
    )
    check(new, current, config_type, allow_empty=True)


@pytest.mark.parametrize(
    ("config_type", "current", "new"),
    [
        pytest.param("prometheus-rules", None, b"groups: []\n", id="first write"),
        pytest.param("prometheus-rules", b"groups: []\n", b"groups: []\n", id="already empty"),
        pytest.param("prometheus-rules", b"groups: [oops", b"groups: []\n", id="current broken"),
        pytest.param("prometheus-rules", b"- a list\n", b"groups: []\n", id="current not a map"),
        pytest.param("prometheus-rules", RULES, RULES.replace(b"DiskFull", b"DiskFilling"),
                     id="rules changed, not emptied"),
        pytest.param("prometheus", PROMETHEUS, b"global: {}\n", id="no guard for prometheus"),
        pytest.param("alertmanager", ALERTMANAGER, ALERTMANAGER + b"  - name: other\n",
                     id="a receiver added"),
    ],
)  # fmt: skip
def test_what_the_guard_lets_through(config_type: str, current: bytes | None, new: bytes) -> None:
    check(new, current, config_type, allow_empty=False)


@pytest.mark.parametrize("rules", [b"5", b"true"])
def test_rules_of_the_wrong_type_are_refused_not_a_crash(rules: bytes) -> None:
    new = b"groups:\n  - name: node\n    rules: " + rules + b"\n"
    refused(new, "prometheus-rules", current=RULES)


# Whatever the source serves, the gate answers: passed, or ContentRefused.


@given(content=st.binary(max_size=200), config_type=st.sampled_from(["prometheus", "vmalert"]))
def test_any_bytes_pass_or_are_refused(content: bytes, config_type: str) -> None:
    with contextlib.suppress(ContentRefused):  # anything else fails the test
        check(content, None, config_type, allow_empty=False)


# Without explicit tags and numbers: those crash today, see the two xfail tables.
yaml_ish = st.lists(
    st.sampled_from(["groups:", "- ", "  ", "rules:", "name: a", "[", "]", "{", "}", ":", "\n",
                     "receivers:", "&a", "*a", "'", '"', "#", "null", ",", "<<: "]),
    max_size=30,
).map("".join)  # fmt: skip


@given(content=yaml_ish, current=st.sampled_from([None, RULES, ALERTMANAGER]))
def test_any_yaml_ish_text_passes_or_is_refused(content: str, current: bytes | None) -> None:
    for config_type in ("prometheus-rules", "alertmanager"):
        with contextlib.suppress(ContentRefused):  # anything else fails the test
            check(content.encode(), current, config_type, allow_empty=False)


@pytest.mark.parametrize(
    "content", [b"a: !!int\n", b"a: !!float\n", b"a: !!bool maybe\n", b"a: !!timestamp x\n"]
)
def test_explicitly_tagged_garbage_is_not_a_crash(content: bytes) -> None:
    check(content, None, "prometheus", allow_empty=False)


# Deep nesting: run in a child process, since the failure is the interpreter dying.
NESTED = """
import sys
from syncjob.errors import ContentRefused
from syncjob.validate import check
depth = int(sys.argv[1])
try:
    check(b"a: " + b"[" * depth + b"]" * depth, None, "prometheus", allow_empty=False)
except ContentRefused as exc:
    print("refused:", exc)
else:
    print("passed")
"""


def _check_in_a_child(depth: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(NESTED), str(depth)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_moderate_nesting_is_fine() -> None:
    done = _check_in_a_child(100)
    assert (done.returncode, done.stdout) == (0, "passed\n")


def test_absurd_nesting_is_refused_not_a_segfault() -> None:
    done = _check_in_a_child(30_000)
    assert done.returncode == 0, f"child died: returncode {done.returncode}"
    assert done.stdout.startswith(("refused:", "passed"))
