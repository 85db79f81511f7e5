"""The state file: round trip, schema, and a fresh start (with a warning) when it is unusable."""

import copy
import json
import logging
import os
import stat
import tracemalloc
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncjob.errors import ExitCode, WriteFailed
from syncjob.state import (
    MAX_BYTES,
    SCHEMA_VERSION,
    Counts,
    State,
    from_json,
    load,
    save,
    to_json,
)

SCHEMA = json.loads(resources.files("syncjob").joinpath("schemas/state.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

A_STATE = State(
    applied_hash=SHA,
    source_hash=SHA,
    version="v1.0.0",
    etag='"9f86d0"',
    pending_reload=True,
    rejected_hash=None,
    last_attempt=1700000000.25,
    last_success=1700000000,
    last_change=1699999999.5,
    last_error="target rejected the config (HTTP 500: failed to reload config)",
    last_exit_code=76,
    consecutive_failures=2,
    counts=Counts(runs=10, successes=8, failures=2, changes=3, reloads=3, rollbacks=1),
)


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


@pytest.mark.parametrize("state", [State(), A_STATE], ids=["fresh", "full"])
def test_round_trip(state: State) -> None:
    assert from_json(to_json(state)) == state
    assert from_json(json.loads(json.dumps(to_json(state)))) == state
    VALIDATOR.validate(to_json(state))


def test_save_then_load(tmp_path: Path) -> None:
    path = tmp_path / ".prometheus.yml.syncjob.json"
    save(path, A_STATE)
    assert load(path) == A_STATE
    document = json.loads(path.read_bytes())
    VALIDATOR.validate(document)
    assert document["schema_version"] == SCHEMA_VERSION == 1
    assert path.read_bytes().endswith(b"}\n")


def test_count_adds_up() -> None:
    state = State().count(runs=1, failures=1).count(runs=1, successes=1, changes=1)
    assert state.counts == Counts(runs=2, successes=1, failures=1, changes=1)
    assert state.count(reloads=2).counts.reloads == 2


texts = st.none() | st.text(max_size=80)
times = st.none() | st.integers(min_value=0, max_value=2**40) | st.floats(0, 2e10)
counts = st.integers(min_value=0, max_value=2**53)
states = st.builds(
    State,
    applied_hash=texts,
    source_hash=texts,
    version=texts,
    etag=texts,
    pending_reload=st.booleans(),
    rejected_hash=texts,
    last_attempt=times,
    last_success=times,
    last_change=times,
    last_error=texts,
    last_exit_code=st.none() | st.sampled_from([0, 1, 2, 65, 69, 73, 75, 76, 77]),
    consecutive_failures=counts,
    counts=st.builds(Counts, **dict.fromkeys(Counts.__dataclass_fields__, counts)),
)


@given(states)
def test_every_state_written_validates_and_reads_back(state: State) -> None:
    written = json.loads(json.dumps(to_json(state), indent=2))  # what save() puts on disk
    assert list(VALIDATOR.iter_errors(written)) == []
    assert from_json(written) == state


def test_missing_file_is_a_fresh_state(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert load(tmp_path / "absent.json") == State()
    assert caplog.records == []


def _document(**changes: Any) -> bytes:
    return json.dumps({**to_json(A_STATE), **changes}).encode()


@pytest.mark.parametrize(
    ("content", "why"),
    [
        pytest.param(b"", "Expecting value", id="empty"),
        pytest.param(b'{"schema_version": 1, "applied_hash": ', "Expecting value", id="truncated"),
        pytest.param(b'{"applied_hash": "\x80"}', "can't decode byte 0x80", id="non-UTF-8"),
        pytest.param(b"\xff\xfe\xfa\x80", "line 1 column 1", id="binary garbage"),
        pytest.param(b"[]", "not a JSON object", id="a list"),
        pytest.param(b"null", "not a JSON object", id="null"),
        pytest.param(_document(schema_version=2), "schema_version is 2, not 1", id="newer schema"),
        pytest.param(_document(schema_version=None), "schema_version is None", id="no schema"),
        pytest.param(_document(pending_reload="yes"), "pending_reload", id="string for bool"),
        pytest.param(_document(applied_hash=42), "applied_hash", id="number for string"),
        pytest.param(_document(last_attempt="yesterday"), "last_attempt", id="string for time"),
        pytest.param(_document(last_exit_code=True), "last_exit_code", id="bool for int"),
        pytest.param(_document(consecutive_failures=-1), "below 0", id="negative failures"),
        pytest.param(_document(counts=[]), "counts: not an object", id="counts a list"),
        pytest.param(
            _document(counts={"runs": 1}), "counts.successes: missing", id="counts incomplete"
        ),
        pytest.param(
            _document(counts={**to_json(A_STATE)["counts"], "runs": -3}),
            "counts.runs: -3 is below 0",
            id="negative count",
        ),
    ],
)
def test_unusable_file_is_a_fresh_state_and_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: bytes, why: str
) -> None:
    path = tmp_path / ".prometheus.yml.syncjob.json"
    path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="syncjob.state"):
        assert load(path) == State()
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert str(path) in record.getMessage()
    assert "unusable" in record.getMessage()
    assert why in record.getMessage()
    assert path.read_bytes() == content  # left for a person to look at; the next save replaces it


@pytest.mark.parametrize("kind", ["directory", "link", "FIFO"])
def test_what_is_no_regular_file_is_refused_not_read(tmp_path: Path, kind: str) -> None:
    # A directory used to be a fresh state, and the pass failed at its end, when saving.
    path, secret = tmp_path / "state.json", tmp_path / "secret"
    secret.write_bytes(json.dumps(to_json(A_STATE)).encode())
    if kind == "directory":
        path.mkdir()
    elif kind == "link":
        path.symlink_to(secret)
    else:
        os.mkfifo(path)
    with pytest.raises(WriteFailed) as info:
        load(path)  # a FIFO: at once, never waiting for a writer
    assert str(info.value).startswith(f"{path} is a ")
    assert info.value.exit_code == ExitCode.CANT_WRITE


def test_a_huge_sparse_state_file_is_unusable_and_never_read_whole(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.json"
    with path.open("wb") as f:
        f.truncate(64 << 20)  # a hole: 64 MiB of zeros that cost no disk
    tracemalloc.start()
    try:
        with caplog.at_level(logging.WARNING, logger="syncjob.state"):
            assert load(path) == State()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_BYTES
    assert "unusable" in caplog.text
    assert "larger than" in caplog.text


def test_the_state_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / ".prometheus.yml.syncjob.json"
    path.write_bytes(b"{}")
    path.chmod(0o664)  # as the old rule left it: the config's mode, less world-writable
    save(path, A_STATE)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load(path) == A_STATE


def test_deeply_nested_corruption_is_a_fresh_state(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(b"[" * 100_000)
    assert load(path) == State()


# The strict loader never accepts what the schema rejects.

VALID = to_json(A_STATE)
FIELDS = [k for k in VALID if k != "counts"] + [("counts", k) for k in VALID["counts"]]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=2) | st.dictionaries(st.text(max_size=5), children, max_size=2)
    ),
    max_leaves=4,
)


def _mutate(doc: dict[str, Any], where: str | tuple[str, str], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    parent, key = (doc, where) if isinstance(where, str) else (doc[where[0]], where[1])
    if value is DROP:
        parent.pop(key, None)
    else:
        parent[key] = value
    return doc


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()
mutations = st.lists(
    st.tuples(
        st.sampled_from(FIELDS),
        st.just(DROP)
        | st.sampled_from([True, False, 0, 1, 1.0, -1, -0.5, "", "1", None, [], {}])
        | st.integers(max_value=-1)
        | json_values,
    ),
    min_size=1,
    max_size=3,
)


@given(mutations)
def test_whatever_the_schema_rejects_the_loader_rejects(changes: list[tuple[Any, Any]]) -> None:
    doc: Any = VALID
    for where, value in changes:
        if isinstance(where, tuple) and not isinstance(doc.get("counts"), dict):
            continue
        doc = _mutate(doc, where, value)
    if VALIDATOR.is_valid(doc):
        return
    with pytest.raises(ValueError, match=r"\S"):
        from_json(doc)


@pytest.mark.parametrize("value", [0, 2, "1", None, False, 1.5, [1]])
def test_schema_version_other_than_1_is_rejected(value: Any) -> None:
    doc = {**VALID, "schema_version": value}
    assert not VALIDATOR.is_valid(doc)
    with pytest.raises(ValueError, match="schema_version"):
        from_json(doc)


def test_schema_version_true_is_rejected() -> None:
    doc = {**VALID, "schema_version": True}
    assert not VALIDATOR.is_valid(doc)
    with pytest.raises(ValueError, match="schema_version"):
        from_json(doc)


def test_unknown_fields_are_ignored_like_the_schema_does() -> None:
    doc = {**VALID, "written_by": "syncjob 9.9", "counts": {**VALID["counts"], "pushes": 1}}
    assert VALIDATOR.is_valid(doc)
    assert from_json(doc) == A_STATE
