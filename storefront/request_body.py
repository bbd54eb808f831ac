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

from typing import IO

from flask import Flask
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


def init_app(app: Flask) -> None:
    """Call after the extensions that set a request class of their own (htmx-flask)."""
    app.request_class = type("ShopRequest", (RefusesLongerBodies, app.request_class), {})
