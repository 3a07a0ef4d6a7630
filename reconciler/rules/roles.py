"""Rules: roles (see reconciler/rules/__init__.py for the id ranges)."""

from __future__ import annotations

