"""Who may reach every admin route, read off the app's url_map: a new admin route is
covered the moment it exists, or this suite fails until it says how.

For each admin route and method, and each of: anonymous, every role, an owner of another
organiser, and a manager limited to other events, the answer is what the route's rule
(``storefront.admin.permissions``) says, and a refusal changed nothing in the database
(every table compared). Then: another organiser's objects inside our URLs are 404, every
form is refused without its CSRF token, and a cross-site post changes nothing.
"""

from __future__ import annotations

import re

import pytest

from storefront.admin.permissions import Rule, Scope, allows, rule_of
from storefront.staff_models import Role

from .admin_support import (
    FOREIGN_ARGUMENTS,
    PRINCIPALS,
    URL_ARGUMENTS,
    World,
    build_world,
    sign_in_as,
    snapshot,
)
from .conftest import make_app

METHODS = ("GET", "POST")
ROLE_OF = {
    "owner": Role.OWNER,
    "manager": Role.MANAGER,
    "box_office": Role.BOX_OFFICE,
    "door": Role.DOOR,
    "viewer": Role.VIEWER,
    "limited": Role.MANAGER,
}


def _admin_routes():
    """(endpoint, method, rule text) of every admin route, from a throwaway app."""
    app = make_app("sqlite://")
    routes = []
    for url_rule in app.url_map.iter_rules():
        if not url_rule.endpoint.startswith("admin."):
            continue
        for method in sorted(url_rule.methods & set(METHODS)):
            routes.append((url_rule.endpoint, method, url_rule.rule))
    return routes


ROUTES = _admin_routes()


def test_every_admin_view_has_an_access_rule_and_fillable_arguments(app):
    assert len(ROUTES) >= 20
    for url_rule in app.url_map.iter_rules():
        if not url_rule.endpoint.startswith("admin."):
            continue
        rule = rule_of(app.view_functions[url_rule.endpoint])
        assert isinstance(rule, Rule), f"{url_rule.rule} ({url_rule.endpoint}) has no access rule: decorate it"
        missing = set(url_rule.arguments) - set(URL_ARGUMENTS)
        assert not missing, f"{url_rule.rule}: tell tests/admin_support.py URL_ARGUMENTS how to fill {missing}"
        if rule.scope in (Scope.ORGANISER, Scope.EVENT):
            assert "organiser" in url_rule.arguments, f"{url_rule.rule}: an organiser's view needs <organiser>"
        if rule.scope is Scope.EVENT:
            assert "event" in url_rule.arguments, f"{url_rule.rule}: an event's view needs <event>"


def url_for_world(app, endpoint: str, world: World, **override) -> str:
    url_rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    values = {name: URL_ARGUMENTS[name](world, endpoint) for name in url_rule.arguments}
    values.update(override)
    with app.test_request_context():
        from flask import url_for

        return url_for(endpoint, **values)


def expected(rule: Rule, principal: str) -> str:
    """ "allowed", "sign_in" (sent to sign in) or "not_found" (also for a role without the
    permission: never a 403 that confirms the page exists); "public" for a
    route anyone may call (it answers as it sees fit, never with a server error)."""
    if rule.scope is Scope.PUBLIC:
        return "public"
    if principal == "anonymous":
        return "sign_in"
    if rule.scope is Scope.SIGNED_IN:
        return "allowed"
    if principal == "other_organiser":
        return "not_found"
    if rule.scope is Scope.EVENT and principal == "limited":
        return "not_found"
    return "allowed" if allows(ROLE_OF[principal], rule.permission) else "not_found"


def outcome(answer) -> str:
    if answer.status_code >= 500:
        return f"server error {answer.status_code}"
    if answer.status_code in (301, 302, 303) and answer.headers["Location"].startswith("/admin/sign-in"):
        return "sign_in"
    return {404: "not_found", 403: "forbidden"}.get(answer.status_code, "allowed")


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("endpoint, method, path", ROUTES)
def test_access(app, endpoint, method, path, principal):
    world = build_world()
    rule = rule_of(app.view_functions[endpoint])
    client = app.test_client()
    if principal != "anonymous":
        sign_in_as(client, world.users[principal])
    url = url_for_world(app, endpoint, world)
    want = expected(rule, principal)
    before = snapshot()
    answer = client.open(url, method=method, data={} if method == "POST" else None)
    got = outcome(answer)
    if want == "public":
        assert answer.status_code < 500, f"{principal} {method} {url}: {answer.status_code}"
        return
    assert got == want, f"{principal} {method} {url}: {answer.status_code} ({got}), expected {want}"
    if want != "allowed":
        assert snapshot() == before, f"{principal} {method} {url} was refused but changed the database"
        if want in ("not_found", "forbidden"):
            page = answer.get_data(as_text=True)
            assert world.away.name not in page or principal == "other_organiser"


FOREIGN_ROUTES = [
    (endpoint, method, path)
    for endpoint, method, path in ROUTES
    if any(f"<{name}>" in path or f":{name}>" in path for name in FOREIGN_ARGUMENTS)
]


@pytest.mark.parametrize("endpoint, method, path", FOREIGN_ROUTES)
def test_another_organisers_objects_are_not_found_inside_our_urls(app, endpoint, method, path):
    world = build_world()
    client = app.test_client()
    sign_in_as(client, world.users["owner"])
    url_rule = next(r for r in app.url_map.iter_rules() if r.endpoint == endpoint)
    for name in set(url_rule.arguments) & set(FOREIGN_ARGUMENTS):
        url = url_for_world(app, endpoint, world, **{name: FOREIGN_ARGUMENTS[name](world)})
        before = snapshot()
        answer = client.open(url, method=method, data={} if method == "POST" else None)
        assert answer.status_code == 404, f"{method} {url}: {answer.status_code}"
        assert snapshot() == before
        assert world.away.name not in answer.get_data(as_text=True)


def test_foreign_routes_cover_every_kind_of_object(app):
    covered = {name for _e, _m, path in FOREIGN_ROUTES for name in FOREIGN_ARGUMENTS if name in path}
    assert covered == set(FOREIGN_ARGUMENTS)


POST_ROUTES = [(endpoint, path) for endpoint, method, path in ROUTES if method == "POST"]


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
@pytest.mark.parametrize("endpoint, path", POST_ROUTES)
def test_every_form_is_refused_without_its_csrf_token(app, endpoint, path):
    world = build_world()
    client = app.test_client()
    rule = rule_of(app.view_functions[endpoint])
    if rule.scope is not Scope.PUBLIC:
        sign_in_as(client, world.users["owner"])
    url = url_for_world(app, endpoint, world)
    # A cross-site form post: it carries the victim's cookie, not the page's token.
    form = {"email": "owner@example.com", "password": "x" * 12, "role": "owner", "code": "123456"}
    before = snapshot()
    answer = client.post(url, data=form, headers={"Origin": "https://evil.example"})
    assert answer.status_code == 400, f"POST {url}: {answer.status_code}"
    assert snapshot() == before
    forged = client.post(url, data={**form, "csrf_token": "forged"})
    assert forged.status_code == 400
    assert snapshot() == before


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_with_csrf_on_the_pages_forms_carry_a_token_that_works(app):
    world = build_world()
    client = app.test_client()
    sign_in_as(client, world.users["owner"])
    page = client.get(url_for_world(app, "admin.organiser_settings", world)).get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    answer = client.post(
        url_for_world(app, "admin.organiser_settings", world),
        data={"csrf_token": token, "contact_email": "hello@home.example"},
    )
    assert answer.status_code == 303
