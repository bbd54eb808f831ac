"""Demo mode (``STOREFRONT_DEMO=1``) is the only thing that mounts the built-in Stripe
sandbox: without it and without a Stripe key the production entry point refuses to
start and says what to set. When no payment is real, every page says so. The mounted
sandbox's hosted-page address comes from ``PUBLIC_BASE_URL``, never the Host header, and
no answer carries its key or webhook secret. The package declares what it imports.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import tomllib
from importlib.metadata import packages_distributions

import pytest

from storefront import create_app
from storefront.config import ConfigurationError
from storefront.payments.gateway import SANDBOX_PREFIX

from .checkout_support import add, start_checkout
from .conftest import clean, make_app
from .factories import make_event
from .sandbox_support import FAKE_LIVE_KEY, ROOT, TEST_KEY

MARKER = "Test mode — no real payments"
PAYMENT_VARIABLES = ("STRIPE_SECRET_KEY", "STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRET", "STOREFRONT_DEMO")


@pytest.fixture
def no_payment_settings(monkeypatch):
    for name in PAYMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def clean_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PAYMENT_VARIABLES}
    return {**env, "SECRET_KEY": "entry-point-test", **extra}


# --- no key, no demo mode: no start ---------------------------------------------------------------


def test_without_a_key_or_demo_mode_the_app_refuses_to_start(no_payment_settings, tmp_path):
    """TESTING alone is not demo mode either."""
    with pytest.raises(ConfigurationError) as refused:
        create_app({"TESTING": True, "SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.db"})
    message = str(refused.value)
    assert "STRIPE_SECRET_KEY" in message and "STRIPE_WEBHOOK_SECRET" in message and "STOREFRONT_DEMO=1" in message


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-c", "import wsgi"],  # what gunicorn wsgi:app does first
        [sys.executable, "-m", "flask", "--app", "wsgi", "routes"],
    ],
    ids=["wsgi:app", "flask"],
)
def test_the_production_entry_point_says_what_to_set(command, tmp_path):
    result = subprocess.run(
        command,
        cwd=ROOT,
        env=clean_environment(DATABASE_URL=f"sqlite:///{tmp_path}/entry.db"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 4  # gunicorn's "app failed to load": its master stops, no respawning workers
    assert "Refusing to start: No payments are configured." in result.stderr
    assert "STRIPE_SECRET_KEY" in result.stderr and "STOREFRONT_DEMO=1" in result.stderr
    assert "Traceback" not in result.stderr


def test_with_storefront_demo_the_entry_point_mounts_the_sandbox(tmp_path):
    probe = "import wsgi; print(sorted(k for k in wsgi.app.extensions if k.startswith(('stripe', 'payments'))))"
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=clean_environment(STOREFRONT_DEMO="1", DATABASE_URL=f"sqlite:///{tmp_path}/demo.db"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['payments_gateway', 'stripe_sandbox']"


def test_a_key_without_its_webhook_secret_is_refused(database_urls):
    with pytest.raises(ConfigurationError, match="STRIPE_WEBHOOK_SECRET is not"):
        make_app(database_urls["sqlite"], DEMO_MODE=False, STRIPE_SECRET_KEY=TEST_KEY, STRIPE_WEBHOOK_SECRET=None)


def keyed_app(database_urls):
    """Outside demo mode, with a test key for a sandbox process (nothing here calls it)."""
    return make_app(
        database_urls["sqlite"],
        DEMO_MODE=False,
        STRIPE_SECRET_KEY=TEST_KEY,
        STRIPE_WEBHOOK_SECRET="whsec_endpoint",
        STRIPE_API_BASE="http://127.0.0.1:9",
    )


def test_only_demo_mode_mounts_the_sandbox(database_urls):
    demo = make_app(database_urls["sqlite"], DEMO_MODE=True, STRIPE_SECRET_KEY=None)
    assert "stripe_sandbox" in demo.extensions
    keyed = keyed_app(database_urls)
    assert "stripe_sandbox" not in keyed.extensions
    # Nothing answers under the sandbox's prefix: the shop's own 404.
    response = keyed.test_client().get(SANDBOX_PREFIX + "/_sandbox/health")
    assert response.status_code == 404 and b"Page not found" in response.data


def test_flask_demo_runs_in_demo_mode_only(database_urls):
    result = keyed_app(database_urls).test_cli_runner().invoke(args=["demo", "--port", "1"])
    assert result.exit_code != 0
    assert "STOREFRONT_DEMO=1" in result.output


# --- the marker ------------------------------------------------------------------------------------


def pages(client, event) -> dict[str, str]:
    return {
        path: client.get(path).get_data(as_text=True)
        for path in ("/", f"/events/{event.slug}", "/cart", "/no-such-page")
    }


def in_the_header(html: str) -> bool:
    header = re.search(r"<header\b.*?</header>", html, re.S)
    return bool(header) and MARKER in header.group(0)


@pytest.mark.parametrize(
    "settings",
    [
        {"DEMO_MODE": True, "STRIPE_SECRET_KEY": None},  # the built-in sandbox
        {"DEMO_MODE": False, "STRIPE_SECRET_KEY": TEST_KEY, "STRIPE_WEBHOOK_SECRET": "whsec_x"},  # a test key
    ],
    ids=["demo", "test-key"],
)
def test_every_page_says_no_payment_is_real(database_urls, settings):
    app = make_app(database_urls["sqlite"], **settings)
    clean(app)
    try:
        with app.app_context():
            event = make_event()
            for path, html in pages(app.test_client(), event).items():
                assert in_the_header(html), path
    finally:
        clean(app)


def test_with_a_live_key_no_page_says_test_mode(database_urls):
    app = make_app(
        database_urls["sqlite"], DEMO_MODE=False, STRIPE_SECRET_KEY=FAKE_LIVE_KEY, STRIPE_WEBHOOK_SECRET="whsec_live"
    )
    clean(app)
    try:
        with app.app_context():
            event = make_event()  # the pages call no Stripe API
            for path, html in pages(app.test_client(), event).items():
                assert MARKER not in html, path
                assert "<header" in html, path
    finally:
        clean(app)


# --- the mounted sandbox: PUBLIC_BASE_URL, no secrets ------------------------------------------------


@pytest.fixture
def demo_app(database_urls, tmp_path):
    app = make_app(
        database_urls["sqlite"],
        DEMO_MODE=True,
        STRIPE_SECRET_KEY=None,
        STRIPE_API_BASE=None,
        STRIPE_SANDBOX_DB=str(tmp_path / "demo-sandbox.db"),
        PUBLIC_BASE_URL="http://tickets.example.org:8080",
    )
    clean(app)
    with app.app_context():
        yield app
    clean(app)
    app.extensions["stripe_sandbox"].stop()


def test_the_hosted_page_is_at_public_base_url_whatever_the_host_header(demo_app):
    event = make_event()
    client = demo_app.test_client()
    client.environ_base["HTTP_HOST"] = "evil.example"
    add(client, event, {event.ticket_types[0].id: 1})
    response = start_checkout(client, 1)
    assert response.status_code == 303, response.get_data(as_text=True)[:500]
    location = response.headers["Location"]
    assert location.startswith(f"http://tickets.example.org:8080{SANDBOX_PREFIX}/pay/cs_test_"), location
    assert "evil.example" not in location


def test_no_answer_of_the_demo_carries_the_sandbox_key_or_webhook_secret(demo_app):
    secrets = (demo_app.config["STRIPE_SANDBOX_KEY"], demo_app.config["STRIPE_WEBHOOK_SECRET"])
    event = make_event()
    client = demo_app.test_client()
    add(client, event, {event.ticket_types[0].id: 1})
    session_id = start_checkout(client, 1).headers["Location"].rsplit("/", 1)[1]
    sandbox_app = demo_app.extensions["stripe_sandbox"].app
    values = {"session_id": session_id, "slug": event.slug, "filename": "css/sandbox.css", "rest": "customers"}
    paths = []
    for app, prefix in ((demo_app, ""), (sandbox_app, SANDBOX_PREFIX)):
        for rule in app.url_map.iter_rules():
            path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values.get(m.group(1), "1")), rule.rule)
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                paths.append((method, prefix + path))
    assert len(paths) > 30
    for method, path in paths:
        for headers in ({}, {"Authorization": f"Bearer {secrets[0]}", "Content-Type": "application/json"}):
            with client.open(path, method=method, headers=headers, data=b"{}" if method != "GET" else None) as answer:
                seen = answer.get_data(as_text=True) + str(answer.headers)
            for secret in secrets:
                assert secret not in seen, (method, path, answer.status_code)


# --- what the package imports, it declares ---------------------------------------------------------


def test_every_distribution_the_package_imports_is_declared():
    """``requests`` was imported (by the gateway) but not declared; stripe need not bring it."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {
        re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0].lower().replace("_", "-") for dep in project["dependencies"]
    }
    providers = packages_distributions()
    undeclared = {}
    for path in (ROOT / "storefront").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top == "storefront":
                    continue
                dists = {d.lower().replace("_", "-") for d in providers.get(top, [top])}
                if not dists & declared:
                    undeclared.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    assert undeclared == {}


def test_the_gateway_needs_no_requests(tmp_path):
    """With ``requests`` impossible to import, the demo still makes and reads a session."""
    probe = """
import sys
sys.modules["requests"] = None  # any import of it fails
from storefront import create_app
app = create_app({"TESTING": True, "DEMO_MODE": True, "SECRET_KEY": "x",
                  "STRIPE_SANDBOX_KEY": "sk_test_probe", "STRIPE_WEBHOOK_SECRET": "whsec_probe",
                  "STRIPE_SANDBOX_DB": sys.argv[1], "SQLALCHEMY_DATABASE_URI": "sqlite://"})
from storefront.payments.gateway import get_gateway
with app.app_context():
    session = get_gateway().create_checkout_session({
        "mode": "payment", "success_url": "https://shop.test/ok", "line_items": [
            {"price_data": {"currency": "eur", "unit_amount": 1000, "product_data": {"name": "x"}}, "quantity": 1}]})
    print(session.last_response.request_id[:4], get_gateway().retrieve_checkout_session(session.id).status)
app.extensions["stripe_sandbox"].stop()
"""
    result = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "probe.db")],
        cwd=ROOT,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "req_ open"
