"""`mimctl render`: the product's CardDataModel XML (ANSI) and dnProcessor block."""

from __future__ import annotations

import json
import shutil

from reconciler.native import card_data_model, read_card_data_model
from specs.card_format import CardFormatSpec
from tests.conftest import EXAMPLES


def test_card_format_is_windows_1252_and_reads_back_the_same(mimctl, engine, database_url,
                                                            tmp_path) -> None:
    root = tmp_path / "specs"
    shutil.copytree(EXAMPLES / "intune-derived-credentials", root)
    formats = root / "badges" / "formats.yaml"
    formats.write_text(formats.read_text().replace("for the Corp badge app.",
                                                   "for the Corp badge app (café, 5 €)."))
    assert mimctl("--db", database_url, "reconcile", "--apply", root, "--yes").exit_code == 0
    out = tmp_path / "Corp Mobile.xml"
    rendered = mimctl("--db", database_url, "render", "card-format", "Corp Mobile", "--out", out)
    assert rendered.exit_code == 0, rendered.output
    data = out.read_bytes()
    assert data.startswith(b"<?xml version='1.0' encoding='windows-1252'?>")
    assert "café, 5 €".encode("cp1252") in data and "café".encode("utf-8") not in data
    name, spec = read_card_data_model(data)
    assert name == "Corp Mobile"
    assert spec.description == "Signing and encryption containers for the Corp badge app " \
        "(café, 5 €)."
    assert [(c.name, c.id, c.certificate, c.unique, c.preserve_container_for_historic)
            for c in spec.containers] == [("Signing", "SIG", True, True, False),
                                          ("Encryption", "ENC", True, True, True)]
    assert b"<PreserveContainerForHistoric />" in data and b"<Unique>1</Unique>" in data

    builtin = mimctl("--db", database_url, "render", "card-format", "Mobile")
    assert builtin.exit_code == 1 and "built into the product" in builtin.output


def test_a_card_format_round_trips_every_flag() -> None:
    spec = CardFormatSpec.model_validate({"description": "", "containers": [
        {"name": "A", "id": "1", "explicit": True, "unique": False},
        {"name": "B", "id": "2", "certificate": True}]})
    assert read_card_data_model(card_data_model("X", spec)) == ("X", spec)


def test_dn_processor_block_lists_the_default_and_each_policy(mimctl, engine,
                                                             database_url) -> None:
    root = EXAMPLES / "intune-derived-credentials"
    assert mimctl("--db", database_url, "reconcile", "--apply", root, "--yes").exit_code == 0
    block = json.loads(mimctl("--db", database_url, "render", "dn-processor").output)
    assert block == {"MyID": {"dnProcessor": {
        "default": "cn=[[People.FullName]], ou=Mobile, o=Corp Example, c=us",
        "policy": [
            {"name": "PIV-D Authentication",
             "dn": "cn=[[People.UserPrincipalName]], ou=[[People.GroupName]], o=Corp Example, "
                   "c=us"},
            {"name": "PIV-D Key Management", "dn": "[[[People.Xu55]]]"}]}}}
