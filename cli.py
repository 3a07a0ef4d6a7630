"""mimctl: mobile identity management configured as code.

The command line is thin: it parses arguments, calls the engine, and prints. Findings about the
specs are printed one per line as `file:line:col: kind/name: field.path: message`; errors that
stop a command go to stderr with exit code 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from sqlalchemy.exc import DBAPIError

from cli_commands.apikey import apikey
from cli_commands.audit import audit
from cli_commands.context import Context, pass_context, plural
from cli_commands.device import device
from cli_commands.diff import diff_command
from cli_commands.export import export_command
from cli_commands.mdm import mdm
from cli_commands.notify import notify
from cli_commands.progress import progress
from cli_commands.render import render
from cli_commands.request import request
from cli_commands.secret import secret
from cli_commands.serve import serve
from reconciler.errors import MimError, Problem
from reconciler.plan import DEFAULT_MAX_DELETES
from specs import KINDS


class _Group(click.Group):
    """Turns MimError raised anywhere below a command into a clean one-line failure."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except MimError as error:
            raise click.ClickException(str(error)) from error
        except DBAPIError as error:
            raise click.ClickException(
                f"database error: {error.orig or error.__class__.__name__}; check --db / "
                "MIM_DATABASE_URL and that the database is reachable and migrated "
                "(mimctl db upgrade)") from error


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
    ctx.call_on_close(ctx.obj.close)


@main.command()
@click.argument("path", default=".", type=click.Path(path_type=Path))
@click.option("--format", "output_format", type=click.Choice(["text", "json", "markdown"]),
              default="text", show_default=True,
              help="text for people, json for machines; markdown only with --list-rules.")
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
@click.option("--list-rules", is_flag=True,
              help="Print the rule catalogue instead (docs/rules.md is its markdown).")
def validate(path: Path, output_format: str, strict: bool, list_rules: bool) -> None:
    """Check the specs under PATH: schema, references, uniqueness and the rule catalogue.

    Exit 0 when clean, 1 when any error is found (or any warning, with --strict). Every
    problem is reported, not only the first, each at its file:line:column.
    """
    from reconciler.rules import catalogue_markdown, catalogue_text
    from reconciler.validate import validate as run_validation

    if list_rules:
        click.echo(catalogue_markdown() if output_format == "markdown" else catalogue_text(),
                   nl=False)
        return
    if output_format == "markdown":
        raise click.UsageError("--format markdown goes with --list-rules")
    report = run_validation(path)
    if not report.files:
        raise click.ClickException(f"no *.yaml or *.yml files under {path}")
    failed = _failed(report.problems, strict)
    documents = len(report.catalog.documents)
    if output_format == "json":
        click.echo(json.dumps({
            "format_version": 1,
            "valid": not failed,
            "files": len(report.files),
            "documents": documents,
            "problems": [problem.as_json() for problem in report.problems],
        }, indent=2))
    else:
        _print_problems(report.problems)
        errors = len(report.errors)
        warnings = len(report.problems) - errors
        files = len({problem.file for problem in report.problems})
        read = f"{plural(documents, 'valid document')} in {plural(len(report.files), 'file')}"
        counted = ", ".join(part for part in (errors and plural(errors, "error"),
                                              warnings and plural(warnings, "warning")) if part)
        if counted:
            click.echo(f"{counted} in {plural(files, 'file')} ({read})")
        else:
            click.echo(f"ok: {read}")
    sys.exit(1 if failed else 0)


def _failed(problems: list[Problem], strict: bool) -> bool:
    return any(p.severity == "error" or strict for p in problems)


def _print_problems(problems: list[Problem], err: bool = False) -> None:
    """Problems one a line; `err` sends them to stderr (warnings beside a plan on stdout)."""
    color = (sys.stderr if err else sys.stdout).isatty()
    for problem in problems:
        text = str(problem)
        if color:
            text = click.style(text, fg="red" if problem.severity == "error" else "yellow")
        click.echo(text, err=err)


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
    click.echo(f"wrote {plural(len(KINDS) + 1, 'schema')} to {out_dir}")


@main.command()
@click.option("--plan", "mode", flag_value="plan",
              help="Show what applying the specs would change (exit 0 none, 2 changes, 1 errors).")
@click.option("--apply", "mode", flag_value="apply",
              help="Apply the specs under PATH, or exactly the saved plan FILE.")
@click.argument("target", metavar="[PATH | FILE]", default=".", type=click.Path(path_type=Path))
@click.option("--format", "output_format", type=click.Choice(["text", "json", "markdown"]),
              default="text", show_default=True, help="How to print the plan.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Save the plan (JSON) for `reconcile --apply FILE`.")
@click.option("--yes", "-y", is_flag=True, help="Apply without asking for confirmation.")
@click.option("--prune/--no-prune", default=True, show_default=True,
              help="Delete managed objects whose documents were removed, or only report them.")
@click.option("--adopt", is_flag=True,
              help="Take objects created outside the specs under management when a document "
                   "names them.")
@click.option("--max-deletes", type=click.IntRange(min=0), default=DEFAULT_MAX_DELETES,
              show_default=True,
              help="Refuse a plan that deletes more objects than this.")
@click.option("--actor", envvar="MIM_ACTOR",
              help="Who applies, for the audit log (default: git user.name/email, else login name).")
@click.option("--lock-timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds to wait for another apply to finish.")
@click.option("--strict", is_flag=True, help="Treat rule warnings as errors.")
@pass_context
def reconcile(context: Context, mode: str | None, target: Path, output_format: str,
              out_file: Path | None, yes: bool, prune: bool, adopt: bool, max_deletes: int,
              actor: str | None, lock_timeout: float, strict: bool) -> None:
    """Plan or apply the specs against the database.

    `--plan` validates the specs, reads the database and prints the changes; exit 0 when
    nothing would change, 2 when something would, 1 on errors. `--apply PATH` plans, asks for
    confirmation on a terminal (unless --yes) and applies in one transaction. `--apply FILE`
    applies exactly a plan saved with --out, and refuses it if the database changed since.
    """
    from reconciler.apply import apply_plan, default_actor, maintain
    from reconciler.db.engine import ensure_schema
    from reconciler.plan import guard_problems, plan_to_json, read_plan_file
    from reconciler.reconcile import plan_path
    from reconciler.render import render

    if mode is None:
        raise click.UsageError("give --plan or --apply")
    engine = context.engine(lock_timeout)
    actor = actor or default_actor()
    if mode == "apply" and target.is_file() and target.suffix == ".json":
        plan = read_plan_file(target)
        here = engine.url.render_as_string(hide_password=True)
        if plan.database and plan.database != here:
            raise click.ClickException(f"{target} was planned against {plan.database}, not "
                                       f"{here}; make a plan against this database")
        ensure_schema(engine)
        click.echo(render(plan, "text", color=sys.stdout.isatty()), nl=False)
        with progress("Applying", len(plan.effective)) as advance:
            result = apply_plan(engine, plan, actor=actor, timeout=lock_timeout,
                                check_state=True, advance=advance)
        click.echo(_applied(result.applied))
        return
    planned = plan_path(target, engine, prune=prune, adopt=adopt)
    if not planned.report.files:  # an empty or mistyped PATH would plan deleting everything
        raise click.ClickException(f"no *.yaml or *.yml files under {target}; nothing planned")
    _print_problems(planned.report.problems, err=planned.plan is not None)
    if planned.plan is None:
        errors = len(planned.report.errors)
        raise click.ClickException(f"{plural(errors, 'error')} in the specs; nothing planned")
    if strict and planned.report.problems:
        raise click.ClickException(f"{plural(len(planned.report.problems), 'warning')} and "
                                   "--strict; nothing planned")
    plan = planned.plan
    guards = guard_problems(plan, max_deletes)
    shown = output_format if mode == "plan" else "text"
    click.echo(render(plan, shown, color=shown == "text" and sys.stdout.isatty()), nl=False)
    if guards:
        raise click.ClickException("\n".join(guards))
    if mode == "plan":
        if out_file is not None:
            _write_json(out_file, plan_to_json(plan))
            click.echo(f"saved plan to {out_file}", err=True)
        sys.exit(2 if plan.has_changes else 0)
    if not plan.has_changes:
        for event in maintain(engine, actor=actor, timeout=lock_timeout):
            reason = event.details.get("reason")
            click.echo(f"{event.action} {event.kind}/{event.name}"
                       + (f": {reason}" if reason else ""))
        return
    if not yes:
        if not sys.stdin.isatty():
            raise click.ClickException("not on a terminal: pass --yes to apply without "
                                       "confirmation")
        click.confirm("Apply these changes?", abort=True)
    with progress("Applying", len(plan.effective)) as advance:
        result = apply_plan(engine, plan, actor=actor, timeout=lock_timeout, check_state=False,
                            advance=advance)
    click.echo(_applied(result.applied))


def _applied(summary: dict[str, int]) -> str:
    done = {"create": "created", "update": "updated", "adopt": "adopted", "delete": "deleted"}
    return "Applied: " + ", ".join(f"{count} {done[action]}" for action, count in summary.items())


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@pass_context
def db_upgrade(context: Context) -> None:
    """Create or migrate the database schema to this mimctl's version."""
    from reconciler.db.engine import upgrade

    engine = context.engine()
    before, after = upgrade(engine)
    where = engine.url.render_as_string(hide_password=True)
    if before == after:
        click.echo(f"{where} is up to date (revision {after})")
    else:
        click.echo(f"{where} upgraded from {before or 'an empty database'} to revision {after}")


@main.command()
@click.argument("address", metavar="KIND/NAME")
@click.option("--actor", envvar="MIM_ACTOR", help="Who lifts the protection, for the audit log.")
@pass_context
def unprotect(context: Context, address: str, actor: str | None) -> None:
    """Lift the deletion guard (annotation mim/protect) of one object, e.g. Role/Helpdesk.

    The next plan may then delete it if its document is gone.
    """
    from reconciler.apply import default_actor
    from reconciler.apply import unprotect as lift
    from reconciler.db.engine import ensure_schema

    kind, slash, name = address.partition("/")
    if not slash or not name:
        raise click.BadParameter("write KIND/NAME, e.g. Role/Helpdesk", param_hint="KIND/NAME")
    engine = context.engine()
    ensure_schema(engine)
    lift(engine, kind, name, actor=actor or default_actor())
    click.echo(f"{kind}/{name} is no longer protected")


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


main.add_command(secret)
main.add_command(mdm)
main.add_command(device)
main.add_command(apikey)
main.add_command(audit)
main.add_command(export_command)
main.add_command(render)
main.add_command(diff_command)
main.add_command(notify)
main.add_command(request)
main.add_command(serve)

if __name__ == "__main__":  # pragma: no cover
    main()
