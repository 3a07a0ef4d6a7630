"""Run a WSGI app as a real HTTP server on 127.0.0.1 in a thread, recording what it was asked."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import Flask, request
from werkzeug.serving import make_server


@dataclass(frozen=True, slots=True)
class Seen:
    """One request a stand-in received."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() when it arrived


@dataclass(slots=True)
class StandIn:
    """A running stand-in: its base URL and the requests it has seen, in order."""

    url: str
    app: Flask
    seen: list[Seen] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


@contextmanager
def serve(app: Flask) -> Iterator[StandIn]:
    """Serve `app` on a free port of 127.0.0.1 until the block ends."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    stand_in = StandIn(f"http://127.0.0.1:{server.server_port}", app)

    @app.before_request
    def _record() -> None:
        stand_in.seen.append(Seen(request.method, request.path,
                                  request.query_string.decode(), dict(request.headers),
                                  request.get_data(), time.monotonic()))

    thread = threading.Thread(target=server.serve_forever, name=f"stand-in {app.name}",
                              kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (an MDM that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
