"""Secrets: sealing, encryption at rest, fingerprints in plans, rotation — through the real CLI."""

from __future__ import annotations

import json
import os
import stat

import pytest
from sqlalchemy import select

from reconciler.db import vault
from reconciler.db.engine import make_engine
from reconciler.db.models import KIND_TABLES, audit_events, secret_values
from reconciler.sealing import SealError, generate_keypair, key_id, seal, unseal
from tests.conftest import TEST_MASTER_KEY

SECRET = "Zq-client-secret-7f3a9"
OTHER_SECRET = "Zq-client-secret-rotated-1b2c"


def intune(client_secret: str) -> dict[str, str]:
    return {"mdm.yaml": f"""
        apiVersion: mim/v1
        kind: ExternalSystem
        metadata:
          name: Intune
        spec:
          listenerType: Intune
          tenantId: contoso
          clientId: app-1
          clientSecret: {client_secret}
        """}


@pytest.fixture
def db(engine, database_url) -> str:
    return database_url


def stored(database_url: str) -> list:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(select(secret_values)).all()
    finally:
        engine.dispose()


def document(database_url: str, name: str = "Intune") -> dict:
    engine = make_engine(database_url)
    try:
        table = KIND_TABLES["ExternalSystem"].table
        with engine.connect() as connection:
            return connection.execute(select(table.c.document).where(table.c.name == name)).scalar()
    finally:
        engine.dispose()


def read_back(database_url: str, key: str = TEST_MASTER_KEY) -> dict[str, bytes]:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return vault.read(connection, vault.MasterKey.parse(key), "ExternalSystem", "Intune")
    finally:
        engine.dispose()


# ---------------------------------------------------------------------------------------------
# Sealing

def test_seal_opens_only_with_its_private_key() -> None:
    private_pem, public_pem = generate_keypair()
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key(private_pem, None)
    public = serialization.load_pem_public_key(public_pem)
    sealed = seal(public, SECRET.encode())
    assert sealed.startswith(f"enc:v1:{key_id(public)}:") and SECRET not in sealed
    assert seal(public, SECRET.encode()) != sealed  # a fresh ephemeral key each time
    assert unseal(private, sealed) == SECRET.encode()

    other = serialization.load_pem_private_key(generate_keypair()[0], None)
    with pytest.raises(SealError, match=f"sealed to key {key_id(public)}, but the private key "
                                        f"given is {key_id(other.public_key())}"):
        unseal(other, sealed)
    damaged = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(SealError, match="damaged"):
        unseal(private, damaged)


def test_keygen_seal_and_plan_with_the_sealed_value(mimctl, db, write_tree, tmp_path,
                                                    monkeypatch) -> None:
    keys = tmp_path / "keys"
    made = mimctl("secret", "keygen", "--out-dir", keys)
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(os.stat(keys / "mim-seal.key").st_mode) == 0o600
    again = mimctl("secret", "keygen", "--out-dir", keys)
    assert again.exit_code == 1 and "already exists" in again.output

    sealed = mimctl("secret", "seal", "--public-key", keys / "mim-seal.pub", input=SECRET + "\n")
    assert sealed.exit_code == 0, sealed.output
    value = sealed.output.strip()
    assert value.startswith("enc:v1:") and SECRET not in value
    root = write_tree(intune(value))

    missing = mimctl("--db", db, "reconcile", "--plan", root)
    assert missing.exit_code == 1
    assert "mdm.yaml:9:17: ExternalSystem/Intune: spec.clientSecret: sealed secrets need the " \
           "deployment's private key: set MIM_SEAL_KEY_FILE" in missing.output

    monkeypatch.setenv("MIM_SEAL_KEY_FILE", str(keys / "mim-seal.key"))
    applied = mimctl("--db", db, "reconcile", "--apply", root, "--yes")
    assert applied.exit_code == 0, applied.output
    assert read_back(db) == {"spec.clientSecret": SECRET.encode()}

    resealed = mimctl("secret", "seal", "--public-key", keys / "mim-seal.pub", input=SECRET)
    write_tree(intune(resealed.output.strip()))
    unchanged = mimctl("--db", db, "reconcile", "--plan", root)
    assert (unchanged.exit_code, unchanged.output) == (
        0, "No changes. The database matches the specs.\n")


# ---------------------------------------------------------------------------------------------
# At rest, in plans, in the audit log

def test_secret_is_encrypted_at_rest_and_compared_by_fingerprint(mimctl, db, write_tree,
                                                                 monkeypatch) -> None:
    monkeypatch.setenv("INTUNE_SECRET", SECRET)
    root = write_tree(intune("{env: INTUNE_SECRET}"))
    created = mimctl("--db", db, "reconcile", "--apply", root, "--yes")
    assert created.exit_code == 0, created.output

    rows = stored(db)
    assert [(r.kind, r.name, r.path) for r in rows] == [("ExternalSystem", "Intune",
                                                         "spec.clientSecret")]
    assert SECRET.encode() not in rows[0].ciphertext
    assert rows[0].key_id == vault.MasterKey.parse(TEST_MASTER_KEY).key_id
    marker = document(db)["spec"]["clientSecret"]
    assert list(marker) == ["sensitive"] and marker["sensitive"].startswith("hmac-sha256:")
    assert read_back(db) == {"spec.clientSecret": SECRET.encode()}

    monkeypatch.setenv("RENAMED", SECRET)  # another variable, same value: nothing to do
    write_tree(intune("{env: RENAMED}"))
    same = mimctl("--db", db, "reconcile", "--plan", root)
    assert same.exit_code == 0, same.output

    monkeypatch.setenv("RENAMED", OTHER_SECRET)
    changed = mimctl("--db", db, "reconcile", "--plan", root)
    assert changed.exit_code == 2
    assert "    ~ spec.clientSecret: (sensitive value changed)\n" in changed.output
    markdown = mimctl("--db", db, "reconcile", "--plan", root, "--format", "markdown")
    assert "~ spec.clientSecret: (sensitive value changed)" in markdown.output
    as_json = json.loads(mimctl("--db", db, "reconcile", "--plan", root, "--format",
                                "json").output)
    change = as_json["operations"][0]["changes"][0]
    assert change == {"op": "change", "path": "spec.clientSecret", "old": "(sensitive)",
                      "new": "(sensitive)"}
    assert as_json["operations"][0]["secrets"] == {"spec.clientSecret": {"env": "RENAMED"}}

    applied = mimctl("--db", db, "reconcile", "--apply", root, "--yes")
    assert applied.exit_code == 0, applied.output
    assert read_back(db) == {"spec.clientSecret": OTHER_SECRET.encode()}
    engine = make_engine(db)
    with engine.connect() as connection:
        update = connection.execute(select(audit_events.c.details).where(
            audit_events.c.action == "update")).scalar()
    engine.dispose()
    assert update["changes"] == [{"op": "change", "path": "spec.clientSecret",
                                  "old": "(sensitive)", "new": "(sensitive)"}]


def test_missing_environment_variable_is_a_problem_at_its_line(mimctl, db, write_tree) -> None:
    root = write_tree(intune("{env: NOT_SET_ANYWHERE}"))
    result = mimctl("--db", db, "reconcile", "--apply", root, "--yes")
    assert result.exit_code == 1
    assert ("mdm.yaml:9:17: ExternalSystem/Intune: spec.clientSecret: environment variable "
            "NOT_SET_ANYWHERE is not set") in result.output
    assert document(db) is None and stored(db) == []


def test_secret_file_relative_to_the_spec_and_missing_file(mimctl, db, write_tree) -> None:
    root = write_tree({**intune("{file: secrets/intune.txt}"),
                       "secrets/intune.txt": SECRET + "\n"})
    applied = mimctl("--db", db, "reconcile", "--apply", root, "--yes")
    assert applied.exit_code == 0, applied.output
    assert read_back(db) == {"spec.clientSecret": SECRET.encode()}  # newline dropped
    (root / "secrets/intune.txt").unlink()
    gone = mimctl("--db", db, "reconcile", "--plan", root)
    assert gone.exit_code == 1
    assert f"cannot read secret file {root / 'secrets/intune.txt'}: No such file" in gone.output


def test_saved_plan_refuses_a_secret_changed_since(mimctl, db, write_tree, tmp_path,
                                                   monkeypatch) -> None:
    monkeypatch.setenv("INTUNE_SECRET", SECRET)
    root = write_tree(intune("{env: INTUNE_SECRET}"))
    saved = tmp_path / "plan.json"
    assert mimctl("--db", db, "reconcile", "--plan", root, "--out", saved).exit_code == 2
    assert SECRET not in saved.read_text()
    monkeypatch.setenv("INTUNE_SECRET", OTHER_SECRET)
    refused = mimctl("--db", db, "reconcile", "--apply", saved)
    assert refused.exit_code == 1
    assert ("ExternalSystem/Intune spec.clientSecret: the secret changed since the plan was "
            "made (or the master key did); make a new plan") in refused.output
    assert document(db) is None and stored(db) == []


def test_stored_form_written_in_a_spec_is_refused(mimctl, db, write_tree) -> None:
    root = write_tree(intune("{sensitive: 'hmac-sha256:00'}"))
    result = mimctl("--db", db, "reconcile", "--plan", root)
    assert result.exit_code == 1
    assert "{sensitive: ...} is how the database keeps a secret" in result.output


# ---------------------------------------------------------------------------------------------
# The master key

def test_rotation_reencrypts_everything_and_plans_stay_clean(mimctl, db, write_tree, tmp_path,
                                                             monkeypatch) -> None:
    monkeypatch.setenv("INTUNE_SECRET", SECRET)
    root = write_tree(intune("{env: INTUNE_SECRET}"))
    assert mimctl("--db", db, "reconcile", "--apply", root, "--yes").exit_code == 0
    before = document(db)["spec"]["clientSecret"]

    new_key_file = tmp_path / "new.key"
    assert mimctl("secret", "new-master-key", "--out", new_key_file).exit_code == 0
    assert stat.S_IMODE(os.stat(new_key_file).st_mode) == 0o600
    new_key = new_key_file.read_text().strip()
    rotated = mimctl("--db", db, "secret", "rotate-master-key", "--new-key-file", new_key_file)
    assert rotated.exit_code == 0, rotated.output
    old_id, new_id = (vault.MasterKey.parse(k).key_id for k in (TEST_MASTER_KEY, new_key))
    assert f"re-encrypted 1 secret under master key {new_id} (was {old_id})" in rotated.output

    assert {row.key_id for row in stored(db)} == {new_id}
    assert read_back(db, new_key) == {"spec.clientSecret": SECRET.encode()}
    with pytest.raises(vault.VaultError, match=f"encrypted with master key {new_id}"):
        read_back(db, TEST_MASTER_KEY)
    assert document(db)["spec"]["clientSecret"] != before  # fingerprint re-keyed

    monkeypatch.setenv("MIM_MASTER_KEY", new_key)
    clean = mimctl("--db", db, "reconcile", "--plan", root)
    assert (clean.exit_code, clean.output) == (0, "No changes. The database matches the specs.\n")
    wrong = mimctl("--db", db, "secret", "rotate-master-key", "--new-key-file", new_key_file)
    assert wrong.exit_code == 1 and "the new master key is the current one" in wrong.output


def test_tampered_ciphertext_is_detected(db, mimctl, write_tree, monkeypatch) -> None:
    monkeypatch.setenv("INTUNE_SECRET", SECRET)
    assert mimctl("--db", db, "reconcile", "--apply", write_tree(intune("{env: INTUNE_SECRET}")),
                  "--yes").exit_code == 0
    engine = make_engine(db)
    with engine.begin() as connection:
        blob = connection.execute(select(secret_values.c.ciphertext)).scalar()
        connection.execute(secret_values.update().values(
            ciphertext=blob[:-1] + bytes([blob[-1] ^ 1])))
    engine.dispose()
    with pytest.raises(vault.VaultError, match="ExternalSystem/Intune/spec.clientSecret cannot "
                                               "be decrypted: it was altered or moved"):
        read_back(db)


def test_embedded_database_makes_its_own_key_file(mimctl, write_tree, tmp_path,
                                                  monkeypatch) -> None:
    monkeypatch.delenv("MIM_MASTER_KEY")
    monkeypatch.setenv("INTUNE_SECRET", SECRET)
    database = tmp_path / "own.sqlite3"
    url = f"sqlite:///{database}"
    root = write_tree(intune("{env: INTUNE_SECRET}"))
    assert mimctl("--db", url, "reconcile", "--apply", root, "--yes").exit_code == 0
    key_file = tmp_path / "own.sqlite3.master-key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert read_back(url, key_file.read_text()) == {"spec.clientSecret": SECRET.encode()}

    rotated = mimctl("--db", url, "secret", "rotate-master-key")
    assert rotated.exit_code == 0, rotated.output
    assert read_back(url, key_file.read_text()) == {"spec.clientSecret": SECRET.encode()}
    assert not (tmp_path / "own.sqlite3.master-key.new").exists()


def test_other_databases_need_a_configured_master_key(monkeypatch) -> None:
    monkeypatch.delenv("MIM_MASTER_KEY")
    with pytest.raises(vault.VaultError, match="set MIM_MASTER_KEY"):
        vault.load_master_key("postgresql+psycopg://postgres@127.0.0.1/test")
    monkeypatch.setenv("MIM_MASTER_KEY", "not base64!")
    with pytest.raises(vault.VaultError, match="is not base64"):
        vault.load_master_key("postgresql+psycopg://postgres@127.0.0.1/test")


def test_credentials_in_plain_http_headers_are_refused(mimctl, write_tree) -> None:
    root = write_tree({"sms.yaml": """
        apiVersion: mim/v1
        kind: ExternalSystem
        metadata:
          name: SMS
        spec:
          listenerType: HttpSmsGateway
          url: https://sms.example/send
          headers:
            X-Api-Key: abc123
        """})
    result = mimctl("validate", root)
    assert result.exit_code == 1
    assert ("header 'X-Api-Key' looks like a credential: move it to secretHeaders as "
            "{env: NAME}, {file: PATH} or a sealed value") in result.output


# ---------------------------------------------------------------------------------------------
# The plaintext never leaves

def _database_text(database_url: str) -> str:
    from sqlalchemy import MetaData

    engine = make_engine(database_url)
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        dump = [repr(row) for table in metadata.sorted_tables
                for row in connection.execute(table.select())]
    engine.dispose()
    return "\n".join(dump)


def test_no_output_of_a_full_run_contains_a_secret(mimctl, db, tmp_path, monkeypatch,
                                                   secret_environment, caplog) -> None:
    import logging
    import shutil

    from tests.conftest import EXAMPLES

    caplog.set_level(logging.DEBUG)
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLES / "intune-derived-credentials", root)
    saved = tmp_path / "plan.json"
    outputs = [
        mimctl("validate", root).output,
        mimctl("validate", root, "--format", "json").output,
        *(mimctl("--db", db, "reconcile", "--plan", root, "--format", fmt).output
          for fmt in ("text", "json", "markdown")),
        mimctl("--db", db, "reconcile", "--plan", root, "--out", saved).output,
        mimctl("--db", db, "reconcile", "--apply", saved).output,
    ]
    for variable in secret_environment:  # every secret changes: plans show them changing
        monkeypatch.setenv(variable, secret_environment[variable] + "-next")
    outputs += [mimctl("--db", db, "reconcile", "--plan", root, "--format", fmt).output
                for fmt in ("text", "json", "markdown")]
    assert "(sensitive value changed)" in outputs[-3]
    outputs.append(mimctl("--db", db, "reconcile", "--apply", root, "--yes").output)
    exported = tmp_path / "exported"
    written = mimctl("--db", db, "export", "--out", exported).output
    assert "secret to fill in: MIM_EXTERNALSYSTEM_INTUNE_PRODUCTION_CLIENTSECRET" in written
    outputs += [mimctl("--db", db, "export").output, written,
                *(path.read_text() for path in sorted(exported.iterdir())),
                mimctl("--db", db, "audit", "log").output,
                mimctl("--db", db, "audit", "log", "--format", "json").output,
                mimctl("--db", db, "audit", "verify").output]
    outputs += [saved.read_text(), _database_text(db), caplog.text]

    everything = "\n".join(outputs)
    for value in secret_environment.values():
        assert value not in everything
        assert value.encode().hex() not in everything  # not even as bytes in a row repr
