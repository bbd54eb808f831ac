"""The event page's cost does not grow with its number of ticket types."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event as sa_event

from storefront.extensions import db

from .factories import make_event


@contextmanager
def counting_queries():
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    sa_event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        sa_event.remove(db.engine, "before_cursor_execute", record)


def _page_queries(client, event) -> list[str]:
    client.get(f"/events/{event.slug}")  # warm up: the first request may load more
    with counting_queries() as statements:
        assert client.get(f"/events/{event.slug}").status_code == 200
    return statements


def test_event_page_costs_the_same_with_1_or_20_ticket_types(app):
    one = make_event(ticket_types=[{"name": "Only"}])
    twenty = make_event(ticket_types=[{"name": f"Type {i}"} for i in range(20)])
    q_one = _page_queries(app.test_client(), one)
    q_twenty = _page_queries(app.test_client(), twenty)
    assert len(q_one) == len(q_twenty), (q_one, q_twenty)
    assert len(q_one) <= 2


def test_event_page_with_a_cart_costs_the_same_with_1_or_20_lines(app):
    small = make_event(ticket_types=[{"name": "Only"}])
    big = make_event(ticket_types=[{"name": f"Type {i}", "max_per_order": 1} for i in range(10)])
    a, b = app.test_client(), app.test_client()
    a.post(f"/events/{small.slug}/cart", data={f"quantity-{small.ticket_types[0].id}": "1"})
    b.post(f"/events/{big.slug}/cart", data={f"quantity-{tt.id}": "1" for tt in big.ticket_types})
    q_small, q_big = _page_queries(a, small), _page_queries(b, big)
    assert len(q_small) == len(q_big), (q_small, q_big)
    assert len(q_small) <= 4
