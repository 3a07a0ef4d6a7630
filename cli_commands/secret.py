"""`mimctl secret`: sealing key pairs, sealed values, and the master key of secrets at rest."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from cli_commands.context import Context, pass_context, plural

if TYPE_CHECKING:
    from reconciler.db.vault import MasterKey

NEW_MASTER_KEY_ENV = "MIM_NEW_MASTER_KEY"


@click.group()
def secret() -> None:
    """Seal secrets for the specs, and manage the key that encrypts them in the database.

    A secret field in a spec is {env: NAME}, {file: PATH}, or a value sealed to the
    deployment's public key (enc:v1:...), which is safe to commit: only the private key,
    held by the server and the CI job that applies, opens it.
    """


@secret.command()
@click.option("--out-dir", type=click.Path(file_okay=False, path_type=Path), default=".",
              show_default=True, help="Where to write mim-seal.key and mim-seal.pub.")
def keygen(out_dir: Path) -> None:
    """Make the deployment's sealing key pair.

    Give mim-seal.pub to whoever writes specs; keep mim-seal.key (owner-readable only) for the
    server and the CI job that applies, as MIM_SEAL_KEY_FILE (or its text as MIM_SEAL_KEY).
    """
    from reconciler.db.vault import write_key_file
    from reconciler.sealing import (
        PRIVATE_FILE,
        PUBLIC_FILE,
        generate_keypair,
        key_id,
        load_public_key,
    )

    out_dir.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out_dir / PRIVATE_FILE, out_dir / PUBLIC_FILE
    for path in (private_path, public_path):
        if path.exists():
            raise click.ClickException(f"{path} already exists; keep it, or move it away "
                                       "first (sealed values need the key that sealed them)")
    private_pem, public_pem = generate_keypair()
    write_key_file(private_path, private_pem.decode().strip())
    public_path.write_bytes(public_pem)
    click.echo(f"wrote {private_path} (private: server and CI only) and {public_path} "
               f"(public), key id {key_id(load_public_key(public_path))}")


@secret.command()
@click.option("--public-key", "public_key_path", envvar="MIM_SEAL_PUBLIC_KEY",
              type=click.Path(dir_okay=False, path_type=Path), default="mim-seal.pub",
              show_default=True, help="The deployment's public key (env MIM_SEAL_PUBLIC_KEY).")
@click.option("--from-file", "source", type=click.Path(dir_okay=False, path_type=Path),
              help="Seal the contents of this file (a PFX, a PEM key) instead of reading the "
                   "value from standard input.")
def seal(public_key_path: Path, source: Path | None) -> None:
    """Seal a secret; print the enc:v1:... value to paste into a spec.

    The value is read from standard input (a prompt that does not echo, on a terminal), never
    from the command line, where it would land in shell history and process lists.
    """
    from reconciler.sealing import load_public_key
    from reconciler.sealing import seal as seal_value

    key = load_public_key(public_key_path)
    if source is not None:
        value = source.read_bytes()
    elif sys.stdin.isatty():
        value = click.prompt("Secret", hide_input=True, confirmation_prompt=True).encode()
    else:
        value = sys.stdin.buffer.read()
        value = value[:-2] if value.endswith(b"\r\n") else value.removesuffix(b"\n")
    if not value:
        raise click.ClickException("nothing to seal: the value is empty")
    click.echo(seal_value(key, value))


@secret.command("new-master-key")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the key to this file (owner-readable only) instead of printing it.")
def new_master_key(out_file: Path | None) -> None:
    """Make a random master key for secrets at rest (base64 of 32 bytes).

    Give it to mimctl and the service as MIM_MASTER_KEY, or as a file named by
    MIM_MASTER_KEY_FILE. The embedded SQLite database makes its own beside it when none is set.
    """
    from reconciler.db.vault import generate, write_key_file

    key = generate()
    if out_file is None:
        click.echo(key)
        return
    try:
        write_key_file(out_file, key)
    except FileExistsError:
        raise click.ClickException(f"{out_file} already exists") from None
    click.echo(f"wrote {out_file}")


@secret.command("rotate-master-key")
@click.option("--new-key-file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The new master key (from `mimctl secret new-master-key --out`); or set "
                   f"{NEW_MASTER_KEY_ENV}.")
@click.option("--actor", envvar="MIM_ACTOR", help="Who rotates, for the audit log.")
@click.option("--lock-timeout", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds to wait for a running apply.")
@pass_context
def rotate_master_key(context: Context, new_key_file: Path | None, actor: str | None,
                      lock_timeout: float) -> None:
    """Re-encrypt every stored secret under a new master key, in one transaction.

    The current key is the configured one (MIM_MASTER_KEY, MIM_MASTER_KEY_FILE, or the
    embedded database's key file). Switch the deployment to the new key right after. With the
    embedded database's own key file and no new key given, a new one replaces that file.
    """
    from reconciler.apply import apply_lock, default_actor
    from reconciler.db import vault
    from reconciler.db.audit import AuditEvent, append
    from reconciler.db.engine import ensure_schema

    engine = context.engine(lock_timeout)
    ensure_schema(engine)
    url = engine.url.render_as_string(hide_password=False)
    old = vault.load_master_key(url, create=False)
    sidecar = vault.sidecar_path(url)
    replacing_sidecar = False
    if new_key_file is not None:
        new = vault.MasterKey.parse(new_key_file.read_text(encoding="ascii"), str(new_key_file))
    elif os.environ.get(NEW_MASTER_KEY_ENV):
        new = vault.MasterKey.parse(os.environ[NEW_MASTER_KEY_ENV], NEW_MASTER_KEY_ENV)
    elif sidecar is not None and old.source == str(sidecar):
        new = vault.MasterKey.parse(vault.generate(), str(sidecar))
        replacing_sidecar = True
    else:
        raise click.UsageError(f"give the new key: --new-key-file FILE or {NEW_MASTER_KEY_ENV}")
    if new.key_id == old.key_id:
        raise click.ClickException("the new master key is the current one")
    actor = actor or default_actor()
    staged = _stage(sidecar, new) if replacing_sidecar and sidecar is not None else None
    try:
        with apply_lock(engine, actor=actor, timeout=lock_timeout) as connection:
            count = vault.rotate(connection, old, new)
            append(connection, [AuditEvent(actor, "rotate-master-key", None, None, {
                "from_key": old.key_id, "to_key": new.key_id, "secrets": count})])
    except BaseException:
        if staged is not None:
            staged.unlink(missing_ok=True)
        raise
    if staged is not None and sidecar is not None:
        staged.replace(sidecar)
    click.echo(f"re-encrypted {plural(count, 'secret')} under master key {new.key_id} "
               f"(was {old.key_id})")
    if not replacing_sidecar:
        click.echo("Now give the deployment the new key (MIM_MASTER_KEY or MIM_MASTER_KEY_FILE).")


def _stage(sidecar: Path, key: MasterKey) -> Path:
    """Write the new key beside the old key file before the database commits to it."""
    from reconciler.db.vault import write_key_file

    staged = sidecar.with_name(sidecar.name + ".new")
    staged.unlink(missing_ok=True)
    write_key_file(staged, base64.b64encode(key.raw).decode())
    return staged
