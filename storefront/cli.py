"""Flask commands: `flask --app wsgi demo | seed-demo | sweep-holds | stripe-sandbox`."""
from __future__ import annotations

import click
from flask import Flask
from flask_migrate import upgrade
from werkzeug.serving import run_simple


def init_app(app: Flask) -> None:
    @app.cli.command("seed-demo")
    def seed_demo_command():
        """Add the demo organiser and events (once)."""
        from .demo import seed_demo

        click.echo("Demo data created." if seed_demo() else "Demo data already present.")

    @app.cli.command("sweep-holds")
    def sweep_holds_command():
        """Release every cart hold whose time ran out."""
        from .cart import release_lapsed_holds

        total = 0
        while released := release_lapsed_holds():
            total += released
        click.echo(f"Released {total} lapsed cart hold(s).")

    @app.cli.command(
        "stripe-sandbox", context_settings={"ignore_unknown_options": True, "help_option_names": []}
    )
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def stripe_sandbox_command(args):
        """Serve the Stripe sandbox as its own process (--port N; --help for all options)."""
        from .payments.sandbox.serve import main

        raise SystemExit(main(list(args)))

    @app.cli.command("demo")
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option("--port", default=5000, show_default=True)
    def demo_command(host: str, port: int):
        """Migrate the database, add demo data, and serve the storefront."""
        from .demo import seed_demo

        upgrade()
        seed_demo()
        click.echo(f"Storefront demo on http://{host}:{port}")
        # app.run() refuses to block inside a flask command; run_simple is what it wraps.
        run_simple(host, port, app, threaded=True, use_reloader=False)
