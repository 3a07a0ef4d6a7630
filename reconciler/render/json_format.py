"""The plan as JSON: exactly the saved plan file's form (`plan_to_json`, format_version 1).

The schema is documented in `reconciler.plan`; this renderer adds nothing to it, so what
`--format json` prints is what `--out` saves and `reconcile --apply FILE` executes.
"""

from __future__ import annotations

import json

from reconciler.plan import Plan, plan_to_json


def render_json(plan: Plan, *, color: bool = False) -> str:
    """The plan's JSON form, indented; `color` has no effect on JSON."""
    return json.dumps(plan_to_json(plan), indent=2, sort_keys=False) + "\n"
