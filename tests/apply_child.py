"""A separate process that applies specs and pauses mid-apply, for kill and concurrency tests.

    python -m tests.apply_child DB_URL SPEC_PATH PAUSE_AFTER RELEASE_FILE [LOCK_TIMEOUT]

It prints `PLANNED` once the plan is made. After PAUSE_AFTER INSERT statements inside the apply
transaction it prints `PAUSED` and waits (at most two minutes) until RELEASE_FILE exists, so a
test can kill it there or let it go on. It prints `APPLIED` or `ERROR: <message>` at the end.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from sqlalchemy import event

from reconciler.apply import apply_plan
from reconciler.db.engine import make_engine
from reconciler.errors import MimError
from reconciler.reconcile import plan_path


def main() -> int:
    url, spec_path, pause_after, release_file = sys.argv[1:5]
    lock_timeout = float(sys.argv[5]) if len(sys.argv) > 5 else 5.0
    engine = make_engine(url, lock_timeout=lock_timeout)
    planned = plan_path(Path(spec_path), engine)
    assert planned.plan is not None, planned.report.problems
    print("PLANNED", flush=True)
    inserts = 0

    @event.listens_for(engine, "after_cursor_execute")
    def _pause(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        nonlocal inserts
        if statement.lstrip().upper().startswith("INSERT"):
            inserts += 1
            if inserts == int(pause_after):
                print("PAUSED", flush=True)
                deadline = time.monotonic() + 120
                while not Path(release_file).exists() and time.monotonic() < deadline:
                    time.sleep(0.05)

    try:
        apply_plan(engine, planned.plan, actor="child", timeout=lock_timeout, check_state=False)
    except MimError as error:
        print(f"ERROR: {error}", flush=True)
        return 1
    print("APPLIED", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
