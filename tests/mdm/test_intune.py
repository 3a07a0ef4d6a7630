"""The Intune connector against a real HTTP stand-in for Entra ID and Microsoft Graph."""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from provisioning.mdm.base import (
    TOKEN_EXPIRY_SKEW,
    ClientCredential,
    MdmAuthError,
    MdmProtocolError,
    MdmUnavailable,
    Step,
    b64url,
    client_assertion,
)
from provisioning.mdm.intune import DEVICES_PATH, IntuneConnector
from provisioning.mdm.restrictions import check
from specs.credential_profile import MdmRestrictions
from specs.external_system import IntuneSystem
from tests.servers import pki
from tests.servers.entra_graph import EntraGraphApp, EntraGraphState, make_app, make_state
from tests.servers.harness import StandIn, closed_port_url, serve
from tests.servers.pki import credential

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "535fb089-9ff3-47b6-9bfb-4f1264799865"
SECRET = "Qh8Q~s3cr3t.Value_for-tests"
APP_CERT = "intune-app"
TOKEN_PATH = f"/{TENANT}/oauth2/v2.0/token"

IPHONE: dict[str, Any] = {
    "@odata.type": "#microsoft.graph.managedDevice",
    "id": "705c034c-034c-705c-4c03-5c704c035c70",
    "azureADDeviceId": "1f2e3d4c-0000-1111-2222-333344445555",
    "deviceName": "iPhone-jsmith", "operatingSystem": "iOS", "osVersion": "17.5",
    "complianceState": "compliant", "jailBroken": "False", "isEncrypted": True,
    "isSupervised": False, "managedDeviceOwnerType": "company", "managementAgent": "mdm",
    "serialNumber": "F2LXK0ABCD12", "imei": "356789012345678", "model": "iPhone 14",
    "manufacturer": "Apple", "userPrincipalName": "jsmith@contoso.com",
    "lastSyncDateTime": "2025-01-10T10:00:00Z",
    "hardwareInformation": {"manufacturer": "Apple", "isSupervised": False},
}
PIXEL: dict[str, Any] = {
    **IPHONE, "id": "0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9",
    "azureADDeviceId": "9e8d7c6b-5a49-4837-a625-140312f0e1d2", "deviceName": "Pixel-akim",
    "operatingSystem": "Android", "complianceState": "noncompliant", "jailBroken": "True",
    "serialNumber": "PX8-0042", "manufacturer": "Google",
    "hardwareInformation": {"manufacturer": "Google", "isSupervised": False},
}
SURFACE: dict[str, Any] = {
    **IPHONE, "id": "c0ffee00-1234-4abc-8def-0123456789ab",
    "azureADDeviceId": "00000000-0000-0000-0000-000000000000", "deviceName": "Surface-ops",
    "operatingSystem": "Windows", "serialNumber": "SRF-777", "manufacturer": "Microsoft",
    "hardwareInformation": {"manufacturer": "Microsoft", "isSupervised": False},
}
DEVICES = [IPHONE, PIXEL, SURFACE]
UNKNOWN = "deadbeef-0000-4000-8000-000000000001"


class Sleeps(list[float]):
    """A connector's `sleep` that records what it was asked to wait (and waits if `real`)."""

    def __init__(self, real: bool = False) -> None:
        super().__init__()
        self.real = real

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if self.real:
            time.sleep(seconds)


Make = Callable[..., IntuneConnector]


@pytest.fixture(scope="module")
def served() -> Iterator[StandIn]:
    """One server for the module (stopping one takes half a second); each test resets it."""
    with serve(make_app(tenant=TENANT, client_id=CLIENT_ID)) as running:
        yield running


@pytest.fixture
def stand_in(served: StandIn) -> StandIn:
    """The stand-in with fresh state: the secret, the app certificate, three devices."""
    cast(EntraGraphApp, served.app).state = make_state(
        tenant=TENANT, client_id=CLIENT_ID, client_secret=SECRET,
        certificate=credential(APP_CERT).certificate, devices=copy.deepcopy(DEVICES))
    served.seen.clear()
    return served


def state(stand_in: StandIn) -> EntraGraphState:
    return cast(EntraGraphApp, stand_in.app).state


def spec(url: str, *, certificate: pki.TestCredential | None = None,
         certificate_file: Path | None = None) -> IntuneSystem:
    fields: dict[str, Any] = {"listenerType": "Intune", "tenantId": TENANT, "clientId": CLIENT_ID,
                              "loginBaseUrl": url, "graphBaseUrl": url}
    if certificate is None:
        fields["clientSecret"] = {"env": "INTUNE_CLIENT_SECRET"}
    else:
        pem = ({"file": str(certificate_file)} if certificate_file
               else certificate.certificate_pem.decode())
        fields["clientCertificate"] = {"certificate": pem, "key": {"env": "INTUNE_KEY"}}
    return IntuneSystem.model_validate(fields)


@pytest.fixture
def make() -> Iterator[Make]:
    """Build connectors (closed at the end of the test); secret auth unless a certificate."""
    made: list[IntuneConnector] = []

    def build(url: str, *, secret: str = SECRET, certificate: pki.TestCredential | None = None,
              certificate_file: Path | None = None, sleep: Sleeps | None = None
              ) -> IntuneConnector:
        secrets = ({"clientCertificate.key": certificate.key_pem} if certificate
                   else {"clientSecret": secret.encode()})
        connector = IntuneConnector("Intune", spec(url, certificate=certificate,
                                                   certificate_file=certificate_file),
                                    secrets, sleep=sleep if sleep is not None else Sleeps())
        made.append(connector)
        return connector

    yield build
    for connector in made:
        connector.close()


def token_forms(stand_in: StandIn) -> list[dict[str, str]]:
    return [{k: v[0] for k, v in parse_qs(seen.body.decode()).items()}
            for seen in stand_in.seen if seen.path == TOKEN_PATH]


def graph_requests(stand_in: StandIn) -> list[str]:
    return [f"{s.path}?{s.query}" if s.query else s.path
            for s in stand_in.seen if s.path.startswith(DEVICES_PATH)]


# --- authentication -------------------------------------------------------------------------

def test_client_secret_finds_a_device_by_its_intune_id(stand_in: StandIn, make: Make) -> None:
    record = make(stand_in.url).lookup(IPHONE["id"])
    assert record is not None
    assert {k: v for k, v in record.items() if k != "@odata.context"} == IPHONE
    [form] = token_forms(stand_in)
    assert form == {"client_id": CLIENT_ID, "scope": "https://graph.microsoft.com/.default",
                    "grant_type": "client_credentials", "client_secret": SECRET}
    [graph] = [s for s in stand_in.seen if s.path.startswith(DEVICES_PATH)]
    assert graph.headers["Authorization"].startswith("Bearer ")
    assert graph.headers["Accept"] == "application/json"


def test_a_wrong_client_secret_is_refused_without_showing_it(stand_in: StandIn,
                                                             make: Make) -> None:
    with pytest.raises(MdmAuthError) as caught:
        make(stand_in.url, secret="not-the-Secret-42").lookup(IPHONE["id"])
    assert caught.value.message == (
        "Entra refused the token request: invalid_client: AADSTS7000215: Invalid client secret "
        "provided. Ensure the secret being sent in the request is the client secret value, not "
        f"the client secret ID, for a secret added to app '{CLIENT_ID}'.")
    assert "not-the-Secret-42" not in str(caught.value)
    assert "Trace ID" not in str(caught.value)
    assert graph_requests(stand_in) == []


@pytest.mark.parametrize("inline", [True, False], ids=["inline-pem", "certificate-file"])
def test_a_client_assertion_signed_with_the_app_certificate_is_accepted(
        stand_in: StandIn, make: Make, tmp_path: Path, inline: bool) -> None:
    app = credential(APP_CERT)
    certificate_file = None
    if not inline:
        certificate_file = tmp_path / "intune.pem"
        certificate_file.write_bytes(app.certificate_pem)
    connector = make(stand_in.url, certificate=app, certificate_file=certificate_file)
    assert connector.lookup(IPHONE["id"]) is not None
    [form] = token_forms(stand_in)
    assert "client_secret" not in form
    assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    header = json.loads(_unb64(form["client_assertion"].split(".")[0]))
    assert header["alg"] == "PS256" and "x5t#S256" in header


def test_an_assertion_signed_with_another_certificate_is_refused(stand_in: StandIn,
                                                                make: Make) -> None:
    with pytest.raises(MdmAuthError, match="invalid_client: AADSTS700027: The certificate "
                       "with identifier used to sign the client assertion is not registered"):
        make(stand_in.url, certificate=credential("someone-else")).lookup(IPHONE["id"])


def test_an_unreadable_certificate_file_is_an_auth_error(stand_in: StandIn, make: Make,
                                                         tmp_path: Path) -> None:
    connector = make(stand_in.url, certificate=credential(APP_CERT),
                     certificate_file=tmp_path / "missing.pem")
    with pytest.raises(MdmAuthError, match="missing.pem cannot be read: No such file"):
        connector.lookup(IPHONE["id"])
    assert stand_in.seen == []


# --- the stand-in really checks assertions --------------------------------------------------

def _unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def rs256_assertion(app: pki.TestCredential, claims: dict[str, Any]) -> str:
    """An RS256 assertion with only the SHA-1 `x5t`, as the older Entra documents show."""
    header = {"alg": "RS256", "typ": "JWT",
              "x5t": ClientCredential(app.certificate, app.key).sha1_thumbprint}
    signing_input = ".".join(b64url(json.dumps(part).encode()) for part in (header, claims))
    signature = app.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def ask_token(stand_in: StandIn, assertion: str) -> httpx.Response:
    return httpx.post(f"{stand_in.url}{TOKEN_PATH}", data={
        "client_id": CLIENT_ID, "scope": "https://graph.microsoft.com/.default",
        "grant_type": "client_credentials", "client_assertion": assertion,
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"})


def test_the_stand_in_accepts_rs256_with_a_sha1_thumbprint(stand_in: StandIn) -> None:
    now = int(time.time())
    claims = {"aud": f"{stand_in.url}{TOKEN_PATH}", "iss": CLIENT_ID, "sub": CLIENT_ID,
              "jti": "1", "nbf": now, "exp": now + 300}
    response = ask_token(stand_in, rs256_assertion(credential(APP_CERT), claims))
    assert response.status_code == 200
    assert response.json()["expires_in"] == 3599


@pytest.mark.parametrize(("change", "code"), [
    ({"aud": f"https://login.microsoftonline.com/{TENANT}/oauth2/v2.0/token"}, 50027),
    ({"iss": "someone-else"}, 50027),
    ({"exp": 1_000_000}, 700024),
    ({"nbf": 4_000_000_000}, 700024),
])
def test_the_stand_in_refuses_bad_assertion_claims(stand_in: StandIn, change: dict[str, Any],
                                                  code: int) -> None:
    good = client_assertion(ClientCredential(credential(APP_CERT).certificate,
                                             credential(APP_CERT).key),
                            CLIENT_ID, f"{stand_in.url}{TOKEN_PATH}")
    assert ask_token(stand_in, good).status_code == 200
    now = int(time.time())
    claims = {"aud": f"{stand_in.url}{TOKEN_PATH}", "iss": CLIENT_ID, "sub": CLIENT_ID,
              "jti": "2", "nbf": now, "exp": now + 300, **change}
    response = ask_token(stand_in, rs256_assertion(credential(APP_CERT), claims))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    assert response.json()["error_codes"] == [code]


def test_the_stand_in_refuses_a_tampered_signature(stand_in: StandIn) -> None:
    good = client_assertion(ClientCredential(credential(APP_CERT).certificate,
                                             credential(APP_CERT).key),
                            CLIENT_ID, f"{stand_in.url}{TOKEN_PATH}")
    header, claims, signature = good.split(".")
    forged = json.loads(_unb64(claims)) | {"sub": CLIENT_ID, "exp": int(time.time()) + 900}
    response = ask_token(stand_in, f"{header}.{b64url(json.dumps(forged).encode())}.{signature}")
    assert response.status_code == 401
    assert response.json()["error_codes"] == [700027]


# --- tokens ---------------------------------------------------------------------------------

def test_a_token_serves_several_lookups(stand_in: StandIn, make: Make) -> None:
    connector = make(stand_in.url)
    connector.lookup(IPHONE["id"])
    connector.lookup(PIXEL["id"])
    assert state(stand_in).tokens_issued == 1


def test_a_token_is_renewed_when_it_expires(stand_in: StandIn, make: Make) -> None:
    now = [1000.0]
    connector = make(stand_in.url)
    connector.tokens.clock = lambda: now[0]
    connector.lookup(IPHONE["id"])
    now[0] += 3599 - TOKEN_EXPIRY_SKEW - 1
    connector.lookup(IPHONE["id"])
    assert state(stand_in).tokens_issued == 1
    now[0] += 1
    connector.lookup(IPHONE["id"])
    assert state(stand_in).tokens_issued == 2


def test_a_token_too_short_lived_to_keep_is_not_cached(stand_in: StandIn, make: Make) -> None:
    state(stand_in).token_lifetime = int(TOKEN_EXPIRY_SKEW)
    connector = make(stand_in.url)
    connector.lookup(IPHONE["id"])
    connector.lookup(IPHONE["id"])
    assert state(stand_in).tokens_issued == 2


def test_a_token_graph_refuses_is_renewed_once(stand_in: StandIn, make: Make) -> None:
    connector = make(stand_in.url)
    connector.lookup(IPHONE["id"])
    state(stand_in).revoke_tokens()
    assert connector.lookup(IPHONE["id"]) is not None
    assert state(stand_in).tokens_issued == 2


def test_graph_refusing_new_tokens_too_is_an_auth_error(stand_in: StandIn, make: Make) -> None:
    state(stand_in).token_lifetime = 0  # expired as soon as issued
    with pytest.raises(MdmAuthError) as caught:
        make(stand_in.url).lookup(IPHONE["id"])
    assert caught.value.message == ("Graph refused a new access token: 401 "
                                    "InvalidAuthenticationToken: Lifetime validation failed, "
                                    "the token is expired.")
    assert state(stand_in).tokens_issued == 2


# --- lookups --------------------------------------------------------------------------------

def test_a_device_is_found_by_its_entra_device_id(stand_in: StandIn, make: Make) -> None:
    record = make(stand_in.url).lookup(PIXEL["azureADDeviceId"])
    assert record is not None and record["id"] == PIXEL["id"]
    assert graph_requests(stand_in) == [
        f"{DEVICES_PATH}/{PIXEL['azureADDeviceId']}",
        f"{DEVICES_PATH}?%24filter=azureADDeviceId+eq+%27{PIXEL['azureADDeviceId']}%27"]


def test_guids_match_in_any_case(stand_in: StandIn, make: Make) -> None:
    connector = make(stand_in.url)
    for device, key in ((IPHONE, "id"), (PIXEL, "azureADDeviceId")):
        record = connector.lookup(device[key].upper())
        assert record is not None and record["id"] == device["id"]


def test_an_unknown_device_is_none(stand_in: StandIn, make: Make) -> None:
    assert make(stand_in.url).lookup(UNKNOWN) is None


def test_an_identifier_that_is_no_guid_is_only_filtered_for(stand_in: StandIn,
                                                            make: Make) -> None:
    """`..` must not walk up to /deviceManagement; quotes are doubled inside the filter."""
    connector = make(stand_in.url)
    assert connector.lookup("..") is None
    assert connector.lookup("x' or id eq '1") is None
    assert graph_requests(stand_in) == [
        f"{DEVICES_PATH}?%24filter=azureADDeviceId+eq+%27..%27",
        f"{DEVICES_PATH}?%24filter=azureADDeviceId+eq+%27x%27%27+or+id+eq+%27%271%27"]


def test_an_ignored_filter_makes_no_false_match(stand_in: StandIn, make: Make) -> None:
    """Graph ignores filters it does not support and answers every device."""
    state(stand_in).supported_filters = set()
    connector = make(stand_in.url)
    assert connector.lookup(UNKNOWN) is None
    record = connector.lookup(SURFACE["azureADDeviceId"])
    assert record is not None and record["id"] == SURFACE["id"]


def test_pages_are_followed(stand_in: StandIn, make: Make) -> None:
    state(stand_in).supported_filters = set()
    state(stand_in).page_size = 1
    record = make(stand_in.url).lookup(SURFACE["azureADDeviceId"])
    assert record is not None and record["id"] == SURFACE["id"]
    pages = [p for p in graph_requests(stand_in) if "filter" in p]
    assert len(pages) == 3 and pages[2].endswith("%24skiptoken=2")


def test_pages_are_bounded(stand_in: StandIn, make: Make) -> None:
    state(stand_in).supported_filters = set()
    state(stand_in).page_size = 1
    connector = make(stand_in.url)
    connector.max_pages = 2
    with pytest.raises(MdmProtocolError, match="more than 2 pages"):
        connector.lookup(SURFACE["azureADDeviceId"])


def test_a_next_link_to_another_host_is_not_followed(stand_in: StandIn, make: Make) -> None:
    state(stand_in).supported_filters = set()
    state(stand_in).page_size = 1
    state(stand_in).next_link_base = "http://graph.attacker.example"
    with pytest.raises(MdmProtocolError, match="nextLink to another host"):
        make(stand_in.url).lookup(SURFACE["azureADDeviceId"])


def test_two_devices_with_one_entra_device_id_are_an_error(stand_in: StandIn,
                                                           make: Make) -> None:
    state(stand_in).devices.append({**PIXEL, "id": "11111111-2222-4333-8444-555555555555"})
    with pytest.raises(MdmProtocolError, match="2 managed devices have this Entra device id"):
        make(stand_in.url).lookup(PIXEL["azureADDeviceId"])


def test_a_missing_graph_permission_is_an_auth_error(stand_in: StandIn, make: Make) -> None:
    state(stand_in).permission_granted = False
    with pytest.raises(MdmAuthError, match="missing permission "
                       "DeviceManagementManagedDevices.Read.All"):
        make(stand_in.url).lookup(IPHONE["id"])


# --- unavailability -------------------------------------------------------------------------

def test_an_mdm_that_is_down_is_unavailable(make: Make) -> None:
    sleeps = Sleeps()
    with pytest.raises(MdmUnavailable, match="ConnectError"):
        make(closed_port_url(), sleep=sleeps).lookup(IPHONE["id"])
    assert sleeps == [0.5, 1.0]


def test_repeated_503_is_unavailable(stand_in: StandIn, make: Make) -> None:
    state(stand_in).fail(3, 503)
    sleeps = Sleeps()
    with pytest.raises(MdmUnavailable, match="answered 503 3 times"):
        make(stand_in.url, sleep=sleeps).lookup(IPHONE["id"])
    assert sleeps == [0.5, 1.0]
    assert len(graph_requests(stand_in)) == 3


def test_throttling_waits_what_retry_after_asks(stand_in: StandIn, make: Make) -> None:
    state(stand_in).throttle(1, retry_after=1)
    sleeps = Sleeps(real=True)
    assert make(stand_in.url, sleep=sleeps).lookup(IPHONE["id"]) is not None
    assert sleeps == [1.0]
    first, second = [s for s in stand_in.seen if s.path.startswith(DEVICES_PATH)]
    assert second.at - first.at >= 1.0


def test_a_retry_after_past_the_cap_fails_at_once(stand_in: StandIn, make: Make) -> None:
    state(stand_in).throttle(1, retry_after=120)
    sleeps = Sleeps()
    with pytest.raises(MdmUnavailable) as caught:
        make(stand_in.url, sleep=sleeps).lookup(IPHONE["id"])
    assert caught.value.retry_after == 120.0
    assert sleeps == []


# --- restrictions ---------------------------------------------------------------------------

def restrictions(status: str, required: str | None = None) -> MdmRestrictions:
    return MdmRestrictions.model_validate({"status": status, "externalSystem": "Intune",
                                           "requiredAttributes": required})


COMPLIANT = "jailBroken=False,complianceState=compliant"


def test_a_compliant_registered_device_is_allowed(stand_in: StandIn, make: Make) -> None:
    decision = check(restrictions("MustBeRegistered", COMPLIANT), IPHONE["azureADDeviceId"],
                     make(stand_in.url).lookup)
    assert decision.allowed


def test_a_jailbroken_device_is_rejected(stand_in: StandIn, make: Make) -> None:
    decision = check(restrictions("MustBeRegistered", COMPLIANT), PIXEL["id"],
                     make(stand_in.url).lookup)
    assert not decision.allowed
    assert decision.condition == (
        "required MDM attributes not met: jailBroken=False (the MDM has 'True'); "
        "complianceState=compliant (the MDM has 'noncompliant')")


@pytest.mark.parametrize(("device", "allowed"), [(IPHONE, True), (PIXEL, False)])
def test_a_nested_attribute_is_checked(stand_in: StandIn, make: Make, device: dict[str, Any],
                                       allowed: bool) -> None:
    decision = check(restrictions("MustBeRegistered", "hardwareInformation.manufacturer=Apple"),
                     device["id"], make(stand_in.url).lookup)
    assert decision.allowed is allowed
    if not allowed:
        assert "hardwareInformation.manufacturer=Apple (the MDM has 'Google')" in str(
            decision.condition)


def test_an_unknown_device_that_must_be_registered_is_rejected(stand_in: StandIn,
                                                              make: Make) -> None:
    decision = check(restrictions("MustBeRegistered", COMPLIANT), UNKNOWN,
                     make(stand_in.url).lookup)
    assert (decision.allowed, decision.identifier, decision.condition) == (
        False, UNKNOWN, "the device is not found in the MDM and must be registered")


@pytest.mark.parametrize(("identifier", "allowed"), [(IPHONE["id"], False), (UNKNOWN, True)])
def test_must_not_be_registered(stand_in: StandIn, make: Make, identifier: str,
                                allowed: bool) -> None:
    decision = check(restrictions("MustNotBeRegistered"), identifier, make(stand_in.url).lookup)
    assert decision.allowed is allowed


def test_an_mdm_that_is_down_decides_nothing(make: Make) -> None:
    with pytest.raises(MdmUnavailable):
        check(restrictions("MustNotBeRegistered"), UNKNOWN, make(closed_port_url()).lookup)


# --- connection test ------------------------------------------------------------------------

def test_connection_steps(stand_in: StandIn, make: Make) -> None:
    assert make(stand_in.url).test_connection() == [
        Step("token", True, f"POST {TOKEN_PATH} -> 200, expires in 3599 s"),
        Step("graph", True, f"GET {DEVICES_PATH} -> 200"),
    ]
    assert graph_requests(stand_in) == [f"{DEVICES_PATH}?%24top=1"]
    assert state(stand_in).tokens_issued == 1


def test_connection_with_a_wrong_secret(stand_in: StandIn, make: Make) -> None:
    [step] = make(stand_in.url, secret="nope-nope").test_connection()
    assert step == Step("token", False, (
        "Entra refused the token request: invalid_client: AADSTS7000215: Invalid client secret "
        "provided. Ensure the secret being sent in the request is the client secret value, not "
        f"the client secret ID, for a secret added to app '{CLIENT_ID}'."))


def test_connection_without_permission(stand_in: StandIn, make: Make) -> None:
    state(stand_in).permission_granted = False
    steps = make(stand_in.url).test_connection()
    assert steps[1] == Step("graph", False, "missing permission "
                            "DeviceManagementManagedDevices.Read.All: grant the app this "
                            "application permission (Graph answered 403)")


def test_connection_to_an_mdm_that_is_down(make: Make) -> None:
    [step] = make(closed_port_url()).test_connection()
    assert step == Step("token", False, f"POST {TOKEN_PATH} failed after 3 attempts: "
                        "ConnectError ([Errno 111] Connection refused)")
