"""Demo data: one organiser, four events that show every state a buyer can meet, in
four currencies (JPY among them, so a zero-decimal currency is on sale).

Dates are relative to now so the demo always has upcoming events. Prices are in
Stripe's minor units (``storefront.money``): 2500 is €25.00, 12000 is ¥12,000.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from .database import write_transaction
from .extensions import db
from .models import Event, EventStatus, Organiser, TicketType, utcnow

DEMO_ORGANISER = "demo"
DEMO_OWNER = "owner@demo.example"
DEMO_PASSWORD_FILE = "demo_owner_password"  # under instance/


def _at(days: int, hour: int, tz: str, now: datetime) -> datetime:
    local_day = (now + timedelta(days=days)).astimezone(ZoneInfo(tz)).date()
    local = datetime(local_day.year, local_day.month, local_day.day, hour, 0, tzinfo=ZoneInfo(tz))
    return local.astimezone(UTC)


def seed_demo(now: datetime | None = None) -> bool:
    """Create the demo organiser and events unless they exist. True if created."""
    now = now or utcnow()
    if db.session.execute(select(Organiser.id).where(Organiser.slug == DEMO_ORGANISER)).first():
        return False
    with write_transaction():
        org = Organiser(name="Demo Productions", slug=DEMO_ORGANISER)
        db.session.add(org)
        published = EventStatus.PUBLISHED.value

        jazz = Event(
            organiser=org,
            slug="nocturne-jazz-night",
            title="Nocturne Jazz Night",
            description="Three sets of late-night jazz in a candle-lit cellar. Doors open one hour before.",
            venue="Le Caveau, 12 rue des Lombards, Paris",
            starts_at=_at(21, 21, "Europe/Paris", now),
            timezone="Europe/Paris",
            currency="EUR",
            status=published,
            capacity=300,
        )
        jazz.ticket_types = [
            TicketType(
                name="Standard",
                description="Standing, bar access.",
                price_minor=2500,
                capacity=250,
                max_per_order=8,
                position=1,
            ),
            TicketType(
                name="VIP table",
                description="Seated table near the stage, one drink included.",
                price_minor=6000,
                capacity=50,
                max_per_order=4,
                position=2,
            ),
            TicketType(
                name="Student",
                description="With a valid student card at the door.",
                price_minor=1500,
                capacity=60,
                max_per_order=2,
                position=3,
            ),
        ]

        harbour = Event(
            organiser=org,
            slug="harbour-lights-festival",
            title="Harbour Lights Festival",
            description="An evening of music and lanterns on the pier. Almost gone.",
            venue="Pier 17, New York",
            starts_at=_at(14, 19, "America/New_York", now),
            timezone="America/New_York",
            currency="USD",
            status=published,
        )
        harbour.ticket_types = [
            TicketType(name="General admission", price_minor=4500, capacity=200, sold=196, max_per_order=6, position=1),
        ]

        summit = Event(
            organiser=org,
            slug="tokyo-design-summit",
            title="Tokyo Design Summit",
            description="Two days of talks on product and interface design.",
            venue="Shibuya Stream Hall, Tokyo",
            starts_at=_at(60, 10, "Asia/Tokyo", now),
            timezone="Asia/Tokyo",
            currency="JPY",
            status=published,
        )
        summit.ticket_types = [
            TicketType(name="Early bird", price_minor=12000, capacity=100, max_per_order=2, position=1),
            TicketType(
                name="Regular",
                description="On sale once the early birds have had their week.",
                price_minor=18000,
                capacity=400,
                max_per_order=4,
                position=2,
                sales_start=now + timedelta(days=5),
            ),
        ]

        chapel = Event(
            organiser=org,
            slug="quartet-old-chapel",
            title="String Quartet at the Old Chapel",
            description="Haydn and Britten by candlelight.",
            venue="The Old Chapel, Bath",
            starts_at=_at(35, 19, "Europe/London", now),
            timezone="Europe/London",
            currency="GBP",
            status=published,
        )
        chapel.ticket_types = [
            TicketType(name="Front pews", price_minor=3200, capacity=40, sold=40, max_per_order=4, position=1),
            TicketType(name="Nave", price_minor=1800, capacity=120, max_per_order=6, position=2),
        ]
        db.session.add_all([jazz, harbour, summit, chapel])
    return True


def seed_demo_owner(instance_path: str) -> tuple[str, str]:
    """Give the demo organiser an owner (once): ``DEMO_OWNER`` with a password generated
    once into instance/demo_owner_password. Returns (email, password)."""
    from . import accounts, teams
    from .audit import Actor
    from .config import generated_once
    from .staff_models import Role

    password = generated_once(instance_path, DEMO_PASSWORD_FILE, "demo-", nbytes=12)
    organiser = teams.organiser_by_slug(DEMO_ORGANISER)
    user = accounts.find_by_email(DEMO_OWNER)
    if user is None:
        user = accounts.create_user(DEMO_OWNER, password, Actor.command_line())
    if organiser is not None and teams.membership_in(user.id, DEMO_ORGANISER) is None:
        teams.add_member(organiser.id, user.id, Role.OWNER, Actor.command_line())
    return DEMO_OWNER, password
