"""ExternalSystem: the MDM connectors and notification gateways mimctl talks to.

The spec is discriminated on `listenerType`: Intune, WorkspaceOne, BlackBerry, Smtp,
HttpSmsGateway. Base URLs, token endpoints included, are options with the vendors' public
defaults, so a test (or a sovereign cloud) can point a connector elsewhere.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from specs.base import DisplayNameMetadata, Document, SpecModel, violation
from specs.secrets import CertificateRef, SecretRef

HttpUrl = Annotated[str, Field(pattern=r"^https?://[^\s/?#]+[^\s]*$",
                               description="An http(s) URL.")]
HeaderName = Annotated[str, Field(pattern=r"^[A-Za-z0-9!#$%&'*+^_`|~-]+$")]
MDM_LISTENER_TYPES = ("Intune", "WorkspaceOne", "BlackBerry")
_CREDENTIAL_HEADER = re.compile(r"authorization|token|secret|password|api-?key|cookie", re.I)


class _System(SpecModel):
    description: str | None = Field(None, description="What the system is.")
    enabled: bool = Field(True, description="A disabled system is never contacted.")


class ClientCertificate(SpecModel):
    """A client certificate and its private key."""

    certificate: CertificateRef = Field(description="The certificate registered with the vendor.")
    key: SecretRef = Field(description="Its private key (PEM).")


class IntuneSystem(_System):
    """Microsoft Intune through Microsoft Graph, with an Entra client-credentials token."""

    listener_type: Literal["Intune"]
    tenant_id: str = Field(min_length=1, description="Directory (tenant) ID in Entra.")
    client_id: str = Field(min_length=1, description="Application (client) ID in Entra.")
    client_secret: SecretRef | None = Field(None, description="Client secret of the app.")
    client_certificate: ClientCertificate | None = Field(
        None, description="Client certificate of the app (instead of a secret).")
    login_base_url: HttpUrl = Field(
        "https://login.microsoftonline.com", description="Entra token endpoint base URL.")
    graph_base_url: HttpUrl = Field(
        "https://graph.microsoft.com", description="Microsoft Graph base URL.")

    @model_validator(mode="after")
    def _credential(self) -> IntuneSystem:
        if (self.client_secret is None) == (self.client_certificate is None):
            raise violation("MIM501", "give exactly one of clientSecret and clientCertificate")
        return self


class _UemSystem(_System):
    """Shared fields of the UEMs that offer certificate or user/password authentication."""

    authentication: Literal["Certificate", "UserPassword"] = Field(
        description="Certificate, or UserPassword (basic authentication).")
    client_certificate: SecretRef | None = Field(
        None, description="PKCS#12 (PFX) file with the client certificate and key.")
    certificate_password: SecretRef | None = Field(None, description="Password of the PFX.")
    username: str | None = Field(None, description="Account name (UserPassword).")
    password: SecretRef | None = Field(None, description="Account password (UserPassword).")

    def _check_authentication(self, certificate_fields: tuple[str, ...]) -> None:
        if self.authentication == "Certificate":
            missing = [f for f in certificate_fields if getattr(self, _snake(f)) is None]
            extra = [f for f in ("username", "password") if getattr(self, f) is not None]
        else:
            missing = [f for f in ("username", "password") if getattr(self, f) is None]
            extra = [f for f in (*certificate_fields, "certificatePassword")
                     if getattr(self, _snake(f)) is not None]
        if missing:
            raise violation("MIM502", f"authentication {self.authentication} needs "
                                      f"{', '.join(missing)}")
        if extra:
            verb = "does" if len(extra) == 1 else "do"
            raise violation("MIM502", f"{', '.join(extra)} {verb} not apply to authentication "
                            f"{self.authentication}; remove {'it' if len(extra) == 1 else 'them'}")


def _snake(camel: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)


class WorkspaceOneSystem(_UemSystem):
    """VMware (Omnissa) Workspace ONE UEM REST API."""

    listener_type: Literal["WorkspaceOne"]
    base_url: HttpUrl = Field(description="Workspace ONE URL, e.g. https://as1234.awmdm.com.")
    key_name: str = Field("aw-tenant-code", min_length=1, description="API key header name.")
    key_value: SecretRef = Field(description="API key (tenant code).")

    @model_validator(mode="after")
    def _auth(self) -> WorkspaceOneSystem:
        self._check_authentication(("clientCertificate",))
        return self


class BlackBerrySystem(_UemSystem):
    """BlackBerry UEM Web Services REST API."""

    listener_type: Literal["BlackBerry"]
    base_url: HttpUrl = Field(
        description="UEM URL, https://server:18084 on premises or https://host:443 in the cloud.")
    tenant_id: str = Field(min_length=1, description="Tenant GUID (SRPID), e.g. S12345678.")
    client_id: str | None = Field(
        None, description="client_credentials client in BlackBerry Enterprise Identity.")
    identity_base_url: HttpUrl = Field(
        "https://idp.blackberry.com", description="BlackBerry Enterprise Identity token base URL.")

    @model_validator(mode="after")
    def _auth(self) -> BlackBerrySystem:
        self._check_authentication(("clientId", "clientCertificate"))
        return self


class SmtpSystem(_System):
    """An SMTP relay for e-mail notifications (and e-mail-to-SMS gateways)."""

    listener_type: Literal["Smtp"]
    host: str = Field(min_length=1, description="SMTP server host name.")
    port: int = Field(587, ge=1, le=65535, description="SMTP port.")
    security: Literal["StartTls", "Tls", "None"] = Field(
        "StartTls", description="StartTls (587), Tls (465) or None (trusted networks only).")
    username: str | None = Field(None, description="Login name, if the server needs one.")
    password: SecretRef | None = Field(None, description="Login password.")
    from_address: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="Sender address.")


class HttpSmsGatewaySystem(_System):
    """An HTTP SMS gateway: one POST per message, body from a template."""

    listener_type: Literal["HttpSmsGateway"]
    url: HttpUrl = Field(description="Gateway endpoint.")
    body_template: str = Field(
        '{"to": "{number}", "text": "{message}"}',
        description="Request body; {number} and {message} are replaced (JSON-escaped).")
    content_type: str = Field("application/json", description="Content-Type of the request.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers (no credentials: those go in "
        "secretHeaders).")
    secret_headers: dict[HeaderName, SecretRef] = Field(
        default_factory=dict, description="Request headers that carry credentials (an API key).")
    token: SecretRef | None = Field(None, description="Bearer token sent as Authorization.")

    @model_validator(mode="after")
    def _no_credentials_in_headers(self) -> HttpSmsGatewaySystem:
        for name in self.headers:
            if _CREDENTIAL_HEADER.search(name):
                raise ValueError(f"header {name!r} looks like a credential: move it to "
                                 "secretHeaders as {env: NAME}, {file: PATH} or a sealed value")
        return self


ExternalSystemSpec = Annotated[
    Union[IntuneSystem, WorkspaceOneSystem, BlackBerrySystem, SmtpSystem, HttpSmsGatewaySystem],
    Field(discriminator="listener_type"),
]


class ExternalSystem(Document):
    """An external system, named as in the product."""

    kind: Literal["ExternalSystem"]
    metadata: DisplayNameMetadata
    spec: ExternalSystemSpec

    @property
    def is_mdm(self) -> bool:
        return self.spec.listener_type in MDM_LISTENER_TYPES
