"""Building a mobile-ID package: certificates issued, keys archived, layouts and agent policy.

`Builder.load` reads everything one session needs in one go; `build` does the slow work
outside any transaction (RSA keys for server-made certificates, signing each certificate);
`record` then writes the device, its certificates and the audit event, and signs and
envelopes the package, whose device id only the insert gives.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from provisioning import ca
from provisioning.dn import DnError, DnPolicies, load_person
from provisioning.items import ARCHIVED, DEVICE, HISTORIC, SERVER, Item, load_policies
from reconciler.db import vault
from reconciler.db.audit import AuditEvent, append
from reconciler.db.devices import unlock_place
from reconciler.db.models import KIND_TABLES, certificates, devices
from specs.card_layout import BACK_SUFFIX, CardLayoutSpec
from specs.certificate_policy import CertificatePolicySpec
from specs.credential_profile import CredentialProfileSpec
from specs.person import Person
from specs.settings import SettingsSpec

FORMAT_VERSION = 1
PKCS12_ROUNDS = 100_000
_FIELD_RE = re.compile(r"\[\[\[?People\.([A-Za-z0-9_]+)\]?\]\]", re.IGNORECASE)


def archive_place(authority: str, serial: int) -> str:
    """What an archived key's ciphertext is bound to."""
    return f"Certificate/{authority}/{serial:x}/key"


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass(slots=True)
class Issued:
    """A certificate the package delivers, with its key when the server holds one."""

    item: Item
    certificate: x509.Certificate
    authority: str
    chain: tuple[x509.Certificate, ...]
    key: rsa.RSAPrivateKey | None = None  # server, archived, historic
    new: bool = True  # issued now (recorded), or recovered from the archive

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {**self.item.as_json(), "certificate": pem(self.certificate),
                                 "chain": [pem(c) for c in self.chain]}
        if self.key is not None:
            password = secrets.token_urlsafe(18)
            encryption = (serialization.PrivateFormat.PKCS12.encryption_builder()
                          .kdf_rounds(PKCS12_ROUNDS)
                          .key_cert_algorithm(pkcs12.PBES.PBESv2SHA256AndAES256CBC)
                          .hmac_hash(hashes.SHA256()).build(password.encode()))
            entry["pkcs12"] = b64(pkcs12.serialize_key_and_certificates(
                self.item.policy.encode(), self.key, self.certificate, list(self.chain),
                encryption))
            entry["pkcs12Password"] = password
        return entry


@dataclass(slots=True)
class Built:
    """What `build` made: the certificates and the secrets of the new device."""

    issued: list[Issued]
    device_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    unlock_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))


@dataclass(slots=True)
class Builder:
    """Everything one session's package needs, read once."""

    key: vault.MasterKey
    job: Any
    session: Any
    now: datetime
    settings: SettingsSpec
    profile: CredentialProfileSpec
    person: Person
    policies: dict[str, CertificatePolicySpec]
    authorities: dict[str, ca.Authority]
    dn: DnPolicies
    signer: ca.Signer
    stored: dict[int, Any]  # archived certificate rows the session delivers
    layouts: dict[str, CardLayoutSpec]

    @classmethod
    def load(cls, connection: Connection, key: vault.MasterKey, job: Any, session: Any,
             now: datetime) -> Builder:
        items = [Item.from_json(item) for item in session.items]
        profile_table = KIND_TABLES["CredentialProfile"].table
        profile = CredentialProfileSpec.model_validate(connection.execute(
            select(profile_table.c.document).where(
                profile_table.c.name == job.profile_name)).scalar_one()["spec"])
        person = load_person(connection, job.person_name)
        if person is None:
            raise DnError(f"person {job.person_name!r} no longer exists")
        policies = load_policies(connection, sorted({item.policy for item in items}))
        stored_ids = [item.certificate_id for item in items if item.certificate_id is not None]
        stored = {row.id: row for row in connection.execute(
            select(certificates).where(certificates.c.id.in_(stored_ids)))} if stored_ids else {}
        # The policies' CAs issue; a recovered certificate keeps the chain of the CA that
        # issued it, which may since have left the policy.
        names = {p.authority for p in policies.values()} | {
            row.authority_name for row in stored.values()}
        settings = ca.settings_spec(connection)
        authorities = {name: ca.load_authority(connection, key, name, settings=settings)
                       for name in sorted(names)}
        layout_table = KIND_TABLES["CardLayout"].table
        names = [n for n in profile.card_layouts if not n.endswith(BACK_SUFFIX)]
        layouts = {row.name: CardLayoutSpec.model_validate(row.document["spec"])
                   for row in connection.execute(select(layout_table.c.name,
                                                        layout_table.c.document)
                                                 .where(layout_table.c.name.in_(names)))}
        return cls(key, job, session, now, SettingsSpec.model_validate(settings), profile,
                   person, policies, authorities, DnPolicies.load(connection, settings),
                   ca.load_content_signer(connection, key, settings=settings,
                                          authorities=authorities), stored, layouts)

    @property
    def items(self) -> list[Item]:
        return [Item.from_json(item) for item in self.session.items]

    def event(self, action: str, **details: Any) -> AuditEvent:
        device = self.session.device or {}
        return AuditEvent(f"{self.job.person_name} (device {device.get('serialNumber')})",
                          action, "MobileRequest", self.job.request_name,
                          {"job": self.job.id, "person": self.job.person_name,
                           "profile": self.job.profile_name, **details})

    # --- The slow part, outside any transaction ------------------------------------------

    def build(self, csrs: dict[str, Any]) -> Built:
        """Issue or recover every certificate of the session; CsrError for a bad CSR."""
        wanted = {item.id for item in self.items if item.source == DEVICE}
        extra = sorted(set(csrs) - wanted)
        if extra:
            raise ca.CsrError("CSR_UNEXPECTED", f"no certificate of this session takes a CSR: "
                                                f"{', '.join(extra)}")
        missing = sorted(wanted - set(csrs))
        if missing:
            raise ca.CsrError("CSR_MISSING", f"a CSR is needed for: {', '.join(missing)}")
        values = self.person.dn_fields()
        issued = []
        for item in self.items:
            policy = self.policies[item.policy]
            authority = self.authorities[policy.authority]
            if item.source == DEVICE:
                text = csrs[item.id]
                if not isinstance(text, str):
                    raise ca.CsrError("CSR_MALFORMED", f"the CSR of {item.id} must be PEM text")
                public_key = ca.check_csr(text, max(ca.MINIMUM_RSA_BITS, policy.key_size))
                subject = self.dn.subject(policy.friendly_name, values)
                issued.append(Issued(item, authority.issue(public_key, subject, policy,
                                                           self.now),
                                     authority.name, authority.chain))
            elif item.source == SERVER:
                private_key = ca.generate_key(policy.key_size)
                subject = self.dn.subject(policy.friendly_name, values)
                certificate = authority.issue(private_key.public_key(), subject, policy,
                                              self.now)
                issued.append(Issued(item, certificate, authority.name, authority.chain,
                                     private_key))
            else:
                issued.append(self._recover(item))
        return Built(issued)

    def _recover(self, item: Item) -> Issued:
        row = self.stored[item.certificate_id or 0]
        authority = self.authorities[row.authority_name]
        certificate = x509.load_der_x509_certificate(row.der)
        plaintext = self.key.decrypt(row.archived_key, archive_place(row.authority_name,
                                                                     certificate.serial_number))
        private_key = serialization.load_der_private_key(plaintext, password=None)
        assert isinstance(private_key, rsa.RSAPrivateKey)
        return Issued(item, certificate, row.authority_name, authority.chain, private_key,
                      new=False)

    def document(self, built: Built, device_id: int) -> dict[str, Any]:
        """The package: what the device stores, before signing."""
        return {
            "formatVersion": FORMAT_VERSION,
            "deviceId": device_id,
            "deviceToken": built.device_token,
            "unlockKey": b64(built.unlock_key),
            "request": self.job.request_name,
            "person": self.job.person_name,
            "profile": self.job.profile_name,
            "issuedAt": self.now.isoformat(),
            "certificates": [issued.as_json() for issued in built.issued],
            "cardLayouts": self._layouts(),
            "agentPolicy": self._agent_policy(),
        }

    def _layouts(self) -> list[dict[str, Any]]:
        values = {name.lower(): value for name, value in self.person.dn_fields().items()}
        server = self.settings.video.image_upload_server
        layouts = []
        for name in self.profile.card_layouts:
            layout = self.layouts.get(name)
            if layout is None:  # a _back layout, or one removed meanwhile
                continue
            image = layout.front_image
            layouts.append({
                "name": name, "orientation": layout.orientation, "image": image,
                "format": image.rsplit(".", 1)[-1].lower() if image else None,
                "imageUrl": f"https://{server}/{image}" if server and image else None,
                "textFields": [{"name": text.name, "x": text.x, "y": text.y,
                                "fontSize": text.font_size,
                                "text": _FIELD_RE.sub(lambda m: values.get(m[1].lower(), ""),
                                                      text.source)}
                               for text in layout.text_fields
                               if text.orientation == "Horizontal"],
            })
        return layouts

    def _agent_policy(self) -> dict[str, Any]:
        agent, auth = self.settings.identity_agent_policy, self.settings.auth
        return {
            "logLevel": agent.log_level,
            "maximumLogStorageSpaceMb": agent.maximum_log_storage_space_mb,
            "maximumNumberOfLogFiles": agent.maximum_number_of_log_files,
            "maximumRetryAttempts": agent.maximum_retry_attempts,
            "minimumRetryDelaySeconds": agent.minimum_retry_delay_seconds,
            "administratorEmailAddress": agent.administrator_email_address,
            "authenticationTypes": ["PIN", *self.profile.authentication_types],
            "externalAuthServerUrl": auth.auth_server_url_external or auth.auth_server_url,
        }

    # --- The write, inside the transaction ------------------------------------------------

    def record(self, connection: Connection, built: Built
               ) -> tuple[int, dict[str, Any] | None, dict[str, Any]]:
        """Insert the new certificates, and the device unless this is a renewal.

        Returns the device id, a renewal's pending device facts (None for a new device) and
        the package. A renewal or update changes nothing on the device yet: its new token,
        unlock key and facts wait in the session until the device confirms (`confirm_renewal`).
        """
        device = self.session.device or {}
        token_hash = hashlib.sha256(built.device_token.encode()).hexdigest()
        unlock_key = self.key.encrypt(built.unlock_key, unlock_place(token_hash))
        facts = {"token_hash": token_hash, "mdm_device_id": device.get("mdmDeviceId"),
                 "model": device.get("model"), "os_version": device.get("osVersion")}
        renewal = None
        if self.session.device_id is not None:  # a renewal or update: the same device
            device_id = self.session.device_id
            renewal = {**facts, "unlock_key": base64.b64encode(unlock_key).decode()}
        else:
            device_id = connection.execute(insert(devices).values(
                person_name=self.job.person_name, profile_name=self.job.profile_name,
                job_id=self.job.id, serial_number=device.get("serialNumber"),
                platform=device.get("platform"), status="provisioning",
                session_id=self.session.id, created_at=self.now, updated_at=self.now,
                unlock_key=unlock_key, **facts).returning(devices.c.id)).scalar_one()
        rows = []
        for issued in built.issued:
            if not issued.new:
                continue
            certificate = issued.certificate
            policy = self.policies[issued.item.policy]
            archived = None
            if issued.key is not None and policy.archive_keys:
                archived = self.key.encrypt(
                    issued.key.private_bytes(serialization.Encoding.DER,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()),
                    archive_place(issued.authority, certificate.serial_number))
            rows.append({
                "authority_name": issued.authority,
                "serial_number": format(certificate.serial_number, "x"),
                "device_id": device_id, "policy_name": issued.item.policy,
                "subject": certificate.subject.rfc4514_string(), "status": "good",
                "not_after": certificate.not_valid_after_utc,
                "der": certificate.public_bytes(serialization.Encoding.DER),
                "person_name": self.job.person_name, "source": issued.item.source,
                "archived_key": archived, "session_id": self.session.id,
                "created_at": self.now})
        if rows:
            connection.execute(insert(certificates), rows)
        append(connection, [self.event(
            "package-issue", device_id=device_id,
            certificates=[{"id": i.item.id, "source": i.item.source,
                           "serial": format(i.certificate.serial_number, "x"),
                           "subject": i.certificate.subject.rfc4514_string()}
                          for i in built.issued])], self.now)
        return device_id, renewal, self.document(built, device_id)


def confirm_renewal(connection: Connection, session: Any, now: datetime) -> None:
    """The device confirmed a renewal or update: its new token, unlock key and facts take
    effect, and the certificates the new ones replace (same policies) are revoked as
    superseded."""
    pending = dict(session.renewal)
    pending["unlock_key"] = base64.b64decode(pending["unlock_key"])
    connection.execute(update(devices).where(devices.c.id == session.device_id)
                       .values(**pending, updated_at=now))
    renewed = select(certificates.c.policy_name).where(certificates.c.session_id == session.id)
    connection.execute(update(certificates).where(
        certificates.c.device_id == session.device_id, certificates.c.policy_name.in_(renewed),
        certificates.c.session_id.is_distinct_from(session.id),
        certificates.c.status.in_(("good", "hold"))).values(
        status="revoked", revocation_reason="superseded", revoked_at=now))


__all__ = ["ARCHIVED", "HISTORIC", "Builder", "Built", "Issued", "confirm_renewal"]
