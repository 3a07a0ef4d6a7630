"""Progress on a terminal: a bar with counts and rate on stderr; nothing when piped (CI, logs)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

import click

Advance = Callable[[int], None]


@contextmanager
def progress(label: str, total: int, *, stream: TextIO | None = None) -> Iterator[Advance]:
    """Yield `advance(n)`; on a terminal it moves a bar showing done/total and items a second.

    Off a terminal, or for fewer than two items, it shows nothing and costs nothing.
    """
    stream = stream or sys.stderr
    if total < 2 or not stream.isatty():
        yield lambda done: None
        return
    started = time.monotonic()
    state = {"done": 0}

    def rate(_item: object) -> str:
        elapsed = max(time.monotonic() - started, 1e-6)
        return f"{state['done'] / elapsed:,.1f}/s"

    with click.progressbar(length=total, label=label, file=stream, show_pos=True,
                           show_percent=False, item_show_func=rate) as bar:
        def advance(done: int) -> None:
            state["done"] += done
            bar.update(done, current_item=state["done"])

        yield advance
