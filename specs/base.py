"""Building blocks shared by every kind: the model base, the document envelope, names, references."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, GetCoreSchemaHandler
from pydantic import GetJsonSchemaHandler
from pydantic_core import core_schema
from pydantic.alias_generators import to_camel

API_VERSION = "mim/v1"

SLUG_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_SLUG_RE = re.compile(SLUG_PATTERN)
# Display names (roles, people, card formats, ...) are what an operator sees in the product; they
# may hold spaces but never a slash (KIND/NAME addresses objects on the command line) or control
# characters, and never lead or trail with whitespace.
DISPLAY_NAME_PATTERN = r"^[^\s/\x00-\x1f\x7f](?:[^/\x00-\x1f\x7f]{0,126}[^\s/\x00-\x1f\x7f])?$"
_DISPLAY_RE = re.compile(DISPLAY_NAME_PATTERN)
MAX_NAME_LENGTH = 128

PROTECT_ANNOTATION = "mim/protect"
IGNORE_RULES_ANNOTATION = "mim/ignore-rules"
KNOWN_ANNOTATIONS = {PROTECT_ANNOTATION, IGNORE_RULES_ANNOTATION}
_RULE_LIST_RE = re.compile(r"^MIM\d{3}(\s*,\s*MIM\d{3})*$")


class SpecModel(BaseModel):
    """Base of every spec model: camelCase keys in YAML, unknown keys rejected."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
    )


def _check_annotations(value: dict[str, str]) -> dict[str, str]:
    for key, text in value.items():
        if not key.startswith("mim/"):
            continue
        if key not in KNOWN_ANNOTATIONS:
            known = ", ".join(sorted(KNOWN_ANNOTATIONS))
            raise ValueError(f"unknown mimctl annotation {key!r}; known: {known}")
        if key == PROTECT_ANNOTATION and text not in ("true", "false"):
            raise ValueError(f'{PROTECT_ANNOTATION} must be "true" or "false", not {text!r}')
        if key == IGNORE_RULES_ANNOTATION and not _RULE_LIST_RE.fullmatch(text):
            raise ValueError(
                f"{IGNORE_RULES_ANNOTATION} must be a comma-separated list of rule ids "
                f"like MIM012,MIM020, not {text!r}"
            )
    return value


class Metadata(SpecModel):
    """Identity of a document: the kind-unique name plus free labels and annotations."""

    name: str = Field(
        description="Unique per kind: lowercase letters, digits and '-' "
        "([a-z0-9]([-a-z0-9]*[a-z0-9])?).",
        pattern=SLUG_PATTERN,
        max_length=63,
    )
    labels: dict[str, str] = Field(default_factory=dict, description="Free key/value labels.")
    annotations: Annotated[dict[str, str], AfterValidator(_check_annotations)] = Field(
        default_factory=dict,
        description="Free notes; the keys mim/protect and mim/ignore-rules have a meaning to "
        "mimctl, other mim/ keys are rejected.",
    )


class DisplayNameMetadata(Metadata):
    """Metadata of kinds the product names with display names (roles, people, layouts, ...)."""

    name: str = Field(  # type: ignore[assignment]
        description="Unique per kind: the name shown in the product; up to 128 characters, "
        "no '/', no leading or trailing spaces.",
        pattern=DISPLAY_NAME_PATTERN,
        max_length=MAX_NAME_LENGTH,
    )


class SingletonMetadata(Metadata):
    """Metadata of the Settings singleton, whose name is always `system`."""

    name: Literal["system"] = Field(  # type: ignore[assignment]
        description="Always 'system': there is one Settings document."
    )


@dataclass(frozen=True, slots=True)
class Reference:
    """A name one document uses to point at another document.

    `path` is the field path of the using value, as in a validation error; `key` is the
    target's field the name is matched against (`name` for metadata.name).
    """

    kind: str
    name: str
    path: tuple[str | int, ...]
    key: str = "name"


class Document(SpecModel):
    """The Kubernetes-shaped envelope every spec document shares."""

    api_version: Literal["mim/v1"] = Field(description="Always mim/v1.")
    kind: str
    metadata: Metadata
    spec: Any

    # Kinds whose objects must also exist without being declared (e.g. built-in card formats).
    builtin_names: ClassVar[frozenset[str]] = frozenset()
    singleton: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return self.metadata.name

    def references(self) -> Iterator[Reference]:
        """Yield every name this document uses from another document."""
        return iter(())


def violation(rule_id: str, message: str) -> ValueError:
    """An error raised while reading a document that the rule catalogue lists as `rule_id`."""
    return ValueError(f"[{rule_id}] {message}")


def unique_items(values: list[Any]) -> list[Any]:
    """Reject a list naming the same thing twice (order is kept: it is the user's)."""
    seen: set[Any] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{value!r} is listed twice")
        seen.add(value)
    return values


class _UniqueItems:
    """Annotation for lists that must not repeat an item (also `uniqueItems` in the schema)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> Any:
        return core_schema.no_info_after_validator_function(unique_items, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any,
                                     handler: GetJsonSchemaHandler) -> dict[str, Any]:
        return {**handler(schema), "uniqueItems": True}


UniqueList = _UniqueItems()


def refs(kind: str, names: list[str], *path: str | int) -> Iterator[Reference]:
    """References to `kind` for each name of a list field at `path`."""
    for index, name in enumerate(names):
        yield Reference(kind, name, (*path, index))
