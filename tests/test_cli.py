"""Flask commands: demo data and the sweep of lapsed holds."""

from __future__ import annotations

from sqlalchemy import func, select

from storefront import cart as carts
from storefront import catalog
from storefront.cart_changes import change_cart
from storefront.extensions import db
from storefront.models import CartStatus, Event, Organiser

from .factories import cart_by_token, lapse, make_event, ticket_type


def test_seed_demo_covers_every_state_a_buyer_meets(app):
    runner = app.test_cli_runner()
    assert "Demo data created." in runner.invoke(args=["seed-demo"]).output
    assert "already present" in runner.invoke(args=["seed-demo"]).output
    db.session.rollback()
    assert db.session.execute(select(func.count(Organiser.id))).scalar_one() == 1
    events = catalog.upcoming_events()
    assert len(events) >= 3
    states = {
        av.state
        for event in events
        for av in catalog.availabilities(event.ticket_types, app.config["LOW_STOCK_THRESHOLD"]).values()
    }
    assert {catalog.SaleState.LOW, catalog.SaleState.NOT_YET, catalog.SaleState.ON_SALE} <= states
    assert any(len({tt.price_minor for tt in e.ticket_types}) >= 3 for e in events)
    assert len({e.timezone for e in events}) >= 3
    assert len({e.currency for e in events}) >= 2
    client = app.test_client()
    for event in db.session.execute(select(Event)).scalars():
        assert client.get(f"/events/{event.slug}").status_code == 200


def test_the_demo_sells_a_zero_decimal_currency(app):
    """The demo's Tokyo event is on sale in yen, priced and charged in whole yen."""
    app.test_cli_runner().invoke(args=["seed-demo"])
    db.session.rollback()
    summit = db.session.execute(select(Event).where(Event.currency == "JPY")).scalar_one()
    availability = catalog.availabilities(summit.ticket_types, app.config["LOW_STOCK_THRESHOLD"])
    early = next(tt for tt in summit.ticket_types if tt.name == "Early bird")
    assert availability[early.id].buyable and early.price_minor == 12000
    page = app.test_client().get(f"/events/{summit.slug}").get_data(as_text=True)
    assert "¥12,000" in page and "¥18,000" in page and "¥1,200,000" not in page
    assert f'name="quantity-{early.id}"' in page
    token = change_cart(None, carts.AddTickets(summit.slug, {early.id: 2}))
    assert carts.view_cart(token).total_minor == 24000


def test_sweep_holds_command(app):
    event = make_event()
    tt = event.ticket_types[0]
    lapsed = [change_cart(None, carts.AddTickets(event.slug, {tt.id: 2})) for _ in range(3)]
    live = change_cart(None, carts.AddTickets(event.slug, {tt.id: 1}))
    for token in lapsed:
        lapse(token)
    result = app.test_cli_runner().invoke(args=["sweep-holds"])
    assert "Released 3 lapsed cart hold(s)." in result.output
    assert ticket_type(tt.id).held == 1
    assert all(cart_by_token(t).status == CartStatus.EXPIRED.value for t in lapsed)
    assert cart_by_token(live).status == CartStatus.ACTIVE.value
    assert "Released 0" in app.test_cli_runner().invoke(args=["sweep-holds"]).output
