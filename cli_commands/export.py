"""`mimctl export`: the database's configuration as spec files."""

from __future__ import annotations

from pathlib import Path

import click

from cli_commands.context import Context, pass_context, plural
from cli_commands.progress import progress


@click.command("export")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write one YAML file per kind here (the folder is made; files of the same "
                   "names are replaced). Without it, print every document.")
@pass_context
def export_command(context: Context, out_dir: Path | None) -> None:
    """Write the live configuration as spec documents, ready to commit.

    Kinds come in dependency order and names sorted; values the defaults give are left out.
    Secrets are never exported: each becomes an {env: NAME} reference, listed on stderr, to
    set (or seal with `mimctl secret seal`) before planning. `reconcile --plan` on the result
    then shows no changes.
    """
    from reconciler.db.engine import ensure_schema
    from reconciler.export import export
    from reconciler.state import read_state

    engine = context.engine()
    ensure_schema(engine)
    with engine.connect() as connection:
        state = read_state(connection)
    with progress("Exporting", len(state.objects)) as advance:
        exported = export(state, advance)
    if out_dir is None:
        click.echo("---\n".join(exported.files.values()), nl=False)
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, text in exported.files.items():
            (out_dir / name).write_text(text, encoding="utf-8")
        click.echo(f"wrote {plural(len(exported.files), 'file')} to {out_dir}", err=True)
    for variable, where in exported.secrets:
        click.echo(f"secret to fill in: {variable} ({where})", err=True)
