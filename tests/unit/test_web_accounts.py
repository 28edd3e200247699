"""Accounts of the web UI: password hashes, users and roles, sessions, throttling, setup."""

from __future__ import annotations

import pytest

from portcullis.accounts import passwords, sessions, setup, throttle, users
from portcullis.directory import domains
from portcullis.store import open_store

pytestmark = pytest.mark.webui

GOOD = "correct horse battery"


@pytest.fixture
def store(tmp_path):
    store = open_store(tmp_path)
    domains.add_domain(store, "example.com", "10.0.0.2")
    domains.add_domain(store, "other.org", "10.0.0.3")
    yield store
    store.close()


def test_password_hash_is_salted_scrypt_and_verifies_only_the_right_password():
    first, second = passwords.hash_password(GOOD), passwords.hash_password(GOOD)
    assert first.startswith(f"scrypt${passwords.COST_N}$") and first != second
    assert passwords.verify_password(GOOD, first)
    assert not passwords.verify_password(GOOD + "!", first)
    assert not passwords.needs_rehash(first)


def test_malformed_or_foreign_hashes_match_nothing():
    for encoded in ("", "plain", "md5$x$y", "scrypt$x$8$1$AAAA$BBBB", "scrypt$16$8$1$%%$%%"):
        assert not passwords.verify_password(GOOD, encoded)
    assert passwords.needs_rehash("scrypt$1024$8$1$AAAA$BBBB")


@pytest.mark.parametrize("bad", ["short", " leading space ok?", "tab\tinside password",
                                 "x" * 2000])
def test_unusable_passwords_are_refused_with_a_reason(bad):
    with pytest.raises(passwords.PasswordError):
        passwords.check_password_rules(bad)


def test_domain_admin_manages_only_assigned_domains(store):
    admin = users.add_user(store, "Dora", users.DOMAIN, ["Example.COM"], password=GOOD)
    assert admin.name == "dora" and admin.domains == ("example.com",)
    assert admin.may_manage("example.com") and not admin.may_manage("other.org")
    assert admin.domain_filter == ["example.com"]
    boss = users.add_user(store, "boss", users.SUPER, password=GOOD)
    assert boss.may_manage("other.org") and boss.domain_filter is None


def test_account_rules_are_enforced(store):
    with pytest.raises(users.AccountError, match="at least one domain"):
        users.add_user(store, "nodomain", users.DOMAIN, [])
    with pytest.raises(users.AccountError, match="not protected"):
        users.add_user(store, "ghost", users.DOMAIN, ["nowhere.net"])
    with pytest.raises(users.AccountError, match="every domain"):
        users.add_user(store, "super2", users.SUPER, ["example.com"])
    with pytest.raises(users.AccountError, match="valid user name"):
        users.add_user(store, "bad name", users.SUPER)
    users.add_user(store, "root", users.SUPER, password=GOOD)
    with pytest.raises(users.AccountError, match="already exists"):
        users.add_user(store, "ROOT", users.SUPER)
    with pytest.raises(users.AccountError, match="last super"):
        users.remove_user(store, "root")


def test_authenticate_needs_the_right_password_and_an_existing_user(store):
    users.add_user(store, "alice", users.SUPER, password=GOOD)
    users.add_user(store, "nopass", users.DOMAIN, ["example.com"])
    assert users.authenticate(store, "ALICE", GOOD).name == "alice"
    assert users.authenticate(store, "alice", "wrong password!") is None
    assert users.authenticate(store, "nobody", GOOD) is None
    assert users.authenticate(store, "nopass", "") is None


def test_removing_a_domain_removes_it_from_its_administrators(store):
    users.add_user(store, "dora", users.DOMAIN, ["example.com", "other.org"], password=GOOD)
    domains.remove_domain(store, "other.org")
    assert users.get_user(store, "dora").domains == ("example.com",)


def test_session_expires_when_idle_and_ends_on_password_change(store):
    users.add_user(store, "alice", users.SUPER, password=GOOD)
    token, _session = sessions.create_session(store, "alice", "192.0.2.1", now=1000.0)
    assert sessions.load_session(store, token, now=1000.0 + 60).user == "alice"
    assert sessions.load_session(store, "forged-" + token, now=1100.0) is None
    idle = 1060.0 + sessions.IDLE_SECONDS + 1
    assert sessions.load_session(store, token, now=idle) is None
    token, _ = sessions.create_session(store, "alice", "192.0.2.1")
    users.set_password(store, "alice", GOOD + " again")
    assert sessions.load_session(store, token) is None


def test_session_token_is_not_stored_in_clear(store):
    users.add_user(store, "alice", users.SUPER, password=GOOD)
    token, _ = sessions.create_session(store, "alice", "192.0.2.1")
    assert token not in str(store.query("SELECT * FROM web_sessions"))


def test_flash_messages_are_shown_once(store):
    users.add_user(store, "alice", users.SUPER, password=GOOD)
    _, session = sessions.create_session(store, "alice", "192.0.2.1")
    sessions.push_message(store, session, "ok", "saved")
    assert sessions.pop_messages(store, session) == [("ok", "saved")]
    assert sessions.pop_messages(store, session) == []


def test_throttle_blocks_a_guessing_client_and_lets_it_retry_after_the_window(store):
    now = 10_000.0
    for i in range(throttle.LIMITS["pair"]):
        assert throttle.retry_after(store, "alice", "192.0.2.9", now + i) == 0
        throttle.record_failure(store, "alice", "192.0.2.9", now + i)
    wait = throttle.retry_after(store, "alice", "192.0.2.9", now + 10)
    assert 0 < wait <= throttle.WINDOW_SECONDS
    # Another address is not punished for this one's guesses.
    assert throttle.retry_after(store, "alice", "192.0.2.10", now + 10) == 0
    assert throttle.retry_after(store, "alice", "192.0.2.9",
                                now + throttle.WINDOW_SECONDS + 1) == 0


def test_throttle_limits_one_address_guessing_many_names(store):
    now = 50_000.0
    for i in range(throttle.LIMITS["ip"]):
        throttle.record_failure(store, f"user{i}", "198.51.100.7", now)
    assert throttle.retry_after(store, "fresh-name", "198.51.100.7", now + 1) > 0


def test_successful_login_clears_that_pairs_failures(store):
    for _ in range(throttle.LIMITS["pair"] - 1):
        throttle.record_failure(store, "alice", "192.0.2.9")
    throttle.record_success(store, "alice", "192.0.2.9")
    throttle.record_failure(store, "alice", "192.0.2.9")
    assert throttle.retry_after(store, "alice", "192.0.2.9") == 0


def test_an_attempt_is_counted_before_its_password_is_checked_and_a_good_one_taken_back(
        store):
    now = 70_000.0
    for i in range(throttle.LIMITS["pair"]):
        assert throttle.claim_attempt(store, "alice", "192.0.2.9", now + i) == 0
    # No record_failure: the claims counted, as a request sent meanwhile must see.
    assert throttle.claim_attempt(store, "alice", "192.0.2.9", now + 10) > 0
    # A good login's claim is no failure of its address: 19 wrong names, one good login,
    # and the address still has its twentieth try.
    for i in range(throttle.LIMITS["ip"] - 1):
        assert throttle.claim_attempt(store, f"user{i}", "198.51.100.8", now) == 0
    assert throttle.claim_attempt(store, "bob", "198.51.100.8", now) == 0
    throttle.record_success(store, "bob", "198.51.100.8")
    assert throttle.claim_attempt(store, "carol", "198.51.100.8", now) == 0
    assert throttle.claim_attempt(store, "dave", "198.51.100.8", now) > 0


def test_setup_code_is_made_once_and_good_only_until_a_super_admin_exists(store, tmp_path):
    state = tmp_path
    code = setup.ensure_code(store, state, announce=False)
    assert code and setup.code_path(state).stat().st_mode & 0o777 == 0o600
    assert setup.ensure_code(store, state, announce=False) == code
    with pytest.raises(setup.SetupError, match="wrong"):
        setup.complete_setup(store, state, "AAAA-BBBB", "admin", GOOD)
    user = setup.complete_setup(store, state, code.lower().replace("-", " "), "admin", GOOD)
    assert user.is_super and not setup.code_path(state).exists()
    with pytest.raises(setup.SetupError):
        setup.complete_setup(store, state, code, "intruder", GOOD)
    assert setup.ensure_code(store, state, announce=False) is None


def test_setup_code_written_by_the_image_is_used_as_it_is(store, tmp_path):
    setup.code_path(tmp_path).write_text("IMAGE-MADE-CODE\n")
    assert setup.ensure_code(store, tmp_path, announce=False) == "IMAGE-MADE-CODE"
    assert setup.complete_setup(store, tmp_path, "image-made-code", "admin", GOOD).is_super


def test_throttle_counts_an_ipv6_64_as_one_client(store):
    # One host has a whole /64 to take addresses from: were each address a client of its
    # own, it could guess any number of names (and passwords) by moving on to the next.
    now = 60_000.0
    for i in range(throttle.LIMITS["ip"]):
        throttle.record_failure(store, f"user{i}", f"2001:db8:1:2::{i + 1:x}", now)
    assert throttle.retry_after(store, "fresh-name", "2001:db8:1:2:ffff::9", now + 1) > 0
    for i in range(throttle.LIMITS["pair"]):
        throttle.record_failure(store, "alice", f"2001:db8:5:6::{i + 1:x}", now)
    assert throttle.retry_after(store, "alice", "2001:db8:5:6::abc", now + 1) > 0
    # Another /64 is another client; an IPv4-mapped address is the IPv4 one.
    assert throttle.retry_after(store, "fresh-name", "2001:db8:1:3::1", now + 1) == 0
    for _ in range(throttle.LIMITS["pair"]):
        throttle.record_failure(store, "bob", "192.0.2.44", now)
    assert throttle.retry_after(store, "bob", "::ffff:192.0.2.44", now + 1) > 0
