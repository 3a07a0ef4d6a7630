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
        "Email", description="How the request reaches the person. The collection link always "
        "goes by e-mail, or as a QR code: Email (the code as the profile's notification scheme "
        "says), Sms (the code by SMS), QrCode (the link as a QR code the operator shows, "
        "`mimctl request qr`), ShowCode (the code shown once to the operator, "
        "`mimctl request show --reveal-code`).")
    reason: str | None = Field(None, description="Why (kept with the request and in the audit).")

    @model_validator(mode="after")
    def _device(self) -> MobileRequestSpec:
        if self.kind == "Issue" and self.device is not None:
            raise violation("MIM701", "device applies to Replace, Update and Renew requests, "
                                      "not Issue")
        if self.kind != "Issue" and self.device is None:
            raise violation("MIM701", f"a {self.kind} request needs the device it is for")
        return self


def channels(scheme: str, delivery: str) -> tuple[str, frozenset[str]]:
    """How a request's two messages travel: (link, code channels).

    The link goes by "email" or, with QrCode delivery or scheme None, to the "operator" (a QR
    code or `request show`). The code goes by "email" and/or "sms" — always a message apart
    from the link — or is "shown" once to the operator (ShowCode, or scheme None). Default
    sends the code by e-mail and by SMS (SMS only to people with a cell number).
    """
    link = "operator" if delivery == "QrCode" or scheme == "None" else "email"
    if delivery == "ShowCode" or scheme == "None":
        return link, frozenset({"shown"})
    if delivery == "Sms":
        return link, frozenset({"sms"})
    by_scheme = {"Default": {"email", "sms"}, "MobileOnlyAuthCodeViaEmail": {"email"},
                 "MobileOnlyAuthCodeViaSms": {"sms"}}
    return link, frozenset(by_scheme[scheme])


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
