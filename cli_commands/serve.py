"""`mimctl serve`: the provisioning service on werkzeug's development server."""

from __future__ import annotations

import click

from cli_commands.context import Context, pass_context


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 for every interface.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on.")
@click.option("--debug", is_flag=True,
              help="Reload on code changes and show tracebacks with an interactive debugger "
                   "in the browser. Never where anyone else can reach the port.")
@pass_context
def serve(context: Context, host: str, port: int, debug: bool) -> None:
    """Run the provisioning service on werkzeug's development server.

    For trying mimctl out and for development: one process, on the database of --db
    (MIM_DATABASE_URL, else the embedded SQLite file). Production runs the same app under
    gunicorn, with several workers sharing one PostgreSQL database, for example:

    \b
        MIM_DATABASE_URL=postgresql://mim@db.example.com/mim \\
        MIM_MASTER_KEY_FILE=/etc/mim/master-key \\
        gunicorn --workers 4 --bind 0.0.0.0:8000 'provisioning.app:create_app()'
    """
    from werkzeug.serving import run_simple

    from provisioning.app import create_app
    from provisioning.db import get_engine
    from reconciler.db.engine import ensure_schema, resolve_url

    app = create_app({"DATABASE_URL": resolve_url(context.database_url)})
    app.debug = debug
    with app.app_context():
        ensure_schema(get_engine())  # refuse an unmigrated database now, not on first request
    click.echo(f"Serving on http://{host}:{port}/ (development server; Ctrl+C stops it)",
               err=True)
    run_simple(host, port, app, use_reloader=debug, use_debugger=debug, threaded=True)
