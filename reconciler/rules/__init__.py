"""The rule catalogue (DESIGN.md §5): the manual's run-time failures as plan-time findings.

Rule modules register themselves on import; id ranges by topic:
MIM1xx settings, codes, URLs, biometrics, content signing · MIM2xx notifications ·
MIM3xx credential profiles, certificates, card formats and layouts · MIM4xx roles ·
MIM5xx MDM and external systems · MIM6xx DN policies · MIM7xx requests.
"""

from __future__ import annotations

from reconciler.rules.registry import (
    REGISTRY,
    Finding,
    Rule,
    RuleContext,
    catalogue_markdown,
    catalogue_text,
    enforced_on_read,
    rule,
    run_rules,
)

enforced_on_read("MIM305", "error",
                 "A certificate's container is not in the profile's card format (System Store "
                 "needs the Mobile format or a custom format holding it)", "3.8.1")
enforced_on_read("MIM308", "error", "Two containers of a card format share a name or an id",
                 "3.9")
enforced_on_read("MIM501", "error",
                 "Intune needs exactly one of a client secret and a client certificate", "3.11.1")
enforced_on_read("MIM502", "error",
                 "Workspace ONE / BlackBerry credentials must match the chosen authentication",
                 "3.11.2")
enforced_on_read("MIM601", "error", "A DN policy names an unknown certificate policy friendly name",
                 "3.10.1")
enforced_on_read("MIM603", "error", "More than one default DN", "3.10")
enforced_on_read("MIM701", "error",
                 "Replace, Update and Renew requests name a device; Issue requests do not", "5.3")

# Importing a rule module registers its rules.
from reconciler.rules import (  # noqa: E402, F401
    dn,
    mdm,
    notifications,
    profiles,
    requests,
    roles,
    settings_rules,
)

__all__ = ["REGISTRY", "Finding", "Rule", "RuleContext", "catalogue_markdown", "catalogue_text",
           "enforced_on_read", "rule", "run_rules"]
