"""A small, complete and correct configuration every rule test starts from.

`BASE` passes the whole catalogue (tests/rules/test_catalogue.py checks it). A rule test copies
it, breaks one thing (`broken`), and asserts the finding; the same test with the fix applied
must find nothing.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from reconciler.errors import Problem
from reconciler.validate import validate

BASE: dict[str, str] = {
    "settings.yaml": """
        apiVersion: mim/v1
        kind: Settings
        metadata:
          name: system
        spec:
          certificates:
            mobileCertificateRecoveryServiceUrl: https://mim.example.com
          video:
            imageUploadServer: mim.example.com
          general:
            smsEmailNotifications: true
            smsGatewayUrlForNotifications: sms.example.com
          notifications:
            sendEmailNotifications: true
            mailFormat: HTML
          devices:
            mobileProvisionViaEmail: true
          issuanceProcesses:
            appDownloadUrlAndroid: https://play.example.com/identity-agent
            appDownloadUrlIos: https://apps.example.com/identity-agent
          contentSigning:
            authority: issuing-ca
        """,
    "roles.yaml": """
        apiVersion: mim/v1
        kind: Role
        metadata:
          name: PasswordUser
        spec:
          workflows: [Collect My Updates, Issue Device, Request My ID]
          logonMechanisms: [Password]
          scope: Self
        ---
        apiVersion: mim/v1
        kind: Role
        metadata:
          name: Helpdesk
        spec:
          workflows: [Request ID, Unlock Credential, Cancel Credential, Validate Request]
          logonMechanisms: [Password]
          scope: All
        """,
    "pki.yaml": """
        apiVersion: mim/v1
        kind: CertificateAuthority
        metadata:
          name: issuing-ca
        spec:
          subject: CN=Test Issuing CA,O=Example
        ---
        apiVersion: mim/v1
        kind: CertificatePolicy
        metadata:
          name: mobile-signing
        spec:
          friendlyName: Mobile Signing
          authority: issuing-ca
          keyUsages: [digitalSignature]
        ---
        apiVersion: mim/v1
        kind: DnPolicy
        metadata:
          name: default
        spec:
          default: true
          dn: cn=[[People.FullName]], o=Example
        """,
    "systems.yaml": """
        apiVersion: mim/v1
        kind: ExternalSystem
        metadata:
          name: Mail
        spec:
          listenerType: Smtp
          host: smtp.example.com
          fromAddress: mim@example.com
        """,
    "profiles.yaml": """
        apiVersion: mim/v1
        kind: CredentialProfile
        metadata:
          name: mobile-standard
        spec:
          cardEncoding: IdentityAgent
          issuance:
            notificationScheme: Default
          cardFormat: Mobile
          certificates:
            - policy: mobile-signing
              container: System Store
          roles:
            canReceive: [PasswordUser]
            canCollect: [PasswordUser]
            canRequest: [Helpdesk, PasswordUser]
            canValidate: [Helpdesk]
            canUnlock: [Helpdesk]
        """,
    "people.yaml": """
        apiVersion: mim/v1
        kind: Person
        metadata:
          name: alice
        spec:
          fullName: Alice Example
          email: alice@example.com
          cell: "00447700900123"
          userPrincipalName: alice@example.com
          roles: [PasswordUser]
        ---
        apiVersion: mim/v1
        kind: Person
        metadata:
          name: bob
        spec:
          fullName: Bob Operator
          email: bob@example.com
          roles: [Helpdesk]
        """,
    "requests.yaml": """
        apiVersion: mim/v1
        kind: MobileRequest
        metadata:
          name: alice-phone
        spec:
          person: alice
          credentialProfile: mobile-standard
          requestedBy: bob
          delivery: Email
        """,
}


def write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def changed(replace: dict[str, tuple[str, str]] | None = None,
            add: dict[str, str] | None = None, remove: tuple[str, ...] = ()) -> dict[str, str]:
    """BASE with text replaced in some files (each `old` must occur), files added or removed."""
    files = {name: textwrap.dedent(text).lstrip("\n") for name, text in BASE.items()}
    for name, (old, new) in (replace or {}).items():
        assert old in files[name], f"{old!r} is not in {name}"
        files[name] = files[name].replace(old, new)
    for name in remove:
        del files[name]
    files.update({name: textwrap.dedent(text).lstrip("\n") for name, text in (add or {}).items()})
    return files


def problems(root: Path, files: dict[str, str]) -> list[Problem]:
    """Every problem of a repository written under `root` (a fresh folder)."""
    return validate(write(root, files)).problems


def findings(root: Path, files: dict[str, str], rule_id: str) -> list[str]:
    """`file:line:col: kind/name: path: [warning: ]message` of one rule's problems."""
    return [str(p) for p in problems(root, files) if p.code == rule_id]
