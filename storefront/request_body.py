"""Request bodies are read no further than the limit, and a longer one is refused.

Flask's ``MAX_CONTENT_LENGTH`` (and ``request.max_content_length``, which the webhook
sets for itself) already refuses a body whose Content-Length is too large, before
reading any of it. A body without a Content-Length (chunked, which gunicorn passes on
with ``wsgi.input_terminated``) is read through Werkzeug's ``LimitedStream``, which
stops at the limit; but reading it whole (a urlencoded form, ``get_data``) then
returns the first ``limit`` bytes as if they were all, so a cut-off form would be
acted on. Here one byte more is asked for: if there is one, the answer is a 413.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from flask import Flask, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import LimitedStream, get_content_length


class _RefusingLongerStream(LimitedStream):
    def __init__(self, stream: IO[bytes], limit: int) -> None:
        super().__init__(stream, limit, is_max=True)
        self._source = stream

    def readall(self) -> bytes:
        data = super().readall()
        if self.is_exhausted and self._source.read(1):
            raise RequestEntityTooLarge()
        return data


class RefusesLongerBodies:
    """Mixed into the app's request class (after extensions chose theirs)."""

    @cached_property
    def stream(self) -> IO[bytes]:
        limit = self.max_content_length
        if "wsgi.input_terminated" in self.environ and limit is not None:
            length = get_content_length(self.environ)
            if length is not None and length > limit:
                raise RequestEntityTooLarge()
            return _RefusingLongerStream(self.environ["wsgi.input"], limit)
        return super().stream


# What a multipart body carries besides its file: boundaries, headers, the CSRF token.
MULTIPART_ENVELOPE = 64 * 1024
UPLOAD_FORM_MEMORY = 2 * MULTIPART_ENVELOPE


def larger_body(limit: Callable[[dict], int]) -> Callable[[Callable], Callable]:
    """Let one view take a larger body than ``MAX_CONTENT_LENGTH`` (an upload):
    ``limit(app.config)`` bytes. Set before any hook reads the body (CSRF reads the form)."""

    def decorate(view: Callable) -> Callable:
        view.max_body = limit
        return view

    return decorate


def _own_limit() -> None:
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    limit = getattr(view, "max_body", None)
    if limit is not None:
        request.max_content_length = limit(current_app.config)
        # Werkzeug holds each chunk it reads of a multipart body (64 KiB) to the form
        # memory limit too, so a file's body needs a larger one; text parts stay small.
        request.max_form_memory_size = max(current_app.config["MAX_FORM_MEMORY_SIZE"], UPLOAD_FORM_MEMORY)


def init_app(app: Flask) -> None:
    """Call after the extensions that set a request class of their own (htmx-flask)."""
    app.request_class = type("ShopRequest", (RefusesLongerBodies, app.request_class), {})
    # First of the app's hooks: Flask-WTF's CSRF check, registered earlier, reads the body.
    app.before_request_funcs.setdefault(None, []).insert(0, _own_limit)
