"""The device side of provisioning crypto, for tests: keys, CSRs, opening and verifying packages.

`open_envelope` undoes `provisioning.package.envelope`; `verify_signed` checks the CMS
SignedData inside with asn1crypto, as a device would (pyca has no SignedData verifier).
Every failure is a `PackageRejected` whose message says what was wrong.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
from typing import Any

from asn1crypto import cms
from asn1crypto import csr as asn1_csr
from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import padding as block_padding
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from provisioning import package

MAX_CHAIN = 8  # certificates between the signer and a trust anchor, the signer included

# Field primes of the NIST curves, to negate an EC point in `tamper_csr`.
CURVE_PRIMES = {
    "secp256r1": 2**256 - 2**224 + 2**192 + 2**96 - 1,
    "secp384r1": 2**384 - 2**128 - 2**96 + 2**32 - 1,
    "secp521r1": 2**521 - 1,
}


class PackageRejected(Exception):
    """The device refuses an envelope or a signed package."""


def make_transport_key() -> rsa.RSAPrivateKey:
    """A fresh RSA 2048 transport key."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def transport_public_pem(key: rsa.RSAPrivateKey) -> str:
    """The transport key's public half as PEM SubjectPublicKeyInfo."""
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def make_csr(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
             subject_cn: str = "device") -> str:
    """A PEM PKCS#10 request for `key`, signed with SHA-256."""
    request = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject_cn)]))
               .sign(key, hashes.SHA256()))
    return request.public_bytes(serialization.Encoding.PEM).decode()


def tamper_csr(pem: str) -> str:
    """The same CSR with another public key of the same size, so its signature fails.

    RSA: one bit of the modulus is flipped. EC: a flipped bit would leave no valid point (the
    CSR then fails to load its key rather than to verify), so the point is negated instead.
    The DER is edited in place; lengths do not change, so the result parses.
    """
    der = bytearray(x509.load_pem_x509_csr(pem.encode()).public_bytes(
        serialization.Encoding.DER))
    request = asn1_csr.CertificationRequest.load(bytes(der))
    info = request["certification_request_info"]
    spki = info["subject_pk_info"]
    info_at = der.index(info.dump())
    spki_at = der.index(spki.dump(), info_at)
    algorithm = spki["algorithm"]["algorithm"].native
    if algorithm == "rsa":
        modulus = spki["public_key"].parsed["modulus"].native
        old = modulus.to_bytes((modulus.bit_length() + 7) // 8, "big")
        new = bytearray(old)
        new[len(new) // 2] ^= 0x01
    elif algorithm == "ec":
        curve = spki["algorithm"]["parameters"].chosen.native
        old = spki["public_key"].native  # 04 || x || y, or 02/03 || x (compressed)
        if old[0] in (2, 3):
            new = bytearray([old[0] ^ 1]) + old[1:]  # the sign of y
        else:
            size = (len(old) - 1) // 2
            y = int.from_bytes(old[1 + size:], "big")
            new = bytearray(old[:1 + size] + (CURVE_PRIMES[curve] - y).to_bytes(size, "big"))
    else:
        raise ValueError(f"cannot tamper with a {algorithm} public key")
    at = der.index(old, spki_at)
    der[at:at + len(old)] = new
    return x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM).decode()


def open_envelope(envelope: dict[str, Any], transport_key: rsa.RSAPrivateKey) -> bytes:
    """The content of an envelope, authenticated before it is decrypted."""
    for field, expected in (("version", package.ENVELOPE_VERSION), ("keyWrap", package.KEY_WRAP),
                            ("contentType", package.CONTENT_TYPE)):
        if envelope.get(field) != expected:
            raise PackageRejected(f"envelope {field} is {envelope.get(field)!r}, "
                                  f"expected {expected!r}")
    try:
        key = transport_key.decrypt(_field(envelope, "wrappedKey"), package.oaep())
    except ValueError:
        raise PackageRejected("the wrapped key does not unwrap with this transport key") from None
    iv, ciphertext = _field(envelope, "iv"), _field(envelope, "ciphertext")
    algorithm = envelope.get("algorithm")
    if algorithm == "AES-256-GCM":
        if len(key) != package.AES_KEY_BYTES or len(iv) != package.GCM_IV_BYTES:
            raise PackageRejected("wrong AES key or IV length")
        try:
            return AESGCM(key).decrypt(iv, ciphertext, package.ASSOCIATED_DATA)
        except InvalidTag:
            raise PackageRejected("the GCM tag does not verify") from None
    if algorithm == "3DES-CBC-HMAC-SHA256":
        if len(key) != package.DES3_KEY_BYTES + package.MAC_KEY_BYTES \
                or len(iv) != package.DES3_IV_BYTES:
            raise PackageRejected("wrong 3DES key or IV length")
        cipher_key, mac_key = key[:package.DES3_KEY_BYTES], key[package.DES3_KEY_BYTES:]
        expected_mac = package.mac_3des(mac_key, iv, ciphertext)
        if not hmac.compare_digest(expected_mac, _field(envelope, "mac")):
            raise PackageRejected("the HMAC does not verify")
        if not ciphertext or len(ciphertext) % package.DES3_IV_BYTES:
            raise PackageRejected("the ciphertext is not a whole number of 3DES blocks")
        decryptor = Cipher(TripleDES(cipher_key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(ciphertext) + decryptor.finalize()
        unpadder = block_padding.PKCS7(TripleDES.block_size).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise PackageRejected("bad 3DES padding") from None
    raise PackageRejected(f"unknown envelope algorithm {algorithm!r}")


def _field(envelope: dict[str, Any], name: str) -> bytes:
    value = envelope.get(name)
    if not isinstance(value, str):
        raise PackageRejected(f"envelope {name} is missing or not text")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise PackageRejected(f"envelope {name} is not base64") from None


def verify_signed(der: bytes,
                  trust_anchors: list[x509.Certificate]) -> tuple[dict[str, Any], x509.Certificate]:
    """The package inside a CMS SignedData, and its signer, once signature and chain check out."""
    try:
        signed = _signed_data(der)
        (signer_info,) = _only_signer(signed)
        content = _content(signed)
        _check_attributes(signer_info, content)
        signer, others = _certificates(signed, signer_info)
        _check_signature(signer_info, signer)
    except (ValueError, TypeError, KeyError) as error:  # malformed DER surfaces lazily
        raise PackageRejected(f"malformed CMS SignedData: {error}") from None
    _check_chain(signer, others, trust_anchors)
    try:
        return json.loads(content), signer
    except ValueError as error:
        raise PackageRejected(f"the signed content is not JSON: {error}") from None


def _signed_data(der: bytes) -> cms.SignedData:
    info = cms.ContentInfo.load(der)
    if info["content_type"].native != "signed_data":
        raise PackageRejected(f"content type is {info['content_type'].native}, not signed_data")
    return info["content"]


def _only_signer(signed: cms.SignedData) -> list[cms.SignerInfo]:
    signer_infos = list(signed["signer_infos"])
    if len(signer_infos) != 1:
        raise PackageRejected(f"expected exactly one signer, found {len(signer_infos)}")
    return signer_infos


def _content(signed: cms.SignedData) -> bytes:
    encapsulated = signed["encap_content_info"]
    if encapsulated["content_type"].native != "data":
        raise PackageRejected("the encapsulated content is not id-data")
    content = encapsulated["content"].native
    if content is None:
        raise PackageRejected("the content is detached, not attached")
    return content


def _check_attributes(signer_info: cms.SignerInfo, content: bytes) -> None:
    if signer_info["digest_algorithm"]["algorithm"].native != "sha256":
        raise PackageRejected("the digest algorithm is not SHA-256")
    attributes = signer_info["signed_attrs"]
    if not attributes:
        raise PackageRejected("the signer has no signed attributes")
    values = {a["type"].native: a["values"].native for a in attributes}
    if values.get("content_type") != ["data"]:
        raise PackageRejected("the content-type attribute is not id-data")
    digest = values.get("message_digest")
    if not digest or len(digest) != 1:
        raise PackageRejected("the message-digest attribute is missing")
    if not hmac.compare_digest(digest[0], hashlib.sha256(content).digest()):
        raise PackageRejected("the message digest does not match the content")


def _certificates(signed: cms.SignedData, signer_info: cms.SignerInfo,
                  ) -> tuple[x509.Certificate, list[x509.Certificate]]:
    sid = signer_info["sid"]
    if sid.name != "issuer_and_serial_number":
        raise PackageRejected("the signer is not named by issuer and serial number")
    issuer, serial = sid.chosen["issuer"], sid.chosen["serial_number"].native
    signer, others = None, []
    for choice in signed["certificates"] or []:
        if choice.name != "certificate":
            continue
        certificate = x509.load_der_x509_certificate(choice.chosen.dump())
        if choice.chosen.serial_number == serial and choice.chosen.issuer == issuer:
            signer = certificate
        else:
            others.append(certificate)
    if signer is None:
        raise PackageRejected("the signer certificate is not included")
    return signer, others


def _check_signature(signer_info: cms.SignerInfo, signer: x509.Certificate) -> None:
    key = signer.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise PackageRejected("the signer key is not RSA")
    algorithm = signer_info["signature_algorithm"]
    scheme: padding.AsymmetricPadding
    if algorithm.signature_algo == "rsassa_pss":
        parameters = algorithm["parameters"]
        mgf_hash = parameters["mask_gen_algorithm"]["parameters"]["algorithm"].native
        if parameters["hash_algorithm"]["algorithm"].native != "sha256" or mgf_hash != "sha256":
            raise PackageRejected("the PSS signature does not use SHA-256")
        scheme = padding.PSS(padding.MGF1(hashes.SHA256()), parameters["salt_length"].native)
    elif algorithm.signature_algo == "rsassa_pkcs1v15":
        if algorithm["algorithm"].native not in ("rsassa_pkcs1v15", "sha256_rsa"):
            raise PackageRejected(f"unexpected signature algorithm {algorithm['algorithm'].native}")
        scheme = padding.PKCS1v15()
    else:
        raise PackageRejected(f"the signature is {algorithm.signature_algo}, not RSA")
    signed_bytes = b"\x31" + signer_info["signed_attrs"].dump()[1:]  # SET OF, not [0] IMPLICIT
    try:
        key.verify(signer_info["signature"].native, signed_bytes, scheme, hashes.SHA256())
    except InvalidSignature:
        raise PackageRejected("the signature does not verify") from None


def _check_chain(signer: x509.Certificate, others: list[x509.Certificate],
                 trust_anchors: list[x509.Certificate]) -> None:
    now = datetime.datetime.now(datetime.UTC)
    current, unused = signer, list(others)
    for _ in range(MAX_CHAIN):
        _check_validity(current, now)
        if current in trust_anchors:
            return
        anchor = _issuer_among(current, trust_anchors)
        if anchor is not None:
            _check_validity(anchor, now)
            return
        issuer = _issuer_among(current, unused)
        if issuer is None:
            raise PackageRejected(f"{current.subject.rfc4514_string()} does not chain to a "
                                  "trust anchor")
        if not _is_ca(issuer):
            raise PackageRejected(f"{issuer.subject.rfc4514_string()} is not a CA")
        unused.remove(issuer)
        current = issuer
    raise PackageRejected("the certificate chain is too long")


def _issuer_among(certificate: x509.Certificate,
                  candidates: list[x509.Certificate]) -> x509.Certificate | None:
    for candidate in candidates:
        if candidate.subject != certificate.issuer:
            continue
        try:
            certificate.verify_directly_issued_by(candidate)
        except (ValueError, TypeError, InvalidSignature):
            continue
        return candidate
    return None


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _check_validity(certificate: x509.Certificate, now: datetime.datetime) -> None:
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise PackageRejected(f"{certificate.subject.rfc4514_string()} is not valid now "
                              f"({certificate.not_valid_before_utc:%Y-%m-%d} to "
                              f"{certificate.not_valid_after_utc:%Y-%m-%d})")


# --- The device over HTTP ----------------------------------------------------------------------


class SimulatedDevice:
    """A phone running the agent: it collects over httpx, makes its keys, opens the package."""

    def __init__(self, client: Any, *, serial: str = "SIM-0001", platform: str = "ios",
                 model: str = "iPhone 15", os_version: str = "18.1",
                 mdm_device_id: str | None = None) -> None:
        self.client = client
        self.facts = {"serialNumber": serial, "platform": platform, "model": model,
                      "osVersion": os_version, "mdmDeviceId": mdm_device_id}
        self.transport_key = make_transport_key()
        self.keys: dict[str, rsa.RSAPrivateKey] = {}

    def collect(self, token: str, code: str) -> Any:
        return self.client.post("/provision/v1/collect",
                                json={"token": token, "authCode": code, "device": self.facts})

    def csrs(self, certificates: list[dict[str, Any]]) -> list[dict[str, str]]:
        """A fresh RSA key and CSR for each certificate the device makes the key of."""
        made = []
        for certificate in certificates:
            if certificate["source"] != "device":
                continue
            key = rsa.generate_private_key(65537, certificate["keySize"])
            self.keys[certificate["id"]] = key
            made.append({"certificateId": certificate["id"], "csr": make_csr(key)})
        return made

    def package(self, session_id: str, csrs: list[dict[str, str]]) -> Any:
        return self.client.post(f"/provision/v1/sessions/{session_id}/package",
                                json={"transportKey": transport_public_pem(self.transport_key),
                                      "csrs": csrs})

    def complete(self, session_id: str) -> Any:
        return self.client.post(f"/provision/v1/sessions/{session_id}/complete")

    def open(self, envelope: dict[str, Any], trust_anchors: list[x509.Certificate]
             ) -> tuple[dict[str, Any], x509.Certificate]:
        """The package inside an envelope, its signature verified against `trust_anchors`."""
        return verify_signed(open_envelope(envelope, self.transport_key), trust_anchors)
