"""The canonical form both sides of a diff are reduced to, and its digest.

A document's canonical form is `{"metadata": {"labels", "annotations"}, "spec": {...}}` with every
default filled in, exactly as stored in a row's `document` column; two objects are equal when
their canonical forms are. The digest identifies a row's content in plans and audit events.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from specs import API_VERSION, KINDS, Document
from specs.base import PROTECT_ANNOTATION

Canonical = dict[str, Any]


def canonical(model: Document) -> Canonical:
    """The canonical form of a validated document."""
    dumped = model.model_dump(mode="json", by_alias=True, include={"metadata", "spec"})
    metadata = dumped["metadata"]
    return {"metadata": {"labels": metadata["labels"], "annotations": metadata["annotations"]},
            "spec": dumped["spec"]}


def digest(document: Canonical) -> str:
    """A stable digest of a canonical form."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def is_protected(document: Canonical) -> bool:
    return document["metadata"]["annotations"].get(PROTECT_ANNOTATION) == "true"


def to_model(kind: str, name: str, document: Canonical) -> Document:
    """Rebuild the model of a canonical form (to follow its references, or to export it)."""
    return KINDS[kind].model_validate({
        "apiVersion": API_VERSION, "kind": kind,
        "metadata": {"name": name, **document["metadata"]}, "spec": document["spec"],
    })
