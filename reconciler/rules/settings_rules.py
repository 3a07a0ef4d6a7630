"""Rules: settings_rules (see reconciler/rules/__init__.py for the id ranges).

The Settings options the manual says must be right before a device can collect, update or unlock
a mobile ID: biometrics off, a sound authentication code, a complete collection URL, https,
the authorization server as devices see it, and a content signing certificate that can sign.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509

from reconciler.load import FieldPath, SpecDocument
from reconciler.rules.registry import Finding, RuleContext, rule

DEVICE_IDENTITY = "DeviceIdentity"
MIN_CODE_DIGITS = 6  # about 20 bits: NIST SP 800-63B 5.1.2.1 / 5.1.3.2
MAX_FAILED_ATTEMPTS = 100  # NIST SP 800-63B 5.2.2
COLLECTION_URL = ("certificates", "mobileCertificateRecoveryServiceUrl")
CONTENT_SIGNING = "contentSigning"
MAX_CERTIFICATE_BYTES = 1024 * 1024


# --- shared look-ups ---------------------------------------------------------------------------


def option_text(value: str | None) -> str | None:
    """A text option as written, or None when it is absent or blank."""
    if value is None or not value.strip():
        return None
    return value.strip()


def identity_agent_profiles(ctx: RuleContext) -> list[SpecDocument]:
    """The CredentialProfiles that issue mobile IDs to the Identity Agent."""
    return [document for document, _ in ctx.profiles(mobile_only=True)]


def profile_names(documents: list[SpecDocument], limit: int = 2) -> str:
    """`profile 'a'`, `profiles 'a' and 'b'`, `profiles 'a', 'b' and 3 more`."""
    names = [repr(d.name) for d in documents]
    if len(names) == 1:
        return f"profile {names[0]}"
    if len(names) <= limit + 1:
        return f"profiles {', '.join(names[:-1])} and {names[-1]}"
    return f"profiles {', '.join(names[:limit])} and {len(names) - limit} more"


def _host(url: str | None) -> str | None:
    """The host of an absolute http(s) URL, lowercased; None when it is not one."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return host


# --- biometrics (3.2.3, 3.8.1) ------------------------------------------------------------------


def _biometric_setting(ctx: RuleContext, enabled: bool, key: str, operation: str
                       ) -> Iterator[Finding]:
    if not enabled:
        return
    profiles = identity_agent_profiles(ctx)
    if profiles:
        yield ctx.settings_finding(
            ("biometrics", key),
            f"mobile devices cannot verify fingerprints, so {operation} of Identity Agent "
            f"credentials ({profile_names(profiles)}) fails; set {key} to false")


@rule("MIM101", "error",
      "Fingerprint verification during card update is on while Identity Agent profiles exist",
      "3.2.3")
def fingerprints_on_update(ctx: RuleContext) -> Iterator[Finding]:
    yield from _biometric_setting(
        ctx, ctx.settings.biometrics.verify_fingerprints_during_card_update,
        "verifyFingerprintsDuringCardUpdate", "every update")


@rule("MIM102", "error",
      "Fingerprint verification during card unlock is on while Identity Agent profiles exist",
      "3.2.3")
def fingerprints_on_unlock(ctx: RuleContext) -> Iterator[Finding]:
    yield from _biometric_setting(
        ctx, ctx.settings.biometrics.verify_fingerprints_during_card_unlock,
        "verifyFingerprintsDuringCardUnlock", "every unlock")


@rule("MIM103", "error", "A credential profile requires fingerprints at issuance", "3.8.1")
def profile_requires_fingerprints(ctx: RuleContext) -> Iterator[Finding]:
    for document in ctx.of_kind("CredentialProfile"):
        if ctx.spec(document).issuance.require_fingerprints:
            yield Finding(document, ("spec", "issuance", "requireFingerprints"),
                          "mobile devices cannot capture fingerprints at issuance; set "
                          "requireFingerprints to false")


@rule("MIM104", "error", "A credential profile requires facial biometrics at issuance", "3.8.1")
def profile_requires_facial_biometrics(ctx: RuleContext) -> Iterator[Finding]:
    for document in ctx.of_kind("CredentialProfile"):
        if ctx.spec(document).issuance.require_facial_biometrics:
            yield Finding(document, ("spec", "issuance", "requireFacialBiometrics"),
                          "mobile devices cannot capture facial biometrics at issuance; set "
                          "requireFacialBiometrics to false (authenticationTypes: [Face] lets "
                          "the holder open the key store with their face)")


# --- authentication codes (3.2.2) ---------------------------------------------------------------

COMPLEXITY = ("certificates", "certificateRecoveryPasswordComplexity")


def _complexity(ctx: RuleContext) -> tuple[int, int]:
    """(minimum, maximum) digits of the `xx-yyN` option (the schema enforces the shape)."""
    text = ctx.settings.certificates.certificate_recovery_password_complexity
    minimum, maximum = text.rstrip("N").split("-")
    return int(minimum), int(maximum)


@rule("MIM105", "error",
      "The authentication code complexity xx-yyN does not have 1 <= xx <= yy", "3.2.2")
def code_complexity_range(ctx: RuleContext) -> Iterator[Finding]:
    minimum, maximum = _complexity(ctx)
    if minimum < 1:
        message = ("a minimum length of 0 allows an empty authentication code; make the minimum "
                   f"at least {MIN_CODE_DIGITS:02d}, like '06-08N'")
    elif minimum > maximum:
        message = (f"the minimum length {minimum:02d} is above the maximum {maximum:02d}; write "
                   f"the smaller number first, like '{maximum:02d}-{minimum:02d}N'")
    else:
        return
    yield ctx.settings_finding(COMPLEXITY, message)


@rule("MIM106", "warning",
      "Authentication codes may be shorter than 6 digits (under the 20 bits NIST SP 800-63B "
      "asks for)", "3.2.2")
def code_complexity_strength(ctx: RuleContext) -> Iterator[Finding]:
    minimum, maximum = _complexity(ctx)
    if 1 <= minimum < MIN_CODE_DIGITS:
        bits = round(minimum * math.log2(10))
        yield ctx.settings_finding(
            COMPLEXITY,
            f"{minimum}-digit codes carry about {bits} bits, below the 20 bits NIST SP 800-63B "
            f"(5.1.2.1, 5.1.3.2) asks of a one-time code; make the minimum at least "
            f"{MIN_CODE_DIGITS:02d}, like '{MIN_CODE_DIGITS:02d}-{max(maximum, 8):02d}N'")


@rule("MIM107", "error",
      "More than 100 wrong authentication codes are allowed before a request locks "
      "(NIST SP 800-63B 5.2.2)", "3.2.2")
def code_attempts(ctx: RuleContext) -> Iterator[Finding]:
    attempts = ctx.settings.requests.max_code_attempts
    if attempts > MAX_FAILED_ATTEMPTS:
        yield ctx.settings_finding(
            ("requests", "maxCodeAttempts"),
            f"{attempts} wrong authentication codes before a request locks is more than the "
            f"{MAX_FAILED_ATTEMPTS} consecutive failures NIST SP 800-63B 5.2.2 allows; set "
            f"maxCodeAttempts to {MAX_FAILED_ATTEMPTS} or fewer (the default is 5)")


# --- addresses (3.2.1, 3.12.1, 7.4) -------------------------------------------------------------


@rule("MIM108", "error",
      "The collection URL (mobileCertificateRecoveryServiceUrl) is missing or not an absolute "
      "http(s) URL with a host: collection links would be incomplete", "7.4")
def collection_url(ctx: RuleContext) -> Iterator[Finding]:
    written = ctx.settings.certificates.mobile_certificate_recovery_service_url
    url = option_text(written)
    if url is None:
        profiles = ctx.of_kind("CredentialProfile")
        if not profiles:
            return  # nothing to collect yet
        finding = ctx.settings_finding(
            COLLECTION_URL,
            "the collection URL is not set, so every collection link would be incomplete; set "
            "mobileCertificateRecoveryServiceUrl to the address devices reach the service at, "
            "like https://mim.example.com", fallback=profiles[0])
    elif _host(url) is None:
        finding = ctx.settings_finding(
            COLLECTION_URL,
            f"{written!r} is not an absolute http(s) URL with a host, so every collection link "
            "would be incomplete; write the scheme and host, like https://mim.example.com")
    else:
        return
    if finding is not None:
        yield finding


# The address options an http:// URL must not appear in: (Settings section, key) and the
# ExternalSystem keys (whichever its listener type has).
SETTINGS_URLS: tuple[tuple[str, str], ...] = (
    ("certificates", "mobileCertificateRecoveryServiceUrl"),
    ("certificates", "webServerExternalAddress"),
    ("auth", "authServerUrl"), ("auth", "authServerUrlExternal"),
    ("issuanceProcesses", "appDownloadUrlAndroid"), ("issuanceProcesses", "appDownloadUrlIos"),
)
SYSTEM_URLS = ("baseUrl", "url", "loginBaseUrl", "graphBaseUrl", "identityBaseUrl")
_UNSAFE_HTTP = ("plain http:// is unencrypted; use https://, or set auth.allowUnsafeHttp to true "
                "in Settings on a test system only")


def _is_http(url: str | None) -> bool:
    return url is not None and url.strip().lower().startswith("http://")


@rule("MIM109", "error", "An http:// URL while auth.allowUnsafeHttp is false", "3.2.1")
def unsafe_http(ctx: RuleContext) -> Iterator[Finding]:
    settings = ctx.settings
    if settings.auth.allow_unsafe_http:
        return
    document = ctx.settings_document
    if document is not None:
        for section, key in SETTINGS_URLS:
            if _is_http(getattr(getattr(settings, _snake(section)), _snake(key))):
                yield Finding(document, ("spec", section, key), _UNSAFE_HTTP)
    for system in ctx.of_kind("ExternalSystem"):
        spec = ctx.spec(system)
        for key in SYSTEM_URLS:
            if _is_http(getattr(spec, _snake(key), None)):
                yield Finding(system, ("spec", key), _UNSAFE_HTTP)


def _snake(camel: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)


@rule("MIM110", "error",
      "The authorization server's host differs from the collection URL's (a proxy) but "
      "auth.authServerUrlExternal is not set", "3.12.1")
def external_auth_server(ctx: RuleContext) -> Iterator[Finding]:
    auth = ctx.settings.auth
    if option_text(auth.auth_server_url_external) is not None:
        return
    internal = _host(option_text(auth.auth_server_url))
    public = _host(option_text(ctx.settings.certificates.mobile_certificate_recovery_service_url))
    if internal is None or public is None or internal == public:
        return
    yield ctx.settings_finding(
        ("auth", "authServerUrlExternal"),
        f"devices reach the service at {public!r} but authServerUrl names {internal!r}, an "
        "address behind the proxy they cannot use; set authServerUrlExternal to the "
        "authorization server's URL as devices reach it")


# --- Identity Agent policy and transport (3.2.5, 3.2.7) -----------------------------------------


@rule("MIM111", "warning", "Maximum session count 0 refuses every mobile issuance and update",
      "3.2.5")
def session_count_zero(ctx: RuleContext) -> Iterator[Finding]:
    if ctx.settings.identity_agent_policy.maximum_session_count == 0:
        yield ctx.settings_finding(
            ("identityAgentPolicy", "maximumSessionCount"),
            "0 refuses every mobile issuance and update; set 1 for no limit, or the number of "
            "concurrent sessions your servers can carry")


@rule("MIM112", "warning",
      "The envelope transport key algorithm is 3DES (only for old Identity Agent apps)", "3.2.7")
def envelope_3des(ctx: RuleContext) -> Iterator[Finding]:
    if ctx.settings.security.envelope_transport_key_algorithm == "3DES":
        yield ctx.settings_finding(
            ("security", "envelopeTransportKeyAlgorithm"),
            "3DES is only for Identity Agent apps too old to support AES (iOS 4.2, Android "
            "4.1.2813 and earlier); set AES once no such app is in use")


# --- content signing (3.1) ----------------------------------------------------------------------


@rule("MIM113", "error",
      "Nothing signs mobile-ID packages (no contentSigning) while Identity Agent profiles exist",
      "3.1")
def content_signing_missing(ctx: RuleContext) -> Iterator[Finding]:
    signing = ctx.settings.content_signing
    if signing.authority is not None or signing.certificate is not None:
        return
    profiles = identity_agent_profiles(ctx)
    if profiles:
        yield ctx.settings_finding(
            (CONTENT_SIGNING,),
            f"nothing signs the mobile IDs of {profile_names(profiles)}, so devices cannot "
            "collect them; set contentSigning.authority to a CertificateAuthority, or "
            "contentSigning.certificate and key", fallback=profiles[0])


def _signing_certificate(ctx: RuleContext) -> tuple[x509.Certificate | None, str | None]:
    """The content signing certificate, or why it cannot be read (None, None: none is set)."""
    reference = ctx.settings.content_signing.certificate
    document = ctx.settings_document
    if reference is None or document is None:
        return None, None
    if reference.pem is not None:
        data, what = reference.pem.encode("utf-8"), "the inline certificate"
    else:
        path = Path(document.source.path).parent / str(reference.file)
        what = f"certificate file {reference.file!r}"
        try:
            if path.stat().st_size > MAX_CERTIFICATE_BYTES:
                return None, (f"{what} is over {MAX_CERTIFICATE_BYTES:,} bytes, too big for a "
                              "certificate; point at the signing certificate itself")
            data = path.read_bytes()
        except OSError as error:
            return None, (f"cannot read {what} ({error.strerror or error}); fix the path, which "
                          "is relative to the folder of the Settings file")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data), None
        return x509.load_der_x509_certificate(data), None
    except ValueError:
        return None, (f"{what} is not a PEM or DER X.509 certificate; give the content signing "
                      "certificate itself (-----BEGIN CERTIFICATE-----... or a binary .cer)")


@rule("MIM114", "error",
      "The content signing certificate is expired, not yet valid, or cannot be read", "3.1")
def content_signing_validity(ctx: RuleContext) -> Iterator[Finding]:
    certificate, problem = _signing_certificate(ctx)
    message = problem
    if certificate is not None:
        now = datetime.now(UTC)
        not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
        if now > not_after:
            message = (f"the content signing certificate expired on {not_after:%Y-%m-%d}; "
                       "replace it with a current one, or let contentSigning.authority issue "
                       "and renew it")
        elif now < not_before:
            message = (f"the content signing certificate is not valid before "
                       f"{not_before:%Y-%m-%d %H:%M} UTC; use a certificate that is valid now")
    if message is not None:
        yield ctx.settings_finding((CONTENT_SIGNING, "certificate"), message)


_KEY_USAGES = (
    ("digital_signature", "digitalSignature"), ("content_commitment", "contentCommitment"),
    ("key_encipherment", "keyEncipherment"), ("data_encipherment", "dataEncipherment"),
    ("key_agreement", "keyAgreement"), ("key_cert_sign", "keyCertSign"),
    ("crl_sign", "cRLSign"),
)


@rule("MIM115", "error",
      "The content signing certificate has no KeyUsage extension with digitalSignature", "3.1")
def content_signing_key_usage(ctx: RuleContext) -> Iterator[Finding]:
    certificate, _ = _signing_certificate(ctx)  # MIM114 reports an unreadable certificate
    if certificate is None:
        return
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        message = ("the content signing certificate has no KeyUsage extension, and mimctl "
                   "requires one that includes digitalSignature; use a certificate issued for "
                   "signing")
    except ValueError:
        message = ("the content signing certificate's extensions cannot be parsed; use a "
                   "certificate whose KeyUsage includes digitalSignature")
    else:
        if usage.digital_signature:
            return
        present = ", ".join(name for attribute, name in _KEY_USAGES
                            if getattr(usage, attribute)) or "nothing"
        message = (f"the content signing certificate's KeyUsage ({present}) lacks "
                   "digitalSignature; use a certificate whose KeyUsage includes it")
    yield ctx.settings_finding((CONTENT_SIGNING, "certificate"), message)


@rule("MIM116", "error",
      "contentSigning needs either an authority or a certificate with its key, not both",
      "3.1")
def content_signing_form(ctx: RuleContext) -> Iterator[Finding]:
    signing = ctx.settings.content_signing
    has_certificate, has_key = signing.certificate is not None, signing.key is not None
    path: FieldPath
    if signing.authority is not None and (has_certificate or has_key):
        path = (CONTENT_SIGNING, "authority")
        message = ("give either authority or certificate and key, not both; remove authority "
                   "to sign with your own certificate, or remove certificate and key")
    elif has_certificate and not has_key:
        path = (CONTENT_SIGNING, "key")
        message = ("the content signing certificate has no key; add contentSigning.key "
                   "({env: NAME}, {file: PATH} or a sealed value)")
    elif has_key and not has_certificate:
        path = (CONTENT_SIGNING, "certificate")
        message = ("contentSigning.key has no certificate; add contentSigning.certificate "
                   "(inline PEM or {file: PATH})")
    else:
        return
    yield ctx.settings_finding(path, message)


# --- iOS OTA and badge images (3.7.4, 3.2.4) ----------------------------------------------------


@rule("MIM117", "error", "The iOS OTA credential profile is not a Device Identity profile",
      "3.7.4")
def ios_ota_profile(ctx: RuleContext) -> Iterator[Finding]:
    name = ctx.settings.certificates.ios_ota.credential_profile
    profile = ctx.get("CredentialProfile", name) if name is not None else None
    if profile is None:
        return  # unset, or unknown (the reference check reports it)
    encoding = ctx.spec(profile).card_encoding
    if encoding != DEVICE_IDENTITY:
        yield ctx.settings_finding(
            ("certificates", "iosOta", "credentialProfile"),
            f"iOS OTA needs a Device Identity profile, but {name!r} has cardEncoding "
            f"{encoding}; name a profile with cardEncoding {DEVICE_IDENTITY}")


@rule("MIM118", "error",
      "No image upload server (video.imageUploadServer) while a profile sends card layouts",
      "3.2.4")
def image_upload_server(ctx: RuleContext) -> Iterator[Finding]:
    if option_text(ctx.settings.video.image_upload_server) is not None:
        return
    profiles = [d for d in ctx.of_kind("CredentialProfile") if ctx.spec(d).card_layouts]
    if profiles:
        yield ctx.settings_finding(
            ("video", "imageUploadServer"),
            f"{profile_names(profiles)} send{'s' if len(profiles) == 1 else ''} badge layouts, "
            "but devices cannot get their images; set imageUploadServer to the host name of the "
            "web server holding them", fallback=profiles[0])
