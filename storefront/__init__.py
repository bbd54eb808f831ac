"""The storefront application factory."""

from __future__ import annotations

from pathlib import Path

from flask import Flask

from . import config as settings
from . import languages
from .extensions import babel, csrf, db, htmx_ext, migrate

PACKAGE_ROOT = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_ROOT.parent


def bundled(name: str) -> Path:
    """``templates``, ``static`` or ``migrations``: inside the package when installed from
    a built wheel (setup.py puts them there), else at the top of the source checkout."""
    inside = PACKAGE_ROOT / name
    return inside if inside.is_dir() else PROJECT_ROOT / name


def create_app(config: dict | None = None) -> Flask:
    """Build the app: settings from the environment, then ``config`` on top (tests)."""
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=str(bundled("templates")),
        static_folder=str(bundled("static")),
    )
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    app.config.from_mapping(settings.from_environment(app.instance_path))
    if config:
        app.config.from_mapping(config)
    from .database import configure_engine, engine_options

    app.config.setdefault(
        "SQLALCHEMY_ENGINE_OPTIONS",
        engine_options(app.config["SQLALCHEMY_DATABASE_URI"], app.config["DB_POOL_SIZE"]),
    )

    db.init_app(app)
    with app.app_context():
        configure_engine(db.engine)
    migrate.init_app(app, db, directory=str(bundled("migrations")), render_as_batch=True)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=languages.select_locale)
    languages.init_app(app)
    htmx_ext.init_app(app)

    from . import request_body

    request_body.init_app(app)  # after htmx-flask, which sets a request class of its own

    from . import limits, proxies

    proxies.init_app(app)
    limits.init_app(app)

    from . import formatting, rich_text, ticket_qr

    formatting.init_app(app)
    rich_text.init_app(app)
    ticket_qr.init_app(app)

    from .payments import gateway

    gateway.init_app(app)

    from . import parsing

    parsing.init_app(app)  # the URL converters, before any route uses them

    from .shop import bp as shop_bp

    app.register_blueprint(shop_bp)

    from .webhooks import bp as webhooks_bp

    app.register_blueprint(webhooks_bp)

    from . import admin, limits

    limits.init_app(app)
    admin.init_app(app)

    from . import cli, errors_http, http_security, jobs, links, logs

    jobs.init_app(app)
    cli.init_app(app)
    errors_http.init_app(app)
    logs.init_app(app)
    http_security.init_app(app)
    links.init_app(app)

    @app.context_processor
    def _payments_mode():
        # Every page says so when no real payment can be taken (a test key, or the sandbox).
        return {"test_payments": not gateway.get_gateway().live}

    return app
