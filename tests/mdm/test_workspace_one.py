"""The Workspace ONE UEM connector against its stand-in over real sockets."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from provisioning.mdm.base import MdmAuthError, MdmProtocolError, MdmUnavailable, Step
from provisioning.mdm.restrictions import check
from provisioning.mdm.workspace_one import WorkspaceOneConnector
from specs.credential_profile import MdmRestrictions
from specs.external_system import WorkspaceOneSystem
from tests.servers import pki
from tests.servers.harness import StandIn, closed_port_url, serve
from tests.servers.workspace_one import (
    WorkspaceOneDevice,
    WorkspaceOneState,
    verify_cmsurl,
    workspace_one_app,
)

UDID = "699975c7f9593a5605b298dff19492cbc59de72a"
UUID = "163dafa2-9751-4db8-972b-803c9d9564e3"
TENANT_CODE = "Tq8vK2mZr4XwB7nD"
USERNAME = "api-admin"
PASSWORD = "Corr3ct-H0rse-Battery"
PFX_PASSWORD = b"pfx-Passw0rd"
ADMIN_CN = "ws1 api admin"
SYSTEM = "ws1"

Make = Callable[..., WorkspaceOneConnector]


@pytest.fixture(scope="module")
def server() -> Iterator[StandIn]:
    """One stand-in for the module: stopping one takes half a second."""
    with serve(workspace_one_app(WorkspaceOneState(TENANT_CODE))) as stand_in:
        yield stand_in


@pytest.fixture
def state() -> WorkspaceOneState:
    state = WorkspaceOneState(TENANT_CODE, users={USERNAME: PASSWORD},
                              devices=[WorkspaceOneDevice(UDID, UUID)])
    state.register_certificate(pki.credential(ADMIN_CN).certificate, "certificate-admin")
    return state


@pytest.fixture
def ws1(server: StandIn, state: WorkspaceOneState) -> StandIn:
    """The stand-in serving this test's fresh state, its request log emptied."""
    server.app.config["STATE"] = state
    server.seen.clear()
    return server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make(ws1: StandIn, sleeps: list[float]) -> Iterator[Make]:
    """Connectors to the stand-in (or `url`), closed after the test; secrets can be overridden."""
    made: list[WorkspaceOneConnector] = []

    def make(authentication: str = "UserPassword", *, url: str | None = None,
             **overrides: bytes) -> WorkspaceOneConnector:
        spec, secrets = _configuration(authentication, url or ws1.url)
        connector = WorkspaceOneConnector(SYSTEM, spec, secrets | overrides, sleep=sleeps.append)
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


def _configuration(authentication: str, url: str) -> tuple[WorkspaceOneSystem, dict[str, bytes]]:
    document: dict[str, Any] = {"listenerType": "WorkspaceOne", "authentication": authentication,
                                "baseUrl": url, "keyValue": {"env": "WS1_KEY"}}
    secrets = {"keyValue": TENANT_CODE.encode()}
    if authentication == "UserPassword":
        document |= {"username": USERNAME, "password": {"env": "WS1_PASSWORD"}}
        secrets["password"] = PASSWORD.encode()
    else:
        document |= {"clientCertificate": {"file": "ws1.pfx"},
                     "certificatePassword": {"env": "WS1_PFX_PASSWORD"}}
        secrets |= {"clientCertificate": pki.credential(ADMIN_CN).pfx(PFX_PASSWORD),
                    "certificatePassword": PFX_PASSWORD}
    return WorkspaceOneSystem.model_validate(document), secrets


def _must_be_registered(required: str | None = None) -> MdmRestrictions:
    return MdmRestrictions.model_validate({"status": "MustBeRegistered", "externalSystem": SYSTEM,
                                           "requiredAttributes": required})


# --- authentication -----------------------------------------------------------------------------

def test_basic_authentication_returns_the_v2_record(make: Make, ws1: StandIn,
                                                    state: WorkspaceOneState) -> None:
    record = make("UserPassword").lookup(UDID)

    assert record == WorkspaceOneDevice(UDID, UUID).v2()
    assert [(s.path, s.query) for s in ws1.seen] == [
        ("/API/mdm/devices", f"searchby=Udid&id={UDID}"), (f"/API/mdm/devices/{UUID}", "")]
    assert [s.headers["Accept"] for s in ws1.seen] == [
        "application/json;version=1", "application/json;version=2"]
    assert all(s.headers["Aw-Tenant-Code"] == TENANT_CODE for s in ws1.seen)
    assert state.authenticated == [f"basic:{USERNAME}"] * 2


@pytest.mark.parametrize("encoding", ["der", "base64"])
def test_certificate_authentication_signs_each_request_path(
        make: Make, ws1: StandIn, state: WorkspaceOneState, encoding: str) -> None:
    pfx = pki.credential(ADMIN_CN).pfx(PFX_PASSWORD)
    connector = make("Certificate",
                     clientCertificate=pfx if encoding == "der" else base64.b64encode(pfx))

    assert connector.lookup(UDID) is not None
    assert state.authenticated == ["certificate:certificate-admin"] * 2
    assert all(s.headers["Authorization"].startswith("CMSURL`1 ") for s in ws1.seen)


def test_an_unregistered_certificate_is_refused(make: Make) -> None:
    intruder = pki.credential("not registered with the UEM").pfx(PFX_PASSWORD)
    with pytest.raises(MdmAuthError, match="errorCode 1005"):
        make("Certificate", clientCertificate=intruder).lookup(UDID)


def test_a_wrong_pfx_password_is_an_auth_error(make: Make, ws1: StandIn) -> None:
    with pytest.raises(MdmAuthError, match="PKCS#12") as raised:
        make("Certificate", certificatePassword=b"wrong-pfx-password").lookup(UDID)
    assert "wrong-pfx-password" not in str(raised.value)
    assert ws1.seen == []


def test_bad_credentials_are_an_auth_error_without_the_password(make: Make) -> None:
    with pytest.raises(MdmAuthError, match="401 .errorCode 1005") as raised:
        make(password=b"Wrong-Password-123").lookup(UDID)
    assert "Wrong-Password-123" not in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_a_bad_tenant_code_is_an_auth_error_without_the_code(make: Make) -> None:
    with pytest.raises(MdmAuthError, match="403 .errorCode 1013") as raised:
        make(keyValue=b"Wr0ngTenantCode").lookup(UDID)
    assert "Wr0ngTenantCode" not in str(raised.value)  # the UEM's message echoes it


# --- lookups and restrictions ---------------------------------------------------------------------

def test_required_attributes_met_including_nested_ones(make: Make) -> None:
    restrictions = _must_be_registered(
        "platform_info.platform_name=iOS,enrollmentInfo.compliant=True,udid=" + UDID)

    decision = check(restrictions, UDID, make().lookup)

    assert decision.allowed
    assert decision.identifier == UDID


def test_required_attributes_not_met(make: Make, state: WorkspaceOneState) -> None:
    state.devices = [WorkspaceOneDevice(UDID, UUID, platform="Android", compliant=False)]
    restrictions = _must_be_registered("platform_info.platform_name=iOS,"
                                       "enrollmentInfo.compliant=True")

    decision = check(restrictions, UDID, make().lookup)

    assert not decision.allowed
    assert decision.condition == (
        "required MDM attributes not met: platform_info.platform_name=iOS (the MDM has "
        "'Android'); enrollmentInfo.compliant=True (the MDM has 'False')")


def test_an_unknown_device_is_none(make: Make) -> None:
    connector = make()

    assert connector.lookup("0000000000000000000000000000000000000000") is None
    rejected = check(_must_be_registered(), "00000000", connector.lookup)
    assert not rejected.allowed
    assert rejected.condition == "the device is not found in the MDM and must be registered"
    allowed = check(MdmRestrictions.model_validate(
        {"status": "MustNotBeRegistered", "externalSystem": SYSTEM}), "00000000", connector.lookup)
    assert allowed.allowed


def test_a_record_for_another_udid_is_not_the_device(make: Make, ws1: StandIn) -> None:
    # The UEM's search ignores case; the identifier the device reported must match exactly.
    assert make().lookup(UDID.upper()) is None
    assert ws1.paths() == ["/API/mdm/devices"]


def test_a_404_that_is_not_device_not_found_is_a_protocol_error(make: Make,
                                                                ws1: StandIn) -> None:
    with pytest.raises(MdmProtocolError, match="answered 404"):
        make(url=ws1.url + "/not-the-api").lookup(UDID)


# --- availability ---------------------------------------------------------------------------------

def test_a_down_uem_is_unavailable(make: Make, sleeps: list[float]) -> None:
    with pytest.raises(MdmUnavailable, match="ConnectError"):
        make(url=closed_port_url()).lookup(UDID)
    assert sleeps == [0.5, 1.0]


def test_repeated_503_is_unavailable(make: Make, ws1: StandIn, state: WorkspaceOneState) -> None:
    state.faults.fail(3, status=503)
    with pytest.raises(MdmUnavailable, match="503 3 times"):
        make().lookup(UDID)
    assert len(ws1.seen) == 3


def test_throttling_waits_what_retry_after_asks(make: Make, state: WorkspaceOneState,
                                                sleeps: list[float]) -> None:
    state.faults.throttle(1, retry_after=1)

    assert make().lookup(UDID) is not None
    assert sleeps == [1.0]


# --- test_connection ------------------------------------------------------------------------------

@pytest.mark.parametrize("authentication", ["UserPassword", "Certificate"])
def test_connection_succeeds(make: Make, ws1: StandIn, authentication: str) -> None:
    assert make(authentication).test_connection() == [
        Step("authentication", True, "GET /API/mdm/devices/search -> 200")]
    assert ws1.seen[0].query == "pagesize=1"


def test_connection_with_bad_credentials(make: Make) -> None:
    (step,) = make(password=b"Wrong-Password-123").test_connection()

    assert not step.ok
    assert step.detail.startswith("the UEM refused the credentials; GET /API/mdm/devices/search "
                                  "answered 401 (errorCode 1005)")
    assert "Wrong-Password-123" not in step.detail


def test_connection_to_an_unreachable_uem(make: Make) -> None:
    url = closed_port_url()
    (step,) = make(url=url).test_connection()

    assert not step.ok
    assert step.detail.startswith("GET /API/mdm/devices/search failed after 3 attempts: "
                                  "ConnectError")
    assert url.removeprefix("http://") not in step.detail


# --- the stand-in's own checks ----------------------------------------------------------------------

def _cmsurl(data: bytes, *options: pkcs7.PKCS7Options) -> str:
    admin = pki.credential(ADMIN_CN)
    signed = (pkcs7.PKCS7SignatureBuilder().set_data(data)
              .add_signer(admin.certificate, admin.key, hashes.SHA256())
              .sign(Encoding.DER, list(options)))
    return base64.b64encode(signed).decode()


def test_the_stand_in_verifies_the_signature_over_the_path() -> None:
    value = _cmsurl(b"/API/mdm/devices", pkcs7.PKCS7Options.DetachedSignature)

    assert verify_cmsurl(value, b"/API/mdm/devices") == pki.credential(ADMIN_CN).certificate
    with pytest.raises(ValueError, match="messageDigest"):
        verify_cmsurl(value, b"/API/mdm/devices/search")
    with pytest.raises(ValueError, match="not detached"):
        verify_cmsurl(_cmsurl(b"/API/mdm/devices"), b"/API/mdm/devices")
