"""What every MDM connector shares: the interface, the error tree, HTTP with retries, tokens.

A connector looks a device up by the identifier the device reports and returns the MDM's record
of it as nested JSON (or None when the MDM does not know it). Errors:

    MdmError                 anything that went wrong talking to an MDM
    ├── MdmUnavailable       down, timing out, 5xx or throttled past our patience: retry later;
    │                        never read as "not registered"
    ├── MdmAuthError         the MDM refused our credentials (fix the ExternalSystem spec)
    └── MdmProtocolError     an answer we cannot use (not JSON, several devices for one id)

Every request has explicit timeouts; 429 and 5xx answers and transport errors are retried a
bounded number of times, waiting what Retry-After asks (up to a cap) or backing off
exponentially. Tokens are cached until shortly before they expire.
"""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from functools import cache
from typing import Any, ClassVar, Self, TypeVar

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=15.0, pool=5.0)
MAX_ATTEMPTS = 3
MAX_RETRY_WAIT = 30.0  # seconds; a longer Retry-After fails fast with MdmUnavailable
BACKOFF_BASE = 0.5
TOKEN_EXPIRY_SKEW = 30.0  # renew a token this many seconds before it expires
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
USER_AGENT = "mimctl-mdm/1"


class MdmError(Exception):
    """Talking to an MDM failed; `system` names the ExternalSystem."""

    def __init__(self, system: str, message: str) -> None:
        super().__init__(f"{system}: {message}")
        self.system = system
        self.message = message


class MdmUnavailable(MdmError):
    """The MDM is down, slow or throttling us; the caller should try again later."""

    def __init__(self, system: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(system, message)
        self.retry_after = retry_after


class MdmAuthError(MdmError):
    """The MDM refused the credentials of the ExternalSystem."""


class MdmProtocolError(MdmError):
    """The MDM answered something a connector cannot use."""


Sleep = Callable[[float], None]


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


class HttpClient:
    """httpx with explicit timeouts and bounded retries on 429, 5xx and transport errors."""

    def __init__(self, system: str, *, transport: httpx.BaseTransport | None = None,
                 sleep: Sleep = time.sleep, max_attempts: int = MAX_ATTEMPTS,
                 max_retry_wait: float = MAX_RETRY_WAIT, timeout: httpx.Timeout = TIMEOUT) -> None:
        self.system = system
        self.sleep = sleep
        self.max_attempts = max_attempts
        self.max_retry_wait = max_retry_wait
        self.client = httpx.Client(timeout=timeout, transport=transport, verify=tls_context(),
                                   headers={"User-Agent": USER_AGENT}, follow_redirects=False)

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """The response to the first attempt that is not retryable, or MdmUnavailable."""
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            try:
                response = self.client.request(method, url, **kwargs)
            except httpx.TransportError as error:
                if last:
                    raise MdmUnavailable(self.system, f"{method} {_endpoint(url)} failed "
                                         f"after {attempt} attempts: {_transport_text(error)}"
                                         ) from error
                self.sleep(BACKOFF_BASE * 2 ** (attempt - 1))
                continue
            if response.status_code not in RETRYABLE_STATUS:
                return response
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            if wait is not None and wait > self.max_retry_wait:
                raise MdmUnavailable(self.system, f"{method} {_endpoint(url)} answered "
                                     f"{response.status_code}; retry after {wait:.0f} s", wait)
            if last:
                raise MdmUnavailable(self.system, f"{method} {_endpoint(url)} answered "
                                     f"{response.status_code} {attempt} times", wait)
            self.sleep(wait if wait is not None else BACKOFF_BASE * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        self.client.close()


@cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every connector (building one costs tens of ms)."""
    return ssl.create_default_context()


def _endpoint(url: str) -> str:
    """A URL without its query string (which may carry device identifiers)."""
    return url.split("?", 1)[0]


def _transport_text(error: httpx.TransportError) -> str:
    kind = type(error).__name__
    return f"{kind} ({error})" if str(error) else kind


def json_body(system: str, response: httpx.Response) -> Any:
    """The JSON body of a response, or MdmProtocolError saying what came instead."""
    try:
        return response.json()
    except ValueError as error:
        raise MdmProtocolError(system, f"{response.request.method} "
                               f"{_endpoint(str(response.request.url))} answered "
                               f"{response.status_code} without JSON") from error


@dataclass(slots=True)
class CachedToken:
    """An access token and the monotonic time it stops being usable."""

    value: str
    expires_at: float


class TokenCache:
    """Holds one token until TOKEN_EXPIRY_SKEW seconds before it expires."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.token: CachedToken | None = None

    def get(self, fetch: Callable[[], tuple[str, float | None]]) -> str:
        """The cached token, or a new one from `fetch` -> (token, lifetime seconds or None)."""
        if self.token is not None and self.clock() < self.token.expires_at:
            return self.token.value
        value, lifetime = fetch()
        expires = float("inf") if lifetime is None else self.clock() + lifetime - TOKEN_EXPIRY_SKEW
        self.token = CachedToken(value, expires)
        return value

    def clear(self) -> None:
        self.token = None


@dataclass(frozen=True, slots=True)
class Step:
    """One line of a connection test: what was tried, whether it worked, and what was seen."""

    what: str
    ok: bool
    detail: str = ""


@dataclass(slots=True)
class ClientCredential:
    """A client certificate and its private key, for certificate authentication."""

    certificate: x509.Certificate
    key: rsa.RSAPrivateKey

    @property
    def sha256_thumbprint(self) -> str:
        return b64url(self.certificate.fingerprint(hashes.SHA256()))

    @property
    def sha1_thumbprint(self) -> str:
        der = self.certificate.public_bytes(serialization.Encoding.DER)
        return b64url(hashlib.sha1(der, usedforsecurity=False).digest())

    @classmethod
    def from_pem(cls, system: str, certificate_pem: bytes, key_pem: bytes) -> ClientCredential:
        try:
            certificate = x509.load_pem_x509_certificate(certificate_pem)
            key = serialization.load_pem_private_key(key_pem, password=None)
        except ValueError as error:
            raise MdmAuthError(system, f"the client certificate or key cannot be read: "
                               f"{error}") from None
        return cls._checked(system, certificate, key)

    @classmethod
    def from_pkcs12(cls, system: str, data: bytes, password: bytes | None) -> ClientCredential:
        """A PFX given as raw DER or as base64 text (env variables and sealed values)."""
        candidates = [data]
        try:
            candidates.append(base64.b64decode(data, validate=False))
        except ValueError:
            pass
        for blob in candidates:
            try:
                key, certificate, _ = pkcs12.load_key_and_certificates(blob, password or None)
            except ValueError:
                continue
            if key is None or certificate is None:
                break
            return cls._checked(system, certificate, key)
        raise MdmAuthError(system, "the client certificate (PKCS#12) cannot be opened: wrong "
                           "certificatePassword, or not a PFX holding a key and a certificate")

    @classmethod
    def _checked(cls, system: str, certificate: x509.Certificate, key: Any) -> ClientCredential:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise MdmAuthError(system, "the client certificate key must be RSA")
        return cls(certificate, key)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def client_assertion(credential: ClientCredential, client_id: str, audience: str,
                     *, lifetime: int = 300, now: float | None = None) -> str:
    """An RFC 7523 client assertion JWT (PS256, x5t#S256 and x5t), as Entra and BlackBerry take."""
    issued = int(now if now is not None else time.time())
    header = {"alg": "PS256", "typ": "JWT", "x5t#S256": credential.sha256_thumbprint,
              "x5t": credential.sha1_thumbprint}
    claims = {"aud": audience, "iss": client_id, "sub": client_id, "jti": str(uuid.uuid4()),
              "nbf": issued, "iat": issued, "exp": issued + lifetime}
    signing_input = ".".join(b64url(json.dumps(part, separators=(",", ":")).encode())
                             for part in (header, claims))
    signature = credential.key.sign(
        signing_input.encode("ascii"),
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


class Connector(ABC):
    """Looks devices up in one MDM, named by its ExternalSystem.

    `secrets` maps secret paths of the spec (camelCase, dotted, without `spec.`: "clientSecret",
    "clientCertificate.key", "password") to their plaintext bytes.
    """

    listener_type: ClassVar[str]

    def __init__(self, name: str, spec: Any, secrets: Mapping[str, bytes], *,
                 transport: httpx.BaseTransport | None = None, sleep: Sleep = time.sleep) -> None:
        self.name = name
        self.spec = spec
        self.secrets = secrets
        self.http = HttpClient(name, transport=transport, sleep=sleep)
        self.tokens = TokenCache()

    def secret(self, path: str) -> bytes:
        try:
            return self.secrets[path]
        except KeyError:
            raise MdmAuthError(self.name, f"secret {path} is not configured") from None

    def pkcs12_credential(self) -> ClientCredential:
        """The client certificate of a UEM: the PFX secret and its password."""
        return ClientCredential.from_pkcs12(self.name, self.secret("clientCertificate"),
                                            self.secrets.get("certificatePassword"))

    @abstractmethod
    def lookup(self, identifier: str) -> dict[str, Any] | None:
        """The MDM's record of the device with this identifier, or None if it has none."""

    @abstractmethod
    def test_connection(self) -> list[Step]:
        """Authenticate and make one harmless call; never raises for a refused connection."""

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


CONNECTORS: dict[str, type[Connector]] = {}


ConnectorClass = TypeVar("ConnectorClass", bound=type[Connector])


def register(cls: ConnectorClass) -> ConnectorClass:
    """Class decorator: the connector for its listener type (registered once)."""
    if cls.listener_type in CONNECTORS:
        raise RuntimeError(f"a connector for {cls.listener_type} is already registered")
    CONNECTORS[cls.listener_type] = cls
    return cls
