"""mimctl: mobile identity management configured as code.

The command line is thin: it parses arguments, calls the engine, and prints. Findings about the
specs are printed one per line as `file:line:col: kind/name: field.path: message`; errors that
stop a command go to stderr with exit code 1.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import click

from reconciler.errors import MimError, Problem
from specs import KINDS


@dataclass(slots=True)
class Context:
    """What every command shares: where the database is."""

    database_url: str | None = None


pass_context = click.make_pass_decorator(Context)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class _Group(click.Group):
    """Turns MimError raised anywhere below a command into a clean one-line failure."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MimError as error:
            raise click.ClickException(str(error)) from error


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--db", "database_url", envvar="MIM_DATABASE_URL", metavar="URL",
              help="Database URL (default: sqlite:///mim.sqlite3 in the working directory; "
                   "env MIM_DATABASE_URL).")
@click.version_option(package_name="mimctl")
@click.pass_context
def main(ctx: click.Context, database_url: str | None) -> None:
    """Mobile identity management configured as code.

    Describe roles, people, certificate authorities and policies, credential profiles, MDM
    systems and requests in YAML; validate them, plan the change against the database, apply.
    """
    ctx.obj = Context(database_url=database_url)


@main.command()
@click.argument("path", default=".", type=click.Path(path_type=Path))
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people, json for machines.")
def validate(path: Path, output_format: str) -> None:
    """Check the specs under PATH: schema, references and uniqueness.

    Exit 0 when clean, 1 when any error is found. Every error is reported, not only the
    first, each at its file:line:column.
    """
    from reconciler.validate import validate as run_validation

    report = run_validation(path)
    if not report.files:
        raise click.ClickException(f"no *.yaml or *.yml files under {path}")
    documents = len(report.catalog.documents)
    if output_format == "json":
        click.echo(json.dumps({
            "format_version": 1,
            "valid": report.ok,
            "files": len(report.files),
            "documents": documents,
            "problems": [problem.as_json() for problem in report.problems],
        }, indent=2))
    else:
        _print_problems(report.problems)
        errors = len(report.errors)
        files = len({problem.file for problem in report.errors})
        read = f"{_plural(documents, 'valid document')} in {_plural(len(report.files), 'file')}"
        if errors:
            click.echo(f"{_plural(errors, 'error')} in {_plural(files, 'file')} ({read})")
        else:
            click.echo(f"ok: {read}")
    sys.exit(0 if report.ok else 1)


def _print_problems(problems: list[Problem]) -> None:
    color = sys.stdout.isatty()
    for problem in problems:
        text = str(problem)
        if color:
            text = click.style(text, fg="red" if problem.severity == "error" else "yellow")
        click.echo(text)


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write one <Kind>.schema.json per kind and mimctl.schema.json here; "
                   "without it, print the all-kinds schema.")
def schema(out_dir: Path | None) -> None:
    """JSON Schemas of the spec documents, for editor completion.

    Point yaml-language-server at one with a first line such as
    `# yaml-language-server: $schema=schemas/CredentialProfile.schema.json`.
    """
    from specs.schema import all_kinds_schema, kind_schema

    if out_dir is None:
        click.echo(json.dumps(all_kinds_schema(), indent=2))
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    for kind in KINDS:
        _write_json(out_dir / f"{kind}.schema.json", kind_schema(kind))
    _write_json(out_dir / "mimctl.schema.json", all_kinds_schema())
    click.echo(f"wrote {_plural(len(KINDS) + 1, 'schema')} to {out_dir}")


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    main()
