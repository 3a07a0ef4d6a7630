"""Shared fixtures: spec trees written to temporary folders, and the CLI."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


@pytest.fixture
def write_tree(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """Write {relative path: YAML text} under a fresh folder (text is dedented) and return it."""

    def write(files: dict[str, str]) -> Path:
        root = tmp_path / "specs"
        for relative, text in files.items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        root.mkdir(exist_ok=True)
        return root

    return write


@pytest.fixture
def mimctl() -> Callable[..., object]:
    """Run the mimctl CLI in-process; returns click's Result."""
    from cli import main

    runner = CliRunner()

    def run(*args: str, **kwargs: object) -> object:
        return runner.invoke(main, [str(a) for a in args], catch_exceptions=False, **kwargs)

    return run
