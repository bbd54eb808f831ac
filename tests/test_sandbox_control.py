"""The control API (``/_sandbox``) stays a test tool even where someone else can reach it:
it needs the sandbox's API key, refuses what a browser sends on another site's behalf,
takes only JSON objects whose fields have the right names, types and bounds, and adds no
webhook endpoint; no answer of the sandbox, anywhere, carries its webhook secret or key.

Over HTTP against a sandbox process with a key of its own; a property-based test
(Hypothesis) drives the control API's JSON bodies in process.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storefront.payments.sandbox import SandboxConfig, create_sandbox_app
from storefront.payments.sandbox import faults as fault_specs

from .sandbox_support import (
    TEST_KEY,
    WEBHOOK_SECRET,
    Receiver,
    SandboxProcess,
    session_params,
    wait_until,
)

KEY = "sk_test_control_suite_own_key_0123456789"
CARD_OK = "4242424242424242"
HOOK = "/hook"


@pytest.fixture(scope="module")
def process(tmp_path_factory):
    """A sandbox that accepts only ``KEY`` and delivers to its receiver at ``HOOK``."""
    receiver = Receiver()
    sandbox = SandboxProcess(
        tmp_path_factory.mktemp("control") / "control.db", "--api-key", KEY, "--webhook-url", receiver.base + HOOK
    )
    sandbox.receiver = receiver
    sandbox.start()
    yield sandbox
    sandbox.stop()
    receiver.close()


@pytest.fixture
def session(process):
    """An open session of this test's own; faults armed by the test are cleared after."""
    yield process.client(KEY).v1.checkout.sessions.create(params=session_params())
    process.control("DELETE", "/_sandbox/faults")


def http(process, method: str, path: str, body: bytes | None = None, **headers: str) -> tuple[int, bytes, dict]:
    """One raw request; headers as keyword arguments (``Content_Type`` for ``Content-Type``)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        process.base + path,
        data=body,
        method=method,
        headers={name.replace("_", "-"): value for name, value in headers.items()},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        try:
            return error.code, error.read(), dict(error.headers)
        finally:
            error.close()


def state_of(process, session_id: str) -> tuple:
    """What a refused request must leave as it was: the session, the events, the faults."""
    client = process.client(KEY)
    found = client.v1.checkout.sessions.retrieve(session_id)
    events = [e.id for e in client.v1.events.list(params={"limit": 100}).data]
    return found.status, found.payment_status, events, process.control("GET", "/_sandbox/faults")["faults"]


def sandbox_rules():
    """Every route of the sandbox's app, read off the app itself (a new route is covered too)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        app = create_sandbox_app(SandboxConfig(db_path=f"{folder}/rules.db", start_background=False))
        try:
            return [
                (rule.rule, sorted(rule.methods - {"HEAD", "OPTIONS"}), rule.endpoint)
                for rule in app.url_map.iter_rules()
            ]
        finally:
            app.extensions["stripe_sandbox_deliverer"].stop()


def concrete(rule: str, ids: dict[str, str]) -> str:
    return (
        rule.replace("<session_id>", ids["session"])
        .replace("<pi_id>", ids["pi"])
        .replace("<event_id>", ids["event"])
        .replace("<path:rest>", "customers")
        .replace("<filename>", "css/sandbox.css")
    )


CONTROL_RULES = [(rule, methods) for rule, methods, _ in sandbox_rules() if rule.startswith("/_sandbox")]


# --- no secret in any answer ---------------------------------------------------------------------


def test_no_answer_contains_the_webhook_secret_or_the_api_key(process):
    client = process.client(KEY)
    paid = client.v1.checkout.sessions.create(params=session_params())
    assert process.pay(paid.id, card=CARD_OK)["outcome"] == "succeeded"
    debit = client.v1.checkout.sessions.create(params=session_params())
    assert process.pay(debit.id, iban="DE89370400440532013000")["outcome"] == "processing"
    ids = {
        "session": paid.id,
        "pi": client.v1.checkout.sessions.retrieve(debit.id).payment_intent,
        "event": client.v1.events.list(params={"limit": 1}).data[0].id,
    }
    answers = 0
    for rule, methods, _ in sandbox_rules():
        for method in methods:
            for auth in ({"Authorization": f"Bearer {KEY}"}, {}):
                body, kind = (b"{}", "application/json") if method != "GET" else (None, None)
                if rule.startswith(("/v1", "/pay")) and method != "GET":
                    body, kind = b"", "application/x-www-form-urlencoded"
                headers = {**auth, **({"Content-Type": kind} if kind else {})}
                status, text, answer_headers = http(process, method, concrete(rule, ids), body, **headers)
                seen = text.decode("utf-8", "replace") + json.dumps(answer_headers)
                assert WEBHOOK_SECRET not in seen, (method, rule, status)
                assert KEY not in seen, (method, rule, status)
                assert status < 500, (method, rule, status, text[:300])
                answers += 1
    assert answers > 40  # every route answered, with and without the key


# --- the key, the origin, the body -----------------------------------------------------------------


@pytest.mark.parametrize("rule, methods", CONTROL_RULES, ids=[r for r, _ in CONTROL_RULES])
def test_every_control_route_needs_the_sandbox_key(process, session, rule, methods):
    path = concrete(rule, {"session": session.id, "pi": "pi_unknown", "event": "evt_unknown"})
    for method in methods:
        body = b"{}" if method != "GET" else None
        for auth in ({}, {"Authorization": f"Bearer {TEST_KEY}"}, {"Authorization": "Bearer sk_live_not_a_key"}):
            status, text, _ = http(process, method, path, body, Content_Type="application/json", **auth)
            assert status == 401, (method, rule, auth, status, text[:200])
            assert json.loads(text)["error"]["type"] == "invalid_request_error"


def test_without_the_key_nobody_pays_or_resets(process, session):
    before = state_of(process, session.id)
    for path in (f"/_sandbox/checkout/sessions/{session.id}/pay", "/_sandbox/reset"):
        status, _, _ = http(
            process, "POST", path, json.dumps({"card": CARD_OK}).encode(), Content_Type="application/json"
        )
        assert status == 401
    assert state_of(process, session.id) == before


@pytest.mark.parametrize("with_key", [False, True])
def test_a_cross_site_form_post_changes_nothing(process, session, with_key):
    """What a page on another site can make a browser send: a form post, with the
    browser's Origin and Sec-Fetch-Site (and, were it possible, the key)."""
    before = state_of(process, session.id)
    auth = {"Authorization": f"Bearer {KEY}"} if with_key else {}
    for path, form in [
        (f"/_sandbox/checkout/sessions/{session.id}/pay", f"card={CARD_OK}"),
        (f"/_sandbox/checkout/sessions/{session.id}/lapse", ""),
        ("/_sandbox/faults", "kind=drop&count=1000"),
        ("/_sandbox/reset", ""),
    ]:
        status, text, _ = http(
            process,
            "POST",
            path,
            form.encode(),
            Content_Type="application/x-www-form-urlencoded",
            Origin="https://evil.example",
            Sec_Fetch_Site="cross-site",
            Sec_Fetch_Mode="navigate",
            **auth,
        )
        assert status == 403, (path, status, text[:200])
        assert "cross-site" in json.loads(text)["error"]
    assert state_of(process, session.id) == before


def pay_with_the_key(process, session, **headers: str) -> tuple[int, bytes, dict]:
    """The control API's pay, as a JSON post with the key and these (browser) headers."""
    body = json.dumps({"card": CARD_OK}).encode()
    path = f"/_sandbox/checkout/sessions/{session.id}/pay"
    return http(process, "POST", path, body, Content_Type="application/json", Authorization=f"Bearer {KEY}", **headers)


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec_Fetch_Site": "cross-site"},
        {"Sec_Fetch_Site": "same-site"},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # same host, another port: another origin
    ],
    ids=["cross-site", "same-site", "other-origin", "null-origin", "other-port"],
)
def test_requests_from_another_origin_are_refused_even_with_the_key(process, session, headers):
    before = state_of(process, session.id)
    status, text, _ = pay_with_the_key(process, session, **headers)
    assert status == 403, text[:200]
    assert state_of(process, session.id) == before


def test_a_same_origin_request_with_the_key_works(process, session):
    status, text, _ = pay_with_the_key(process, session, Origin=process.base, Sec_Fetch_Site="same-origin")
    assert status == 200 and json.loads(text)["outcome"] == "succeeded"


@pytest.mark.parametrize(
    "content_type, body, status",
    [
        ("application/x-www-form-urlencoded", b"card=4242424242424242", 415),
        ("text/plain", b'{"card": "4242424242424242"}', 415),  # a form with enctype=text/plain
        (
            "multipart/form-data; boundary=x",
            b'--x\r\nContent-Disposition: form-data; name="card"\r\n\r\n4242\r\n--x--',
            415,
        ),
        ("application/json", b"", 400),
        ("application/json", b"[]", 400),
        ("application/json", b'"card"', 400),
        ("application/json", b"null", 400),
        ("application/json", b"{not json", 400),
    ],
    ids=["form", "text-plain", "multipart", "empty", "array", "string", "null", "broken"],
)
def test_a_post_must_be_a_json_object(process, session, content_type, body, status):
    before = state_of(process, session.id)
    answer, text, _ = http(
        process,
        "POST",
        f"/_sandbox/checkout/sessions/{session.id}/pay",
        body,
        Content_Type=content_type,
        Authorization=f"Bearer {KEY}",
    )
    assert answer == status, text[:200]
    assert json.loads(text)["error"]
    assert state_of(process, session.id) == before


# --- webhook endpoints: configuration only -----------------------------------------------------------


def test_no_api_adds_changes_or_removes_a_webhook_endpoint(process, session):
    for method, body in [
        ("POST", {"url": "https://evil.example/steal", "secret": "whsec_mine"}),
        ("DELETE", {"url": process.receiver.base + HOOK}),
        ("DELETE", {}),
        ("GET", None),
    ]:
        status, _, _ = http(
            process,
            method,
            "/_sandbox/endpoints",
            json.dumps(body).encode() if body is not None else None,
            Content_Type="application/json",
            Authorization=f"Bearer {KEY}",
        )
        assert status in (404, 405), (method, status)
    assert process.pay(session.id, card=CARD_OK)["outcome"] == "succeeded"
    wait_until(lambda: process.receiver.events(HOOK, {session.id}), what="the completion at the configured URL")
    event = process.client(KEY).v1.events.list(params={"type": "checkout.session.completed", "limit": 1}).data[0]
    assert {d["endpoint_url"] for d in process.deliveries(event.id)} == {process.receiver.base + HOOK}


def test_the_process_takes_its_webhook_urls_from_the_environment_or_its_flags(tmp_path):
    receiver = Receiver()
    urls = f"{receiver.base}/env-a, {receiver.base}/env-b"
    from_env = SandboxProcess(tmp_path / "env.db", env={"STRIPE_SANDBOX_WEBHOOK_URLS": urls}).start()
    try:
        session = from_env.client().v1.checkout.sessions.create(params=session_params())
        assert from_env.pay(session.id, card=CARD_OK)["outcome"] == "succeeded"
        for path in ("/env-a", "/env-b"):
            wait_until(lambda p=path: receiver.events(p, {session.id}), what=f"the completion at {path}")
    finally:
        from_env.stop()
    # A flag replaces the environment's list; it does not add to it.
    flagged = SandboxProcess(
        tmp_path / "flag.db", "--webhook-url", receiver.base + "/flag", env={"STRIPE_SANDBOX_WEBHOOK_URLS": urls}
    ).start()
    try:
        session = flagged.client().v1.checkout.sessions.create(params=session_params())
        assert flagged.pay(session.id, card=CARD_OK)["outcome"] == "succeeded"
        wait_until(lambda: receiver.events("/flag", {session.id}), what="the completion at /flag")
        assert {d["endpoint_url"] for d in flagged.deliveries()} == {receiver.base + "/flag"}
        assert not receiver.events("/env-a", {session.id}, status=None)
    finally:
        flagged.stop()
        receiver.close()


# --- faults: bounded, typed ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"kind": "drop", "count": 1001}, "count must be an integer from 1 to 1000"),
        ({"kind": "drop", "count": 10**12}, "count must be an integer from 1 to 1000"),
        ({"kind": "drop", "count": 0}, "count must be an integer from 1 to 1000"),
        ({"kind": "delay", "seconds": 601}, "at most 600"),
        ({"kind": "delay", "seconds": 0}, "above 0"),
        ({"kind": "delay", "seconds": -5}, "above 0"),
        ({"kind": "delay", "seconds": math.inf}, "at most 600"),
        ({"kind": "delay", "seconds": math.nan}, "at most 600"),
    ],
    ids=["count-1001", "count-1e12", "count-0", "delay-601", "delay-0", "delay-negative", "delay-inf", "delay-nan"],
)
def test_fault_counts_and_delays_are_bounded(process, session, spec, words):
    before = state_of(process, session.id)
    body = process.control("POST", "/_sandbox/faults", spec, expect=400)
    assert words in body["error"]
    assert state_of(process, session.id) == before


def test_the_bounds_themselves_are_allowed(process, session):
    assert process.control("POST", "/_sandbox/faults", {"kind": "drop", "count": 1000})["count"] == 1000
    assert process.control("POST", "/_sandbox/faults", {"kind": "delay", "seconds": 600})["seconds"] == 600


CONTROL_TYPE_ERRORS = [
    ("/_sandbox/faults", {"kind": "api_error", "status": "abc"}, "status"),
    ("/_sandbox/faults", {"kind": "api_error", "status": 99}, "status"),
    ("/_sandbox/faults", {"kind": "api_error", "status": 600}, "status"),
    ("/_sandbox/faults", {"kind": "api_error", "status": True}, "status"),
    ("/_sandbox/faults", {"kind": "api_error", "method": ["POST"]}, "method"),
    ("/_sandbox/faults", {"kind": "api_error", "path": "/_sandbox/reset"}, "path"),
    ("/_sandbox/faults", {"kind": "connection_error", "when": 1}, "when"),
    ("/_sandbox/faults", {"kind": "drop", "count": True}, "count"),
    ("/_sandbox/faults", {"kind": "drop", "count": 1.5}, "count"),
    ("/_sandbox/faults", {"kind": "drop", "count": "3"}, "count"),
    ("/_sandbox/faults", {"kind": ["drop"]}, "kind"),
    ("/_sandbox/faults", {"kind": "drop", "event_type": 5}, "event_type"),
    ("/_sandbox/faults", {"kind": "drop", "seconds": 3}, "takes no seconds"),
    ("/_sandbox/faults", {"kind": "delay", "seconds": "1"}, "seconds"),
    ("/_sandbox/checkout/sessions/{id}/pay", {"card": 4242424242424242}, "card"),
    ("/_sandbox/checkout/sessions/{id}/pay", {"card": CARD_OK, "authenticate": True}, "authenticate"),
    ("/_sandbox/checkout/sessions/{id}/pay", {"email": ["ada@example.com"]}, "email"),
    ("/_sandbox/checkout/sessions/{id}/pay", {"card": CARD_OK, "coupon": "FREE"}, "coupon"),
    ("/_sandbox/checkout/sessions/{id}/pay", {"card": "4" * 10_000}, "card"),
    ("/_sandbox/checkout/sessions/{id}/lapse", {"sweep": "no"}, "sweep"),
    ("/_sandbox/checkout/sessions/{id}/authenticate", {"result": ["complete"]}, "result"),
    ("/_sandbox/checkout/sessions/{id}/authenticate", {}, "result"),
    ("/_sandbox/payment_intents/pi_unknown/settle", {"outcome": 1}, "outcome"),
    ("/_sandbox/refunds/re_unknown/settle", {"outcome": "maybe"}, "outcome"),
    ("/_sandbox/reset", {"everything": True}, "everything"),
    ("/_sandbox/sweep", {"now": 1}, "now"),
    ("/_sandbox/deliveries/retry", {"all": True}, "all"),
]


@pytest.mark.parametrize(
    "path, body, words", CONTROL_TYPE_ERRORS, ids=[f"{p}:{b}"[:70] for p, b, _ in CONTROL_TYPE_ERRORS]
)
def test_wrong_json_types_get_a_400_that_says_what_and_changes_nothing(process, session, path, body, words):
    before = state_of(process, session.id)
    answer = process.control("POST", path.format(id=session.id), body, expect=400)
    assert words in answer["error"]
    assert state_of(process, session.id) == before


def test_an_api_error_fault_answers_with_a_real_status_line(process, session):
    """Once armed with {"status": "abc"} (or 99), the next API call answered 500 or an
    invalid status line; now such a fault is refused and the next call is unharmed."""
    process.control("POST", "/_sandbox/faults", {"kind": "api_error", "status": "abc"}, expect=400)
    process.control("POST", "/_sandbox/faults", {"kind": "api_error", "status": 99}, expect=400)
    assert process.client(KEY).v1.checkout.sessions.retrieve(session.id).status == "open"
    process.control("POST", "/_sandbox/faults", {"kind": "api_error", "status": 503, "path": "/v1/checkout"})
    status, text, _ = http(process, "GET", f"/v1/checkout/sessions/{session.id}", Authorization=f"Bearer {KEY}")
    assert (status, json.loads(text)["error"]["type"]) == (503, "api_error")


# --- any JSON body (Hypothesis, in process) ------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
field_names = st.sampled_from(
    ["kind", "count", "seconds", "status", "event_type", "method", "path", "when", "card", "iban", "email",
     "name", "expiry", "cvc", "authenticate", "sweep", "result", "outcome", "url", "secret"]
)  # fmt: skip
field_values = (
    json_values
    | st.sampled_from(
        [
            *fault_specs.KINDS,
            "GET",
            "POST",
            "/v1/checkout/sessions",
            "before",
            "after",
            "complete",
            "fail",
            "succeeded",
            "failed",
            CARD_OK,
            "4000002500003155",
            "DE89370400440532013000",
            "ada@example.com",
        ]
    )  # fmt: skip
    | st.integers(min_value=-2, max_value=1002)
)
bodies = json_values | st.dictionaries(field_names, field_values, max_size=5)
CONTROL_POSTS = [
    "/_sandbox/faults",
    "/_sandbox/checkout/sessions/{id}/pay",
    "/_sandbox/checkout/sessions/{id}/lapse",
    "/_sandbox/checkout/sessions/{id}/authenticate",
    "/_sandbox/payment_intents/{pi}/settle",
    "/_sandbox/refunds/{re}/settle",
    "/_sandbox/sweep",
    "/_sandbox/deliveries/retry",
    "/_sandbox/faults#DELETE",
]


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    app = create_sandbox_app(
        SandboxConfig(db_path=str(tmp_path_factory.mktemp("hypothesis") / "h.db"), api_key=KEY, start_background=False)
    )
    yield app
    app.extensions["stripe_sandbox_deliverer"].stop()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(target=st.sampled_from(CONTROL_POSTS), body=bodies)
def test_any_json_body_gets_an_answer_and_a_refusal_changes_nothing(in_process, target, body):
    client = in_process.test_client()
    auth = {"Authorization": f"Bearer {KEY}"}
    sandbox = in_process.extensions["stripe_sandbox"]
    session = sandbox.sessions.create(session_params(), hosted_base="http://sandbox.test/", req=_request())
    path, _, method = target.partition("#")

    def snapshot():
        found, _ = sandbox.sessions.get(session["id"])
        return found, client.get("/_sandbox/faults", headers=auth).get_json()

    before = snapshot()
    response = client.open(
        path.format(id=session["id"], pi="pi_unknown", re="re_unknown"),
        method=method or "POST",
        data=json.dumps(body),
        content_type="application/json",
        headers=auth,
    )
    assert response.status_code in (200, 400, 404, 409), (target, body, response.status_code, response.data[:300])
    assert response.is_json and response.get_json()
    if response.status_code >= 400:
        assert snapshot() == before, (target, body)
    client.delete("/_sandbox/faults", json={}, headers=auth)


def _request():
    from storefront.payments.sandbox.events import RequestInfo

    return RequestInfo(id="req_hypothesis")
