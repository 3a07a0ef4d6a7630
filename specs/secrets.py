"""Secret and certificate references: how a spec points at key material without holding it.

A secret field is never plaintext. It is `{env: NAME}`, `{file: PATH}` or a value sealed to the
deployment's public key (`enc:v1:...`, made by `mimctl secret seal`). Certificates are public
and may be written inline as PEM or referenced with `{file: PATH}`.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, model_serializer, model_validator
from pydantic_core import PydanticCustomError

SEALED_PREFIX = "enc:v1:"
STORED_KEY = "sensitive"  # {sensitive: <keyed fingerprint>}: a secret as the database keeps it
SEALED_PATTERN = r"^enc:v1:[A-Za-z0-9+/=_.:-]+$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
PEM_CERTIFICATE_PATTERN = r"^-----BEGIN CERTIFICATE-----"

_SEALED_RE = re.compile(SEALED_PATTERN)
_ENV_RE = re.compile(ENV_NAME_PATTERN)

PLAINTEXT_SECRET_MESSAGE = (
    "a secret must not be written in plain text: use {env: NAME} or {file: PATH}, "
    "or seal it with `mimctl secret seal` and paste the enc:v1:... value"
)


def _one_key(value: dict[str, Any], allowed: tuple[str, ...], what: str) -> tuple[str, str]:
    keys = [key for key in value if key in allowed]
    unknown = [key for key in value if key not in allowed]
    if unknown or len(keys) != 1:
        forms = " or ".join(f"{{{key}: ...}}" for key in allowed)
        raise PydanticCustomError("reference_form", "{what} must be exactly one of {forms}",
                                  {"what": what, "forms": forms})
    key = keys[0]
    text = value[key]
    if not isinstance(text, str) or not text:
        raise PydanticCustomError("reference_form", "{key} must be a non-empty string", {"key": key})
    return key, text


class SecretRef(BaseModel):
    """Where a secret comes from: an environment variable, a file, or a sealed value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    env: str | None = None
    file: str | None = None
    sealed: str | None = None
    # How the database stores a secret: a keyed fingerprint (its ciphertext is kept apart).
    stored: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            if _SEALED_RE.fullmatch(value):
                return {"sealed": value}
            if value.startswith(SEALED_PREFIX):
                raise PydanticCustomError("sealed_secret", "sealed value is damaged: "
                                          "re-run `mimctl secret seal`")
            raise PydanticCustomError("plaintext_secret", PLAINTEXT_SECRET_MESSAGE)
        if isinstance(value, dict) and set(value) == {STORED_KEY}:
            return {"stored": value[STORED_KEY]}
        if isinstance(value, dict):
            key, text = _one_key(value, ("env", "file"), "a secret reference")
            if key == "env" and not _ENV_RE.fullmatch(text):
                raise PydanticCustomError("reference_form",
                                          "env must name an environment variable, not {text!r}",
                                          {"text": text})
            return {key: text}
        raise PydanticCustomError("plaintext_secret", PLAINTEXT_SECRET_MESSAGE)

    @model_serializer
    def _dump(self) -> str | dict[str, str]:
        if self.sealed is not None:
            return self.sealed
        if self.env is not None:
            return {"env": self.env}
        if self.stored is not None:
            return {STORED_KEY: self.stored}
        return {"file": str(self.file)}

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        return {
            "description": "A secret: {env: NAME}, {file: PATH} or a sealed enc:v1:... value.",
            "oneOf": [
                {"type": "string", "pattern": SEALED_PATTERN},
                _mapping_schema("env", ENV_NAME_PATTERN),
                _mapping_schema("file"),
            ],
        }

    def __str__(self) -> str:  # never the secret itself
        if self.sealed is not None:
            return "(sealed)"
        if self.stored is not None:
            return "(stored)"
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"


class CertificateRef(BaseModel):
    """A public certificate: inline PEM text or `{file: PATH}`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: str | None = None
    pem: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            if re.match(PEM_CERTIFICATE_PATTERN, value):
                return {"pem": value}
            raise PydanticCustomError(
                "certificate_form",
                "a certificate is inline PEM text (-----BEGIN CERTIFICATE-----...) or {file: PATH}",
            )
        if isinstance(value, dict):
            key, text = _one_key(value, ("file",), "a certificate reference")
            return {key: text}
        raise PydanticCustomError(
            "certificate_form",
            "a certificate is inline PEM text (-----BEGIN CERTIFICATE-----...) or {file: PATH}",
        )

    @model_serializer
    def _dump(self) -> str | dict[str, str]:
        return self.pem if self.pem is not None else {"file": str(self.file)}

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        return {
            "description": "A certificate: inline PEM text or {file: PATH}.",
            "oneOf": [
                {"type": "string", "pattern": PEM_CERTIFICATE_PATTERN},
                _mapping_schema("file"),
            ],
        }


def _mapping_schema(key: str, pattern: str | None = None) -> dict[str, Any]:
    value: dict[str, Any] = {"type": "string", "minLength": 1}
    if pattern:
        value["pattern"] = pattern
    return {"type": "object", "properties": {key: value}, "required": [key],
            "additionalProperties": False}
