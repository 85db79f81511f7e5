"""`syncjob demo`: the real pass against an embedded AlertAgent, with no network needed.

The embedded source speaks the newer server's dialect (raw YAML, X-Config-Hash) and
answers If-None-Match with 304, so the second pass shows the cheap no-change path.
"""

import hashlib
import shutil
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from syncjob import output
from syncjob.errors import ExitCode
from syncjob.settings import resolve
from syncjob.source import Source
from syncjob.sync import run_once

DEMO_CONFIG = b"""\
# Served by syncjob's embedded demo source.
global:
  scrape_interval: 15s
  evaluation_interval: 15s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ["localhost:9090"]
"""


class _DemoSource(BaseHTTPRequestHandler):
    seen: list[int]

    def do_GET(self) -> None:
        digest = hashlib.sha256(DEMO_CONFIG).hexdigest()
        unchanged = self.headers.get("If-None-Match") == f'"{digest}"'
        self.send_response(304 if unchanged else 200)
        self.send_header("ETag", f'"{digest}"')
        self.send_header("X-Config-Hash", digest)
        self.send_header("Content-Type", "application/yaml")
        self.send_header("Content-Length", "0" if unchanged else str(len(DEMO_CONFIG)))
        self.end_headers()
        if not unchanged:
            self.wfile.write(DEMO_CONFIG)
        self.seen.append(304 if unchanged else 200)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the demo reports what the source answered itself."""


def run_demo() -> int:
    output.setup_logging(json_lines=False)
    try:
        workdir = Path(tempfile.mkdtemp(prefix="syncjob-demo-"))
    except FileNotFoundError:
        # No writable TMPDIR, /tmp, /var/tmp or cwd: e.g. a read-only container root with
        # no tmpfs on /tmp. tempfile says so with a traceback; one line says how to fix it.
        output.usage_error(
            "no writable temporary directory for the demo "
            "(mount a tmpfs on /tmp, e.g. docker run --tmpfs /tmp, or set TMPDIR)"
        )
        return ExitCode.CANT_WRITE
    try:
        return _two_passes(workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # the demo leaves nothing behind


def _two_passes(workdir: Path) -> int:
    _DemoSource.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _DemoSource)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = resolve(
            {
                "endpoint": f"http://127.0.0.1:{server.server_address[1]}",
                "cluster_id": "demo",
                "config_type": "prometheus",
                "config_path": str(workdir / "prometheus.yml"),
                "app_env": "demo",
            },
            env={},
        )
        source = Source(settings)
        passes = [run_once(settings, source=source, target=None) for _ in range(2)]
    finally:
        server.shutdown()
        server.server_close()
    output.show_demo(passes, _DemoSource.seen, settings.config_path, settings.state_path)
    expected = [p.summary for p in passes] == ["written", "in sync"] and _DemoSource.seen == [
        200,
        304,
    ]
    return ExitCode.OK if expected else ExitCode.INTERNAL
