"""MobileRequest: an intent to issue (or replace, update, renew) a person's mobile ID."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field, model_validator

from specs.base import Document, Reference, SpecModel, violation

RequestKind = Literal["Issue", "Replace", "Update", "Renew"]
Delivery = Literal["Email", "Sms", "QrCode", "ShowCode"]


class MobileRequestSpec(SpecModel):
    """A pending request for a mobile ID."""

    person: str = Field(description="The Person who receives the mobile ID.")
    credential_profile: str = Field(description="The CredentialProfile to issue.")
    kind: RequestKind = Field(
        "Issue", description="Issue a new mobile ID, or Replace / Update / Renew a device's.")
    device: str | None = Field(
        None, description="The device to replace, update or renew (not for Issue).")
    requested_by: str | None = Field(
        None, description="The Person making the request; defaults to the applying actor.")
    delivery: Delivery = Field(
        "Email", description="How the collection link reaches the person: Email, Sms, QrCode "
        "(shown to the operator) or ShowCode (the operator reads out the code).")
    reason: str | None = Field(None, description="Why (kept with the request and in the audit).")

    @model_validator(mode="after")
    def _device(self) -> MobileRequestSpec:
        if self.kind == "Issue" and self.device is not None:
            raise violation("MIM701", "device applies to Replace, Update and Renew requests, "
                                      "not Issue")
        if self.kind != "Issue" and self.device is None:
            raise violation("MIM701", f"a {self.kind} request needs the device it is for")
        return self


class MobileRequest(Document):
    """A pending request."""

    kind: Literal["MobileRequest"]
    spec: MobileRequestSpec

    def references(self) -> Iterator[Reference]:
        yield Reference("Person", self.spec.person, ("spec", "person"))
        yield Reference("CredentialProfile", self.spec.credential_profile,
                        ("spec", "credentialProfile"))
        if self.spec.requested_by is not None:
            yield Reference("Person", self.spec.requested_by, ("spec", "requestedBy"))
