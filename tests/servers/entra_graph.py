"""A stand-in for Entra ID's token endpoint and Microsoft Graph's Intune managedDevices API.

Routes (shapes from section 1.1 of shared/research/mdm-apis.md):

    POST /<tenant>/oauth2/v2.0/token                      client-credentials grant
    GET  /v1.0/deviceManagement/managedDevices            $filter, $top, @odata.nextLink paging
    GET  /v1.0/deviceManagement/managedDevices/<id>       one device

The token endpoint takes a client secret or a client assertion, which it really verifies:
PS256 (PSS, salt length 32) or RS256 signature by the registered certificate's key, `x5t#S256`
and/or `x5t` thumbprints of that certificate, `iss == sub == client_id`, `exp` in the future,
`nbf` not in the future. The audience rule: `aud` must be the URL of the token endpoint the
assertion is posted to (so `https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`
against Entra, `http://127.0.0.1:PORT/{tenant}/oauth2/v2.0/token` against this stand-in).
Errors carry Entra's envelope (`error`, `error_description` with AADSTS code and trace lines,
`error_codes`, ...); invalid_client answers 401.

Graph needs a bearer token this stand-in issued and that has not expired or been revoked;
otherwise 401 InvalidAuthenticationToken. Like real Graph, a $filter it does not support is
silently ignored and every device comes back. Tests steer it through `app.state`
(EntraGraphState): throttle(), fail(), revoke_tokens(), token_lifetime, page_size,
supported_filters, permission_granted, next_link_base, and counters. A test module may serve one
app and give each test a fresh state (`app.state = make_state(...)`): starting and stopping a
server costs about half a second.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask, Response, jsonify, request
from flask.typing import ResponseReturnValue

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICES = "/v1.0/deviceManagement/managedDevices"
CONTEXT = "https://graph.microsoft.com/v1.0/$metadata#deviceManagement/managedDevices"
FILTER = re.compile(r"^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$")
FORBIDDEN = ("Application is not authorized to perform this operation. Application must have one "
             "of the following scopes: DeviceManagementManagedDevices.Read.All, "
             "DeviceManagementManagedDevices.ReadWrite.All - Operation ID (for customer support): "
             "00000000-0000-0000-0000-000000000000")
Problem = tuple[int, str]  # an AADSTS code and its text


@dataclass
class EntraGraphState:
    """What the stand-in knows and how tests steer it (all changes take effect at once)."""

    tenant: str
    client_id: str
    client_secret: str | None
    certificate: x509.Certificate | None
    devices: list[dict[str, Any]]
    page_size: int = 100
    token_lifetime: int = 3599  # expires_in of new tokens, seconds
    supported_filters: set[str] = field(
        default_factory=lambda: {"azureADDeviceId", "serialNumber"})
    permission_granted: bool = True  # False: Graph answers 403 (no Read.All permission)
    next_link_base: str | None = None  # base URL of @odata.nextLink (default: this server)
    tokens_issued: int = field(default=0, init=False)
    graph_requests: int = field(default=0, init=False)
    _tokens: dict[str, float] = field(default_factory=dict, init=False)  # token -> expiry
    _faults: deque[tuple[int, str | None]] = field(default_factory=deque, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def throttle(self, n: int, retry_after: float | str = 1) -> None:
        """The next n Graph requests answer 429 with this Retry-After."""
        self.fail(n, 429, retry_after)

    def fail(self, n: int, status: int = 503, retry_after: float | str | None = None) -> None:
        """The next n Graph requests answer `status` (with Retry-After if given)."""
        header = None if retry_after is None else str(retry_after)
        with self._lock:
            self._faults.extend([(status, header)] * n)

    def revoke_tokens(self) -> None:
        """Every token issued so far stops being accepted by Graph."""
        with self._lock:
            self._tokens.clear()

    def issue_token(self) -> tuple[str, int]:
        token, lifetime = secrets.token_urlsafe(32), self.token_lifetime
        with self._lock:
            self._tokens[token] = time.monotonic() + lifetime
            self.tokens_issued += 1
        return token, lifetime

    def token_problem(self, authorization: str) -> str | None:
        """Why Graph refuses this Authorization header, or None."""
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return "Access token is empty."
        with self._lock:
            expiry = self._tokens.get(token)
        if expiry is None:
            return "Access token validation failure. Invalid audience."
        if time.monotonic() >= expiry:
            return "Lifetime validation failed, the token is expired."
        return None

    def next_fault(self) -> tuple[int, str | None] | None:
        with self._lock:
            self.graph_requests += 1
            return self._faults.popleft() if self._faults else None


class EntraGraphApp(Flask):
    """The Flask app of the stand-in; `state` may be read, steered or replaced at any time."""

    def __init__(self, state: EntraGraphState) -> None:
        super().__init__(__name__)
        self.state = state
        self.add_url_rule("/<path_tenant>/oauth2/v2.0/token", "token",
                          lambda path_tenant: _token(self.state, path_tenant), methods=["POST"])
        self.add_url_rule(DEVICES, "devices", lambda: _list_devices(self.state))
        self.add_url_rule(f"{DEVICES}/<device_id>", "device",
                          lambda device_id: _get_device(self.state, device_id))


def make_state(*, tenant: str, client_id: str, client_secret: str | None = None,
               certificate: x509.Certificate | None = None,
               devices: list[dict[str, Any]] | None = None, page_size: int = 100,
               token_lifetime: int = 3599) -> EntraGraphState:
    """One Entra app registration in one tenant (secret and/or certificate), and its devices."""
    return EntraGraphState(tenant, client_id, client_secret, certificate, list(devices or []),
                           page_size=page_size, token_lifetime=token_lifetime)


def make_app(*, tenant: str, client_id: str, client_secret: str | None = None,
             certificate: x509.Certificate | None = None,
             devices: list[dict[str, Any]] | None = None, page_size: int = 100,
             token_lifetime: int = 3599) -> EntraGraphApp:
    """A stand-in for one Entra app registration in one tenant, and its Intune devices."""
    return EntraGraphApp(make_state(
        tenant=tenant, client_id=client_id, client_secret=client_secret, certificate=certificate,
        devices=devices, page_size=page_size, token_lifetime=token_lifetime))


# --- Entra token endpoint -------------------------------------------------------------------

def _token(state: EntraGraphState, path_tenant: str) -> ResponseReturnValue:
    form = request.form
    if path_tenant != state.tenant:
        return _entra_error(400, "invalid_request", 90002, f"Tenant '{path_tenant}' not found. "
                            "Check to make sure you have the correct tenant ID.")
    if form.get("grant_type") != "client_credentials":
        return _entra_error(400, "unsupported_grant_type", 70003,
                            "The app requested an unsupported grant type.")
    if form.get("client_id") != state.client_id:
        return _entra_error(400, "unauthorized_client", 700016,
                            f"Application with identifier '{form.get('client_id')}' was not "
                            f"found in the directory '{state.tenant}'.")
    if form.get("scope") != GRAPH_SCOPE:
        return _entra_error(400, "invalid_scope", 70011, "The provided value for the input "
                            "parameter 'scope' is not valid.")
    problem = _client_problem(state, request.base_url)
    if problem is not None:
        return _entra_error(401, "invalid_client", *problem)
    token, lifetime = state.issue_token()
    return {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
            "access_token": token}


def _client_problem(state: EntraGraphState, token_url: str) -> Problem | None:
    """Why the client's authentication fails, or None when it passes."""
    form = request.form
    if "client_secret" in form:
        given = form["client_secret"].encode()
        if state.client_secret is not None and hmac.compare_digest(
                given, state.client_secret.encode()):
            return None
        return 7000215, ("Invalid client secret provided. Ensure the secret being sent in the "
                         "request is the client secret value, not the client secret ID, for a "
                         f"secret added to app '{state.client_id}'.")
    if form.get("client_assertion_type") == JWT_BEARER and form.get("client_assertion"):
        return _assertion_problem(state, form["client_assertion"], token_url)
    return 7000218, ("The request body must contain the following parameter: "
                     "'client_assertion' or 'client_secret'.")


def _assertion_problem(state: EntraGraphState, assertion: str, token_url: str) -> Problem | None:
    if state.certificate is None:
        return 700027, "Client assertion contains an invalid signature: no certificate is registered."
    try:
        header_part, claims_part, signature_part = assertion.split(".")
        header, claims = (json.loads(_unb64(part)) for part in (header_part, claims_part))
        signature = _unb64(signature_part)
    except ValueError:  # binascii.Error, JSONDecodeError and UnicodeDecodeError are ValueErrors
        return 50027, "JWT token is invalid or malformed."
    if not isinstance(header, dict) or not isinstance(claims, dict):
        return 50027, "JWT token is invalid or malformed."
    if not _thumbprints_match(header, state.certificate):
        return 700027, ("The certificate with identifier used to sign the client assertion is "
                        f"not registered on application '{state.client_id}'.")
    signed = f"{header_part}.{claims_part}".encode("ascii")
    if not _signature_valid(header.get("alg"), signature, signed, state.certificate):
        return 700027, "Client assertion failed signature validation."
    return _claims_problem(claims, state.client_id, token_url)


def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _thumbprints_match(header: dict[str, Any], certificate: x509.Certificate) -> bool:
    """At least one of x5t#S256 and x5t is given, and every one given is the certificate's."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    expected = {"x5t#S256": _b64(hashlib.sha256(der).digest()),
                "x5t": _b64(hashlib.sha1(der, usedforsecurity=False).digest())}
    given = {name: header[name] for name in expected if name in header}
    return bool(given) and all(value == expected[name] for name, value in given.items())


def _signature_valid(alg: Any, signature: bytes, signed: bytes,
                     certificate: x509.Certificate) -> bool:
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        return False
    if alg == "PS256":
        scheme: padding.AsymmetricPadding = padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                        salt_length=32)
    elif alg == "RS256":
        scheme = padding.PKCS1v15()
    else:
        return False
    try:
        key.verify(signature, signed, scheme, hashes.SHA256())
    except InvalidSignature:
        return False
    return True


def _claims_problem(claims: dict[str, Any], client_id: str, token_url: str) -> Problem | None:
    now = time.time()
    if claims.get("aud") != token_url:
        return 50027, f"Invalid JWT token. The audience must be '{token_url}'."
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        return 50027, "Invalid JWT token. The iss and sub claims must be the client id."
    exp, nbf = claims.get("exp"), claims.get("nbf", now)
    if not isinstance(exp, (int, float)) or not isinstance(nbf, (int, float)):
        return 50027, "JWT token is invalid or malformed."
    if exp <= now or nbf > now:
        return 700024, "Client assertion is not within its valid time range."
    return None


def _entra_error(status: int, error: str, code: int, text: str) -> ResponseReturnValue:
    trace, correlation = uuid.uuid4(), uuid.uuid4()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    description = (f"AADSTS{code}: {text}\r\nTrace ID: {trace}\r\n"
                   f"Correlation ID: {correlation}\r\nTimestamp: {stamp}")
    return {"error": error, "error_description": description, "error_codes": [code],
            "timestamp": stamp, "trace_id": str(trace), "correlation_id": str(correlation),
            "error_uri": f"https://login.microsoftonline.com/error?code={code}"}, status


# --- Microsoft Graph ------------------------------------------------------------------------

def _graph_error(status: int, code: str, message: str,
                 retry_after: str | None = None) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "innerError": {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
        "request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4())}}})
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = retry_after
    return response


def _gate(state: EntraGraphState) -> Response | None:
    """The answer to a Graph request that must not get through (fault, token, permission)."""
    fault = state.next_fault()
    if fault is not None:
        status, retry_after = fault
        code = "TooManyRequests" if status == 429 else "ServiceUnavailable"
        return _graph_error(status, code, "Injected by the stand-in.", retry_after)
    problem = state.token_problem(request.headers.get("Authorization", ""))
    if problem is not None:
        return _graph_error(401, "InvalidAuthenticationToken", problem)
    if not state.permission_granted:
        return _graph_error(403, "Forbidden", FORBIDDEN)
    return None


def _get_device(state: EntraGraphState, device_id: str) -> ResponseReturnValue:
    refused = _gate(state)
    if refused is not None:
        return refused
    for device in state.devices:
        if str(device.get("id", "")).lower() == device_id.lower():
            return {"@odata.context": f"{CONTEXT}/$entity", **device}
    return _graph_error(404, "ResourceNotFound", "Resource not found for the segment "
                        "'managedDevices'.")


def _list_devices(state: EntraGraphState) -> ResponseReturnValue:
    refused = _gate(state)
    if refused is not None:
        return refused
    try:
        top = int(request.args.get("$top", state.page_size))
        offset = int(request.args.get("$skiptoken", 0))
    except ValueError:
        return _graph_error(400, "BadRequest", "Invalid $top or $skiptoken.")
    matches = _filtered(state, request.args.get("$filter"))
    size = max(1, min(top, state.page_size))
    body: dict[str, Any] = {"@odata.context": CONTEXT, "value": matches[offset:offset + size]}
    if offset + size < len(matches):
        body["@odata.nextLink"] = _next_link(state, offset + size)
    return body


def _filtered(state: EntraGraphState, expression: str | None) -> list[dict[str, Any]]:
    """Devices matching `field eq 'value'` (case-insensitive); every device when unsupported."""
    parsed = FILTER.match(expression or "")
    if parsed is None or parsed.group(1) not in state.supported_filters:
        return list(state.devices)
    name, value = parsed.group(1), parsed.group(2).replace("''", "'").lower()
    return [d for d in state.devices if str(d.get(name, "")).lower() == value]


def _next_link(state: EntraGraphState, offset: int) -> str:
    query = {k: v for k, v in request.args.items() if k != "$skiptoken"}
    query["$skiptoken"] = str(offset)
    base = state.next_link_base or request.host_url.rstrip("/")
    return f"{base}{DEVICES}?{urlencode(query, quote_via=quote)}"
