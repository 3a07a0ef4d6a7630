"""Device: a known mobile device, registered ahead of collection (the AddDevice registration)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from specs.base import Document, Reference, SpecModel


class DeviceSpec(SpecModel):
    """A registered mobile device."""

    serial_number: str = Field(min_length=1, max_length=128,
                               description="Serial number as the app reports it.")
    platform: Literal["ios", "android"] = Field(description="ios or android.")
    owner: str | None = Field(None, description="Person the device belongs to (MyMobilesOnly).")
    model: str | None = Field(None, description="Device model.")
    external_mdm_id: str | None = Field(None, description="The device's id in the MDM.")
    description: str | None = Field(None, description="Free note.")


class Device(Document):
    """A known device."""

    kind: Literal["Device"]
    spec: DeviceSpec

    def references(self) -> Iterator[Reference]:
        if self.spec.owner is not None:
            yield Reference("Person", self.spec.owner, ("spec", "owner"))
