"""A credential profile's MDM restrictions, checked against what the MDM knows of a device.

Unrestricted makes no call. MustBeRegistered needs an MDM device id, a record in the MDM, and
every required attribute (`a.b=value`, exact and case-sensitive) on that record.
MustNotBeRegistered needs no MDM device id, or no record. A rejection is the manual's REST007;
the decision carries what the audit event records: the system, the identifier looked up and the
condition that failed. An MDM that cannot be reached raises MdmUnavailable, never a decision.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from specs.credential_profile import MdmRestrictions

REJECTION_CODE = "REST007"
_MISSING = object()


@dataclass(frozen=True, slots=True)
class MdmDecision:
    """Whether collection may go on, and why not (for the audit event)."""

    allowed: bool
    status: str
    system: str | None = None
    identifier: str | None = None
    condition: str | None = None  # which condition failed, in words

    def audit_details(self) -> dict[str, Any]:
        return {"code": REJECTION_CODE, "mdmStatus": self.status, "system": self.system,
                "identifier": self.identifier, "condition": self.condition}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def attribute(record: Any, dotted: str) -> Any:
    """The value at a dotted path of a record, or _MISSING.

    Each part matches a key exactly or, failing that, the snake_case form of a camelCase or
    PascalCase key (the manual writes `platform_info.platform_name` for the record's
    `platformInfo.platformName`).
    """
    value = record
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return _MISSING
        if part in value:
            value = value[part]
            continue
        matches = [key for key in value if _snake(key) == part]
        if len(matches) != 1:
            return _MISSING
        value = value[matches[0]]
    return value


def as_text(value: Any) -> str:
    """A record value as the text conditions compare against.

    Booleans read True/False (the product is .NET, whose booleans print so, and the manual's
    example is `jailBroken=False`); null reads null; numbers as written; objects as JSON.
    """
    if isinstance(value, bool):
        return "True" if value else "False"
    if value is None:
        return "null"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def unmet_conditions(record: dict[str, Any], conditions: list[tuple[str, str]]) -> list[str]:
    """The required attributes the record does not meet, each as `field=value (MDM has ...)`."""
    unmet = []
    for field, expected in conditions:
        value = attribute(record, field)
        if value is _MISSING:
            unmet.append(f"{field}={expected} (the MDM record has no {field})")
        elif as_text(value) != expected:
            unmet.append(f"{field}={expected} (the MDM has {as_text(value)!r})")
    return unmet


Lookup = Callable[[str], "dict[str, Any] | None"]


def check(restrictions: MdmRestrictions, mdm_device_id: str | None,
          lookup: Lookup | None) -> MdmDecision:
    """Decide a collection against the profile's restrictions.

    `lookup` is the connector's lookup for `restrictions.external_system` (None when the profile
    is Unrestricted); MdmUnavailable from it propagates.
    """
    status, system = restrictions.status, restrictions.external_system
    if status == "Unrestricted":
        return MdmDecision(True, status)
    identifier = (mdm_device_id or "").strip() or None
    if lookup is None:
        raise ValueError(f"MDM status {status} needs a connector for {system}")
    if status == "MustNotBeRegistered":
        if identifier is None:
            return MdmDecision(True, status, system)
        if lookup(identifier) is None:
            return MdmDecision(True, status, system, identifier)
        return MdmDecision(False, status, system, identifier,
                           "the device is registered in the MDM and must not be")
    if identifier is None:
        return MdmDecision(False, status, system, None,
                           "the device reported no MDM device id and must be registered")
    record = lookup(identifier)
    if record is None:
        return MdmDecision(False, status, system, identifier,
                           "the device is not found in the MDM and must be registered")
    unmet = unmet_conditions(record, restrictions.conditions())
    if unmet:
        return MdmDecision(False, status, system, identifier,
                           "required MDM attributes not met: " + "; ".join(unmet))
    return MdmDecision(True, status, system, identifier)
