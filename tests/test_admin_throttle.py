"""What 40 fast guesses at the back office's door do: sign-in, second-factor codes, reset mails."""

from __future__ import annotations

from storefront.staff_models import Role

from .admin_support import (
    PASSWORD,
    add_member,
    audit_actions,
    mail_dir,  # noqa: F401 (a fixture)
    mails_to,
    make_organiser,
    make_user,
    reload_user,
    sign_in,
    totp_now,
)


def at(client, address: str):
    client.environ_base["REMOTE_ADDR"] = address
    return client


def test_forty_fast_wrong_passwords_at_one_account(app):
    owner = make_user("target@example.com")
    add_member(owner, make_organiser("door"), Role.OWNER)
    attacker = at(app.test_client(), "198.51.100.7")
    answers = [sign_in(attacker, "target@example.com", f"guess number {i}").status_code for i in range(40)]
    assert answers[:5] == [400] * 5
    assert answers[5:] == [429] * 35
    limited = sign_in(attacker, "target@example.com", "one more guess")
    assert int(limited.headers["Retry-After"]) > 0
    assert "Too many attempts" in limited.get_data(as_text=True)
    # Only the five checked attempts were written down; the refused ones did nothing.
    assert audit_actions(action="sign_in_failed") == ["sign_in_failed"] * 5
    # The right password is refused too while the account is throttled, from anywhere.
    assert sign_in(at(app.test_client(), "203.0.113.50"), "target@example.com").status_code == 429
    assert audit_actions(action="signed_in") == []
    # Other accounts are not affected, from another address.
    other = make_user("other@example.com")
    add_member(other, make_organiser("other"), Role.OWNER)
    assert sign_in(at(app.test_client(), "203.0.113.51"), "other@example.com").status_code == 303


def test_forty_fast_guesses_across_accounts_from_one_address(app):
    for i in range(8):
        make_user(f"user{i}@example.com")
    spray = at(app.test_client(), "198.51.100.8")
    answers = [sign_in(spray, f"user{i % 8}@example.com", f"common guess {i}").status_code for i in range(40)]
    # Each account was tried fewer than 5 times, but the address is held at 20 attempts.
    assert answers[:20] == [400] * 20 and set(answers[20:]) == {429}
    make_user("fresh@example.com")
    assert sign_in(spray, "fresh@example.com").status_code == 429  # this address waits
    assert sign_in(at(app.test_client(), "198.51.100.9"), "fresh@example.com").status_code == 303


def test_forty_fast_second_factor_codes(app):
    user = make_user("tf@example.com", two_factor=True)
    add_member(user, make_organiser("tf"), Role.OWNER)
    client = at(app.test_client(), "198.51.100.10")
    assert sign_in(client, "tf@example.com").status_code == 303
    answers = [client.post("/admin/sign-in/second-factor", data={"code": f"{i:06d}"}).status_code for i in range(40)]
    assert answers[:5] == [400] * 5 and set(answers[5:]) == {429}
    good = client.post("/admin/sign-in/second-factor", data={"code": totp_now(reload_user(user.id), 1)})
    assert good.status_code == 429
    with client.session_transaction() as session:
        assert "_user_id" not in session


def test_forty_fast_reset_requests_send_three_mails(app, mail_dir):
    make_user("flooded@example.com")
    client = at(app.test_client(), "198.51.100.11")
    answers = [
        client.post("/admin/forgot-password", data={"email": "flooded@example.com"}).status_code for _ in range(40)
    ]
    assert answers[:3] == [200] * 3 and set(answers[3:]) == {429}
    assert len(mails_to(app, "flooded@example.com")) == 3


def test_throttling_off_when_rate_limits_are_disabled(app):
    app.config["RATELIMIT_ENABLED"] = False
    make_user("free@example.com")
    client = app.test_client()
    assert {sign_in(client, "free@example.com", f"wrong {i}").status_code for i in range(8)} == {400}
    assert sign_in(client, "free@example.com", PASSWORD).status_code == 303
