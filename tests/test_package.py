"""Signing and enveloping mobile-ID packages, checked by the device side in tests/device.py."""

from __future__ import annotations

import base64
import datetime
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from provisioning.package import (
    ENVELOPE_ALGORITHMS,
    PackageError,
    Signer,
    canonical_json,
    envelope,
    load_transport_key,
    sign,
)
from tests.device import (
    PackageRejected,
    make_csr,
    make_transport_key,
    open_envelope,
    tamper_csr,
    transport_public_pem,
    verify_signed,
)

ROOT = Path(__file__).resolve().parent.parent
ALGORITHMS = sorted(ENVELOPE_ALGORITHMS.values())
PACKAGE = {"profile": "mobile-id", "user": "Zoë", "certificates": [{"slot": 1}], "pin": None}
NOW = datetime.datetime.now(datetime.UTC)


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def issue(cn: str, key: rsa.RSAPrivateKey, issuer: tuple[x509.Certificate, rsa.RSAPrivateKey]
          | None = None, *, ca: bool = False, days: tuple[int, int] = (-1, 30)) -> x509.Certificate:
    """A certificate for `key`, self-signed unless an issuer (certificate, key) is given."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    issuer_name, issuer_key = (issuer[0].subject, issuer[1]) if issuer else (name, key)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW + datetime.timedelta(days=days[0]))
            .not_valid_after(NOW + datetime.timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))


@pytest.fixture(scope="module")
def ca() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa_key()
    return issue("Test Root CA", key, ca=True), key


@pytest.fixture(scope="module")
def signer(ca: tuple[x509.Certificate, rsa.RSAPrivateKey]) -> Signer:
    key = rsa_key()
    return Signer(issue("Content Signing", key, ca), key, (ca[0],))


@pytest.fixture(scope="module")
def transport_key() -> rsa.RSAPrivateKey:
    return make_transport_key()


def flip(envelope_: dict, field: str, index: int = 0) -> dict:
    """The envelope with one bit of a base64 field flipped."""
    data = bytearray(base64.b64decode(envelope_[field]))
    data[index] ^= 0x01
    return {**envelope_, field: base64.b64encode(data).decode()}


# Envelopes

@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_envelope_round_trip(algorithm: str, transport_key: rsa.RSAPrivateKey) -> None:
    content = b"signed package bytes" * 10
    sealed = envelope(content, transport_key.public_key(), algorithm)
    assert open_envelope(sealed, transport_key) == content
    assert sealed["version"] == 1 and sealed["algorithm"] == algorithm
    assert sealed["keyWrap"] == "RSA-OAEP-SHA256"
    assert sealed["contentType"] == "application/pkcs7-mime; smime-type=signed-data"
    assert len(base64.b64decode(sealed["wrappedKey"], validate=True)) == 256


def test_aes_envelope_fields(transport_key: rsa.RSAPrivateKey) -> None:
    sealed = envelope(b"x" * 5, transport_key.public_key(), "AES-256-GCM")
    assert "mac" not in sealed
    assert len(base64.b64decode(sealed["iv"])) == 12
    assert len(base64.b64decode(sealed["ciphertext"])) == 5 + 16  # the GCM tag


def test_3des_envelope_fields(transport_key: rsa.RSAPrivateKey) -> None:
    sealed = envelope(b"x" * 8, transport_key.public_key(), "3DES-CBC-HMAC-SHA256")
    assert len(base64.b64decode(sealed["iv"])) == 8
    assert len(base64.b64decode(sealed["ciphertext"])) == 16  # a whole block of padding
    assert len(base64.b64decode(sealed["mac"])) == 32
    key = transport_key.decrypt(base64.b64decode(sealed["wrappedKey"]), padding.OAEP(
        mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    assert len(key) == 56


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_envelopes_of_the_same_content_differ(algorithm: str,
                                              transport_key: rsa.RSAPrivateKey) -> None:
    first, second = (envelope(b"same", transport_key.public_key(), algorithm) for _ in range(2))
    for field in ("wrappedKey", "iv", "ciphertext"):
        assert first[field] != second[field]
    assert open_envelope(first, transport_key) == open_envelope(second, transport_key)


def test_3des_round_trip_emits_no_warning(transport_key: rsa.RSAPrivateKey) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sealed = envelope(b"legacy agent", transport_key.public_key(), "3DES-CBC-HMAC-SHA256")
        assert open_envelope(sealed, transport_key) == b"legacy agent"


def test_modules_import_without_warning() -> None:
    # Import-time warnings (TripleDES from the wrong module) happen before any test runs.
    subprocess.run([sys.executable, "-W", "error", "-c", "import provisioning.package, "
                    "tests.device"], cwd=ROOT, check=True)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("index", [0, -1])
def test_flipped_ciphertext_is_rejected(algorithm: str, index: int,
                                        transport_key: rsa.RSAPrivateKey) -> None:
    sealed = envelope(b"content" * 5, transport_key.public_key(), algorithm)
    message = "GCM tag" if algorithm == "AES-256-GCM" else "HMAC"  # 3DES: MAC before padding
    with pytest.raises(PackageRejected, match=message):
        open_envelope(flip(sealed, "ciphertext", index), transport_key)


@pytest.mark.parametrize("field", ["mac", "iv"])
def test_flipped_3des_mac_or_iv_is_rejected(field: str, transport_key: rsa.RSAPrivateKey) -> None:
    sealed = envelope(b"content", transport_key.public_key(), "3DES-CBC-HMAC-SHA256")
    with pytest.raises(PackageRejected, match="HMAC"):
        open_envelope(flip(sealed, field), transport_key)


def test_flipped_gcm_iv_is_rejected(transport_key: rsa.RSAPrivateKey) -> None:
    sealed = envelope(b"content", transport_key.public_key(), "AES-256-GCM")
    with pytest.raises(PackageRejected, match="GCM tag"):
        open_envelope(flip(sealed, "iv"), transport_key)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_wrong_transport_key_is_rejected(algorithm: str,
                                         transport_key: rsa.RSAPrivateKey) -> None:
    sealed = envelope(b"content", transport_key.public_key(), algorithm)
    with pytest.raises(PackageRejected, match="does not unwrap"):
        open_envelope(sealed, make_transport_key())


@pytest.mark.parametrize(("change", "message"), [
    ({"version": 2}, "version"),
    ({"keyWrap": "RSA-PKCS1"}, "keyWrap"),
    ({"algorithm": "ROT13"}, "unknown envelope algorithm"),
    ({"iv": "not base64!"}, "not base64"),
    ({"ciphertext": None}, "missing"),
])
def test_malformed_envelope_is_rejected(change: dict, message: str,
                                        transport_key: rsa.RSAPrivateKey) -> None:
    sealed = envelope(b"content", transport_key.public_key(), "AES-256-GCM")
    with pytest.raises(PackageRejected, match=message):
        open_envelope({**sealed, **change}, transport_key)


def test_unknown_envelope_algorithm_is_refused(transport_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(PackageError, match="AES-256-GCM, 3DES-CBC-HMAC-SHA256") as caught:
        envelope(b"content", transport_key.public_key(), "AES")  # a Settings value, not wire
    assert caught.value.code == "ENVELOPE_ALGORITHM_UNKNOWN"


# Transport keys

def test_load_transport_key(transport_key: rsa.RSAPrivateKey) -> None:
    key = load_transport_key(transport_public_pem(transport_key))
    assert key.public_numbers() == transport_key.public_key().public_numbers()


def pem_of(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.mark.parametrize(("pem", "message"), [
    (lambda: "garbage", "not a PEM public key"),
    (lambda: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a PEM"),
    (lambda: pem_of(ec.generate_private_key(ec.SECP256R1())), "not an RSA key"),
    (lambda: pem_of(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
     "has 1024 bits"),
])
def test_load_transport_key_refuses(pem, message: str) -> None:
    with pytest.raises(PackageError, match=message) as caught:
        load_transport_key(pem())
    assert caught.value.code == "TRANSPORT_KEY_INVALID"


# Signatures

def test_sign_and_verify(signer: Signer, ca: tuple[x509.Certificate, rsa.RSAPrivateKey]) -> None:
    signed = sign(PACKAGE, signer)
    package, certificate = verify_signed(signed, [ca[0]])
    assert package == PACKAGE
    assert certificate == signer.certificate
    content = cms.ContentInfo.load(signed)["content"]["encap_content_info"]["content"].native
    assert content == canonical_json(PACKAGE)
    assert content.startswith(b'{"certificates":[{"slot":1}],"pin":null,')
    assert "Zoë".encode() in content


def test_verify_through_an_intermediate(ca: tuple[x509.Certificate, rsa.RSAPrivateKey]) -> None:
    intermediate_key, leaf_key = rsa_key(), rsa_key()
    intermediate = issue("Issuing CA", intermediate_key, ca, ca=True)
    leaf = issue("Content Signing 2", leaf_key, (intermediate, intermediate_key))
    signed = sign(PACKAGE, Signer(leaf, leaf_key, (intermediate, ca[0])))
    assert verify_signed(signed, [ca[0]]) == (PACKAGE, leaf)
    with pytest.raises(PackageRejected, match="does not chain"):
        verify_signed(sign(PACKAGE, Signer(leaf, leaf_key, ())), [ca[0]])


def test_intermediate_must_be_a_ca(ca: tuple[x509.Certificate, rsa.RSAPrivateKey]) -> None:
    middle_key, leaf_key = rsa_key(), rsa_key()
    middle = issue("Not A CA", middle_key, ca, ca=False)
    leaf = issue("Content Signing 3", leaf_key, (middle, middle_key))
    with pytest.raises(PackageRejected, match="is not a CA"):
        verify_signed(sign(PACKAGE, Signer(leaf, leaf_key, (middle,))), [ca[0]])


def test_pss_signature_is_accepted(signer: Signer,
                                   ca: tuple[x509.Certificate, rsa.RSAPrivateKey]) -> None:
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
    signed = (pkcs7.PKCS7SignatureBuilder().set_data(canonical_json(PACKAGE))
              .add_signer(signer.certificate, signer.key, hashes.SHA256(), rsa_padding=pss)
              .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))
    algorithm = cms.ContentInfo.load(signed)["content"]["signer_infos"][0]["signature_algorithm"]
    assert algorithm.signature_algo == "rsassa_pss"
    assert verify_signed(signed, [ca[0]])[0] == PACKAGE


def test_tampered_content_is_rejected(signer: Signer,
                                      ca: tuple[x509.Certificate, rsa.RSAPrivateKey]) -> None:
    info = cms.ContentInfo.load(sign(PACKAGE, signer))
    info["content"]["encap_content_info"]["content"] = canonical_json({**PACKAGE, "user": "Eve"})
    with pytest.raises(PackageRejected, match="message digest does not match"):
        verify_signed(info.dump(force=True), [ca[0]])


def test_flipped_signature_is_rejected(signer: Signer,
                                       ca: tuple[x509.Certificate, rsa.RSAPrivateKey]) -> None:
    info = cms.ContentInfo.load(sign(PACKAGE, signer))
    signer_info = info["content"]["signer_infos"][0]
    signature = bytearray(signer_info["signature"].native)
    signature[10] ^= 0x01
    signer_info["signature"] = bytes(signature)
    with pytest.raises(PackageRejected, match="signature does not verify"):
        verify_signed(info.dump(force=True), [ca[0]])


def test_signer_outside_the_trust_anchors_is_rejected(signer: Signer) -> None:
    other_ca = issue("Other Root CA", rsa_key(), ca=True)
    with pytest.raises(PackageRejected, match="does not chain to a trust anchor"):
        verify_signed(sign(PACKAGE, signer), [other_ca])


def test_self_signed_signer_is_rejected(ca: tuple[x509.Certificate, rsa.RSAPrivateKey]) -> None:
    key = rsa_key()
    with pytest.raises(PackageRejected, match="does not chain"):
        verify_signed(sign(PACKAGE, Signer(issue("Rogue", key), key, ())), [ca[0]])


def test_expired_signer_is_rejected(ca: tuple[x509.Certificate, rsa.RSAPrivateKey]) -> None:
    key = rsa_key()
    expired = issue("Expired Signing", key, ca, days=(-30, -1))
    with pytest.raises(PackageRejected, match="is not valid now"):
        verify_signed(sign(PACKAGE, Signer(expired, key, (ca[0],))), [ca[0]])


def test_garbage_is_rejected(ca: tuple[x509.Certificate, rsa.RSAPrivateKey]) -> None:
    with pytest.raises(PackageRejected, match="malformed"):
        verify_signed(b"\x30\x03\x02\x01\x01", [ca[0]])


def test_signed_and_enveloped_end_to_end(signer: Signer, transport_key: rsa.RSAPrivateKey,
                                         ca: tuple[x509.Certificate, rsa.RSAPrivateKey]) -> None:
    transport = load_transport_key(transport_public_pem(transport_key))
    for algorithm in ALGORITHMS:
        sealed = envelope(sign(PACKAGE, signer), transport, algorithm)
        assert verify_signed(open_envelope(sealed, transport_key), [ca[0]])[0] == PACKAGE


# CSRs

@pytest.mark.parametrize("make_key", [rsa_key, lambda: ec.generate_private_key(ec.SECP256R1()),
                                      lambda: ec.generate_private_key(ec.SECP384R1())],
                         ids=["rsa", "p256", "p384"])
def test_tamper_csr(make_key) -> None:
    pem = make_csr(make_key(), "phone-42")
    original = x509.load_pem_x509_csr(pem.encode())
    assert original.is_signature_valid
    tampered = x509.load_pem_x509_csr(tamper_csr(pem).encode())
    assert not tampered.is_signature_valid
    assert tampered.subject == original.subject
    assert tampered.public_key() != original.public_key()
    assert len(tamper_csr(pem)) == len(pem)
