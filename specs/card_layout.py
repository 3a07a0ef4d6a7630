"""CardLayout: a badge layout a mobile ID can carry (front side only reaches devices)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from specs.base import DisplayNameMetadata, Document, SpecModel

BACK_SUFFIX = "_back"


class TextField(SpecModel):
    """A text element of the badge."""

    name: str = Field(min_length=1, description="Element name.")
    source: str = Field(
        min_length=1,
        description="What it shows: literal text, or a person field such as [[People.FullName]].")
    x: int = Field(0, ge=0, description="Left edge in pixels.")
    y: int = Field(0, ge=0, description="Top edge in pixels.")
    font_size: int = Field(12, ge=4, le=200, description="Font size in points (system font).")
    orientation: Literal["Horizontal", "Vertical"] = Field(
        "Horizontal", description="Text direction; mobile badges show horizontal text only.")


class CardLayoutSpec(SpecModel):
    """A badge layout."""

    description: str | None = Field(None, description="What the layout is for.")
    front_image: str | None = Field(
        None, description="Background image file (.png or .jpg; .jpeg breaks issuance).")
    orientation: Literal["Portrait", "Landscape"] = Field(
        "Portrait", description="Badge orientation; devices show portrait only.")
    text_fields: list[TextField] = Field(default_factory=list, description="Text elements.")


class CardLayout(Document):
    """A card layout, named as in the layout editor; `<name>_back` is a reverse side."""

    kind: Literal["CardLayout"]
    metadata: DisplayNameMetadata
    spec: CardLayoutSpec = Field(default_factory=CardLayoutSpec)

    @property
    def is_back(self) -> bool:
        return self.metadata.name.endswith(BACK_SUFFIX)
