"""The provisioning service's application factory.

`create_app()` builds the Flask app from defaults, then the mapping it is given. It needs no
argument, so gunicorn can run it as it is, several workers sharing one PostgreSQL database:

    gunicorn --workers 4 --bind 0.0.0.0:8000 'provisioning.app:create_app()'

Config keys:

- `DATABASE_URL`: the database (default: MIM_DATABASE_URL, else the embedded SQLite file
  `sqlite:///mim.sqlite3` in the working directory; `postgresql://` means psycopg 3).
- `TESTING`: Flask's testing flag (exceptions reach the test client).

Each flow is a blueprint in its own module; the database attaches through
`provisioning.db.init_app` and is opened on first use, never here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from provisioning import collect, db, errors, pages
from reconciler.db.engine import resolve_url

BLUEPRINTS = (pages.blueprint, collect.blueprint)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """A provisioning service app configured by `config` (see the module docstring)."""
    app = Flask(__name__)
    app.config.from_mapping(DATABASE_URL=None, TESTING=False)
    app.config.from_mapping(config or {})
    app.config["DATABASE_URL"] = resolve_url(app.config["DATABASE_URL"])
    errors.register(app)
    db.init_app(app)
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    return app
