"""Secrets at rest: AES-256-GCM under the deployment's master key, and keyed fingerprints.

Configuration documents never hold a secret: a secret field is stored as `{"sensitive": <keyed
fingerprint>}`, which is what plans compare, and its ciphertext lives in `secret_values`, one
row per (kind, name, field path), bound to that place as associated data so rows cannot be
swapped. The master key comes from MIM_MASTER_KEY (base64 of 32 bytes), else the file named by
MIM_MASTER_KEY_FILE, else — for the embedded SQLite database only — a key file beside it,
made on first use. Encryption and fingerprint keys are derived from it with HKDF, and every
ciphertext records the id of the key that made it. `rotate` re-encrypts everything (and
re-keys the fingerprints in the documents) in the caller's transaction.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection, make_url

from reconciler.db.models import KIND_TABLES, secret_values
from reconciler.errors import MimError
from specs.secrets import STORED_KEY

MASTER_KEY_ENV = "MIM_MASTER_KEY"
MASTER_KEY_FILE_ENV = "MIM_MASTER_KEY_FILE"
FINGERPRINT_PREFIX = "hmac-sha256:"
CHUNK = 500


class VaultError(MimError):
    """The master key is missing or wrong, or a stored secret cannot be opened."""


def _derive(master: bytes, purpose: str) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=None, info=f"mim/v1 {purpose}".encode()).derive(master)


@dataclass(frozen=True, slots=True)
class MasterKey:
    """The deployment's master key and the keys derived from it."""

    raw: bytes = field(repr=False)
    source: str = ""  # where it came from, for messages

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise VaultError(f"the master key{self._from()} must be 32 bytes, "
                             f"not {len(self.raw)}")

    def _from(self) -> str:
        return f" from {self.source}" if self.source else ""

    @property
    def key_id(self) -> str:
        return _derive(self.raw, "key id").hex()[:16]

    @classmethod
    def parse(cls, text: str, source: str = "") -> MasterKey:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise VaultError(f"the master key{' from ' + source if source else ''} is not "
                             "base64; make one with `mimctl secret new-master-key`") from None
        return cls(raw, source)

    def encrypt(self, plaintext: bytes, place: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(_derive(self.raw, "encrypt")).encrypt(nonce, plaintext,
                                                                      place.encode())

    def decrypt(self, blob: bytes, place: str) -> bytes:
        try:
            return AESGCM(_derive(self.raw, "encrypt")).decrypt(blob[:12], blob[12:],
                                                                 place.encode())
        except InvalidTag:
            raise VaultError(f"the stored secret {place} cannot be decrypted: it was altered "
                             "or moved") from None

    def fingerprint(self, plaintext: bytes) -> str:
        mac = hmac.new(_derive(self.raw, "fingerprint"), plaintext, hashlib.sha256)
        return FINGERPRINT_PREFIX + mac.hexdigest()[:32]


def generate() -> str:
    """A new random master key, base64."""
    return base64.b64encode(os.urandom(32)).decode()


def sidecar_path(database_url: str) -> Path | None:
    """The key file beside an embedded SQLite database (None for other databases)."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(f"{url.database}.master-key")


def write_key_file(path: Path, key: str) -> None:
    """Write a key file readable by its owner only, refusing to overwrite one."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(key + "\n")


def load_master_key(database_url: str, *, create: bool = True) -> MasterKey:
    """The master key for `database_url` (see the module docstring for where it is looked for)."""
    if os.environ.get(MASTER_KEY_ENV):
        return MasterKey.parse(os.environ[MASTER_KEY_ENV], MASTER_KEY_ENV)
    path_text = os.environ.get(MASTER_KEY_FILE_ENV)
    path = Path(path_text) if path_text else sidecar_path(database_url)
    if path is None:
        raise VaultError(f"secrets are stored encrypted: set {MASTER_KEY_ENV} (base64 of 32 "
                         f"bytes; `mimctl secret new-master-key` makes one) or "
                         f"{MASTER_KEY_FILE_ENV}")
    if not path.exists() and create and not path_text:
        try:
            write_key_file(path, generate())
        except FileExistsError:
            pass  # another process made it first
    try:
        return MasterKey.parse(path.read_text(encoding="ascii"), str(path))
    except OSError as error:
        raise VaultError(f"cannot read the master key file {path}: {error.strerror}") from None


def place(kind: str, name: str, path: str) -> str:
    """What a ciphertext is bound to."""
    return f"{kind}/{name}/{path}"


def store(connection: Connection, key: MasterKey, kind: str,
          secrets: dict[str, dict[str, bytes]], now: datetime) -> None:
    """Replace the stored secrets of objects of one kind: {name: {path: plaintext}}."""
    forget(connection, kind, list(secrets))
    rows = [{"kind": kind, "name": name, "path": path, "key_id": key.key_id,
             "ciphertext": key.encrypt(value, place(kind, name, path)), "updated_at": now}
            for name, values in secrets.items() for path, value in values.items()]
    if rows:
        connection.execute(secret_values.insert(), rows)


def forget(connection: Connection, kind: str, names: list[str]) -> None:
    """Delete the stored secrets of objects of one kind."""
    for start in range(0, len(names), CHUNK):
        connection.execute(delete(secret_values).where(
            secret_values.c.kind == kind, secret_values.c.name.in_(names[start:start + CHUNK])))


def read(connection: Connection, key: MasterKey, kind: str, name: str) -> dict[str, bytes]:
    """The plaintext secrets of one object, by field path ("spec.clientSecret")."""
    rows = connection.execute(select(secret_values).where(
        secret_values.c.kind == kind, secret_values.c.name == name))
    return {row.path: _open(key, row) for row in rows}


def open_row(key: MasterKey, row: Any) -> bytes:
    """The plaintext of one secret_values row."""
    return _open(key, row)


def _open(key: MasterKey, row: Any) -> bytes:
    if row.key_id != key.key_id:
        raise VaultError(f"stored secrets were encrypted with master key {row.key_id}, but the "
                         f"key given{key._from()} is {key.key_id}")
    return key.decrypt(row.ciphertext, place(row.kind, row.name, row.path))


def rotate(connection: Connection, old: MasterKey, new: MasterKey, now: datetime | None = None
           ) -> int:
    """Re-encrypt every stored secret under `new` and re-key its fingerprint; returns how many."""
    now = now or datetime.now(UTC)
    rows = connection.execute(select(secret_values)).all()
    plaintexts = {(row.kind, row.name, row.path): _open(old, row) for row in rows}
    for (kind, name, path), value in plaintexts.items():
        connection.execute(update(secret_values).where(
            secret_values.c.kind == kind, secret_values.c.name == name,
            secret_values.c.path == path).values(
            key_id=new.key_id, ciphertext=new.encrypt(value, place(kind, name, path)),
            updated_at=now))
    _refingerprint(connection, new, plaintexts, now)
    return len(plaintexts)


def _refingerprint(connection: Connection, key: MasterKey,
                   plaintexts: dict[tuple[str, str, str], bytes], now: datetime) -> None:
    by_object: dict[tuple[str, str], list[tuple[str, bytes]]] = {}
    for (kind, name, path), value in plaintexts.items():
        by_object.setdefault((kind, name), []).append((path, value))
    for kind in {kind for kind, _ in by_object if kind in KIND_TABLES}:  # not "System"
        table = KIND_TABLES[kind].table
        names = [name for k, name in by_object if k == kind]
        for row in connection.execute(select(table.c.id, table.c.name, table.c.document)
                                      .where(table.c.name.in_(names))):
            document = row.document
            for path, value in by_object[(kind, row.name)]:
                set_marker(document, path, key.fingerprint(value))
            connection.execute(update(table).where(table.c.id == row.id).values(
                document=document, updated_at=now, generation=table.c.generation + 1))


def set_marker(document: dict[str, Any], path: str, fingerprint: str) -> None:
    """Put a secret's stored form at a dotted path of a canonical document."""
    *parents, last = path.split(".")
    target = document
    for part in parents:
        target = target[part]
    target[last] = {STORED_KEY: fingerprint}
