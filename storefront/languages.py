"""The language a page is shown in, and the switch that changes it.

The language is, in this order: the one the visitor chose with the switch (a cookie),
else the best match of the browser's ``Accept-Language``, else English. Only languages
whose catalog is compiled (``pybabel compile -d storefront/translations``) are offered:
a French page without its catalog would be English text under ``<html lang="fr">``, so
without one the shop stays in English and says so in its ``lang``.

Outside a request (jobs, the CLI) no language is chosen here: mails and PDFs name theirs
with ``force_locale`` (the order's ``locale``, kept from its checkout).

The switch is a small POST form (CSRF-protected; it works without JavaScript) that sets
the cookie and sends the browser back to the page it was on, a path on this site only
(``parsing.local_redirect_target``): never to another site.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, abort, current_app, has_request_context, redirect, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from .parsing import local_redirect_target

COOKIE = "lang"
COOKIE_MAX_AGE = 365 * 24 * 3600
DEFAULT = "en"
# Each language's name in itself, as the switch shows it.
NAMES = {"en": "English", "fr": "Français"}

bp = Blueprint("languages", __name__)


def compiled(translations: Path, languages: list[str]) -> list[str]:
    """The default language and those of ``languages`` with a compiled catalog."""
    return [
        lang for lang in languages if lang == DEFAULT or (translations / lang / "LC_MESSAGES" / "messages.mo").is_file()
    ]


def offered() -> list[str]:
    return current_app.extensions["storefront_languages"]


def supported(lang: str | None) -> str | None:
    """``lang`` if it is a language the shop is shown in, else None."""
    return lang if lang in offered() else None


def select_locale() -> str | None:
    """Flask-Babel's locale selector: the remembered choice, else Accept-Language, else
    the default (None: Flask-Babel's ``BABEL_DEFAULT_LOCALE``)."""
    if not has_request_context():
        return None
    return supported(request.cookies.get(COOKIE)) or request.accept_languages.best_match(offered())


def current() -> str:
    """The language of the current page (or of the ``force_locale`` block)."""
    return str(get_locale() or DEFAULT)


def of_page() -> str:
    """The language to keep or send in from this page: an order made now keeps it for its
    mails and PDF; a member's invitation goes in the inviter's, a password reset in the asker's."""
    return supported(current()) or DEFAULT


@bp.post("/language")
def choose():
    """Remember the chosen language and go back to the page the switch was on."""
    lang = supported(request.form.get("lang"))
    if lang is None:
        abort(400, description=_("This language is not available."))
    back = local_redirect_target(request.form.get("next")) or url_for("shop.events")
    response = redirect(back, code=303)
    response.set_cookie(
        COOKIE,
        lang,
        max_age=COOKIE_MAX_AGE,
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
    return response


def init_app(app: Flask) -> None:
    translations = Path(app.root_path) / "translations"
    app.extensions["storefront_languages"] = compiled(translations, app.config["LANGUAGES"])
    app.register_blueprint(bp)

    @app.context_processor
    def _language():
        return {"locale": current(), "languages": [(lang, NAMES.get(lang, lang)) for lang in offered()]}
