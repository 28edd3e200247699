import ipaddress

import pytest

from portcullis import config
from portcullis.addresses import AddressError
from portcullis.directory import bwlists, domains, relays, settings, valid_addresses
from portcullis.directory.snapshot import SnapshotCache, load_snapshot
from portcullis.store import open_store

pytestmark = pytest.mark.gateway


@pytest.fixture
def cfg(tmp_path):
    return config.parse({"smtp": {"listen": "127.0.0.1:2525"},
                         "web": {"listen": "127.0.0.1:8080"},
                         "store": {"dir": str(tmp_path)}})


@pytest.fixture
def store(tmp_path):
    return open_store(tmp_path)


def test_a_new_domain_starts_with_validation_on(store):
    domain = domains.add_domain(store, "Example.COM", "10.0.1.2")
    assert (domain.name, str(domain.mail_host)) == ("example.com", "10.0.1.2:25")
    assert domain.filtering and domain.smtp_validation and domain.reject_non_validated
    with pytest.raises(AddressError, match="already"):
        domains.add_domain(store, "example.com", "10.0.1.3:25")


def test_domain_settings_change_and_removal_takes_its_addresses(store):
    domains.add_domain(store, "example.com", "10.0.1.2:25")
    domains.update_domain(store, "example.com", "10.0.1.9:2525", smtp_validation=False)
    domain = domains.get_domain(store, "example.com")
    assert str(domain.mail_host) == "10.0.1.9:2525" and not domain.smtp_validation
    valid_addresses.import_addresses(store, "example.com", "a@example.com\n")
    domains.remove_domain(store, "example.com")
    assert not valid_addresses.is_listed(store, "a@example.com")
    with pytest.raises(AddressError):
        domains.update_domain(store, "example.com", filtering=False)


def test_a_mail_host_typo_is_refused_but_a_stored_one_still_reads(store):
    with pytest.raises(AddressError, match="not a host name"):
        domains.add_domain(store, "example.com", "mail..example.com")
    # a release that checked less may have stored such a host: it must still read
    domains.add_domain(store, "example.com", "10.0.1.2")
    store.execute("UPDATE domains SET mail_host = 'mail..example.com:25'")
    assert str(domains.get_domain(store, "example.com").mail_host) == "mail..example.com:25"
    with pytest.raises(AddressError, match="not a host name"):
        domains.update_domain(store, "example.com", "mail..example.com")


@pytest.mark.parametrize("host", ["192.0.2.77", "192.0.2.77:2525", "[::ffff:192.0.2.77]"])
def test_a_mail_host_at_an_address_of_this_appliance_is_refused_saying_so(store, monkeypatch,
                                                                        host):
    # 192.0.2.77 stands for the appliance's LAN address: mail for it would loop.
    monkeypatch.setattr("portcullis.ownaddresses.own_addresses",
                        lambda: frozenset({ipaddress.ip_address("192.0.2.77")}))
    with pytest.raises(AddressError, match="is an address of this appliance itself"):
        domains.add_domain(store, "example.com", host)
    domains.add_domain(store, "example.com", "192.0.2.78")
    with pytest.raises(AddressError, match="is an address of this appliance itself"):
        domains.update_domain(store, "example.com", host)
    # Loopback stays a super administrator's deliberate choice (tests, a local relay).
    assert str(domains.update_domain(store, "example.com", "127.0.0.1:2525").mail_host) \
        == "127.0.0.1:2525"


def test_valid_address_import_is_all_or_nothing_with_per_line_errors(store):
    domains.add_domain(store, "example.com", "10.0.1.2")
    text = "Jane Doe <jane@example.com>\nbob@example.com\nsomeone@elsewhere.org\ngarbage here\n"
    result = valid_addresses.import_addresses(store, "example.com", text)
    assert result.added == 0 and len(result.errors) == 2
    assert "line 3" in result.errors[0] and "line 4" in result.errors[1]
    result = valid_addresses.import_addresses(store, "example.com", text, strict=False)
    assert result.added == 2
    assert valid_addresses.list_addresses(store, "example.com") == \
        ["bob@example.com", "jane@example.com"]
    result = valid_addresses.import_addresses(store, "example.com", "new@example.com",
                                              replace=True)
    assert valid_addresses.list_addresses(store, "example.com") == ["new@example.com"]


def test_a_big_import_writes_in_short_transactions_and_a_replace_never_drops_a_kept_address(
        store, monkeypatch):
    # The gateway waits at most 5 s for the store's write lock: one transaction of 500,000
    # addresses held it for seconds.  A nightly replace of the list must not leave an
    # address that stays on it missing in between either (its mail would get 550).
    monkeypatch.setattr(valid_addresses, "IMPORT_BATCH", 100, raising=False)
    domains.add_domain(store, "example.com", "10.0.1.2")
    old = [f"user{n}@example.com" for n in range(1000)]
    valid_addresses.import_addresses(store, "example.com", "\n".join(old))
    new = [f"user{n}@example.com" for n in range(500, 1500)]
    kept = set(old) & set(new)
    writes: list[int] = []
    executemany = store.executemany

    def watched(sql, rows):
        changed = executemany(sql, rows)
        writes.append(len(rows))
        present = {a for a in valid_addresses.list_addresses(store, "example.com")}
        assert kept <= present, f"{len(kept - present)} kept addresses missing"
        return changed

    monkeypatch.setattr(store, "executemany", watched)
    result = valid_addresses.import_addresses(store, "example.com", "\n".join(new),
                                              replace=True)
    assert (result.added, result.unchanged) == (500, 500)
    assert sorted(valid_addresses.list_addresses(store, "example.com")) == sorted(new)
    assert len(writes) == 15 and max(writes) == 100         # 5 batches removed, 10 added


def test_snapshot_sees_changes_made_by_another_process(store, cfg, tmp_path, monkeypatch):
    from portcullis.directory import snapshot as snapshot_module

    monkeypatch.setattr(snapshot_module, "REFRESH_SECONDS", 0)
    cache = SnapshotCache(store, cfg)
    assert not cache.get().domains
    other = open_store(tmp_path)       # another connection, as the CLI would have
    domains.add_domain(other, "example.com", "10.0.1.2")
    relays.add_relay(other, "10.0.1.0/24")
    bwlists.add_entry(other, "black", "pushysender.com")
    snap = cache.get()
    assert "example.com" in snap.domains
    from ipaddress import ip_address
    assert snap.is_relay(ip_address("10.0.1.77")) and not snap.is_relay(ip_address("10.0.2.1"))
    assert snap.black.match_sender("news@mail.pushysender.com") == "pushysender.com"
    assert snap.black.match_sender("news@notpushysender.com") is None



@pytest.mark.parametrize("sender", [
    "news@pushysender.com.", "news@mail.pushysender.com.", "News@PUSHYSENDER.COM",
    "chef@bücher.example", "chef@BÜCHER.example.", "boss@xn--bcher-kva.example",
])
def test_a_listed_sender_is_matched_however_its_domain_is_written(store, cfg, sender):
    for entry in ("pushysender.com", "bücher.example"):
        bwlists.add_entry(store, "black", entry)
    bwlists.add_entry(store, "white", "Chef@Bücher.example")
    snap = load_snapshot(store, cfg)
    assert snap.black.match_sender(sender) is not None
    assert (snap.white.match_sender(sender) is not None) == sender.lower().startswith("chef@")

def test_no_relay_by_default_not_even_loopback(store, cfg):
    from ipaddress import ip_address
    assert not load_snapshot(store, cfg).is_relay(ip_address("127.0.0.1"))


def test_settings_default_from_config_and_are_validated(store, cfg):
    values = settings.get_settings(store, cfg)
    assert values["tag_phrase"] == "[SPAM?]" and values["archive_retention_days"] == 7
    settings.set_settings(store, cfg, {"tag_phrase": "[maybe spam]",
                                       "archive_retention_days": "30"})
    values = settings.get_settings(store, cfg)
    assert values["tag_phrase"] == "[maybe spam]" and values["archive_retention_days"] == 30
    with pytest.raises(settings.SettingError, match="from 1 to 90"):
        settings.set_settings(store, cfg, {"archive_retention_days": 91})
    with pytest.raises(settings.SettingError, match="below"):
        settings.set_settings(store, cfg, {"tag_threshold": 50})
    for not_a_number in ("nan", "-inf", float("nan")):  # nan >= anything is false
        with pytest.raises(settings.SettingError, match="finite"):
            settings.set_settings(store, cfg, {"tag_threshold": not_a_number})
    with pytest.raises(settings.SettingError, match="single line"):
        settings.set_settings(store, cfg, {"reject_text": "a\r\n250 ok"})
    with pytest.raises(settings.SettingError, match="unknown"):
        settings.set_settings(store, cfg, {"no_such": 1})
    with pytest.raises(settings.SettingError, match="one of reject, score, accept"):
        settings.set_settings(store, cfg, {"office_macros": "quarantine"})
    assert settings.get_settings(store, cfg)["office_macros"] == "score"


def test_greylisting_cannot_be_set_so_that_no_retry_ever_passes(store, cfg):
    # A delay of an hour in a window of an hour: a retry came too early, or found its
    # first attempt forgotten and started over; every new sender's mail was deferred
    # until it bounced.  Refused, naming both settings, and nothing is stored.
    with pytest.raises(settings.SettingError, match=r"greylist_delay .* greylist_window"):
        settings.set_settings(store, cfg, {"greylist_window": 1, "greylist_delay": 3600})
    assert store.query("SELECT * FROM settings") == []
    assert settings.set_settings(store, cfg, {"greylist_delay": 86400})["greylist_delay"] \
        == 86400                                  # a day in the default 48 hours: room
    with pytest.raises(settings.SettingError, match="greylist_window"):
        settings.set_settings(store, cfg, {"greylist_window": 24})
    assert settings.set_settings(store, cfg, {"greylist_window": 1, "greylist_delay": 1800}
                                 )["greylist_window"] == 1


NUMERIC_SETTINGS = [s for s in settings.SETTINGS.values() if s.kind in (int, float)]


@pytest.mark.parametrize("setting", NUMERIC_SETTINGS, ids=lambda s: s.name)
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", " NaN ", "9" * 5000,
                                   float("nan"), float("inf"), True])
def test_a_numeric_setting_refuses_what_is_no_finite_number_naming_its_range(store, cfg,
                                                                            setting, value):
    # The settings page and `portcullis settings set` both read through here: the
    # administrator is told which field and which values it takes, and nothing is stored.
    kind = "a whole number" if setting.kind is int else "a finite number"
    wanted = f"{setting.name}: must be {kind} from {setting.minimum:g} to {setting.maximum:g}"
    with pytest.raises(settings.SettingError) as refused:
        settings.set_settings(store, cfg, {setting.name: value})
    assert str(refused.value).startswith(wanted)
    assert store.query("SELECT * FROM settings") == []


def test_a_whole_number_setting_does_not_cut_a_fraction_off(store, cfg):
    with pytest.raises(settings.SettingError, match="harvest_block: must be a whole number"):
        settings.set_settings(store, cfg, {"harvest_block": 7.9})     # was stored as 7
    assert settings.set_settings(store, cfg, {"harvest_block": " 30 "})["harvest_block"] == 30


def test_a_relay_network_that_would_make_an_open_relay_is_refused(store, cfg):
    from ipaddress import ip_address
    for network in ("0.0.0.0/0", "10.0.0.0/0", "128.0.0.0/1", "::/0", "2000::/3"):
        with pytest.raises(AddressError, match="open relay"):
            relays.add_relay(store, network)
    assert relays.list_relays(store) == []
    relays.add_relay(store, "10.0.0.0/8")
    relays.add_relay(store, "2001:db8::/32")
    # an IPv4-mapped entry is kept as the IPv4 network that clients are matched as
    assert relays.add_relay(store, "::ffff:192.0.2.0/120") == "192.0.2.0/24"
    assert load_snapshot(store, cfg).is_relay(ip_address("192.0.2.9"))


def test_a_list_network_that_takes_in_most_of_the_internet_is_refused(store):
    for kind in bwlists.KINDS:
        for network in ("1.2.3.4/0", "10.0.0.0/7", "::/0", "2001:db8::/15"):
            with pytest.raises(AddressError, match="most of the Internet"):
                bwlists.add_entry(store, kind, network)
        assert bwlists.list_entries(store, kind) == []
        assert bwlists.add_entry(store, kind, "10.0.0.0/8").text == "10.0.0.0/8"


@pytest.mark.parametrize("text", ["192.168.1", "010.001.002.003", "203.0.113.5-203.0.113.9",
                                  "203.0.113", "10.1"])
def test_an_ip_address_the_list_cannot_read_is_refused_not_kept_as_a_domain(store, cfg, text):
    # An address written short, with leading zeros or as a range was stored as a domain
    # entry that looked like the address and matched no client: the sender the
    # administrator meant to black-list went on sending.  No domain ends in a number.
    with pytest.raises(AddressError, match="IP address"):
        bwlists.add_entry(store, "black", text)
    assert bwlists.list_entries(store, "black") == []
    bwlists.add_entry(store, "black", "192.168.1.0/24")
    assert load_snapshot(store, cfg).black.match_ip(ipaddress.ip_address("192.168.1.9"))


def test_a_note_is_one_short_line(store):
    for note in ("a\nb", "tab\there", "x" * 201):
        with pytest.raises(AddressError, match="one line"):
            relays.add_relay(store, "10.0.1.0/24", note=note)
        with pytest.raises(AddressError, match="one line"):
            bwlists.add_entry(store, "black", "pushysender.com", note=note)
    assert relays.list_relays(store) == [] and bwlists.list_entries(store, "black") == []
    bwlists.add_entry(store, "white", "::ffff:10.0.0.1", note="  the scanner  ")
    assert [(e["entry"], e["note"]) for e in bwlists.list_entries(store, "white")] == [
        ("10.0.0.1/32", "the scanner")]


def test_stored_ipv4_mapped_entries_become_the_ipv4_networks_they_meant(store, cfg):
    from ipaddress import ip_address

    from portcullis.store.migrations import core
    for network in ("::ffff:a00:1/128", "::ffff:c000:200/120"):  # as an older release kept them
        store.execute("INSERT INTO relays (network, note, created) VALUES (?, '', 0)", (network,))
    store.execute("INSERT INTO relays (network, note, created) VALUES ('10.0.0.1/32', 'a', 0)")
    store.execute("INSERT INTO bwlist (kind, entry, note, created)"
                  " VALUES ('black', '::ffff:cb00:7109/128', '', 0)")
    core._mapped_networks_as_ipv4(store)          # the step that met them on upgrade
    assert [r["network"] for r in relays.list_relays(store)] == ["10.0.0.1/32", "192.0.2.0/24"]
    assert [e["entry"] for e in bwlists.list_entries(store, "black")] == ["203.0.113.9/32"]
    snap = load_snapshot(store, cfg)
    assert snap.is_relay(ip_address("192.0.2.77")) and snap.is_relay(ip_address("10.0.0.1"))


def test_entries_an_older_release_stored_and_this_one_refuses_are_left_out_not_fatal(store, cfg):
    # Stricter rules (IPv6 zones, line breaks) must not leave a gateway that cannot start.
    from ipaddress import ip_address

    from portcullis.store.migrations import core
    store.execute("INSERT INTO relays (network, note, created) VALUES"
                  " ('2001:db8::%eth0/64', '', 0), ('10.0.0.0/8', '', 0)")
    store.execute("INSERT INTO bwlist (kind, entry, note, created) VALUES"
                  " ('black', 'spam\n.example', '', 0), ('black', '::ffff:a00:1%x/128', '', 0),"
                  " ('black', 'pushysender.com', '', 0),"
                  # Lists took any prefix before: all mail was black-listed.
                  " ('black', '0.0.0.0/0', '', 0), ('white', '::/0', '', 0)")
    core._mapped_networks_as_ipv4(store)          # the step that met them on upgrade
    snapshot = load_snapshot(store, cfg)
    assert snapshot.is_relay(ip_address("10.1.2.3")) and len(snapshot.relays) == 1
    assert snapshot.black.domains == ["pushysender.com"] and not snapshot.black.networks
    assert not snapshot.white.networks
    relays.remove_relay(store, "2001:db8::%eth0/64")          # removable as it is shown
    bwlists.remove_entry(store, "black", "spam\n.example")
    bwlists.remove_entry(store, "black", "::ffff:a00:1%x/128")
    bwlists.remove_entry(store, "black", "0.0.0.0/0")
    assert [r["network"] for r in relays.list_relays(store)] == ["10.0.0.0/8"]
    assert [e["entry"] for e in bwlists.list_entries(store, "black")] == ["pushysender.com"]
    store.execute("INSERT INTO domains (name, mail_host, filtering, smtp_validation,"
                  " reject_non_validated, created)"
                  " VALUES ('a\n.example', '10.0.0.5:25', 1, 0, 0, 0)")
    domains.remove_domain(store, "a\n.example")
    assert domains.list_domains(store) == []


def test_valid_addresses_are_found_however_the_administrator_writes_them(store):
    # The CLI passes what was typed: a domain in capitals listed no address, and an
    # address in U-labels was "not a valid address of any domain" and stayed valid.
    domains.add_domain(store, "bücher.example", "10.0.1.2:25")
    valid_addresses.import_addresses(store, "bücher.example",
                                     "dave@bücher.example\nx@bücher.example")
    for domain in ("BÜCHER.example", "xn--bcher-kva.example.", " Bücher.Example "):
        assert valid_addresses.list_addresses(store, domain) == [
            "dave@xn--bcher-kva.example", "x@xn--bcher-kva.example"]
        assert valid_addresses.count_addresses(store, domain) == 2
    assert valid_addresses.is_listed(store, "Dave@BÜCHER.example.")
    assert valid_addresses.remove_address(store, "Dave@BÜCHER.example")
    assert not valid_addresses.is_listed(store, "dave@xn--bcher-kva.example")
    assert valid_addresses.list_addresses(store, "bücher.example") == ["x@xn--bcher-kva.example"]


@pytest.mark.parametrize("text", ["", "\n\n", "# exported 2026-12-01\n", "Jane Doe\n"])
def test_replacing_the_only_validation_with_an_empty_list_is_refused(store, text):
    # An empty paste or file with "replace" removed every address of a domain that
    # validates by its list alone: all its mail was refused as User unknown.
    domains.add_domain(store, "example.com", "10.0.1.2:25", smtp_validation=False)
    valid_addresses.import_addresses(store, "example.com", "a@example.com\nb@example.com")
    for strict in (True, False):
        result = valid_addresses.import_addresses(store, "example.com", text, replace=True,
                                                  strict=strict)
        assert result.errors and "defer all its mail" in result.errors[-1]
        assert valid_addresses.count_addresses(store, "example.com") == 2
    # Where the internal host is asked (or nothing is refused), the list may be emptied.
    domains.update_domain(store, "example.com", smtp_validation=True)
    result = valid_addresses.import_addresses(store, "example.com", "", replace=True)
    assert not result.errors and valid_addresses.count_addresses(store, "example.com") == 0


def test_a_listed_users_subaddresses_are_valid_by_the_recipient_delimiter(store, cfg):
    # dave+news@ is dave@'s mailbox (Postfix's recipient_delimiter): refused as User
    # unknown by a list holding dave@, a real user's tagged mail bounced.
    domains.add_domain(store, "bücher.example", "192.0.2.25", smtp_validation=False)
    valid_addresses.import_addresses(store, "bücher.example", "dave@bücher.example\n"
                                     "sales+eu@bücher.example\n")
    assert settings.get_settings(store, cfg)["recipient_delimiter"] == "+"
    for address in ("dave+news@bücher.example", "Dave+News@BÜCHER.example.",
                    "dave+@bücher.example", "dave+a+b@bücher.example",
                    "sales+eu@bücher.example"):
        assert valid_addresses.is_listed(store, address), address
    for address in ("dave-news@bücher.example", "+dave@bücher.example",
                    "sales@bücher.example", "eve+dave@bücher.example"):
        assert not valid_addresses.is_listed(store, address), address
    settings.set_settings(store, cfg, {"recipient_delimiter": "+-"})   # either of them
    assert valid_addresses.is_listed(store, "dave-news@bücher.example")
    settings.set_settings(store, cfg, {"recipient_delimiter": ""})     # none
    assert not valid_addresses.is_listed(store, "dave+news@bücher.example")
    assert valid_addresses.is_listed(store, "dave@bücher.example")


@pytest.mark.parametrize("delimiter", ["@", "a", "+ ", ".", '"', "<", "%", "+@"])
def test_a_recipient_delimiter_that_is_part_of_addresses_is_refused(store, cfg, delimiter):
    with pytest.raises(settings.SettingError, match="recipient_delimiter"):
        settings.set_settings(store, cfg, {"recipient_delimiter": delimiter})


@pytest.mark.parametrize("kind", ["black", "white"])
def test_a_wildcard_sender_is_refused_naming_the_domain_entry_meant(store, kind):
    # '*@example.com' (SpamAssassin's and Proxmox's way to name a domain's senders) was
    # stored as the address of a mailbox called '*', which no sender is: the newsletter
    # stayed judged, the pushy sender unblocked, and the list showed it as listed.
    with pytest.raises(AddressError, match=r"domain alone \(example\.com\)"):
        bwlists.add_entry(store, kind, "*@Example.COM")
    assert bwlists.list_entries(store, kind) == []
    assert bwlists.add_entry(store, kind, "example.com").kind == "domain"


def test_cli_import_refused_for_an_empty_replace_says_why_not_to_remove_names(
        store, tmp_path, capsys):
    # The refusal of an empty replacement list (it would refuse all the domain's mail)
    # ended in "1 line(s) refused ... Remove proper names", about lines there were none of.
    from portcullis.cli.main import main

    domains.add_domain(store, "example.com", "192.0.2.25", smtp_validation=False)
    valid_addresses.import_addresses(store, "example.com", "a@example.com\n")
    cfg = tmp_path / "portcullis.toml"
    cfg.write_text(f'[smtp]\nlisten = "127.0.0.1:1"\n[web]\nlisten = "127.0.0.1:1"\n'
                   f'[store]\ndir = "{tmp_path}"\n')
    empty = tmp_path / "users.txt"
    empty.write_text("# exported 2026-12-01\n")
    status = main(["valid", "import", "--config", str(cfg), "--replace", "example.com",
                   str(empty)])
    err = capsys.readouterr().err
    assert status != 0 and "would defer all its mail" in err
    assert "line(s) refused" not in err and "proper names" not in err
    assert valid_addresses.list_addresses(store, "example.com") == ["a@example.com"]
