"""The BlackBerry UEM connector against its stand-in over real sockets."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs

import pytest

from provisioning.mdm.base import (
    ClientCredential,
    MdmAuthError,
    MdmProtocolError,
    MdmUnavailable,
    Step,
    client_assertion,
)
from provisioning.mdm.blackberry import BlackBerryConnector
from provisioning.mdm.restrictions import check
from specs.credential_profile import MdmRestrictions
from specs.external_system import BlackBerrySystem
from tests.servers import pki
from tests.servers.blackberry import BlackBerryState, blackberry_app, verify_client_assertion
from tests.servers.harness import StandIn, closed_port_url, serve

TENANT = "S12345678"
UDID = "d88496fdf7115ac9f3ab69966cbaf91d960b95036fa68f66489c8ad78f136b5c"
USERNAME = "bws-reader"
PASSWORD = "Pa55-Word-For-BWS"
CLIENT_ID = "mimctl-bws-client"
CLIENT_CN = "bws client"
PFX_PASSWORD = b"pfx-Passw0rd"
SYSTEM = "uem"
ROOT = f"/{TENANT}/api/v1"

Make = Callable[..., BlackBerryConnector]


def _device(udid: str = UDID, **changes: Any) -> dict[str, Any]:
    """A BWS device record, as the UEM documentation shows one."""
    return {"guid": "4659aa7f-0a7d-9f69-258c-2800ebaa2800", "udid": udid,
            "activationDate": "2024-01-16T14:47:03.662Z", "compromised": False,
            "hardwareModel": "iPhone16,1", "imei": "990000862471854", "os": "iOS 17.4",
            "osFamilyName": "ios", "osVersion": "17.4", "ownership": "WORK",
            "serialNumber": "F2LZK1ABCD", "phoneNumber": None} | changes


@pytest.fixture(scope="module")
def server() -> Iterator[StandIn]:
    """One stand-in for the module: stopping one takes half a second."""
    with serve(blackberry_app(BlackBerryState(TENANT))) as stand_in:
        yield stand_in


@pytest.fixture
def state() -> BlackBerryState:
    return BlackBerryState(TENANT, users={USERNAME: PASSWORD},
                           clients={CLIENT_ID: pki.credential(CLIENT_CN).certificate},
                           devices=[_device()])


@pytest.fixture
def uem(server: StandIn, state: BlackBerryState) -> StandIn:
    """The stand-in serving this test's fresh state, its request log emptied."""
    server.app.config["STATE"] = state
    server.seen.clear()
    return server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make(uem: StandIn, sleeps: list[float]) -> Iterator[Make]:
    """Connectors to the stand-in (or `url`), closed after the test; secrets can be overridden."""
    made: list[BlackBerryConnector] = []

    def make(authentication: str = "UserPassword", *, url: str | None = None,
             **overrides: bytes) -> BlackBerryConnector:
        spec, secrets = _configuration(authentication, url or uem.url)
        connector = BlackBerryConnector(SYSTEM, spec, secrets | overrides, sleep=sleeps.append)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


def _configuration(authentication: str, url: str) -> tuple[BlackBerrySystem, dict[str, bytes]]:
    document: dict[str, Any] = {"listenerType": "BlackBerry", "authentication": authentication,
                                "baseUrl": url, "tenantId": TENANT}
    if authentication == "UserPassword":
        document |= {"username": USERNAME, "password": {"env": "BWS_PASSWORD"}}
        return BlackBerrySystem.model_validate(document), {"password": PASSWORD.encode()}
    document |= {"clientId": CLIENT_ID, "identityBaseUrl": url,
                 "clientCertificate": {"file": "bws.pfx"},
                 "certificatePassword": {"env": "BWS_PFX_PASSWORD"}}
    secrets = {"clientCertificate": pki.credential(CLIENT_CN).pfx(PFX_PASSWORD),
               "certificatePassword": PFX_PASSWORD}
    return BlackBerrySystem.model_validate(document), secrets


def _must_be_registered(required: str | None = None) -> MdmRestrictions:
    return MdmRestrictions.model_validate({"status": "MustBeRegistered", "externalSystem": SYSTEM,
                                           "requiredAttributes": required})


# --- authentication -----------------------------------------------------------------------------

def test_basic_authentication_uses_the_besng_value_verbatim(make: Make, uem: StandIn) -> None:
    record = make("UserPassword").lookup(UDID)

    expected = {k: v for k, v in _device().items() if v is not None}
    assert record == expected  # unassigned fields are omitted, not null
    login, query = uem.seen
    assert (login.method, login.path) == ("POST", f"{ROOT}/util/authorization")
    assert login.headers["Content-Type"] == "application/vnd.blackberry.authorizationrequest-v1+json"
    assert json.loads(login.body) == {"username": USERNAME, "provider": "LOCAL",
                                      "password": base64.b64encode(PASSWORD.encode()).decode()}
    assert (query.path, parse_qs(query.query)) == (f"{ROOT}/devices", {"query": [f"udid={UDID}"]})
    assert query.headers["Accept"] == "application/vnd.blackberry.devices-v1+json"
    assert query.headers["Authorization"].startswith("besng-basic ")


def test_certificate_authentication_gets_a_bearer_token(make: Make, uem: StandIn,
                                                       state: BlackBerryState) -> None:
    assert make("Certificate").lookup(UDID) is not None

    token_request, query = uem.seen
    assert token_request.path == f"/op/tenant/{TENANT}/token"
    form = parse_qs(token_request.body.decode())
    assert {k: v[0] for k, v in form.items() if k != "client_assertion"} == {
        "grant_type": "client_credentials", "scope": "MDMBWS.All", "client_id": CLIENT_ID,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    assert query.headers["Authorization"].startswith("Bearer ")
    assert state.tokens_issued == 1


@pytest.mark.parametrize("authentication", ["UserPassword", "Certificate"])
def test_the_authorization_is_cached_across_lookups(make: Make, state: BlackBerryState,
                                                    authentication: str) -> None:
    connector = make(authentication)

    connector.lookup(UDID)
    connector.lookup(UDID)

    assert state.authorizations + state.tokens_issued == 1


@pytest.mark.parametrize("authentication", ["UserPassword", "Certificate"])
def test_a_401_authenticates_afresh_once(make: Make, uem: StandIn, state: BlackBerryState,
                                         authentication: str) -> None:
    connector = make(authentication)
    connector.lookup(UDID)
    state.revoke()

    assert connector.lookup(UDID) is not None
    assert state.authorizations + state.tokens_issued == 2
    assert [s.method for s in uem.seen] == ["POST", "GET", "GET", "POST", "GET"]


def test_bad_credentials_are_an_auth_error_without_the_password(make: Make) -> None:
    with pytest.raises(MdmAuthError, match="util/authorization answered 400") as raised:
        make(password=b"Wrong-Password-123").lookup(UDID)
    assert "Wrong-Password-123" not in str(raised.value)
    assert base64.b64encode(b"Wrong-Password-123").decode() not in str(raised.value)


def test_an_unregistered_certificate_is_refused(make: Make) -> None:
    intruder = pki.credential("not the registered client").pfx(PFX_PASSWORD)
    with pytest.raises(MdmAuthError, match="401: invalid_client: .*x5t#S256"):
        make("Certificate", clientCertificate=intruder).lookup(UDID)


def test_a_403_is_an_auth_error(make: Make, state: BlackBerryState) -> None:
    state.authorized = False
    with pytest.raises(MdmAuthError, match="403: NOT_AUTHORIZED"):
        make().lookup(UDID)


# --- lookups and restrictions ---------------------------------------------------------------------

def test_required_attributes_met(make: Make) -> None:
    decision = check(_must_be_registered("compromised=False,osFamilyName=ios"), UDID,
                     make().lookup)
    assert decision.allowed


def test_required_attributes_not_met(make: Make, state: BlackBerryState) -> None:
    state.devices = [_device(compromised=True, osFamilyName="android")]

    decision = check(_must_be_registered("compromised=False,osFamilyName=ios"), UDID,
                     make().lookup)

    assert not decision.allowed
    assert decision.condition == (
        "required MDM attributes not met: compromised=False (the MDM has 'True'); "
        "osFamilyName=ios (the MDM has 'android')")


def test_an_unknown_device_is_none(make: Make) -> None:
    connector = make()

    assert connector.lookup("f" * 64) is None
    rejected = check(_must_be_registered(), "f" * 64, connector.lookup)
    assert not rejected.allowed
    assert rejected.condition == "the device is not found in the MDM and must be registered"
    allowed = check(MdmRestrictions.model_validate(
        {"status": "MustNotBeRegistered", "externalSystem": SYSTEM}), "f" * 64, connector.lookup)
    assert allowed.allowed


def test_two_devices_with_the_udid_are_a_protocol_error(make: Make,
                                                      state: BlackBerryState) -> None:
    state.devices = [_device(), _device(guid="another-guid")]
    with pytest.raises(MdmProtocolError, match="2 devices"):
        make().lookup(UDID)


def test_an_unknown_query_field_is_a_protocol_error(make: Make, state: BlackBerryState) -> None:
    state.query_fields = ("imei",)
    with pytest.raises(MdmProtocolError, match="400: BAD_REQUEST: Unknown query field: udid"):
        make().lookup(UDID)


# --- availability ---------------------------------------------------------------------------------

def test_a_down_uem_is_unavailable(make: Make, sleeps: list[float]) -> None:
    with pytest.raises(MdmUnavailable, match="ConnectError"):
        make(url=closed_port_url()).lookup(UDID)
    assert sleeps == [0.5, 1.0]


def test_repeated_503_is_unavailable(make: Make, uem: StandIn, state: BlackBerryState) -> None:
    state.faults.fail(3, status=503)
    with pytest.raises(MdmUnavailable, match="503 3 times"):
        make().lookup(UDID)
    assert uem.paths().count(f"{ROOT}/devices") == 3


def test_throttling_waits_what_retry_after_asks(make: Make, state: BlackBerryState,
                                                sleeps: list[float]) -> None:
    state.faults.throttle(1, retry_after=1)

    assert make().lookup(UDID) is not None
    assert sleeps == [1.0]


# --- test_connection ------------------------------------------------------------------------------

@pytest.mark.parametrize(("authentication", "endpoint"), [
    ("UserPassword", "/util/authorization"), ("Certificate", f"/op/tenant/{TENANT}/token")])
def test_connection_succeeds(make: Make, authentication: str, endpoint: str) -> None:
    assert make(authentication).test_connection() == [
        Step("ping", True, "GET /util/ping -> 200 up"),
        Step("authentication", True, f"POST {endpoint} -> 200"),
        Step("device query", True, "GET /devices?max=1 -> 200"),
    ]


def test_connection_with_bad_credentials(make: Make) -> None:
    ping, authentication = make(password=b"Wrong-Password-123").test_connection()

    assert ping.ok
    assert authentication == Step(
        "authentication", False, "POST /util/authorization answered 400: the UEM refused user "
        f"'{USERNAME}' and its password")


def test_connection_to_an_unreachable_uem(make: Make) -> None:
    url = closed_port_url()
    (ping,) = make(url=url).test_connection()

    assert not ping.ok
    assert ping.detail.startswith("GET /util/ping failed after 3 attempts: ConnectError")
    assert url.removeprefix("http://") not in ping.detail


# --- the stand-in's own checks ----------------------------------------------------------------------

TOKEN_URL = f"https://idp.example/op/tenant/{TENANT}/token"


def _assertion(client_id: str = CLIENT_ID, audience: str = TOKEN_URL, cn: str = CLIENT_CN) -> str:
    client = pki.credential(cn)
    return client_assertion(ClientCredential(client.certificate, client.key), client_id,
                            audience, now=1_000_000)


@pytest.mark.parametrize(("assertion", "now", "problem"), [
    (lambda: _assertion(audience="https://elsewhere/token"), 1_000_000, "aud"),
    (lambda: _assertion(client_id="someone-else"), 1_000_000, "iss and sub"),
    (lambda: _assertion(), 1_000_000 + 3600, "expired"),
    (lambda: _assertion(cn="not the registered client"), 1_000_000, "x5t#S256"),
    (lambda: _assertion()[:-8] + "AAAAAAAA", 1_000_000, "signature"),
])
def test_the_stand_in_verifies_client_assertions(assertion: Callable[[], str], now: float,
                                                 problem: str) -> None:
    certificate = pki.credential(CLIENT_CN).certificate
    verify_client_assertion(_assertion(), certificate, CLIENT_ID, TOKEN_URL, now=1_000_000)
    with pytest.raises(ValueError, match=problem):
        verify_client_assertion(assertion(), certificate, CLIENT_ID, TOKEN_URL, now=now)
