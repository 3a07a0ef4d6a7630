"""`mimctl mdm test-connection` against the stand-ins, with systems applied through reconcile."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.servers import pki
from tests.servers.blackberry import BlackBerryState, blackberry_app
from tests.servers.entra_graph import make_app as entra_graph
from tests.servers.harness import StandIn, closed_port_url, serve
from tests.servers.workspace_one import WorkspaceOneState, workspace_one_app

TENANT = "contoso.onmicrosoft.com"
CLIENT_ID = "9b2d6c11-52a4-4f0e-8c0e-2f3a1d4b5c6e"
SECRET = "Intune-app-secret~4Kq"


@pytest.fixture
def db(engine, database_url) -> str:
    return database_url


@pytest.fixture
def graph() -> Iterator[StandIn]:
    with serve(entra_graph(tenant=TENANT, client_id=CLIENT_ID, client_secret=SECRET,
                           devices=[{"id": "705c034c-034c-705c-4c03-5c704c035c70",
                                     "jailBroken": "False"}])) as running:
        yield running


Apply = Callable[[str, str], None]


@pytest.fixture
def apply_system(mimctl, db, write_tree) -> Apply:
    """Apply one ExternalSystem document (YAML of its spec) to the test database."""

    def apply(name: str, spec: str) -> None:
        indented = "\n".join(f"  {line}" for line in spec.strip().splitlines())
        root = write_tree({
            "system.yaml": f"apiVersion: mim/v1\nkind: ExternalSystem\n"
                           f"metadata:\n  name: {name}\nspec:\n{indented}\n",
            # The stand-ins speak plain http on 127.0.0.1.
            "settings.yaml": "apiVersion: mim/v1\nkind: Settings\nmetadata: {name: system}\n"
                             "spec:\n  auth: {allowUnsafeHttp: true}\n"})
        result = mimctl("--db", db, "reconcile", "--apply", root, "--yes")
        assert result.exit_code == 0, result.output

    return apply


def intune_spec(url: str, secret_variable: str = "INTUNE_SECRET") -> str:
    return f"""
listenerType: Intune
tenantId: {TENANT}
clientId: {CLIENT_ID}
clientSecret: {{env: {secret_variable}}}
loginBaseUrl: {url}
graphBaseUrl: {url}
"""


def test_intune_connection_works(mimctl, db, graph, apply_system, monkeypatch, snapshot) -> None:
    monkeypatch.setenv("INTUNE_SECRET", SECRET)
    apply_system("Intune", intune_spec(graph.url))
    result = mimctl("--db", db, "mdm", "test-connection", "Intune")
    assert result.exit_code == 0, result.output
    assert result.output == snapshot


def test_intune_wrong_secret_fails_without_showing_it(mimctl, db, graph, apply_system,
                                                      monkeypatch, snapshot) -> None:
    monkeypatch.setenv("INTUNE_SECRET", "not-the-secret-8ZqP")
    apply_system("Intune", intune_spec(graph.url))
    result = mimctl("--db", db, "mdm", "test-connection", "Intune")
    assert result.exit_code == 1
    assert "not-the-secret-8ZqP" not in result.output
    assert result.output == snapshot


def test_intune_unreachable(mimctl, db, apply_system, monkeypatch, snapshot) -> None:
    monkeypatch.setenv("INTUNE_SECRET", SECRET)
    apply_system("Intune", intune_spec(closed_port_url()))
    result = mimctl("--db", db, "mdm", "test-connection", "Intune")
    assert result.exit_code == 1
    assert result.output == snapshot


def test_unknown_and_non_mdm_systems_are_refused(mimctl, db, apply_system,
                                                 monkeypatch) -> None:
    unknown = mimctl("--db", db, "mdm", "test-connection", "Nope")
    assert unknown.exit_code == 1
    assert "Nope: no ExternalSystem of that name is in the database" in unknown.output
    monkeypatch.setenv("SMTP_SECRET", "x")
    apply_system("Mail", "listenerType: Smtp\nhost: smtp.example\nfromAddress: a@example.com\n"
                         "password: {env: SMTP_SECRET}")
    smtp = mimctl("--db", db, "mdm", "test-connection", "Mail")
    assert smtp.exit_code == 1
    assert "Mail: is a Smtp system, not an MDM (Intune, WorkspaceOne, BlackBerry)" in smtp.output


def test_a_credential_file_is_stored_encrypted_and_used(mimctl, db, graph, apply_system,
                                                        tmp_path, monkeypatch) -> None:
    """A client certificate's key from a file, its certificate inline in the database."""
    app = pki.credential("intune-cli-test")
    graph.app.state.certificate = app.certificate  # type: ignore[attr-defined]
    (tmp_path / "app.crt").write_bytes(app.certificate_pem)
    (tmp_path / "app.key").write_bytes(app.key_pem)
    apply_system("Intune", f"""
listenerType: Intune
tenantId: {TENANT}
clientId: {CLIENT_ID}
clientCertificate:
  certificate: {{file: {tmp_path / 'app.crt'}}}
  key: {{file: {tmp_path / 'app.key'}}}
loginBaseUrl: {graph.url}
graphBaseUrl: {graph.url}
""")
    (tmp_path / "app.key").unlink()  # the service works from the database, not the file
    (tmp_path / "app.crt").unlink()
    result = mimctl("--db", db, "mdm", "test-connection", "Intune")
    assert result.exit_code == 0, result.output
    assert "The connection works." in result.output


def test_workspace_one_basic_authentication(mimctl, db, apply_system, monkeypatch,
                                            snapshot) -> None:
    monkeypatch.setenv("WS1_KEY", "ws1-tenant-code-3Jd")
    monkeypatch.setenv("WS1_PASSWORD", "ws1-password-9Lk")
    state = WorkspaceOneState("ws1-tenant-code-3Jd", users={"mim-api": "ws1-password-9Lk"})
    with serve(workspace_one_app(state)) as uem:
        apply_system("Workspace ONE", f"""
listenerType: WorkspaceOne
baseUrl: {uem.url}
keyValue: {{env: WS1_KEY}}
authentication: UserPassword
username: mim-api
password: {{env: WS1_PASSWORD}}
""")
        works = mimctl("--db", db, "mdm", "test-connection", "Workspace ONE")
        monkeypatch.setenv("WS1_PASSWORD", "ws1-wrong-password")
        apply_system("Workspace ONE", f"""
listenerType: WorkspaceOne
baseUrl: {uem.url}
keyValue: {{env: WS1_KEY}}
authentication: UserPassword
username: mim-api
password: {{env: WS1_PASSWORD}}
""")
        refused = mimctl("--db", db, "mdm", "test-connection", "Workspace ONE")
    assert works.exit_code == 0, works.output
    assert refused.exit_code == 1
    assert "ws1-wrong-password" not in refused.output
    assert (works.output, refused.output) == snapshot


def test_blackberry_certificate_from_a_pfx_file(mimctl, db, apply_system, tmp_path,
                                                monkeypatch, snapshot) -> None:
    client = pki.credential("bb-cli-test")
    (tmp_path / "client.pfx").write_bytes(client.pfx(b"pfx-password-2Wq"))
    monkeypatch.setenv("BB_PFX_PASSWORD", "pfx-password-2Wq")
    state = BlackBerryState("S12345678", clients={"mim-client": client.certificate})
    with serve(blackberry_app(state)) as uem:
        apply_system("BlackBerry UEM", f"""
listenerType: BlackBerry
baseUrl: {uem.url}
tenantId: S12345678
clientId: mim-client
identityBaseUrl: {uem.url}
authentication: Certificate
clientCertificate: {{file: {tmp_path / 'client.pfx'}}}
certificatePassword: {{env: BB_PFX_PASSWORD}}
""")
        result = mimctl("--db", db, "mdm", "test-connection", "BlackBerry UEM")
    assert result.exit_code == 0, result.output
    assert state.tokens_issued == 1
    assert result.output == snapshot


def test_blackberry_wrong_password(mimctl, db, apply_system, monkeypatch, snapshot) -> None:
    monkeypatch.setenv("BB_PASSWORD", "bb-wrong-password-5Tz")
    state = BlackBerryState("S12345678", users={"mim-admin": "bb-password-7Yh"})
    with serve(blackberry_app(state)) as uem:
        apply_system("BlackBerry UEM", f"""
listenerType: BlackBerry
baseUrl: {uem.url}
tenantId: S12345678
authentication: UserPassword
username: mim-admin
password: {{env: BB_PASSWORD}}
""")
        result = mimctl("--db", db, "mdm", "test-connection", "BlackBerry UEM")
    assert result.exit_code == 1
    assert "bb-wrong-password-5Tz" not in result.output
    assert result.output == snapshot
