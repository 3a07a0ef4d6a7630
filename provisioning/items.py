"""Which certificates a collection delivers, and where each key comes from.

For each certificate of the credential profile:

- `IssueNew`: a new certificate. The device makes the key and sends a CSR (`device`), unless
  the policy archives keys: then the server makes the key, archives it encrypted and delivers
  it as PKCS#12 (`server`).
- `UseExisting`: the person's newest still-valid archived certificate of the policy, recovered
  as PKCS#12 (`archived`); when there is none, a new one as for IssueNew.
- `HistoricOnly`: only the person's archived certificates of the policy (`historic`), so mail
  encrypted to them stays readable; nothing new is issued.
- `archived: true` adds the person's other archived certificates of the policy (`historic`).

Certificates whose container the device's platform does not support are left out, as the
manual describes for the iOS System Store: a container named for iOS reaches only iOS devices,
one named for Android only Android devices; no container, or any other, reaches both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from provisioning.links import aware
from reconciler.db.models import KIND_TABLES, certificates
from specs.certificate_policy import CertificatePolicySpec
from specs.credential_profile import CredentialProfileSpec

DEVICE, SERVER, ARCHIVED, HISTORIC = "device", "server", "archived", "historic"


@dataclass(frozen=True, slots=True)
class Item:
    """One certificate a session delivers."""

    id: str
    policy: str  # CertificatePolicy metadata.name
    container: str | None
    key_size: int
    source: str
    certificate_id: int | None = None  # the archived certificate delivered (archived, historic)

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "policy": self.policy, "container": self.container,
                "keyAlgorithm": "RSA", "keySize": self.key_size, "source": self.source}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Item:
        identifier = value["id"]
        stored = int(identifier.split("-", 1)[1]) if value["source"] in (ARCHIVED, HISTORIC) \
            else None
        return cls(identifier, value["policy"], value["container"], value["keySize"],
                   value["source"], stored)


def supports(container: str | None, platform: str) -> bool:
    """Whether a device of `platform` can hold a certificate in `container`."""
    words = set(re.split(r"[^a-z0-9]+", (container or "").lower()))
    for named in ("ios", "android"):
        if named in words and not words & ({"ios", "android"} - {named}):
            return platform == named
    return True


def load_policies(connection: Connection, names: list[str]) -> dict[str, CertificatePolicySpec]:
    table = KIND_TABLES["CertificatePolicy"].table
    return {row.name: CertificatePolicySpec.model_validate(row.document["spec"])
            for row in connection.execute(select(table.c.name, table.c.document)
                                          .where(table.c.name.in_(names)))}


def plan_items(connection: Connection, profile: CredentialProfileSpec | None, person: str,
               platform: str, now: datetime) -> list[Item]:
    """The certificates a collection of `profile` by `person` on `platform` delivers."""
    if profile is None:
        return []
    policies = load_policies(connection, [c.policy for c in profile.certificates])
    archived = connection.execute(
        select(certificates.c.id, certificates.c.policy_name, certificates.c.status,
               certificates.c.not_after)
        .where(certificates.c.person_name == person, certificates.c.archived_key.is_not(None))
        .order_by(certificates.c.id.desc())).all()
    items: list[Item] = []
    recovered: set[int] = set()  # an archived certificate is delivered once, whoever asks

    def stored(row: Any, wanted: Any, policy: CertificatePolicySpec, source: str) -> None:
        if row.id not in recovered:
            recovered.add(row.id)
            items.append(_stored(row.id, wanted.policy, wanted.container, policy, source))

    for index, wanted in enumerate(profile.certificates):
        policy = policies.get(wanted.policy)
        if policy is None or not policy.enabled or not supports(wanted.container, platform):
            continue
        mine = [row for row in archived if row.policy_name == wanted.policy]
        delivered: int | None = None
        if wanted.mode == "HistoricOnly":
            for row in mine:
                stored(row, wanted, policy, HISTORIC)
            continue
        if wanted.mode == "UseExisting":
            valid = [row for row in mine if row.status == "good" and row.id not in recovered
                     and row.not_after is not None and aware(row.not_after) > now]
            if valid:
                delivered = valid[0].id
                stored(valid[0], wanted, policy, ARCHIVED)
        if delivered is None:
            items.append(Item(f"new-{index}", wanted.policy, wanted.container, policy.key_size,
                              SERVER if policy.archive_keys else DEVICE))
        if wanted.archived:
            for row in mine:
                stored(row, wanted, policy, HISTORIC)
    return items


def _stored(certificate_id: int, policy_name: str, container: str | None,
            policy: CertificatePolicySpec, source: str) -> Item:
    return Item(f"{source}-{certificate_id}", policy_name, container, policy.key_size, source,
                certificate_id)
