"""Progress bars: on a terminal (a real pseudo-terminal here), never when output is piped."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

from tests.conftest import EXAMPLES, ROOT


def run(args: list[str], database_url: str, *, terminal: bool) -> str:
    """stderr of `mimctl ARGS`, written to a pseudo-terminal or to a pipe."""
    env = {**os.environ, "MIM_DATABASE_URL": database_url, "COLUMNS": "120"}
    command = [sys.executable, "-m", "cli", *args]
    if not terminal:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        return done.stderr
    main, secondary = pty.openpty()
    with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                          stderr=secondary) as process:
        os.close(secondary)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 4096)
            except OSError:  # the terminal closed with the process
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=120) == 0
    os.close(main)
    return b"".join(chunks).decode(errors="replace")


def test_export_and_apply_show_progress_only_on_a_terminal(mimctl, engine, database_url,
                                                          tmp_path) -> None:
    applying = run(["reconcile", "--apply", str(EXAMPLES / "quickstart"), "--yes"],
                   database_url, terminal=True)
    assert "Applying" in applying and "10/10" in applying and "/s" in applying
    on_terminal = run(["export", "--out", str(tmp_path / "a")], database_url, terminal=True)
    assert "Exporting" in on_terminal and "10/10" in on_terminal
    piped = run(["export", "--out", str(tmp_path / "b")], database_url, terminal=False)
    assert "Exporting" not in piped and piped.startswith("wrote ")
