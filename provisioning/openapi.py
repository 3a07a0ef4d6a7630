"""The service's OpenAPI 3.1 document, served at `GET /openapi.json`.

The document is Python data, written from what each view does: its request bodies and their
limits, every status it answers and the JSON it answers with. Errors are always
`{"code", "message", ...extras}` (provisioning/errors.py); each response names the codes it can
carry, and `not_found` where werkzeug's routing answers first (a device id that is not a
number). tests/test_openapi.py keeps the document true: it compares the paths with the app's
url_map, drives a real collection through it, and lets schemathesis fuzz every operation.

The browser pages (`/collect/<token>`, `/qr/<token>.png|.svg`) are documented too, as HTML and
images; their errors are HTML pages, not JSON.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from provisioning import api, collect, devices
from reconciler.db import devices as lifecycle
from specs.base import SLUG_PATTERN

blueprint = Blueprint("openapi", __name__)

Schema = dict[str, Any]

# --- Building blocks ------------------------------------------------------------------------------


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def text(low: int = 1, high: int | None = None, *, nullable: bool = False) -> Schema:
    schema: Schema = {"type": ["string", "null"] if nullable else "string", "minLength": low}
    if high is not None:
        schema["maxLength"] = high
    return schema


def obj(properties: dict[str, Schema], *required: str, extra: bool = False) -> Schema:
    """An object; `extra` says whether other members are allowed (bodies: views ignore them)."""
    return {"type": "object", "required": list(required), "properties": properties,
            "additionalProperties": extra}


def error(*codes: str, required: tuple[str, ...] = (), **extras: Schema) -> Schema:
    """The error object of provisioning/errors.py, narrowed to `codes` and these extras."""
    return obj({"code": {"enum": list(codes)}, "message": {"type": "string"}, **extras},
               "code", "message", *required)


def json_body(schema: Schema, *, required: bool = True) -> Schema:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def answer(description: str, schema: Schema, **headers: Schema) -> Schema:
    """A JSON response; `headers` are headers it always carries."""
    response: Schema = {"description": description,
                        "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


def header(description: str, schema: Schema | None = None) -> Schema:
    return {"description": description, "required": True, "schema": schema or {"type": "string"}}


def path_parameter(name: str, schema: Schema, description: str) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema,
            "description": description}


RETRY_AFTER = header("Seconds to wait before trying again.", {"type": "string",
                                                             "pattern": "^[0-9]+$"})
DEVICE_ID = path_parameter("deviceId", {"type": "integer", "minimum": 0},
                           "The device, as its package and the devices API name it.")
SESSION_ID = path_parameter("sessionId", {"type": "string", "minLength": 1},
                            "The sessionId the collect answered.")
CA_NAME = path_parameter("name", {"type": "string", "pattern": SLUG_PATTERN, "maxLength": 63},
                         "The CertificateAuthority's metadata.name.")
TOKEN = path_parameter("token", {"type": "string", "minLength": 1},
                       "The collection token of the link in the e-mail.")

MALFORMED = answer("The body is not what this operation takes.",
                   error("malformed", field={"type": "string"}))
NO_ROUTE = answer("No such route (a path parameter of the wrong form).", error("not_found"))
DEVICE_TOKEN_REFUSED = answer(
    "No device token, a wrong one, or a device that was never issued.", error("unauthorized"),
    **{"WWW-Authenticate": header("Bearer realm=\"mimctl devices\"")})
DEVICE_GONE = answer("The device was canceled or removed: the phone must remove its identity.",
                     error("device_canceled"))
API_KEY_REFUSED = answer("No API key, a wrong or a revoked one.", error("unauthorized"), **{
    "WWW-Authenticate": header("Bearer realm=\"mimctl api\"")})
NOT_PERMITTED = answer("The key's person may not do this (roles, workflow, scope); audited.",
                       error("not_permitted", operation={"type": "string"}))
UNKNOWN_DEVICE = answer("No such device.", error("unknown_device", "not_found"))
DEVICE_STATE = answer("The device is not in a state this operation applies to.",
                      error("device_state"))
MDM_ERROR = answer("The MDM system could not be asked (it answered with an error).",
                   error("mdm_error"))
BUSY = answer("The MDM system cannot be reached now (`mdm_unavailable`), or the service is at "
              "its maximum count of collection sessions (`session_limit`).",
              error("mdm_unavailable", "session_limit"), **{"Retry-After": RETRY_AFTER})
REFUSED_DEVICE_CODES = ("person_disabled", "cannot_receive", "cannot_collect", "unknown_device",
                        "not_my_device", "issuance_disabled", "REST007")

DEVICE_BEARER = [{"deviceToken": []}]
API_BEARER = [{"apiKey": []}]
PKI_CACHE = {"Cache-Control": header("public, max-age=N")}
PAGE_HEADERS = {name: header(value) for name, value in (
    ("Cache-Control", "no-store"), ("Referrer-Policy", "no-referrer"),
    ("Content-Security-Policy", "Nothing is loaded from anywhere else."))}


def html(description: str) -> Schema:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def binary(description: str, media_type: str, **headers: Schema) -> Schema:
    response: Schema = {"description": description, "content": {media_type: {}}}
    if headers:
        response["headers"] = headers
    return response


# --- Components -----------------------------------------------------------------------------------

DEVICE_FACTS = obj({
    "serialNumber": text(1, collect.MAX_FIELD),
    "platform": {"enum": list(collect.PLATFORMS)},
    "model": text(1, collect.MAX_FIELD, nullable=True),
    "osVersion": text(1, collect.MAX_FIELD, nullable=True),
    "mdmDeviceId": text(1, collect.MAX_FIELD, nullable=True),
}, "serialNumber", "platform", extra=True)

DEVICE_PROPERTIES: dict[str, Schema] = {
    "id": {"type": "integer"},
    "person": {"type": "string"},
    "profile": {"type": "string"},
    "status": {"enum": ["provisioning", "active", "disabled", "canceled", "removed",
                        "abandoned"]},
    "serialNumber": {"type": ["string", "null"]},
    "platform": {"type": ["string", "null"]},
    "model": {"type": ["string", "null"]},
    "mdmDeviceId": {"type": ["string", "null"]},
}

CERTIFICATE = obj({
    "authority": {"type": "string"},
    "serialNumber": {"type": "string", "pattern": "^[0-9a-f]+$"},
    "policy": {"type": ["string", "null"]},
    "subject": {"type": ["string", "null"]},
    "status": {"enum": [lifecycle.GOOD, lifecycle.HOLD, lifecycle.REVOKED]},
    "revocationReason": {"enum": [*lifecycle.REASONS, lifecycle.HOLD_REASON, None]},
    "notAfter": {"type": ["string", "null"], "format": "date-time"},
}, "authority", "serialNumber", "policy", "subject", "status", "revocationReason", "notAfter")

ENVELOPE = {
    **obj({
        "version": {"const": 1},
        "algorithm": {"enum": ["AES-256-GCM", "3DES-CBC-HMAC-SHA256"]},
        "keyWrap": {"const": "RSA-OAEP-SHA256"},
        "wrappedKey": {"type": "string", "contentEncoding": "base64"},
        "iv": {"type": "string", "contentEncoding": "base64"},
        "ciphertext": {"type": "string", "contentEncoding": "base64"},
        "mac": {"type": "string", "contentEncoding": "base64"},
        "contentType": {"const": "application/pkcs7-mime; smime-type=signed-data"},
    }, "version", "algorithm", "keyWrap", "wrappedKey", "iv", "ciphertext", "contentType"),
    # 3DES is encrypt-then-MAC; GCM authenticates by itself.
    "if": {"properties": {"algorithm": {"const": "3DES-CBC-HMAC-SHA256"}}},
    "then": {"required": ["mac"]},
    "else": {"not": {"required": ["mac"]}},
}

SCHEMAS: dict[str, Schema] = {
    "DeviceFacts": DEVICE_FACTS,
    "Item": obj({
        "id": {"type": "string"}, "policy": {"type": "string"},
        "container": {"type": ["string", "null"]}, "keyAlgorithm": {"const": "RSA"},
        "keySize": {"type": "integer"},
        "source": {"enum": ["device", "server", "archived", "historic"]},
    }, "id", "policy", "container", "keyAlgorithm", "keySize", "source"),
    "Session": obj({
        "sessionId": {"type": "string"}, "expiresAt": {"type": "string", "format": "date-time"},
        "certificates": {"type": "array", "items": ref("Item")},
    }, "sessionId", "expiresAt", "certificates"),
    "Envelope": ENVELOPE,
    "Device": obj(DEVICE_PROPERTIES, *DEVICE_PROPERTIES),
    "DeviceDetail": obj({**DEVICE_PROPERTIES, "certificates": {
        "type": "array", "items": ref("Certificate")}}, *DEVICE_PROPERTIES, "certificates"),
    "Certificate": CERTIFICATE,
    "Delivery": {"enum": list(api.DELIVERIES), "default": "Email"},
    "Reason": text(0, devices.MAX_REASON, nullable=True),
}

SECURITY_SCHEMES = {
    "deviceToken": {"type": "http", "scheme": "bearer",
                    "description": "The deviceToken of the device's package."},
    "apiKey": {"type": "http", "scheme": "bearer", "bearerFormat": "mimk_...",
               "description": "An API key from `mimctl apikey create --person P`; the "
                              "person's roles decide what it may do."},
}

# --- Operations -----------------------------------------------------------------------------------


def operation(operation_id: str, tag: str, summary: str, responses: dict[str, Schema], *,
              parameters: list[Schema] | None = None, body: Schema | None = None,
              security: list[dict[str, list[str]]] | None = None) -> Schema:
    done: Schema = {"operationId": operation_id, "tags": [tag], "summary": summary}
    if parameters:
        done["parameters"] = parameters
    if body is not None:
        done["requestBody"] = body
    done["security"] = security or []
    done["responses"] = responses
    return done


COLLECT_REFUSALS = {
    "403": answer("Refused: waiting for validation, roles, device or MDM restrictions, "
                  "issuance switched off; audited.",
                  error("awaiting_validation", *REFUSED_DEVICE_CODES)),
    "502": MDM_ERROR,
    "503": BUSY,
}

PROVISION = {
    "/provision/v1/collect": {"post": operation(
        "collect", "collect", "Start a collection with the link's token and its code.",
        body=json_body(obj({"token": text(1, 128), "authCode": text(1, 64),
                            "device": ref("DeviceFacts")}, "token", "authCode", "device",
                           extra=True)),
        responses={
            "201": answer("A collection session and the certificates it delivers.",
                          ref("Session")),
            "400": MALFORMED,
            "401": answer("A wrong authentication code; counted.",
                          error("wrong_code", required=("attemptsRemaining",),
                                attemptsRemaining={"type": "integer", "minimum": 0})),
            "404": answer("No request has this token.", error("unknown_request")),
            "409": answer("Collected already, no code, or changed meanwhile.",
                          error("already_collected", "no_code", "conflict")),
            "410": answer("Canceled or expired.", error("canceled", "expired")),
            "423": answer("Locked after too many wrong codes.",
                          error("locked", attemptsRemaining={"const": 0})),
            **COLLECT_REFUSALS,
        })},
    "/provision/v1/devices/{deviceId}/collect": {"post": operation(
        "collectRenewal", "collect", "Start the collection of a renewal or update of this device.",
        parameters=[DEVICE_ID], security=DEVICE_BEARER,
        body=json_body(obj({"device": ref("DeviceFacts")}, "device", extra=True)),
        responses={
            "201": answer("A collection session and the certificates it delivers.",
                          ref("Session")),
            "400": MALFORMED, "401": DEVICE_TOKEN_REFUSED,
            "403": answer("Refused: another phone, waiting for validation, roles, device or "
                          "MDM restrictions; audited.",
                          error("wrong_device", "awaiting_validation", *REFUSED_DEVICE_CODES)),
            "404": answer("No renewal or update of this device is pending.",
                          error("no_renewal", "not_found")),
            "409": answer("No code, or changed meanwhile.", error("no_code", "conflict")),
            "410": answer("The device is gone, or the request expired.",
                          error("device_canceled", "canceled", "expired")),
            "502": MDM_ERROR, "503": BUSY,
        })},
    "/provision/v1/sessions/{sessionId}/package": {"post": operation(
        "buildPackage", "collect", "Issue the certificates and get the enveloped package.",
        parameters=[SESSION_ID],
        body=json_body(obj({
            "transportKey": {**text(1, 16384), "description": "RSA public key (2048 bits or "
                                                              "more), PEM SubjectPublicKeyInfo."},
            "csrs": {"type": "array", "default": [], "items": obj(
                {"certificateId": {"type": "string"}, "csr": {"type": "string"}}, extra=True)},
        }, "transportKey", extra=True)),
        responses={
            "200": answer("The package, signed (CMS) and enveloped to the transport key.",
                          obj({"envelope": ref("Envelope")}, "envelope")),
            "400": answer("A malformed body, transport key or CSR.", error(
                "malformed", "transport_key_invalid", "csr_unexpected", "csr_missing",
                "csr_malformed", "csr_key_not_rsa", "csr_signature_invalid",
                "csr_key_too_small", field={"type": "string"})),
            "404": answer("No such session.", error("unknown_session", "not_found")),
            "409": answer("The package of this session was built already.",
                          error("session_state")),
            "410": answer("The session has expired.", error("session_expired")),
            "500": answer("The CA could not issue (its configuration); logged.",
                          error("issuance_failed")),
        })},
    "/provision/v1/sessions/{sessionId}/complete": {"post": operation(
        "completeSession", "collect",
        "Confirm the package arrived: the device becomes active (a renewal's new token, unlock "
        "key and certificates take effect). Until then nothing changes on an issued device.",
        parameters=[SESSION_ID],
        responses={
            "200": answer("The device is recorded.",
                          obj({"deviceId": {"type": "integer"}}, "deviceId")),
            "404": answer("No such session.", error("unknown_session", "not_found")),
            "409": answer("Not packaged yet, completed already, or the renewed device was "
                          "canceled or disabled meanwhile.",
                          error("session_state", "device_state")),
            "410": answer("The session has expired.", error("session_expired")),
        })},
    "/provision/v1/devices/{deviceId}/status": {"get": operation(
        "deviceStatus", "device", "The device's status; still readable after a cancel.",
        parameters=[DEVICE_ID], security=DEVICE_BEARER,
        responses={
            "200": answer("The status.", obj({
                "deviceId": {"type": "integer"},
                "status": {"enum": ["active", "disabled", "canceled", "removed"]},
            }, "deviceId", "status")),
            "401": DEVICE_TOKEN_REFUSED, "404": NO_ROUTE,
        })},
    "/provision/v1/devices/{deviceId}/cancel": {"post": operation(
        "deviceCancel", "device", "The person removes the identity from the phone.",
        parameters=[DEVICE_ID], security=DEVICE_BEARER,
        body=json_body(obj({"reason": ref("Reason")}, extra=True), required=False),
        responses={
            "200": answer("Removed; certificates revoked unless Settings says otherwise.", obj({
                "deviceId": {"type": "integer"}, "status": {"const": "removed"},
                "certificatesRevoked": {"type": "boolean"},
            }, "deviceId", "status", "certificatesRevoked")),
            "400": MALFORMED, "401": DEVICE_TOKEN_REFUSED, "404": NO_ROUTE, "410": DEVICE_GONE,
        })},
    "/provision/v1/devices/{deviceId}/unlock/confirm": {"post": operation(
        "confirmUnlock", "device", "The phone unlocked with an operator's response.",
        parameters=[DEVICE_ID], security=DEVICE_BEARER,
        body=json_body(obj({"challenge": text(1, 64), "response": text(1, 64)},
                           "challenge", "response", extra=True)),
        responses={
            "200": answer("Confirmed and audited.", obj({
                "deviceId": {"type": "integer"}, "unlocked": {"const": True}},
                "deviceId", "unlocked")),
            "400": MALFORMED, "401": DEVICE_TOKEN_REFUSED,
            "403": answer("No operator obtained a code for this challenge, it was used or "
                          "expired, or the response is wrong; audited.",
                          error("unlock_refused")),
            "404": NO_ROUTE, "410": DEVICE_GONE,
        })},
}


def device_operation(operation_id: str, summary: str, done: Schema,
                     body: Schema | None = None, *, malformed: bool = False,
                     conflict: Schema = DEVICE_STATE) -> Schema:
    """An operator's operation on one device through the devices API."""
    responses = {"200": answer("Done, and audited.", done)}
    if malformed:
        responses["400"] = MALFORMED
    responses.update({"401": API_KEY_REFUSED, "403": NOT_PERMITTED, "404": UNKNOWN_DEVICE,
                      "409": conflict})
    return operation(operation_id, "devices-api", summary, responses, parameters=[DEVICE_ID],
                     body=body, security=API_BEARER)


def device_now(status: str) -> Schema:
    return obj({"deviceId": {"type": "integer"}, "status": {"const": status}},
               "deviceId", "status")


# The view strips the challenge, ignores case, spaces and dashes: 8 to 32 letters and digits.
CHALLENGE = {"type": "string", "pattern": r"^\s*[ -]*(?:[A-Za-z0-9][ -]*){8,32}\s*$",
             "examples": ["K7Q2-M9XA"]}
REQUEST_BODY = json_body(obj({"delivery": ref("Delivery"), "reason": ref("Reason")},
                             extra=True), required=False)
REQUESTED = obj({"deviceId": {"type": "integer"}, "request": {"type": "string"},
                 "status": {"enum": ["pending", "awaiting-validation"]}},
                "deviceId", "request", "status")
REQUEST_REFUSED = answer("The request cannot be opened: a request rule (MIM7xx, e.g. no "
                         "way to deliver its code, a person who cannot receive the profile).",
                         error("request_refused"))
REQUEST_CONFLICT = answer("The device is not active, or the request cannot be opened (a "
                          "request rule, MIM7xx).", error("device_state", "request_refused"))
REQUEST_SUMMARIES = {
    "replace": "Cancel the device (superseded) and open a request for its replacement.",
    "renew": "Open a renewal: new certificates onto the same phone (device token collect).",
    "update": "Open an update: the profile's certificates as they now are, onto the same phone.",
}

DEVICES_API = {
    "/api/v1/devices": {"get": operation(
        "listDevices", "devices-api", "The devices the key's person may act on.",
        parameters=[{"name": name, "in": "query", "required": False,
                     "schema": {"type": "string"}, "description": description}
                    for name, description in (("person", "Only this person's devices."),
                                              ("status", "Only devices in this status."))],
        security=API_BEARER,
        responses={
            "200": answer("The devices within the scope of the person's roles.",
                          obj({"devices": {"type": "array", "items": ref("Device")}},
                              "devices")),
            "401": API_KEY_REFUSED, "403": NOT_PERMITTED,
        })},
    "/api/v1/devices/{deviceId}": {"get": operation(
        "showDevice", "devices-api", "One device and its certificates.",
        parameters=[DEVICE_ID], security=API_BEARER,
        responses={"200": answer("The device.", ref("DeviceDetail")), "401": API_KEY_REFUSED,
                   "403": NOT_PERMITTED, "404": UNKNOWN_DEVICE})},
    "/api/v1/devices/{deviceId}/cancel": {"post": device_operation(
        "cancelDevice", "Cancel the device: every certificate is revoked.",
        device_now(lifecycle.CANCELED), json_body(obj({"reason": {
            "enum": list(lifecycle.REASONS), "default": "unspecified"}}, extra=True),
            required=False), malformed=True)},
    "/api/v1/devices/{deviceId}/disable": {"post": device_operation(
        "disableDevice", "Disable the device: its certificates go on hold.",
        device_now(lifecycle.DISABLED))},
    "/api/v1/devices/{deviceId}/enable": {"post": device_operation(
        "enableDevice", "Enable a disabled device: the hold is lifted.",
        device_now(lifecycle.ACTIVE))},
    "/api/v1/devices/{deviceId}/unlock-code": {"post": device_operation(
        "requestUnlockCode", "The response code to a locked phone's challenge.",
        obj({"deviceId": {"type": "integer"}, "response": {"type": "string",
                                                           "pattern": "^[0-9]{8}$"}},
            "deviceId", "response"),
        json_body(obj({"challenge": CHALLENGE}, "challenge", extra=True)), malformed=True)},
    **{f"/api/v1/devices/{{deviceId}}/{name}": {"post": device_operation(
        f"{name}Device", summary, REQUESTED, REQUEST_BODY, malformed=True,
        conflict=REQUEST_CONFLICT)}
       for name, summary in REQUEST_SUMMARIES.items()},
    "/api/v1/requests": {"post": operation(
        "requestMobileId", "devices-api", "Request a mobile ID for a person (Request ID).",
        security=API_BEARER,
        body=json_body(obj({"person": text(1, 128), "profile": text(1, 128),
                            "delivery": ref("Delivery"), "reason": ref("Reason")},
                           "person", "profile", extra=True)),
        responses={
            "201": answer("The request is open.", obj({
                "request": {"type": "string"}, "person": {"type": "string"},
                "profile": {"type": "string"},
                "status": {"enum": ["pending", "awaiting-validation"]},
            }, "request", "person", "profile", "status")),
            "400": MALFORMED, "401": API_KEY_REFUSED, "403": NOT_PERMITTED,
            "404": answer("No such person or credential profile.",
                          error("unknown_person", "unknown_credentialprofile")),
            "409": REQUEST_REFUSED,
        })},
}

UNKNOWN_CA = {"description": "No such certificate authority (JSON), or no such route (HTML).",
              "content": {"application/json": {"schema": error("unknown_ca")},
                          "text/html": {"schema": {"type": "string"}}}}
OCSP_ANSWER = binary("An OCSP response (RFC 6960), signed by the CA; malformedRequest or "
                     "unauthorized (another CA, OCSP off) are answered this way too.",
                     "application/ocsp-response", **PKI_CACHE)

PKI = {
    "/pki/{name}/ca.crt": {"get": operation(
        "caCertificate", "pki", "The CA certificate (DER).", parameters=[CA_NAME],
        responses={"200": binary("The certificate.", "application/pkix-cert", **PKI_CACHE),
                   "404": UNKNOWN_CA})},
    "/pki/{name}/crl": {"get": operation(
        "crl", "pki", "The CA's CRL (DER), signed anew when its entries change.",
        parameters=[CA_NAME],
        responses={"200": binary("The CRL.", "application/pkix-crl", **PKI_CACHE),
                   "404": UNKNOWN_CA})},
    "/pki/{name}/ocsp": {"post": operation(
        "ocspPost", "pki", "An OCSP request (DER).", parameters=[CA_NAME],
        body={"required": True, "content": {"application/ocsp-request": {
            "schema": {"type": "string", "format": "binary"}}}},
        responses={"200": OCSP_ANSWER, "404": UNKNOWN_CA})},
    "/pki/{name}/ocsp/{encoded}": {"get": operation(
        "ocspGet", "pki", "An OCSP request as base64 DER in the path (RFC 6960 A.1).",
        parameters=[CA_NAME, path_parameter("encoded", {"type": "string", "minLength": 1},
                                            "The DER request, base64 then URL-encoded.")],
        responses={"200": OCSP_ANSWER, "404": UNKNOWN_CA})},
}

PAGES = {
    "/collect/{token}": {"get": operation(
        "collectPage", "pages", "The landing page of a collection link (for people).",
        parameters=[TOKEN],
        responses={"200": {**html("The app's deep link, the app stores and the QR code."),
                           "headers": PAGE_HEADERS},
                   "403": html("The link is locked (too many wrong codes)."),
                   "404": html("No such link."),
                   "410": html("Collected already, expired or canceled."),
                   "503": html("Settings does not say where this service is.")})},
    **{f"/qr/{{token}}.{suffix}": {"get": operation(
        f"qr{suffix.capitalize()}", "pages", f"The QR code of a live collection link ({label}).",
        parameters=[TOKEN],
        responses={"200": {"description": "The QR code of the link.",
                           "content": {media_type: {}}, "headers": PAGE_HEADERS},
                   "404": html("No live link has this token."),
                   "503": html("Settings does not say where this service is.")})}
       for suffix, label, media_type in (("png", "PNG", "image/png"),
                                         ("svg", "SVG", "image/svg+xml"))},
}

DOCUMENT: Schema = {
    "openapi": "3.1.0",
    "info": {
        "title": "mimctl provisioning service",
        "version": "1",
        "description": "Collection of mobile IDs by phones, the device token endpoints, the "
                       "devices API for operators, the PKI endpoints relying parties ask, and "
                       "the pages people open. Every JSON error is {code, message, ...}.",
    },
    "tags": [{"name": name, "description": description} for name, description in (
        ("collect", "A phone turns a collection link and its code into a mobile ID."),
        ("device", "The phone's own operations, with the device token of its package."),
        ("devices-api", "Operators and external systems, with API keys."),
        ("pki", "CA certificates, CRLs and OCSP for relying parties."),
        ("pages", "What people open in a browser: HTML and images, HTML errors."))],
    "paths": {**PROVISION, **DEVICES_API, **PKI, **PAGES},
    "components": {"schemas": SCHEMAS, "securitySchemes": SECURITY_SCHEMES},
}


# Every API operation may answer 400 malformed: the app refuses NUL characters anywhere in a
# request before any view runs (provisioning/app.py).
for _operations in (*PROVISION.values(), *DEVICES_API.values()):
    for _operation in _operations.values():
        _operation["responses"].setdefault("400", MALFORMED)


@blueprint.get("/openapi.json")
def document() -> Any:
    return jsonify(DOCUMENT)
