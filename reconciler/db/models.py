"""The database schema: one table per configuration kind, reference tables, runtime tables.

Configuration rows keep their canonical spec as JSON (what the reconciler compares) and promote
the fields other parts of the system query (a person's e-mail, a device's serial number, a
policy's friendly name) to typed columns; the promoted column is the truth for its field, so a
hand edit of it shows up as drift.

References between documents are rows of one table per *target* kind (`ref_roles`, ...), each
with a real foreign key that restricts deletion: a role that a profile grants cannot vanish
underneath it. Sources are recorded by (kind, id), so every kind may point at every other
without a web of nullable columns, and rows can be written in any order inside one transaction.

Runtime tables (jobs, devices, certificates, sessions, outbox, audit) belong to the service:
the reconciler never prunes them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

MANAGED_BY_SPEC = "spec"
MANAGED_BY_HAND = "manual"
MANAGED_BY_BUILTIN = "builtin"


@dataclass(frozen=True, slots=True)
class KindTable:
    """How one kind is stored: its table and the spec fields promoted to typed columns."""

    kind: str
    table: Table
    promoted: dict[str, tuple[str, ...]]  # column -> path in the canonical document


def _kind_table(kind: str, name: str, *columns: Column, promoted: dict[str, tuple[str, ...]]
                | None = None) -> KindTable:
    table = Table(
        name, metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("name", String(128), nullable=False, unique=True),
        Column("managed_by", String(16), nullable=False, default=MANAGED_BY_SPEC),
        Column("protected", Boolean, nullable=False, default=False),
        Column("generation", Integer, nullable=False, default=1),
        Column("document", JSON, nullable=False),  # canonical {metadata: {...}, spec: {...}}
        Column("created_at", DateTime(timezone=True), nullable=False),
        Column("updated_at", DateTime(timezone=True), nullable=False),
        *columns,
    )
    return KindTable(kind, table, promoted or {})


def _spec(*path: str) -> tuple[str, ...]:
    return ("spec", *path)


KIND_TABLES: dict[str, KindTable] = {t.kind: t for t in (
    _kind_table("Settings", "settings"),
    _kind_table("Role", "roles"),
    _kind_table(
        "Person", "people",
        Column("full_name", String(256)),
        Column("first_name", String(128)),
        Column("last_name", String(128)),
        Column("email", String(320)),
        Column("cell", String(64)),
        Column("user_principal_name", String(320)),
        Column("employee_id", String(64)),
        Column("group_name", String(128)),
        Column("enabled", Boolean),
        promoted={
            "full_name": _spec("fullName"), "first_name": _spec("firstName"),
            "last_name": _spec("lastName"), "email": _spec("email"), "cell": _spec("cell"),
            "user_principal_name": _spec("userPrincipalName"),
            "employee_id": _spec("employeeId"), "group_name": _spec("group"),
            "enabled": _spec("enabled"),
        },
    ),
    _kind_table("CertificateAuthority", "certificate_authorities"),
    _kind_table("CertificatePolicy", "certificate_policies",
                Column("friendly_name", String(128), unique=True),
                promoted={"friendly_name": _spec("friendlyName")}),
    _kind_table("CardFormat", "card_formats"),
    _kind_table("CardLayout", "card_layouts"),
    _kind_table("DnPolicy", "dn_policies"),
    _kind_table("ExternalSystem", "external_systems",
                Column("listener_type", String(32)),
                Column("enabled", Boolean),
                promoted={"listener_type": _spec("listenerType"), "enabled": _spec("enabled")}),
    _kind_table("CredentialProfile", "credential_profiles"),
    _kind_table("Device", "known_devices",
                Column("serial_number", String(128), unique=True),
                Column("platform", String(16)),
                promoted={"serial_number": _spec("serialNumber"), "platform": _spec("platform")}),
    _kind_table("MobileRequest", "mobile_requests"),
)}


def _ref_table(target: str) -> Table:
    target_table = KIND_TABLES[target].table
    return Table(
        f"ref_{target_table.name}", metadata,
        Column("source_kind", String(32), primary_key=True),
        Column("source_id", Integer, primary_key=True),
        Column("path", String(256), primary_key=True),
        Column("target_id", Integer,
               ForeignKey(f"{target_table.name}.id", ondelete="RESTRICT"), nullable=False),
        Index(f"ix_ref_{target_table.name}_target", "target_id"),
    )


# Kinds that documents refer to (see each spec's references()).
REF_TABLES: dict[str, Table] = {kind: _ref_table(kind) for kind in (
    "Role", "Person", "CertificateAuthority", "CertificatePolicy", "CardFormat", "CardLayout",
    "ExternalSystem", "CredentialProfile",
)}

# ---------------------------------------------------------------------------------------------
# Runtime tables: written by the service and by request handling, never pruned by reconcile.

request_jobs = Table(
    "request_jobs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("request_id", Integer, ForeignKey("mobile_requests.id", ondelete="SET NULL")),
    Column("request_name", String(128), nullable=False, index=True),
    Column("person_name", String(128), nullable=False),
    Column("profile_name", String(128), nullable=False),
    Column("kind", String(16), nullable=False),  # Issue, Replace, Update, Renew
    # awaiting-validation, pending, locked, collected, canceled
    Column("status", String(24), nullable=False),
    Column("delivery", String(16), nullable=False, default="Email"),
    Column("device_id", Integer),  # the device a Replace, Update or Renew is for
    Column("token", String(64), unique=True),  # the collection link's token
    Column("code_hash", String(256)),  # keyed, salted hash of the authentication code
    Column("code_sealed", LargeBinary),  # the code under the master key, until shown once
    Column("code_attempts", Integer, nullable=False, default=0),
    Column("expires_at", DateTime(timezone=True)),
    Column("requested_by", String(128)),
    Column("validated_by", String(128)),
    Column("reason", Text),
    Column("collected_at", DateTime(timezone=True)),
    Column("canceled_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

devices = Table(
    "devices", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("person_name", String(128), nullable=False),
    Column("profile_name", String(128), nullable=False),
    Column("job_id", Integer, ForeignKey("request_jobs.id", ondelete="SET NULL")),
    Column("serial_number", String(128)),
    Column("platform", String(16)),
    Column("mdm_device_id", String(128)),
    # provisioning (package sent, not confirmed), active, disabled, canceled, removed, abandoned
    Column("status", String(16), nullable=False),
    Column("token_hash", String(128)),  # SHA-256 of the device token (a 256-bit random value)
    Column("unlock_key", LargeBinary),  # under the master key
    Column("model", String(128)),
    Column("os_version", String(64)),
    Column("session_id", String(64)),  # the collection session that made it
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

certificates = Table(
    "certificates", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("authority_name", String(128), nullable=False),
    Column("serial_number", String(64), nullable=False),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="SET NULL")),
    Column("policy_name", String(128)),
    Column("subject", Text),
    Column("status", String(16), nullable=False),  # good, revoked, hold
    Column("revocation_reason", String(32)),
    Column("revoked_at", DateTime(timezone=True)),
    Column("not_after", DateTime(timezone=True)),
    Column("der", LargeBinary),
    Column("person_name", String(128), index=True),
    Column("source", String(16)),  # device (from a CSR), server (key generated here)
    Column("archived_key", LargeBinary),  # PKCS#8 DER under the master key (archiveKeys)
    Column("session_id", String(64), index=True),  # the collection session that issued it
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("authority_name", "serial_number"),
)

# Unlock codes an operator obtained for a device's challenge; the device confirms each once.
unlock_codes = Table(
    "unlock_codes", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    Column("challenge", String(64), nullable=False),
    Column("issued_by", String(256), nullable=False),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("confirmed_at", DateTime(timezone=True)),
    Index("ix_unlock_codes_device", "device_id", "challenge"),
)

# API keys of the devices API: each bound to a person, whose roles decide what it may do.
api_keys = Table(
    "api_keys", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("person_name", String(128), nullable=False),
    Column("label", String(128)),
    Column("key_hash", String(64), nullable=False, unique=True),  # SHA-256 of the secret
    Column("created_by", String(256), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)

# The newest CRL of each CA: served until a revocation changes its entries or it nears its
# nextUpdate, then signed anew with the next number.
crls = Table(
    "crls", metadata,
    Column("authority_name", String(128), primary_key=True),
    Column("number", Integer, nullable=False),
    Column("entries_digest", String(64), nullable=False),  # SHA-256 of the revoked entries
    Column("der", LargeBinary, nullable=False),
    Column("this_update", DateTime(timezone=True), nullable=False),
    Column("next_update", DateTime(timezone=True), nullable=False),
)

# Collection sessions: opened by a collect with the right code, live until completed or expired.
# The live ones count against Settings' maximum session count, across every worker and host.
sessions = Table(
    "sessions", metadata,
    Column("id", String(64), primary_key=True),
    Column("job_id", Integer, ForeignKey("request_jobs.id", ondelete="CASCADE"), nullable=False),
    Column("state", String(16), nullable=False),  # open, packaged, completed, expired
    Column("device", JSON),  # what the device reported at collect
    Column("items", JSON),  # the certificates the session delivers
    Column("device_id", Integer),  # made when the package is built
    # A renewal's new device token hash and sealed unlock key, put on the device at complete
    Column("renewal", JSON),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_sessions_live", "state", "expires_at"),
)

outbox = Table(
    "outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False, unique=True),  # also the Message-ID
    Column("job_id", Integer, ForeignKey("request_jobs.id", ondelete="SET NULL")),
    Column("purpose", String(16), nullable=False),  # link, code
    Column("channel", String(16), nullable=False),  # email, sms
    Column("system", String(128), nullable=False),  # the ExternalSystem that carries it
    Column("recipient", String(320), nullable=False),
    Column("payload", LargeBinary, nullable=False),  # {subject, text, html} under the master key
    Column("status", String(16), nullable=False),  # pending, sending, sent
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("claimed_by", String(64)),
    Column("claimed_at", DateTime(timezone=True)),
    Column("last_error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Index("ix_outbox_due", "status", "next_attempt_at"),
)

audit_events = Table(
    "audit_events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("action", String(32), nullable=False),
    Column("kind", String(32)),
    Column("name", String(128)),
    Column("details", JSON, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False, unique=True),
)

# Secrets of configuration objects, encrypted under the master key (reconciler/db/vault.py).
# Documents hold only a keyed fingerprint of each; the rows go with their object.
secret_values = Table(
    "secret_values", metadata,
    Column("kind", String(32), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("path", String(256), primary_key=True),  # "spec.clientSecret"
    Column("key_id", String(16), nullable=False),  # the master key that encrypted it
    Column("ciphertext", LargeBinary, nullable=False),  # nonce | AES-256-GCM ciphertext
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
