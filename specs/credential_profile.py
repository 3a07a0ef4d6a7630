"""CredentialProfile: what a mobile ID holds, who may request, validate, receive and collect it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field, model_validator

from specs.base import Document, Reference, SpecModel, UniqueList, refs
from specs.card_format import NO_FORMAT

CardEncoding = Literal[
    "IdentityAgent", "ContactChip", "ContactlessChip", "MagneticStripe", "SoftwareCertificates",
    "DeviceIdentity", "ExternallyIssued", "DerivedCredential",
]
NotificationScheme = Literal[
    "Default", "None", "MobileOnlyAuthCodeViaEmail", "MobileOnlyAuthCodeViaSms",
]
MdmStatus = Literal["Unrestricted", "MustBeRegistered", "MustNotBeRegistered"]

RoleNames = Annotated[list[str], UniqueList]


class Issuance(SpecModel):
    """Issuance settings."""

    require_fingerprints: bool = Field(
        False, description="Require fingerprints at issuance (mobile devices cannot).")
    require_facial_biometrics: bool = Field(
        False, description="Require facial biometrics at issuance (mobile devices cannot).")
    notification_scheme: NotificationScheme = Field(
        "Default",
        description="Default: link by e-mail, code by e-mail and SMS; None: nothing sent, the "
        "operator shows the code; MobileOnlyAuthCodeViaEmail: link and code by separate "
        "e-mails; MobileOnlyAuthCodeViaSms: link by e-mail, code by SMS.")
    validate_issuance: bool = Field(
        False, description="A second person with Can Validate must approve each request.")


class ProfileCertificate(SpecModel):
    """A certificate the profile issues or delivers."""

    policy: str = Field(description="The CertificatePolicy (metadata.name).")
    container: str | None = Field(
        None, description="Container of the card format; leave empty for MDM-managed apps.")
    mode: Literal["IssueNew", "UseExisting", "HistoricOnly"] = Field(
        "IssueNew", description="Issue a new certificate, deliver the existing one, or deliver "
        "only historic (archived) certificates.")
    archived: bool = Field(False, description="Also deliver archived certificates.")
    unmanaged_pfx: bool = Field(
        False, description="Deliver an uploaded PFX certificate that was not issued here.")


class ProfileRoles(SpecModel):
    """Which roles may do what with the profile."""

    can_receive: RoleNames = Field(default_factory=list, description="Roles that may receive.")
    can_request: RoleNames = Field(default_factory=list, description="Roles that may request.")
    can_validate: RoleNames = Field(default_factory=list, description="Roles that may validate.")
    can_collect: RoleNames = Field(
        default_factory=list, description="Roles that may collect; receivers need it too.")
    can_unlock: RoleNames = Field(default_factory=list, description="Roles that may unlock.")


class MdmRestrictions(SpecModel):
    """Checks against an MDM at collection."""

    status: MdmStatus = Field(
        "Unrestricted", description="Unrestricted; MustBeRegistered (known to the MDM); "
        "MustNotBeRegistered (no MDM id, or not found).")
    external_system: str | None = Field(None, description="The MDM ExternalSystem to ask.")
    required_attributes: str | None = Field(
        None,
        description="Case-sensitive conditions on the MDM record, field=value, comma "
        "separated; nested fields with dots (platform_info.platform_name=iOS).")

    def conditions(self) -> list[tuple[str, str]]:
        """The required attributes as (dotted field, value) pairs."""
        if not self.required_attributes:
            return []
        pairs = []
        for part in self.required_attributes.split(","):
            field, _, value = part.partition("=")
            pairs.append((field.strip(), value.strip()))
        return pairs


class CredentialProfileSpec(SpecModel):
    """A credential profile."""

    description: str | None = Field(None, description="What the profile issues.")
    card_encoding: CardEncoding = Field(
        "IdentityAgent", description="IdentityAgent for mobile IDs.")
    issuance: Issuance = Field(default_factory=Issuance, description="Issuance settings.")
    mobile_device_restrictions: Literal["Any", "KnownMobiles", "MyMobilesOnly"] = Field(
        "Any", description="Any device; KnownMobiles (registered Devices); MyMobilesOnly "
        "(devices registered to the person).")
    card_format: str = Field(
        NO_FORMAT, description="Card format: Mobile for the system store, None for MDM apps.")
    certificates: list[ProfileCertificate] = Field(
        default_factory=list, description="Certificates delivered to the device.")
    roles: ProfileRoles = Field(default_factory=ProfileRoles, description="Role permissions.")
    card_layouts: Annotated[list[str], UniqueList] = Field(
        default_factory=list, description="Badge layouts sent with the mobile ID.")
    authentication_types: Annotated[list[Literal["Face", "Fingerprint"]], UniqueList] = Field(
        default_factory=list, description="Extra ways to open the key store; PIN always works.")
    mdm_restrictions: MdmRestrictions = Field(
        default_factory=MdmRestrictions, description="MDM checks at collection.")

    @model_validator(mode="after")
    def _unique_policies(self) -> CredentialProfileSpec:
        seen: set[tuple[str, str]] = set()
        for certificate in self.certificates:
            key = (certificate.policy, certificate.mode)
            if key in seen:
                raise ValueError(f"certificate policy {certificate.policy!r} is listed twice "
                                 f"with mode {certificate.mode}")
            seen.add(key)
        return self


class CredentialProfile(Document):
    """A credential profile."""

    kind: Literal["CredentialProfile"]
    spec: CredentialProfileSpec

    def references(self) -> Iterator[Reference]:
        spec = self.spec
        yield Reference("CardFormat", spec.card_format, ("spec", "cardFormat"))
        for index, certificate in enumerate(spec.certificates):
            yield Reference("CertificatePolicy", certificate.policy,
                            ("spec", "certificates", index, "policy"))
        for field in ProfileRoles.model_fields:
            alias = ProfileRoles.model_fields[field].alias or field
            yield from refs("Role", getattr(spec.roles, field), "spec", "roles", alias)
        yield from refs("CardLayout", spec.card_layouts, "spec", "cardLayouts")
        if spec.mdm_restrictions.external_system is not None:
            yield Reference("ExternalSystem", spec.mdm_restrictions.external_system,
                            ("spec", "mdmRestrictions", "externalSystem"))
