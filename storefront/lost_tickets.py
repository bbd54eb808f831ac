""" "Lost your tickets?": a buyer types an email address and gets, by mail, a link to every
order of that address.

Nobody may learn from it whether an address has orders: the page answers the same, and
the answer leaves before the orders are even looked up; the lookup and the mail happen
once the answer is sent (``send_links_after_answer``), so its timing says nothing either.
An address without orders gets no mail. The view counts each request against the
client's and the address's limits (``limits.check_lost_tickets``) first.
"""

from __future__ import annotations

import logging

from flask import after_this_request, current_app

from . import languages, mail, parsing
from .errors import InvalidEmail

log = logging.getLogger(__name__)


def address(raw: str | None) -> str:
    """The address as orders store it and the limits count it (lower case), or ``InvalidEmail``."""
    plain = parsing.plain_email((raw or "").strip())
    if plain is None:
        raise InvalidEmail()
    return plain.lower()


def send_links_after_answer(email: str) -> None:
    """Once this request's answer is sent, mail ``email`` the links to its orders (if it has any)."""
    app = current_app._get_current_object()
    locale = languages.current()  # the page's language: the mail is sent after the request

    def send() -> None:
        with app.app_context():
            try:
                mail.send_order_links(email, locale)
            except Exception:
                log.exception("lost tickets: the links could not be sent")

    @after_this_request
    def _after(response):
        response.call_on_close(send)
        return response
