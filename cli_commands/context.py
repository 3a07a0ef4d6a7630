"""What every mimctl command shares: the database it works on, and small output helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


@dataclass(slots=True)
class Context:
    """What every command shares: where the database is, and the engines opened on it."""

    database_url: str | None = None
    engines: list[Engine] = field(default_factory=list)

    def engine(self, lock_timeout: float = 30.0) -> Engine:
        """An engine on the chosen database, disposed of when the command ends."""
        from reconciler.db.engine import make_engine

        engine = make_engine(self.database_url, lock_timeout=lock_timeout)
        self.engines.append(engine)
        return engine

    def close(self) -> None:
        for engine in self.engines:
            engine.dispose()


pass_context = click.make_pass_decorator(Context)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"
