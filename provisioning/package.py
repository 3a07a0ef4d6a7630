"""Mobile-ID packages: signed as CMS SignedData, then enveloped to the device's transport key.

The device first opens the envelope with its transport key, then checks the signature against
the content-signing trust anchors it was given. Two envelope algorithms exist: AES-256-GCM, and
3DES-CBC with an HMAC-SHA256 over the ciphertext (encrypt-then-MAC) for agents that predate
AES. Either way the content key is fresh per envelope and wrapped with RSA-OAEP-SHA256.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives import padding as block_padding
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import pkcs7

ENVELOPE_ALGORITHMS = {"AES": "AES-256-GCM", "3DES": "3DES-CBC-HMAC-SHA256"}  # Settings -> wire
ENVELOPE_VERSION = 1
KEY_WRAP = "RSA-OAEP-SHA256"
CONTENT_TYPE = "application/pkcs7-mime; smime-type=signed-data"
ASSOCIATED_DATA = b"mim-package-v1"  # GCM associated data; the prefix of the 3DES MAC input
MIN_TRANSPORT_KEY_BITS = 2048

AES_KEY_BYTES, GCM_IV_BYTES = 32, 12
DES3_KEY_BYTES, DES3_IV_BYTES, MAC_KEY_BYTES = 24, 8, 32


class PackageError(ValueError):
    """A package that cannot be built: `code` for machines, the message for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Signer:
    """The content-signing certificate, its key and the chain above it (issuer first)."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey
    chain: tuple[x509.Certificate, ...] = ()


def oaep() -> padding.OAEP:
    """RSA-OAEP with MGF1-SHA256, SHA-256 and no label: the envelope's key wrap."""
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


def canonical_json(package: dict[str, Any]) -> bytes:
    """The package as UTF-8 JSON with sorted keys and compact separators."""
    text = json.dumps(package, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)
    return text.encode("utf-8")


def sign(package: dict[str, Any], signer: Signer) -> bytes:
    """The package JSON as DER CMS SignedData (SHA-256, content attached, chain included)."""
    builder = (pkcs7.PKCS7SignatureBuilder().set_data(canonical_json(package))
               .add_signer(signer.certificate, signer.key, hashes.SHA256()))
    for certificate in signer.chain:
        builder = builder.add_certificate(certificate)
    return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])


def envelope(content: bytes, transport_key: rsa.RSAPublicKey,
             algorithm: str) -> dict[str, str | int]:
    """Encrypt `content` under a fresh key of `algorithm` (wire name), wrapped to the device."""
    if algorithm == "AES-256-GCM":
        key, iv = os.urandom(AES_KEY_BYTES), os.urandom(GCM_IV_BYTES)
        fields = {"ciphertext": AESGCM(key).encrypt(iv, content, ASSOCIATED_DATA)}
    elif algorithm == "3DES-CBC-HMAC-SHA256":
        cipher_key, mac_key = os.urandom(DES3_KEY_BYTES), os.urandom(MAC_KEY_BYTES)
        key, iv = cipher_key + mac_key, os.urandom(DES3_IV_BYTES)
        padder = block_padding.PKCS7(TripleDES.block_size).padder()
        padded = padder.update(content) + padder.finalize()
        encryptor = Cipher(TripleDES(cipher_key), modes.CBC(iv)).encryptor()
        ciphertext = encryptor.update(padded) + encryptor.finalize()
        fields = {"ciphertext": ciphertext, "mac": mac_3des(mac_key, iv, ciphertext)}
    else:
        known = ", ".join(ENVELOPE_ALGORITHMS.values())
        raise PackageError("ENVELOPE_ALGORITHM_UNKNOWN",
                           f"unknown envelope algorithm {algorithm!r}; use one of {known}")
    return {
        "version": ENVELOPE_VERSION,
        "algorithm": algorithm,
        "keyWrap": KEY_WRAP,
        "wrappedKey": b64(transport_key.encrypt(key, oaep())),
        "iv": b64(iv),
        **{name: b64(value) for name, value in fields.items()},
        "contentType": CONTENT_TYPE,
    }


def mac_3des(mac_key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    """HMAC-SHA256 over the associated data, the IV and the 3DES ciphertext."""
    mac = hmac.HMAC(mac_key, hashes.SHA256())
    mac.update(ASSOCIATED_DATA + iv + ciphertext)
    return mac.finalize()


def load_transport_key(pem: str) -> rsa.RSAPublicKey:
    """The device's PEM public key, refused unless it is RSA of at least 2048 bits."""
    try:
        key = serialization.load_pem_public_key(pem.encode("utf-8"))
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise PackageError("TRANSPORT_KEY_INVALID",
                           f"the transport key is not a PEM public key ({error}); send the "
                           "device's RSA public key as PEM SubjectPublicKeyInfo") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise PackageError("TRANSPORT_KEY_INVALID",
                           "the transport key is not an RSA key; generate an RSA key of at "
                           f"least {MIN_TRANSPORT_KEY_BITS} bits")
    if key.key_size < MIN_TRANSPORT_KEY_BITS:
        raise PackageError("TRANSPORT_KEY_INVALID",
                           f"the transport key has {key.key_size} bits; generate an RSA key of "
                           f"at least {MIN_TRANSPORT_KEY_BITS} bits")
    return key


def b64(data: bytes) -> str:
    """Standard base64 with padding, as text."""
    return base64.b64encode(data).decode("ascii")
