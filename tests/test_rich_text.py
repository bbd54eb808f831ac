"""Event descriptions: a small subset of Markdown, rendered then sanitised; nothing that
runs script reaches the event page."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from storefront.rich_text import render

from .factories import make_event


def test_the_subset_renders():
    html = render(
        "## Programme\n\nAn evening of **jazz** and *soul*.\n\n- one\n- two\n\n[Tickets](https://example.com/x)"
    )
    assert "<h3>Programme</h3>" in html
    assert "<strong>jazz</strong>" in html and "<em>soul</em>" in html
    assert "<ul>\n<li>one</li>" in html
    assert '<a href="https://example.com/x" rel="noopener noreferrer nofollow">Tickets</a>' in html


class _Elements(HTMLParser):
    """The tags and attributes a browser would build from the HTML (escaped text is text)."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes.extend((name, value or "") for name, value in attrs)


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        '<img src=x onerror="alert(1)">',
        '<a href="#" onclick="alert(1)">x</a>',
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](java\tscript:alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD4=)",
        "[click](vbscript:msgbox)",
        "![x](https://evil.example/track.png)",
        '<iframe src="https://evil.example"></iframe>',
        "<style>body{display:none}</style>",
        '<p style="position:fixed">x</p>',
        '<a href="https://ok.example" onmouseover="alert(1)">x</a>',
    ],
)
def test_what_could_run_or_track_is_removed(text):
    found = _Elements(render(text))
    assert set(found.tags) <= {"p", "a"}, found.tags
    for name, value in found.attributes:
        assert name in ("href", "rel"), (name, value)
        if name == "href":
            assert value.startswith(("https://", "http://", "mailto:")), value


def test_the_event_page_shows_the_description_sanitised(client):
    event = make_event()
    from storefront.database import write_transaction
    from storefront.extensions import db
    from storefront.models import Event

    with write_transaction():
        db.session.get(
            Event, event.id
        ).description = "Doors at **8**.\n\n<script>alert(1)</script> [x](javascript:alert(1))"
    page = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert "Doors at <strong>8</strong>." in page
    description = page.split('<div class="description">')[1].split("</div>")[0]
    found = _Elements(description)
    assert "script" not in found.tags and not any(v.startswith("javascript") for _n, v in found.attributes)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown as the text it was
