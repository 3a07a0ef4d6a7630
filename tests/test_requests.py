"""Pending requests through reconcile: jobs, codes, outbox notifications, cancel, validate."""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select

from reconciler.db import codes, vault
from reconciler.db.engine import make_engine
from reconciler.db.models import audit_events, certificates, devices, outbox, request_jobs
from tests.conftest import TEST_MASTER_KEY
from tests.rules.base import changed, write

KEY = vault.MasterKey.parse(TEST_MASTER_KEY)
SHOW_CODE = {"requests.yaml": ("delivery: Email", "delivery: ShowCode")}


@pytest.fixture
def db(engine, database_url) -> str:
    return database_url


@pytest.fixture
def apply(mimctl, db, tmp_path):
    """Write a spec tree (tests/rules/base.py form) and apply it; returns the CLI result."""
    counter = iter(range(100))

    def run(files: dict[str, str], *extra: str, expect: int = 0):
        root = write(tmp_path / f"specs{next(counter)}", files)
        result = mimctl("--db", db, "reconcile", "--apply", root, "--yes", *extra)
        assert result.exit_code == expect, result.output
        return result

    return run


def rows(database_url: str, table) -> list:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(select(table).order_by(table.c.id)).all()
    finally:
        engine.dispose()


def database_text(database_url: str) -> str:
    from sqlalchemy import MetaData

    engine = make_engine(database_url)
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        text = "\n".join(repr(row) for table in metadata.sorted_tables
                         for row in connection.execute(table.select()))
    engine.dispose()
    return text


def pepper(database_url: str) -> bytes:
    engine = make_engine(database_url)
    with engine.begin() as connection:
        value = codes.pepper(connection, KEY, None)  # type: ignore[arg-type]
    engine.dispose()
    return value


# ---------------------------------------------------------------------------------------------
# Opening a job

def test_applying_a_request_opens_its_job_and_writes_its_notifications(apply, db) -> None:
    result = apply(changed())
    assert ("Requests:\n+ request alice/mobile-standard  MobileRequest/alice-phone"
            in result.output)
    [job] = rows(db, request_jobs)
    assert (job.request_name, job.person_name, job.profile_name, job.kind, job.status,
            job.delivery, job.requested_by) == ("alice-phone", "alice", "mobile-standard",
                                                 "Issue", "pending", "Email", "bob")
    assert job.code_hash.startswith("v1$") and job.code_sealed is None
    assert len(job.token) >= 40 and job.code_attempts == 0
    assert (job.expires_at - job.created_at).days == 7
    messages = rows(db, outbox)
    assert [(m.purpose, m.channel, m.system, m.recipient, m.job_id) for m in messages] == [
        ("link", "email", "Mail", "alice@example.com", job.id),
        ("code", "email", "Mail", "alice@example.com", job.id),
        ("code", "sms", "Mail", "00447700900123@sms.example.com", job.id)]
    [opened] = [e for e in rows(db, audit_events) if e.action == "request-open"]
    assert opened.details["job"] == job.id and opened.details["requested_by"] == "bob"


def test_a_shown_code_is_revealed_once_and_matches_its_hash(apply, db, mimctl) -> None:
    plan = apply(changed(SHOW_CODE))
    [job] = rows(db, request_jobs)
    assert job.code_sealed is not None
    assert [m.purpose for m in rows(db, outbox)] == ["link"]  # the code is not sent

    shown = mimctl("--db", db, "request", "show", "alice-phone", "--reveal-code")
    assert shown.exit_code == 0, shown.output
    [line] = [line for line in shown.output.splitlines() if line.startswith("code")]
    code = line.split()[1] + line.split()[2]  # shown as two groups
    assert codes.satisfies(code, "06-08N") and len(code) == 8
    assert codes.matches(pepper(db), job.code_hash, code)
    assert codes.matches(pepper(db), job.code_hash, f"{code[:4]} {code[4:]}")
    assert not codes.matches(pepper(db), job.code_hash, str(int(code) ^ 1).zfill(8))

    again = mimctl("--db", db, "request", "show", "alice-phone", "--reveal-code")
    assert again.exit_code == 1 and "was already shown" in again.output
    assert rows(db, request_jobs)[0].code_sealed is None
    assert [e.action for e in rows(db, audit_events)][-1] == "code-reveal"
    for text in (plan.output, database_text(db), shown.output.replace(line, "")):
        assert code not in text and f"{code[:4]} {code[4:]}" not in text


def test_an_applied_request_cannot_be_edited(apply, db, mimctl) -> None:
    apply(changed())
    edited = apply(changed(SHOW_CODE), expect=1)
    assert ("requests.yaml:1:1: MobileRequest/alice-phone: an applied request cannot be edited "
            "(spec.delivery changed): remove its document and apply to cancel it, then "
            "request again under a new name") in edited.output
    assert [job.delivery for job in rows(db, request_jobs)] == ["Email"]


def test_removing_a_pending_request_cancels_it_and_withdraws_its_messages(apply, db) -> None:
    apply(changed())
    without = changed(remove=("requests.yaml",))
    result = apply(without)
    assert "Requests:\n- cancel alice/mobile-standard  MobileRequest/alice-phone" in result.output
    [job] = rows(db, request_jobs)
    assert job.status == "canceled" and job.canceled_at is not None and job.request_id is None
    assert rows(db, outbox) == []
    assert "request-cancel" in [e.action for e in rows(db, audit_events)]


def test_no_prune_leaves_a_removed_request_pending_and_says_so(apply, db) -> None:
    apply(changed())
    result = apply(changed(remove=("requests.yaml",)), "--no-prune")
    assert ("- cancel alice/mobile-standard  MobileRequest/alice-phone (not pruned: --no-prune)"
            in result.output)
    assert [job.status for job in rows(db, request_jobs)] == ["pending"]
    assert "request-cancel" not in [e.action for e in rows(db, audit_events)]


def test_a_collected_request_stays_fulfilled_and_does_not_count_as_a_delete(
        apply, db, mimctl, tmp_path) -> None:
    apply(changed())
    engine = make_engine(db)
    with engine.begin() as connection:
        connection.execute(request_jobs.update().values(status="collected"))
    engine.dispose()
    root = write(tmp_path / "gone", changed(remove=("requests.yaml",)))
    plan = mimctl("--db", db, "reconcile", "--plan", root, "--max-deletes", "0")
    assert plan.exit_code == 2, plan.output
    assert ("= fulfilled alice/mobile-standard  MobileRequest/alice-phone (document removed; "
            "the mobile ID stays)") in plan.output
    as_json = json.loads(mimctl("--db", db, "reconcile", "--plan", root, "--format",
                                "json").output)
    assert as_json["operations"][0]["request_status"] == "collected"
    markdown = mimctl("--db", db, "reconcile", "--plan", root, "--format", "markdown").output
    assert "**Requests**\n\n- <code>= fulfilled alice/mobile-standard</code>" in markdown
    applied = mimctl("--db", db, "reconcile", "--apply", root, "--yes", "--max-deletes", "0")
    assert applied.exit_code == 0, applied.output
    assert [job.status for job in rows(db, request_jobs)] == ["collected"]


def test_cancels_count_toward_max_deletes(apply, db, mimctl, tmp_path) -> None:
    apply(changed())
    root = write(tmp_path / "gone", changed(remove=("requests.yaml",)))
    refused = mimctl("--db", db, "reconcile", "--plan", root, "--max-deletes", "0")
    assert refused.exit_code == 1
    assert "the plan deletes 1 objects, more than --max-deletes 0" in refused.output


# ---------------------------------------------------------------------------------------------
# Validation of issuance

VALIDATING = {"profiles.yaml": ("    notificationScheme: Default\n",
                                "    notificationScheme: Default\n    validateIssuance: true\n")}
CAROL = """
    ---
    apiVersion: mim/v1
    kind: Person
    metadata:
      name: carol
    spec:
      fullName: Carol Approver
      email: carol@example.com
      roles: [Helpdesk]
    """


def test_validation_releases_the_code_only_when_a_second_person_approves(apply, db,
                                                                        mimctl) -> None:
    files = changed(VALIDATING)
    files["people.yaml"] += CAROL.replace("\n    ", "\n").lstrip("\n")
    apply(files)
    [job] = rows(db, request_jobs)
    assert job.status == "awaiting-validation" and job.code_hash is None
    assert rows(db, outbox) == []

    own = mimctl("--db", db, "request", "validate", "alice-phone", "--by", "bob")
    assert own.exit_code == 1
    assert "'bob' made request 'alice-phone' and may not validate it" in own.output
    unentitled = mimctl("--db", db, "request", "validate", "alice-phone", "--by", "alice")
    assert unentitled.exit_code == 1
    assert ("'alice' holds no role in canValidate of profile 'mobile-standard' (Helpdesk)"
            in unentitled.output)
    assert rows(db, request_jobs)[0].status == "awaiting-validation"

    approved = mimctl("--db", db, "request", "validate", "alice-phone", "--by", "carol")
    assert approved.exit_code == 0, approved.output
    [job] = rows(db, request_jobs)
    assert (job.status, job.validated_by) == ("pending", "carol") and job.code_hash
    assert [m.purpose for m in rows(db, outbox)] == ["link", "code", "code"]
    twice = mimctl("--db", db, "request", "validate", "alice-phone", "--by", "carol")
    assert twice.exit_code == 1 and "is pending, not awaiting validation" in twice.output


# ---------------------------------------------------------------------------------------------
# Replace, Update, Renew

REPLACE = {"requests.yaml": ("  delivery: Email", "  delivery: Email\n  kind: Replace\n"
                                                  "  device: F2LXK0ABCD12"),
           "roles.yaml": ("workflows: [Request ID,", "workflows: [Request ID, Request "
                                                     "Replacement ID,")}


def test_replace_cancels_the_old_device_and_revokes_its_certificates(apply, db) -> None:
    apply(changed(remove=("requests.yaml",)))
    engine = make_engine(db)
    from datetime import UTC, datetime
    now = datetime.now(UTC)
    with engine.begin() as connection:
        device_id = connection.execute(insert(devices).returning(devices.c.id).values(
            person_name="alice", profile_name="mobile-standard", serial_number="F2LXK0ABCD12",
            platform="ios", status="active", created_at=now, updated_at=now)).scalar()
        connection.execute(insert(certificates).values(
            authority_name="issuing-ca", serial_number="01", device_id=device_id,
            status="good", created_at=now))
    engine.dispose()

    apply(changed(REPLACE))
    [job] = rows(db, request_jobs)
    assert (job.kind, job.device_id, job.status) == ("Replace", device_id, "pending")
    [device] = rows(db, devices)
    assert device.status == "canceled"
    [certificate] = rows(db, certificates)
    assert (certificate.status, certificate.revocation_reason) == ("revoked", "superseded")


def test_replace_of_a_device_the_person_does_not_have_is_refused(apply, db) -> None:
    result = apply(changed(REPLACE), expect=1)
    assert ("MobileRequest/alice-phone: 'alice' has no active device 'F2LXK0ABCD12' (serial "
            "F2LXK0ABCD12) to replace; a device exists once its mobile ID was collected"
            in result.output)
    assert rows(db, request_jobs) == [] and rows(db, outbox) == []


# ---------------------------------------------------------------------------------------------
# Codes

@settings(max_examples=200)
@given(shortest=st.integers(1, 12), extra=st.integers(0, 8))
def test_generated_codes_satisfy_the_complexity(shortest: int, extra: int) -> None:
    complexity = f"{shortest:02d}-{shortest + extra:02d}N"
    code = codes.generate(complexity)
    assert codes.satisfies(code, complexity) and len(code) == shortest + extra
    assert codes.normalize(codes.display(code)) == code


def test_code_digits_are_uniform() -> None:
    """Chi-square over 8,000 digits: 9 degrees of freedom, 99.9% critical value 27.88."""
    digits = Counter("".join(codes.generate("08-08N") for _ in range(1000)))
    expected = 8000 / 10
    chi_square = sum((digits[str(d)] - expected) ** 2 / expected for d in range(10))
    assert set(digits) <= set("0123456789")
    assert chi_square < 27.88
    assert not math.isnan(chi_square)


def test_bad_complexities_are_refused() -> None:
    for bad in ("8-8N", "08-06N", "00-04N", "06-08A"):
        with pytest.raises(ValueError):
            codes.lengths(bad)


def test_state_reads_request_status_in_one_query(apply, engine) -> None:
    apply(changed())
    from sqlalchemy import event

    from reconciler.state import read_state

    statements: list[str] = []
    event.listen(engine, "before_cursor_execute",
                 lambda *args: statements.append(args[2]))
    with engine.connect() as connection:
        state = read_state(connection)
    assert state.request_status == {"alice-phone": "pending"}
    assert sum("request_jobs" in s for s in statements) == 1
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(request_jobs)).scalar() == 1


def test_request_qr_draws_the_collection_link(apply, db, mimctl, tmp_path) -> None:
    from reconciler.db.notices import collection_url
    from tests.qrdecode import png_text, svg_text

    apply(changed({"requests.yaml": ("delivery: Email", "delivery: QrCode")}))
    [job] = rows(db, request_jobs)
    assert [m.purpose for m in rows(db, outbox)] == ["code", "code"]  # the link is the QR
    url = collection_url("https://mim.example.com", job.token)
    for name, read in (("link.png", png_text), ("link.svg", svg_text)):
        made = mimctl("--db", db, "request", "qr", "alice-phone", "--out", tmp_path / name)
        assert made.exit_code == 0, made.output
        assert read((tmp_path / name).read_bytes()) == url
    bad = mimctl("--db", db, "request", "qr", "alice-phone", "--out", tmp_path / "link.jpg")
    assert bad.exit_code == 2 and "name it *.png or *.svg" in bad.output
    missing = mimctl("--db", db, "request", "qr", "nobody", "--out", tmp_path / "x.png")
    assert missing.exit_code == 1 and "no request 'nobody'" in missing.output


def test_request_list_filters(apply, db, mimctl) -> None:
    apply(changed())
    listed = mimctl("--db", db, "request", "list", "--person", "alice", "--format", "json")
    [entry] = json.loads(listed.output)
    assert (entry["request_name"], entry["status"]) == ("alice-phone", "pending")
    none = mimctl("--db", db, "request", "list", "--state", "collected")
    assert none.output == "No requests.\n"
    text = mimctl("--db", db, "request", "list").output.splitlines()
    assert text[0].split() == ["REQUEST", "PERSON", "PROFILE", "KIND", "STATE", "EXPIRES"]
    assert text[1].split()[:5] == ["alice-phone", "alice", "mobile-standard", "Issue", "pending"]
