"""Microsoft Intune connector: devices looked up in Microsoft Graph with an Entra app token.

Token: the client-credentials grant at `{loginBaseUrl}/{tenantId}/oauth2/v2.0/token` for the
scope `https://graph.microsoft.com/.default`, authenticated by the app's client secret or by a
client assertion (a PS256 JWT signed with the app's certificate key). The assertion's audience
is the URL of the token endpoint it is posted to: with the default loginBaseUrl exactly what
Entra asks for, `https://login.microsoftonline.com/{tenantId}/oauth2/v2.0/token`; for a
sovereign cloud (or a stand-in) that cloud's own endpoint.

Lookup: an identifier shaped like a GUID is first taken as an Intune managed device id
(`GET /v1.0/deviceManagement/managedDevices/{id}`); when Graph knows no such device, or the
identifier is no GUID, as an Entra device id (`$filter=azureADDeviceId eq '...'`). Graph
silently ignores filters it does not support and then answers with every device, so only
records whose `azureADDeviceId` or `id` equals the identifier count (GUIDs compared without
regard to case, other text exactly); several such records are an error. The app needs the
application permission DeviceManagementManagedDevices.Read.All.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from provisioning.mdm.base import (
    ClientCredential,
    Connector,
    MdmAuthError,
    MdmError,
    MdmProtocolError,
    Step,
    client_assertion,
    json_body,
    register,
)
from specs.external_system import IntuneSystem
from specs.secrets import CertificateRef

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICES_PATH = "/v1.0/deviceManagement/managedDevices"
READ_PERMISSION = "DeviceManagementManagedDevices.Read.All"
MAX_PAGES = 50
MAX_MESSAGE = 300  # characters of a vendor's error text kept in our messages
GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


@register
class IntuneConnector(Connector):
    """Looks devices up in Intune through Microsoft Graph."""

    listener_type = "Intune"
    spec: IntuneSystem
    max_pages: int = MAX_PAGES  # @odata.nextLink pages followed for one filtered lookup

    # --- looking devices up ------------------------------------------------------------------

    def lookup(self, identifier: str) -> dict[str, Any] | None:
        """The managed device with this Intune device id or Entra device id, or None."""
        identifier = identifier.strip()
        if not identifier:
            return None
        if GUID.match(identifier):
            record = self._by_intune_id(identifier)
            if record is not None:
                return record
        return self._by_entra_device_id(identifier)

    def _by_intune_id(self, identifier: str) -> dict[str, Any] | None:
        what = f"GET {DEVICES_PATH}/{{id}}"
        response = self._graph_get(f"{self.devices_url}/{quote(identifier, safe='')}")
        if response.status_code == 404:
            return None
        record = self._graph_json(response, what)
        if not isinstance(record, dict) or not _same(record.get("id"), identifier):
            raise MdmProtocolError(self.name, f"{what} answered no record of this device")
        return record

    def _by_entra_device_id(self, identifier: str) -> dict[str, Any] | None:
        escaped = identifier.replace("'", "''")
        records = self._pages({"$filter": f"azureADDeviceId eq '{escaped}'"})
        matches = [record for record in records
                   if _same(record.get("azureADDeviceId"), identifier)
                   or _same(record.get("id"), identifier)]
        if len(matches) > 1:
            raise MdmProtocolError(self.name, f"{len(matches)} managed devices have this Entra "
                                   "device id; expected at most one")
        return matches[0] if matches else None

    def _pages(self, params: dict[str, str]) -> Iterator[dict[str, Any]]:
        """The records of a device list, following @odata.nextLink for up to max_pages pages."""
        what = f"GET {DEVICES_PATH}"
        url, query = self.devices_url, params
        for _ in range(self.max_pages):
            body = self._graph_json(self._graph_get(url, params=query), what)
            records = body.get("value") if isinstance(body, dict) else None
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise MdmProtocolError(self.name, f"{what} answered without a list of devices")
            yield from records
            next_link = body.get("@odata.nextLink")
            if not next_link:
                return
            url, query = self._graph_link(next_link), None
        raise MdmProtocolError(self.name, f"{what} had more than {self.max_pages} pages")

    def _graph_link(self, link: Any) -> str:
        """An @odata.nextLink, if it points at our Graph (the bearer token goes with it)."""
        graph = urlsplit(self.spec.graph_base_url)
        target = urlsplit(str(link))
        if (target.scheme, target.netloc) != (graph.scheme, graph.netloc):
            raise MdmProtocolError(self.name, f"GET {DEVICES_PATH} answered an @odata.nextLink "
                                   "to another host; not followed")
        return str(link)

    # --- Graph requests ----------------------------------------------------------------------

    @property
    def devices_url(self) -> str:
        return self.spec.graph_base_url.rstrip("/") + DEVICES_PATH

    def _graph_get(self, url: str, params: dict[str, str] | None = None) -> httpx.Response:
        """GET with the app's bearer token; on 401 a new token is fetched and tried once."""
        for _ in range(2):
            token = self.tokens.get(self._request_token)
            response = self.http.request("GET", url, params=params, headers={
                "Authorization": f"Bearer {token}", "Accept": "application/json"})
            if response.status_code != 401:
                return response
            self.tokens.clear()
        raise MdmAuthError(self.name, "Graph refused a new access token: 401 "
                           + _graph_error(response))

    def _graph_json(self, response: httpx.Response, what: str) -> Any:
        """The JSON of a 200 answer; an MdmError saying what Graph said otherwise."""
        status = response.status_code
        if status == 200:
            return json_body(self.name, response)
        error = _graph_error(response)
        if status == 403:
            if READ_PERMISSION.split(".")[0].lower() in error.lower():
                raise MdmAuthError(self.name, f"missing permission {READ_PERMISSION}: grant the "
                                   "app this application permission (Graph answered 403)")
            raise MdmAuthError(self.name, f"{what} answered 403 {error}")
        raise MdmProtocolError(self.name, f"{what} answered {status} {error}")

    # --- Entra token -------------------------------------------------------------------------

    @property
    def token_url(self) -> str:
        tenant = quote(self.spec.tenant_id, safe="")
        return f"{self.spec.login_base_url.rstrip('/')}/{tenant}/oauth2/v2.0/token"

    def _request_token(self) -> tuple[str, float | None]:
        """A new access token and its lifetime in seconds (None when Entra gives none)."""
        form = {"client_id": self.spec.client_id, "scope": GRAPH_SCOPE,
                "grant_type": "client_credentials", **self._client_authentication()}
        response = self.http.request("POST", self.token_url, data=form,
                                     headers={"Accept": "application/json"})
        path = urlsplit(self.token_url).path
        if response.status_code in (400, 401):
            raise MdmAuthError(self.name, self._redacted(
                f"Entra refused the token request: {_entra_error(response)}"))
        if response.status_code != 200:
            raise MdmProtocolError(self.name, f"POST {path} answered {response.status_code}")
        return self._access_token(json_body(self.name, response), path)

    def _access_token(self, body: Any, path: str) -> tuple[str, float | None]:
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise MdmProtocolError(self.name, f"POST {path} answered 200 without an access_token")
        if str(body.get("token_type", "Bearer")).lower() != "bearer":
            raise MdmProtocolError(self.name, f"POST {path} answered a token that is no Bearer")
        try:
            lifetime = float(body["expires_in"])
        except (KeyError, TypeError, ValueError):
            return token, None
        return token, lifetime

    def _client_authentication(self) -> dict[str, str]:
        if self.spec.client_certificate is None:
            return {"client_secret": self._client_secret()}
        assertion = client_assertion(self._credential, self.spec.client_id,
                                     audience=self.token_url)
        return {"client_assertion_type": JWT_BEARER, "client_assertion": assertion}

    def _client_secret(self) -> str:
        try:
            return self.secret("clientSecret").decode("utf-8").strip()
        except UnicodeDecodeError:
            raise MdmAuthError(self.name, "secret clientSecret is not UTF-8 text") from None

    @cached_property
    def _credential(self) -> ClientCredential:
        assert self.spec.client_certificate is not None
        certificate = self._certificate_pem(self.spec.client_certificate.certificate)
        return ClientCredential.from_pem(self.name, certificate,
                                         self.secret("clientCertificate.key"))

    def _certificate_pem(self, reference: CertificateRef) -> bytes:
        if reference.pem is not None:
            return reference.pem.encode("ascii", errors="replace")
        try:
            return Path(str(reference.file)).read_bytes()
        except OSError as error:
            raise MdmAuthError(self.name, f"the client certificate file {reference.file} cannot "
                               f"be read: {error.strerror}") from None

    def _redacted(self, text: str) -> str:
        """Text without the client secret, should a vendor ever echo it."""
        secret = self.secrets.get("clientSecret", b"").decode("utf-8", "replace").strip()
        return text.replace(secret, "[redacted]") if secret else text

    # --- connection test ---------------------------------------------------------------------

    def test_connection(self) -> list[Step]:
        """Fetch a token, then list one device; stops at the first failure, never raises."""
        self.tokens.clear()
        try:
            token, lifetime = self._request_token()
        except MdmError as error:
            return [Step("token", False, self._without_hosts(error.message))]
        self.tokens.get(lambda: (token, lifetime))
        expiry = "no expiry given" if lifetime is None else f"expires in {lifetime:.0f} s"
        steps = [Step("token", True, f"POST {urlsplit(self.token_url).path} -> 200, {expiry}")]
        path = urlsplit(self.devices_url).path
        try:
            self._graph_json(self._graph_get(self.devices_url, params={"$top": "1"}),
                             f"GET {DEVICES_PATH}")
        except MdmError as error:
            return [*steps, Step("graph", False, self._without_hosts(error.message))]
        return [*steps, Step("graph", True, f"GET {path} -> 200")]

    def _without_hosts(self, text: str) -> str:
        """Text with the scheme://host:port of the login and Graph URLs left out."""
        for url in (self.spec.login_base_url, self.spec.graph_base_url):
            parts = urlsplit(url)
            text = text.replace(f"{parts.scheme}://{parts.netloc}", "")
        return text


def _same(value: Any, identifier: str) -> bool:
    """Whether a record's id is the identifier: GUIDs in any case, other text exactly."""
    if not isinstance(value, str):
        return False
    if GUID.match(identifier) and GUID.match(value):
        return value.lower() == identifier.lower()
    return value == identifier


def _first_line(text: Any) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0][:MAX_MESSAGE] if lines else ""


def _entra_error(response: httpx.Response) -> str:
    """`error: first line of error_description` of an Entra error answer."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not body.get("error"):
        return f"{response.status_code} without an Entra error"
    description = _first_line(body.get("error_description"))
    return f"{_first_line(body['error'])}: {description}" if description else str(body["error"])


def _graph_error(response: httpx.Response) -> str:
    """`code: first line of message` of a Graph error envelope."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return "(no Graph error)"
    return f"{_first_line(error.get('code')) or 'error'}: {_first_line(error.get('message'))}"
