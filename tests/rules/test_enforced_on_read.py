"""Rules checked while documents are read (models, uniqueness, references) carry their rule ids."""

from __future__ import annotations

import textwrap

import pytest

from reconciler.rules import REGISTRY
from tests.rules.base import changed, problems

PROFILE_END = "    canUnlock: [Helpdesk]\n"
INTUNE = textwrap.dedent("""
    apiVersion: mim/v1
    kind: ExternalSystem
    metadata:
      name: Intune
    spec:
      listenerType: Intune
      tenantId: t-1
      clientId: c-1
""")
WS1 = textwrap.dedent("""
    apiVersion: mim/v1
    kind: ExternalSystem
    metadata:
      name: WS1
    spec:
      listenerType: WorkspaceOne
      baseUrl: https://as1.awmdm.com
      keyValue: {env: WS1_KEY}
      authentication: UserPassword
      username: api
""")
FORMAT = """
    apiVersion: mim/v1
    kind: CardFormat
    metadata:
      name: Corp
    spec:
      containers:
        - {name: Signing, id: SIG, certificate: true}
        - {name: Encryption, id: SIG, certificate: true}
"""


def dn(name: str, target: str) -> str:
    return (f"apiVersion: mim/v1\nkind: DnPolicy\nmetadata:\n  name: {name}\nspec:\n"
            f"  {target}\n  dn: cn=[[People.FullName]], o=Example\n")


# (rule id, broken configuration, fixed configuration, (file, line, column, path, message))
CASES = [
    ("MIM305",
     changed({"profiles.yaml": ("container: System Store", "container: Secure Element")}),
     changed(),
     ("profiles.yaml", 12, 18, "spec.certificates[0].container",
      "card format 'Mobile' has no container 'Secure Element' (its containers: System Store)")),
    ("MIM308", changed(add={"format.yaml": FORMAT}),
     changed(add={"format.yaml": FORMAT.replace("Encryption, id: SIG", "Encryption, id: ENC")}),
     ("format.yaml", 6, 3, "spec", "two containers share the id 'SIG'")),
    ("MIM501", changed(add={"intune.yaml": INTUNE}),
     changed(add={"intune.yaml": INTUNE + "  clientSecret: {env: INTUNE_SECRET}\n"}),
     ("intune.yaml", 6, 3, "spec", "give exactly one of clientSecret and clientCertificate")),
    ("MIM502", changed(add={"ws1.yaml": WS1}),
     changed(add={"ws1.yaml": WS1 + "  password: {env: WS1_PASSWORD}\n"}),
     ("ws1.yaml", 6, 3, "spec", "authentication UserPassword needs password")),
    ("MIM601", changed(add={"dn.yaml": dn("signing", "certificatePolicy: Mobile Signin")}),
     changed(add={"dn.yaml": dn("signing", "certificatePolicy: Mobile Signing")}),
     ("dn.yaml", 6, 22, "spec.certificatePolicy",
      "no CertificatePolicy has friendlyName 'Mobile Signin'; did you mean 'Mobile Signing'?")),
    ("MIM603",
     changed(add={"dn.yaml": dn("one", "default: true")}),  # the base has one already
     changed(add={"dn.yaml": dn("one", "certificatePolicy: Mobile Signing")}),
     ("pki.yaml", 22, 12, "spec.default", "a default DN policy already exists: DnPolicy/one")),
    ("MIM701",
     changed({"requests.yaml": ("  delivery: Email\n", "  delivery: Email\n  kind: Renew\n")}),
     changed({"requests.yaml": ("  delivery: Email\n",
                                "  delivery: Email\n  kind: Renew\n  device: alice-phone-1\n")}),
     ("requests.yaml", 6, 3, "spec", "a Renew request needs the device it is for")),
]


@pytest.mark.parametrize(("rule_id", "broken", "fixed", "expected"), CASES,
                         ids=[case[0] for case in CASES])
def test_read_time_rule_carries_its_id(tmp_path, rule_id, broken, fixed, expected) -> None:
    assert REGISTRY[rule_id].check is None  # listed in the catalogue, checked while reading
    found = [p for p in problems(tmp_path / "broken", broken) if p.code == rule_id]
    assert len(found) == 1, [str(p) for p in found]
    (problem,) = found
    file, line, column, path, message = expected
    assert (problem.file.endswith(file), problem.line, problem.column, problem.field_path) == (
        True, line, column, path)
    assert problem.message.startswith(message), problem.message
    assert [str(p) for p in problems(tmp_path / "fixed", fixed) if p.code == rule_id] == []


def test_every_read_time_rule_is_tested() -> None:
    read_time = {rule_id for rule_id, entry in REGISTRY.items() if entry.check is None}
    assert read_time == {case[0] for case in CASES}
