"""The session cap across processes: two gunicorn workers, 4N collects at once, N sessions.

Settings' `identityAgentPolicy.maximumSessionCount` (N > 1) is counted in the database under
one lock (a PostgreSQL advisory lock, SQLite's write lock), so it must hold for every worker
at once: the real service runs under gunicorn in its own process with two workers, 4N phones
collect 4N different requests at the same moment, and exactly N of them get a session; the
others get 503 `session_limit` with a Retry-After, and each answer is in the audit log, whose
hash chain the concurrent workers must not fork. Runs on SQLite, and on PostgreSQL when
MIM_TEST_DATABASE_URL is set.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select, update
from sqlalchemy.engine import Engine

from reconciler.db import audit, jobs
from reconciler.db.models import audit_events, request_jobs, sessions
from tests.collect_support import KEY, deploy, now
from tests.conftest import TEST_MASTER_KEY
from tests.device import SimulatedDevice

CAP = 3
CALLERS = 4 * CAP
BOOT_SECONDS = 30.0


def cap_documents(count: int) -> str:
    """`count` people who may collect mobile-standard, each with a pending ShowCode request."""
    documents = []
    for index in range(count):
        documents.append(f"""\
apiVersion: mim/v1
kind: Person
metadata:
  name: caller-{index:02d}
spec:
  fullName: Caller {index:02d}
  email: caller-{index:02d}@example.com
  group: Engineering
  roles: [PasswordUser]
---
apiVersion: mim/v1
kind: MobileRequest
metadata:
  name: caller-{index:02d}-phone
spec:
  person: caller-{index:02d}
  credentialProfile: mobile-standard
  requestedBy: bob
  delivery: ShowCode
  reason: Session cap test
""")
    return "---\n".join(documents)


@dataclass(frozen=True, slots=True)
class Gunicorn:
    """A running gunicorn: its base URL, and its log (read it into failure messages)."""

    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def gunicorn(database_url: str, workdir: Path) -> Iterator[Gunicorn]:
    """`gunicorn --workers 2 'provisioning.app:create_app()'` on 127.0.0.1, until the block ends.

    Yields once both workers have booted and one has answered; always terminated and reaped.
    """
    workdir.mkdir()
    port = free_port()
    log = workdir / "gunicorn.log"
    env = {**os.environ, "MIM_DATABASE_URL": database_url, "MIM_MASTER_KEY": TEST_MASTER_KEY,
           # gunicorn 25.1+ opens a control socket in $XDG_RUNTIME_DIR (else ~/.gunicorn):
           # keep it in the temporary folder, apart from any other gunicorn on this host.
           "XDG_RUNTIME_DIR": str(workdir)}
    with log.open("w", encoding="utf-8") as sink:
        # Output to a file, not a pipe nobody reads while the workers serve: a full pipe
        # would stall them.
        child = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
             "provisioning.app:create_app()"],
            cwd=workdir, env=env, stdout=sink, stderr=subprocess.STDOUT)
    running = Gunicorn(f"http://127.0.0.1:{port}", log)
    try:
        _wait_until_serving(child, running)
        yield running
    finally:
        child.terminate()
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(timeout=10)


def _wait_until_serving(child: subprocess.Popen[bytes], running: Gunicorn) -> None:
    deadline = time.monotonic() + BOOT_SECONDS
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise AssertionError(f"gunicorn ended ({child.returncode}):\n{running.output()}")
        if running.output().count("Booting worker") >= 2:
            try:
                answer = httpx.get(f"{running.url}/provision/v1/x", timeout=5)
            except httpx.TransportError:
                pass
            else:
                assert answer.status_code == 404, f"{answer.text}\n{running.output()}"
                assert answer.json()["code"] == "not_found", running.output()
                return
        time.sleep(0.1)
    raise AssertionError(f"gunicorn did not serve within {BOOT_SECONDS}s:\n{running.output()}")


@dataclass(frozen=True, slots=True)
class Answer:
    """What one phone got back from its collect."""

    request: str
    status: int
    body: dict[str, Any]
    retry_after: str | None


def collect_at_once(url: str, credentials: dict[str, tuple[str, str]]) -> list[Answer]:
    """One phone per request, each with its own client, all released by one barrier."""
    start = threading.Barrier(len(credentials))

    def collect(index: int, request: str) -> Answer:
        token, code = credentials[request]
        with httpx.Client(base_url=url, timeout=60) as client:
            device = SimulatedDevice(client, serial=f"SIM-{index}")  # its RSA key made first
            start.wait(timeout=60)
            answer = device.collect(token, code)
        return Answer(request, answer.status_code, answer.json(),
                      answer.headers.get("Retry-After"))

    with ThreadPoolExecutor(max_workers=len(credentials)) as pool:
        futures = [pool.submit(collect, index, request)
                   for index, request in enumerate(credentials)]
        return [future.result() for future in futures]


def reveal(engine: Engine, names: list[str]) -> dict[str, tuple[str, str]]:
    """{request: (token, code)}, each code shown once as the operator would read it out."""
    with engine.begin() as connection:
        codes = {name: jobs.reveal_code(connection, KEY, name) for name in names}
        tokens = dict(connection.execute(select(request_jobs.c.request_name, request_jobs.c.token)
                                         .where(request_jobs.c.request_name.in_(names))).all())
    return {name: (tokens[name], codes[name]) for name in names}


def session_states(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        return dict(connection.execute(select(sessions.c.id, sessions.c.state)).all())


def collect_events(engine: Engine) -> list[tuple[str, str, Any]]:
    """(action, request, refusal code) of every collect-start and collect-reject, in order."""
    with engine.connect() as connection:
        found = connection.execute(
            select(audit_events.c.action, audit_events.c.name, audit_events.c.details)
            .where(audit_events.c.action.in_(("collect-start", "collect-reject")))
            .order_by(audit_events.c.id)).all()
    return [(row.action, row.name, row.details.get("code")) for row in found]


def chain_problems(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return audit.verify(connection)


def test_the_cap_holds_across_two_gunicorn_workers(mimctl, engine, database_url,
                                                   tmp_path) -> None:
    deploy(mimctl, database_url, tmp_path, extra=cap_documents(CALLERS), edits={
        "settings.yaml": [("  contentSigning:\n", f"  identityAgentPolicy:\n"
                           f"    maximumSessionCount: {CAP}\n  contentSigning:\n")]})
    names = [f"caller-{index:02d}-phone" for index in range(CALLERS)]
    credentials = reveal(engine, names)

    with gunicorn(database_url, tmp_path / "service") as service:
        answers = collect_at_once(service.url, credentials)
        seen = "\n".join(f"{a.request}: {a.status} {a.body} Retry-After={a.retry_after}"
                         for a in answers) + f"\n--- gunicorn ---\n{service.output()}"

        assert Counter(a.status for a in answers) == {201: CAP, 503: CALLERS - CAP}, seen
        admitted = [a for a in answers if a.status == 201]
        refused = [a for a in answers if a.status == 503]
        for answer in refused:
            assert answer.body["code"] == "session_limit", seen
            assert answer.retry_after is not None and answer.retry_after.isdigit(), seen
            assert int(answer.retry_after) > 0, seen

        opened = session_states(engine)
        assert opened == {a.body["sessionId"]: "open" for a in admitted}, seen
        events = collect_events(engine)
        assert Counter(events) == {
            **{("collect-start", a.request, None): 1 for a in admitted},
            **{("collect-reject", a.request, "session_limit"): 1 for a in refused}}, seen
        assert chain_problems(engine) == [], seen

        # Still full: a refused phone that tries again is refused again, its code still good.
        again = refused[0].request
        with httpx.Client(base_url=service.url, timeout=60) as client:
            retried = SimulatedDevice(client, serial="SIM-again").collect(*credentials[again])
        assert (retried.status_code, retried.json()["code"]) == (503, "session_limit"), \
            f"{retried.text}\n{service.output()}"

        # One session runs out of time: its place is free for the next phone.
        ended = admitted[0].body["sessionId"]
        with engine.begin() as connection:
            connection.execute(update(sessions).where(sessions.c.id == ended).values(
                expires_at=now() - timedelta(minutes=1)))
        with httpx.Client(base_url=service.url, timeout=60) as client:
            freed = SimulatedDevice(client, serial="SIM-freed").collect(*credentials[again])
        assert freed.status_code == 201, f"{freed.text}\n{service.output()}"

    states = session_states(engine)
    assert states[ended] == "expired"
    assert states[freed.json()["sessionId"]] == "open"
    assert Counter(states.values()) == {"open": CAP, "expired": 1}
    assert collect_events(engine)[-2:] == [("collect-reject", again, "session_limit"),
                                           ("collect-start", again, None)]
    assert chain_problems(engine) == []
