"""Sealed secrets: values encrypted to the deployment's public key, safe to commit to git.

`mimctl secret keygen` makes an X25519 key pair; anyone with the public key can seal
(`mimctl secret seal`), only the holders of the private key (the server, the CI job that
applies) can open. A sealed value reads

    enc:v1:<key id>:<base64url(ephemeral public key | nonce | AES-256-GCM ciphertext)>

The AES key comes from HKDF-SHA256 over the X25519 shared secret, salted with both public keys;
the key id (16 hex digits of the public key's SHA-256) tells which key pair a value needs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from reconciler.errors import MimError
from specs.secrets import SEALED_PREFIX

INFO = b"mim seal v1"
SEAL_KEY_ENV = "MIM_SEAL_KEY"  # the private key itself (PEM), e.g. from a CI secret
SEAL_KEY_FILE_ENV = "MIM_SEAL_KEY_FILE"  # or a path to it
PUBLIC_KEY_ENV = "MIM_SEAL_PUBLIC_KEY"  # path to the public key for `secret seal`
PRIVATE_FILE = "mim-seal.key"
PUBLIC_FILE = "mim-seal.pub"
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


class SealError(MimError):
    """A sealed value that cannot be opened, or a key that cannot be used."""


def key_id(public_key: X25519PublicKey) -> str:
    return hashlib.sha256(public_key.public_bytes(*_RAW)).hexdigest()[:16]


def generate_keypair() -> tuple[bytes, bytes]:
    """A new key pair as (private PEM, public PEM)."""
    private = X25519PrivateKey.generate()
    private_pem = private.private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo)
    return private_pem, public_pem


def _derive(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 32, salt=ephemeral + recipient, info=INFO).derive(shared)


def seal(public_key: X25519PublicKey, plaintext: bytes) -> str:
    """`plaintext` sealed to `public_key`, as an enc:v1: string."""
    ephemeral = X25519PrivateKey.generate()
    ephemeral_raw = ephemeral.public_key().public_bytes(*_RAW)
    recipient_raw = public_key.public_bytes(*_RAW)
    key = _derive(ephemeral.exchange(public_key), ephemeral_raw, recipient_raw)
    nonce = os.urandom(12)
    ciphertext = AESGCM(key).encrypt(nonce, plaintext, INFO)
    body = base64.urlsafe_b64encode(ephemeral_raw + nonce + ciphertext).rstrip(b"=").decode()
    return f"{SEALED_PREFIX}{key_id(public_key)}:{body}"


def unseal(private_key: X25519PrivateKey, sealed: str) -> bytes:
    """The plaintext of a sealed value; SealError when it is damaged or meant for another key."""
    try:
        wanted, body = sealed.removeprefix(SEALED_PREFIX).split(":", 1)
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (ValueError, binascii.Error):
        raise SealError("the sealed value is damaged; seal the secret again") from None
    have = key_id(private_key.public_key())
    if wanted != have:
        raise SealError(f"the value is sealed to key {wanted}, but the private key given is "
                        f"{have}; seal it with this deployment's public key")
    if len(raw) < 32 + 12 + 16:
        raise SealError("the sealed value is damaged; seal the secret again")
    ephemeral_raw, nonce, ciphertext = raw[:32], raw[32:44], raw[44:]
    recipient_raw = private_key.public_key().public_bytes(*_RAW)
    key = _derive(private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw)),
                  ephemeral_raw, recipient_raw)
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, INFO)
    except InvalidTag:
        raise SealError("the sealed value is damaged; seal the secret again") from None


def load_public_key(path: Path) -> X25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as error:
        raise SealError(f"cannot read the public key {path}: {error.strerror}") from None
    except ValueError:
        raise SealError(f"{path} is not a PEM public key; make one with "
                        "`mimctl secret keygen`") from None
    if not isinstance(key, X25519PublicKey):
        raise SealError(f"{path} is not a mimctl sealing key (X25519); make one with "
                        "`mimctl secret keygen`")
    return key


def _parse_private(pem: bytes, where: str) -> X25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except ValueError:
        raise SealError(f"{where} is not a PEM private key") from None
    if not isinstance(key, X25519PrivateKey):
        raise SealError(f"{where} is not a mimctl sealing key (X25519)")
    return key


def load_private_key() -> X25519PrivateKey:
    """The deployment's private key from MIM_SEAL_KEY or MIM_SEAL_KEY_FILE."""
    if os.environ.get(SEAL_KEY_ENV):
        return _parse_private(os.environ[SEAL_KEY_ENV].encode(), SEAL_KEY_ENV)
    path = os.environ.get(SEAL_KEY_FILE_ENV)
    if not path:
        raise SealError(f"sealed secrets need the deployment's private key: set "
                        f"{SEAL_KEY_FILE_ENV} to its file (or {SEAL_KEY_ENV} to its PEM text)")
    try:
        pem = Path(path).read_bytes()
    except OSError as error:
        raise SealError(f"cannot read {SEAL_KEY_FILE_ENV}={path}: {error.strerror}") from None
    return _parse_private(pem, path)
