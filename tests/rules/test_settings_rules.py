"""MIM1xx: Settings options, authentication codes, addresses, biometrics and content signing.

Each case breaks BASE as little as possible and asserts the rule's exact findings; the same
change with its fix applied draws none from that rule.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.rules.base import changed, findings

S = "settings.yaml:{}: Settings/system: spec.{}: {}"
SPEC = "spec:\n"
COLLECTION = "mobileCertificateRecoveryServiceUrl: https://mim.example.com\n"
SIGNING = "  contentSigning:\n    authority: issuing-ca\n"
CERTIFICATE_ONLY = "  contentSigning:\n    certificate: {file: signing.pem}\n"
KEY_ONLY = "  contentSigning:\n    key: {env: SIGNING_KEY}\n"
SCHEME = "    notificationScheme: Default\n"
PROFILE = "profiles.yaml:{}: CredentialProfile/mobile-standard: spec.{}: {}"


@pytest.fixture
def found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """One rule's findings for a repository written in a fresh folder, which is the working
    directory (so files read as settings.yaml, profiles.yaml, ...)."""

    def run(rule_id: str, files: dict[str, str], folder: str = "repo") -> list[str]:
        root = tmp_path / folder
        root.mkdir(exist_ok=True)
        monkeypatch.chdir(root)
        return findings(root, files, rule_id)

    return run


def settings(text: str, old: str = SPEC) -> dict[str, tuple[str, str]]:
    """BASE's Settings with `text` (spec-level YAML, 2-space indented) written after `old`."""
    return {"settings.yaml": (old, old + text)}


def certificate(days: tuple[int, int] = (-1, 365),
                usages: tuple[str, ...] | None = ("digital_signature",)) -> str:
    """A self-signed PEM certificate valid from/to `days` from now, with these key usages."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Content Signing")])
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + timedelta(days=days[0]))
               .not_valid_after(now + timedelta(days=days[1])))
    if usages is not None:
        flags = dict.fromkeys(("digital_signature", "content_commitment", "key_encipherment",
                               "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                               "encipher_only", "decipher_only"), False)
        builder = builder.add_extension(
            x509.KeyUsage(**{**flags, **dict.fromkeys(usages, True)}), critical=True)
    certificate = builder.sign(key, hashes.SHA256())
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def day(offset: int) -> str:
    return f"{datetime.now(UTC) + timedelta(days=offset):%Y-%m-%d}"


def signed_by_file(pem: str | None = None, name: str = "signing.pem") -> dict:
    """BASE signing packages with its own certificate file (and key) instead of the CA."""
    files = {"replace": {"settings.yaml": (SIGNING, "  contentSigning:\n    certificate: "
                                           f"{{file: {name}}}\n    key: {{env: SIGNING_KEY}}\n")}}
    if pem is not None:
        files["add"] = {name: pem}
    return files


# --- one parametrised table: rule, broken change, expected findings, fixed change -------------

DEVICE_IDENTITY = """
    apiVersion: mim/v1
    kind: CredentialProfile
    metadata:
      name: ios-ota
    spec:
      cardEncoding: DeviceIdentity
      issuance:
        notificationScheme: None
    """
BADGE = """
    apiVersion: mim/v1
    kind: CardLayout
    metadata:
      name: Staff Badge
    spec:
      frontImage: staff.png
    """
HTTP_GATEWAY = """
    apiVersion: mim/v1
    kind: ExternalSystem
    metadata:
      name: SMS
    spec:
      listenerType: HttpSmsGateway
      url: http://sms.example.com/send
    """
WITH_BADGE = {"profiles.yaml": ("  cardFormat: Mobile\n",
                                "  cardFormat: Mobile\n  cardLayouts: [Staff Badge]\n")}

CASES = [
    pytest.param(
        "MIM101",
        {"replace": settings("  biometrics:\n    verifyFingerprintsDuringCardUpdate: true\n")},
        ["settings.yaml:7:41: Settings/system: spec.biometrics.verifyFingerprintsDuringCardUpdate: "
         "mobile devices cannot verify fingerprints, so every update of Identity Agent "
         "credentials (profile 'mobile-standard') fails; set verifyFingerprintsDuringCardUpdate "
         "to false"],
        {"replace": settings("  biometrics:\n    verifyFingerprintsDuringCardUpdate: false\n")},
        id="MIM101"),
    pytest.param(
        "MIM102",
        {"replace": settings("  biometrics:\n    verifyFingerprintsDuringCardUnlock: true\n")},
        ["settings.yaml:7:41: Settings/system: spec.biometrics.verifyFingerprintsDuringCardUnlock: "
         "mobile devices cannot verify fingerprints, so every unlock of Identity Agent "
         "credentials (profile 'mobile-standard') fails; set verifyFingerprintsDuringCardUnlock "
         "to false"],
        {"replace": settings("  biometrics:\n    verifyFingerprintsDuringCardUnlock: false\n")},
        id="MIM102"),
    pytest.param(
        "MIM103",
        {"replace": {"profiles.yaml": (SCHEME, SCHEME + "    requireFingerprints: true\n")}},
        [PROFILE.format("9:26", "issuance.requireFingerprints",
                        "mobile devices cannot capture fingerprints at issuance; set "
                        "requireFingerprints to false")],
        {"replace": {"profiles.yaml": (SCHEME, SCHEME + "    requireFingerprints: false\n")}},
        id="MIM103"),
    pytest.param(
        "MIM104",
        {"replace": {"profiles.yaml": (SCHEME, SCHEME + "    requireFacialBiometrics: true\n")}},
        [PROFILE.format("9:30", "issuance.requireFacialBiometrics",
                        "mobile devices cannot capture facial biometrics at issuance; set "
                        "requireFacialBiometrics to false (authenticationTypes: [Face] lets the "
                        "holder open the key store with their face)")],
        {"replace": {"profiles.yaml": (SCHEME, SCHEME + "    requireFacialBiometrics: false\n")}},
        id="MIM104"),
    pytest.param(
        "MIM105",
        {"replace": settings("    certificateRecoveryPasswordComplexity: 10-08N\n", COLLECTION)},
        [S.format("8:44", "certificates.certificateRecoveryPasswordComplexity",
                  "the minimum length 10 is above the maximum 08; write the smaller number "
                  "first, like '08-10N'")],
        {"replace": settings("    certificateRecoveryPasswordComplexity: 08-10N\n", COLLECTION)},
        id="MIM105-reversed"),
    pytest.param(
        "MIM105",
        {"replace": settings("    certificateRecoveryPasswordComplexity: 00-08N\n", COLLECTION)},
        [S.format("8:44", "certificates.certificateRecoveryPasswordComplexity",
                  "a minimum length of 0 allows an empty authentication code; make the minimum "
                  "at least 06, like '06-08N'")],
        {"replace": settings("    certificateRecoveryPasswordComplexity: 06-08N\n", COLLECTION)},
        id="MIM105-zero"),
    pytest.param(
        "MIM106",
        {"replace": settings("    certificateRecoveryPasswordComplexity: 04-08N\n", COLLECTION)},
        [S.format("8:44", "certificates.certificateRecoveryPasswordComplexity",
                  "warning: 4-digit codes carry about 13 bits, below the 20 bits NIST SP "
                  "800-63B (5.1.2.1, 5.1.3.2) asks of a one-time code; make the minimum at "
                  "least 06, like '06-08N'")],
        {"replace": settings("    certificateRecoveryPasswordComplexity: 06-08N\n", COLLECTION)},
        id="MIM106"),
    pytest.param(
        "MIM107",
        {"replace": settings("  requests:\n    maxCodeAttempts: 101\n")},
        [S.format("7:22", "requests.maxCodeAttempts",
                  "101 wrong authentication codes before a request locks is more than the 100 "
                  "consecutive failures NIST SP 800-63B 5.2.2 allows; set maxCodeAttempts to "
                  "100 or fewer (the default is 5)")],
        {"replace": settings("  requests:\n    maxCodeAttempts: 100\n")},
        id="MIM107"),
    pytest.param(
        "MIM108",
        {"replace": {"settings.yaml": ("https://mim.example.com", "mim.example.com")}},
        [S.format("7:42", "certificates.mobileCertificateRecoveryServiceUrl",
                  "'mim.example.com' is not an absolute http(s) URL with a host, so every "
                  "collection link would be incomplete; write the scheme and host, like "
                  "https://mim.example.com")],
        {"replace": {"settings.yaml": ("https://mim.example.com", "https://mim.example.com/")}},
        id="MIM108-no-scheme"),
    pytest.param(
        "MIM108",
        {"replace": {"settings.yaml": ("    " + COLLECTION, "    webServerExternalAddress: "
                                       "https://web.example.com\n")}},
        [S.format("7:5", "certificates.mobileCertificateRecoveryServiceUrl",
                  "the collection URL is not set, so every collection link would be incomplete; "
                  "set mobileCertificateRecoveryServiceUrl to the address devices reach the "
                  "service at, like https://mim.example.com")],
        {"replace": {"settings.yaml": ("    " + COLLECTION, "    webServerExternalAddress: "
                                       "https://web.example.com\n    " + COLLECTION)}},
        id="MIM108-missing"),
    pytest.param(
        "MIM109",
        {"replace": {"settings.yaml": ("https://mim.example.com", "http://mim.example.com"),
},
         "add": {"sms.yaml": HTTP_GATEWAY}},
        [S.format("7:42", "certificates.mobileCertificateRecoveryServiceUrl",
                  "plain http:// is unencrypted; use https://, or set auth.allowUnsafeHttp to "
                  "true in Settings on a test system only"),
         "sms.yaml:7:8: ExternalSystem/SMS: spec.url: plain http:// is unencrypted; use "
         "https://, or set auth.allowUnsafeHttp to true in Settings on a test system only"],
        {"replace": {"settings.yaml": ("https://mim.example.com", "http://mim.example.com\n"
                                       "  auth:\n    allowUnsafeHttp: true")},
         "add": {"sms.yaml": HTTP_GATEWAY}},
        id="MIM109"),
    pytest.param(
        "MIM110",
        {"replace": settings("  auth:\n    authServerUrl: https://idp.intranet.local/oauth2\n")},
        [S.format("7:5", "auth.authServerUrlExternal",
                  "devices reach the service at 'mim.example.com' but authServerUrl names "
                  "'idp.intranet.local', an address behind the proxy they cannot use; set "
                  "authServerUrlExternal to the authorization server's URL as devices reach it")],
        {"replace": settings("  auth:\n    authServerUrl: https://idp.intranet.local/oauth2\n"
                             "    authServerUrlExternal: https://mim.example.com/oauth2\n")},
        id="MIM110"),
    pytest.param(
        "MIM111",
        {"replace": settings("  identityAgentPolicy:\n    maximumSessionCount: 0\n")},
        [S.format("7:26", "identityAgentPolicy.maximumSessionCount",
                  "warning: 0 refuses every mobile issuance and update; set 1 for no limit, or "
                  "the number of concurrent sessions your servers can carry")],
        {"replace": settings("  identityAgentPolicy:\n    maximumSessionCount: 1\n")},
        id="MIM111"),
    pytest.param(
        "MIM112",
        {"replace": settings("  security:\n    envelopeTransportKeyAlgorithm: 3DES\n")},
        [S.format("7:36", "security.envelopeTransportKeyAlgorithm",
                  "warning: 3DES is only for Identity Agent apps too old to support AES (iOS "
                  "4.2, Android 4.1.2813 and earlier); set AES once no such app is in use")],
        {"replace": settings("  security:\n    envelopeTransportKeyAlgorithm: AES\n")},
        id="MIM112"),
    pytest.param(
        "MIM113",
        {"replace": {"settings.yaml": (SIGNING, "")}},
        [S.format("6:3", "contentSigning",
                  "nothing signs the mobile IDs of profile 'mobile-standard', so devices cannot "
                  "collect them; set contentSigning.authority to a CertificateAuthority, or "
                  "contentSigning.certificate and key")],
        {},  # BASE: the CA signs
        id="MIM113"),
    pytest.param(
        "MIM116",
        {"replace": {"settings.yaml": (SIGNING, SIGNING + "    key: {env: SIGNING_KEY}\n")}},
        [S.format("22:16", "contentSigning.authority",
                  "give either authority or certificate and key, not both; remove authority to "
                  "sign with your own certificate, or remove certificate and key")],
        {},  # BASE: the CA signs
        id="MIM116-authority-and-key"),
    pytest.param(
        "MIM116",
        {"replace": {"settings.yaml": (SIGNING, KEY_ONLY)}},
        [S.format("22:5", "contentSigning.certificate",
                  "contentSigning.key has no certificate; add contentSigning.certificate "
                  "(inline PEM or {file: PATH})")],
        {"replace": {"settings.yaml": (SIGNING,
                                       KEY_ONLY + "    certificate: {file: signing.pem}\n")}},
        id="MIM116-key-only"),
    pytest.param(
        "MIM116",
        {"replace": {"settings.yaml": (SIGNING, CERTIFICATE_ONLY)}},
        [S.format("22:5", "contentSigning.key",
                  "the content signing certificate has no key; add contentSigning.key "
                  "({env: NAME}, {file: PATH} or a sealed value)")],
        {"replace": {"settings.yaml": (SIGNING,
                                       CERTIFICATE_ONLY + "    key: {env: SIGNING_KEY}\n")}},
        id="MIM116-certificate-only"),
    pytest.param(
        "MIM117",
        {"replace": settings("    iosOta:\n      credentialProfile: mobile-standard\n",
                             COLLECTION)},
        [S.format("9:26", "certificates.iosOta.credentialProfile",
                  "iOS OTA needs a Device Identity profile, but 'mobile-standard' has "
                  "cardEncoding IdentityAgent; name a profile with cardEncoding DeviceIdentity")],
        {"replace": settings("    iosOta:\n      credentialProfile: ios-ota\n", COLLECTION),
         "add": {"ota.yaml": DEVICE_IDENTITY}},
        id="MIM117"),
    pytest.param(
        "MIM118",
        {"replace": {**WITH_BADGE, "settings.yaml": ("  video:\n    imageUploadServer: "
                                                     "mim.example.com\n", "")},
         "add": {"badges.yaml": BADGE}},
        [S.format("6:3", "video.imageUploadServer",
                  "profile 'mobile-standard' sends badge layouts, but devices cannot get their "
                  "images; set imageUploadServer to the host name of the web server holding them")],
        {"replace": WITH_BADGE, "add": {"badges.yaml": BADGE}},
        id="MIM118"),
]


@pytest.mark.parametrize(("rule_id", "broken", "expected", "fixed"), CASES)
def test_rule(found, rule_id, broken, expected, fixed) -> None:
    assert found(rule_id, changed(**broken), "broken") == expected
    assert found(rule_id, changed(**fixed), "fixed") == []


def test_without_settings_the_collection_url_finding_lands_on_a_profile(found) -> None:
    assert found("MIM108", changed(remove=("settings.yaml",)), "broken") == [
        "profiles.yaml:1:1: CredentialProfile/mobile-standard: the collection URL is not set, so "
        "every collection link would be incomplete; set mobileCertificateRecoveryServiceUrl to "
        "the address devices reach the service at, like https://mim.example.com (there is no "
        "Settings document: add one)"]
    assert found("MIM108", changed(), "fixed") == []


# --- content signing certificates (MIM114, MIM115) ---------------------------------------------

AT = "settings.yaml:22:18: Settings/system: spec.contentSigning.certificate: "
UNREADABLE = ("cannot read certificate file 'signing.pem' (No such file or directory); fix the "
              "path, which is relative to the folder of the Settings file")


@pytest.mark.parametrize(("rule_id", "pem", "message"), [
    pytest.param("MIM114", lambda: certificate(days=(-30, -1)),
                 lambda: f"the content signing certificate expired on {day(-1)}; replace it with "
                 "a current one, or let contentSigning.authority issue and renew it",
                 id="MIM114-expired"),
    pytest.param("MIM114", lambda: certificate(days=(1, 365)),
                 lambda: f"the content signing certificate is not valid before {day(1)} 12:00 "
                 "UTC; use a certificate that is valid now", id="MIM114-not-yet-valid"),
    pytest.param("MIM114", lambda: None, lambda: UNREADABLE, id="MIM114-missing-file"),
    pytest.param("MIM114", lambda: "not a certificate\n",
                 lambda: "certificate file 'signing.pem' is not a PEM or DER X.509 certificate; "
                 "give the content signing certificate itself (-----BEGIN CERTIFICATE-----... or "
                 "a binary .cer)", id="MIM114-garbage"),
    pytest.param("MIM115", lambda: certificate(usages=None),
                 lambda: "the content signing certificate has no KeyUsage extension, and mimctl "
                 "requires one that includes digitalSignature; use a certificate issued for "
                 "signing", id="MIM115-no-key-usage"),
    pytest.param("MIM115", lambda: certificate(usages=("key_cert_sign", "crl_sign")),
                 lambda: "the content signing certificate's KeyUsage (keyCertSign, cRLSign) lacks "
                 "digitalSignature; use a certificate whose KeyUsage includes it",
                 id="MIM115-no-digital-signature"),
])
def test_signing_certificate_file(found, rule_id, pem, message) -> None:
    assert found(rule_id, changed(**signed_by_file(pem())), "broken") == [AT + message()]
    assert found(rule_id, changed(**signed_by_file(certificate())), "fixed") == []


def test_inline_signing_certificate(found) -> None:
    def inline(pem: str) -> dict:
        block = "".join(f"      {line}\n" for line in pem.splitlines())
        return changed(replace={"settings.yaml": (SIGNING, "  contentSigning:\n    certificate: |\n"
                                                  f"{block}    key: {{env: SIGNING_KEY}}\n")})

    assert found("MIM114", inline(certificate(days=(-30, -1))), "broken") == [
        f"settings.yaml:22:18: Settings/system: spec.contentSigning.certificate: the content "
        f"signing certificate expired on {day(-1)}; replace it with a current one, or let "
        "contentSigning.authority issue and renew it"]
    assert found("MIM114", inline(certificate()), "fixed") == []


def test_a_certificate_file_is_read_from_the_settings_folder(found, tmp_path) -> None:
    der = x509.load_pem_x509_certificate(certificate().encode()).public_bytes(
        serialization.Encoding.DER)
    files = changed(**signed_by_file(name="signing.cer"))
    files["config/settings.yaml"] = files.pop("settings.yaml")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "signing.cer").write_bytes(der)  # beside the repository root: wrong
    assert found("MIM114", files, "broken") == [
        "config/settings.yaml:22:18: Settings/system: spec.contentSigning.certificate: cannot "
        "read certificate file 'signing.cer' (No such file or directory); fix the path, which is "
        "relative to the folder of the Settings file"]
    (tmp_path / "fixed" / "config").mkdir(parents=True)
    (tmp_path / "fixed" / "config" / "signing.cer").write_bytes(der)  # binary (DER) .cer
    assert found("MIM114", files, "fixed") == []
    assert found("MIM115", files, "fixed") == []  # read, and it may sign


def test_ignore_rules_silences_a_warning_but_not_an_error(found) -> None:
    files = changed(replace={"settings.yaml": (
        "  name: system\nspec:\n",
        "  name: system\n  annotations:\n    mim/ignore-rules: MIM112, MIM107\nspec:\n"
        "  security:\n    envelopeTransportKeyAlgorithm: 3DES\n"
        "  requests:\n    maxCodeAttempts: 1000\n")})
    assert found("MIM112", files) == []
    assert found("MIM107", files, "again") == [
        "settings.yaml:11:22: Settings/system: spec.requests.maxCodeAttempts: 1000 wrong "
        "authentication codes before a request locks is more than the 100 consecutive failures "
        "NIST SP 800-63B 5.2.2 allows; set maxCodeAttempts to 100 or fewer (the default is 5) "
        "(MIM107 is an error: mim/ignore-rules cannot silence it)"]
