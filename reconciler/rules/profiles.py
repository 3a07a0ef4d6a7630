"""Rules: credential profiles, their certificates, card formats and badge layouts (MIM3xx).

"Mobile profile" means a profile with cardEncoding IdentityAgent. An "MDM-derived" profile is one
whose MDM restriction is on (status other than Unrestricted) against an Intune or Workspace ONE
external system (named, or the only enabled MDM system): the MDM's own app receives the
certificates into its own key store.

A name that resolves to no document is the reference check's finding; these rules skip it.
Each check indexes what it needs once, then walks the profiles (or layouts) a single time.
"""

from __future__ import annotations

from collections.abc import Iterator

from reconciler.rules.registry import Finding, RuleContext, rule
from specs.card_format import MOBILE_FORMAT, NO_FORMAT, SYSTEM_STORE
from specs.card_layout import BACK_SUFFIX
from specs.certificate_policy import CertificatePolicySpec
from specs.credential_profile import CredentialProfileSpec, ProfileCertificate

MDM_NAMES = {"Intune": "Intune", "WorkspaceOne": "Workspace ONE"}
LAYOUT_EXTENSIONS = (".png", ".jpg")


def _policies(ctx: RuleContext) -> dict[str, CertificatePolicySpec]:
    return {document.name: ctx.spec(document) for document in ctx.of_kind("CertificatePolicy")}


def _certificates(spec: CredentialProfileSpec, policies: dict[str, CertificatePolicySpec]
                  ) -> Iterator[tuple[int, ProfileCertificate, CertificatePolicySpec]]:
    """(index, certificate, its policy) for the certificates whose policy exists."""
    for index, certificate in enumerate(spec.certificates):
        policy = policies.get(certificate.policy)
        if policy is not None:
            yield index, certificate, policy


class _DerivedMdm:
    """Which MDM (by display name) takes a profile's certificates, if it is MDM-derived.

    With the status on and no externalSystem, the product selects the only enabled MDM system
    by itself (manual 3.11.4), so that system counts.
    """

    def __init__(self, ctx: RuleContext) -> None:
        self.ctx = ctx
        enabled = [d for d in ctx.of_kind("ExternalSystem")
                   if d.model.is_mdm and ctx.spec(d).enabled]
        self.sole = enabled[0] if len(enabled) == 1 else None

    def __call__(self, spec: CredentialProfileSpec) -> str | None:
        restrictions = spec.mdm_restrictions
        if restrictions.status == "Unrestricted":
            return None
        if restrictions.external_system is None:
            system = self.sole
        else:
            system = self.ctx.get("ExternalSystem", restrictions.external_system)
        if system is None:
            return None
        return MDM_NAMES.get(self.ctx.spec(system).listener_type)


def _cert_path(index: int, field: str) -> tuple[str | int, ...]:
    return ("spec", "certificates", index, field)


@rule("MIM301", "error", "An Identity Agent profile delivers no certificates", "7.4")
def mobile_profile_without_certificates(ctx: RuleContext) -> Iterator[Finding]:
    for document, spec in ctx.profiles(mobile_only=True):
        if not spec.certificates:
            yield Finding(document, ("spec", "certificates"),
                          "this Identity Agent profile lists no certificates, so there is nothing "
                          "to put on a device and issuance fails: add the certificate policies "
                          "the device should receive")


@rule("MIM302", "error",
      "An Identity Agent profile uses a certificate policy with Hardware certificate or "
      "recovery storage", "3.5")
def mobile_profile_hardware_storage(ctx: RuleContext) -> Iterator[Finding]:
    policies = _policies(ctx)
    for document, spec in ctx.profiles(mobile_only=True):
        for index, certificate, policy in _certificates(spec, policies):
            fields = [name for name, value in (("certificateStorage", policy.certificate_storage),
                                               ("recoveryStorage", policy.recovery_storage))
                      if value == "Hardware"]
            if fields:
                yield Finding(document, _cert_path(index, "policy"),
                              f"certificate policy {certificate.policy!r} has "
                              f"{' and '.join(fields)} Hardware, which mobile devices cannot "
                              "use: set it to Software on the policy, or pick a Software policy")


@rule("MIM303", "error", "An Identity Agent profile uses an ECC certificate policy", "2.2")
def mobile_profile_ecc(ctx: RuleContext) -> Iterator[Finding]:
    policies = _policies(ctx)
    for document, spec in ctx.profiles(mobile_only=True):
        for index, certificate, policy in _certificates(spec, policies):
            if policy.key_algorithm == "ECC":
                yield Finding(document, _cert_path(index, "policy"),
                              f"certificate policy {certificate.policy!r} has keyAlgorithm ECC; "
                              "ECC keys cannot be issued or recovered to mobile devices: use an "
                              "RSA policy")


@rule("MIM304", "warning",
      "A profile with the Mobile card format puts no certificate in the System Store", "3.8.1")
def mobile_format_without_containers(ctx: RuleContext) -> Iterator[Finding]:
    for document, spec in ctx.profiles():
        if (spec.card_format == MOBILE_FORMAT and spec.certificates
                and all(certificate.container is None for certificate in spec.certificates)):
            yield Finding(document, ("spec", "cardFormat"),
                          f"card format {MOBILE_FORMAT} is for the device's system store, but no "
                          f"certificate names a container, so none reaches it: set container: "
                          f"{SYSTEM_STORE} on the certificates meant for it, or use card format "
                          f"{NO_FORMAT}")


@rule("MIM306", "error",
      "System Store certificates of one profile come from policies with different validity "
      "(iOS cannot renew them)", "3.8.1")
def system_store_validity(ctx: RuleContext) -> Iterator[Finding]:
    policies = _policies(ctx)
    for document, spec in ctx.profiles():
        stored = [(index, certificate, policy)
                  for index, certificate, policy in _certificates(spec, policies)
                  if certificate.container == SYSTEM_STORE]
        if len({policy.validity_days for _, _, policy in stored}) < 2:
            continue
        first_days = stored[0][2].validity_days
        index = next(i for i, _, policy in stored if policy.validity_days != first_days)
        listed = ", ".join(f"{certificate.policy} {policy.validity_days}"
                           for _, certificate, policy in stored)
        yield Finding(document, _cert_path(index, "container"),
                      f"the {SYSTEM_STORE} certificates expire at different times (validityDays: "
                      f"{listed}); iOS keeps them in one security profile and cannot renew them: "
                      "give their policies the same validityDays")


@rule("MIM307", "error",
      "An Intune or Workspace ONE derived-credential profile uses a card format or containers",
      "3.8.1/6.2")
def derived_profile_format(ctx: RuleContext) -> Iterator[Finding]:
    derived_mdm = _DerivedMdm(ctx)
    for document, spec in ctx.profiles():
        mdm = derived_mdm(spec)
        if mdm is None:
            continue
        if spec.card_format != NO_FORMAT:
            yield Finding(document, ("spec", "cardFormat"),
                          f"{mdm} derived credentials pass through the default key store before "
                          f"the MDM's app takes them over: set cardFormat to {NO_FORMAT}")
        for index, certificate in enumerate(spec.certificates):
            if certificate.container is not None:
                yield Finding(document, _cert_path(index, "container"),
                              f"{mdm}-managed apps keep certificates in their own key store, not "
                              f"in card format containers: remove container "
                              f"{certificate.container!r}")


@rule("MIM309", "error",
      "A certificate delivered as existing, historic or archived comes from a policy that does "
      "not archive keys", "3.2.6/4.1")
def recovery_without_archived_keys(ctx: RuleContext) -> Iterator[Finding]:
    policies = _policies(ctx)
    for document, spec in ctx.profiles():
        for index, certificate, policy in _certificates(spec, policies):
            if policy.archive_keys:
                continue
            if certificate.mode != "IssueNew":
                path, what = _cert_path(index, "mode"), f"mode {certificate.mode}"
            elif certificate.archived:
                path, what = _cert_path(index, "archived"), "archived: true"
            else:
                continue
            yield Finding(document, path,
                          f"{what} recovers keys to the device, but certificate policy "
                          f"{certificate.policy!r} does not archive them: set archiveKeys: true "
                          "on the policy, or deliver the certificate as IssueNew only")


@rule("MIM310", "warning",
      "An Intune or Workspace ONE derived-credential profile uses a policy with automatic renewal",
      "6.4")
def derived_profile_automatic_renewal(ctx: RuleContext) -> Iterator[Finding]:
    policies = _policies(ctx)
    derived_mdm = _DerivedMdm(ctx)
    for document, spec in ctx.profiles():
        mdm = derived_mdm(spec)
        if mdm is None:
            continue
        for index, certificate, policy in _certificates(spec, policies):
            if policy.automatic_renewal:
                yield Finding(document, _cert_path(index, "policy"),
                              f"certificate policy {certificate.policy!r} renews automatically; "
                              f"{mdm} derived credentials are renewed by canceling and issuing "
                              "again: use a policy without automaticRenewal")


def _not_ansi(text: str) -> str:
    """The characters of `text` that cp1252 cannot encode, in order, each once."""
    bad: list[str] = []
    for character in text:
        if character not in bad:
            try:
                character.encode("cp1252")
            except UnicodeEncodeError:
                bad.append(character)
    return "".join(bad)


@rule("MIM311", "error",
      "A custom card format's name, description or container names/ids are not ANSI (cp1252)",
      "3.9")
def card_format_not_ansi(ctx: RuleContext) -> Iterator[Finding]:
    for document in ctx.of_kind("CardFormat"):
        spec = ctx.spec(document)
        values: list[tuple[tuple[str | int, ...], str]] = [
            (("metadata", "name"), document.name), (("spec", "description"), spec.description)]
        for index, container in enumerate(spec.containers):
            values += [(("spec", "containers", index, "name"), container.name),
                       (("spec", "containers", index, "id"), container.id)]
        for path, value in values:
            bad = _not_ansi(value)
            if bad:
                shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in bad)
                yield Finding(document, path,
                              f"{shown} cannot be written in ANSI (cp1252), the encoding the "
                              "card data model file must use: replace "
                              f"{'it' if len(bad) == 1 else 'them'}")


def _extension(file_name: str) -> str:
    base = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    return "." + base.rsplit(".", 1)[1] if "." in base else ""


@rule("MIM312", "error", "A badge layout image has the .jpeg extension (issuance fails)", "7.1")
def layout_jpeg_extension(ctx: RuleContext) -> Iterator[Finding]:
    for document in ctx.of_kind("CardLayout"):
        image = ctx.spec(document).front_image
        if image is not None and _extension(image).lower() == ".jpeg":
            renamed = image[: -len(".jpeg")] + ".jpg"
            yield Finding(document, ("spec", "frontImage"),
                          "issuing a layout whose image ends in .jpeg fails even though the "
                          f"image is a JPEG: rename the file to {renamed!r}")


@rule("MIM313", "error", "A badge layout image is neither .png nor .jpg", "7.1")
def layout_image_extension(ctx: RuleContext) -> Iterator[Finding]:
    for document in ctx.of_kind("CardLayout"):
        image = ctx.spec(document).front_image
        if image is None:
            continue
        extension = _extension(image).lower()
        if extension in LAYOUT_EXTENSIONS or extension == ".jpeg":  # .jpeg is MIM312's
            continue
        what = f"extension {_extension(image)!r}" if extension else "no extension"
        yield Finding(document, ("spec", "frontImage"),
                      f"front image {image!r} has {what}; mobile badges take .png or .jpg files "
                      "only: convert the image to PNG or JPEG and name it accordingly")


@rule("MIM314", "warning", "A profile selects a _back card layout (never sent to devices)",
      "3.8.1")
def back_layout_selected(ctx: RuleContext) -> Iterator[Finding]:
    for document, spec in ctx.profiles():
        for index, name in enumerate(spec.card_layouts):
            if name.endswith(BACK_SUFFIX) and ctx.get("CardLayout", name) is not None:
                yield Finding(document, ("spec", "cardLayouts", index),
                              f"{name!r} is the reverse side of a layout, and reverse sides "
                              "never reach mobile devices: select the front layout "
                              f"{name[: -len(BACK_SUFFIX)]!r} instead, or remove it")


@rule("MIM315", "warning",
      "A layout used by an Identity Agent profile is Landscape or has vertical text (devices "
      "show portrait, horizontal text only)", "7.1")
def layout_orientation(ctx: RuleContext) -> Iterator[Finding]:
    users: dict[str, list[str]] = {}
    for document, spec in ctx.profiles(mobile_only=True):
        for name in spec.card_layouts:
            users.setdefault(name, []).append(document.name)
    for name, profiles in users.items():
        layout = ctx.get("CardLayout", name)
        if layout is None or name.endswith(BACK_SUFFIX):  # back sides are never sent (MIM314)
            continue
        profiles = sorted(profiles)
        used_by = f"Identity Agent profile {profiles[0]!r}"
        if len(profiles) > 1:
            used_by += f" and {len(profiles) - 1} more"
        spec = ctx.spec(layout)
        if spec.orientation == "Landscape":
            yield Finding(layout, ("spec", "orientation"),
                          f"devices show badges in portrait only, scaled to the screen width, "
                          f"and {used_by} sends this one to devices: make a Portrait layout "
                          "for mobile IDs")
        for index, text_field in enumerate(spec.text_fields):
            if text_field.orientation == "Vertical":
                yield Finding(layout, ("spec", "textFields", index, "orientation"),
                              f"devices show horizontal text only, and {used_by} sends this "
                              "layout to devices: make the text Horizontal")
