"""Organisers watching the live on-sale view during the flash sale (``flash_sale.py --watchers N``).

Each watcher is a staff member of the event's organiser (made with the seed, a random
password), signed in through the real sign-in form (CSRF token, Argon2 check, the session
cookie), who then polls the view's fragment as htmx does (``HX-Request: true``) every
``interval`` seconds while the buyers rush. The watchers are spread over the interval
(watcher i starts at i × interval / N), as people who opened the page at different times
are. Each poll's latency and status are kept; the fragment alone is then measured once
more on the quiet server after the sale.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

from lean_http import Connection, HTTPError

CSRF_RE = re.compile(rb'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')
ORGANISER = "bench"
# Watchers come from their own addresses (TEST-NET-3), apart from the buyers'.
FIRST_ADDRESS = "203.0.113."


@dataclass
class Watchers:
    emails: list[str]
    password: str
    polls: list[tuple[int, float]] = field(default_factory=list)  # (status, ms) during the sale
    quiet: list[float] = field(default_factory=list)  # ms, fragment alone after the sale
    errors: list[str] = field(default_factory=list)


def seed(count: int) -> Watchers:
    """Inside the seeding app context: ``count`` owners of the bench organiser."""
    from storefront import accounts, teams
    from storefront.audit import Actor
    from storefront.extensions import db
    from storefront.models import Organiser
    from storefront.staff_models import Role

    password = secrets.token_urlsafe(18)
    organiser = db.session.query(Organiser).filter_by(slug=ORGANISER).one()
    emails = []
    for i in range(count):
        email = f"watcher{i + 1}@bench.example"
        user = accounts.create_user(email, password, Actor.command_line())
        teams.add_member(organiser.id, user.id, Role.OWNER, Actor.command_line())
        emails.append(email)
    return Watchers(emails, password)


def live_path(event_slug: str) -> str:
    return f"/admin/o/{ORGANISER}/events/{event_slug}/live"


async def _sign_in(conn: Connection, email: str, password: str, address: str) -> str:
    """The session cookie of a signed-in staff member."""
    forwarded = {"X-Forwarded-For": address}
    r = await conn.request("GET", "/admin/sign-in", forwarded)
    cookie = _cookie(r)
    match = CSRF_RE.search(r.body)
    if r.status != 200 or not match or not cookie:
        raise HTTPError(f"sign-in page answered {r.status} without a form or a cookie")
    token = (match.group(1) or match.group(2)).decode()
    form = urlencode({"csrf_token": token, "email": email, "password": password}).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie, **forwarded}
    r = await conn.request("POST", "/admin/sign-in", headers, form)
    signed_in = _cookie(r)
    if r.status != 303 or not signed_in:
        raise HTTPError(f"sign-in answered {r.status}: {r.body[:200]!r}")
    return signed_in


def _cookie(response) -> str | None:
    for header in response.getall("Set-Cookie"):
        pair = header.split(";", 1)[0]
        if pair.startswith("session="):
            return pair
    return None


async def sign_in_all(base: str, watchers: Watchers) -> list[str]:
    host, port = urlsplit(base).hostname, urlsplit(base).port
    cookies = []
    for i, email in enumerate(watchers.emails):
        conn = Connection(host, port)
        try:
            cookies.append(await _sign_in(conn, email, watchers.password, f"{FIRST_ADDRESS}{i + 1}"))
        finally:
            await conn.close()
    return cookies


async def _poll(conn: Connection, path: str, cookie: str, address: str) -> tuple[int, float, bytes]:
    headers = {"HX-Request": "true", "Cookie": cookie, "X-Forwarded-For": address}
    t0 = time.perf_counter()
    r = await conn.request("GET", path, headers)
    return r.status, (time.perf_counter() - t0) * 1000, r.body


async def watch(base: str, path: str, cookies: list[str], interval: float, watchers: Watchers, stop: asyncio.Event):
    """Every watcher polls ``path`` every ``interval`` s until ``stop`` is set."""
    host, port = urlsplit(base).hostname, urlsplit(base).port

    async def one(i: int, cookie: str) -> None:
        conn = Connection(host, port)
        address = f"{FIRST_ADDRESS}{i + 1}"
        try:
            next_at = time.perf_counter() + i * interval / len(cookies)
            while not stop.is_set():
                delay = next_at - time.perf_counter()
                if delay > 0:
                    try:
                        await asyncio.wait_for(stop.wait(), delay)
                        return
                    except TimeoutError:
                        pass
                next_at += interval
                try:
                    status, ms, body = await _poll(conn, path, cookie, address)
                except (TimeoutError, HTTPError, OSError) as error:
                    watchers.errors.append(f"{type(error).__name__}: {error}")
                    await conn.close()
                    continue
                watchers.polls.append((status, ms))
                if status != 200 or b'id="live-sales"' not in body:
                    watchers.errors.append(f"live fragment answered {status}")
        finally:
            await conn.close()

    await asyncio.gather(*(one(i, c) for i, c in enumerate(cookies)))


async def quiet_polls(base: str, path: str, cookie: str, count: int, watchers: Watchers) -> None:
    """The fragment alone on the quiet server, ``count`` polls one after another (with the
    cache on, most are answered from it: run with --watch-no-cache for a reading each)."""
    host, port = urlsplit(base).hostname, urlsplit(base).port
    conn = Connection(host, port)
    try:
        for _ in range(count):
            status, ms, _body = await _poll(conn, path, cookie, f"{FIRST_ADDRESS}250")
            if status == 200:
                watchers.quiet.append(ms)
            else:
                watchers.errors.append(f"quiet live fragment answered {status}")
    finally:
        await conn.close()


def summary(watchers: Watchers, pct, interval: float) -> dict:
    ok = [ms for status, ms in watchers.polls if status == 200]
    return {
        "watchers": len(watchers.emails),
        "interval_s": interval,
        "polls": len(watchers.polls),
        "non_200": sum(1 for status, _ in watchers.polls if status != 200),
        "p50": pct(ok, 50),
        "p99": pct(ok, 99),
        "max": max(ok, default=float("nan")),
        "quiet_n": len(watchers.quiet),
        "quiet_p50": pct(watchers.quiet, 50),
        "quiet_p99": pct(watchers.quiet, 99),
        "errors": watchers.errors[:10],
    }
