"""French and English: the catalog covers every string the code has (extracted now, as
``bin/update-translations`` does), the language comes from the switch or the browser,
``<html lang>`` names the language shown, and an order keeps its language for its mails
and PDF. SQLite and PostgreSQL."""

from __future__ import annotations

import os
import re
import urllib.parse
import urllib.request
from datetime import UTC, datetime

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from flask_babel import force_locale
from sqlalchemy import select, update

from storefront import languages, mail
from storefront.database import write_transaction
from storefront.extensions import db
from storefront.models import Event, Order
from storefront.payments import gateway

from .admin_support import (  # noqa: F401 (mail_dir: fixture)
    add_member,
    mail_dir,
    mails_to,
    make_organiser,
    make_user,
    sign_in_as,
)
from .checkout_support import (  # noqa: F401 (sandbox, shop: fixtures)
    CARD_OK,
    add,
    attempt_of,
    buy_until_stripe,
    sandbox,
    shop,
    wait_for_order,
)
from .factories import make_event, reload_order
from .jobs_support import running_jobs
from .sandbox_support import wait_until
from .ticket_support import pdf_pages

CATALOG = "storefront/translations/fr/LC_MESSAGES/messages"
# The keywords bin/update-translations extracts, besides Babel's (gettext, ngettext, _ ...).
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")


def _extracted(project_root) -> dict:
    """Every message the code and templates have now: msgid → where (babel.cfg's mapping)."""
    with open(project_root / "babel.cfg") as f:
        method_map, options_map = parse_mapping_cfg(f)
    found = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        project_root,
        method_map,
        options_map,
        keywords=KEYWORDS,
        # Babel's default filter also skips folders starting with "_": templates/_partials.
        directory_filter=lambda path: not os.path.basename(path).startswith("."),
    ):
        msgid = message if isinstance(message, str) else tuple(message[:2])
        found.setdefault(msgid, f"{filename}:{lineno}")
    return found


def _french(project_root):
    with open(project_root / f"{CATALOG}.po", "rb") as f:
        return read_po(f, locale="fr")


def test_every_string_of_the_code_has_a_french_translation_with_the_same_placeholders(project_root):
    extracted = _extracted(project_root)
    assert len(extracted) > 700  # the extraction found the templates, partials included
    catalog = _french(project_root)
    problems = []
    for msgid, where in sorted(extracted.items(), key=str):
        message = catalog.get(msgid)
        if message is None:
            problems.append(f"missing: {msgid!r} ({where})")
            continue
        if message.fuzzy:
            problems.append(f"fuzzy: {msgid!r} ({where})")
        ids = msgid if isinstance(msgid, tuple) else (msgid,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        if len(strings) != len(ids) or not all(strings):
            problems.append(f"empty: {msgid!r} ({where})")
            continue
        for source, translated in zip(ids, strings, strict=True):
            if sorted(PLACEHOLDER.findall(source)) != sorted(PLACEHOLDER.findall(translated)):
                problems.append(f"placeholders differ: {source!r} → {translated!r} ({where})")
    assert problems == [], "run bin/update-translations and translate:\n" + "\n".join(problems)
    assert catalog.num_plurals == 2 and catalog.plural_expr == "(n > 1)"


# French puts a no-break space before : ; ? and ! (U+00A0, or the narrow U+202F).
_TIGHT_PUNCTUATION = re.compile(r"[^\u00a0\u202f]([:;?!])")
# A translated word followed by punctuation typed in the template: French cannot space it.
_PUNCTUATION_AFTER_GETTEXT = re.compile(r"(?:_\((?:[^()]|\([^()]*\))*\)\s*\}\}|\{%-?\s*endif\s*-?%\})\s*[:;?!]\s")


def _without_urls_times_and_placeholders(text: str) -> str:
    text = re.sub(r"https?://\S+", "", text)
    text = re.sub(r"\d+:\d+", "", text)
    return PLACEHOLDER.sub("x", text)


def test_french_punctuation_has_its_no_break_space(project_root):
    problems = []
    for message in _french(project_root):
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for translated in strings:
            if message.id and _TIGHT_PUNCTUATION.search(_without_urls_times_and_placeholders(translated)):
                problems.append(f"catalog: {translated!r}")
    for template in sorted((project_root / "templates").rglob("*.html")):
        for match in _PUNCTUATION_AFTER_GETTEXT.finditer(template.read_text()):
            problems.append(
                f"{template.relative_to(project_root)}: {match.group(0)!r} (put the punctuation in the msgid)"
            )
    assert problems == [], "\n".join(problems)


def test_the_compiled_catalog_is_the_po_file_of_the_checkout(project_root):
    # The .mo is build output (bin/test, bin/demo, the wheel compile it): one left over
    # from an older .po would show stale French without any test noticing.
    mo_path = project_root / f"{CATALOG}.mo"
    assert mo_path.is_file(), "run: pybabel compile -d storefront/translations"
    with open(mo_path, "rb") as f:
        compiled = _strings(read_mo(f))
    assert compiled == _strings(_french(project_root)), "stale: run pybabel compile -d storefront/translations"


def _strings(catalog) -> dict:
    def plain(value):
        return tuple(value) if isinstance(value, list | tuple) else value

    return {plain(m.id): plain(m.string) for m in catalog if m.id}


def test_without_a_compiled_catalog_the_shop_stays_english(tmp_path):
    # No French page under English words: a language is offered only once compiled.
    assert languages.compiled(tmp_path, ["en", "fr"]) == ["en"]
    (tmp_path / "fr" / "LC_MESSAGES").mkdir(parents=True)
    (tmp_path / "fr" / "LC_MESSAGES" / "messages.mo").write_bytes(b"")
    assert languages.compiled(tmp_path, ["en", "fr"]) == ["en", "fr"]


def _lang(page: str) -> str:
    return re.search(r'<html lang="([^"]+)"', page).group(1)


def test_the_browser_language_chooses_and_html_lang_names_it(app, client):
    event = make_event(title="Nuit du Jazz", ticket_types=[{"name": "Standard", "price_minor": 1250}])
    with write_transaction():  # 18:30 UTC is 19:30 in Paris, in March
        db.session.execute(
            update(Event).where(Event.id == event.id).values(starts_at=datetime(2027, 3, 12, 18, 30, tzinfo=UTC))
        )
    english = client.get(f"/events/{event.slug}").get_data(as_text=True)
    assert _lang(english) == "en" and "Add to cart" in english and "€12.50" in english
    assert "12 March 2027" in english or "March 12, 2027" in english
    french = client.get(f"/events/{event.slug}", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})
    page = french.get_data(as_text=True)
    assert _lang(page) == "fr"
    assert "Ajouter au panier" in page and "Add to cart" not in page
    assert "12,50\u00a0€" in page  # Babel's French money
    assert "vendredi 12 mars 2027 · 19:30" in page  # French, in the event's timezone (18:30 UTC)
    assert 'value="en" lang="en" class="outline secondary small-button">English</button>' in page  # the switch
    # A language the shop does not have: English.
    assert _lang(client.get("/", headers={"Accept-Language": "de"}).get_data(as_text=True)) == "en"


def test_the_error_pages_and_the_back_office_are_french_too(app, client):
    missing = client.get("/no-such-page", headers={"Accept-Language": "fr"})
    page = missing.get_data(as_text=True)
    assert missing.status_code == 404 and _lang(page) == "fr" and "Page introuvable" in page
    sign_in = client.get("/admin/sign-in", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert _lang(sign_in) == "fr" and "Se connecter" in sign_in and "Mot de passe" in sign_in
    assert 'action="/language"' in sign_in  # the back office has the switch too


def test_the_switch_remembers_the_choice_over_the_browser_language(app, client):
    answer = client.post("/language", data={"lang": "fr", "next": "/cart?from=switch"})
    assert answer.status_code == 303 and answer.headers["Location"] == "/cart?from=switch"
    assert "lang=fr" in answer.headers["Set-Cookie"] and "HttpOnly" in answer.headers["Set-Cookie"]
    page = client.get("/cart", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert _lang(page) == "fr" and "Votre panier" in page
    client.post("/language", data={"lang": "en", "next": "/"})
    page = client.get("/", headers={"Accept-Language": "fr"}).get_data(as_text=True)
    assert _lang(page) == "en" and "Upcoming events" in page


@pytest.mark.parametrize(
    "target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:alert(1)", "", "events"]
)
def test_the_switch_goes_back_only_to_a_page_of_this_site(app, client, target):
    answer = client.post("/language", data={"lang": "fr", "next": target})
    assert answer.status_code == 303 and answer.headers["Location"] == "/"


def test_an_unknown_language_is_refused_and_changes_nothing(app, client):
    answer = client.post("/language", data={"lang": "xx", "next": "/"})
    assert answer.status_code == 400 and "lang=" not in answer.headers.get("Set-Cookie", "")
    # A forged cookie is ignored too.
    client.set_cookie("lang", "xx")
    assert _lang(client.get("/").get_data(as_text=True)) == "en"


@pytest.mark.app_config(WTF_CSRF_ENABLED=True)
def test_the_switch_needs_the_csrf_token(app, client):
    answer = client.post("/language", data={"lang": "fr", "next": "/"})
    assert answer.status_code == 400 and "lang=fr" not in answer.headers.get("Set-Cookie", "")


def _free_order_in_french(app, client) -> Order:
    event = make_event(title="Répétition ouverte", ticket_types=[{"name": "Entrée libre", "price_minor": 0}])
    client.post("/language", data={"lang": "fr", "next": "/"})
    add(client, event, {event.ticket_types[0].id: 1})
    form = {"email": "zoe@example.com", "first-1": "Zoé", "last-1": "Martin"}
    assert client.post("/checkout", data=form).status_code == 303
    return reload_order(db.session.execute(select(Order.id)).scalar_one())


def test_a_french_order_gets_its_mails_and_pdf_in_french(app, client, mail_dir):
    with running_jobs(app):
        order = _free_order_in_french(app, client)
        [message] = wait_until(lambda: mails_to(app, "zoe@example.com"), what="the confirmation")
    assert order.locale == "fr"
    assert message["Subject"] == f"Vos billets pour Répétition ouverte (commande {order.code})"
    for part in (message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()):
        assert "Merci pour votre commande" in part and "À apporter" in part and "What to bring" not in part
    html = message.get_body(("html",)).get_content()
    assert _lang(html) == "fr"
    [pdf] = [p.get_content() for p in message.iter_attachments() if p.get_filename().endswith(".pdf")]
    [(text, _codes)] = pdf_pages(pdf)
    assert "Participant" in text and "Présentez ce code" in text and "Attendee" not in text
    # A later mail, made by a job with no buyer's request (here, English around it), is French too.
    with force_locale("en"):
        later, _name = mail.build_event_cancelled(order.id)
    assert later["Subject"] == "Répétition ouverte est annulé"
    # And the PDF downloaded from the order's page, whatever the reader's language.
    download = client.get(f"/orders/{order.access_token}/tickets.pdf", headers={"Accept-Language": "en"})
    assert download.status_code == 200
    [(text, _codes)] = pdf_pages(download.data)
    assert "Participant" in text


def test_an_english_order_stays_english(app, client, mail_dir):
    event = make_event(title="Open Rehearsal", ticket_types=[{"name": "Free entry", "price_minor": 0}])
    add(client, event, {event.ticket_types[0].id: 1})
    form = {"email": "zoe@example.com", "first-1": "Zoe", "last-1": "Martin"}
    assert client.post("/checkout", data=form, headers={"Accept-Language": "en-GB"}).status_code == 303
    order = reload_order(db.session.execute(select(Order.id)).scalar_one())
    assert order.locale == "en"
    message, _name = mail.build_order_confirmation(order.id)
    assert message["Subject"].startswith("Your tickets for Open Rehearsal")


def test_a_paid_order_keeps_the_language_of_its_checkout_through_the_webhook(shop, sandbox):
    event = make_event(title="Nuit du Jazz", ticket_types=[{"name": "Standard", "price_minor": 2500}])
    client = shop.test_client()
    client.post("/language", data={"lang": "fr", "next": "/"})
    session_id = buy_until_stripe(client, event, {event.ticket_types[0].id: 1})
    attempt = attempt_of(session_id)
    assert attempt.locale == "fr"
    # The hosted payment page (the sandbox's, as Stripe's would) speaks the buyer's language.
    with urllib.request.urlopen(attempt.checkout_url, timeout=10) as answer:
        hosted = answer.read().decode()
    assert _lang(hosted) == "fr" and "Total à payer" in hosted and "Payer 25,00 €" in hosted
    assert sandbox.pay(session_id, card=CARD_OK)["outcome"] == "succeeded"
    order = wait_for_order(session_id)  # made by the webhook, whose request is Stripe's
    assert order.locale == "fr"
    message, _name = mail.build_order_confirmation(order.id)
    assert message["Subject"] == f"Vos billets pour Nuit du Jazz (commande {order.code})"


def _post_hosted(url: str, form: dict) -> str:
    request = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.read().decode()
    except urllib.error.HTTPError as error:  # 422 for a form with mistakes
        return error.read().decode()


def test_the_hosted_page_gives_declines_and_card_mistakes_in_the_buyers_language(shop, sandbox):
    event = make_event(title="Nuit du Jazz", ticket_types=[{"name": "Standard", "price_minor": 2500}])
    client = shop.test_client()
    client.post("/language", data={"lang": "fr", "next": "/"})
    session_id = buy_until_stripe(client, event, {event.ticket_types[0].id: 1})
    url = attempt_of(session_id).checkout_url
    card = {"method": "card", "email": "zoe@example.com", "card_expiry": "12/40", "card_cvc": "123"}
    mistakes = _post_hosted(url, {**card, "card_number": "4242", "card_cvc": "1"})
    assert "Le numéro de votre carte est incomplet." in mistakes
    assert "Le code de sécurité de votre carte est incomplet." in mistakes
    assert "Your card" not in mistakes
    declined = _post_hosted(url, {**card, "card_number": "4000000000009995"})
    assert "Les fonds de votre carte sont insuffisants." in declined
    assert "Your card has insufficient funds." not in declined
    # Stripe's API itself answers in English, whatever the page's language.
    with shop.app_context():
        stripe_session = gateway.get_gateway().retrieve_checkout_session(session_id, expand=["payment_intent"])
    assert stripe_session.payment_intent.last_payment_error.message == "Your card has insufficient funds."


def test_staff_mails_come_in_the_language_of_the_page_that_sent_them(app, client, mail_dir):
    from storefront.staff_models import Role

    owner = make_user("owner@example.com")
    add_member(owner, make_organiser("jazz", "Club de Jazz"), Role.OWNER)
    client.post("/language", data={"lang": "fr", "next": "/"})
    sign_in_as(client, owner)
    assert (
        client.post("/admin/o/jazz/members/invite", data={"email": "new@example.com", "role": "box_office"}).status_code
        == 303
    )
    [invitation] = mails_to(app, "new@example.com")
    assert invitation["Subject"] == "Vous êtes invité(e) à rejoindre Club de Jazz sur Storefront"
    assert "You are invited" not in invitation.get_body(("plain",)).get_content()

    stranger = app.test_client()  # asks in French, by the browser alone
    headers = {"Accept-Language": "fr-FR,fr;q=0.9"}
    assert (
        stranger.post("/admin/forgot-password", data={"email": "owner@example.com"}, headers=headers).status_code == 200
    )
    [reset] = mails_to(app, "owner@example.com")
    assert reset["Subject"] == "Réinitialisez votre mot de passe Storefront"
    # and in English for whoever asks in English
    app.test_client().post(
        "/admin/forgot-password", data={"email": "owner@example.com"}, headers={"Accept-Language": "en"}
    )
    assert mails_to(app, "owner@example.com")[1]["Subject"] == "Reset your Storefront password"
