"""Credentials files: a regular file of a credential's size (through the links a
Kubernetes Secret is mounted with), anything else one line with exit 2 naming the file
and never its content; Basic passwords in any script, sent as UTF-8 in base64."""

import base64
import os
import stat
import time
from pathlib import Path

import pytest

from syncjob.errors import ExitCode, UsageError
from syncjob.transport import authorization
from tests.cli import pass_env, syncjob

SECRET = "tok-SECRET-credentials-81fe"


def secret_file(folder: Path, content: bytes, name: str = "token") -> Path:
    path = folder / name
    path.write_bytes(content)
    return path


def test_a_token_through_a_secret_volumes_links_is_read(tmp_path: Path) -> None:
    # What the kubelet mounts: token -> ..data/token, ..data -> ..2026_11_30_10_00_00.1
    real = tmp_path / "..2026_11_30_10_00_00.1"
    real.mkdir()
    secret_file(real, f"{SECRET}\n".encode())
    (tmp_path / "..data").symlink_to(real.name)
    (tmp_path / "token").symlink_to("..data/token")
    assert authorization(str(tmp_path / "token"), None, None) == f"Bearer {SECRET}"


@pytest.mark.parametrize(
    ("password", "sent"),
    [
        ("pässwörd", "pässwörd"),
        ("пароль-SECRET", "пароль-SECRET"),
        ("密码 with a space", "密码 with a space"),
        ("emoji-🔑", "emoji-🔑"),
    ],
)
def test_a_non_ascii_basic_password_is_sent_as_utf8_in_base64(
    tmp_path: Path, password: str, sent: str
) -> None:
    path = secret_file(tmp_path, f"syncer:{password}\n".encode())
    header = authorization(None, str(path), None)
    assert header is not None
    assert header.startswith("Basic ")
    assert base64.b64decode(header.removeprefix("Basic ")).decode() == f"syncer:{sent}"


@pytest.mark.parametrize(
    "password", ["pa\x00ss", "pa\x1bss", "pa\x7fss", "pa\x85ss", "pa\u2028ss", "two\rlines"]
)
def test_a_basic_password_with_a_control_character_or_line_break_is_refused(
    tmp_path: Path, password: str
) -> None:
    path = secret_file(tmp_path, f"syncer:{password}\n".encode())
    with pytest.raises(UsageError) as info:
        authorization(None, str(path), None)
    assert str(path) in str(info.value)
    assert password not in str(info.value)
    assert "syncer" not in str(info.value)


def test_a_non_ascii_bearer_token_is_still_refused(tmp_path: Path) -> None:
    path = secret_file(tmp_path, "tök-SECRET\n".encode())
    with pytest.raises(UsageError, match="characters a header cannot carry"):
        authorization(str(path), None, None)


def test_a_credentials_file_that_is_not_utf8_is_refused_naming_it(tmp_path: Path) -> None:
    path = secret_file(tmp_path, b"syncer:\xff\xfe-SECRET\n")
    with pytest.raises(UsageError, match=rf"{path}: not UTF-8 text"):
        authorization(None, str(path), None)


@pytest.mark.parametrize("size", [64 * 1024 + 1, 3 << 30], ids=["64 KiB + 1", "3 GiB sparse"])
def test_a_credentials_file_bigger_than_64_kib_is_refused_without_reading_it(
    tmp_path: Path, size: int
) -> None:
    path = tmp_path / "token"
    with path.open("wb") as f:
        f.truncate(size)  # a hole: no block written, so 3 GiB cost nothing on disk
    started = time.monotonic()
    with pytest.raises(UsageError) as info:
        authorization(str(path), None, None)
    assert time.monotonic() - started < 2
    assert str(info.value) == f"cannot read the credentials file {path}: it holds more than 64 KiB"


def test_a_credentials_file_that_is_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "token").mkdir()
    with pytest.raises(UsageError, match="is a directory, not a regular file"):
        authorization(str(tmp_path / "token"), None, None)


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _link_to_a_fifo(path: Path) -> None:
    os.mkfifo(path.with_name("fifo"))
    path.symlink_to("fifo")


def _zero_device(path: Path) -> None:
    path.symlink_to("/dev/zero")  # endless: read whole, it fills the memory


def _device(path: Path) -> None:
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero's numbers
    except PermissionError:
        pytest.skip("only root can make a device node")


KINDS = {
    "FIFO": (_fifo, "it is a FIFO, not a regular file"),
    "link to a FIFO": (_link_to_a_fifo, "it is a FIFO, not a regular file"),
    "link to /dev/zero": (_zero_device, "it is a character device, not a regular file"),
    "character device": (_device, "it is a character device, not a regular file"),
}


@pytest.mark.parametrize("setting", ["ALERTAGENT_TOKEN_FILE", "ALERTAGENT_BASIC_AUTH_FILE"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_credentials_file_that_is_no_regular_file_is_exit_2_at_once(
    fake_agent, tmp_path, setting, kind
):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    path = secrets / "credentials"
    make, said = KINDS[kind]
    make(path)
    config = tmp_path / "etc" / "prometheus.yml"
    config.parent.mkdir()
    started = time.monotonic()
    run = syncjob(env=pass_env(fake_agent.url, config, **{setting: str(path)}), timeout=20)
    assert time.monotonic() - started < 10  # a FIFO used to block the pass for ever
    assert run.code == ExitCode.USAGE, run.stderr
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert run.last["error"] == f"cannot read the credentials file {path}: {said}"
    assert fake_agent.requests == []
    assert not config.exists()


def test_a_pushgateway_token_fifo_neither_blocks_nor_changes_the_pass(fake_agent, tmp_path):
    token = tmp_path / "push-token"
    os.mkfifo(token)
    config = tmp_path / "etc" / "prometheus.yml"
    config.parent.mkdir()
    env = pass_env(
        fake_agent.url, config, CHECK_COMMAND="",
        PUSHGATEWAY_URL="http://127.0.0.1:9", PUSHGATEWAY_TOKEN_FILE=str(token),
    )  # fmt: skip
    started = time.monotonic()
    run = syncjob(env=env, timeout=20)
    assert time.monotonic() - started < 10
    assert run.code == ExitCode.OK, run.stderr
    warnings = [r["msg"] for r in run.records if r["level"] == "warning"]
    assert any(f"{token}: it is a FIFO" in w for w in warnings), run.stderr
