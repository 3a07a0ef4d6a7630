"""Delivering the outbox through real stand-ins: an aiosmtpd sink and an HTTP SMS gateway.

Systems are applied through `mimctl reconcile --apply` (so their secrets are stored encrypted,
as in production), messages written with `outbox.enqueue`, and time moved by passing `now=`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.engine import Engine

from cli_commands.context import Context
from cli_commands.notify import notify
from provisioning import notify as delivery
from reconciler.db import outbox
from reconciler.db.models import outbox as outbox_table
from reconciler.db.vault import MasterKey
from tests.conftest import EXAMPLE_SECRETS, TEST_MASTER_KEY
from tests.servers.harness import StandIn, closed_port_url, serve
from tests.servers.sms_gateway import SmsGatewayState, sms_gateway_app
from tests.servers.smtp import SmtpSink, client_context

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
SMTP_USER = "mim-notify"
SMTP_PASSWORD = EXAMPLE_SECRETS["SMTP_PASSWORD"]
SMS_TOKEN = "sms-gateway-token-N3p8"
SMS_API_KEY = "sms-api-key-H6j2"
CODE = "4821-7730"  # an authentication code: must never leave the message it is in

LINK = outbox.Message(
    "link", "email", "Corp SMTP", "jdoe@corp.example", "Your mobile ID is ready to collect",
    "Hello Jane,\n\nOpen https://mim.corp.example/collect/tok3n to collect it.\n",
    '<p>Hello Jane,</p><p><a href="https://mim.corp.example/collect/tok3n">collect</a></p>')
CODE_SMS = outbox.Message("code", "sms", "Corp SMTP", "41791234567@sms.corp.example",
                          "Authentication code", f"Your mobile ID authentication code: {CODE}")


# --- Fixtures and helpers --------------------------------------------------------------------

@pytest.fixture
def key() -> MasterKey:
    return MasterKey.parse(TEST_MASTER_KEY)


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink(credentials={SMTP_USER: SMTP_PASSWORD}) as running:
        yield running


@pytest.fixture
def gateway_state() -> SmsGatewayState:
    return SmsGatewayState(token=SMS_TOKEN, api_key=SMS_API_KEY)


@pytest.fixture
def gateway(gateway_state: SmsGatewayState) -> Iterator[StandIn]:
    with serve(sms_gateway_app(gateway_state)) as running:
        yield running


Apply = Callable[..., None]


@pytest.fixture
def apply_systems(mimctl: Any, engine: Engine, database_url: str, write_tree: Any,
                  monkeypatch: pytest.MonkeyPatch) -> Apply:
    """Apply exactly these ExternalSystems ({name: spec YAML}); others are pruned."""
    monkeypatch.setenv("SMS_TOKEN", SMS_TOKEN)
    monkeypatch.setenv("SMS_API_KEY", SMS_API_KEY)

    def apply(**systems: str) -> None:
        files = {"settings.yaml": "apiVersion: mim/v1\nkind: Settings\nmetadata: {name: system}\n"
                                  "spec:\n  auth: {allowUnsafeHttp: true}\n"}
        for index, (name, spec) in enumerate(systems.items()):
            indented = "\n".join(f"  {line}" for line in spec.strip().splitlines())
            files[f"system{index}.yaml"] = (f"apiVersion: mim/v1\nkind: ExternalSystem\n"
                                            f"metadata:\n  name: {name}\nspec:\n{indented}\n")
        root = write_tree(files)
        for stale in root.glob("system*.yaml"):
            if stale.name not in files:
                stale.unlink()
        result = mimctl("--db", database_url, "reconcile", "--apply", root, "--yes")
        assert result.exit_code == 0, result.output

    return apply


def smtp_spec(sink: SmtpSink, *, security: str = "None", login: bool = True,
              enabled: bool = True) -> str:
    credentials = f"username: {SMTP_USER}\npassword: {{env: SMTP_PASSWORD}}\n" if login else ""
    return (f"listenerType: Smtp\nhost: {sink.host}\nport: {sink.port}\nsecurity: '{security}'\n"
            f"{credentials}fromAddress: mobile-id@corp.example\nenabled: {str(enabled).lower()}")


def sms_spec(url: str) -> str:
    return (f"listenerType: HttpSmsGateway\nurl: {url}/sms\n"
            "headers: {X-Client: mimctl}\n"
            "secretHeaders: {X-Api-Key: {env: SMS_API_KEY}}\n"
            "token: {env: SMS_TOKEN}")


def enqueue(engine: Engine, key: MasterKey, *messages: outbox.Message,
            now: datetime = T0) -> list[str]:
    with engine.begin() as connection:
        return outbox.enqueue(connection, key, messages, now)


def rows(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(select(outbox_table).order_by(outbox_table.c.id)))


def utc(moment: datetime) -> datetime:
    """A time read back from the database (naive on SQLite, where it is UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def run_notify(database_url: str, *args: str) -> Result:
    context = Context(database_url=database_url)
    try:
        return CliRunner().invoke(notify, list(args), obj=context, catch_exceptions=False)
    finally:
        context.close()


# --- E-mail and SMS through SMTP -------------------------------------------------------------

def test_link_email_and_code_sms_arrive_once(engine, key, sink, apply_systems) -> None:
    apply_systems(**{"Corp SMTP": smtp_spec(sink)})
    link_id, sms_id = enqueue(engine, key, LINK, CODE_SMS)

    result = delivery.flush(engine, key, now=T0)

    assert (result.sent, result.failed, result.remaining) == (2, 0, 0)
    link, sms = sink.received
    assert link.rcpt_tos == ("jdoe@corp.example",)
    assert link.mail_from == "mobile-id@corp.example"
    assert link.message["To"] == "jdoe@corp.example"
    assert link.message["From"] == "mobile-id@corp.example"
    assert link.message["Subject"] == "Your mobile ID is ready to collect"
    assert link.message_id == f"<{link_id}@mimctl>"
    assert link.message["Date"].datetime == T0
    assert link.message.get_content_type() == "multipart/alternative"
    assert link.message.get_body(("plain",)).get_content() == LINK.text
    html = link.message.get_body(("html",)).get_content()
    assert '<a href="https://mim.corp.example/collect/tok3n">' in html
    assert CODE not in link.message.as_string()

    assert sms.rcpt_tos == ("41791234567@sms.corp.example",)
    assert sms.message["To"] == "41791234567@sms.corp.example"
    assert sms.message["Subject"] == "Authentication code"
    assert sms.message_id == f"<{sms_id}@mimctl>"
    assert sms.message.get_content_type() == "text/plain"
    assert sms.message.get_content().strip() == CODE_SMS.text

    stored = rows(engine)
    assert [(r.status, r.attempts, r.last_error) for r in stored] == [("sent", 1, None)] * 2
    assert all(utc(r.sent_at) == T0 for r in stored)
    again = delivery.flush(engine, key, now=T0 + timedelta(hours=1))
    assert (again.sent, again.failed, again.remaining) == (0, 0, 0)
    assert len(sink.received) == 2


def test_smtp_login_uses_the_stored_password(engine, key, sink, apply_systems) -> None:
    apply_systems(**{"Corp SMTP": smtp_spec(sink)})
    enqueue(engine, key, LINK)

    assert delivery.flush(engine, key, now=T0).sent == 1

    assert sink.logins == [(SMTP_USER, SMTP_PASSWORD, True)]
    assert sink.received[0].login == SMTP_USER


def test_a_refused_login_fails_without_showing_the_password(engine, key, sink, apply_systems,
                                                           monkeypatch) -> None:
    monkeypatch.setenv("SMTP_PASSWORD", "not-the-password-5Tz")
    apply_systems(**{"Corp SMTP": smtp_spec(sink)})
    enqueue(engine, key, CODE_SMS)

    result = delivery.flush(engine, key, now=T0)

    assert result.failed == 1 and not sink.received
    # smtplib tries each mechanism offered (PLAIN, then LOGIN) before giving up.
    assert set(sink.logins) == {(SMTP_USER, "not-the-password-5Tz", False)}
    error = result.failures[0].error
    assert error == f"SMTP 127.0.0.1:{sink.port}: the server refused the login (535 5.7.8)"
    assert rows(engine)[0].last_error == error


def test_a_server_that_requires_login_refuses_anonymous_mail(engine, key, sink,
                                                             apply_systems) -> None:
    apply_systems(**{"Corp SMTP": smtp_spec(sink, login=False)})
    enqueue(engine, key, LINK)

    result = delivery.flush(engine, key, now=T0)

    assert result.failures[0].error.startswith(f"SMTP 127.0.0.1:{sink.port}: the server ")
    assert "530" in result.failures[0].error
    assert not sink.received


def test_smtp_down_then_back_delivers_each_message_once(engine, key, sink,
                                                        apply_systems) -> None:
    apply_systems(**{"Corp SMTP": smtp_spec(sink)})
    ids = enqueue(engine, key, LINK, CODE_SMS)
    sink.stop()

    down = delivery.flush(engine, key, now=T0)

    assert (down.sent, down.failed, down.remaining) == (0, 2, 0)
    assert down.next_retry == T0 + outbox.backoff(1)
    expected_error = f"SMTP 127.0.0.1:{sink.port}: connection refused"
    for row in rows(engine):
        assert (row.status, row.attempts, row.last_error) == ("pending", 1, expected_error)
        assert utc(row.next_attempt_at) == T0 + outbox.backoff(1)
        assert row.claimed_by is None
    assert [f.message_id for f in down.failures] == ids

    sink.start()
    early = delivery.flush(engine, key, now=T0 + outbox.backoff(1) - timedelta(seconds=1))
    assert (early.sent, early.failed, early.remaining) == (0, 0, 2)
    assert sink.received == []

    back = delivery.flush(engine, key, now=T0 + outbox.backoff(1))
    assert (back.sent, back.failed, back.remaining) == (2, 0, 0)
    delivery.flush(engine, key, now=T0 + timedelta(hours=2))
    assert sorted(sink.message_ids()) == sorted(f"<{i}@mimctl>" for i in ids)
    assert [(r.status, r.attempts) for r in rows(engine)] == [("sent", 2)] * 2


def test_failures_back_off_exponentially(engine, key, sink, apply_systems) -> None:
    apply_systems(**{"Corp SMTP": smtp_spec(sink)})
    enqueue(engine, key, LINK)
    sink.stop()
    now = T0
    for attempt in (1, 2, 3):
        assert delivery.flush(engine, key, now=now).failed == 1
        now += outbox.backoff(attempt)
        assert utc(rows(engine)[0].next_attempt_at) == now
    assert rows(engine)[0].attempts == 3
    assert [outbox.backoff(n) for n in (1, 2, 3)] == [timedelta(seconds=s) for s in (30, 60, 120)]


def test_the_limit_leaves_the_rest_waiting(engine, key, sink, apply_systems) -> None:
    apply_systems(**{"Corp SMTP": smtp_spec(sink)})
    enqueue(engine, key, LINK, CODE_SMS)

    first = delivery.flush(engine, key, now=T0, limit=1)
    second = delivery.flush(engine, key, now=T0, limit=1)

    assert [(r.sent, r.remaining) for r in (first, second)] == [(1, 1), (1, 0)]
    assert len(set(sink.message_ids())) == 2


def test_racing_flushers_never_send_a_message_twice(engine, key, sink, apply_systems) -> None:
    apply_systems(**{"Corp SMTP": smtp_spec(sink)})
    messages = [replace(LINK, recipient=f"user{n}@corp.example") for n in range(12)]
    ids = enqueue(engine, key, *messages)
    start = threading.Barrier(3)
    results: list[delivery.FlushResult] = []

    def flusher(name: str) -> None:
        start.wait()
        while True:  # small claims, so the senders interleave
            result = delivery.flush(engine, key, sender=name, now=T0, limit=2)
            if not result.sent + result.failed:
                return
            results.append(result)

    threads = [threading.Thread(target=flusher, args=(f"sender{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sum(r.sent for r in results) == 12 and sum(r.failed for r in results) == 0
    assert sorted(sink.message_ids()) == sorted(f"<{i}@mimctl>" for i in ids)


def test_a_claim_is_not_taken_twice_until_it_times_out(engine, key, sink,
                                                       apply_systems) -> None:
    """A sender that claimed and died: its messages are sent once, after CLAIM_TIMEOUT."""
    apply_systems(**{"Corp SMTP": smtp_spec(sink)})
    enqueue(engine, key, LINK)
    with engine.begin() as connection:
        assert len(outbox.claim(connection, key, sender="died", now=T0)) == 1
    with engine.begin() as connection:
        assert outbox.claim(connection, key, sender="other", now=T0) == []

    assert delivery.flush(engine, key, now=T0 + timedelta(minutes=1)).sent == 0
    later = delivery.flush(engine, key, now=T0 + outbox.CLAIM_TIMEOUT + timedelta(seconds=1))
    assert later.sent == 1 and len(sink.received) == 1


def test_starttls_then_login(engine, key, apply_systems) -> None:
    with SmtpSink(credentials={SMTP_USER: SMTP_PASSWORD}, tls="StartTls") as sink:
        apply_systems(**{"Corp SMTP": smtp_spec(sink, security="StartTls")})
        enqueue(engine, key, LINK)

        untrusted = delivery.flush(engine, key, now=T0)
        trusted = delivery.flush(engine, key, now=T0 + timedelta(minutes=1),
                                 ssl_context=client_context())

    assert untrusted.failures[0].error.startswith(
        f"SMTP 127.0.0.1:{sink.port}: TLS certificate not trusted (")
    assert trusted.sent == 1
    assert sink.logins == [(SMTP_USER, SMTP_PASSWORD, True)]
    assert sink.received[0].message_id.endswith("@mimctl>")


def test_implicit_tls(engine, key, apply_systems) -> None:
    with SmtpSink(credentials={SMTP_USER: SMTP_PASSWORD}, tls="Tls") as sink:
        apply_systems(**{"Corp SMTP": smtp_spec(sink, security="Tls")})
        enqueue(engine, key, CODE_SMS)
        result = delivery.flush(engine, key, now=T0, ssl_context=client_context())

    assert result.sent == 1
    assert sink.received[0].rcpt_tos == ("41791234567@sms.corp.example",)


def test_starttls_refused_by_a_plain_server(engine, key, sink, apply_systems) -> None:
    apply_systems(**{"Corp SMTP": smtp_spec(sink, security="StartTls")})
    enqueue(engine, key, LINK)

    result = delivery.flush(engine, key, now=T0)

    assert result.failures[0].error == (f"SMTP 127.0.0.1:{sink.port}: the server does not "
                                        "offer STARTTLS")


# --- The HTTP SMS gateway --------------------------------------------------------------------

TRICKY = 'Code "4821-7730"\nline two \\ tab\t and ünïcode {number}'


def test_http_sms_gateway_gets_the_filled_template(engine, key, gateway, gateway_state,
                                                   apply_systems) -> None:
    apply_systems(**{"SMS Gateway": sms_spec(gateway.url)})
    enqueue(engine, key, outbox.Message("code", "sms", "SMS Gateway", "+41791234567", "",
                                        TRICKY))

    result = delivery.flush(engine, key, now=T0)

    assert (result.sent, result.failed) == (1, 0)
    (accepted,) = gateway_state.accepted
    expected = ('{"to": "+41791234567", "text": "Code \\"4821-7730\\"\\nline two \\\\ tab\\t '
                'and ünïcode {number}"}')
    assert accepted.body.decode("utf-8") == expected
    assert json.loads(accepted.body) == {"to": "+41791234567", "text": TRICKY}
    assert accepted.headers["Authorization"] == f"Bearer {SMS_TOKEN}"
    assert accepted.headers["X-Api-Key"] == SMS_API_KEY
    assert accepted.headers["X-Client"] == "mimctl"
    assert accepted.headers["Content-Type"] == "application/json"
    assert rows(engine)[0].status == "sent"


def test_a_gateway_error_is_retried(engine, key, gateway, gateway_state,
                                    apply_systems) -> None:
    apply_systems(**{"SMS Gateway": sms_spec(gateway.url)})
    enqueue(engine, key, outbox.Message("code", "sms", "SMS Gateway", "+41791234567", "",
                                        f"Your code: {CODE}"))
    gateway_state.fail(1, 503)

    failed = delivery.flush(engine, key, now=T0)

    assert failed.failures[0].error == "SMS gateway 127.0.0.1: answered HTTP 503"
    row = rows(engine)[0]
    assert (row.status, row.attempts, row.last_error) == (
        "pending", 1, "SMS gateway 127.0.0.1: answered HTTP 503")
    retried = delivery.flush(engine, key, now=T0 + outbox.backoff(1))
    assert retried.sent == 1 and len(gateway_state.accepted) == 1
    assert len(gateway.seen) == 2


@pytest.mark.parametrize("header", ["600", "Mon, 04 May 2026 09:10:00 GMT"])
def test_a_busy_gateway_is_tried_again_when_it_says(engine, key, gateway, gateway_state,
                                                    apply_systems, header) -> None:
    apply_systems(**{"SMS Gateway": sms_spec(gateway.url)})
    enqueue(engine, key, outbox.Message("code", "sms", "SMS Gateway", "+41791234567", "",
                                        f"Your code: {CODE}"))
    gateway_state.fail(1, 429, retry_after=header)  # ten minutes after T0, either way

    failed = delivery.flush(engine, key, now=T0)

    assert failed.failures[0].error == ("SMS gateway 127.0.0.1: answered HTTP 429 "
                                        "(retry after 600 s)")
    assert failed.failures[0].retry_at == T0 + timedelta(minutes=10)  # not the 30 s backoff
    early = delivery.flush(engine, key, now=T0 + outbox.backoff(1))
    assert (early.sent, early.failed, len(gateway.seen)) == (0, 0, 1)
    on_time = delivery.flush(engine, key, now=T0 + timedelta(minutes=10))
    assert on_time.sent == 1 and len(gateway_state.accepted) == 1


def test_a_retry_after_is_never_sooner_than_the_backoff_nor_past_a_day(engine, key, gateway,
                                                                       gateway_state,
                                                                       apply_systems) -> None:
    apply_systems(**{"SMS Gateway": sms_spec(gateway.url)})
    enqueue(engine, key, outbox.Message("code", "sms", "SMS Gateway", "+41791234567", "",
                                        f"Your code: {CODE}"))
    gateway_state.fail(1, 503, retry_after="1")
    assert delivery.flush(engine, key, now=T0).failures[0].retry_at == T0 + outbox.backoff(1)
    gateway_state.fail(1, 503, retry_after="9" * 30)  # beyond what a timedelta holds
    later = T0 + outbox.backoff(1)
    assert delivery.flush(engine, key, now=later).failures[0].retry_at == later + timedelta(
        days=1)


def test_a_wrong_token_is_a_failure(engine, key, gateway, gateway_state,
                                    apply_systems) -> None:
    apply_systems(**{"SMS Gateway": sms_spec(gateway.url)})
    gateway_state.token = "another-token"
    enqueue(engine, key, outbox.Message("code", "sms", "SMS Gateway", "+41791234567", "",
                                        f"Your code: {CODE}"))

    result = delivery.flush(engine, key, now=T0)

    assert result.failures[0].error == "SMS gateway 127.0.0.1: answered HTTP 401"


def test_an_unreachable_gateway_is_a_failure(engine, key, apply_systems) -> None:
    apply_systems(**{"SMS Gateway": sms_spec(closed_port_url())})
    enqueue(engine, key, outbox.Message("code", "sms", "SMS Gateway", "+41791234567", "",
                                        f"Your code: {CODE}"))

    result = delivery.flush(engine, key, now=T0)

    assert result.failures[0].error == "SMS gateway 127.0.0.1: cannot connect (ConnectError)"


def test_an_unexpected_error_fails_one_message_and_names_only_its_class(
        engine, key, gateway, apply_systems, monkeypatch) -> None:
    monkeypatch.setenv("SMS_API_KEY", "ключ")  # not encodable in an HTTP header
    apply_systems(**{"SMS Gateway": sms_spec(gateway.url)})
    enqueue(engine, key, outbox.Message("code", "sms", "SMS Gateway", "+41791234567", "",
                                        f"Your code: {CODE}"))

    result = delivery.flush(engine, key, now=T0)

    assert result.failures[0].error == "failed (UnicodeEncodeError)"
    assert rows(engine)[0].status == "pending"


def test_fill_template_escapes_and_replaces_once() -> None:
    assert delivery.fill_template('{"to":"{number}","m":"{message}"}', '{message}"',
                                  'a"b\nc') == '{"to":"{message}\\"","m":"a\\"b\\nc"}'
    assert delivery.fill_template("to={number}&text={message}", "+41", "hi") == "to=+41&text=hi"


# --- Systems that cannot send ----------------------------------------------------------------

def test_disabled_deleted_and_unsuitable_systems_fail_and_stay_pending(
        engine, key, sink, gateway, apply_systems) -> None:
    apply_systems(**{"Corp SMTP": smtp_spec(sink, enabled=False),
                     "Old SMTP": smtp_spec(sink), "SMS Gateway": sms_spec(gateway.url)})
    apply_systems(**{"Corp SMTP": smtp_spec(sink, enabled=False),
                     "SMS Gateway": sms_spec(gateway.url)})  # deletes Old SMTP
    enqueue(engine, key, LINK, replace(LINK, system="Old SMTP"),
            replace(LINK, system="SMS Gateway"))

    result = delivery.flush(engine, key, now=T0)

    assert [f.error for f in result.failures] == [
        "ExternalSystem 'Corp SMTP' is disabled",
        "no ExternalSystem 'Old SMTP' in the database",
        "HttpSmsGateway 'SMS Gateway' cannot carry a email message"]
    assert [(r.status, r.attempts) for r in rows(engine)] == [("pending", 1)] * 3
    assert not sink.received

    apply_systems(**{"Corp SMTP": smtp_spec(sink)})  # enabled again
    assert delivery.flush(engine, key, now=T0 + outbox.backoff(1)).sent == 1
    assert sink.message_ids() == [f"<{rows(engine)[0].message_id}@mimctl>"]


# --- Secrecy ---------------------------------------------------------------------------------

def test_content_is_never_in_clear_in_the_database(engine, key, sink, apply_systems) -> None:
    apply_systems(**{"Corp SMTP": smtp_spec(sink)})
    enqueue(engine, key, LINK, CODE_SMS)
    sink.stop()
    delivery.flush(engine, key, now=T0)  # failures write last_error

    for row in rows(engine):
        for value in row:
            raw = value if isinstance(value, bytes) else str(value).encode()
            for secret in (CODE, "tok3n", "ready to collect", SMTP_PASSWORD):
                assert secret.encode() not in raw, f"{secret!r} in column value {value!r}"


# --- The commands ----------------------------------------------------------------------------

def test_notify_flush_command(database_url, engine, key, sink, apply_systems) -> None:
    apply_systems(**{"Corp SMTP": smtp_spec(sink)})
    enqueue(engine, key, LINK, CODE_SMS, now=datetime.now(UTC) - timedelta(seconds=1))

    result = run_notify(database_url, "flush")

    assert result.exit_code == 0
    assert result.stdout == "sent 2, failed 0, 0 waiting\n"
    assert result.stderr == ""
    assert len(sink.received) == 2


def test_notify_flush_reports_failures_on_stderr(database_url, engine, key, sink,
                                                 apply_systems) -> None:
    apply_systems(**{"Corp SMTP": smtp_spec(sink)})
    enqueue(engine, key, CODE_SMS, now=datetime.now(UTC) - timedelta(seconds=1))
    sink.stop()

    result = run_notify(database_url, "flush")

    assert result.exit_code == 0
    retry = delivery_retry_text(engine)
    assert result.stdout == f"sent 0, failed 1 (retrying from {retry}), 0 waiting\n"
    assert result.stderr == (
        "failed: message 1 (code by sms) to 41791234567@sms.corp.example via Corp SMTP: "
        f"SMTP 127.0.0.1:{sink.port}: connection refused; retrying from {retry}\n")
    assert CODE not in result.output


def delivery_retry_text(engine: Engine) -> str:
    from cli_commands.notify import iso

    text = iso(rows(engine)[0].next_attempt_at)
    assert text is not None
    return text


def test_notify_list_shows_errors_never_content(database_url, engine, key, sink,
                                                apply_systems) -> None:
    apply_systems(**{"Corp SMTP": smtp_spec(sink)})
    link_id, _ = enqueue(engine, key, LINK, CODE_SMS)
    sink.stop()
    delivery.flush(engine, key, now=T0, limit=1)  # the link fails, the code SMS waits
    error = f"SMTP 127.0.0.1:{sink.port}: connection refused"

    text = run_notify(database_url, "list")
    assert text.exit_code == 0
    assert text.stdout.splitlines() == [
        ("ID  PURPOSE  CHANNEL  SYSTEM     RECIPIENT                     STATUS   ATTEMPTS  "
         "NEXT ATTEMPT          LAST ERROR"),
        ("1   link     email    Corp SMTP  jdoe@corp.example             pending  1         "
         f"2026-05-04T09:00:30Z  {error}"),
        ("2   code     sms      Corp SMTP  41791234567@sms.corp.example  pending  0         "
         "2026-05-04T09:00:00Z"),
        "2 messages waiting"]

    listed = run_notify(database_url, "list", "--format", "json")
    assert listed.exit_code == 0
    document = json.loads(listed.stdout)
    assert document["format_version"] == 1
    first, second = document["messages"]
    assert first == {"id": 1, "message_id": link_id, "job_id": None, "purpose": "link",
                     "channel": "email", "system": "Corp SMTP",
                     "recipient": "jdoe@corp.example", "status": "pending", "attempts": 1,
                     "next_attempt_at": "2026-05-04T09:00:30Z", "last_error": error,
                     "created_at": "2026-05-04T09:00:00Z"}
    assert second["last_error"] is None and second["attempts"] == 0
    for output in (text.output, listed.output):
        for secret in (CODE, "tok3n", "ready to collect", "Authentication code"):
            assert secret not in output


def test_notify_list_when_nothing_waits(database_url, engine) -> None:
    result = run_notify(database_url, "list")
    assert (result.exit_code, result.stdout) == (0, "no messages waiting\n")


def test_notify_help_explains_the_exit_code() -> None:
    result = CliRunner().invoke(notify, ["flush", "--help"])
    assert "the exit code stays 0" in " ".join(result.output.split())


# --- The service's background sender ---------------------------------------------------------

def test_background_sender_sends_and_stops(engine, key, sink, apply_systems) -> None:
    apply_systems(**{"Corp SMTP": smtp_spec(sink)})
    sender = delivery.background_sender(engine, key, interval=30)
    try:
        enqueue(engine, key, LINK, now=datetime.now(UTC) - timedelta(seconds=1))
        sender.wake()
        deadline = time.monotonic() + 10
        while not sink.received and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        sender.stop(timeout=10)
    assert not sender.thread.is_alive()
    assert len(sink.received) == 1
    assert rows(engine)[0].status == "sent"


def test_background_sender_survives_a_failing_flush(tmp_path, caplog) -> None:
    """A flush that fails as a whole (here: a database without the schema) is logged; the
    thread lives on."""
    from reconciler.db.engine import make_engine

    empty = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    sender = delivery.background_sender(empty, MasterKey.parse(TEST_MASTER_KEY), interval=30)
    try:
        deadline = time.monotonic() + 10
        while "flush failed" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.02)
        assert sender.thread.is_alive()
    finally:
        sender.stop(timeout=10)
        empty.dispose()
    assert "flush failed (OperationalError)" in caplog.text


def test_a_message_that_cannot_be_decrypted_does_not_hold_up_the_others(engine, key) -> None:
    """Content sealed under another master key: put back far out, with the reason."""
    now = datetime.now(UTC)
    enqueue(engine, MasterKey(b"\x00" * 32), LINK, now=now - timedelta(seconds=1))
    result = delivery.flush(engine, key, now=now)
    assert result.sent == 0
    [row] = rows(engine)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "cannot be decrypted" in row.last_error
    assert row.next_attempt_at.replace(tzinfo=UTC) >= now + timedelta(minutes=59)

