"""The product's own configuration files, made from the applied configuration.

- A custom card format as the CardDataModel XML file the application server reads, saved as
  ANSI (Windows-1252): the product fails on UTF-8 files.
- The `dnProcessor` block of the provisioning service's appsettings.Production.json: the
  default DN and one `{name, dn}` per certificate policy friendly name.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from specs.card_format import CardFormatSpec

ENCODING = "windows-1252"


def card_data_model(name: str, spec: CardFormatSpec) -> bytes:
    """The CardDataModel XML of a card format, encoded as Windows-1252."""
    root = ET.Element("CardDataModel")
    identity = ET.SubElement(root, "identity")
    ET.SubElement(identity, "name").text = name
    ET.SubElement(identity, "description").text = spec.description
    for container in spec.containers:
        node = ET.SubElement(root, "Container")
        ET.SubElement(node, "Name").text = container.name
        ET.SubElement(node, "ID").text = container.id
        if container.certificate:
            ET.SubElement(node, "Certificate")
        if container.explicit:
            ET.SubElement(node, "Explicit")
        ET.SubElement(node, "Unique").text = "1" if container.unique else "0"
        if container.preserve_container_for_historic:
            ET.SubElement(node, "PreserveContainerForHistoric")
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding=ENCODING, xml_declaration=True) + b"\r\n"


def read_card_data_model(data: bytes) -> tuple[str, CardFormatSpec]:
    """A CardDataModel file back as (name, spec): the inverse of card_data_model."""
    root = ET.fromstring(data)
    identity = root.find("identity")
    name = identity.findtext("name", "") if identity is not None else ""
    description = identity.findtext("description", "") if identity is not None else ""
    containers = [{
        "name": node.findtext("Name", ""), "id": node.findtext("ID", ""),
        "certificate": node.find("Certificate") is not None,
        "explicit": node.find("Explicit") is not None,
        "unique": node.findtext("Unique", "1").strip() == "1",
        "preserveContainerForHistoric": node.find("PreserveContainerForHistoric") is not None}
        for node in root.findall("Container")]
    return name, CardFormatSpec.model_validate({"description": description,
                                                "containers": containers})


def dn_processor(default: str | None, policies: dict[str, str]) -> dict[str, Any]:
    """The appsettings block: {"MyID": {"dnProcessor": {"default", "policy": [...]}}}."""
    block: dict[str, Any] = {}
    if default is not None:
        block["default"] = default
    block["policy"] = [{"name": name, "dn": dn} for name, dn in sorted(policies.items())]
    return {"MyID": {"dnProcessor": block}}
