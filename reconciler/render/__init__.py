"""Renderings of a plan: text for a terminal, json (the plan file's form), markdown for a PR.

Each format is a visitor over the plan's operation objects; none recomputes the diff.
`render(plan, fmt)` picks the renderer from the registry below.
"""

from __future__ import annotations

from typing import Protocol

from reconciler.plan import Plan
from reconciler.render.json_format import render_json
from reconciler.render.markdown import render_markdown
from reconciler.render.text import display_value, render_text


class Renderer(Protocol):
    def __call__(self, plan: Plan, *, color: bool = False) -> str: ...


RENDERERS: dict[str, Renderer] = {
    "text": render_text,
    "json": render_json,
    "markdown": render_markdown,
}
FORMATS: tuple[str, ...] = tuple(RENDERERS)


def render(plan: Plan, fmt: str, *, color: bool = False) -> str:
    """The plan in format `fmt` (one of FORMATS); `color` adds ANSI colour to text only."""
    try:
        renderer = RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown plan format {fmt!r}; use one of {', '.join(FORMATS)}") from None
    return renderer(plan, color=color)


__all__ = ["FORMATS", "RENDERERS", "Renderer", "display_value", "render", "render_json",
           "render_markdown", "render_text"]
