"""Settings: the system-wide options, one section per tab of the product's operation settings.

Every option carries the product's default, with one deliberate difference: the authentication
code complexity defaults to `06-08N`. The product's `04-08N` allows 4-digit codes (about 13 bits),
below the 20 bits NIST SP 800-63B asks of a single-use secret; six digits give about 20.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

from pydantic import Field

from specs.base import Document, Reference, SingletonMetadata, SpecModel
from specs.secrets import CertificateRef, SecretRef

CODE_COMPLEXITY_PATTERN = r"^\d{2}-\d{2}N$"
DEFAULT_CODE_COMPLEXITY = "06-08N"


def _section(model: type[SpecModel], description: str) -> object:
    return Field(default_factory=model, description=description)


class IosOtaSettings(SpecModel):
    """Over-the-air provisioning of certificates to iOS."""

    credential_profile: str | None = Field(
        None, description="Credential profile (a Device Identity profile) used for iOS OTA.")
    organization: str | None = Field(None, description="Organization shown on the OTA message.")
    display_name: str | None = Field(None, description="Name of the OTA update on the device.")
    description: str | None = Field(None, description="Description of the OTA update.")


class CertificatesSettings(SpecModel):
    """The Certificates tab: where devices collect, and how strong the one-time codes are."""

    mobile_certificate_recovery_service_url: str | None = Field(
        None,
        description="Base URL devices use to collect a mobile ID (https://host); it starts "
        "every collection link, despite the name.",
    )
    web_server_external_address: str | None = Field(
        None, description="URL clients use to fetch QR codes when the web server sits in "
        "another domain; usually empty.")
    certificate_recovery_password_complexity: str = Field(
        DEFAULT_CODE_COMPLEXITY,
        pattern=CODE_COMPLEXITY_PATTERN,
        description="Authentication code length as xx-yyN: xx minimum and yy maximum digits. "
        "Default 06-08N (the product's 04-08N is below NIST SP 800-63B's 20 bits).",
    )
    ios_ota: IosOtaSettings = _section(IosOtaSettings, "iOS over-the-air provisioning.")


class BiometricsSettings(SpecModel):
    """The Biometrics tab. Mobile devices cannot verify fingerprints: keep both off."""

    verify_fingerprints_during_card_update: bool = Field(
        False, description="Verify fingerprints when a credential is updated (breaks mobile).")
    verify_fingerprints_during_card_unlock: bool = Field(
        False, description="Verify fingerprints when a credential is unlocked (breaks mobile).")


class VideoSettings(SpecModel):
    """The Video tab: where badge images are served from."""

    image_upload_server: str | None = Field(
        None, description="Host name or address of the web server holding badge images.")


class IdentityAgentPolicySettings(SpecModel):
    """The Identity Agent Policy tab: session cap and the agent's logging and retry policy."""

    maximum_session_count: int = Field(
        1, ge=0, description="0 refuses mobile issuance and update; 1 means no limit; N allows "
        "at most N concurrent sessions, beyond which mobile clients get HTTP 503.")
    administrator_email_address: str | None = Field(
        None, description="Address the agent sends its log files to.")
    log_level: int = Field(
        2, ge=0, le=6,
        description="Agent debug log level: 0 NONE, 1 FATAL, 2 ERROR, 3 WARNING, 4 INFO, "
        "5 DEBUG, 6 VERBOSE.")
    maximum_log_storage_space_mb: int = Field(
        10, ge=1, description="Space, in MB, log files may take on a device.")
    maximum_number_of_log_files: int = Field(
        -1, ge=-1, description="Log files kept on a device: -1 as many as fit, 0 no logging.")
    maximum_retry_attempts: int = Field(
        5, ge=0, description="Times the agent reconnects after a lost connection.")
    minimum_retry_delay_seconds: int = Field(
        10, ge=0, description="Seconds between reconnection attempts.")


class GeneralSettings(SpecModel):
    """The General tab: SMS notifications through an e-mail-to-SMS gateway."""

    sms_email_notifications: bool = Field(
        False, description="Allow authentication codes to be sent by SMS.")
    sms_gateway_url_for_notifications: str | None = Field(
        None, description="E-mail-to-SMS gateway domain: messages go to <cell>@<gateway>.")


class NotificationsSettings(SpecModel):
    """The Notifications tab."""

    send_email_notifications: bool = Field(
        False, description="Allow notifications by e-mail (needs an Smtp external system).")
    send_mobile_otp_via_sms: bool = Field(
        False, description="Send the one-time code by SMS while the link goes by e-mail.")
    mail_format: Literal["HTML", "Text"] = Field("HTML", description="Format of e-mails.")


class DevicesSettings(SpecModel):
    """The Devices tab, plus mimctl's own device policy."""

    mobile_provision_via_email: bool = Field(
        False, description="Allow provisioning notifications by e-mail.")
    mobile_provision_via_sms: bool = Field(
        False, description="Allow provisioning notifications by SMS.")
    revoke_on_device_cancel: bool = Field(
        True, description="Revoke a device's certificates when the device itself cancels "
        "(the product does not; the certificates would stay valid).")


class IssuanceProcessesSettings(SpecModel):
    """The Issuance Processes tab: where devices without the app can download it."""

    app_download_url_android: str | None = Field(None, description="Android app download URL.")
    app_download_url_ios: str | None = Field(None, description="iOS app download URL.")


class SecuritySettings(SpecModel):
    """The Security Settings server tab."""

    envelope_transport_key_algorithm: Literal["AES", "3DES"] = Field(
        "AES", description="Cipher of the package envelope; 3DES only for old agents.")


class ContentSigningSettings(SpecModel):
    """What signs mobile-ID packages (SHA-256): a certificate and key, or a built-in CA."""

    certificate: CertificateRef | None = Field(None, description="Signing certificate.")
    key: SecretRef | None = Field(None, description="Private key of the signing certificate.")
    authority: str | None = Field(
        None, description="Instead of certificate and key: the built-in CertificateAuthority "
        "that issues (and renews) the content-signing certificate.")


class AuthSettings(SpecModel):
    """The provisioning service's authorization server addresses."""

    auth_server_url: str | None = Field(
        None, description="Authorization server URL as the provisioning service reaches it.")
    auth_server_url_external: str | None = Field(
        None, description="Authorization server URL as devices reach it (behind a proxy).")
    allow_unsafe_http: bool = Field(False, description="Allow http:// URLs (testing only).")
    anonymous_access: bool = Field(False, description="Allow anonymous access to the API.")


class DnProcessorSettings(SpecModel):
    """The DN processor's fallback for policies without a DN policy."""

    default: str | None = Field(
        None, description="DN template used when no DnPolicy names the certificate policy.")


class RequestsSettings(SpecModel):
    """mimctl's policy for pending requests and their one-time codes."""

    code_lifetime_days: int = Field(7, ge=1, le=365, description="Days a request can be collected.")
    max_code_attempts: int = Field(
        5, ge=1, description="Wrong authentication codes before a request locks.")


class SessionsSettings(SpecModel):
    """mimctl's policy for provisioning sessions."""

    timeout_seconds: int = Field(
        600, ge=30, description="Seconds a collection session stays open without activity.")


class SettingsSpec(SpecModel):
    """All system options."""

    certificates: CertificatesSettings = _section(CertificatesSettings, "Certificates tab.")
    biometrics: BiometricsSettings = _section(BiometricsSettings, "Biometrics tab.")
    video: VideoSettings = _section(VideoSettings, "Video tab.")
    identity_agent_policy: IdentityAgentPolicySettings = _section(
        IdentityAgentPolicySettings, "Identity Agent Policy tab.")
    general: GeneralSettings = _section(GeneralSettings, "General tab.")
    notifications: NotificationsSettings = _section(NotificationsSettings, "Notifications tab.")
    devices: DevicesSettings = _section(DevicesSettings, "Devices tab.")
    issuance_processes: IssuanceProcessesSettings = _section(
        IssuanceProcessesSettings, "Issuance Processes tab.")
    security: SecuritySettings = _section(SecuritySettings, "Security settings.")
    content_signing: ContentSigningSettings = _section(
        ContentSigningSettings, "Content signing certificate and key.")
    auth: AuthSettings = _section(AuthSettings, "Authorization server addresses.")
    dn_processor: DnProcessorSettings = _section(DnProcessorSettings, "DN processor default.")
    requests: RequestsSettings = _section(RequestsSettings, "Pending request policy.")
    sessions: SessionsSettings = _section(SessionsSettings, "Provisioning session policy.")


class Settings(Document):
    """The Settings singleton (`metadata.name: system`)."""

    kind: Literal["Settings"]
    metadata: SingletonMetadata
    spec: SettingsSpec = Field(default_factory=SettingsSpec)

    singleton: ClassVar[bool] = True

    def references(self) -> Iterator[Reference]:
        profile = self.spec.certificates.ios_ota.credential_profile
        if profile is not None:
            yield Reference("CredentialProfile", profile,
                            ("spec", "certificates", "iosOta", "credentialProfile"))
        authority = self.spec.content_signing.authority
        if authority is not None:
            yield Reference("CertificateAuthority", authority,
                            ("spec", "contentSigning", "authority"))
