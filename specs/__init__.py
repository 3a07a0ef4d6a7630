"""The spec language of mimctl: one pydantic model per kind of document, and their catalogue.

`KINDS` maps each kind to its document model, in dependency order (a kind only refers to kinds
before it, except Settings, which is read first and refers to a credential profile by name).
"""

from __future__ import annotations

from specs.base import API_VERSION, Document, Reference
from specs.card_format import CardFormat
from specs.card_layout import CardLayout
from specs.certificate_authority import CertificateAuthority
from specs.certificate_policy import CertificatePolicy
from specs.credential_profile import CredentialProfile
from specs.device import Device
from specs.dn_policy import DnPolicy
from specs.external_system import ExternalSystem
from specs.mobile_request import MobileRequest
from specs.person import Person
from specs.role import Role
from specs.settings import Settings

_MODELS: tuple[type[Document], ...] = (
    Settings,
    Role,
    Person,
    CertificateAuthority,
    CertificatePolicy,
    CardFormat,
    CardLayout,
    DnPolicy,
    ExternalSystem,
    CredentialProfile,
    Device,
    MobileRequest,
)


def _kind_of(model: type[Document]) -> str:
    (kind,) = model.model_fields["kind"].annotation.__args__  # type: ignore[union-attr]
    return kind


KINDS: dict[str, type[Document]] = {_kind_of(model): model for model in _MODELS}

__all__ = ["API_VERSION", "KINDS", "Document", "Reference", *(m.__name__ for m in _MODELS)]
