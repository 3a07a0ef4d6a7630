"""A profile's MDM restrictions judged against the Intune stand-in (the REST007 verdict)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from provisioning.mdm import MdmUnavailable, decide
from provisioning.mdm.restrictions import REJECTION_CODE
from reconciler.db import vault
from specs.credential_profile import MdmRestrictions
from tests.conftest import TEST_MASTER_KEY
from tests.servers.entra_graph import make_app
from tests.servers.harness import StandIn, serve

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "9b2d6c11-52a4-4f0e-8c0e-2f3a1d4b5c6e"
SECRET = "Intune-enforce-secret~1Ab"
CLEAN = "705c034c-034c-705c-4c03-5c704c035c70"
ROOTED = "11111111-2222-3333-4444-555555555555"
SUBJECT = {"request": "alice/mobile-standard", "person": "alice"}


@pytest.fixture
def graph() -> Iterator[StandIn]:
    devices = [{"id": CLEAN, "jailBroken": "False", "complianceState": "compliant"},
               {"id": ROOTED, "jailBroken": "True", "complianceState": "compliant"}]
    with serve(make_app(tenant=TENANT, client_id=CLIENT_ID, client_secret=SECRET,
                        devices=devices)) as running:
        yield running


@pytest.fixture
def applied(mimctl, engine, database_url, graph, write_tree, monkeypatch):
    monkeypatch.setenv("INTUNE_SECRET", SECRET)
    root = write_tree({"intune.yaml": f"""
        apiVersion: mim/v1
        kind: ExternalSystem
        metadata: {{name: Intune}}
        spec:
          listenerType: Intune
          tenantId: {TENANT}
          clientId: {CLIENT_ID}
          clientSecret: {{env: INTUNE_SECRET}}
          loginBaseUrl: {graph.url}
          graphBaseUrl: {graph.url}
        """, "settings.yaml": """
        apiVersion: mim/v1
        kind: Settings
        metadata: {name: system}
        spec: {auth: {allowUnsafeHttp: true}}
        """})
    result = mimctl("--db", database_url, "reconcile", "--apply", root, "--yes")
    assert result.exit_code == 0, result.output
    return engine


MUST_BE = MdmRestrictions.model_validate({
    "status": "MustBeRegistered", "externalSystem": "Intune",
    "requiredAttributes": "jailBroken=False, complianceState=compliant"})
KEY = vault.MasterKey.parse(TEST_MASTER_KEY)


def test_a_registered_clean_device_may_collect(applied) -> None:
    decision = decide(applied, KEY, MUST_BE, CLEAN)
    assert decision.allowed and decision.identifier == CLEAN


def test_a_refusal_is_rest007_and_says_what_was_looked_up(applied) -> None:
    decision = decide(applied, KEY, MUST_BE, ROOTED)
    assert not decision.allowed and REJECTION_CODE == "REST007"
    assert decision.audit_details() == {
        "code": "REST007", "mdmStatus": "MustBeRegistered", "system": "Intune",
        "identifier": ROOTED,
        "condition": "required MDM attributes not met: jailBroken=False (the MDM has 'True')"}


def test_must_not_be_registered(applied) -> None:
    must_not = MdmRestrictions.model_validate({"status": "MustNotBeRegistered",
                                               "externalSystem": "Intune"})
    assert decide(applied, KEY, must_not, None).allowed
    assert decide(applied, KEY, must_not, "99999999-9999-9999-9999-999999999999").allowed
    refused = decide(applied, KEY, must_not, CLEAN)
    assert not refused.allowed
    assert refused.condition == "the device is registered in the MDM and must not be"


def test_an_mdm_that_is_down_is_not_a_verdict(applied, graph) -> None:
    graph.app.state.fail(10, status=503)  # type: ignore[attr-defined]
    with pytest.raises(MdmUnavailable):
        decide(applied, KEY, MUST_BE, CLEAN, sleep=lambda seconds: None)


def test_unrestricted_makes_no_call(applied, graph) -> None:
    graph.seen.clear()
    assert decide(applied, KEY, MdmRestrictions(), "anything").allowed
    assert graph.seen == []
