"""One-time authentication codes: made with `secrets`, kept only as a keyed, salted hash.

A code is digits only, as long as the Settings complexity `xx-yyN` allows at most (the longest
code the policy permits is the strongest). It is shown with a space in the middle, which is
optional when typed back. The hash is HMAC-SHA-256 under a random "pepper" that lives in the
vault (encrypted under the master key, kept across master-key rotations) over a per-code salt:
a copy of the database alone does not let anyone try the few million codes offline.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.engine import Connection

from reconciler.db import vault
from reconciler.db.models import secret_values

COMPLEXITY = re.compile(r"^(\d{2})-(\d{2})N$")
HASH_VERSION = "v1"
PEPPER_PLACE = ("System", "codes", "pepper")  # (kind, name, path) in secret_values


def lengths(complexity: str) -> tuple[int, int]:
    """(minimum, maximum) digits of a complexity such as 06-08N."""
    match = COMPLEXITY.fullmatch(complexity)
    if match is None:
        raise ValueError(f"code complexity {complexity!r} is not xx-yyN")
    shortest, longest = int(match[1]), int(match[2])
    if not 1 <= shortest <= longest:
        raise ValueError(f"code complexity {complexity!r}: minimum above maximum")
    return shortest, longest


def generate(complexity: str) -> str:
    """A new code: `secrets` digits, the longest length the complexity allows."""
    _, longest = lengths(complexity)
    return "".join(str(secrets.randbelow(10)) for _ in range(longest))


def display(code: str) -> str:
    """The code as people read it: two groups split by a space (`1234 5678`)."""
    half = len(code) // 2
    return f"{code[:half]} {code[half:]}"


def normalize(typed: str) -> str:
    """What a person typed, without the optional spaces."""
    return "".join(typed.split())


def satisfies(code: str, complexity: str) -> bool:
    shortest, longest = lengths(complexity)
    return code.isdigit() and code.isascii() and shortest <= len(code) <= longest


def pepper(connection: Connection, key: vault.MasterKey, now: datetime) -> bytes:
    """The deployment's code pepper, made (and stored in the vault) on first use."""
    kind, name, path = PEPPER_PLACE
    row = connection.execute(select(secret_values.c.kind).where(
        secret_values.c.kind == kind, secret_values.c.name == name,
        secret_values.c.path == path)).first()
    if row is None:
        vault.store(connection, key, kind, {name: {path: os.urandom(32)}}, now)
    return vault.read(connection, key, kind, name)[path]


def hash_code(pepper_key: bytes, code: str) -> str:
    salt = os.urandom(16)
    digest = hmac.new(pepper_key, salt + code.encode(), hashlib.sha256).hexdigest()
    return f"{HASH_VERSION}${base64.b64encode(salt).decode()}${digest}"


def matches(pepper_key: bytes, stored: str, typed: str) -> bool:
    """Whether `typed` (spaces allowed) is the code of `stored`, compared in constant time."""
    try:
        version, salt_text, digest = stored.split("$")
        salt = base64.b64decode(salt_text)
    except ValueError:
        return False
    if version != HASH_VERSION:
        return False
    attempt = hmac.new(pepper_key, salt + normalize(typed).encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(attempt, digest)
