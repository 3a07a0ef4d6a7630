"""Workspace ONE UEM stand-in: the device API, checking the tenant code, Basic and CMSURL`1.

`workspace_one_app(state)` serves, under /API/mdm (the state is `app.config["STATE"]`: a test may
swap it to reuse a running server):

    GET devices?searchby=Udid|SerialNumber|ImeiNumber&id=   Accept version=1, v1 PascalCase
    GET devices/search?pagesize=                            Accept version=1, {"Devices": [...]}
    GET devices/{uuid}                                      Accept version=2, v2 camelCase

Every request must carry the state's tenant code (else 403, errorCode 1013, echoing the code as
the product does) and valid credentials (else 401, errorCode 1005): HTTP Basic for a user of
`state.users`, or `CMSURL`1 <base64 DER CMS>` whose detached signature over the raw request path
checks out with the included signer certificate, which must be one of `state.certificates`.
Searches ignore case (as the product's SQL Server collation does); an unknown device is 404,
errorCode 5061. `state.faults` forces 429/5xx answers; each authenticated request appends who
it was to `state.authenticated`.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask, Response, current_app, jsonify, request

CMS_SCHEME = "CMSURL`1"
View = Callable[..., Any]


class Faults:
    """Answers forced on the next requests to a stand-in's API routes, in order."""

    def __init__(self) -> None:
        self._pending: list[tuple[int, dict[str, str]]] = []
        self._lock = threading.Lock()

    def throttle(self, count: int, retry_after: int = 1) -> None:
        """The next `count` requests answer 429 with `Retry-After: retry_after`."""
        with self._lock:
            self._pending += [(429, {"Retry-After": str(retry_after)})] * count

    def fail(self, count: int, status: int = 503) -> None:
        """The next `count` requests answer `status` with an empty body."""
        with self._lock:
            self._pending += [(status, {})] * count

    def take(self) -> Response | None:
        """The forced answer for this request, if one is pending."""
        with self._lock:
            if not self._pending:
                return None
            status, headers = self._pending.pop(0)
        return Response(status=status, headers=headers)


@dataclass(frozen=True, slots=True)
class WorkspaceOneDevice:
    """One enrolled device, served as the v1 and the v2 record."""

    udid: str
    uuid: str
    platform: str = "iOS"
    model: str = "iPhone 15"
    os_version: str = "17.4.1"
    compliant: bool = True
    compromised: bool = False
    serial_number: str = "DMPV7098HPDY"
    imei: str = "355819081624714"
    user_name: str = "jdoe"
    device_id: int = 362508

    def v1(self) -> dict[str, Any]:
        return {
            "Udid": self.udid, "SerialNumber": self.serial_number, "MacAddress": "787B8A5D4304",
            "Imei": self.imei, "DeviceFriendlyName": f"{self.user_name} {self.model}",
            "LocationGroupName": "Corporate", "UserName": self.user_name, "Ownership": "C",
            "Platform": self.platform, "Model": self.model, "OperatingSystem": self.os_version,
            "EnrollmentStatus": "Enrolled",
            "ComplianceStatus": "Compliant" if self.compliant else "NonCompliant",
            "CompromisedStatus": self.compromised, "IsSupervised": True,
            "Id": {"Value": self.device_id}, "Uuid": self.uuid,
        }

    def v2(self) -> dict[str, Any]:
        return {
            "udid": self.udid, "serialNumber": self.serial_number, "macAddress": "787B8A5D4304",
            "imei": self.imei, "friendlyName": f"{self.user_name} {self.model}",
            "organizationGroupName": "Corporate", "supervised": True, "dataEncrypted": True,
            "platformInfo": {"deviceType": self.platform, "platformName": self.platform,
                             "modelName": self.model, "osVersion": self.os_version},
            "carrierInfo": {"phoneNumber": "", "roamingEnabled": False},
            "enrollmentInfo": {"enrollmentStatus": "ENROLLED", "compliant": self.compliant,
                               "ownership": "CORPORATE", "userName": self.user_name,
                               "managedBy": "MDM"},
            "uuid": self.uuid,
        }


@dataclass(slots=True)
class WorkspaceOneState:
    """What the stand-in knows and what it was asked."""

    tenant_code: str
    users: dict[str, str] = field(default_factory=dict)  # Basic: user name -> password
    certificates: dict[bytes, str] = field(default_factory=dict)  # SHA-256 -> admin name
    devices: list[WorkspaceOneDevice] = field(default_factory=list)
    key_name: str = "aw-tenant-code"
    faults: Faults = field(default_factory=Faults)
    authenticated: list[str] = field(default_factory=list)  # who, per authenticated request

    def register_certificate(self, certificate: x509.Certificate, admin: str) -> None:
        self.certificates[certificate.fingerprint(hashes.SHA256())] = admin


def workspace_one_app(state: WorkspaceOneState) -> Flask:
    """The stand-in's Flask app, serving `state` (until `app.config["STATE"]` is swapped)."""
    app = Flask("workspace_one")
    app.config["STATE"] = state

    @app.get("/API/mdm/devices")
    @_api(version=1)
    def search_by() -> Any:
        field_name = _SEARCH_FIELDS.get(request.args.get("searchby", "").lower())
        wanted = request.args.get("id", "").lower()
        found = [d for d in _state().devices
                 if field_name and getattr(d, field_name).lower() == wanted]
        return jsonify(found[0].v1()) if found else _not_found()

    @app.get("/API/mdm/devices/search")
    @_api(version=1)
    def search() -> Any:
        devices = _state().devices
        size = request.args.get("pagesize", default=500, type=int)
        if not devices:
            return Response(status=204)
        return jsonify({"Devices": [d.v1() for d in devices[:size]], "Page": 0,
                        "PageSize": size, "Total": len(devices)})

    @app.get("/API/mdm/devices/<device_uuid>")
    @_api(version=2)
    def device(device_uuid: str) -> Any:
        found = [d for d in _state().devices if d.uuid.lower() == device_uuid.lower()]
        return jsonify(found[0].v2()) if found else _not_found()

    return app


_SEARCH_FIELDS = {"udid": "udid", "serialnumber": "serial_number", "imeinumber": "imei"}


def _state() -> WorkspaceOneState:
    state: WorkspaceOneState = current_app.config["STATE"]
    return state


def _api(version: int) -> Callable[[View], View]:
    """Decorator: forced faults, tenant code, credentials and Accept version, then the view."""

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(**kwargs: Any) -> Any:
            state = _state()
            refusal = state.faults.take() or _refusal(state, version)
            return refusal if refusal is not None else view(**kwargs)
        return guarded

    return decorate


def _refusal(state: WorkspaceOneState, version: int) -> Response | None:
    code = request.headers.get(state.key_name, "")
    if code != state.tenant_code:
        return _error(403, 1013, f"Tenant code {code} does not identify an Organization Group.")
    who = _authenticated_as(state)
    if who is None:
        return _error(401, 1005, "An error occurred while validating remote service client "
                                 "credentials or user not found : unknown")
    state.authenticated.append(who)
    accept = f"application/json;version={version}"
    if request.headers.get("Accept", "").replace(" ", "") != accept:
        return _error(406, 1003, f"This resource is served with Accept {accept}.")
    return None


def _authenticated_as(state: WorkspaceOneState) -> str | None:
    """`basic:<user>` or `certificate:<admin>` for valid credentials, else None."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme == "Basic":
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except ValueError:
            return None
        return f"basic:{user}" if password and state.users.get(user) == password else None
    if scheme == CMS_SCHEME:
        try:
            signer = verify_cmsurl(value, _raw_path())
        except ValueError:
            return None
        admin = state.certificates.get(signer.fingerprint(hashes.SHA256()))
        return f"certificate:{admin}" if admin else None
    return None


def _raw_path() -> bytes:
    """The request path as sent (percent-encoded), without the query string."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
    return raw.split("?", 1)[0].encode("latin-1")


def verify_cmsurl(value: str, path: bytes) -> x509.Certificate:
    """The signer of a CMSURL`1 value whose detached SHA-256 signature covers `path`.

    Raises ValueError unless the value is a DER CMS SignedData without content, with one
    signer whose certificate is included, whose messageDigest is SHA-256(path) and whose
    signature over the signed attributes verifies with that certificate's RSA key.
    """
    try:
        info = cms.ContentInfo.load(base64.b64decode(value, validate=True))
        if info["content_type"].native != "signed_data":
            raise ValueError("not CMS SignedData")
        signed = info["content"]
        if signed["encap_content_info"]["content"].native is not None:
            raise ValueError("the signature is not detached")
        (signer_info,) = signed["signer_infos"]
        certificate = _signer_certificate(signed, signer_info)
        _check_signature(signer_info, certificate, path)
    except (TypeError, KeyError) as error:  # malformed DER (asn1crypto), a key that is not RSA
        raise ValueError(f"unusable CMS: {error}") from None
    return certificate


def _signer_certificate(signed: cms.SignedData, signer_info: cms.SignerInfo) -> x509.Certificate:
    sid = signer_info["sid"]
    if sid.name != "issuer_and_serial_number":
        raise ValueError("the signer is not named by issuer and serial number")
    for choice in signed["certificates"]:
        if choice.name != "certificate":
            continue
        candidate = choice.chosen
        if (candidate.serial_number == sid.chosen["serial_number"].native
                and candidate.issuer == sid.chosen["issuer"]):
            return x509.load_der_x509_certificate(candidate.dump())
    raise ValueError("the signer certificate is not included")


def _check_signature(signer_info: cms.SignerInfo, certificate: x509.Certificate,
                     path: bytes) -> None:
    if signer_info["digest_algorithm"]["algorithm"].native != "sha256":
        raise ValueError("the digest is not SHA-256")
    if signer_info["signature_algorithm"].signature_algo != "rsassa_pkcs1v15":
        raise ValueError("the signature is not RSA PKCS#1 v1.5")
    attributes = signer_info["signed_attrs"]
    digests = [a["values"][0].native for a in attributes if a["type"].native == "message_digest"]
    if digests != [hashlib.sha256(path).digest()]:
        raise ValueError("the messageDigest does not match the request path")
    signed_bytes = b"\x31" + attributes.dump()[1:]  # signed over as SET OF, not [0] IMPLICIT
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise TypeError("the signer key is not RSA")
    try:
        key.verify(signer_info["signature"].native, signed_bytes, padding.PKCS1v15(),
                   hashes.SHA256())
    except InvalidSignature:
        raise ValueError("the signature does not verify") from None


def _not_found() -> Response:
    return _error(404, 5061, "Device not found for this request.")


def _error(status: int, code: int, message: str) -> Response:
    response = jsonify({"errorCode": code, "message": message, "activityId": str(uuid.uuid4())})
    response.status_code = status
    return response
