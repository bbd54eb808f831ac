"""An event's description: a small safe subset of Markdown, rendered then sanitised.

markdown-it-py renders CommonMark with raw HTML turned off (typed tags come out as
text) and images off (a cover image is the one picture an event has); nh3 (ammonia)
then keeps only the tags and attributes below, links only to http, https and mailto,
each with ``rel="noopener noreferrer nofollow"``. Sanitising comes last, so nothing the
renderer might let through (a ``javascript:`` link, an event handler) reaches a page.

The event page renders the description on every view, so the answer is memoized by
the text (bounded): the flash sale's hot path pays for it once per description.
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

TAGS = {"p", "br", "strong", "em", "ul", "ol", "li", "a", "h3", "h4", "blockquote", "code", "pre", "hr"}
ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
URL_SCHEMES = {"http", "https", "mailto"}

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).disable("image")


@lru_cache(maxsize=512)
def render(text: str | None) -> Markup:
    """The description as safe HTML for a page."""
    if not text:
        return Markup("")
    html = _markdown.render(text)
    # Headings the organiser writes sit under the page's own h1 and h2.
    for level, to in (("h1", "h3"), ("h2", "h3"), ("h5", "h4"), ("h6", "h4")):
        html = html.replace(f"<{level}>", f"<{to}>").replace(f"</{level}>", f"</{to}>")
    cleaned = nh3.clean(
        html,
        tags=TAGS,
        attributes=ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return Markup(cleaned)


def init_app(app) -> None:
    app.add_template_filter(render, "rich_text")
