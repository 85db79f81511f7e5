"""RELOAD_COMMAND: reload a target that has no HTTP reload endpoint, by running a command.

Debian's Prometheus, and most distributions', runs without --web.enable-lifecycle, so
POST /-/reload answers 403; its systemd unit reloads with SIGHUP (`systemctl reload
prometheus`). The command only triggers the reload: whether it took is still read from
the target's metrics (target.py), as after a POST.

The command is an argv (split like a shell would, but no shell runs it), bounded like the
request it replaces: it is killed, with everything it started, after `timeout` seconds,
and only the first OUTPUT_LIMIT bytes of its output are kept. A command that cannot start,
fails or hangs is reported as an unreachable target: exit 75, the reload stays pending.
"""

import contextlib
import os
import selectors
import shlex
import signal
import subprocess
import time

from syncjob.errors import TargetUnreachable
from syncjob.settings import TOKEN_ENV

OUTPUT_LIMIT = 4096  # bytes of output kept for the message
SAID_LIMIT = 500  # characters of it in the one-line message
_READ = 65536


def run(command: str, timeout: float) -> None:
    """Run `command`; TargetUnreachable, with its own words, unless it exits 0 in time."""
    argv = shlex.split(command)
    # The AlertAgent token is syncjob's secret, never the reload command's.
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its own process group: a timeout kills all of it
        )
    except OSError as exc:
        raise TargetUnreachable(
            f"reload command cannot start: {argv[0]}: {exc.strerror} (RELOAD_COMMAND)"
        ) from None
    output, finished = _collect(proc, time.monotonic() + timeout)
    said = _said(output)
    if not finished:
        raise TargetUnreachable(
            f"reload command gave no answer within {timeout:g}s and was killed: {command}{said}"
        )
    if proc.returncode != 0:
        raise TargetUnreachable(f"reload command failed (exit {proc.returncode}): {command}{said}")


def _collect(proc: "subprocess.Popen[bytes]", deadline: float) -> tuple[bytes, bool]:
    """The first OUTPUT_LIMIT bytes of output, and whether it exited before `deadline`.

    Reads until the command exits, not until its output closes: a daemon it leaves
    behind may hold the pipe open for good. Past the limit, output is read and dropped,
    so a chatty command never blocks on a full pipe.
    """
    assert proc.stdout is not None
    kept = bytearray()
    with proc.stdout, selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        open_pipe = True
        while proc.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                _kill(proc)
                return bytes(kept), False
            if not open_pipe:
                time.sleep(min(left, 0.05))
                continue
            for _ in selector.select(timeout=min(left, 0.1)):
                chunk = os.read(proc.stdout.fileno(), _READ)
                if not chunk:
                    selector.unregister(proc.stdout)
                    open_pipe = False
                kept += chunk[: max(0, OUTPUT_LIMIT - len(kept))]
        # Exited: what is already in the pipe, without waiting for anything it left behind.
        for _ in range(16):
            if not open_pipe or not selector.select(timeout=0):
                break
            chunk = os.read(proc.stdout.fileno(), _READ)
            open_pipe = bool(chunk)
            kept += chunk[: max(0, OUTPUT_LIMIT - len(kept))]
    return bytes(kept), True


def _kill(proc: "subprocess.Popen[bytes]") -> None:
    with contextlib.suppress(ProcessLookupError):  # the whole group had already gone
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _said(output: bytes) -> str:
    lines = [line.strip() for line in output.decode("utf-8", "replace").splitlines()]
    said = " | ".join(line for line in lines if line)
    if not said:
        return ""
    if len(said) > SAID_LIMIT or len(output) >= OUTPUT_LIMIT:
        said = said[:SAID_LIMIT] + " ..."
    return f": {said}"
