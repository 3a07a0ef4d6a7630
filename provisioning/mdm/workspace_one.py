"""Workspace ONE UEM connector: looks a device up by UDID through the UEM REST API.

Every request carries the API key (`aw-tenant-code` by default) and a versioned Accept header,
and authenticates either with HTTP Basic (UserPassword) or with a client certificate
(Certificate): `Authorization: CMSURL`1 <base64 DER CMS>`, a detached SHA-256 CMS signature
over the request URL's absolute path without the query string, the signer certificate included.

A lookup is two calls: the v1 search by UDID (`/API/mdm/devices?searchby=Udid&id=`) finds the
device's Uuid, and the v2 record (`/API/mdm/devices/{uuid}`, camelCase with nested
`platformInfo` and `enrollmentInfo`) is what restrictions are checked against.
"""

from __future__ import annotations

import base64
from functools import cached_property
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from provisioning.mdm.base import (
    ClientCredential,
    Connector,
    MdmAuthError,
    MdmError,
    MdmProtocolError,
    Step,
    json_body,
    register,
)
from specs.external_system import WorkspaceOneSystem

DEVICES = "/API/mdm/devices"
SEARCH = "/API/mdm/devices/search"
CMS_SCHEME = "CMSURL`1"
DEVICE_NOT_FOUND = 5061
BAD_CREDENTIALS = 1005
BAD_TENANT_CODE = 1013
AUTH_ERRORS: dict[int | None, str] = {
    BAD_CREDENTIALS: "the UEM refused the credentials",
    BAD_TENANT_CODE: "the API key (keyValue) does not identify an organization group",
}


@register
class WorkspaceOneConnector(Connector):
    """Workspace ONE UEM: v1 search by UDID, then the v2 device record."""

    listener_type = "WorkspaceOne"
    spec: WorkspaceOneSystem

    def lookup(self, identifier: str) -> dict[str, Any] | None:
        summary = self._search_by_udid(identifier)
        if summary is None:
            return None
        device_uuid = summary.get("Uuid")
        if not isinstance(device_uuid, str) or not device_uuid:
            raise MdmProtocolError(self.name, f"GET {DEVICES} answered a device without Uuid")
        return self._device(device_uuid)

    def test_connection(self) -> list[Step]:
        try:
            response = self._get(SEARCH, version=1, params={"pagesize": 1})
            self._raise_for_error(response, SEARCH)
        except MdmError as error:
            return [Step("authentication", False, self._without_base_url(error.message))]
        return [Step("authentication", True, f"GET {SEARCH} -> {response.status_code}")]

    def _search_by_udid(self, udid: str) -> dict[str, Any] | None:
        """The v1 (PascalCase) record whose Udid is exactly `udid`, or None."""
        response = self._get(DEVICES, version=1, params={"searchby": "Udid", "id": udid})
        if self._not_found(response):
            return None
        self._raise_for_error(response, DEVICES)
        record = self._record(response, DEVICES)
        return record if record.get("Udid") == udid else None

    def _device(self, device_uuid: str) -> dict[str, Any] | None:
        """The v2 (camelCase) record of the device with this Uuid, or None if it just went."""
        path = f"{DEVICES}/{quote(device_uuid, safe='')}"
        response = self._get(path, version=2)
        if self._not_found(response):
            return None
        self._raise_for_error(response, f"{DEVICES}/{{uuid}}")
        return self._record(response, f"{DEVICES}/{{uuid}}")

    def _get(self, path: str, *, version: int,
             params: dict[str, str | int] | None = None) -> httpx.Response:
        headers = {
            self.spec.key_name: self.secret("keyValue").decode(),
            "Accept": f"application/json;version={version}",
            "Authorization": self._authorization(path),
        }
        return self.http.request("GET", self._url(path), params=params, headers=headers)

    def _url(self, path: str) -> str:
        return self.spec.base_url.rstrip("/") + path

    def _authorization(self, path: str) -> str:
        if self.spec.authentication == "UserPassword":
            pair = f"{self.spec.username}:".encode() + self.secret("password")
            return "Basic " + base64.b64encode(pair).decode("ascii")
        return f"{CMS_SCHEME} {self._cms_signature(httpx.URL(self._url(path)).raw_path)}"

    def _cms_signature(self, raw_path: bytes) -> str:
        """Base64 DER CMS: detached SHA-256 signature over the URL path (no query string)."""
        credential = self._credential
        signed = (pkcs7.PKCS7SignatureBuilder()
                  .set_data(raw_path.split(b"?", 1)[0])
                  .add_signer(credential.certificate, credential.key, hashes.SHA256())
                  .sign(Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature]))
        return base64.b64encode(signed).decode("ascii")

    @cached_property
    def _credential(self) -> ClientCredential:
        return self.pkcs12_credential()

    def _not_found(self, response: httpx.Response) -> bool:
        """True for the UEM's 404 "Device not found" (errorCode 5061), not any 404."""
        return response.status_code == 404 and _error(response)[0] == DEVICE_NOT_FOUND

    def _raise_for_error(self, response: httpx.Response, path: str) -> None:
        status = response.status_code
        if status < 400:
            return
        code, message = _error(response)
        text = f"GET {path} answered {status}"
        text += f" (errorCode {code})" if code is not None else ""
        text += f": {self._redacted(message)}" if message else ""
        if status in (401, 403) or code in AUTH_ERRORS:
            reason = AUTH_ERRORS.get(code, "the UEM refused the request")
            raise MdmAuthError(self.name, f"{reason}; {text}")
        raise MdmProtocolError(self.name, text)

    def _record(self, response: httpx.Response, path: str) -> dict[str, Any]:
        body = json_body(self.name, response)
        if not isinstance(body, dict):
            raise MdmProtocolError(self.name, f"GET {path} answered JSON that is not a device")
        return body

    def _redacted(self, text: str) -> str:
        """Vendor text with the API key and password taken out (error messages echo them)."""
        for key in ("keyValue", "password"):
            secret = self.secrets.get(key, b"").decode(errors="replace")
            if secret:
                text = text.replace(secret, f"<{key}>")
        return text

    def _without_base_url(self, message: str) -> str:
        return self._redacted(message.replace(self.spec.base_url.rstrip("/"), ""))


def _error(response: httpx.Response) -> tuple[int | None, str]:
    """The errorCode and message of a UEM error body (None and "" when it has none)."""
    try:
        body = response.json()
    except ValueError:
        return None, ""
    if not isinstance(body, dict):
        return None, ""
    code = body.get("errorCode")
    return (code if isinstance(code, int) else None), str(body.get("message") or "")
