"""CardFormat: the card data model, i.e. the named containers certificates are stored in."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from specs.base import DisplayNameMetadata, Document, SpecModel, violation

MOBILE_FORMAT = "Mobile"
NO_FORMAT = "None"
SYSTEM_STORE = "System Store"


class Container(SpecModel):
    """One container of the card data model."""

    name: str = Field(min_length=1, max_length=128, description="Container name.")
    id: str = Field(min_length=1, max_length=128, description="Container ID.")
    certificate: bool = Field(False, description="The container holds a certificate.")
    explicit: bool = Field(False, description="Certificates go here only when chosen explicitly.")
    unique: bool = Field(True, description="At most one certificate in the container.")
    preserve_container_for_historic: bool = Field(
        False, description="Keep the container's certificate as historic when replaced.")


class CardFormatSpec(SpecModel):
    """A custom card data model."""

    description: str = Field("", description="Description of the data model.")
    containers: list[Container] = Field(min_length=1, description="The containers.")

    @model_validator(mode="after")
    def _unique_containers(self) -> CardFormatSpec:
        for attribute in ("name", "id"):
            seen: set[str] = set()
            for container in self.containers:
                value = getattr(container, attribute)
                if value in seen:
                    raise violation("MIM308", f"two containers share the {attribute} {value!r}")
                seen.add(value)
        return self


class CardFormat(Document):
    """A card format. `Mobile` (container `System Store`) and `None` are built in."""

    kind: Literal["CardFormat"]
    metadata: DisplayNameMetadata
    spec: CardFormatSpec

    builtin_names: ClassVar[frozenset[str]] = frozenset({MOBILE_FORMAT, NO_FORMAT})


BUILTIN_CONTAINERS: dict[str, tuple[str, ...]] = {
    MOBILE_FORMAT: (SYSTEM_STORE,),
    NO_FORMAT: (),
}

