"""BlackBerry UEM connector: looks a device up by UDID through BlackBerry Web Services REST.

The API root is `{baseUrl}/{tenantId}/api/v1`. UserPassword (on premises) trades the account for
a `besng-basic ...` value at `/util/authorization` and sends it verbatim as Authorization;
Certificate gets a 10-minute bearer token from BlackBerry Enterprise Identity with the client
credentials grant and a private_key_jwt client assertion signed with the PFX's key. Either is
cached; a 401 from the API clears it and the call is made once more with a fresh one.

A lookup queries `/devices?query=udid=<udid>` and keeps the records whose `udid` is exactly the
identifier (the query language is the UEM's, the exact match is ours).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from provisioning.mdm.base import (
    Connector,
    MdmAuthError,
    MdmError,
    MdmProtocolError,
    MdmUnavailable,
    Step,
    client_assertion,
    json_body,
    register,
)
from specs.external_system import BlackBerrySystem

PING = "/util/ping"
AUTHORIZATION = "/util/authorization"
DEVICES = "/devices"
DEVICES_TYPE = "application/vnd.blackberry.devices-v1+json"
AUTHORIZATION_REQUEST_TYPE = "application/vnd.blackberry.authorizationrequest-v1+json"
SCOPE = "MDMBWS.All"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEFAULT_TOKEN_LIFETIME = 600.0  # what Enterprise Identity gives client-credentials tokens


@register
class BlackBerryConnector(Connector):
    """BlackBerry UEM: device query by UDID with a besng-basic or bearer Authorization."""

    listener_type = "BlackBerry"
    spec: BlackBerrySystem

    def lookup(self, identifier: str) -> dict[str, Any] | None:
        response = self._api(DEVICES, {"query": f"udid={identifier}"})
        matches = [d for d in self._devices(response) if d.get("udid") == identifier]
        if len(matches) > 1:
            raise MdmProtocolError(self.name, f"GET {DEVICES} answered {len(matches)} devices "
                                              "with the same udid")
        return matches[0] if matches else None

    def test_connection(self) -> list[Step]:
        """Ping, authenticate, query one device; stops at the first step that fails."""
        steps: list[Step] = []
        checks = (("ping", self._ping), ("authentication", self._authenticate),
                  ("device query", self._query_one))
        for what, check in checks:
            try:
                steps.append(Step(what, True, check()))
            except MdmError as error:
                steps.append(Step(what, False, self._paths_only(error.message)))
                break
        return steps

    @property
    def _root(self) -> str:
        return f"{self.spec.base_url.rstrip('/')}/{self.spec.tenant_id}/api/v1"

    @property
    def _token_url(self) -> str:
        return f"{self.spec.identity_base_url.rstrip('/')}/op/tenant/{self.spec.tenant_id}/token"

    @property
    def _authorization_path(self) -> str:
        """Where credentials are traded, as test_connection shows it."""
        if self.spec.authentication == "UserPassword":
            return AUTHORIZATION
        return httpx.URL(self._token_url).path

    def _ping(self) -> str:
        response = self.http.request("GET", self._root + PING)
        answer = response.text.strip()[:80]
        if response.status_code != 200:
            raise MdmUnavailable(self.name, f"GET {PING} answered {response.status_code} "
                                            f"{answer}".rstrip())
        return f"GET {PING} -> 200 {answer}".rstrip()

    def _authenticate(self) -> str:
        self.tokens.clear()
        self._authorization()
        return f"POST {self._authorization_path} -> 200"

    def _query_one(self) -> str:
        response = self._api(DEVICES, {"max": 1})
        self._devices(response)
        return f"GET {DEVICES}?max=1 -> {response.status_code}"

    def _api(self, path: str, params: dict[str, str | int]) -> httpx.Response:
        """GET an API path; on 401 authenticate afresh and try once more."""
        response = self._get(path, params)
        if response.status_code == 401:
            self.tokens.clear()
            response = self._get(path, params)
        self._raise_for_error(response, path)
        return response

    def _get(self, path: str, params: dict[str, str | int]) -> httpx.Response:
        headers = {"Accept": DEVICES_TYPE, "Authorization": self._authorization()}
        return self.http.request("GET", self._root + path, params=params, headers=headers)

    def _authorization(self) -> str:
        if self.spec.authentication == "UserPassword":
            return self.tokens.get(self._basic_authorization)
        return "Bearer " + self.tokens.get(self._bearer_token)

    def _basic_authorization(self) -> tuple[str, float | None]:
        """The besng-basic value /util/authorization gives for the account (no expiry)."""
        body = {"username": self.spec.username,
                "password": base64.b64encode(self.secret("password")).decode("ascii"),
                "provider": "LOCAL"}
        response = self.http.request("POST", self._root + AUTHORIZATION,
                                     content=json.dumps(body).encode(),
                                     headers={"Content-Type": AUTHORIZATION_REQUEST_TYPE})
        if response.status_code in (400, 401):
            raise MdmAuthError(self.name, f"POST {AUTHORIZATION} answered "
                                          f"{response.status_code}: the UEM refused user "
                                          f"{self.spec.username!r} and its password")
        value = response.text.strip()
        if response.status_code != 200 or not value:
            raise MdmProtocolError(self.name, f"POST {AUTHORIZATION} answered "
                                              f"{response.status_code} without an authorization")
        return value, None

    def _bearer_token(self) -> tuple[str, float | None]:
        """A client-credentials token from Enterprise Identity, asserted with the PFX key."""
        credential = self.pkcs12_credential()
        client_id = str(self.spec.client_id)
        form = {"grant_type": "client_credentials", "scope": SCOPE, "client_id": client_id,
                "client_assertion_type": JWT_BEARER,
                "client_assertion": client_assertion(credential, client_id, self._token_url)}
        response = self.http.request("POST", self._token_url, data=form)
        path = self._authorization_path
        if response.status_code in (400, 401):
            raise MdmAuthError(self.name, _answered(response, path, "error",
                                                    "error_description"))
        body = json_body(self.name, response)
        token = body.get("access_token") if isinstance(body, dict) else None
        if response.status_code != 200 or not isinstance(token, str) or not token:
            raise MdmProtocolError(self.name, f"POST {path} answered {response.status_code} "
                                              "without an access_token")
        lifetime = body.get("expires_in")
        if not isinstance(lifetime, int | float):
            lifetime = DEFAULT_TOKEN_LIFETIME
        return token, float(lifetime)

    def _raise_for_error(self, response: httpx.Response, path: str) -> None:
        status = response.status_code
        if status < 400:
            return
        text = _answered(response, path, "id", "message")
        if status == 401:
            raise MdmAuthError(self.name, f"{text} (again after authenticating afresh)")
        if status == 403:
            raise MdmAuthError(self.name, f"{text} (the account lacks the permission)")
        raise MdmProtocolError(self.name, text)

    def _devices(self, response: httpx.Response) -> list[dict[str, Any]]:
        if response.status_code == 204:
            return []
        body = json_body(self.name, response)
        devices = body.get("devices") if isinstance(body, dict) else None
        if not isinstance(devices, list):
            raise MdmProtocolError(self.name, f"GET {DEVICES} answered JSON without devices")
        return [device for device in devices if isinstance(device, dict)]

    def _paths_only(self, message: str) -> str:
        """An error message with the API root and IdP base URL cut down to their paths."""
        for prefix in (self._root, self.spec.identity_base_url.rstrip("/")):
            message = message.replace(prefix, "")
        return message


def _answered(response: httpx.Response, path: str, *keys: str) -> str:
    """`GET /path answered 400: a: b`, from the named fields of a JSON error body (BWS: id,
    message; OAuth: error, error_description) or the start of a body that is not JSON."""
    try:
        body = response.json()
    except ValueError:
        detail = response.text.strip()[:200]
    else:
        fields = body if isinstance(body, dict) else {}
        detail = ": ".join(str(fields[key]) for key in keys if fields.get(key))
    text = f"{response.request.method} {path} answered {response.status_code}"
    return f"{text}: {detail}" if detail else text
