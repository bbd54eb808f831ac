"""Flask commands: `flask --app wsgi demo | worker | seed-demo | sweep-holds | reconcile | send-confirmations |
payment-review | stripe-sandbox | reports rebuild | organiser create | organiser invite | organiser list`."""

from __future__ import annotations

import os

import click
from flask import Flask
from flask.cli import AppGroup
from flask_migrate import upgrade
from werkzeug.serving import run_simple

organiser_cli = AppGroup("organiser", help="Organisers of events and the members of their teams.")
reports_cli = AppGroup("reports", help="The payments dashboard's rollup.")


@reports_cli.command("rebuild")
@click.option("--since", default=None, help="First day (YYYY-MM-DD, UTC) to rebuild; default: everything.")
def reports_rebuild_command(since: str | None):
    """Rebuild the dashboard's rollup (after a migration, or a change older than the periodic job's lookback)."""
    import time
    from datetime import UTC, date, datetime

    from .report_rollup import rebuild

    start = None
    if since:
        try:
            start = datetime.combine(date.fromisoformat(since), datetime.min.time(), tzinfo=UTC)
        except ValueError:
            raise click.BadParameter("expected a date as YYYY-MM-DD", param_hint="--since") from None
    began = time.perf_counter()
    rebuilt = rebuild(start)
    click.echo(
        f"Rebuilt the dashboard's rollup from {rebuilt.since or 'the first row'} to {rebuilt.until:%Y-%m-%d %H:%M} UTC"
        f" ({rebuilt.ranges} transaction(s), {time.perf_counter() - began:.1f} s); rolled up until"
        f" {rebuilt.rolled_up_until}."
    )


def _slug_from(name: str) -> str:
    import re

    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:60]


def _echo_invitation(sent) -> None:
    how = "signs in with their account and accepts" if sent.existing_account else "sets their password"
    click.echo(f"One-time link for {sent.email} (they {how} there; valid 7 days):")
    click.echo(f"  {sent.link}")
    if not sent.mailed:
        click.echo("The invitation mail could not be sent (see the log); give them the link yourself.", err=True)


@organiser_cli.command("create")
@click.argument("name")
@click.option("--owner", "owner_email", required=True, help="Email of the first owner, who gets a one-time link.")
@click.option("--slug", default=None, help="Short name used in URLs (default: made from NAME).")
def organiser_create_command(name: str, owner_email: str, slug: str | None):
    """Create an organiser and invite its first owner."""
    from . import teams
    from .audit import Actor
    from .staff_errors import StaffError

    try:
        organiser, sent = teams.create_organiser(name, slug or _slug_from(name), owner_email, Actor.command_line())
    except StaffError as error:
        raise click.ClickException(error.message()) from None
    click.echo(f"Organiser {organiser.name!r} created (slug: {organiser.slug}).")
    _echo_invitation(sent)


@organiser_cli.command("invite")
@click.argument("organiser")
@click.argument("email")
@click.option(
    "--role",
    required=True,
    type=click.Choice(["owner", "manager", "box_office", "door", "viewer"]),
    help="What they may do (see the README's table of roles).",
)
def organiser_invite_command(organiser: str, email: str, role: str):
    """Invite EMAIL to the organiser whose slug is ORGANISER."""
    from . import teams
    from .audit import Actor
    from .staff_errors import StaffError
    from .staff_models import Role

    found = teams.organiser_by_slug(organiser)
    if found is None:
        raise click.ClickException(f"No organiser has the slug {organiser!r} (see: flask organiser list).")
    try:
        sent = teams.invite(found.id, email, Role(role), Actor.command_line())
    except StaffError as error:
        raise click.ClickException(error.message()) from None
    _echo_invitation(sent)


@organiser_cli.command("list")
def organiser_list_command():
    """Every organiser, with its number of members and owners."""
    from . import teams

    rows = teams.all_organisers()
    if not rows:
        click.echo("No organisers yet. Create one: flask --app wsgi organiser create NAME --owner EMAIL")
        return
    for organiser, members, owners in rows:
        click.echo(f"{organiser.slug}\t{organiser.name}\t{members} member(s), {owners} owner(s)")


def init_app(app: Flask) -> None:
    app.cli.add_command(organiser_cli)
    app.cli.add_command(reports_cli)

    @app.cli.command("seed-demo")
    def seed_demo_command():
        """Add the demo organiser and events (once), and the demo organiser's owner."""
        from .demo import DEMO_PASSWORD_FILE, seed_demo, seed_demo_owner

        click.echo("Demo data created." if seed_demo() else "Demo data already present.")
        email, _password = seed_demo_owner(app.instance_path)
        click.echo(f"Admin: sign in as {email} with the password in instance/{DEMO_PASSWORD_FILE}.")

    @app.cli.command("sweep-holds")
    def sweep_holds_command():
        """Release every cart hold whose time ran out."""
        from .cart import release_lapsed_holds
        from .checkout import expire_lapsed_checkouts

        total = 0
        while released := release_lapsed_holds():
            total += released
        # Carts being paid for: their Checkout Session is expired at Stripe first.
        total += expire_lapsed_checkouts()
        click.echo(f"Released {total} lapsed cart hold(s).")

    @app.cli.command("reconcile")
    @click.option("--hours", default=48, show_default=True, help="How far back to list sessions at Stripe.")
    def reconcile_command(hours: int):
        """Compare recent Checkout Sessions at Stripe with our orders; fulfil what was missed."""
        from datetime import timedelta

        from .reconcile import run_exclusive

        report = run_exclusive(since=timedelta(hours=hours), started_by="cli")
        if report is None:
            click.echo("Another reconciliation run is working now (the periodic job or a manager's); try again soon.")
            raise SystemExit(1)
        for line in report.fixed:
            click.echo(f"fixed: {line}")
        for line in report.mismatches:
            click.echo(f"MISMATCH: {line}")
        click.echo(
            f"Checked {report.checked} session(s): {len(report.fixed)} fixed, {len(report.mismatches)} mismatch(es)."
        )

    @app.cli.command("send-confirmations")
    def send_confirmations_command():
        """Send every order confirmation (and late-payment refund notice) not sent yet,
        those waiting for a retry and those given up included."""
        from .outbox import send_due

        sent = send_due(also_waiting=True)
        click.echo(
            f"Sent {sent.confirmations} order confirmation(s) and {sent.notices} refund notice(s); "
            f"{sent.failures} failed."
        )
        if sent.failures:
            raise SystemExit(1)

    @app.cli.command("worker")
    @click.option(
        "--workers", type=click.IntRange(1, 64), default=None, help="Threads running jobs (default JOBS_WORKERS, 2)."
    )
    @click.option(
        "--periodic/--no-periodic",
        default=True,
        show_default=True,
        help="Also enqueue the periodic jobs (every worker may: a lease lets one run per period).",
    )
    def worker_command(workers: int | None, periodic: bool):
        """Run the job queue's consumer (mail, the periodic sweeps, reconciliation) until
        stopped (SIGTERM: the running jobs finish first; Ctrl-C: at once)."""
        import logging

        from flask.logging import default_handler

        from .jobs import get_jobs

        # One handler for everything (Huey's lines and ours), not Flask's as well.
        app.logger.removeHandler(default_handler)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        jobs = get_jobs(app)
        threads = workers or app.config["JOBS_WORKERS"]
        consumer = jobs.consumer(workers=threads, periodic=periodic)
        click.echo(
            f"Job worker started: {threads} thread(s), periodic jobs {'on' if periodic else 'off'}, "
            f"queue {jobs.where}.",
            err=True,
        )
        consumer.run()

    @app.cli.command("payment-review")
    def payment_review_command():
        """List payments a person must look at: paid another amount than asked, or (before
        migration 0004) charged another amount than shown. Exits 1 if there are any."""
        from .money import format_amount
        from .payment_review import payments_to_review

        def amount(minor, currency):
            return format_amount(minor, currency) if minor is not None and currency else "unknown"

        found = payments_to_review()
        for item in found:
            asked = amount(item.asked_minor, item.currency)
            other = amount(item.other_minor, item.other_currency)
            what = (
                f"paid {other}, asked {asked}"
                if item.kind == "paid_other_than_asked"
                else f"charged {asked}, shown {other}"
            )
            click.echo(
                f"{item.kind}: attempt {item.attempt_id} ({item.attempt_status}), order {item.order_code or '-'}, "
                f"session {item.session_id or '-'}, {item.buyer_email}: {what}"
            )
        click.echo(f"{len(found)} payment(s) to review.")
        if found:
            raise SystemExit(1)

    @app.cli.command("stripe-sandbox", context_settings={"ignore_unknown_options": True, "help_option_names": []})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def stripe_sandbox_command(args):
        """Serve the Stripe sandbox as its own process (--port N; --help for all options)."""
        from .payments.sandbox.serve import main

        raise SystemExit(main(list(args)))

    @app.cli.command("demo")
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=5000, show_default=True)
    def demo_command(host: str, port: int):
        """Migrate the database, add demo data, and serve the storefront (demo mode only)."""
        from .demo import DEMO_PASSWORD_FILE, seed_demo, seed_demo_owner

        if not app.config.get("DEMO_MODE"):
            raise click.ClickException(
                "flask demo adds demo events and serves the development server: it runs in demo mode only "
                "(STOREFRONT_DEMO=1, as bin/demo sets it)."
            )
        upgrade()
        seed_demo()
        email, password = seed_demo_owner(app.instance_path)
        if not os.environ.get("PUBLIC_BASE_URL", "").strip():
            # Links (Stripe's return URLs, mails) must reach this very server.
            app.config["PUBLIC_BASE_URL"] = demo_base_url(host, port)
        plain_http = app.config["PUBLIC_BASE_URL"].startswith("http:")
        if plain_http and not os.environ.get("SESSION_COOKIE_SECURE", "").strip():
            # The demo serves plain http: a Secure cookie would never come back.
            app.config["SESSION_COOKIE_SECURE"] = False
        sandbox = app.extensions.get("stripe_sandbox")
        if sandbox is not None and not sandbox.config.webhook_urls:
            # The built-in sandbox tells this very app about payments, as Stripe would.
            sandbox.config.webhook_urls = [demo_base_url(host, port) + "/webhooks/stripe"]
        click.echo(f"Storefront demo on http://{host}:{port} (links point to {app.config['PUBLIC_BASE_URL']})")
        click.echo(f"Admin on {app.config['PUBLIC_BASE_URL']}/admin/ : sign in as {email} with the password {password}")
        click.echo(f"  (kept in instance/{DEMO_PASSWORD_FILE})")
        # The demo runs its jobs (mail, the sweeps, reconciliation) in this very process.
        from .jobs import start_consumer, stop_consumer

        consumer = start_consumer(app, workers=1, periodic=True)
        click.echo("Jobs (mail, holds, reconciliation) run in this process.")
        try:
            # app.run() refuses to block inside a flask command; run_simple is what it wraps.
            run_simple(host, port, app, threaded=True, use_reloader=False)
        finally:
            stop_consumer(consumer)


def demo_base_url(host: str, port: int) -> str:
    """The address a browser on this machine uses for ``flask demo --host H --port P``."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"  # listening everywhere: this machine's own address works
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
