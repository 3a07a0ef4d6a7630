"""The built-in CAs (provisioning/ca.py) and the DN policies (provisioning/dn.py).

Specs go in through the real CLI (`mimctl reconcile --apply`) on a real database; what apply
generated is read back the way the service reads it (`load_authority`, `load_content_signer`,
`DnPolicies.load`), and every certificate is checked with pyca, never by trusting our code.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    ExtensionOID,
    NameOID,
)
from sqlalchemy import MetaData, select

from provisioning import package
from provisioning.ca import (
    MATERIAL,
    Authority,
    CaError,
    CsrError,
    check_csr,
    content_signing_certificate,
    load_authority,
    load_content_signer,
    pki_urls,
)
from provisioning.dn import DnError, DnPolicies, load_person
from reconciler.db import vault
from reconciler.db.models import KIND_TABLES, audit_events, secret_values
from specs.certificate_policy import CertificatePolicySpec
from tests.collect_support import KEY, deploy
from tests.device import PackageRejected, make_csr, tamper_csr, verify_signed

SERVICE_URL = "https://mim.example.com"  # the quickstart's mobileCertificateRecoveryServiceUrl
QUICKSTART_CA_SUBJECT = "CN=Example Mobile Issuing CA,O=Example Ltd,C=GB"
CUSTOM_OID = "1.3.6.1.4.1.99999.7.1"


def ca_document(name: str, body: str) -> str:
    return (f"apiVersion: mim/v1\nkind: CertificateAuthority\nmetadata:\n  name: {name}\n"
            f"spec:\n{body}")


def apply(mimctl: Any, database_url: str, root: Path) -> str:
    result = mimctl("--db", database_url, "reconcile", "--apply", root, "--yes")
    assert result.exit_code == 0, result.output
    return result.output


def edit(root: Path, name: str, old: str, new: str) -> None:
    path = root / name
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def authority(engine: Any, name: str) -> Authority:
    with engine.connect() as connection:
        return load_authority(connection, KEY, name)


def audited(engine: Any, action: str) -> list[tuple[str, dict[str, Any]]]:
    with engine.connect() as connection:
        return [(row.name, row.details) for row in connection.execute(
            select(audit_events.c.name, audit_events.c.details)
            .where(audit_events.c.action == action).order_by(audit_events.c.id))]


def material_rows(engine: Any) -> set[tuple[str, str]]:
    with engine.connect() as connection:
        return {(row.name, row.path) for row in connection.execute(
            select(secret_values.c.name, secret_values.c.path)
            .where(secret_values.c.kind == MATERIAL))}


def policy(**fields: Any) -> CertificatePolicySpec:
    return CertificatePolicySpec.model_validate(
        {"friendlyName": "Test Policy", "authority": "issuing-ca", **fields})


def rsa_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def truncated(moment: datetime) -> datetime:
    """A time as a certificate holds it (whole seconds)."""
    return moment.replace(microsecond=0)


# --- Nothing of a private key in plain text ------------------------------------------------------

def database_dump(engine: Any) -> list[tuple[str, bytes]]:
    """Every value of every row of every table, as bytes, with where it was."""
    metadata = MetaData()
    metadata.reflect(engine)
    dump = []
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            for row in connection.execute(table.select()):
                for column, value in row._mapping.items():
                    dump.append((f"{table.name}.{column}", _as_bytes(value)))
    return dump


def _as_bytes(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value).encode()
    return str(value).encode()


def key_markers(key: rsa.RSAPrivateKey) -> dict[str, bytes]:
    """Byte strings any plaintext copy of `key` would contain, whatever its encoding."""
    none = serialization.NoEncryption()
    der = serialization.Encoding.DER
    pkcs8 = key.private_bytes(der, serialization.PrivateFormat.PKCS8, none)
    pkcs1 = key.private_bytes(der, serialization.PrivateFormat.TraditionalOpenSSL, none)
    pem_lines = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  none).splitlines()[1:-1]
    prime = key.private_numbers().p
    return {"PKCS#8 DER": pkcs8, "PKCS#1 DER": pkcs1,
            "PEM body": b"".join(pem_lines), "PEM body, first line": pem_lines[0],
            "PEM body, a middle line": pem_lines[len(pem_lines) // 2],
            "PKCS#1 in base64": base64.b64encode(pkcs1)[:64],
            "prime p": prime.to_bytes((prime.bit_length() + 7) // 8, "big"),
            "prime p in hex": format(prime, "x").encode()}


def plaintext_copies(engine: Any, key: rsa.RSAPrivateKey) -> list[tuple[str, str]]:
    markers = key_markers(key)
    return [(place, what) for place, data in database_dump(engine)
            for what, marker in markers.items() if marker in data]


def in_dump(engine: Any, needle: bytes) -> bool:
    return any(needle in data for _, data in database_dump(engine))


# --- Generated CAs -------------------------------------------------------------------------------

ODD_ORDER_SUBJECT = "OU=Mobile Devices,CN=Odd Order CA,O=Example Ltd,C=GB"
ODD_ORDER_CA = ca_document("odd-order-ca", f"""\
  subject: {ODD_ORDER_SUBJECT}
  keySize: 2048
  validityDays: 400
""")


def check_generated_ca(certificate: x509.Certificate, subject: str, bits: int, days: int,
                       applied_at: datetime) -> None:
    assert certificate.subject.rfc4514_string() == subject
    assert certificate.issuer == certificate.subject
    certificate.verify_directly_issued_by(certificate)  # self-signed
    assert certificate.public_key().key_size == bits
    assert certificate.not_valid_after_utc - certificate.not_valid_before_utc == timedelta(
        days=days, minutes=5)
    assert applied_at - timedelta(minutes=6) <= certificate.not_valid_before_utc <= applied_at
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert (constraints.value.ca, constraints.value.path_length) == (True, 0)
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert (usage.value.key_cert_sign, usage.value.crl_sign) == (True, True)
    assert not (usage.value.key_encipherment or usage.value.data_encipherment
                or usage.value.key_agreement)
    assert certificate.serial_number.bit_length() > 64


def test_apply_generates_each_ca_once_self_signed_and_encrypted(mimctl, engine, database_url,
                                                                tmp_path) -> None:
    before = datetime.now(UTC)
    root = deploy(mimctl, database_url, tmp_path, extra=ODD_ORDER_CA)
    issuing, odd = authority(engine, "issuing-ca"), authority(engine, "odd-order-ca")

    check_generated_ca(issuing.certificate, QUICKSTART_CA_SUBJECT, 3072, 3650, before)
    check_generated_ca(odd.certificate, ODD_ORDER_SUBJECT, 2048, 400, before)
    # RDNs as written: the string's first RDN is the Name's last (ASN.1 order), nothing sorted.
    assert [rdn.rfc4514_string() for rdn in odd.certificate.subject.rdns] == [
        "C=GB", "O=Example Ltd", "CN=Odd Order CA", "OU=Mobile Devices"]
    for loaded in (issuing, odd):
        assert loaded.key.public_key().public_numbers() == \
            loaded.certificate.public_key().public_numbers()
        assert loaded.chain == (loaded.certificate,)
        assert loaded.base_url == SERVICE_URL
    assert issuing.certificate != odd.certificate

    generated = audited(engine, "ca-generate")
    assert sorted(name for name, _ in generated) == ["issuing-ca", "odd-order-ca"]
    for name, details in generated:
        certificate = authority(engine, name).certificate
        assert {k: v for k, v in details.items() if k != "at"} == {
            "subject": certificate.subject.rfc4514_string(),
            "serial": format(certificate.serial_number, "x"),
            "fingerprint_sha256": certificate.fingerprint(hashes.SHA256()).hex()}
    assert material_rows(engine) == {
        (name, path) for name in ("issuing-ca", "odd-order-ca", "content-signing@issuing-ca")
        for path in ("key", "certificate")}

    # Neither key is anywhere in plain text (rows of every table, audit log included) ...
    for loaded in (issuing, odd):
        assert plaintext_copies(engine, loaded.key) == []
    # ... while the dump does reach the audit details and the ciphertexts.
    assert in_dump(engine, format(odd.certificate.serial_number, "x").encode())

    # A second apply that changes the CAs' documents keeps the material: nothing regenerated.
    edit(root, "pki.yaml", "crlLifetimeHours: 24", "crlLifetimeHours: 48")
    edit(root, "extra.yaml", "  keySize: 2048\n", "  keySize: 2048\n  description: Odd one\n")
    assert "2 updated" in apply(mimctl, database_url, root)
    again_issuing, again_odd = authority(engine, "issuing-ca"), authority(engine, "odd-order-ca")
    assert again_issuing.certificate == issuing.certificate
    assert again_odd.certificate == odd.certificate
    assert again_issuing.key.private_numbers() == issuing.key.private_numbers()
    assert again_odd.key.private_numbers() == odd.key.private_numbers()
    assert again_issuing.spec.crl_lifetime_hours == 48  # the new document was read
    assert sorted(name for name, _ in audited(engine, "ca-generate")) == [
        "issuing-ca", "odd-order-ca"]
    assert len(audited(engine, "content-signer-issue")) == 1


GIVEN_CA = """
    apiVersion: mim/v1
    kind: CertificateAuthority
    metadata:
      name: given-ca
    spec:
      certificate: {file: ca.crt}
      key: {env: MIM_TEST_GIVEN_CA_KEY}
    """
GIVEN_SETTINGS = f"""
    apiVersion: mim/v1
    kind: Settings
    metadata:
      name: system
    spec:
      certificates:
        mobileCertificateRecoveryServiceUrl: {SERVICE_URL}
      contentSigning:
        authority: given-ca
    """


def make_ca(common_name: str, key: rsa.RSAPrivateKey, days: int = 365) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Given Ltd"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))


def test_a_ca_given_as_certificate_and_key_is_used_as_given(mimctl, engine, database_url,
                                                            write_tree, monkeypatch) -> None:
    given_key = rsa_key()
    given = make_ca("Given Issuing CA", given_key)
    monkeypatch.setenv("MIM_TEST_GIVEN_CA_KEY", given_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode())
    root = write_tree({"settings.yaml": GIVEN_SETTINGS, "pki/ca.yaml": GIVEN_CA})
    (root / "pki" / "ca.crt").write_bytes(given.public_bytes(serialization.Encoding.PEM))
    apply(mimctl, database_url, root)

    loaded = authority(engine, "given-ca")
    assert loaded.certificate == given
    assert loaded.key.private_numbers() == given_key.private_numbers()
    assert loaded.chain == (given,)
    assert audited(engine, "ca-generate") == []
    assert material_rows(engine) == {("content-signing@given-ca", "key"),
                                     ("content-signing@given-ca", "certificate")}
    table = KIND_TABLES["CertificateAuthority"].table
    with engine.connect() as connection:
        spec = connection.execute(select(table.c.document)).scalar_one()["spec"]
        stored = vault.read(connection, KEY, "CertificateAuthority", "given-ca")
        signer = load_content_signer(connection, KEY)
    assert spec["certificate"] == given.public_bytes(serialization.Encoding.PEM).decode()
    assert set(spec["key"]) == {"sensitive"}
    assert set(stored) == {"spec.key"}
    assert plaintext_copies(engine, given_key) == []
    assert in_dump(engine, given.public_bytes(serialization.Encoding.PEM).splitlines()[1])

    device_key = rsa_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone")])
    issued = loaded.issue(device_key.public_key(), subject, policy(authority="given-ca"),
                          datetime.now(UTC))
    issued.verify_directly_issued_by(given)
    assert issued.issuer == given.subject
    signer.certificate.verify_directly_issued_by(given)
    assert signer.chain == (given,)


# --- The content-signing certificate -------------------------------------------------------------

SECOND_CA = ca_document("second-ca", """\
  subject: CN=Second Issuing CA,O=Other Org,C=GB
  keySize: 2048
""")


def content_signer(engine: Any) -> package.Signer:
    with engine.connect() as connection:
        return load_content_signer(connection, KEY)


def check_content_signer(signer: package.Signer, issuer: x509.Certificate,
                         organization: str) -> None:
    certificate = signer.certificate
    assert certificate.issuer == issuer.subject
    certificate.verify_directly_issued_by(issuer)
    assert signer.chain == (issuer,)
    assert certificate.subject.rfc4514_string() == f"CN=mimctl content signing,O={organization}"
    assert signer.key.public_key().public_numbers() == \
        certificate.public_key().public_numbers()
    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert not (usage.value.key_cert_sign or usage.value.crl_sign)
    assert certificate.not_valid_after_utc <= issuer.not_valid_after_utc
    # The chain verifies the way a device checks a package: signature, then up to the anchor.
    signed = package.sign({"hello": "device"}, signer)
    content, seen = verify_signed(signed, [issuer])
    assert (content, seen) == ({"hello": "device"}, certificate)


def test_content_signing_certificate_follows_the_named_authority(mimctl, engine, database_url,
                                                                 tmp_path) -> None:
    root = deploy(mimctl, database_url, tmp_path, extra=SECOND_CA)
    first_ca, second_ca = authority(engine, "issuing-ca"), authority(engine, "second-ca")
    first = content_signer(engine)
    check_content_signer(first, first_ca.certificate, "Example Ltd")
    with pytest.raises(PackageRejected, match="does not chain to a trust anchor"):
        verify_signed(package.sign({"a": 1}, first), [second_ca.certificate])

    edit(root, "settings.yaml", "authority: issuing-ca", "authority: second-ca")
    apply(mimctl, database_url, root)
    second = content_signer(engine)
    check_content_signer(second, second_ca.certificate, "Other Org")
    assert second.certificate.serial_number != first.certificate.serial_number
    assert second.key.private_numbers() != first.key.private_numbers()
    with pytest.raises(PackageRejected, match="does not chain to a trust anchor"):
        verify_signed(package.sign({"a": 1}, second), [first_ca.certificate])
    issued = audited(engine, "content-signer-issue")
    assert [name for name, _ in issued] == ["issuing-ca", "second-ca"]
    assert issued[1][1]["serial"] == format(second.certificate.serial_number, "x")
    # The CAs themselves stay as they were.
    assert authority(engine, "issuing-ca").certificate == first_ca.certificate


# --- Issuing -------------------------------------------------------------------------------------

ISSUE_CAS = ca_document("short-ca", """\
  subject: CN=Short Lived CA,O=Example Ltd,C=GB
  keySize: 2048
  validityDays: 30
""") + "---\n" + ca_document("off-ca", """\
  subject: CN=Disabled CA,O=Example Ltd,C=GB
  keySize: 2048
  enabled: false
""")


@pytest.fixture
def issuing(mimctl, engine, database_url, tmp_path) -> dict[str, Any]:
    """The quickstart plus a short-lived and a disabled CA, applied; alice's subject."""
    deploy(mimctl, database_url, tmp_path, extra=ISSUE_CAS)
    with engine.connect() as connection:
        alice = load_person(connection, "alice")
        assert alice is not None
        subject = DnPolicies.load(connection).subject("Mobile Signing", alice.dn_fields())
    return {name: authority(engine, name) for name in ("issuing-ca", "short-ca", "off-ca")} | {
        "subject": subject}


def test_issue_names_the_subject_given_not_the_csrs(issuing) -> None:
    ca = issuing["issuing-ca"]
    device_key = rsa_key()
    public_key = check_csr(make_csr(device_key, "chosen-by-the-device"))
    now = datetime.now(UTC)
    wanted = policy(validityDays=200, keyUsages=["digitalSignature", "keyEncipherment",
                                                 "keyAgreement"],
                    extendedKeyUsages=["clientAuth", "smartcardLogon", CUSTOM_OID])
    certificate = ca.issue(public_key, issuing["subject"], wanted, now)

    assert certificate.subject == issuing["subject"]
    assert certificate.subject.rfc4514_string() == \
        "CN=Alice Example,OU=Engineering,O=Example Ltd,C=gb"
    assert "chosen-by-the-device" not in certificate.subject.rfc4514_string()
    assert certificate.issuer == ca.certificate.subject
    certificate.verify_directly_issued_by(ca.certificate)
    assert certificate.public_key().public_numbers() == device_key.public_key().public_numbers()
    assert certificate.not_valid_before_utc == truncated(now - timedelta(minutes=5))
    assert certificate.not_valid_after_utc == truncated(now + timedelta(days=200))

    constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert {name for name in ("digital_signature", "content_commitment", "key_encipherment",
                              "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")
            if getattr(usage.value, name)} == {"digital_signature", "key_encipherment",
                                               "key_agreement"}
    assert not (usage.value.encipher_only or usage.value.decipher_only)
    extended = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(extended.value) == [ExtendedKeyUsageOID.CLIENT_AUTH,
                                    ExtendedKeyUsageOID.SMARTCARD_LOGON,
                                    x509.ObjectIdentifier(CUSTOM_OID)]

    urls = f"{SERVICE_URL}/pki/issuing-ca"
    points = certificate.extensions.get_extension_for_oid(
        ExtensionOID.CRL_DISTRIBUTION_POINTS).value
    assert [[name.value for name in point.full_name] for point in points] == [[f"{urls}/crl"]]
    access = certificate.extensions.get_extension_for_oid(
        ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
    assert sorted((a.access_method.dotted_string, a.access_location.value) for a in access) == \
        sorted([(AuthorityInformationAccessOID.OCSP.dotted_string, f"{urls}/ocsp"),
                (AuthorityInformationAccessOID.CA_ISSUERS.dotted_string, f"{urls}/ca.crt")])
    authority_key = certificate.extensions.get_extension_for_class(
        x509.AuthorityKeyIdentifier).value
    assert authority_key.key_identifier == ca.certificate.extensions.get_extension_for_class(
        x509.SubjectKeyIdentifier).value.digest


def test_issue_serials_are_random_and_usages_follow_the_policy(issuing) -> None:
    ca, now = issuing["issuing-ca"], datetime.now(UTC)
    public_key = rsa_key().public_key()
    signing = policy(keyUsages=["nonRepudiation"])
    first = ca.issue(public_key, issuing["subject"], signing, now)
    second = ca.issue(public_key, issuing["subject"], signing, now)
    assert first.serial_number != second.serial_number
    assert min(first.serial_number, second.serial_number).bit_length() > 64
    usage = first.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.content_commitment and not usage.digital_signature \
        and not usage.key_encipherment
    with pytest.raises(x509.ExtensionNotFound):  # a policy without EKUs gives none
        first.extensions.get_extension_for_class(x509.ExtendedKeyUsage)


def test_issue_never_outlives_the_ca(issuing) -> None:
    short, now = issuing["short-ca"], datetime.now(UTC)
    assert short.certificate.not_valid_after_utc < now + timedelta(days=31)
    certificate = short.issue(rsa_key().public_key(), issuing["subject"],
                              policy(authority="short-ca", validityDays=365), now)
    assert certificate.not_valid_after_utc == short.certificate.not_valid_after_utc
    certificate.verify_directly_issued_by(short.certificate)
    within = short.issue(rsa_key().public_key(), issuing["subject"],
                         policy(authority="short-ca", validityDays=10), now)
    assert within.not_valid_after_utc == truncated(now + timedelta(days=10))


def test_a_disabled_ca_issues_nothing(issuing) -> None:
    disabled = issuing["off-ca"]
    assert not disabled.spec.enabled
    with pytest.raises(CaError, match="CertificateAuthority/off-ca is disabled"):
        disabled.issue(rsa_key().public_key(), issuing["subject"],
                       policy(authority="off-ca"), datetime.now(UTC))


def test_without_a_service_url_a_ca_issues_nothing(mimctl, engine, database_url,
                                                   write_tree) -> None:
    root = write_tree({"pki.yaml": ca_document("lonely-ca", """\
          subject: CN=Lonely CA
          keySize: 2048
        """)})
    apply(mimctl, database_url, root)
    lonely = authority(engine, "lonely-ca")
    assert lonely.base_url is None
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone")])
    with pytest.raises(CaError, match="mobileCertificateRecoveryServiceUrl"):
        lonely.issue(rsa_key().public_key(), subject, policy(authority="lonely-ca"),
                     datetime.now(UTC))


def test_load_authority_refuses_an_unknown_ca(engine) -> None:
    with engine.connect() as connection, pytest.raises(CaError, match="no CertificateAuthority"):
        load_authority(connection, KEY, "nowhere-ca")


def test_pki_urls_sit_under_the_service_url() -> None:
    assert pki_urls("https://mim.example.com/base/", "ca-1") == {
        "certificate": "https://mim.example.com/base/pki/ca-1/ca.crt",
        "crl": "https://mim.example.com/base/pki/ca-1/crl",
        "ocsp": "https://mim.example.com/base/pki/ca-1/ocsp"}


# --- CSRs ----------------------------------------------------------------------------------------

def test_a_good_rsa_csr_gives_its_key() -> None:
    key = rsa_key()
    assert check_csr(make_csr(key)).public_numbers() == key.public_key().public_numbers()
    bigger = rsa_key(3072)
    assert check_csr(make_csr(bigger), 3072).public_numbers() == \
        bigger.public_key().public_numbers()


@pytest.mark.parametrize(("make", "minimum", "code"), [
    (lambda: tamper_csr(make_csr(rsa_key())), 2048, "CSR_SIGNATURE_INVALID"),
    (lambda: make_csr(ec.generate_private_key(ec.SECP256R1())), 2048, "CSR_KEY_NOT_RSA"),
    (lambda: make_csr(rsa_key(1024)), 2048, "CSR_KEY_TOO_SMALL"),
    (lambda: make_csr(rsa_key(2048)), 3072, "CSR_KEY_TOO_SMALL"),
    (lambda: "this is not a certificate request", 2048, "CSR_MALFORMED"),
    (lambda: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
     2048, "CSR_MALFORMED"),
], ids=["tampered", "ec", "rsa-1024", "rsa-2048-under-3072", "garbage", "garbage-pem"])
def test_bad_csrs_are_refused_with_their_code(make, minimum, code) -> None:
    with pytest.raises(CsrError) as refused:
        check_csr(make(), minimum)
    assert refused.value.code == code


def test_a_certificate_is_not_a_csr(issuing) -> None:
    pem = issuing["issuing-ca"].certificate.public_bytes(serialization.Encoding.PEM).decode()
    with pytest.raises(CsrError) as refused:
        check_csr(pem)
    assert refused.value.code == "CSR_MALFORMED"


# --- DN policies ---------------------------------------------------------------------------------

SIGNING_DN = "cn=[[People.FullName]], ou=[[People.GroupName]], o=Example Ltd, c=gb"
ENCRYPTION_DN = "[[[People.Xu55]]], o=Example Ltd"
DEFAULT_DN = "cn=[[People.FullName]], ou=Default, o=Example Ltd"
SETTINGS_DN = "cn=[[People.LogonName]], o=Fallback Ltd"
DN_SETTINGS = f"""
    apiVersion: mim/v1
    kind: Settings
    metadata:
      name: system
    spec:
      certificates:
        mobileCertificateRecoveryServiceUrl: {SERVICE_URL}
    """
SETTINGS_DEFAULT = f'  dnProcessor:\n    default: "{SETTINGS_DN}"\n'
DN_TREE = {
    "settings.yaml": DN_SETTINGS,
    "pki.yaml": """
        apiVersion: mim/v1
        kind: CertificateAuthority
        metadata:
          name: dn-ca
        spec:
          subject: CN=DN CA
          keySize: 2048
        ---
        apiVersion: mim/v1
        kind: CertificatePolicy
        metadata:
          name: signing
        spec:
          friendlyName: Mobile Signing
          authority: dn-ca
        ---
        apiVersion: mim/v1
        kind: CertificatePolicy
        metadata:
          name: encryption
        spec:
          friendlyName: Mobile Encryption
          authority: dn-ca
        ---
        apiVersion: mim/v1
        kind: CertificatePolicy
        metadata:
          name: other
        spec:
          friendlyName: Other Policy
          authority: dn-ca
        """,
    "dn.yaml": f"""
        apiVersion: mim/v1
        kind: DnPolicy
        metadata:
          name: signing-dn
        spec:
          certificatePolicy: Mobile Signing
          dn: "{SIGNING_DN}"
        ---
        apiVersion: mim/v1
        kind: DnPolicy
        metadata:
          name: encryption-dn
        spec:
          certificatePolicy: Mobile Encryption
          dn: "{ENCRYPTION_DN}"
        """,
    "dn-default.yaml": f"""
        apiVersion: mim/v1
        kind: DnPolicy
        metadata:
          name: default-dn
        spec:
          default: true
          dn: "{DEFAULT_DN}"
        """,
    "people.yaml": r"""
        apiVersion: mim/v1
        kind: Person
        metadata:
          name: zoe
        spec:
          fullName: Zoë Ångström
          group: Finance, EMEA
          attributes:
            Xu55: 'CN=Zoë Ångström,OU=Staff\, Contractors,DC=corp,DC=example'
        ---
        apiVersion: mim/v1
        kind: Person
        metadata:
          name: plain
        spec:
          fullName: Plain Person
        """,
}


def dn_state(engine: Any) -> tuple[DnPolicies, dict[str, str], dict[str, str]]:
    with engine.connect() as connection:
        zoe, plain = load_person(connection, "zoe"), load_person(connection, "plain")
        assert zoe is not None and plain is not None
        return DnPolicies.load(connection), zoe.dn_fields(), plain.dn_fields()


def test_dn_policies_fall_back_in_order(mimctl, engine, database_url, write_tree,
                                        tmp_path) -> None:
    root = write_tree(DN_TREE)
    apply(mimctl, database_url, root)
    policies, zoe, _ = dn_state(engine)
    assert policies == DnPolicies({"Mobile Signing": SIGNING_DN,
                                   "Mobile Encryption": ENCRYPTION_DN}, DEFAULT_DN)
    assert policies.template("Mobile Signing") == SIGNING_DN  # its own, before the default
    assert policies.template("Other Policy") == DEFAULT_DN
    assert policies.subject("Other Policy", zoe).rfc4514_string() == \
        "CN=Zoë Ångström,OU=Default,O=Example Ltd"

    # No default DnPolicy, Settings' instead (MIM603 refuses both at once).
    (root / "dn-default.yaml").unlink()
    settings = root / "settings.yaml"
    settings.write_text(settings.read_text(encoding="utf-8") + SETTINGS_DEFAULT,
                        encoding="utf-8")
    apply(mimctl, database_url, root)
    policies, zoe, _ = dn_state(engine)
    assert policies.default == SETTINGS_DN
    assert policies.template("Mobile Signing") == SIGNING_DN
    assert policies.template("Other Policy") == SETTINGS_DN
    assert policies.subject("Other Policy", zoe).rfc4514_string() == "CN=zoe,O=Fallback Ltd"

    text = settings.read_text(encoding="utf-8")
    settings.write_text(text.replace(SETTINGS_DEFAULT, ""), encoding="utf-8")
    apply(mimctl, database_url, root)
    policies, zoe, _ = dn_state(engine)
    assert policies.default is None
    assert policies.template("Mobile Signing") == SIGNING_DN
    with pytest.raises(DnError, match="no DnPolicy names certificate policy 'Other Policy'"):
        policies.template("Other Policy")
    with pytest.raises(DnError, match="'Other Policy'"):
        policies.subject("Other Policy", zoe)


def test_dn_subjects_escape_substitute_raw_and_keep_non_ascii(mimctl, engine, database_url,
                                                              write_tree) -> None:
    apply(mimctl, database_url, write_tree(DN_TREE))
    policies, zoe, plain = dn_state(engine)

    signing = policies.subject("Mobile Signing", zoe)
    # [[People.GroupName]] is escaped: the comma stays inside the one OU value.
    assert signing.rfc4514_string() == r"CN=Zoë Ångström,OU=Finance\, EMEA,O=Example Ltd,C=gb"
    assert [a.value for a in signing.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)] \
        == ["Finance, EMEA"]
    assert [a.value for a in signing.get_attributes_for_oid(NameOID.COMMON_NAME)] == [
        "Zoë Ångström"]
    assert "Zoë Ångström".encode() in signing.public_bytes()  # UTF-8 in the DER, not mangled

    # [[[People.Xu55]]] is DN text put in as it is: its RDNs become the subject's.
    encryption = policies.subject("Mobile Encryption", zoe)
    assert encryption.rfc4514_string() == \
        r"CN=Zoë Ångström,OU=Staff\, Contractors,DC=corp,DC=example,O=Example Ltd"
    assert len(encryption.rdns) == 5
    assert [a.value for a in encryption.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)] \
        == ["Staff, Contractors"]

    # A person without the fields a template needs gets no subject.
    with pytest.raises(DnError, match="GroupName"):
        policies.subject("Mobile Signing", plain)
    with pytest.raises(DnError, match="Xu55"):
        policies.subject("Mobile Encryption", plain)


def test_no_dn_policy_at_all_is_a_dn_error() -> None:
    policies = DnPolicies({}, None)
    with pytest.raises(DnError, match="no default DN policy"):
        policies.subject("Anything", {"FullName": "x"})


# --- Keeping the material in line with the documents ---------------------------------------------

def test_a_given_key_that_is_not_the_certificates_is_refused(mimctl, engine, database_url,
                                                            write_tree, monkeypatch) -> None:
    monkeypatch.setenv("MIM_TEST_GIVEN_CA_KEY", rsa_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode())
    root = write_tree({"settings.yaml": GIVEN_SETTINGS, "pki/ca.yaml": GIVEN_CA})
    (root / "pki" / "ca.crt").write_bytes(
        make_ca("Given Issuing CA", rsa_key()).public_bytes(serialization.Encoding.PEM))
    result = mimctl("--db", database_url, "reconcile", "--apply", root, "--yes")
    assert result.exit_code == 1
    assert "CertificateAuthority/given-ca: the key is not the certificate's" in result.output
    table = KIND_TABLES["CertificateAuthority"].table
    with engine.connect() as connection:  # nothing was applied
        assert connection.execute(select(table.c.name)).all() == []
    assert material_rows(engine) == set()


def test_a_ca_changed_from_generated_to_given_gets_a_new_content_signer(
        mimctl, engine, database_url, tmp_path, monkeypatch) -> None:
    root = deploy(mimctl, database_url, tmp_path)
    generated_signer = content_signer(engine)
    given_key = rsa_key()
    given = make_ca("Given Issuing CA", given_key)
    monkeypatch.setenv("MIM_TEST_GIVEN_CA_KEY", given_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode())
    (root / "ca.crt").write_bytes(given.public_bytes(serialization.Encoding.PEM))
    edit(root, "pki.yaml", "  subject: CN=Example Mobile Issuing CA,O=Example Ltd,C=GB\n",
         "  certificate: {file: ca.crt}\n  key: {env: MIM_TEST_GIVEN_CA_KEY}\n")
    apply(mimctl, database_url, root)
    signer = content_signer(engine)
    assert signer.certificate != generated_signer.certificate
    check_content_signer(signer, given, "Given Ltd")
    assert audited(engine, "content-signer-issue")[-1][1]["reason"] == \
        "CertificateAuthority/issuing-ca has another certificate now"


def test_a_ca_re_created_with_another_subject_is_generated_anew(mimctl, engine, database_url,
                                                                tmp_path) -> None:
    root = deploy(mimctl, database_url, tmp_path)
    old = authority(engine, "issuing-ca").certificate
    edit(root, "pki.yaml", "CN=Example Mobile Issuing CA,", "CN=Brand New CA,")
    apply(mimctl, database_url, root)
    new = authority(engine, "issuing-ca").certificate
    assert new.subject.rfc4514_string() == "CN=Brand New CA,O=Example Ltd,C=GB"
    assert new.public_key().public_numbers() != old.public_key().public_numbers()
    retired = f"issuing-ca@retired-{old.serial_number:x}"
    assert {(retired, "key"), (retired, "certificate")} <= material_rows(engine)
    with engine.connect() as connection:  # kept for the certificates the old CA issued
        kept = vault.read(connection, KEY, MATERIAL, retired)
    assert x509.load_pem_x509_certificate(kept["certificate"]) == old
    [(name, details)] = audited(engine, "ca-retire")
    assert (name, details["kept_as"]) == ("issuing-ca", retired)
    content_signer(engine).certificate.verify_directly_issued_by(new)  # signer follows


def test_an_apply_without_changes_renews_a_content_signer_near_its_end(
        mimctl, engine, database_url, tmp_path) -> None:
    root = deploy(mimctl, database_url, tmp_path)
    issuer = authority(engine, "issuing-ca")
    now = datetime.now(UTC)
    ending_key = rsa_key()
    ending = content_signing_certificate(issuer, ending_key, now - timedelta(days=720))
    assert ending.not_valid_after_utc - now < timedelta(days=30)
    with engine.begin() as connection:
        vault.store(connection, KEY, MATERIAL, {"content-signing@issuing-ca": {
            "key": ending_key.private_bytes(serialization.Encoding.PEM,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()),
            "certificate": ending.public_bytes(serialization.Encoding.PEM)}}, now)
    output = apply(mimctl, database_url, root)
    assert output.startswith("No changes.")
    assert "content-signer-issue CertificateAuthority/issuing-ca: renewal before expiry" in output
    renewed = content_signer(engine)
    assert renewed.certificate.not_valid_after_utc - now > timedelta(days=700)
    assert "content-signer-issue" not in apply(mimctl, database_url, root)  # once
