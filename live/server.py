"""Running the app under uvicorn: in the foreground (``make serve``) or on a thread (tests, benchmark).

The server binds 127.0.0.1 unless another address is asked for; any other address prints a
warning (the page and the API have no authentication: whoever reaches the port can use the camera
page's server and upload files). ``port`` 0 picks a free port.
"""

from __future__ import annotations

import ipaddress
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from live.app import AppSettings, create_app
from live.engine import LiveEngine

LOOPBACK = "127.0.0.1"


@dataclass
class Running:
    """A server started by :func:`start_in_thread`: its ``url`` (``http://127.0.0.1:<port>``), and
    :meth:`stop`."""

    url: str
    server: object
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _config(app, host: str, port: int, settings: AppSettings):
    import uvicorn

    return uvicorn.Config(
        app, host=host, port=port, log_level="warning", ws_max_size=settings.limits.transport_bytes,
        ws_ping_interval=20, ws_ping_timeout=20, lifespan="off",
    )  # fmt: skip


def hosts_for(host: str) -> tuple[str, ...]:
    """The ``Host`` names the app accepts when bound to ``host``."""
    names = {"127.0.0.1", "localhost", "[::1]", host}
    if host in ("0.0.0.0", "::"):  # every interface: any name (the warning said so)
        return ("*",)
    return tuple(sorted(names))


def serve(engine: LiveEngine, host: str, port: int, settings: AppSettings) -> None:
    """Run the app until interrupted; prints the address (and a warning off loopback)."""
    import uvicorn

    settings.hosts = hosts_for(host)
    if not is_loopback(host):
        print(
            f"warning: serving on {host}, not only this machine: anyone who reaches port {port} can use "
            "the page and the API (no authentication)",
            file=sys.stderr,
        )
    app = create_app(engine, settings)
    server = uvicorn.Server(_config(app, host, port, settings))
    shown = f"[{host}]" if ":" in host else host
    print(
        f"live explanations on http://{shown}:{port}/ (API: http://{shown}:{port}/docs); Ctrl-C stops",
        flush=True,
    )
    server.run()


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def start_in_thread(engine: LiveEngine, settings: AppSettings | None = None, port: int = 0) -> Running:
    """Start the app on 127.0.0.1 (``port`` 0: a free one) on a daemon thread; return once it
    accepts connections.

    Raises:
        RuntimeError: it did not start within 30 s.
    """
    import uvicorn

    settings = settings or AppSettings()
    settings.hosts = hosts_for(LOOPBACK)
    port = port or free_port()
    server = uvicorn.Server(_config(create_app(engine, settings), LOOPBACK, port, settings))
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the live server did not start on {LOOPBACK}:{port}")
        time.sleep(0.05)
    return Running(f"http://{LOOPBACK}:{port}", server, thread)


def default_model(out: Path) -> Path:
    """The AU model ``make explain`` would take (``explain.models.default_model_path``), unless it
    reads AU presences and the logit exists (the estimator gives intensities only)."""
    from analysis.au_table import AU_R_COLUMNS
    from explain.models import default_model_path, load_au_model

    path = default_model_path(out)
    logit = out / "logit" / "model.json"
    if path != logit and logit.is_file():
        if any(c not in AU_R_COLUMNS for c in load_au_model(path).columns):
            print(f"{path.name} reads AU presences the AU estimator does not give: using {logit}")
            return logit
    return path
