"""The account rules that need no server: who may manage accounts, what a temporary password
looks like, and ending one person's sessions while keeping another's."""

from __future__ import annotations

import pytest

from collector import accounts
from collector.accounts import Account
from collector.console.sessions import ENDED, Sessions

pytestmark = pytest.mark.unit


def test_only_the_dsl_and_head_manage_accounts() -> None:
    allowed = {role for role in accounts.ROLES if Account("x", "X", role).can("manage_accounts")}
    assert allowed == {"dsl", "head"}


def test_temporary_passwords_are_long_unambiguous_and_pass_the_rules() -> None:
    made = {accounts.temporary_password() for _ in range(200)}
    assert len(made) == 200
    for password in made:
        assert len(password) >= accounts.MIN_PASSWORD
        letters = password.replace("-", "")
        assert len(letters) == 20 and not set(letters) & set("01ilo")


def test_a_new_password_must_be_long_enough() -> None:
    with pytest.raises(accounts.AccountError, match="at least 12"):
        accounts.hash_password("too short")
    with pytest.raises(accounts.AccountError, match="a username is"):
        accounts.check_new("Bad Name", "dsl")
    with pytest.raises(accounts.AccountError, match="role must be"):
        accounts.check_new("fine", "caretaker")


def test_ending_a_users_sessions_keeps_the_one_asked_for_and_others_users() -> None:
    s = Sessions(idle_s=60, max_s=3600, clock=lambda: 0.0)
    dana = Account("dana", "Dana", "dsl")
    phone, desk, laptop = (s.login(s.new(), dana) for _ in range(3))
    hana = s.login(s.new(), Account("hana", "Hana", "head"))
    assert s.end_user("dana", keep=desk) == 2
    assert desk.account == dana and hana.account is not None
    for ended in (phone, laptop):
        # Still a session (anonymous), so the next page can say why it was ended.
        assert s.get(ended.id) is ended and ended.account is None and ended.flash == [ENDED]
    assert s.end_user("dana") == 1 and desk.account is None
    assert s.end_user("nobody") == 0
