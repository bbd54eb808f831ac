#!/usr/bin/env python3
"""Flash-sale benchmark: many buyers at once for one ticket type of capacity C.

For each connection count it:

1. drops and recreates a PostgreSQL database of its own, migrates it, and seeds one
   published event with one ticket type of capacity C;
2. starts the app under gunicorn (bench/gunicorn.conf.py) on a loopback port and
   waits until every worker answers;
3. lets N distinct buyers loose, each with its own cookie jar (its own session) and
   its own address (``X-Forwarded-For``, trusted as a load balancer's through
   ``TRUSTED_PROXIES=1``; the limits are on and counted in Redis, as in production):
   GET /events/<slug> (session cookie + CSRF token), then POST the add-to-cart form
   as htmx does (HX-Request: true), at most ``connections`` requests in flight;
4. measures the event page alone (wrk if installed, else the async client);
5. checks the database: held == C, the active carts' items add up to held, exactly C
   adds succeeded, nothing oversold;
6. reads each gunicorn worker's resident memory, stops gunicorn.

It prints a report and writes it into bench/REPORT.md, between the
``<!-- results:begin -->`` and ``<!-- results:end -->`` markers (the hand-written
analysis around them is kept). Exit status 1 if a correctness check failed,
2 if a speed target was missed (``--strict``), 0 otherwise.

Run from the project root with the venv:

    .venv/bin/python bench/flash_sale.py                    # 2000 buyers, C=500, 64 and 32 connections
    .venv/bin/python bench/flash_sale.py --buyers 500 --capacity 100 --connections 16 --no-report

Everything stays on loopback and is bounded in time and count.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import purchase
import watchers as live_watchers
from lean_http import Connection, HTTPError, Response

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_BIN = Path(sys.executable).parent
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/storefront_bench"
# Databases other people's runs use; this script refuses to drop them.
FORBIDDEN_DBS = ("storefront_test", "storefront_conc", "storefront_browser", "postgres", "template0", "template1")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
SLUG = "flash-sale"
# Buyer i comes from FIRST_BUYER + i: RFC 2544's range for benchmarks (131072 addresses).
FIRST_BUYER = ipaddress.IPv4Address("198.18.0.0")
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"

CSRF_RE = re.compile(rb'name="csrf_token" value="([^"]+)"')
QTY_RE = re.compile(rb'name="quantity-(\d+)"')

# Targets from the issue, for a 2-core machine with the load generator on it.
TARGET_BUYERS_PER_S = 180.0  # at 64 connections
TARGET_ADD_P99_MS = 150.0  # at 64 connections
TARGET_PAGE_RPS = 600.0  # event page alone


# --- small helpers ---------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank), in the values' unit; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(p / 100 * len(ordered) + 0.5)) - 1))
    return ordered[k]


def sqlalchemy_url(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def check_database_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        sys.exit("flash_sale.py: the benchmark runs on PostgreSQL; give a postgresql:// URL")
    if (parts.hostname or "") not in LOOPBACK:
        sys.exit(f"flash_sale.py: refusing non-loopback database host {parts.hostname!r}")
    name = parts.path.lstrip("/")
    if not name or name.startswith(FORBIDDEN_DBS[:3]) or name in FORBIDDEN_DBS:
        sys.exit(f"flash_sale.py: refusing to drop database {name!r}; use one of your own (e.g. storefront_bench)")
    return name


def read_proc(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def children_of(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        kids += [int(x) for x in read_proc(f"{task}/children").split()]
    return sorted(kids)


def status_kb(pid: int, key: str) -> int:
    for line in read_proc(f"/proc/{pid}/status").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def pss_kb(pid: int) -> int:
    for line in read_proc(f"/proc/{pid}/smaps_rollup").splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 if it is gone)."""
    raw = read_proc(f"/proc/{pid}/stat")
    if not raw:
        return 0.0
    fields = raw.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def postgres_pids() -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit() and read_proc(f"{p}/comm").strip() == "postgres":
            pids.append(int(p.name))
    return pids


def total_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(p) for p in pids)


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    return {p: cpu_seconds(p) for p in pids}


def cpu_since(before: dict[int, float], pids: list[int]) -> float:
    """CPU seconds used since ``before`` by ``pids``; a pid not in ``before`` started
    meanwhile (a new PostgreSQL backend, a respawned worker) and counts in full."""
    return sum(max(0.0, cpu_seconds(p) - before.get(p, 0.0)) for p in pids)


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    f = [int(x) for x in read_proc("/proc/stat").splitlines()[0].split()[1:8]]
    total = sum(f) / CLK_TCK
    return total - (f[3] + f[4]) / CLK_TCK, total


def busy_fraction(seconds: float = 2.0) -> float:
    """Share of the machine's CPU time in use over ``seconds`` (0..1)."""

    def sample():
        f = [int(x) for x in read_proc("/proc/stat").splitlines()[0].split()[1:]]
        return sum(f), f[3] + f[4]  # total, idle + iowait

    t0, i0 = sample()
    time.sleep(seconds)
    t1, i1 = sample()
    return 1 - (i1 - i0) / max(1, t1 - t0)


def wait_until_quiet(limit_s: float, threshold: float = 0.15) -> str:
    """Wait (at most ``limit_s``) until other processes leave the CPUs mostly idle:
    the load generator and the server share them, so a busy neighbour skews every number."""
    deadline = time.monotonic() + limit_s
    busy = busy_fraction()
    while busy > threshold and time.monotonic() < deadline:
        print(f"  machine {busy:.0%} busy with other work; waiting for it to settle", flush=True)
        time.sleep(5)
        busy = busy_fraction()
    return f"{busy:.0%}"


def machine_facts(db_url: str) -> dict[str, str]:
    cpuinfo = read_proc("/proc/cpuinfo")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "?")
    mhz = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("cpu MHz")), "?")
    mem_kb = next(
        (int(line.split()[1]) for line in read_proc("/proc/meminfo").splitlines() if line.startswith("MemTotal")), 0
    )
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    engine = create_engine(make_url(sqlalchemy_url(db_url)).set(database="postgres"))
    with engine.connect() as conn:
        pg = conn.execute(text("SHOW server_version")).scalar_one()
        pg_max = conn.execute(text("SHOW max_connections")).scalar_one()
    engine.dispose()
    import gunicorn

    return {
        "date (UTC)": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "CPUs (nproc)": str(os.cpu_count()),
        "CPU model": f"{model} ({mhz} MHz)",
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "kernel": platform.release(),
        "Python": platform.python_version(),
        "PostgreSQL": f"{pg} (max_connections {pg_max}), same machine, loopback TCP",
        "gunicorn": gunicorn.__version__,
        "load average before": " ".join(read_proc("/proc/loadavg").split()[:3]),
    }


# --- database ----------------------------------------------------------------------------


def recreate_database(db_url: str, capacity: int) -> int:
    """Fresh database, migrated, with one event and one ticket type; returns its id."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    target = make_url(sqlalchemy_url(db_url))
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    admin.dispose()

    from flask_migrate import upgrade

    from storefront import create_app
    from storefront.database import write_transaction
    from storefront.extensions import db
    from storefront.models import Event, EventStatus, Organiser, TicketType, utcnow

    # Demo mode for migrating and seeding only: this app takes no payment.
    app = create_app({"SQLALCHEMY_DATABASE_URI": sqlalchemy_url(db_url), "DEMO_MODE": True})
    with app.app_context():
        upgrade()
        with write_transaction():
            org = Organiser(name="Bench Productions", slug="bench")
            event = Event(
                organiser=org,
                slug=SLUG,
                title="Flash Sale Live",
                description="The on-sale minute.",
                venue="Bench Arena, Paris",
                starts_at=utcnow() + dt.timedelta(days=30),
                timezone="Europe/Paris",
                currency="EUR",
                status=EventStatus.PUBLISHED.value,
            )
            event.ticket_types = [
                TicketType(
                    name="General admission",
                    description="Standing.",
                    price_minor=4500,
                    capacity=capacity,
                    max_per_order=10,
                    position=1,
                ),
            ]
            db.session.add(event)
        tt_id = event.ticket_types[0].id
        db.session.remove()
        db.engine.dispose()
    return tt_id


def seed_watchers(db_url: str, count: int) -> live_watchers.Watchers:
    """``count`` staff members of the event's organiser, to watch its live view (--watchers)."""
    from storefront import create_app
    from storefront.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": sqlalchemy_url(db_url), "DEMO_MODE": True})
    with app.app_context():
        seeded = live_watchers.seed(count)
        db.session.remove()
        db.engine.dispose()
    return seeded


def verify(db_url: str, tt_id: int, capacity: int, successes: int, quantity: int, sold_ok: bool = False) -> dict:
    """The stock promises after the rush. With ``sold_ok`` (--purchase) paid tickets
    are sold, and carts being paid for (checking_out) still hold theirs."""
    from sqlalchemy import create_engine, text

    engine = create_engine(sqlalchemy_url(db_url))
    with engine.connect() as conn:
        held, sold, cap = conn.execute(
            text("SELECT held, sold, capacity FROM ticket_types WHERE id = :id"), {"id": tt_id}
        ).one()
        in_holding_carts = conn.execute(
            text(
                "SELECT coalesce(sum(ci.quantity), 0) FROM cart_items ci JOIN carts c ON c.id = ci.cart_id"
                " WHERE c.status IN ('active', 'checking_out') AND ci.ticket_type_id = :id"
            ),
            {"id": tt_id},
        ).scalar_one()
        holding_carts = conn.execute(
            text("SELECT count(*) FROM carts WHERE status IN ('active', 'checking_out')")
        ).scalar_one()
        all_carts = conn.execute(text("SELECT count(*) FROM carts")).scalar_one()
    engine.dispose()
    oversell = max(0, successes * quantity - capacity)
    checks = {
        ("held + sold == C" if sold_ok else "held == C"): held + sold == capacity and (sold_ok or sold == 0),
        "sold + held <= capacity (database)": sold + held <= cap,
        "sum(cart_items of holding carts) == held": in_holding_carts == held,
        "successful adds == C": successes * quantity == capacity,
        "oversell == 0": oversell == 0,
        "one cart per successful buyer": all_carts == successes and (sold_ok or holding_carts == successes),
    }
    return {
        "held": held,
        "sold": sold,
        "capacity": cap,
        "in_active_carts": in_holding_carts,
        "active_carts": holding_carts,
        "all_carts": all_carts,
        "oversell": oversell,
        "checks": checks,
    }


# --- gunicorn ----------------------------------------------------------------------------


@dataclass
class Server:
    proc: subprocess.Popen
    port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def workers(self) -> list[int]:
        return children_of(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def buyer_address(buyer: int) -> str:
    return str(FIRST_BUYER + buyer)


def check_redis(url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        sys.exit(f"flash_sale.py: the limits are counted in Redis, as in production; {url} unreachable: {error}")


def delete_redis_keys(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def storefront_env(args, db_url: str, secret: str, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every storefront process of a run (web and job workers)."""
    out = BENCH / "out"
    env = dict(os.environ)
    env.update(
        DATABASE_URL=db_url,
        SECRET_KEY=secret,
        HOLD_MINUTES="15",  # no hold may lapse during the run
        DB_POOL_SIZE=str(args.pool_size),
        PYTHONDONTWRITEBYTECODE="0",
        MAIL_OUTBOX=str(out / "outbox"),  # confirmation mails of the run, not into instance/
        # The production shape: behind one load balancer, whose X-Forwarded-For names the
        # buyer; the limits on, counted in Redis across the workers; the job queue there too.
        TRUSTED_PROXIES="1",
        REDIS_URL=args.redis_url,
        REDIS_KEY_PREFIX=args.redis_prefix,
    )
    env.update(extra_env or {})
    if not env.get("STRIPE_SECRET_KEY"):
        # No sandbox process (no --purchase): demo mode, the built-in sandbox, which the
        # add-to-cart rush never calls. Without a key or demo mode the storefront refuses to start.
        env["STOREFRONT_DEMO"] = "1"
    return env


def start_worker(args, db_url: str, secret: str, extra_env: dict[str, str] | None = None) -> Server:
    """``flask --app wsgi worker`` (the job queue's consumer, on the run's Redis): with
    --purchase it sends the confirmation mails the webhooks queue, as in production."""
    out = BENCH / "out"
    out.mkdir(exist_ok=True)
    log = out / "worker.log"
    cmd = [str(VENV_BIN / "flask"), "--app", "wsgi", "worker", "--workers", str(args.job_workers)]
    with open(log, "wb") as sink:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=storefront_env(args, db_url, secret, extra_env), stdout=sink, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"the job worker exited with {proc.returncode}; see {log}\n{read_proc(str(log))[-3000:]}")
        if "Job worker started" in read_proc(str(log)):
            return Server(proc, 0, log)
        time.sleep(0.2)
    proc.kill()
    sys.exit(f"the job worker did not start within 30 s; see {log}")


def start_gunicorn(
    args,
    db_url: str,
    secret: str,
    extra_env: dict[str, str] | None = None,
    port: int | None = None,
    workers: int | None = None,
) -> Server:
    """gunicorn on ``port`` (default --port) with ``workers`` (default --workers)."""
    port, workers = port or args.port, workers or args.workers
    out = BENCH / "out"
    out.mkdir(exist_ok=True)
    log = out / f"gunicorn-{port}.log"
    env = storefront_env(args, db_url, secret, extra_env)
    env.pop("GUNICORN_CMD_ARGS", None)
    cmd = [
        str(VENV_BIN / "gunicorn"),
        "-c",
        str(args.gunicorn_conf),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        args.worker_class,
        "--threads",
        str(args.threads),
        "--error-logfile",
        str(log),
        "wsgi:app",
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    server = Server(proc, port, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"gunicorn exited with {proc.returncode}; see {log}\n{read_proc(str(log))[-3000:]}")
        if len(server.workers()) >= workers:
            try:
                import urllib.request

                with urllib.request.urlopen(f"{server.base}/events/{SLUG}", timeout=5) as r:
                    if r.status == 200:
                        return server
            except OSError:
                pass
        time.sleep(0.2)
    server.stop()
    sys.exit(f"gunicorn did not come up within 60 s; see {log}")


# --- the load ----------------------------------------------------------------------------


@dataclass
class Sample:
    kind: str  # "page" or "add"
    status: int
    ms: float


@dataclass
class LoadResult:
    samples: list[Sample] = field(default_factory=list)
    wall_s: float = 0.0
    buyers_done: int = 0
    held: int = 0  # adds answered 200
    sold_out: int = 0  # adds answered 409
    page_sold_out: int = 0  # event pages that showed no quantity field any more
    errors: list[str] = field(default_factory=list)
    client_cpu_s: float = 0.0
    purchase: purchase.PurchaseStats = field(default_factory=purchase.PurchaseStats)

    def ms(self, kind: str, status: int | None = None) -> list[float]:
        return [s.ms for s in self.samples if s.kind == kind and (status is None or s.status == status)]


class Jar:
    """One buyer's cookies: name -> value, from Set-Cookie, sent back as Cookie."""

    __slots__ = ("cookies",)

    def __init__(self):
        self.cookies: dict[str, str] = {}

    def update(self, response: Response) -> None:
        for header in response.getall("Set-Cookie"):
            pair = header.split(";", 1)[0]
            name, _, value = pair.partition("=")
            if "max-age=0" in header.lower() or "expires=thu, 01 jan 1970" in header.lower():
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value.strip()

    def header(self) -> dict[str, str]:
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())} if self.cookies else {}


async def one_buyer(
    conn: Connection,
    base: str,
    tt_id: int,
    quantity: int,
    result: LoadResult,
    buyer: int = 0,
    pay_conn: Connection | None = None,
) -> None:
    jar = Jar()
    forwarded = {"X-Forwarded-For": buyer_address(buyer)}
    t0 = time.perf_counter()
    r = await conn.request("GET", f"/events/{SLUG}", {**forwarded, **jar.header()})
    result.samples.append(Sample("page", r.status, (time.perf_counter() - t0) * 1000))
    jar.update(r)
    if r.status != 200:
        result.errors.append(f"event page answered {r.status}")
        return
    token = CSRF_RE.search(r.body)
    if not token:
        result.errors.append("event page without a CSRF token")
        return
    if not QTY_RE.search(r.body):
        # Sold out on the page already; the buyer tries anyway (a page loaded a
        # moment earlier, a second tab, a script): the server must say no.
        result.page_sold_out += 1
    csrf = token.group(1).decode()
    form = urlencode({"csrf_token": csrf, f"quantity-{tt_id}": str(quantity)}).encode()
    headers = {
        "HX-Request": "true",
        "HX-Current-URL": f"{base}/events/{SLUG}",
        "X-CSRFToken": csrf,
        "Content-Type": "application/x-www-form-urlencoded",
        **forwarded,
        **jar.header(),
    }
    t0 = time.perf_counter()
    r = await conn.request("POST", f"/events/{SLUG}/cart", headers, form)
    result.samples.append(Sample("add", r.status, (time.perf_counter() - t0) * 1000))
    jar.update(r)
    if r.status == 200:
        if b'id="cart"' not in r.body or b"cart-line" not in r.body:
            result.errors.append("200 without the cart fragment holding a line")
        result.held += 1
        if pay_conn is not None:  # --purchase: on to Stripe
            result.buyers_done += 1
            await purchase.buy(conn, pay_conn, jar, csrf, buyer, result.purchase, forwarded)
            return
    elif r.status == 409:
        if b"notice-error" not in r.body:
            result.errors.append("409 without an error message in the fragment")
        result.sold_out += 1
    else:
        result.errors.append(f"add to cart answered {r.status}: {r.body[:200]!r}")
    result.buyers_done += 1


async def flash_sale(
    base: str,
    tt_id: int,
    buyers: int,
    connections: int,
    quantity: int,
    limit_s: float,
    rate: float | None,
    pay_base: str | None = None,
    watch: tuple[live_watchers.Watchers, list[str], float] | None = None,
) -> LoadResult:
    """The rush; with ``watch`` (watchers, their session cookies, interval) the organisers
    poll the live view meanwhile, until the last buyer is done."""
    result = LoadResult()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(buyers):
        queue.put_nowait(i)
    host, port = urlsplit(base).hostname, urlsplit(base).port
    start = time.perf_counter()

    async def runner():
        conn = Connection(host, port)
        pay_conn = Connection(urlsplit(pay_base).hostname, urlsplit(pay_base).port) if pay_base else None
        try:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                if rate:  # open loop: buyer i arrives at i / rate seconds
                    delay = start + i / rate - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                try:
                    await one_buyer(conn, base, tt_id, quantity, result, i, pay_conn)
                except (TimeoutError, HTTPError, OSError) as error:
                    result.errors.append(f"{type(error).__name__}: {error}")
                    await conn.close()
                    if pay_conn is not None:
                        await pay_conn.close()
        finally:
            await conn.close()
            if pay_conn is not None:
                await pay_conn.close()

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    stop_watching = asyncio.Event()
    watching = None
    if watch is not None:
        seen, cookies, interval = watch
        watching = asyncio.create_task(
            live_watchers.watch(base, live_watchers.live_path(SLUG), cookies, interval, seen, stop_watching)
        )
    tasks = [asyncio.create_task(runner()) for _ in range(connections)]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=limit_s)
    except TimeoutError:
        result.errors.append(f"flash sale did not finish within {limit_s:.0f} s")
        for t in tasks:
            t.cancel()
    result.wall_s = time.perf_counter() - start
    if watching is not None:
        stop_watching.set()
        await watching
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    result.client_cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    return result


async def page_only_async(base: str, connections: int, seconds: float) -> dict:
    """The event page alone with the lean client (when wrk is not installed)."""
    lat: list[float] = []
    statuses: dict[int, int] = {}
    stop_at = time.perf_counter() + seconds
    host, port = urlsplit(base).hostname, urlsplit(base).port

    async def loop():
        conn = Connection(host, port)
        try:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                r = await conn.request("GET", f"/events/{SLUG}")
                statuses[r.status] = statuses.get(r.status, 0) + 1
                lat.append((time.perf_counter() - t0) * 1000)
        finally:
            await conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(connections)))
    wall = time.perf_counter() - start
    return {
        "tool": "asyncio client",
        "rps": len(lat) / wall,
        "p50": pct(lat, 50),
        "p99": pct(lat, 99),
        "requests": len(lat),
        "non_2xx": sum(n for s, n in statuses.items() if s != 200),
    }


def page_only_wrk(base: str, connections: int, seconds: float, threads: int) -> dict:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        "--timeout",
        "10s",
        "--latency",
        f"{base}/events/{SLUG}",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout

    def unit_ms(value: str) -> float:
        m = re.match(r"([\d.]+)(us|ms|s)", value)
        n, unit = float(m.group(1)), m.group(2)
        return n / 1000 if unit == "us" else n * 1000 if unit == "s" else n

    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    return {
        "tool": f"wrk -t{threads}",
        "rps": float(rps.group(1)),
        "p50": unit_ms(p50.group(1)),
        "p99": unit_ms(p99.group(1)),
        "requests": int(total.group(1)),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "socket_errors": errors.group(1) if errors else "",
        "raw": out,
    }


async def warm_up(base: str, requests: int) -> None:
    host, port = urlsplit(base).hostname, urlsplit(base).port

    async def get(n: int):
        conn = Connection(host, port)
        try:
            for _ in range(n):
                await conn.request("GET", f"/events/{SLUG}")
        finally:
            await conn.close()

    await asyncio.gather(*(get(max(1, requests // 8)) for _ in range(8)))


# --- one run -----------------------------------------------------------------------------


def run_once(args, connections: int, db_url: str) -> dict:
    print(f"\n=== {connections} connections: fresh database, {args.buyers} buyers, C = {args.capacity}", flush=True)
    tt_id = recreate_database(db_url, args.capacity)
    seen = seed_watchers(db_url, args.watchers) if args.watchers else None
    sandbox = watcher = hooks = job_worker = None
    secret = secrets.token_hex(32)
    if args.purchase:
        # With --webhook-workers, Stripe's webhooks go to gunicorn processes of their own
        # (as a load balancer would route /webhooks/stripe), so payments do not queue
        # behind the rush's browsing.
        hooks_port = args.port + 1 if args.webhook_workers else args.port
        sandbox = purchase.SandboxServer(BENCH / "out", f"http://127.0.0.1:{hooks_port}/webhooks/stripe")
    try:
        extra_env = {**(sandbox.storefront_env() if sandbox else {})}
        if args.watch_no_cache:
            extra_env["LIVE_VIEW_CACHE_SECONDS"] = "0"
        server = start_gunicorn(args, db_url, secret, extra_env or None)
        if sandbox and args.webhook_workers:
            hooks = start_gunicorn(
                args, db_url, secret, sandbox.storefront_env(), port=args.port + 1, workers=args.webhook_workers
            )
        if sandbox:
            # The webhooks queue the confirmation mails; a worker process sends them.
            job_worker = start_worker(args, db_url, secret, sandbox.storefront_env())
    except BaseException:
        if sandbox:
            sandbox.stop()
        raise
    try:
        workers = server.workers()
        asyncio.run(warm_up(server.base, 40 * len(workers)))
        # The organisers sign in before the sale (Argon2 at each sign-in: not the rush's cost).
        cookies = asyncio.run(live_watchers.sign_in_all(server.base, seen)) if seen else None
        busy_before = wait_until_quiet(args.quiet_wait) if args.quiet_wait > 0 else "not checked"
        if sandbox:
            watcher = purchase.OrderWatcher(sqlalchemy_url(db_url))
            watcher.start()
        srv0, pg0, (busy0, all0) = cpu_by_pid(workers), cpu_by_pid(postgres_pids()), machine_cpu()
        load = asyncio.run(
            flash_sale(
                server.base,
                tt_id,
                args.buyers,
                connections,
                args.quantity,
                args.max_seconds,
                args.rate,
                sandbox.base if sandbox else None,
                (seen, cookies, args.watch_interval) if seen else None,
            )
        )
        srv_cpu = cpu_since(srv0, server.workers())
        pg_cpu = cpu_since(pg0, postgres_pids())
        busy1, all1 = machine_cpu()
        # What the machine spent beyond the server, PostgreSQL and this load generator:
        # the kernel's share outside process accounting and other people's processes.
        other_cpu = max(0.0, (busy1 - busy0) - srv_cpu - pg_cpu - load.client_cpu_s)
        machine_busy = (busy1 - busy0) / max(1e-9, all1 - all0)
        print(
            f"  flash sale: {load.buyers_done} buyers in {load.wall_s:.2f} s, {load.held} held, "
            f"{load.sold_out} sold out, {len(load.errors)} errors",
            flush=True,
        )
        purchase_result = None
        if sandbox:
            # The last webhooks may still be on their way: wait (bounded) for every paid order.
            watcher.wait_for(set(load.purchase.paid_at), timeout=60)
            deadline = time.monotonic() + 30
            while sandbox.undelivered() and time.monotonic() < deadline:
                time.sleep(0.2)
            watcher.stop()
            purchase_result = {
                "purchase": purchase.summary(
                    load.purchase, watcher.seen, sandbox.webhook_deliveries(), load.wall_s, pct
                ),
                "purchase_checks": purchase.verify(sqlalchemy_url(db_url), tt_id, args.capacity, load.purchase),
                "purchase_errors": load.purchase.errors,
                "webhook_workers": args.webhook_workers,
            }
            s = purchase_result["purchase"]
            print(
                f"  purchase: {s['paid']} paid, {s['declined']} declined, {s['abandoned']} left; checkout p99 "
                f"{s['checkout_p99']:.0f} ms; payment -> order p99 {s['visible_p99']:.0f} ms",
                flush=True,
            )
        checks = verify(db_url, tt_id, args.capacity, load.held, args.quantity, sold_ok=bool(sandbox))
        watched = None
        if seen:
            asyncio.run(live_watchers.quiet_polls(server.base, live_watchers.live_path(SLUG), cookies[0], 40, seen))
            watched = live_watchers.summary(seen, pct, args.watch_interval)
            print(
                f"  watchers: {watched['watchers']} every {watched['interval_s']:g} s, {watched['polls']} polls "
                f"in the sale, p50 {watched['p50']:.1f} ms, p99 {watched['p99']:.1f} ms; alone after it "
                f"p50 {watched['quiet_p50']:.1f} ms, p99 {watched['quiet_p99']:.1f} ms; errors {len(seen.errors)}",
                flush=True,
            )
        if args.page_seconds > 0:
            if shutil.which("wrk") and not args.no_wrk:
                page = page_only_wrk(server.base, connections, args.page_seconds, args.wrk_threads)
            else:
                page = asyncio.run(page_only_async(server.base, connections, args.page_seconds))
            print(
                f"  event page alone ({page['tool']}): {page['rps']:.0f} req/s, p50 {page['p50']:.1f} ms, "
                f"p99 {page['p99']:.1f} ms",
                flush=True,
            )
        else:
            page = None
        memory = [
            {"pid": pid, "rss_kb": status_kb(pid, "VmRSS"), "pss_kb": pss_kb(pid), "hwm_kb": status_kb(pid, "VmHWM")}
            for pid in server.workers()
        ]
        master = {
            "pid": server.proc.pid,
            "rss_kb": status_kb(server.proc.pid, "VmRSS"),
            "pss_kb": pss_kb(server.proc.pid),
        }
    finally:
        server.stop()
        if hooks is not None:
            hooks.stop()
        if job_worker is not None:
            job_worker.stop()
        if watcher is not None and watcher.is_alive():
            watcher.stop()
        if sandbox:
            sandbox.stop()
    errors = load.errors[:]
    if any(w for w in read_proc(str(server.log)).splitlines() if "Traceback" in w or "[ERROR]" in w):
        errors.append(f"gunicorn logged errors, see {server.log}")
    if job_worker is not None and "Traceback" in read_proc(str(job_worker.log)):
        errors.append(f"the job worker logged errors, see {job_worker.log}")
    return {
        "connections": connections,
        "busy_before": busy_before,
        "other_cpu_s": other_cpu,
        "machine_busy": machine_busy,
        "load": load,
        "checks": checks,
        "page": page,
        "memory": memory,
        "master": master,
        "server_cpu_s": srv_cpu,
        "pg_cpu_s": pg_cpu,
        "errors": errors + (seen.errors if seen else []),
        "watched": watched,
        **(purchase_result or {}),
    }


# --- report ------------------------------------------------------------------------------


def summarize(run: dict, args) -> dict:
    load: LoadResult = run["load"]
    adds = load.ms("add")
    pages = load.ms("page")
    n_req = len(load.samples)
    return {
        "buyers_per_s": load.buyers_done / load.wall_s if load.wall_s else 0.0,
        "add_rps": len(adds) / load.wall_s if load.wall_s else 0.0,
        "req_per_s": n_req / load.wall_s if load.wall_s else 0.0,
        "add_p50": pct(adds, 50),
        "add_p99": pct(adds, 99),
        "add_max": max(adds, default=float("nan")),
        "add200_p50": pct(load.ms("add", 200), 50),
        "add200_p99": pct(load.ms("add", 200), 99),
        "add409_p50": pct(load.ms("add", 409), 50),
        "add409_p99": pct(load.ms("add", 409), 99),
        "page_p50": pct(pages, 50),
        "page_p99": pct(pages, 99),
        "server_cpu_ms_per_req": run["server_cpu_s"] * 1000 / n_req if n_req else 0.0,
        "pg_cpu_ms_per_req": run["pg_cpu_s"] * 1000 / n_req if n_req else 0.0,
        "client_cpu_ms_per_req": load.client_cpu_s * 1000 / n_req if n_req else 0.0,
        "other_cpu_ms_per_req": run["other_cpu_s"] * 1000 / n_req if n_req else 0.0,
    }


def render_report(args, facts: dict, runs: list[dict]) -> tuple[str, bool, bool]:
    ok = True
    targets_met = True
    lines = [
        f"Command: `{' '.join(['.venv/bin/python', 'bench/flash_sale.py'] + sys.argv[1:])}`",
        "",
        "### Machine",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in facts.items()]
    lines += [
        "",
        "### Setup",
        "",
        f"- {args.buyers} buyers, each its own session (cookie jar) and address (X-Forwarded-For, "
        f"gunicorn with TRUSTED_PROXIES=1; the limits on, counted in Redis): GET the event page, then POST "
        f"add-to-cart of {args.quantity} ticket(s) as htmx does; one ticket type of capacity C = {args.capacity}.",
        f"- gunicorn `{args.gunicorn_conf.relative_to(ROOT)}`: {args.workers} workers, `{args.worker_class}`"
        + (f" × {args.threads} threads" if args.worker_class == "gthread" else "")
        + f", DB pool {args.pool_size} (+{args.pool_size} overflow) per worker, PostgreSQL on the same machine.",
        "- load generator: asyncio streams (bench/lean_http.py) on the same machine, one connection each, "
        "closed loop: each connection starts the next "
        "buyer as soon as its last one is done"
        + (f", paced at {args.rate:g} buyers/s" if args.rate else "")
        + "; event page alone: "
        + ("wrk" if shutil.which("wrk") and not args.no_wrk else "the asyncio client")
        + f" for {args.page_seconds:g} s without cookies (first visit: new session + CSRF token each time).",
        "- every run starts from a fresh database and a fresh gunicorn, warmed with 40 event-page requests per worker.",
        "",
        "### Results",
        "",
        "| connections | buyers/s | add-to-cart req/s | add p50 / p99 (ms) | event page p50 / p99 in the sale (ms) "
        "| event page alone req/s | alone p50 / p99 (ms) | held / C | oversell |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        s = summarize(run, args)
        page = run["page"]
        c = run["checks"]
        alone = f"{page['rps']:.0f}" if page else "–"
        alone_lat = f"{page['p50']:.1f} / {page['p99']:.1f}" if page else "–"
        lines.append(
            f"| {run['connections']} | {s['buyers_per_s']:.0f} | {s['add_rps']:.0f} | {s['add_p50']:.1f} / "
            f"{s['add_p99']:.1f} "
            f"| {s['page_p50']:.1f} / {s['page_p99']:.1f} | {alone} | {alone_lat} | {c['held']} / {args.capacity} "
            f"| {c['oversell']} |"
        )
    lines += ["", "### Detail per run", ""]
    for run in runs:
        s = summarize(run, args)
        load: LoadResult = run["load"]
        c = run["checks"]
        lines += [
            f"**{run['connections']} connections** — {load.buyers_done} buyers in {load.wall_s:.2f} s "
            f"({s['req_per_s']:.0f} requests/s in all); adds: {load.held} held (200), {load.sold_out} sold out (409); "
            f"{load.page_sold_out} buyers saw the page already sold out (and posted anyway). "
            f"Machine busy before the run (other processes): {run['busy_before']}.",
            "",
            f"- add to cart, answered 200: p50 {s['add200_p50']:.1f} ms, p99 {s['add200_p99']:.1f} ms; "
            f"answered 409: p50 {s['add409_p50']:.1f} ms, p99 {s['add409_p99']:.1f} ms; slowest {s['add_max']:.1f} ms",
            f"- CPU per request during the sale: gunicorn workers {s['server_cpu_ms_per_req']:.2f} ms, "
            f"PostgreSQL {s['pg_cpu_ms_per_req']:.2f} ms, load generator {s['client_cpu_ms_per_req']:.2f} ms, "
            f"everything else (kernel, other processes) {s['other_cpu_ms_per_req']:.2f} ms; "
            f"machine {run['machine_busy']:.0%} busy during the sale",
        ]
        if run["page"]:
            p = run["page"]
            lines.append(
                f"- event page alone ({p['tool']}, {run['connections']} connections): {p['requests']} requests, "
                f"{p['rps']:.0f} req/s, p50 {p['p50']:.1f} ms, p99 {p['p99']:.1f} ms, non-2xx {p['non_2xx']}"
                + (f", socket errors: {p['socket_errors']}" if p.get("socket_errors") else "")
            )
        lines.append(
            "- database checks: "
            + ", ".join(f"{k} {'✔' if v else '✘ FAILED'}" for k, v in c["checks"].items())
            + f" (held {c['held']}, sold {c['sold']}, in active carts {c['in_active_carts']}, "
            f"active carts {c['active_carts']})"
        )
        mem = ", ".join(f"{m['rss_kb'] / 1024:.1f}" for m in run["memory"])
        pss = ", ".join(f"{m['pss_kb'] / 1024:.1f}" for m in run["memory"])
        lines.append(
            f"- worker resident memory after the run (VmRSS, MiB): {mem}; proportional (Pss): {pss}; "
            f"master {run['master']['rss_kb'] / 1024:.1f} MiB RSS"
        )
        if run.get("watched"):
            w = run["watched"]
            lines.append(
                f"- organisers watching the live view: {w['watchers']}, each polling its fragment every "
                f"{w['interval_s']:g} s ({w['polls']} polls in the sale, {w['non_200']} not 200): "
                f"p50 {w['p50']:.1f} ms, p99 {w['p99']:.1f} ms, slowest {w['max']:.1f} ms; "
                f"the fragment alone after the sale "
                f"({w['quiet_n']} in a row): p50 {w['quiet_p50']:.1f} ms, p99 {w['quiet_p99']:.1f} ms"
                + ("" if not args.watch_no_cache else " (cache off: LIVE_VIEW_CACHE_SECONDS=0)")
            )
        if run["errors"]:
            lines.append(f"- **errors** ({len(run['errors'])}): " + "; ".join(sorted(set(run["errors"]))[:10]))
        lines.append("")
        if not all(c["checks"].values()) or run["errors"]:
            ok = False

    lines += ["### Targets (2-core machine, load generator on it)", ""]
    by_conn = {run["connections"]: run for run in runs}
    verdicts = []
    if 64 in by_conn:
        s = summarize(by_conn[64], args)
        verdicts.append(
            (
                f"≥ {TARGET_BUYERS_PER_S:.0f} buyers/s at 64 connections",
                f"{s['buyers_per_s']:.0f}",
                s["buyers_per_s"] >= TARGET_BUYERS_PER_S,
            )
        )
        verdicts.append(
            (
                f"add-to-cart p99 ≤ {TARGET_ADD_P99_MS:.0f} ms at 64 connections",
                f"{s['add_p99']:.1f} ms",
                s["add_p99"] <= TARGET_ADD_P99_MS,
            )
        )
    pages = [run["page"]["rps"] for run in runs if run["page"]]
    if pages:
        verdicts.append(
            (
                f"event page alone ≥ {TARGET_PAGE_RPS:.0f} req/s",
                f"{max(pages):.0f} req/s (best run)",
                max(pages) >= TARGET_PAGE_RPS,
            )
        )
    verdicts.append(("oversell = 0 and held == C in every run", "yes" if ok else "NO", ok))
    lines += ["| target | measured | |", "|---|---|---|"]
    for name, value, met in verdicts:
        lines.append(f"| {name} | {value} | {'met' if met else '**missed**'} |")
        targets_met &= met
    purchase_runs = [run for run in runs if "purchase" in run]
    if purchase_runs:
        more, held, met = purchase.render(purchase_runs)
        lines += [""] + more
        ok &= held
        targets_met &= met
    return "\n".join(lines) + "\n", ok, targets_met


def write_report(path: Path, body: str, section: str = "results") -> None:
    """Put ``body`` between the ``section`` markers of the report, keeping the rest;
    append the section if the report has none yet."""
    begin, end = f"<!-- {section}:begin -->", f"<!-- {section}:end -->"
    block = f"{begin}\n{body}{end}"
    text = (
        path.read_text() if path.exists() else "# Flash-sale benchmark report\n\nGenerated by `bench/flash_sale.py`.\n"
    )
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        path.write_text(head + block + rest.split(end, 1)[1])
    else:
        path.write_text(text.rstrip("\n") + "\n\n" + block + "\n")


def main(argv: list[str] | None = None) -> int:
    cores = os.cpu_count() or 1
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--buyers", type=int, default=2000)
    ap.add_argument("--capacity", type=int, default=500)
    ap.add_argument("--quantity", type=int, default=1, help="tickets per buyer (default 1)")
    ap.add_argument("--connections", default="64,32", help="comma-separated connection counts (default 64,32)")
    ap.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DB))
    ap.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS),
        help="where the workers count the limits (keys under a prefix of this run, deleted after)",
    )
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--workers", type=int, default=2 * cores)
    ap.add_argument("--worker-class", default="gthread", choices=["sync", "gthread"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--job-workers",
        type=int,
        default=2,
        help="threads of the job worker process started with --purchase (default 2)",
    )
    ap.add_argument(
        "--pool-size",
        type=int,
        default=None,
        help="DB_POOL_SIZE per worker (default: one connection per thread, at least 2)",
    )
    ap.add_argument("--gunicorn-conf", type=Path, default=BENCH / "gunicorn.conf.py")
    ap.add_argument("--page-seconds", type=float, default=10, help="event page alone for this long (0: skip)")
    ap.add_argument("--wrk-threads", type=int, default=1)
    ap.add_argument("--no-wrk", action="store_true", help="measure the page with the async client even if wrk exists")
    ap.add_argument("--rate", type=float, default=None, help="open loop: buyers arrive at this rate per second")
    ap.add_argument(
        "--purchase",
        action="store_true",
        help="the whole purchase: buyers who got a ticket check out and pay on the Stripe sandbox "
        "(its own process); written to the report's purchase section",
    )
    ap.add_argument(
        "--webhook-workers",
        type=int,
        default=0,
        help="with --purchase: serve Stripe's webhooks from this many gunicorn workers of their own "
        "(default 0: the same workers as the buyers)",
    )
    ap.add_argument(
        "--quiet-wait",
        type=float,
        default=300,
        help="before each run, wait up to this long for other work to leave the CPUs idle (0: don't)",
    )
    ap.add_argument(
        "--watchers",
        type=int,
        default=0,
        help="this many organisers (signed-in staff) poll the event's live on-sale view during the sale",
    )
    ap.add_argument("--watch-interval", type=float, default=5.0, help="seconds between one watcher's polls")
    ap.add_argument("--watch-no-cache", action="store_true", help="run the server with LIVE_VIEW_CACHE_SECONDS=0")
    ap.add_argument("--max-seconds", type=float, default=300, help="give up on a flash sale after this long")
    ap.add_argument("--report", type=Path, default=BENCH / "REPORT.md")
    ap.add_argument("--no-report", action="store_true", help="print only, do not write bench/REPORT.md")
    ap.add_argument("--strict", action="store_true", help="exit 2 when a speed target is missed")
    args = ap.parse_args(argv)

    if not (1 <= args.buyers <= 100_000 and 1 <= args.capacity <= 1_000_000 and 1 <= args.quantity <= 10):
        ap.error("buyers must be 1..100000, capacity 1..1000000, quantity 1..10")
    connections = [int(c) for c in args.connections.split(",") if c.strip()]
    if not connections or any(not 1 <= c <= 1024 for c in connections):
        ap.error("connections must be 1..1024")
    if not 1 <= args.workers <= 64 or not 1 <= args.threads <= 64 or not 0 <= args.page_seconds <= 120:
        ap.error("workers and threads 1..64, page-seconds 0..120")
    if not 0 <= args.watchers <= 50 or not 0.2 <= args.watch_interval <= 60:
        ap.error("watchers must be 0..50, watch-interval 0.2..60 s")
    if not 1024 <= args.port <= 65535:
        ap.error("port must be 1024..65535")
    if args.pool_size is None:
        args.pool_size = max(2, args.threads)
    check_database_url(args.database_url)
    if urlsplit(args.redis_url).hostname not in LOOPBACK:
        ap.error("the Redis must be on loopback")
    check_redis(args.redis_url)
    args.redis_prefix = f"bench-{secrets.token_hex(4)}"
    args.gunicorn_conf = args.gunicorn_conf.resolve()
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("SECRET_KEY", secrets.token_hex(32))  # no instance/secret_key written for the seed

    facts = machine_facts(args.database_url)
    runs = []
    for c in connections:
        try:
            runs.append(run_once(args, c, args.database_url))
        finally:
            delete_redis_keys(args.redis_url, args.redis_prefix)  # each run starts from no count
    body, ok, met = render_report(args, facts, runs)
    print("\n" + body)
    if not args.no_report:
        write_report(args.report, body, "purchase" if args.purchase else "results")
        print(f"(written to {args.report.relative_to(ROOT) if args.report.is_relative_to(ROOT) else args.report})")
    if not ok:
        return 1
    return 2 if args.strict and not met else 0


if __name__ == "__main__":
    sys.exit(main())
