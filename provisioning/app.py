"""The provisioning service's application factory.

`create_app()` builds the Flask app from defaults, then the mapping it is given. It needs no
argument, so gunicorn can run it as it is, several workers sharing one PostgreSQL database:

    gunicorn --workers 4 --bind 0.0.0.0:8000 'provisioning.app:create_app()'

Config keys:

- `DATABASE_URL`: the database (default: MIM_DATABASE_URL, else the embedded SQLite file
  `sqlite:///mim.sqlite3` in the working directory; `postgresql://` means psycopg 3).
- `TESTING`: Flask's testing flag (exceptions reach the test client).
- `NOTIFY_INTERVAL`: seconds between the outbox sender's runs (default 30; 0 turns the sender
  off, for deployments that run `mimctl notify flush` instead). The sender is a thread started
  by the first request each process serves, so gunicorn's workers each run one (the outbox's
  claims keep them from sending a message twice), with or without `--preload`. The same
  thread closes collection sessions past their time (`collect.sweep_sessions`), revoking what
  an unconfirmed one issued; with the sender off, the next collect does that.

Each flow is a blueprint in its own module; the database attaches through
`provisioning.db.init_app` and is opened on first use, never here.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask, abort, request
from werkzeug.routing import IntegerConverter

from provisioning import api, collect, db, devices, errors, openapi, pages, pki
from provisioning.notify import background_sender
from reconciler.db.engine import resolve_url
from reconciler.db.vault import VaultError

log = logging.getLogger(__name__)

DEFAULT_NOTIFY_INTERVAL = 30.0
SENDER = "mim.sender"

BLUEPRINTS = (pages.blueprint, collect.blueprint, devices.blueprint, pki.blueprint,
              api.blueprint, openapi.blueprint)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """A provisioning service app configured by `config` (see the module docstring)."""
    app = Flask(__name__)
    app.config.from_mapping(DATABASE_URL=None, TESTING=False,
                            NOTIFY_INTERVAL=DEFAULT_NOTIFY_INTERVAL)
    app.config.from_mapping(config or {})
    app.config["DATABASE_URL"] = resolve_url(app.config["DATABASE_URL"])
    app.url_map.converters["id"] = RowId
    app.before_request(_refuse_nul)
    errors.register(app)
    db.init_app(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    if app.config["NOTIFY_INTERVAL"]:
        app.before_request(_sender_starter(app))
    return app


class RowId(IntegerConverter):
    """A database row id in a path: beyond what a row id can be, the route does not match."""

    def __init__(self, url_map: Any) -> None:
        super().__init__(url_map, max=2**31 - 1)


def _refuse_nul() -> None:
    """NUL is in no name, token or id we store (PostgreSQL text cannot hold it): refuse it."""
    if "\x00" in request.path or b"%00" in request.query_string \
            or (request.is_json and b"\\u0000" in request.get_data(cache=True)):
        if errors.is_api_path(request.path):
            raise errors.ApiError(400, "malformed", "NUL characters are not accepted")
        abort(404)


def _sender_starter(app: Flask) -> Callable[[], None]:
    """A before-request hook that starts the outbox sender once, in the serving process."""
    lock = threading.Lock()

    def start() -> None:
        if SENDER in app.extensions:
            return
        with lock:
            if SENDER in app.extensions:
                return
            try:
                key = db.master_key()
            except VaultError as error:  # the views that need the key say so themselves
                log.error("outbox sender not started: %s", error)
                app.extensions[SENDER] = None
                return
            engine = db.engine_of(app)
            sender = background_sender(engine, key, float(app.config["NOTIFY_INTERVAL"]),
                                       sender=f"service pid {os.getpid()}",
                                       chores=lambda: collect.sweep_sessions(engine))
            app.extensions[SENDER] = sender
            atexit.register(sender.stop, 5.0)

    return start
