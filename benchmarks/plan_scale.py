"""Plan and apply at the reference workload of DESIGN.md §11, against a floor measured in the same run.

    python benchmarks/plan_scale.py [--scales 1,10] [--db URL] [--write-results]

For each scale it generates the workload (scale 1: 20 roles, 200 credential profiles, 100
certificate policies, 50,000 people, 20,000 pending requests, 5,000 known devices, in a few
hundred files), then measures, in one process:

- floor: parse every file with the fastest YAML loader installed (libyaml's CSafeLoader) plus
  one SELECT of every table;
- first apply: validate, plan and apply the whole workload on an empty database;
- no-change plan: plan again right after (must show no changes), with and without the rule
  catalogue (the rules may add at most 20%).

It prints the times and the ratios (plan / floor, and between scales) and, with
--write-results, records them in benchmarks/RESULTS.md. Times are noisy on a shared 2-core
machine: compare ratios, never absolute seconds.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml
from sqlalchemy import select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.apply import apply_plan  # noqa: E402
from reconciler.db.engine import make_engine, upgrade  # noqa: E402
from reconciler.db.models import metadata  # noqa: E402
from reconciler.reconcile import plan_path  # noqa: E402

REFERENCE = {"roles": 20, "profiles": 200, "policies": 100, "people": 50_000,
             "requests": 20_000, "devices": 5_000}


SETTINGS = """\
  certificates:
    mobileCertificateRecoveryServiceUrl: https://mim.example.com
  general:
    smsEmailNotifications: true
    smsGatewayUrlForNotifications: sms.example.com
  notifications:
    sendEmailNotifications: true
  devices:
    mobileProvisionViaEmail: true
  issuanceProcesses:
    appDownloadUrlAndroid: https://play.example.com/agent
    appDownloadUrlIos: https://apps.example.com/agent
  contentSigning:
    authority: issuing-ca
"""


def _doc(kind: str, name: str, spec: str) -> str:
    return f"apiVersion: mim/v1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n{spec}"


def generate(root: Path, scale: int) -> int:
    """Write the workload under `root`; returns the number of documents."""
    counts = {key: value * scale for key, value in REFERENCE.items()}
    files: dict[str, list[str]] = {}

    def add(file: str, text: str) -> None:
        files.setdefault(file, []).append(text)

    add("settings.yaml", _doc("Settings", "system", SETTINGS))
    add("systems.yaml", _doc("ExternalSystem", "Mail",
                             "  listenerType: Smtp\n  host: smtp.example.com\n"
                             "  fromAddress: mim@example.com\n"))
    add("pki/ca.yaml", _doc("CertificateAuthority", "issuing-ca",
                            "  subject: CN=Bench CA,O=Example\n"))
    for index in range(counts["roles"]):
        add("roles.yaml", _doc("Role", f"Role {index:03d}",
                               "  workflows: [Collect My Updates, Issue Device, Request ID]\n"
                               "  logonMechanisms: [Password]\n  scope: All\n"))
    for index in range(counts["policies"]):
        add(f"pki/policies-{index // 500:03d}.yaml", _doc(
            "CertificatePolicy", f"policy-{index:05d}",
            f"  friendlyName: Policy {index:05d}\n  authority: issuing-ca\n  keySize: 2048\n"
            "  keyUsages: [digitalSignature]\n  extendedKeyUsages: [clientAuth]\n"))
    roles = counts["roles"]
    for index in range(counts["profiles"]):
        role = f"Role {index % roles:03d}"
        add(f"profiles/profiles-{index // 100:03d}.yaml", _doc(
            "CredentialProfile", f"profile-{index:05d}",
            f"  cardFormat: Mobile\n  certificates:\n"
            f"    - policy: policy-{index % counts['policies']:05d}\n      container: System Store\n"
            f"  roles:\n    canReceive: ['{role}']\n    canCollect: ['{role}']\n"
            f"    canRequest: ['{role}']\n"))
    for index in range(counts["people"]):
        add(f"people/people-{index // 500:04d}.yaml", _doc(
            "Person", f"user{index:07d}",
            f"  fullName: User {index}\n  email: user{index}@example.com\n"
            f"  cell: '+1555{index:07d}'\n  userPrincipalName: user{index}@example.com\n"
            f"  group: Group {index % 50}\n  roles: ['Role {index % roles:03d}']\n"))
    for index in range(counts["devices"]):
        add(f"devices/devices-{index // 500:04d}.yaml", _doc(
            "Device", f"device-{index:07d}",
            f"  serialNumber: SN{index:09d}\n  platform: {'ios' if index % 2 else 'android'}\n"
            f"  owner: user{index:07d}\n"))
    for index in range(counts["requests"]):
        add(f"requests/requests-{index // 500:04d}.yaml", _doc(
            "MobileRequest", f"request-{index:07d}",
            f"  person: user{index:07d}\n  credentialProfile: profile-{index % counts['profiles']:05d}\n"
            "  delivery: Email\n"))
    documents = 0
    for relative, texts in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("---\n".join(texts), encoding="utf-8")
        documents += len(texts)
    return documents


def floor(root: Path, engine) -> float:  # noqa: ANN001
    """Fastest YAML loader over the same files, plus one SELECT of every table."""
    started = time.perf_counter()
    for path in sorted(root.rglob("*.yaml")):
        for _ in yaml.load_all(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader):
            pass
    with engine.connect() as connection:
        for table in metadata.sorted_tables:
            connection.execute(select(table)).all()
    return time.perf_counter() - started


def timed(action):  # noqa: ANN001, ANN201
    gc.collect()
    started = time.perf_counter()
    value = action()
    return time.perf_counter() - started, value


def run_scale(scale: int, url: str | None, workdir: Path) -> dict[str, float]:
    root = workdir / f"specs-x{scale}"
    documents = generate(root, scale)
    files = sum(1 for _ in root.rglob("*.yaml"))
    database = url or f"sqlite:///{workdir / f'bench-x{scale}.sqlite3'}"
    engine = make_engine(database)
    if url and url.startswith("postgresql"):
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    upgrade(engine)

    def first_apply() -> int:
        planned = plan_path(root, engine)
        assert planned.plan is not None, planned.report.problems[:5]
        apply_plan(engine, planned.plan, actor="benchmark", timeout=600)
        return len(planned.plan.operations)

    apply_seconds, operations = timed(first_apply)
    floor_seconds = min(floor(root, engine) for _ in range(2))

    def no_change_plan() -> int:
        planned = plan_path(root, engine)
        assert planned.plan is not None
        return len(planned.plan.operations)

    plan_seconds, left = min((timed(no_change_plan) for _ in range(2)), key=lambda pair: pair[0])
    assert left == 0, f"a no-change plan found {left} operations"
    bare_seconds, _ = min((timed(lambda: plan_path(root, engine, rules=False)) for _ in range(2)),
                          key=lambda pair: pair[0])
    engine.dispose()
    result = {"scale": scale, "documents": documents, "files": files, "operations": operations,
              "floor": floor_seconds, "plan": plan_seconds, "apply": apply_seconds,
              "plan_ratio": plan_seconds / floor_seconds,
              "rules_overhead": plan_seconds / bare_seconds - 1}
    print(f"x{scale}: {documents:,} documents in {files} files; floor {floor_seconds:.2f}s, "
          f"no-change plan {plan_seconds:.2f}s ({result['plan_ratio']:.2f}x floor; rules "
          f"{result['rules_overhead']:+.0%}), first apply {apply_seconds:.2f}s "
          f"({operations:,} operations)", flush=True)
    return result


def write_results(results: list[dict[str, float]], database: str) -> None:
    lines = [
        "# Benchmark results: `benchmarks/plan_scale.py`",
        "",
        f"Recorded {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {platform.machine()}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, database {database}.",
        "Times are single runs on a shared machine; the ratios are what the budget "
        "(DESIGN.md §11) is about.",
        "",
        "| scale | documents | files | floor (s) | no-change plan (s) | plan / floor | "
        "rules' share | first apply (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| x{r['scale']} | {r['documents']:,} | {r['files']} | {r['floor']:.2f} | "
                     f"{r['plan']:.2f} | {r['plan_ratio']:.2f} | {r['rules_overhead']:+.0%} | "
                     f"{r['apply']:.2f} |")
    if len(results) > 1:
        base, big = results[0], results[-1]
        growth = big["plan"] / base["plan"]
        factor = big["scale"] / base["scale"]
        lines += ["", f"Growth of the no-change plan from x{base['scale']} to x{big['scale']}: "
                  f"{growth:.2f}x for {factor:g}x the workload (budget: at most "
                  f"{factor * 1.1:g}x)."]
    path = ROOT / "benchmarks" / "RESULTS.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1", help="comma-separated workload multiples")
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in a temp dir)")
    parser.add_argument("--write-results", action="store_true")
    args = parser.parse_args()
    scales = [int(s) for s in args.scales.split(",")]
    with tempfile.TemporaryDirectory(prefix="mim-bench-") as workdir:
        results = [run_scale(scale, args.db, Path(workdir)) for scale in scales]
    if args.write_results:
        write_results(results, args.db or "SQLite (embedded)")


if __name__ == "__main__":
    main()
