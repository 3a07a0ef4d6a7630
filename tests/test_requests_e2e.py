"""End to end: apply a request, flush the outbox into a real SMTP server, read what arrived."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import MetaData, select

from reconciler.db import codes, outbox, vault
from reconciler.db.models import request_jobs
from tests.conftest import TEST_MASTER_KEY
from tests.rules.base import changed, write
from tests.servers.smtp import SmtpSink

KEY = vault.MasterKey.parse(TEST_MASTER_KEY)
CODE = re.compile(r"code(?: for collecting your mobile ID is)?: (?:<strong>)?(\d+ \d+)")


def files_for(sink: SmtpSink) -> dict[str, str]:
    return changed({"systems.yaml": ("  host: smtp.example.com\n",
                                     f"  host: {sink.host}\n  port: {sink.port}\n"
                                     "  security: 'None'\n")})


def flush(engine, now: datetime):
    from provisioning.notify import flush as run

    return run(engine, KEY, now=now)


def everything_in(engine) -> str:
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.connect() as connection:
        return "\n".join(repr(row) for table in metadata.sorted_tables
                         for row in connection.execute(table.select()))


def test_link_and_code_arrive_apart_and_the_code_is_nowhere_else(
        mimctl, engine, database_url, tmp_path, caplog) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    with SmtpSink() as sink:
        root = write(tmp_path / "specs", files_for(sink))
        planned = mimctl("--db", database_url, "reconcile", "--plan", root)
        applied = mimctl("--db", database_url, "reconcile", "--apply", root, "--yes")
        assert applied.exit_code == 0, applied.output
        flushed = mimctl("--db", database_url, "notify", "flush")
        assert flushed.exit_code == 0, flushed.output
        received = sink.received

    link_mail = [m for m in received
                 if m.message["Subject"] == "Your mobile ID is ready to collect"]
    code_sms = [m for m in received if m.rcpt_tos == ("00447700900123@sms.example.com",)]
    code_mail = [m for m in received
                 if m.message["Subject"] == "Your mobile ID authentication code"]
    assert len(link_mail) == len(code_sms) == len(code_mail) == 1 and len(received) == 3

    with engine.connect() as connection:
        job = connection.execute(select(request_jobs)).one()
    link_body = link_mail[0].message.get_body(("html",)).get_content()
    assert f"https://mim.example.com/collect/{job.token}" in link_body
    assert not CODE.search(link_body)

    sms_text = code_sms[0].message.get_body(("plain",)).get_content()
    match = CODE.search(sms_text)
    assert match, sms_text
    shown = match[1]
    code = codes.normalize(shown)
    assert job.token not in sms_text
    with engine.begin() as connection:
        pepper = codes.pepper(connection, KEY, datetime.now(UTC))
    assert codes.matches(pepper, job.code_hash, code)
    assert CODE.search(code_mail[0].message.get_body(("plain",)).get_content())[1] == shown

    ours = "\n".join(record.getMessage() for record in caplog.records
                     if not record.name.startswith("mail.log"))  # not the SMTP server's own
    for where in (planned.output, applied.output, flushed.output, everything_in(engine), ours):
        assert code not in where and shown not in where


def test_smtp_down_loses_nothing_and_delivers_each_message_once(
        mimctl, engine, database_url, tmp_path) -> None:
    with SmtpSink() as sink:
        root = write(tmp_path / "specs", files_for(sink))
        assert mimctl("--db", database_url, "reconcile", "--apply", root, "--yes").exit_code == 0
        sink.stop()
        now = datetime.now(UTC)
        down = flush(engine, now)
        assert (down.sent, down.failed) == (0, 3)
        with engine.connect() as connection:
            waiting = outbox.unsent(connection)
        assert [(m.status, m.attempts) for m in waiting] == [("pending", 1)] * 3

        sink.start()
        early = flush(engine, now + timedelta(seconds=5))
        assert (early.sent, early.failed) == (0, 0)
        later = flush(engine, now + outbox.backoff(1) + timedelta(seconds=1))
        assert (later.sent, later.failed) == (3, 0)
        again = flush(engine, now + timedelta(hours=2))
        assert again.sent == 0
        ids = sink.message_ids()
    assert len(ids) == len(set(ids)) == 3


def test_the_running_service_sends_the_outbox_by_itself(
        mimctl, engine, database_url, tmp_path) -> None:
    import time

    from tests.collect_support import service

    with SmtpSink() as sink:
        root = write(tmp_path / "specs", files_for(sink))
        assert mimctl("--db", database_url, "reconcile", "--apply", root, "--yes").exit_code == 0
        assert sink.received == []
        with service(database_url, NOTIFY_INTERVAL=0.2) as client:
            assert client.get("/collect/not-a-token").status_code == 404  # the first request
            deadline = time.monotonic() + 20
            while len(sink.received) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # a few more runs of the sender: nothing is sent twice
        ids = sink.message_ids()
    assert len(ids) == len(set(ids)) == 3
    with engine.connect() as connection:
        assert outbox.unsent(connection) == []
