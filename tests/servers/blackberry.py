"""BlackBerry UEM stand-in: BWS REST and the Enterprise Identity token endpoint, checking both.

`blackberry_app(state)` serves (the state is `app.config["STATE"]`: a test may swap it to reuse a
running server):

    GET  /{tenant}/api/v1/util/ping            unauthenticated: "up", or 404 "not available"
    POST /{tenant}/api/v1/util/authorization   local account -> besng-basic <base64(...)>
    POST /op/tenant/{tenant}/token             client_credentials with a private_key_jwt
    GET  /{tenant}/api/v1/devices?query=f=v    f is udid or imei; other fields answer 400

The token endpoint verifies the client assertion for real: PS256 (PSS, salt 32) with the key of
the certificate registered for the client, x5t#S256 of that certificate, aud (the token URL),
iss == sub == client_id, exp and nbf. /devices accepts only Authorization values the stand-in
issued and has not revoked (401 otherwise), answers 403 NOT_AUTHORIZED while
`state.authorized` is False, and drops unassigned (None) fields from the device records.
`state.faults` forces 429/5xx answers on /devices.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask, Response, abort, current_app, jsonify, request

from tests.servers.workspace_one import Faults

ERROR_TYPE = "application/vnd.blackberry.error-v1+json"
DEVICES_TYPE = "application/vnd.blackberry.devices-v1+json"
AUTHORIZATION_REQUEST_TYPE = "application/vnd.blackberry.authorizationrequest-v1+json"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLOCK_SKEW = 60


@dataclass(slots=True)
class BlackBerryState:
    """What the stand-in knows, what it has issued, and what it was asked."""

    tenant_id: str
    users: dict[str, str] = field(default_factory=dict)  # local accounts: name -> password
    clients: dict[str, x509.Certificate] = field(default_factory=dict)  # client_id -> cert
    devices: list[dict[str, Any]] = field(default_factory=list)  # BWS device records
    up: bool = True
    authorized: bool = True  # False: /devices answers 403 NOT_AUTHORIZED
    token_lifetime: int = 600
    query_fields: tuple[str, ...] = ("udid", "imei")  # what ?query= may select on
    faults: Faults = field(default_factory=Faults)
    authorizations: int = 0  # successful POST util/authorization
    tokens_issued: int = 0  # successful POST op/tenant/{tenant}/token
    issued: set[str] = field(default_factory=set)  # Authorization values /devices accepts
    lock: threading.Lock = field(default_factory=threading.Lock)

    def revoke(self) -> None:
        """Forget every issued authorization, so the next API call answers 401."""
        with self.lock:
            self.issued.clear()

    def issue(self, authorization: str, *, token: bool) -> None:
        with self.lock:
            self.issued.add(authorization)
            if token:
                self.tokens_issued += 1
            else:
                self.authorizations += 1


def blackberry_app(state: BlackBerryState) -> Flask:
    """The stand-in's Flask app, serving `state` (until `app.config["STATE"]` is swapped)."""
    app = Flask("blackberry")
    app.config["STATE"] = state

    @app.get("/<tenant>/api/v1/util/ping")
    def ping(tenant: str) -> Any:
        if not _state(tenant).up:
            return Response("not available", status=404, mimetype="text/plain")
        return Response("up", mimetype="text/plain")

    @app.post("/<tenant>/api/v1/util/authorization")
    def authorization(tenant: str) -> Any:
        state = _state(tenant)
        if request.mimetype != AUTHORIZATION_REQUEST_TYPE:
            return _error(415, "UNSUPPORTED_MEDIA_TYPE", 415, "Unsupported content type.")
        value = _basic_authorization(state, request.get_data())
        if value is None:
            return _error(400, "INVALID_CREDENTIALS", 400, "Invalid credentials.")
        state.issue(value, token=False)
        return Response(value, mimetype="text/plain")

    @app.post("/op/tenant/<tenant>/token")
    def token(tenant: str) -> Any:
        state = _state(tenant)
        problem = _token_problem(state, request.form, request.base_url)
        if problem is not None:
            status, error, description = problem
            return jsonify({"error": error, "error_description": description}), status
        access_token = secrets.token_urlsafe(32)
        state.issue(f"Bearer {access_token}", token=True)
        return jsonify({"access_token": access_token, "token_type": "Bearer",
                        "expires_in": state.token_lifetime})

    @app.get("/<tenant>/api/v1/devices")
    def devices(tenant: str) -> Any:
        state = _state(tenant)
        refusal = state.faults.take() or _refusal(state)
        if refusal is not None:
            return refusal
        found = _query(state, request.args.get("query"))
        if isinstance(found, Response):
            return found
        start = request.args.get("offset", default=0, type=int)
        end = start + request.args.get("max", default=100, type=int)
        records = [{k: v for k, v in d.items() if v is not None} for d in found[start:end]]
        return Response(json.dumps({"devices": records}), mimetype=DEVICES_TYPE)

    return app


def _state(tenant: str) -> BlackBerryState:
    """The served state, or a 404 for another tenant's routes."""
    state: BlackBerryState = current_app.config["STATE"]
    if tenant != state.tenant_id:
        abort(_error(404, "TENANT_NOT_FOUND", 404, f"Unknown tenant {tenant}."))
    return state


def _basic_authorization(state: BlackBerryState, body: bytes) -> str | None:
    """`besng-basic <base64(...)>` for a local account with the right password, else None."""
    try:
        wanted = json.loads(body)
        password = base64.b64decode(wanted["password"], validate=True).decode()
        username, provider = wanted["username"], wanted["provider"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    if provider != "LOCAL" or state.users.get(username) != password:
        return None
    text = (f'provider="LOCAL" tenant="{state.tenant_id}" username="{username}" '
            f'credentials="{password}"')
    return "besng-basic " + base64.b64encode(text.encode()).decode("ascii")


def _token_problem(state: BlackBerryState, form: Any,
                   token_url: str) -> tuple[int, str, str] | None:
    """(status, OAuth error, description) for a token request to refuse, else None."""
    if form.get("grant_type") != "client_credentials":
        return 400, "unsupported_grant_type", "Only client_credentials is supported."
    if "MDMBWS.All" not in form.get("scope", "").split():
        return 400, "invalid_scope", "The scope must include MDMBWS.All."
    client_id = form.get("client_id", "")
    certificate = state.clients.get(client_id)
    if certificate is None or form.get("client_assertion_type") != JWT_BEARER:
        return 401, "invalid_client", "Unknown client or no client assertion."
    try:
        verify_client_assertion(form.get("client_assertion", ""), certificate, client_id,
                                token_url)
    except (ValueError, TypeError) as error:
        return 401, "invalid_client", f"Client assertion rejected: {error}."
    return None


def verify_client_assertion(assertion: str, certificate: x509.Certificate, client_id: str,
                            audience: str, now: float | None = None) -> None:
    """Raise ValueError unless `assertion` is a valid private_key_jwt for the client (TypeError
    if the client's certificate has no RSA key)."""
    try:
        header_b64, claims_b64, signature_b64 = assertion.split(".")
        header, claims = json.loads(_unb64(header_b64)), json.loads(_unb64(claims_b64))
        signature = _unb64(signature_b64)
    except (ValueError, binascii.Error):
        raise ValueError("not a JWT") from None
    if header.get("alg") != "PS256":
        raise ValueError("alg must be PS256")
    if header.get("x5t#S256") != _b64url(certificate.fingerprint(hashes.SHA256())):
        raise ValueError("x5t#S256 is not the registered certificate")
    _check_pss(certificate, f"{header_b64}.{claims_b64}".encode("ascii"), signature)
    _check_claims(claims, client_id, audience, time.time() if now is None else now)


def _check_pss(certificate: x509.Certificate, signed: bytes, signature: bytes) -> None:
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError("the registered key is not RSA")
    try:
        key.verify(signature, signed, padding.PSS(mgf=padding.MGF1(hashes.SHA256()),
                                                  salt_length=32), hashes.SHA256())
    except InvalidSignature:
        raise ValueError("the signature does not verify") from None


def _check_claims(claims: dict[str, Any], client_id: str, audience: str, now: float) -> None:
    if claims.get("aud") != audience:
        raise ValueError("aud is not the token endpoint")
    if not claims.get("iss") == claims.get("sub") == client_id:
        raise ValueError("iss and sub must both be the client_id")
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= now - CLOCK_SKEW:
        raise ValueError("the assertion has expired")
    if claims.get("nbf", 0) > now + CLOCK_SKEW:
        raise ValueError("the assertion is not valid yet")


def _refusal(state: BlackBerryState) -> Response | None:
    if request.headers.get("Authorization") not in state.issued:
        return Response(status=401, headers={"WWW-Authenticate": "Bearer"})
    if not state.authorized:
        return _error(403, "NOT_AUTHORIZED", 403, "Not authorized to complete the request.")
    if request.headers.get("Accept") != DEVICES_TYPE:
        return _error(406, "NOT_ACCEPTABLE", 406, f"Accept must be {DEVICES_TYPE}.")
    return None


def _query(state: BlackBerryState, query: str | None) -> list[dict[str, Any]] | Response:
    """The devices a `field=value` query selects (all without one), or the 400 to answer."""
    if not query:
        return state.devices
    name, _, value = query.partition("=")
    if name not in state.query_fields:
        return _error(400, "BAD_REQUEST", 400, f"Unknown query field: {name}")
    return [d for d in state.devices if d.get(name) == value]


def _error(status: int, error_id: str, sub_status: int, message: str) -> Response:
    body = {"id": error_id, "subStatusCode": sub_status, "message": message}
    return Response(json.dumps(body), status=status, mimetype=ERROR_TYPE)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
