"""Applies in separate processes: killed mid-way, and two at once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import func, select

from reconciler.apply import apply_plan
from reconciler.db.models import KIND_TABLES, audit_events
from reconciler.reconcile import plan_path
from reconciler.state import read_state
from tests.conftest import ROOT
from tests.test_reconcile import people_files


@contextmanager
def child_apply(url: str, specs: Path, pause_after: int, release: Path,
                lock_timeout: float = 5.0) -> Iterator[subprocess.Popen[str]]:
    """tests/apply_child.py in its own process; killed and reaped when the block ends."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.apply_child", url, str(specs), str(pause_after),
         str(release), str(lock_timeout)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=30)


def wait_for(child: subprocess.Popen[str], word: str, seconds: float = 60) -> str:
    deadline = time.monotonic() + seconds
    assert child.stdout is not None
    while time.monotonic() < deadline:
        line = child.stdout.readline()
        if line.strip() == word or line.startswith(word):
            return line.strip()
        if not line and child.poll() is not None:
            raise AssertionError(f"child ended ({child.returncode}): {child.stderr.read()}")
    raise AssertionError(f"child did not print {word} in {seconds}s")


def counts(engine) -> dict[str, int]:
    with engine.connect() as connection:
        found = {kind: connection.execute(select(func.count()).select_from(t.table)).scalar()
                 for kind, t in KIND_TABLES.items()}
        found["audit"] = connection.execute(select(func.count()).select_from(audit_events)).scalar()
    return found


def test_apply_killed_midway_leaves_the_old_state_and_a_rerun_converges(
        engine, database_url, write_tree, tmp_path) -> None:
    specs = write_tree(people_files(300))
    with engine.connect() as connection:
        before = read_state(connection)
    before_counts = counts(engine)

    # Pause after the people rows were inserted (roles, then people), then die.
    with child_apply(database_url, specs, pause_after=2, release=tmp_path / "never") as child:
        wait_for(child, "PAUSED")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    with engine.connect() as connection:
        after = read_state(connection)
    assert after.fingerprint == before.fingerprint
    assert counts(engine) == before_counts

    planned = plan_path(specs, engine)
    assert planned.plan is not None
    apply_plan(engine, planned.plan, actor="test", timeout=30)
    again = plan_path(specs, engine)
    assert again.plan is not None and again.plan.operations == []
    assert counts(engine)["Person"] == 300


def test_two_applies_at_once_one_waits_or_fails_clearly_and_nothing_is_written_twice(
        engine, database_url, write_tree, tmp_path) -> None:
    specs = write_tree(people_files(40))
    never, release = 10**6, tmp_path / "release"
    with child_apply(database_url, specs, pause_after=1, release=release) as first:
        wait_for(first, "PAUSED")  # holds the lock, mid-apply
        # The second apply gives up quickly and says who holds the lock.
        with child_apply(database_url, specs, never, release, lock_timeout=0.5) as impatient:
            message = wait_for(impatient, "ERROR")
            assert impatient.wait(timeout=30) == 1
        assert "mimctl apply by child" in message
        assert "--lock-timeout" in message
        # A patient one, planned before the first commits, waits for the lock and then finds
        # its creates already done: it writes nothing.
        with child_apply(database_url, specs, never, release, lock_timeout=60) as patient:
            wait_for(patient, "PLANNED")
            release.touch()
            assert wait_for(first, "APPLIED") == "APPLIED"
            outcome = wait_for(patient, "ERROR")
            assert patient.wait(timeout=30) == 1
        assert "was created since the plan was made" in outcome
        assert "Nothing was applied" in outcome
    found = counts(engine)
    assert found["Person"] == 40 and found["Role"] == 1
    assert found["audit"] == 41
