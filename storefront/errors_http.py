"""Error pages: a person sees words, htmx gets a fragment it can swap."""

from __future__ import annotations

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError

from .extensions import db


def init_app(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_template("error.html", code=400, reason="csrf"), 400

    @app.errorhandler(404)
    def not_found(error):
        return render_template("error.html", code=404, reason="not_found"), 404

    @app.errorhandler(405)
    def not_allowed(error):
        return render_template("error.html", code=405, reason="not_allowed"), 405

    @app.errorhandler(500)
    def server_error(error):
        db.session.rollback()
        return render_template("error.html", code=500, reason="server"), 500
