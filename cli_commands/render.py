"""`mimctl render`: the product's native configuration files, from the applied configuration."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from cli_commands.context import Context, pass_context

OUT = click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
                   help="Write the file here instead of standard output.")


@click.group()
def render() -> None:
    """Files the product itself reads: a custom card format, the DN processor block."""


def _documents(context: Context, kind: str) -> dict[str, dict[str, Any]]:
    from sqlalchemy import select

    from reconciler.db.engine import ensure_schema
    from reconciler.db.models import KIND_TABLES, MANAGED_BY_BUILTIN

    engine = context.engine()
    ensure_schema(engine)
    table = KIND_TABLES[kind].table
    with engine.connect() as connection:  # built-in rows (the Mobile format) are the product's
        return {row.name: row.document for row in connection.execute(
            select(table.c.name, table.c.document).where(
                table.c.managed_by != MANAGED_BY_BUILTIN))}


def _write(data: bytes, out_file: Path | None) -> None:
    if out_file is None:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        out_file.write_bytes(data)
        click.echo(f"wrote {out_file}", err=True)


@render.command("card-format")
@click.argument("name")
@OUT
@pass_context
def card_format(context: Context, name: str, out_file: Path | None) -> None:
    """The CardDataModel XML of card format NAME, in Windows-1252 (ANSI) as the product needs.

    Save it in the application server's CardFormats folder and restart the clients.
    """
    from reconciler.native import card_data_model
    from specs.card_format import CardFormat, CardFormatSpec

    documents = _documents(context, "CardFormat")
    if name not in documents:
        builtin = " (it is built into the product)" if name in CardFormat.builtin_names else ""
        raise click.ClickException(f"no custom card format {name!r} is applied{builtin}")
    _write(card_data_model(name, CardFormatSpec.model_validate(documents[name]["spec"])),
           out_file)


@render.command("dn-processor")
@OUT
@pass_context
def dn_processor_command(context: Context, out_file: Path | None) -> None:
    """The dnProcessor block of the provisioning web service's appsettings.Production.json."""
    from reconciler.native import dn_processor

    default, policies = None, {}
    for document in _documents(context, "DnPolicy").values():
        spec = document["spec"]
        if spec.get("default"):
            default = spec["dn"]
        elif spec.get("certificatePolicy"):
            policies[spec["certificatePolicy"]] = spec["dn"]
    if default is None:
        settings = next(iter(_documents(context, "Settings").values()), {})
        default = settings.get("spec", {}).get("dnProcessor", {}).get("default")
    text = json.dumps(dn_processor(default, policies), indent=2, ensure_ascii=False) + "\n"
    _write(text.encode("utf-8"), out_file)
