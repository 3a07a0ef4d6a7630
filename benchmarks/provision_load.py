"""Collection throughput under gunicorn against the bare signing rate of the same CA key.

    python benchmarks/provision_load.py [--db URL] [--flows 60] [--workers 2] [--clients 4]

DESIGN.md §11: the full collect flow (two RSA-2048 certificates) under gunicorn with PostgreSQL
must reach at least half of the bare signing rate of the same CA key, measured in the same run.

- floor: RSA signatures per second with the CA's own key (PKCS#1 v1.5, SHA-256), in as many
  processes as gunicorn has workers, for a few seconds;
- flows: `--flows` pending requests of a profile with two device-made RSA-2048 certificates are
  collected, packaged and completed by `--clients` concurrent simulated devices against
  `gunicorn --workers N`; their keys and CSRs are made beforehand, so only the service's work
  (checks, sessions, issuing, package, CMS signature, envelope, database writes) is timed.

Prints certificates per second, signatures per second and their ratio (budget: >= 0.5), and
the ceiling the flow's own cryptography sets: the same processes only issuing two certificates
from the CSRs, signing the package (CMS) and enveloping it, with no HTTP and no database. The
database named by --db is emptied first (default: the PostgreSQL test database).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from provisioning.ca import load_authority  # noqa: E402
from reconciler.db import jobs, vault  # noqa: E402
from reconciler.db.engine import make_engine, resolve_url, upgrade  # noqa: E402
from tests.device import SimulatedDevice  # noqa: E402

DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FLOOR_SECONDS = 4.0

SECOND_POLICY = """
---
apiVersion: mim/v1
kind: CertificatePolicy
metadata:
  name: mobile-authentication
spec:
  friendlyName: Mobile Authentication
  authority: issuing-ca
  keySize: 2048
  validityDays: 365
  keyUsages: [digitalSignature]
  extendedKeyUsages: [clientAuth]
"""


def request(index: int) -> str:
    return (f"---\napiVersion: mim/v1\nkind: MobileRequest\nmetadata:\n  name: bench-{index}\n"
            "spec:\n  person: alice\n  credentialProfile: mobile-standard\n"
            "  requestedBy: bob\n  delivery: ShowCode\n")


def prepare(root: Path, flows: int) -> None:
    shutil.copytree(ROOT / "examples" / "quickstart", root)
    (root / "pki.yaml").write_text((root / "pki.yaml").read_text() + SECOND_POLICY)
    profiles = root / "profiles.yaml"
    profiles.write_text(profiles.read_text().replace(
        "      container: System Store\n",
        "      container: System Store\n    - policy: mobile-authentication\n"
        "      container: System Store\n"))
    (root / "requests.yaml").write_text("".join(request(i) for i in range(flows)))


def reset(url: str) -> None:
    """An empty database at the current schema."""
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
            connection.exec_driver_sql("CREATE SCHEMA public")
    upgrade(engine)
    engine.dispose()


def _sign_for(key_pem: bytes, seconds: float) -> int:
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    done, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        key.sign(os.urandom(32), padding.PKCS1v15(), hashes.SHA256())
        done += 1
    return done


def signing_rate(key: rsa.RSAPrivateKey, processes: int) -> float:
    """Signatures per second with `key`, in `processes` processes at once."""
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        counts = pool.starmap(_sign_for, [(pem, FLOOR_SECONDS)] * processes)
    return sum(counts) / FLOOR_SECONDS


def _crypto_flows_for(url: str, key_text: str, csrs: list[dict[str, str]], transport_pem: str,
                      seconds: float) -> int:
    """How many flows' worth of cryptography one process does in `seconds`: per flow, check
    two CSRs and issue their certificates, sign the package (CMS) and envelope it."""
    from datetime import UTC, datetime

    from provisioning import package
    from provisioning.ca import check_csr, load_authority, load_content_signer
    from specs.certificate_policy import CertificatePolicySpec

    engine = make_engine(url)
    master = vault.MasterKey.parse(key_text)
    with engine.connect() as connection:
        authority = load_authority(connection, master, "issuing-ca")
        signer = load_content_signer(connection, master)
    engine.dispose()
    policy = CertificatePolicySpec.model_validate({
        "friendlyName": "Bench", "authority": "issuing-ca", "keySize": 2048,
        "validityDays": 365, "keyUsages": ["digitalSignature"]})
    transport = package.load_transport_key(transport_pem)
    subject = authority.certificate.subject
    done, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        now = datetime.now(UTC)
        issued = [authority.issue(check_csr(c["csr"]), subject, policy, now) for c in csrs]
        document = {"certificates": [c.public_bytes(serialization.Encoding.PEM).decode()
                                     for c in issued]}
        package.envelope(package.sign(document, signer), transport, "AES-256-GCM")
        done += 1
    return done


def crypto_rate(url: str, key_text: str, csrs: list[dict[str, str]], processes: int) -> float:
    """Flows per second of the flow's cryptography alone, in `processes` processes."""
    transport = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    pem = transport.public_bytes(serialization.Encoding.PEM,
                                 serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        counts = pool.starmap(_crypto_flows_for,
                              [(url, key_text, csrs, pem, FLOOR_SECONDS)] * processes)
    return sum(counts) / FLOOR_SECONDS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_flows(url: str, work: list[tuple[SimulatedDevice, str, str, list]], clients: int
              ) -> float:
    """Collect, package and complete every flow with `clients` threads; returns seconds."""
    queue = list(work)
    lock = threading.Lock()
    failures: list[str] = []

    def client_loop() -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    device, token, code, csrs = queue.pop()
                device.client = client
                collected = device.collect(token, code)
                if collected.status_code != 201:
                    failures.append(collected.text)
                    continue
                session = collected.json()["sessionId"]
                packaged = device.package(session, csrs)
                completed = device.complete(session)
                if packaged.status_code != 200 or completed.status_code != 200:
                    failures.append(packaged.text[:200] + completed.text[:200])

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"{len(failures)} flows failed, e.g. {failures[0]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default=os.environ.get("MIM_BENCH_DATABASE_URL", DEFAULT_DB))
    parser.add_argument("--flows", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    options = parser.parse_args()
    url = resolve_url(options.db)
    key_text = os.environ.get("MIM_MASTER_KEY") or vault.generate()
    env = {**os.environ, "MIM_DATABASE_URL": url, "MIM_MASTER_KEY": key_text}
    master = vault.MasterKey.parse(key_text)

    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "specs"
        prepare(root, options.flows)
        reset(url)
        applied = subprocess.run(
            [sys.executable, "-m", "cli", "reconcile", "--apply", str(root), "--yes"],
            cwd=ROOT, env=env, capture_output=True, text=True, check=False)
        if applied.returncode != 0:
            raise SystemExit(f"apply failed:\n{applied.stdout}{applied.stderr}")
        engine = make_engine(url)
        work = []
        with engine.begin() as connection:
            authority = load_authority(connection, master, "issuing-ca")
            from sqlalchemy import select

            from reconciler.db.models import request_jobs
            tokens = dict(connection.execute(select(request_jobs.c.request_name,
                                                    request_jobs.c.token)).all())
            for index in range(options.flows):
                name = f"bench-{index}"
                device = SimulatedDevice(None, serial=f"BENCH-{index}")
                csrs = device.csrs([{"id": "new-0", "source": "device", "keySize": 2048},
                                    {"id": "new-1", "source": "device", "keySize": 2048}])
                work.append((device, tokens[name], jobs.reveal_code(connection, master, name),
                             csrs))
        engine.dispose()

        floor = signing_rate(authority.key, options.workers)
        crypto = crypto_rate(url, key_text, work[0][3], options.workers)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", str(options.workers), "--threads",
             "2", "--bind", f"127.0.0.1:{port}", "provisioning.app:create_app()"],
            cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)}, stderr=subprocess.PIPE)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    httpx.get(f"{base}/provision/v1/ready", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            elapsed = run_flows(base, work, options.clients)
        finally:
            server.terminate()
            server.wait(10)

    certificates = 2 * options.flows / elapsed
    print(f"database        {make_engine(url).dialect.name}")
    print(f"CA key          RSA {authority.key.key_size}")
    print(f"floor           {floor:.1f} signatures/s ({options.workers} processes)")
    print(f"collect flows   {options.flows} in {elapsed:.2f} s: {certificates:.1f} "
          f"certificates/s ({options.workers} gunicorn workers, {options.clients} clients)")
    print(f"flow crypto     {crypto:.1f} flows/s = {2 * crypto:.1f} certificates/s alone "
          f"(issue two, CMS-sign, envelope; ratio {2 * crypto / floor:.2f})")
    print(f"ratio           {certificates / floor:.2f} (budget: at least 0.50)")


if __name__ == "__main__":
    main()
