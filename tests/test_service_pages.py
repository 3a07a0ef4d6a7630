"""The provisioning service's skeleton: the app factory, the collection page, QR codes, JSON errors.

Settings go in through `mimctl reconcile --apply`, requests as `request_jobs` rows; the pages are
fetched with Flask's test client and, end to end, from a real server on 127.0.0.1 over httpx,
where the QR codes are decoded (zxing-cpp) back to the collection URL.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from flask import Blueprint, Flask
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from cli_commands.context import Context
from cli_commands.serve import serve
from provisioning import db
from provisioning.app import create_app
from provisioning.errors import ApiError
from provisioning.links import APP_LINK_SCHEME, app_link, collection_url
from provisioning.qr import QrFormatError, qr_png, qr_svg, save_qr
from reconciler.db import notices, vault
from reconciler.db.models import request_jobs
from tests.conftest import ROOT, TEST_MASTER_KEY
from tests.qrdecode import decode, only_text, png_pixels, svg_pixels
from tests.servers.harness import serve as serve_app

BASE_URL = "https://mim.example.com"
ANDROID = "https://play.example.com/identity-agent"
IOS = "https://apps.example.com/identity-agent"
SETTINGS = f"""
    apiVersion: mim/v1
    kind: Settings
    metadata:
      name: system
    spec:
      certificates:
        mobileCertificateRecoveryServiceUrl: {BASE_URL}/
      issuanceProcesses:
        appDownloadUrlAndroid: {ANDROID}
        appDownloadUrlIos: {IOS}
    """
PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                "X-Content-Type-Options": "nosniff"}


# --- fixtures and helpers ------------------------------------------------------------------------


@pytest.fixture
def apply_settings(mimctl, write_tree, database_url: str, engine: Engine
                   ) -> Callable[[str], None]:
    """Apply a Settings document (YAML text) to the test database through the CLI."""

    def apply(text: str) -> None:
        result = mimctl("--db", database_url, "reconcile", "--apply",
                        write_tree({"settings.yaml": text}), "--yes")
        assert result.exit_code == 0, result.output

    return apply


@pytest.fixture
def app(database_url: str, engine: Engine) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": database_url, "TESTING": True})
    yield app
    db.dispose(app)


@pytest.fixture
def add_job(engine: Engine) -> Callable[..., str]:
    """Insert a request job; returns its token."""

    def add(status: str = "pending", expires_in: timedelta | None = timedelta(days=7)) -> str:
        now = datetime.now(UTC)
        token = secrets.token_urlsafe(32)
        with engine.begin() as connection:
            connection.execute(insert(request_jobs).values(
                request_name="alice-phone", person_name="alice", profile_name="mobile-standard",
                kind="Issue", status=status, delivery="Email", token=token, code_attempts=0,
                created_at=now, updated_at=now,
                expires_at=None if expires_in is None else now + expires_in))
        return token

    return add


# --- the app factory and its database ------------------------------------------------------------


def test_create_app_needs_no_arguments_and_opens_nothing(tmp_path: Path) -> None:
    script = ("from provisioning.app import create_app\n"
              "app = create_app()\n"
              "print(app.config['DATABASE_URL'], app.config['TESTING'])\n")
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    ran = subprocess.run([sys.executable, "-W", "error", "-c", script], cwd=tmp_path, check=False,
                         env=environment, capture_output=True, text=True, timeout=60)
    assert (ran.returncode, ran.stderr) == (0, "")
    assert ran.stdout == "sqlite:///mim.sqlite3 False\n"
    assert list(tmp_path.iterdir()) == []  # no database file, no key file


def test_database_url_comes_from_config_else_environment(monkeypatch) -> None:
    monkeypatch.setenv("MIM_DATABASE_URL", "postgresql://mim@db.example.com/mim")
    assert create_app().config["DATABASE_URL"] == "postgresql+psycopg://mim@db.example.com/mim"
    given = create_app({"DATABASE_URL": "sqlite:///elsewhere.sqlite3", "TESTING": True})
    assert (given.config["DATABASE_URL"], given.testing) == ("sqlite:///elsewhere.sqlite3", True)


def test_one_engine_per_app_made_on_first_use(app: Flask, database_url: str) -> None:
    assert app.extensions[db.EXTENSION].engine is None
    with app.app_context():
        engine = db.get_engine()
        assert db.get_engine() is engine
        assert engine.url.render_as_string(hide_password=False) == database_url
    other = create_app({"DATABASE_URL": database_url})
    with other.app_context():
        assert db.get_engine() is not engine
    db.dispose(other)


def test_master_key_is_read_once_per_app_and_never_made(app: Flask, monkeypatch,
                                                        tmp_path: Path) -> None:
    with app.app_context():
        key = db.master_key()
        monkeypatch.setenv("MIM_MASTER_KEY", vault.generate())
        assert db.master_key() is key
    assert key.raw == vault.MasterKey.parse(TEST_MASTER_KEY).raw

    monkeypatch.delenv("MIM_MASTER_KEY")
    keyless = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'keyless.sqlite3'}"})
    with keyless.app_context(), pytest.raises(vault.VaultError, match="cannot read the master"):
        db.master_key()
    assert not (tmp_path / "keyless.sqlite3.master-key").exists()


# --- the collection page -------------------------------------------------------------------------


def test_live_link_offers_deep_link_downloads_and_qr(app, apply_settings, add_job) -> None:
    apply_settings(SETTINGS)
    token = add_job()
    page = app.test_client().get(f"/collect/{token}")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert {name: page.headers[name] for name in PAGE_HEADERS} == PAGE_HEADERS
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    url = f"{BASE_URL}/collect/{token}"
    assert f'href="{APP_LINK_SCHEME}://collect?url=https%3A%2F%2Fmim.example.com%2Fcollect%2F' \
           f'{token}"' in page.text
    assert app_link(url) in page.text
    assert f'<a href="{ANDROID}">Android</a>' in page.text
    assert f'<a href="{IOS}">iPhone and iPad</a>' in page.text
    assert f'<img class="qr" src="/qr/{token}.svg"' in page.text
    assert "alice" not in page.text.lower()  # the link may be forwarded: nothing about her
    assert not re.search(r"""(src|href)=["']?(https?:)?//(?!(play|apps)\.example\.com)""",
                         page.text)  # self-contained: only the app stores are linked


def test_settings_values_are_escaped_and_only_web_links_kept(app, apply_settings,
                                                             add_job) -> None:
    apply_settings(SETTINGS.replace(ANDROID, f'{ANDROID}?id=a&x="><script>alert(1)</script>')
                   .replace(IOS, "javascript:alert(2)"))
    page = app.test_client().get(f"/collect/{add_job()}")
    assert page.status_code == 200
    assert "<script>" not in page.text and "javascript:" not in page.text
    assert (f'<a href="{ANDROID}?id=a&amp;x=&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;">'
            "Android</a>") in page.text
    assert "iPhone" not in page.text


def test_download_links_are_left_out_when_settings_has_none(app, apply_settings,
                                                            add_job) -> None:
    apply_settings(SETTINGS.split("      issuanceProcesses:")[0])
    page = app.test_client().get(f"/collect/{add_job()}")
    assert page.status_code == 200
    assert "Get the app" not in page.text and 'id="downloads"' not in page.text
    assert f"{APP_LINK_SCHEME}://collect?url=" in page.text


@pytest.mark.parametrize(("status", "expires_in", "answer", "title"), [
    (None, None, 404, "Link not found"),
    ("awaiting-validation", timedelta(days=1), 404, "Link not found"),
    ("collected", timedelta(days=1), 410, "Already collected"),
    ("collected", timedelta(days=-1), 410, "Already collected"),
    ("canceled", timedelta(days=1), 410, "Link no longer valid"),
    ("pending", timedelta(seconds=-1), 410, "Link no longer valid"),
    ("locked", timedelta(days=1), 403, "Link locked"),
])
def test_a_link_that_cannot_be_collected_says_why(app, apply_settings, add_job, status,
                                                  expires_in, answer, title) -> None:
    apply_settings(SETTINGS)
    token = secrets.token_urlsafe(32) if status is None else add_job(status, expires_in)
    client = app.test_client()
    page = client.get(f"/collect/{token}")
    assert (page.status_code, page.mimetype) == (answer, "text/html")
    assert f"<h1>{title}</h1>" in page.text
    assert {name: page.headers[name] for name in PAGE_HEADERS} == PAGE_HEADERS
    assert "mimid://" not in page.text and "/qr/" not in page.text
    for suffix in ("png", "svg"):
        image = client.get(f"/qr/{token}.{suffix}")
        assert (image.status_code, image.headers["Cache-Control"]) == (404, "no-store")


def test_a_link_without_expiry_stays_open(app, apply_settings, add_job) -> None:
    apply_settings(SETTINGS)
    assert app.test_client().get(f"/collect/{add_job(expires_in=None)}").status_code == 200


def test_without_the_service_url_nothing_is_offered(app, add_job) -> None:
    token = add_job()  # and no Settings applied
    client = app.test_client()
    page = client.get(f"/collect/{token}")
    assert page.status_code == 503 and "<h1>Not available</h1>" in page.text
    assert page.headers["Cache-Control"] == "no-store"
    assert client.get(f"/qr/{token}.png").status_code == 503


def test_qr_routes_answer_images_never_cached(app, apply_settings, add_job) -> None:
    apply_settings(SETTINGS)
    token = add_job()
    client = app.test_client()
    as_png = client.get(f"/qr/{token}.png")
    as_svg = client.get(f"/qr/{token}.svg")
    assert (as_png.status_code, as_png.content_type) == (200, "image/png")
    assert (as_svg.status_code, as_svg.content_type) == (200, "image/svg+xml")
    for image in (as_png, as_svg):
        assert {name: image.headers[name] for name in PAGE_HEADERS} == PAGE_HEADERS
    url = collection_url(BASE_URL, token)
    assert (as_png.data, as_svg.data) == (qr_png(url), qr_svg(url))


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/provision/v1/nothing", "/api/v1/nothing", "/api"])
def test_unknown_api_routes_answer_json(app, path: str) -> None:
    answer = app.test_client().get(path)
    assert (answer.status_code, answer.mimetype) == (404, "application/json")
    assert answer.json is not None and answer.json["code"] == "not_found"
    assert answer.json["message"].startswith("The requested URL was not found")


@pytest.mark.parametrize("path", ["/nothing", "/apis/v1", "/collect/a/b"])
def test_pages_keep_html_errors(app, path: str) -> None:
    answer = app.test_client().get(path)
    assert (answer.status_code, answer.mimetype) == (404, "text/html")


def test_api_errors_carry_code_message_extras_and_headers(database_url: str) -> None:
    probe = Blueprint("probe", __name__, url_prefix="/api/probe")

    @probe.get("/busy")
    def busy() -> str:
        raise ApiError(503, "session_limit", "too many sessions; try again shortly",
                       headers={"Retry-After": "30"}, limit=2)

    @probe.get("/broken")
    def broken() -> str:
        raise RuntimeError("a bug")

    app = create_app({"DATABASE_URL": database_url})  # not TESTING: a bug becomes a 500
    app.register_blueprint(probe)
    app.logger.disabled = True
    client = app.test_client()
    busy_answer = client.get("/api/probe/busy")
    assert (busy_answer.status_code, busy_answer.headers["Retry-After"]) == (503, "30")
    assert busy_answer.json == {"code": "session_limit", "limit": 2,
                                "message": "too many sessions; try again shortly"}
    wrong_method = client.post("/api/probe/busy")
    assert wrong_method.status_code == 405 and wrong_method.json is not None
    assert wrong_method.json["code"] == "method_not_allowed"
    assert set(wrong_method.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS"}
    bug = client.get("/api/probe/broken")
    assert bug.status_code == 500 and bug.json is not None
    assert bug.json["code"] == "internal_server_error"
    assert "a bug" not in bug.text


# --- end to end: a real server, real HTTP, QR codes decoded --------------------------------------


def test_real_server_serves_qr_codes_that_decode_to_the_collection_url(
        app, apply_settings, add_job) -> None:
    apply_settings(SETTINGS)
    token = add_job()
    expected = f"{BASE_URL}/collect/{token}"
    with serve_app(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        page = client.get(f"/collect/{token}")
        assert page.status_code == 200 and page.headers["referrer-policy"] == "no-referrer"
        image_path = re.search(r'<img class="qr" src="([^"]+)"', page.text)
        assert image_path is not None
        as_svg = client.get(image_path[1])
        as_png = client.get(f"/qr/{token}.png")
        gone = client.get(f"/qr/{secrets.token_urlsafe(32)}.png")
    assert (as_svg.status_code, as_svg.headers["content-type"]) == (200, "image/svg+xml")
    assert (as_png.status_code, as_png.headers["content-type"]) == (200, "image/png")
    assert gone.status_code == 404
    assert only_text(decode(*svg_pixels(as_svg.content))) == expected
    pixels, width, height = png_pixels(as_png.content)
    assert only_text(decode(pixels, width, height)) == expected
    dark = [index for index, value in enumerate(pixels) if value < 128]
    assert divmod(dark[0], width) == (40, 40)  # 4 modules of 10 px of quiet zone


# --- the library functions the CLI and the e-mail use --------------------------------------------


def test_collection_url_is_the_one_the_email_carries_and_app_link() -> None:
    assert collection_url is notices.collection_url
    assert collection_url("https://mim.example.com/", "a-b_c") == \
        "https://mim.example.com/collect/a-b_c"
    assert app_link("https://mim.example.com/collect/t") == \
        "mimid://collect?url=https%3A%2F%2Fmim.example.com%2Fcollect%2Ft"


@pytest.mark.parametrize("name", ["link.png", "link.svg", "LINK.PNG"])
def test_save_qr_writes_the_format_its_suffix_names(tmp_path: Path, name: str) -> None:
    target = tmp_path / name
    save_qr("https://mim.example.com/collect/t0ken", target)
    data = target.read_bytes()
    if target.suffix.lower() == ".png":
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert only_text(decode(*png_pixels(data))) == "https://mim.example.com/collect/t0ken"
    else:
        assert only_text(decode(*svg_pixels(data))) == "https://mim.example.com/collect/t0ken"


@pytest.mark.parametrize("name", ["link.jpg", "link"])
def test_save_qr_refuses_other_suffixes(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=r"name it \*\.png or \*\.svg") as raised:
        save_qr("https://mim.example.com/collect/t", tmp_path / name)
    assert isinstance(raised.value, QrFormatError)
    assert list(tmp_path.iterdir()) == []


# --- mimctl serve --------------------------------------------------------------------------------


def test_serve_help_points_production_at_gunicorn() -> None:
    result = CliRunner().invoke(serve, ["--help"], obj=Context())
    assert result.exit_code == 0, result.output
    assert "gunicorn --workers 4 --bind 0.0.0.0:8000 'provisioning.app:create_app()'" \
        in result.output
    assert "PostgreSQL" in result.output
    for option in ("--host TEXT", "--port INTEGER RANGE", "--debug"):
        assert option in result.output


def test_serve_runs_the_app_on_the_context_database(monkeypatch, database_url: str,
                                                    engine: Engine) -> None:
    served: dict[str, object] = {}

    def run_simple(host: str, port: int, app: Flask, **options: object) -> None:
        served.update(host=host, port=port, app=app, **options)

    monkeypatch.setattr("werkzeug.serving.run_simple", run_simple)
    result = CliRunner().invoke(serve, ["--port", "8123"], obj=Context(database_url))
    assert result.exit_code == 0, result.output
    app = served.pop("app")
    assert isinstance(app, Flask) and app.config["DATABASE_URL"] == database_url
    db.dispose(app)
    assert served == {"host": "127.0.0.1", "port": 8123, "use_reloader": False,
                      "use_debugger": False, "threaded": True}
