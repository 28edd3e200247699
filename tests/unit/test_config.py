import ipaddress
from pathlib import Path

import pytest

from portcullis import config

pytestmark = pytest.mark.gateway

MINIMAL = """
[smtp]
listen = "127.0.0.1:2525"
[web]
listen = "127.0.0.1:8080"
[store]
dir = "/tmp/state"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "portcullis.toml"
    path.write_text(text)
    return path


def test_minimal_file_is_enough_and_everything_else_has_defaults(tmp_path):
    cfg = config.load(write(tmp_path, MINIMAL))
    assert cfg.smtp.listen == (config.HostPort("127.0.0.1", 2525),)
    assert cfg.web.listen == (config.HostPort("127.0.0.1", 8080),)
    assert cfg.store.dir == Path("/tmp/state")
    assert cfg.policy.tag_phrase == "[SPAM?]"
    assert cfg.policy.tag_threshold < cfg.policy.reject_threshold
    assert cfg.smtp.max_sessions > 0
    assert cfg.log_file == Path("/tmp/state/portcullis.log")


def test_file_is_found_from_environment_then_default(tmp_path, monkeypatch):
    path = write(tmp_path, MINIMAL)
    monkeypatch.setenv(config.ENV_VAR, str(path))
    assert config.config_path() == path
    assert config.config_path(tmp_path / "other.toml") == tmp_path / "other.toml"
    monkeypatch.delenv(config.ENV_VAR)
    assert config.config_path() == config.DEFAULT_PATH


@pytest.mark.parametrize(("extra", "named"), [
    ('[smtp]\nlisen = "x"\n', "lisen"),
    ('[smtp]\nmax_sessions = "many"\n', "max_sessions"),
    ('[smtp]\nmax_sessions = -3\n', "max_sessions"),
    ('[smtp]\nmin_data_rate = -500\n', "min_data_rate"),
    ('[policy]\ntag_threshold = 20\nreject_threshold = 10\n', "tag_threshold"),
    ('[colour]\nx = 1\n', "colour"),
    ('[delivery]\nconnect_timeout = true\n', "connect_timeout"),
    ('[policy]\ntag_threshold = nan\n', "tag_threshold"),
    ('[delivery]\ndata_timeout = inf\n', "data_timeout"),
    # Longer than a client waits for its RCPT reply (RFC 5321: 5 minutes).
    ('[delivery]\nrecipient_deadline = 300\n', "recipient_deadline"),
    ('[delivery]\ncommand_timeout = 0\n', "command_timeout"),
    # As long as a client waits for the reply to its message (RFC 5321: 10 minutes).
    ('[delivery]\nreply_deadline = 600\n', "reply_deadline"),
    # The settings' own bounds: 0 days had the whole archive purged every hour.
    ('[policy]\narchive_retention_days = 0\n', "archive_retention_days"),
    ('[policy]\narchive_retention_days = 365\n', "archive_retention_days"),
    ('[defenses]\ngreylist_window = 0\n', "greylist_window"),
    # No time left for a retry between the delay and the window's end: nothing passes.
    ('[defenses]\ngreylist_delay = 3600\ngreylist_window = 1\n', "greylist_delay"),
    # A negative duration timed every session or delivery out at once.
    ('[smtp]\ntimeout = -300\n', "timeout"),
    ('[delivery]\nconnect_timeout = -1.5\n', "connect_timeout"),
    ('[callout]\npositive_ttl = -1.0\n', "positive_ttl"),
    # Python's TOML reader takes integers of any size; a float field crashed on them.
    ('[delivery]\ndata_timeout = 1' + '0' * 400 + '\n', "data_timeout"),
    ('[policy]\ntag_threshold = 1' + '0' * 400 + '\n', "tag_threshold"),
    ('[bayes]\nmax_tokens = 18446744073709551616\n', "max_tokens"),
    # Each made every DNS lookup fail (DNSBLs fail open), the port with an exception.
    ('[dns]\nport = 70000\n', "port"),
    ('[dns]\nnameservers = ["resolver.example"]\n', "nameservers"),
    ('[dns]\ntimeout = 0\n', "timeout"),
    # The banner, EHLO to every next hop and each Received header carry the hostname.
    ('[smtp]\nhostname = "mail gateway"\n', "hostname"),
    ('[smtp]\nhostname = "gw.example\\r\\nX-Injected: yes"\n', "hostname"),
    # The logging module's own ValueError stopped every service at start.
    ('[log]\nlevel = "verbose"\n', "level"),
    # A control character in a path or a name: a NUL stopped the service at start.
    ('[log]\nfile = "/var/log/portcullis\\u0000.log"\n', "file"),
    ('[clamav]\nupdate_request = "/run/request\\nfile"\n', "update_request"),
    ('[firewall]\ncontrol_group = "portcullis-web\\u001b[2J"\n', "control_group"),
    # Every gateway worker died at start on a clamd address its client cannot read.
    ('[clamav]\naddress = ""\n', "address"),
    ('[clamav]\naddress = "clamd.example:99999"\n', "address"),
    # Ordinary mail refused for good (500, 552): the senders bounce it.
    ('[smtp]\nmax_line_length = 200\n', "max_line_length"),
    ('[smtp]\nmax_header_size = 0\n', "max_header_size"),
    # Every message bounced as a mail loop (554 5.4.6 Too many hops): with 1 each one,
    # with 2 each that had come through a single server.
    ('[smtp]\nmax_hops = 1\n', "max_hops"),
    ('[smtp]\nmax_hops = 2\n', "max_hops"),
    # The training addresses: both forwards learnt as spam, postmaster swallowed.
    ('[bayes]\nspam_mailbox = "train"\nham_mailbox = "Train"\n', "ham_mailbox"),
    ('[bayes]\nham_mailbox = "postmaster"\n', "ham_mailbox"),
    ('[bayes]\nspam_mailbox = "spam report"\n', "spam_mailbox"),
    ('[bayes]\ntraining_host = "mail..example"\n', "training_host"),
    # A timeout of 0 s: every session, delivery or scan timed out (with on_failure =
    # "accept", every message delivered unscanned).
    ('[smtp]\ntimeout = 0\n', "timeout"),
    ('[delivery]\ncommand_timeout = 0\n', "command_timeout"),
    ('[clamav]\nscan_timeout = 0\non_failure = "accept"\n', "scan_timeout"),
    # Limits of 0 refused every client, recipient or transaction: all mail deferred
    # (max_errors = 0 answered 421 to every MAIL; max_junk_commands = 0 to every EHLO).
    ('[smtp]\nmax_sessions = 0\n', "max_sessions"),
    ('[smtp]\nmax_recipients = 0\n', "max_recipients"),
    ('[smtp]\nmax_errors = 0\n', "max_errors"),
    ('[smtp]\nmax_junk_commands = 1\n', "max_junk_commands"),
    ('[smtp]\nmax_deferrals = 0\n', "max_deferrals"),
    # A scan allowed longer than the client's reply may take: every message it held up
    # was deferred (451) when the deadline ran out, none judged.
    ('[clamav]\nscan_timeout = 500\n', "scan_timeout .* reply_deadline"),
    ('[delivery]\nreply_deadline = 100\n', "scan_timeout .* reply_deadline"),
])
def test_bad_values_are_refused_naming_the_key(tmp_path, extra, named):
    text = MINIMAL.replace("[smtp]\n", extra, 1) if extra.startswith("[smtp]") else MINIMAL + extra
    with pytest.raises(config.ConfigError, match=named):
        config.load(write(tmp_path, text))


def test_scores_may_be_negative_and_numbers_keep_their_kind(tmp_path):
    cfg = config.load(write(tmp_path, MINIMAL + "[policy]\ntag_threshold = -2\n"
                            "reject_threshold = 4.5\n[bayes]\nautolearn_ham_score = -1\n"
                            "max_tokens = 9223372036854775807\n[delivery]\nconnect_timeout = 7\n"
                            "[dns]\nnameservers = [\"127.0.0.1\", \"::1\"]\nport = 5353\n"))
    assert (cfg.policy.tag_threshold, cfg.policy.reject_threshold) == (-2.0, 4.5)
    assert cfg.bayes.autolearn_ham_score == -1.0
    assert cfg.bayes.max_tokens == 2**63 - 1
    assert cfg.delivery.connect_timeout == 7.0
    assert isinstance(cfg.delivery.connect_timeout, float)
    assert isinstance(cfg.smtp.max_sessions, int)
    assert cfg.dns.nameservers == ("127.0.0.1", "::1")


def test_missing_required_section_and_key_are_named(tmp_path):
    with pytest.raises(config.ConfigError, match=r"\[store\]"):
        config.load(write(tmp_path, MINIMAL.replace('[store]\ndir = "/tmp/state"\n', "")))
    with pytest.raises(config.ConfigError, match="listen"):
        config.load(write(tmp_path, MINIMAL.replace('listen = "127.0.0.1:2525"', "")))


def test_unreadable_or_broken_files_give_clear_errors(tmp_path):
    with pytest.raises(config.ConfigError, match="no such configuration file"):
        config.load(tmp_path / "absent.toml")
    with pytest.raises(config.ConfigError, match="not valid TOML"):
        config.load(write(tmp_path, "[smtp\n"))
    # Python's reader recursed into each level until RecursionError, a traceback.
    with pytest.raises(config.ConfigError, match="nested too deeply"):
        config.load(write(tmp_path, "x = " + "[" * 100_000 + "]" * 100_000 + "\n"))


def test_listen_accepts_lists_and_ipv6():
    assert config.parse_hostport("[::1]:25") == config.HostPort("::1", 25)
    assert config.parse_hostport("mail.example.com", default_port=25).port == 25
    with pytest.raises(ValueError):
        config.parse_hostport("host:99999")
    with pytest.raises(ValueError):
        config.parse_hostport("host")


@pytest.mark.parametrize("text", ["a b:25", "ev\til:25", "mail..example.com:25", "-mail.example:25",
                                  "10.0.0.300:25", "[::1", "[::1]x25", "[]:25", "host:\uff12\uff15",
                                  "x" * 64 + ".example:25", "mail\n.example:25"])
def test_a_host_that_is_neither_a_name_nor_an_address_is_refused(text):
    with pytest.raises(ValueError):
        config.parse_hostport(text, default_port=25)


def test_host_names_are_normalised_and_addresses_kept():
    assert (config.parse_hostport("Mail.Example.COM.:2525")
            == config.HostPort("mail.example.com", 2525))
    assert config.parse_hostport("bücher.de:25").host == "xn--bcher-kva.de"
    assert config.parse_hostport("[10.0.0.7]:25") == config.HostPort("10.0.0.7", 25)
    assert config.parse_hostport("exchange", default_port=25) == config.HostPort("exchange", 25)
    assert config.parse_hostport("[2001:DB8::1]:25").host == "2001:db8::1"


@pytest.mark.parametrize("relay", ["192.0.2.77:10025", "[2001:db8::77]:25",
                                   "[::ffff:192.0.2.77]:25"])
def test_a_relay_host_at_an_address_of_this_appliance_is_refused_naming_the_key(
        tmp_path, monkeypatch, relay):
    # 192.0.2.77 and 2001:db8::77 stand for the appliance's LAN addresses: its port 25
    # is the gateway, outbound mail would loop through it.
    monkeypatch.setattr("portcullis.ownaddresses.own_addresses", lambda: frozenset(
        {ipaddress.ip_address("192.0.2.77"), ipaddress.ip_address("2001:db8::77")}))
    with pytest.raises(config.ConfigError,
                       match=r"\[outbound\]: relay_host: .* is an address of this appliance"):
        config.load(write(tmp_path, MINIMAL + f'[outbound]\nrelay_host = "{relay}"\n'))
    # The appliance's own Postfix written as loopback, and another relay, still load.
    for taken in ("127.0.0.1:10025", "localhost:10025", "192.0.2.78:25"):
        loaded = config.load(write(tmp_path, MINIMAL + f'[outbound]\nrelay_host = "{taken}"\n'))
        assert str(loaded.outbound.relay_host) == taken


@pytest.mark.parametrize("section", ["smtp", "web"])
def test_a_service_that_would_listen_nowhere_is_refused(tmp_path, section):
    text = MINIMAL.replace(f'[{section}]\nlisten = "127.0.0.1:', f"[{section}]\nlisten = []\n#")
    with pytest.raises(config.ConfigError, match=rf"\[{section}\].*listen"):
        config.load(write(tmp_path, text))


def test_the_hostname_is_kept_as_a_host_name_in_ascii(tmp_path):
    text = MINIMAL.replace("[smtp]\n", '[smtp]\nhostname = "MX.Bücher.example."\n', 1)
    assert config.load(write(tmp_path, text)).smtp.hostname == "mx.xn--bcher-kva.example"
    text = MINIMAL + '[log]\nlevel = "WARNING"\n'
    assert config.load(write(tmp_path, text)).log.level == "WARNING"


@pytest.mark.parametrize("url", ["sqlite:////data/portcullis.db", "postgresql://db/portcullis"])
def test_a_store_url_other_than_the_state_directorys_is_refused(tmp_path, url):
    # A sqlite: URL naming a file elsewhere was taken, and the file never used.
    text = MINIMAL.replace("[store]\n", f'[store]\nurl = "{url}"\n')
    with pytest.raises(config.ConfigError, match=r"\[store\].*url"):
        config.load(write(tmp_path, text))
    text = MINIMAL.replace("[store]\n", '[store]\nurl = "sqlite:"\n')
    assert config.load(write(tmp_path, text)).store.url == "sqlite:"
