"""The OpenAPI document at /openapi.json stays true to the service it describes.

Four ways: its paths and methods are exactly the app's url_map; it is valid OpenAPI 3.1 (and
every schema in it valid JSON Schema 2020-12); a whole life of mobile IDs, driven over HTTP
against the real service, gets only answers the document allows (checked with jsonschema);
and schemathesis, fuzzing every operation with and without valid credentials, finds neither
a server error nor an answer off the document (checked with its own validator).
"""

from __future__ import annotations

import base64
import copy
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from provisioning.app import create_app
from provisioning.openapi import DOCUMENT
from reconciler.db import jobs
from tests.collect_support import KEY, code_of, deploy, finish, issuing_ca, service, token_of
from tests.device import SimulatedDevice

NOT_DESCRIBED = {"static", "openapi.document"}  # Flask's static files; the document itself
AUTOMATIC_METHODS = {"HEAD", "OPTIONS"}  # Flask answers these for every rule
ROUTE_PARAMETER = re.compile(r"<(?:(?P<converter>\w+)(?:\((?P<arguments>[^)]*)\))?:)?"
                             r"(?P<name>\w+)>")

# OCSP requests are DER; schemathesis sends the bytes it is given as they are.
schemathesis.openapi.media_type("application/ocsp-request", st.binary(max_size=256))


# --- The url_map --------------------------------------------------------------------------------

def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.capitalize() for word in rest)


def templates(rule: str) -> list[str]:
    """The OpenAPI paths of a Flask rule: `<int:device_id>` is `{deviceId}`, and an `any(...)`
    converter is one path per alternative (each its own operation)."""
    paths = [""]
    at = 0
    for match in ROUTE_PARAMETER.finditer(rule):
        literal = rule[at:match.start()]
        if match["converter"] == "any":
            choices = [choice.strip(" '\"") for choice in match["arguments"].split(",")]
        else:
            choices = [f"{{{camel(match['name'])}}}"]
        paths = [f"{path}{literal}{choice}" for path in paths for choice in choices]
        at = match.end()
    return [f"{path}{rule[at:]}" for path in paths]


def test_the_route_templates_of_flask_rules() -> None:
    assert templates("/pki/<name>/ocsp/<path:encoded>") == ["/pki/{name}/ocsp/{encoded}"]
    assert templates("/a/<int:device_id>/<any(replace, renew):operation>") == [
        "/a/{deviceId}/replace", "/a/{deviceId}/renew"]


def test_every_route_is_documented_and_every_documented_operation_is_served() -> None:
    app = create_app({"DATABASE_URL": "sqlite://", "NOTIFY_INTERVAL": 0})
    served = {(path, method.lower()) for rule in app.url_map.iter_rules()
              if rule.endpoint not in NOT_DESCRIBED
              for path in templates(rule.rule)
              for method in rule.methods - AUTOMATIC_METHODS}
    documented = {(path, method) for path, item in DOCUMENT["paths"].items() for method in item}
    assert sorted(served - documented) == []  # served, not documented
    assert sorted(documented - served) == []  # documented, not served


# --- The document -------------------------------------------------------------------------------

def load(document: dict[str, Any]) -> Any:
    """The document as schemathesis reads it (it rewrites what it loads, so a copy)."""
    return schemathesis.openapi.from_dict(copy.deepcopy(document), config=schemathesis.Config())


def schemas_in(value: Any, pointer: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every Schema Object in the document, with where it is."""
    if isinstance(value, dict):
        for key, inner in value.items():
            where = f"{pointer}/{key}"
            if key == "schema":
                yield where, inner
            elif key == "schemas":
                yield from ((f"{where}/{name}", schema) for name, schema in inner.items())
            else:
                yield from schemas_in(inner, where)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from schemas_in(inner, f"{pointer}/{index}")


def test_the_served_document_is_valid_openapi_3_1() -> None:
    app = create_app({"DATABASE_URL": "sqlite://", "NOTIFY_INTERVAL": 0})
    served = app.test_client().get("/openapi.json")
    assert (served.status_code, served.mimetype) == (200, "application/json")
    document = served.get_json()
    assert document == json.loads(json.dumps(DOCUMENT))
    schema = load(document)
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    operations = [result.ok() for result in schema.get_all_operations()]  # every $ref resolves
    assert len(operations) == sum(len(item) for item in document["paths"].values())
    identifiers = [operation.definition.raw["operationId"] for operation in operations]
    assert len(set(identifiers)) == len(identifiers)
    found = list(schemas_in(document))
    assert len(found) > 60
    for where, inner in found:
        try:
            Draft202012Validator.check_schema(inner)
        except Exception as error:
            raise AssertionError(f"{where}: {error}") from None
    for path, item in document["paths"].items():
        named = set(re.findall(r"{(\w+)}", path))
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == named, f"{method} {path}"


# --- Answers against the document, with jsonschema ---------------------------------------------

DOCUMENT_URI = "urn:mimctl:openapi"
FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def rfc3339(value: object) -> bool:
    """RFC 3339 date-time: with a time and an offset (Python's parser alone takes neither)."""
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value)
    return "T" in value.upper() and parsed.tzinfo is not None


def pointer(*parts: str) -> str:
    return "/".join(part.replace("~", "~0").replace("/", "~1") for part in parts)


@dataclass
class Conformance:
    """An httpx response hook: every answer's status, content type, required headers and
    JSON body must be what the document says; it keeps what it has seen."""

    document: dict[str, Any]
    seen: Counter[tuple[str, str]] = field(default_factory=Counter)  # (operationId, status)

    def __post_init__(self) -> None:
        resource = DRAFT202012.create_resource(self.document)
        self.registry: Registry[Any] = Registry().with_resource(DOCUMENT_URI, resource)
        self.routes = [(re.compile("^" + re.sub(r"\\{\w+\\}", "[^/]+", re.escape(path)) + "$"),
                        path) for path in self.document["paths"]]

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        method = response.request.method.lower()
        path = response.request.url.raw_path.decode().partition("?")[0]  # %2F stays in a value
        [template] = [template for route, template in self.routes if route.match(path)]
        operation = self.document["paths"][template][method]
        status = str(response.status_code)
        where = f"{method.upper()} {path} -> {status} {response.text[:300]}"
        assert status in operation["responses"], f"undocumented status: {where}"
        documented = operation["responses"][status]
        media_type = response.headers.get("content-type", "").split(";")[0]
        assert media_type in documented["content"], f"undocumented {media_type}: {where}"
        for name, header in documented.get("headers", {}).items():
            assert not header.get("required") or name in response.headers, f"{name}: {where}"
        if media_type == "application/json":
            schema = pointer("paths", template, method, "responses", status, "content",
                             media_type, "schema")
            validator = Draft202012Validator({"$ref": f"{DOCUMENT_URI}#/{schema}"},
                                             registry=self.registry, format_checker=FORMATS)
            errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
                      for e in validator.iter_errors(response.json())]
            assert not errors, f"{where}\n" + "\n".join(errors)
        self.seen[(operation["operationId"], status)] += 1


def test_the_conformance_hook_refuses_what_the_document_does_not_allow() -> None:
    check = Conformance(DOCUMENT)
    request = httpx.Request("GET", "http://127.0.0.1/api/v1/devices/7")
    fine = {"id": 7, "person": "alice", "profile": "p", "status": "active", "serialNumber": "S",
            "platform": "ios", "model": None, "mdmDeviceId": None, "certificates": [{
                "authority": "ca", "serialNumber": "1f", "policy": "p", "subject": "CN=A",
                "status": "good", "revocationReason": None,
                "notAfter": "2027-01-01T00:00:00+00:00"}]}
    check(httpx.Response(200, json=fine, request=request))
    naive = copy.deepcopy(fine)
    naive["certificates"][0]["notAfter"] = "2027-01-01T00:00:00"
    for status, body, expected in (
            (200, {**fine, "extra": 1}, "Additional properties"),
            (200, naive, "is not a 'date-time'"),
            (404, {"code": "unknown_ca", "message": "m"}, "is not one of"),
            (418, {"code": "teapot", "message": "m"}, "undocumented status")):
        with pytest.raises(AssertionError, match=expected):
            check(httpx.Response(status, json=body, request=request))
    assert check.seen == Counter({("showDevice", "200"): 1})


# --- A world: the quickstart, API keys, a collected phone, the real service ----------------------

def api_key(mimctl: Any, database_url: str, person: str) -> str:
    made = mimctl("--db", database_url, "apikey", "create", "--person", person, "--actor", "ops")
    assert made.exit_code == 0, made.output
    return made.output.strip().splitlines()[-1]


def reveal(engine: Any, request: str) -> tuple[str, str]:
    """The token and code of an open request (ShowCode: the operator reads the code out)."""
    with engine.begin() as connection:
        return jobs.latest_job(connection, request).token, jobs.reveal_code(connection, KEY,
                                                                            request)


@dataclass
class Phone:
    """A phone that has collected: what its package gave it."""

    device: SimulatedDevice
    device_id: int
    token: str
    certificate: x509.Certificate

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def collected(device: SimulatedDevice, session: httpx.Response, engine: Any) -> Phone:
    """Package and complete a session the phone opened; open and verify its package."""
    package = finish(device, session, engine)
    (entry,) = package["certificates"]
    return Phone(device, package["deviceId"], package["deviceToken"],
                 x509.load_pem_x509_certificate(entry["certificate"].encode()))


@dataclass
class World:
    client: httpx.Client
    engine: Any
    keys: dict[str, str]
    phone: Phone
    ca: x509.Certificate

    def api(self, who: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        return self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    def ocsp_request(self, certificate: x509.Certificate) -> bytes:
        asked = ocsp.OCSPRequestBuilder().add_certificate(certificate, self.ca, hashes.SHA1())
        return asked.build().public_bytes(serialization.Encoding.DER)

    def open_request(self) -> tuple[str, str]:
        """bob requests a mobile ID for alice: its token and code."""
        made = self.api("bob", "POST", "/requests", json={
            "person": "alice", "profile": "mobile-standard", "delivery": "ShowCode"})
        assert made.status_code == 201, made.text
        return reveal(self.engine, made.json()["request"])

    def request_for_alice(self, serial: str) -> tuple[SimulatedDevice, httpx.Response, str]:
        """A new phone starts collecting a new request: the phone, the collect's answer and
        the request's token."""
        token, code = self.open_request()
        device = SimulatedDevice(self.client, serial=serial)
        return device, device.collect(token, code), token


# bob's Helpdesk may also renew and update, so the world has an operator for every operation.
EVERY_WORKFLOW = {"roles.yaml": [("    - Enable / Disable ID\n", "    - Enable / Disable ID\n"
                                  "    - Request Device Renewal\n    - Request Update\n")]}


@pytest.fixture
def world(mimctl, engine, database_url, tmp_path) -> Iterator[World]:
    deploy(mimctl, database_url, tmp_path, edits=EVERY_WORKFLOW)
    keys = {person: api_key(mimctl, database_url, person) for person in ("alice", "bob")}
    with service(database_url) as client:
        device = SimulatedDevice(client)
        phone = collected(device, device.collect(token_of(engine), code_of(engine)), engine)
        yield World(client, engine, keys, phone, issuing_ca(engine))


# --- The whole life of mobile IDs, every answer checked -----------------------------------------

def test_a_whole_life_of_mobile_ids_gets_only_documented_answers(world, engine) -> None:
    check = Conformance(DOCUMENT)
    world.client.event_hooks["response"].append(check)
    client, phone, path = world.client, world.phone, f"/devices/{world.phone.device_id}"
    device_path = f"/provision/v1/devices/{phone.device_id}"
    alice_token = token_of(engine)

    # The collected request: its page, its code, its sessions.
    assert client.get(f"/collect/{alice_token}").status_code == 410
    assert phone.device.collect(alice_token, "000000").status_code == 409
    assert client.post("/provision/v1/collect", json={"token": "nope"}).status_code == 400
    assert phone.device.collect("nope", "1").status_code == 404
    assert client.post("/provision/v1/sessions/nope/package",
                       json={"transportKey": "x"}).status_code == 404
    assert client.post("/provision/v1/sessions/nope/complete").status_code == 404

    # The phone, with its device token.
    assert client.get(f"{device_path}/status", headers=phone.bearer).json()["status"] == "active"
    assert client.get(f"{device_path}/status").status_code == 401
    assert client.post(f"{device_path}/collect", headers=phone.bearer,
                       json={"device": phone.device.facts}).status_code == 404  # no renewal

    # PKI.
    assert client.get("/pki/issuing-ca/ca.crt").status_code == 200
    assert client.get("/pki/issuing-ca/crl").status_code == 200
    asked = world.ocsp_request(phone.certificate)
    assert client.post("/pki/issuing-ca/ocsp", content=asked,
                       headers={"Content-Type": "application/ocsp-request"}).status_code == 200
    encoded = quote(base64.b64encode(asked).decode(), safe="")
    assert client.get(f"/pki/issuing-ca/ocsp/{encoded}").status_code == 200
    assert client.get(f"/pki/nope/ocsp/{encoded}").status_code == 404
    assert client.get("/pki/nope/ca.crt").json()["code"] == "unknown_ca"
    assert client.get("/pki/nope/crl").status_code == 404

    # The devices API, and a second phone collecting a request made through it.
    assert world.api(None, "GET", "/devices").status_code == 401
    assert [d["id"] for d in world.api("bob", "GET", "/devices").json()["devices"]] == [
        phone.device_id]
    assert world.api("bob", "GET", path).json()["certificates"][0]["status"] == "good"
    assert world.api("bob", "GET", "/devices/999").status_code == 404
    assert world.api("bob", "GET", "/devices/x").json()["code"] == "not_found"
    assert world.api("alice", "POST", f"{path}/disable").status_code == 403
    assert world.api("bob", "POST", "/requests", json={"person": "alice"}).status_code == 400
    assert world.api("bob", "POST", "/requests", json={
        "person": "alice", "profile": "nope"}).status_code == 404
    second, session, live_token = world.request_for_alice("SIM-0002")
    sid = session.json()["sessionId"]
    assert second.complete(sid).status_code == 409  # nothing packaged yet
    assert client.post(f"/provision/v1/sessions/{sid}/package",
                       json={"transportKey": "not a key"}).status_code == 400
    assert second.package(sid, []).json()["code"] == "csr_missing"
    assert client.get(f"/collect/{live_token}").status_code == 200
    assert client.get(f"/qr/{live_token}.png").headers["content-type"] == "image/png"
    assert client.get(f"/qr/{live_token}.svg").status_code == 200
    assert client.get("/qr/nope.png").status_code == 404
    other = collected(second, session, engine)

    # Unlock: an operator's code, the phone's confirmation.
    given_code = world.api("bob", "POST", f"{path}/unlock-code", json={"challenge": "K7Q2-M9XA"})
    assert given_code.status_code == 200
    assert world.api("bob", "POST", f"{path}/unlock-code",
                     json={"challenge": "!"}).status_code == 400
    confirm = {"challenge": "K7Q2M9XA", "response": given_code.json()["response"]}
    assert client.post(f"{device_path}/unlock/confirm", headers=phone.bearer,
                       json=confirm).json()["unlocked"] is True
    assert client.post(f"{device_path}/unlock/confirm", headers=phone.bearer,
                       json=confirm).status_code == 403
    assert client.post(f"{device_path}/unlock/confirm", headers=phone.bearer,
                       json={}).status_code == 400

    # Disable, enable; renew onto the same phone; update; replace; cancel.
    assert world.api("bob", "POST", f"{path}/disable").json()["status"] == "disabled"
    assert world.api("bob", "POST", f"{path}/disable").status_code == 409
    assert world.api("bob", "POST", f"{path}/enable").json()["status"] == "active"
    renewed = world.api("bob", "POST", f"{path}/renew", json={"delivery": "ShowCode"})
    assert renewed.json()["status"] == "pending"
    session = client.post(f"{device_path}/collect", headers=phone.bearer,
                          json={"device": phone.device.facts})
    phone = collected(phone.device, session, engine)  # a new device token
    assert world.api("bob", "POST", f"{path}/update", json={"delivery": "Carrier pigeon"}
                     ).status_code == 400
    assert world.api("bob", "POST", f"{path}/update", json={"delivery": "ShowCode"}
                     ).status_code == 200
    assert world.api("bob", "POST", f"{path}/replace", json={"delivery": "ShowCode"}
                     ).status_code == 200
    assert client.get(f"{device_path}/status", headers=phone.bearer).json()["status"] == \
        "canceled"
    assert client.post(f"{device_path}/cancel", headers=phone.bearer).status_code == 410
    assert world.api("bob", "POST", f"{path}/cancel").status_code == 409
    other_path = f"/provision/v1/devices/{other.device_id}"
    assert client.post(f"{other_path}/cancel", headers=other.bearer,
                       json={"reason": "x" * 501}).status_code == 400
    assert client.post(f"{other_path}/cancel", headers=other.bearer,
                       json={"reason": "sold it"}).json()["status"] == "removed"
    assert world.api("bob", "POST", f"/devices/{other.device_id}/cancel",
                     json={"reason": "keyCompromise"}).status_code == 409
    token, code = world.open_request()
    third = SimulatedDevice(client, serial="SIM-0003")
    wrong = third.collect(token, "1")
    assert (wrong.status_code, wrong.json()["attemptsRemaining"]) == (401, 4)
    third_phone = collected(third, third.collect(token, code), engine)
    assert world.api("bob", "POST", f"/devices/{third_phone.device_id}/cancel",
                     json={"reason": "keyCompromise"}).json()["status"] == "canceled"

    token, _ = world.open_request()
    answers = [third.collect(token, "1").status_code for _ in range(6)]
    assert answers == [401, 401, 401, 401, 423, 423]  # Settings' default: 5 attempts
    assert client.get(f"/collect/{token}").status_code == 403

    succeeded = {operation for (operation, status), _ in check.seen.items()
                 if status.startswith("2")}
    every = {operation["operationId"] for item in DOCUMENT["paths"].values()
             for operation in item.values()}
    assert sorted(every - succeeded) == []


# --- Schemathesis against the running service ---------------------------------------------------

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
EXAMPLES = 20  # per operation, generation mode and credentials


@dataclass
class FuzzRun:
    """What schemathesis sent and what broke the checks, kept rather than raised, so one run
    reports every failure (and hypothesis spends no time shrinking)."""

    base_url: str
    statuses: Counter[str] = field(default_factory=Counter)
    per_operation: Counter[str] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)  # first example of each failure
    not_negated: set[str] = field(default_factory=set)

    def run(self, operation: Any, *, label: str = "", **fixed: Any) -> None:
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(mode, **fixed)

            @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
                      phases=[Phase.explicit, Phase.generate],
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def send(case: Any) -> None:
                response = case.call(base_url=self.base_url, timeout=30)
                self.statuses[f"{response.status_code}"] += 1
                self.per_operation[operation.label] += 1
                try:
                    case.validate_response(response, checks=CHECKS)
                except FailureGroup as group:
                    for failure in group.exceptions:
                        key = f"{operation.label}{label}: {failure.title}"
                        self.failures.setdefault(key, f"{failure.message}\n{case.as_curl_command()}"
                                                 f"\n-> {response.status_code} "
                                                 f"{response.content[:300]!r}")

            try:
                send()
            except Unsatisfiable:
                # Nothing in the operation can be made invalid (fixed parameters, a free-form
                # string in the path, no body): there is no negative case to send.
                assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
                self.not_negated.add(f"{operation.label}{label}")


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(world) -> None:
    schema = load(DOCUMENT)
    operations = {result.ok().definition.raw["operationId"]: result.ok()
                  for result in schema.get_all_operations()}
    fuzz = FuzzRun(str(world.client.base_url).rstrip("/"))
    phone = world.phone
    key = {"Authorization": f"Bearer {world.keys['bob']}"}
    device = {"deviceId": phone.device_id}

    # Anyone: generated credentials, generated everything.
    for operation in operations.values():
        fuzz.run(operation)
    # A live session to package and complete, and a live link for the pages.
    _, session, live = world.request_for_alice("SIM-0002")
    sid = session.json()["sessionId"]
    for name in ("buildPackage", "completeSession"):
        fuzz.run(operations[name], label=" (live session)", path_parameters={"sessionId": sid})
    for name in ("collectPage", "qrPng", "qrSvg"):
        fuzz.run(operations[name], label=" (live link)", path_parameters={"token": live})
    # The phone, with its device token: before the operators act on it, and after.
    for name in ("deviceStatus", "confirmUnlock", "collectRenewal"):
        fuzz.run(operations[name], label=" (device token)", headers=phone.bearer,
                 path_parameters=device)
    # An operator with every workflow: any device, then the phone, in an order that lets
    # each operation find the device in a state it acts on before cancel ends it.
    for name in ("listDevices", "showDevice", "requestMobileId"):
        fuzz.run(operations[name], label=" (API key)", headers=key)
    for name in ("showDevice", "requestUnlockCode", "disableDevice", "enableDevice",
                 "renewDevice", "updateDevice", "replaceDevice", "cancelDevice",
                 "disableDevice"):
        fuzz.run(operations[name], label=" (API key, the phone)", headers=key,
                 path_parameters=device)
    for name in ("deviceStatus", "deviceCancel", "collectRenewal"):
        fuzz.run(operations[name], label=" (device token, canceled)", headers=phone.bearer,
                 path_parameters=device)
    for name in ("ocspPost", "caCertificate", "crl"):
        fuzz.run(operations[name], label=" (the CA)", path_parameters={"name": "issuing-ca"})

    report = "\n\n".join(f"{key}\n{example}" for key, example in sorted(fuzz.failures.items()))
    print(f"schemathesis: {sum(fuzz.statuses.values())} requests to "
          f"{len(fuzz.per_operation)} operations, statuses {dict(sorted(fuzz.statuses.items()))}"
          f"; {len(fuzz.not_negated)} runs had no negative case")
    assert not fuzz.failures, report
    assert set(fuzz.per_operation) == {operation.label for operation in operations.values()}
    assert fuzz.statuses["200"] and fuzz.statuses["401"] and fuzz.statuses["400"]

