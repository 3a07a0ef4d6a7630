"""DnPolicy: the subject DN template for the certificates of one certificate policy."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import Field, model_validator

from specs.base import Document, Reference, SpecModel


class DnPolicySpec(SpecModel):
    """A DN template: text with [[People.Field]] (escaped) or [[[People.Field]]] (raw)."""

    certificate_policy: str | None = Field(
        None, description="Friendly name of the certificate policy this DN is for.")
    default: bool = Field(
        False, description="Use this DN for every certificate policy without a DN policy.")
    dn: str = Field(
        min_length=1,
        description="DN template, e.g. cn=[[People.UserPrincipalName]], o=Users, c=uk.")

    @model_validator(mode="after")
    def _target(self) -> DnPolicySpec:
        if self.default == (self.certificate_policy is not None):
            raise ValueError("give either certificatePolicy or default: true, not both or neither")
        return self


class DnPolicy(Document):
    """A DN policy."""

    kind: Literal["DnPolicy"]
    spec: DnPolicySpec

    def references(self) -> Iterator[Reference]:
        if self.spec.certificate_policy is not None:
            yield Reference("CertificatePolicy", self.spec.certificate_policy,
                            ("spec", "certificatePolicy"), key="friendlyName")
