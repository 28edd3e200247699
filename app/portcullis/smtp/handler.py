"""The aiosmtpd handler: one hook per SMTP stage, orchestration only.

Routing and validation come from recipients.py, judgement from the checks and the
policy, delivery from nexthop.py, recording from the archive, log and observers.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import re
import time
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING

from aiosmtpd.smtp import SMTP, Envelope, Session

from portcullis.addresses import domain_of, parse_ip
from portcullis.archive import ArchiveError, new_message_id
from portcullis.checks import Context, Stage, build_checks, eager
from portcullis.checks.base import Check
from portcullis.directory.snapshot import Snapshot
from portcullis.events import UNFILTERED
from portcullis.observers import (
    ConnectionClosed,
    MessageEvent,
    Observers,
    RecipientRefused,
    recipient_domains,
)
from portcullis.offload import offload
from portcullis.policy import Decision, Flag, Symbol, Thresholds, Verdict, decide
from portcullis.services import Services
from portcullis.smtp import recipients as rcpt_rules
from portcullis.smtp.hygiene import (
    SmugglingAttempt,
    header_section_too_large,
    line_count,
    normalise_line_endings,
    received_count,
)
from portcullis.smtp.nexthop import NextHopPool, NextHopSession, Reply
from portcullis.smtp.recipients import Direction, Route, Validity
from portcullis.smtp.rewrite import (
    fold,
    received_header,
    rewrite,
    split_message,
    status_headers,
)
from portcullis.smtp.virtual import VirtualMailbox, build_mailboxes
from portcullis.store import StoreError

if TYPE_CHECKING:
    from portcullis.smtp.server import GatewaySMTP

log = logging.getLogger(__name__)

INTERNAL_ERROR = "451 4.3.0 Internal error, try again later"
# Control characters, and bytes that were not UTF-8 (aiosmtpd decodes commands with
# surrogateescape): no address has them, and neither the store nor a log can hold them.
_INVALID = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
BAD_SENDER = "553 5.1.7 Sender address contains invalid characters"
BAD_RECIPIENT = "553 5.1.3 Recipient address contains invalid characters"
STORAGE_ERROR = "452 4.3.1 Insufficient system storage, try again later"
# RFC 6531 3.4: an address beyond ASCII only in a transaction that declared SMTPUTF8.
# Refused by the gateway itself (Postfix's words), whatever the next hop offers.
# RCPTs past [smtp] max_recipients (452) a transaction may send before each further one
# counts as an error towards max_errors: a client whose recipient list is long sends
# them again in a new transaction, one that keeps on is abusive (Postfix's
# smtpd_recipient_overshoot_limit).
RECIPIENT_OVERSHOOT_LIMIT = 1000
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
# Postscreen's reply to a client that talked before the greeting ("enforce").
PREGREET_REFUSAL = Reply(550, "5.5.1 Protocol error: you talked before the greeting")
UNDECLARED_UTF8 = "553 5.6.7 Must declare SMTPUTF8 to send unicode address"


class GatewaySession(Session):
    """aiosmtpd's session plus what the gateway keeps per connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.client_ip = ""
        self.is_relay = False
        self.nexthop: NextHopSession | None = None
        self.connect_checks: asyncio.Future[list[Symbol]] | None = None
        self.delivering: asyncio.Task[str] | None = None     # the last message's DATA work
        self.reply_by: float | None = None   # loop time by which that message is answered
        # What this connection amounted to, for MTA reputation (ConnectionClosed).
        self.verdicts: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.pregreeted = False  # talked before the greeting (server.PregreetTest)
        self.errors = 0          # 5xx replies since a message was last delivered
        self.deferrals = 0       # 4xx replies since the same
        self.junk = 0            # commands that carried no mail, since the same
        self.reported = False

    def carry_over(self, before: GatewaySession) -> None:
        """Keep what belongs to the connection when STARTTLS starts a new session."""
        self.client_ip, self.is_relay = before.client_ip, before.is_relay
        self.connect_checks, self.nexthop = before.connect_checks, before.nexthop
        self.verdicts, self.refused = before.verdicts, before.refused
        self.errors, self.junk = before.errors, before.junk
        self.deferrals = before.deferrals
        self.pregreeted = before.pregreeted


class Transaction(Envelope):
    """aiosmtpd's envelope plus the route and, per recipient, the symbols found at RCPT."""

    def __init__(self) -> None:
        super().__init__()
        self.route: Route | None = None
        self.rcpt_symbols: dict[str, list[Symbol]] = {}
        self.overshoot = 0       # RCPTs answered 452 for passing max_recipients

    @property
    def sender(self) -> str:
        """The reverse-path, "" for the null one (bounces, DSNs): aiosmtpd keeps that as
        "<>", since an empty ``mail_from`` means to it that MAIL has not been given."""
        return "" if self.mail_from in (None, "<>") else self.mail_from


def aiosmtpd_names(obj: object, prefixes: tuple[str, ...]) -> list[str]:
    """``dir(obj)`` as aiosmtpd uses it: it runs dir()/inspect.getmembers() over the
    protocol object and the handler on every connection to find their smtp_*/auth_*/
    handle_* methods, most of the cost of accepting a connection.  Listing only the
    names it looks for, found once per class, keeps it cheap; its tables are the same."""
    return list(_names_of(type(obj), prefixes))


@functools.cache
def _names_of(cls: type, prefixes: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(n for n in dir(cls) if n.startswith(prefixes))


class GatewayHandler:
    def __dir__(self) -> list[str]:
        return aiosmtpd_names(self, ("handle_", "auth_"))

    def __init__(self, services: Services) -> None:
        self.services = services
        self.config = services.config
        self.checks = build_checks(services)
        self.connect_checks = [c for c in self.checks if c.stage is Stage.CONNECT]
        self.rcpt_checks = [c for c in self.checks if c.stage is Stage.RCPT]
        self.data_checks = [c for c in self.checks if c.stage is Stage.DATA]
        self.mailboxes = build_mailboxes(services)
        self.callouts = rcpt_rules.CalloutCache(services.store, self.config.callout)
        self.observers = Observers(services)
        self.nexthops = NextHopPool(helo_name=self.config.smtp.hostname,
                                    timeouts=self.config.delivery,
                                    listening=self.config.smtp.listen)

    # -- connection ---------------------------------------------------------------------

    def session_started(self, session: GatewaySession) -> None:
        """Called by the protocol once the client is admitted."""
        snapshot = self.services.snapshots.get()
        session.is_relay = snapshot.is_relay(parse_ip(session.client_ip))
        if self.connect_checks and not session.is_relay:
            ctx = Context(client_ip=session.client_ip, snapshot=snapshot)
            # Started at once: answers the resolver has cached need no task (eager).
            session.connect_checks = eager.start(run_checks(self.connect_checks, ctx))

    async def session_ended(self, session: GatewaySession) -> None:
        if session.delivering is not None and not session.delivering.done():
            # The client went away during DATA: let the message's delivery and its
            # recording finish before the next-hop connection is given back.
            await asyncio.wait([session.delivering])
        if not session.reported and not session.is_relay \
                and (session.verdicts or session.refused):
            session.reported = True
            self.observers.connection_closed(ConnectionClosed(
                session.client_ip, session.host_name or "", session.verdicts,
                session.refused))
        if session.connect_checks is not None:
            session.connect_checks.cancel()
        await self._release_nexthop(session)

    # -- hooks ----------------------------------------------------------------------------

    async def handle_EHLO(self, server: SMTP, session: GatewaySession, envelope: Transaction,
                          hostname: str, responses: list[str]) -> list[str]:
        session.host_name = _INVALID.sub("?", hostname)
        await self._release_nexthop(session)
        # aiosmtpd offers AUTH after STARTTLS; the gateway takes no logins (GatewaySMTP).
        lines = [line for line in responses if not line.startswith("250-AUTH")]
        # RFC 2920: aiosmtpd reads and answers commands one after another from one input
        # buffer, so a group gets its replies in order and nothing is lost; it drops
        # what came with STARTTLS, and the gateway's 421s drop the rest of a group
        # (GatewaySMTP.close_with).  Senders then save a round trip per command.
        lines.insert(len(lines) - 1, "250-PIPELINING")
        return lines

    async def handle_HELO(self, server: SMTP, session: GatewaySession, envelope: Transaction,
                          hostname: str) -> str:
        session.host_name = _INVALID.sub("?", hostname)
        await self._release_nexthop(session)
        return f"250 {server.hostname}"

    async def handle_RSET(self, server: SMTP, session: GatewaySession,
                          envelope: Transaction) -> str:
        await self._release_nexthop(session)
        return "250 2.0.0 Ok"

    async def handle_QUIT(self, server: SMTP, session: GatewaySession,
                          envelope: Transaction) -> str:
        await self.session_ended(session)
        return "221 2.0.0 Bye"

    async def handle_MAIL(self, server: SMTP, session: GatewaySession, envelope: Transaction,
                          address: str, mail_options: list[str]) -> str:
        if _INVALID.search(address):
            return BAD_SENDER
        if not envelope.smtp_utf8 and not address.isascii():
            return UNDECLARED_UTF8
        await self._release_nexthop(session)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.route = None
        envelope.rcpt_symbols = {}
        envelope.overshoot = 0
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: GatewaySMTP, session: GatewaySession,
                          envelope: Transaction, address: str, rcpt_options: list[str]) -> str:
        if _INVALID.search(address):
            return BAD_RECIPIENT
        if not envelope.smtp_utf8 and not address.isascii():
            return UNDECLARED_UTF8
        if session.pregreeted and self.config.smtp.pregreet_action == "enforce":
            return self._refuse(session, envelope, address, "policy", PREGREET_REFUSAL,
                                "Protocol error: talked before the greeting")
        if len(envelope.rcpt_tos) >= self.config.smtp.max_recipients:
            envelope.overshoot += 1
            if envelope.overshoot > RECIPIENT_OVERSHOOT_LIMIT:
                session.errors += 1
            return TOO_MANY_RECIPIENTS
        snapshot = self.services.snapshots.get()
        if rcpt_rules.is_bare_postmaster(address):
            # Sent on, archived and released as the address it stands for (Postfix
            # rewrites the envelope the same way).
            qualified = rcpt_rules.postmaster_address(snapshot, self.config.smtp.postmaster,
                                                      self.config.smtp.hostname)
            if qualified is None:
                log.warning("RCPT TO:<%s> deferred: [smtp] postmaster names no protected"
                            " domain, nor does the hostname %s", address,
                            self.config.smtp.hostname)
                return str(rcpt_rules.NO_POSTMASTER)
            address = qualified
        if not session.is_relay and rcpt_rules.has_sender_routing(address):
            return self._refuse(session, envelope, address, "relay",
                                rcpt_rules.SENDER_ROUTING, "Relay denied")
        route = rcpt_rules.route(snapshot, session.is_relay, address,
                                 self.config.outbound.relay_host, self.mailboxes)
        if route is None:
            return self._refuse(session, envelope, address, "relay", rcpt_rules.RELAY_DENIED,
                                "Relay denied")
        if envelope.route is not None and not envelope.route.same_transaction(route):
            return str(rcpt_rules.NEXT_TRANSACTION)
        ctx = self._context(session, envelope, snapshot, route, recipient=address)

        if route.mailbox is not None:
            reply = route.mailbox.accept(ctx)
        else:
            symbols: list[Symbol] = []
            if route.filtered:
                refusal, symbols = await self._rcpt_checks(session, ctx, snapshot)
                if refusal is not None:
                    return self._refuse(session, envelope, address, "policy", refusal,
                                        refusal.text.split(" ", 1)[-1])
            refusal, validation = await self._validate(route, address, symbols)
            if refusal is not None:
                return self._refuse(session, envelope, address, refusal.reason,
                                    refusal.reply, refusal.label)
            reply = await self._nexthop_recipient(session, envelope, route, address)
            if validation is None and route.domain is not None:
                # The internal host's answer was the callout: remember it either way, a
                # refusal only when it answered the RCPT (not a refused MAIL FROM) and
                # is about the recipient, not this sender or message.
                if reply.ok:
                    self.callouts.put(rcpt_rules.lookup_key(address), True, reply)
                elif (reply.permanent and session.nexthop is not None
                      and session.nexthop.in_transaction
                      and rcpt_rules.says_no_such_recipient(reply)):
                    self.callouts.put(rcpt_rules.lookup_key(address), False, reply)
            # Each finding names its recipient: the archived decision is one recipient's,
            # and another domain's administrator must not read that recipient's findings.
            envelope.rcpt_symbols[address] = [replace(s, recipient=address) for s in symbols]
        if not reply.ok:
            if reply.permanent:
                return self._refuse(session, envelope, address,
                                    rcpt_rules.refusal_reason(reply), reply,
                                    "Refused by internal host")
            return str(reply)
        envelope.route = route
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: GatewaySession,
                          envelope: Transaction) -> str:
        # The client waits for the reply (RFC 5321: 10 minutes); the gateway answers
        # within reply_deadline, and does not time the client out meanwhile.
        deadline = self.config.delivery.reply_deadline
        session.reply_by = server.loop.time() + deadline
        server._reset_timeout(deadline + 60)
        # Shielded: aiosmtpd cancels this hook when the client goes away, and the next hop
        # may have the message by then; the exchange is finished, not cut off, so the
        # archive, the log and the learners record what happened (session_ended waits).
        session.delivering = asyncio.ensure_future(self._data_or_error(session, envelope))
        try:
            return await asyncio.shield(session.delivering)
        finally:
            server._reset_timeout()

    async def _data_or_error(self, session: GatewaySession, envelope: Transaction) -> str:
        try:
            return await self._data(session, envelope)
        except Exception:
            log.exception("%s: message processing failed", session.client_ip)
            await self._release_nexthop(session)
            return INTERNAL_ERROR

    async def handle_exception(self, error: Exception) -> str:
        log.error("SMTP session error: %r", error)
        return INTERNAL_ERROR

    # -- stages -------------------------------------------------------------------------

    def _context(self, session: GatewaySession, envelope: Transaction, snapshot: Snapshot,
                 route: Route, recipient: str = "", content: bytes | None = None) -> Context:
        return Context(client_ip=session.client_ip, helo=session.host_name or "",
                       mail_from=envelope.sender, recipients=list(envelope.rcpt_tos),
                       recipient=recipient, route=route, content=content, snapshot=snapshot)

    async def _rcpt_checks(self, session: GatewaySession, ctx: Context, snapshot: Snapshot
                           ) -> tuple[Reply | None, list[Symbol]]:
        """Run RCPT-stage checks; a flag-forced reject or tempfail (e.g. a DNSBL listing,
        harvesting) refuses the recipient now, unless a peer relationship protects it."""
        if session.connect_checks is not None:
            ctx.earlier = await _connect_results(session.connect_checks)
        symbols = await run_checks(self.rcpt_checks, ctx) if self.rcpt_checks else []
        decision = decide([*ctx.earlier, *symbols], snapshot.thresholds)
        if decision.deciding is not None and decision.verdict is Verdict.REJECT:
            return Reply(550, _reply_text("5.7.1", decision.reason,
                                          snapshot.settings.get("reject_text", ""))), symbols
        if decision.deciding is not None and decision.verdict is Verdict.TEMPFAIL:
            return Reply(451, _reply_text("4.7.1", decision.reason, "")), symbols
        return None, symbols

    async def _validate(self, route: Route, address: str, symbols: list[Symbol]
                        ) -> tuple[rcpt_rules.Refusal | None, rcpt_rules.Validation | None]:
        """Validate an inbound recipient before the internal host is asked; returns a
        refusal, and the validation (None: the internal host's RCPT reply decides)."""
        if route.direction is not Direction.INBOUND:
            return None, rcpt_rules.Validation(Validity.VALID, "trusted")
        assert route.domain is not None
        validation = rcpt_rules.validate_before_callout(
            self.services.store, self.callouts, route.domain, rcpt_rules.lookup_key(address))
        if validation is None or validation.validity is Validity.VALID:
            return None, validation
        if validation.validity is Validity.UNKNOWN and not route.domain.reject_non_validated:
            symbols.append(rcpt_rules.not_validated_symbol(address))
            return None, validation
        if validation.validity is Validity.UNCHECKABLE:
            log.warning("RCPT TO:<%s> deferred: domain %s validates recipients by its"
                        " valid-address list alone, and the list is empty", address,
                        route.domain.name)
            return rcpt_rules.EMPTY_LIST, validation
        return rcpt_rules.UNKNOWN_RECIPIENT, validation

    async def _nexthop_recipient(self, session: GatewaySession, envelope: Transaction,
                                 route: Route, address: str) -> Reply:
        if session.nexthop is not None and session.nexthop.hop != route.hop:
            await self._release_nexthop(session)
        if session.nexthop is None:
            session.nexthop = self.nexthops.acquire(route.hop)
        return await session.nexthop.add_recipient(envelope.sender,
                                                   envelope.mail_options, address)

    async def _data(self, session: GatewaySession, envelope: Transaction) -> str:
        received = time.time()
        route = envelope.route
        assert route is not None
        original = envelope.original_content or b""
        snapshot = self.services.snapshots.get()
        unread = self._refused_unread(original)
        if unread is not None:
            await self._release_nexthop(session)
            ctx = self._context(session, envelope, snapshot, route)
            reason = unread.text.split(" ", 1)[1]       # without the enhanced code
            self._record(session, ctx, "", f"Rejected {reason}", Verdict.REJECT)
            session.verdicts[Verdict.REJECT.value] += 1
            return str(unread)
        common: list[Symbol] = []
        try:
            content = normalise_line_endings(original)
            if content is not original:
                common.append(Symbol("BARE_NEWLINE", 1.0, "bare <CR> or <LF> line endings"))
        except SmugglingAttempt as exc:
            content = original
            common.append(Symbol("SMTP_SMUGGLING", 100.0, f"SMTP smuggling attempt: {exc}",
                                 Flag.MALWARE))
        ctx = self._context(session, envelope, snapshot, route, content=content)
        if route.mailbox is not None:
            return await self._consume(session, ctx, route.mailbox, common)

        assert session.nexthop is not None
        if route.filtered and not any(s.flag is Flag.MALWARE for s in common):
            if session.connect_checks is not None:
                ctx.earlier = await _connect_results(session.connect_checks)
            common += ctx.earlier
            common += await run_checks(self.data_checks, ctx)
        decision = decide_for_recipients(common, envelope.rcpt_symbols, ctx.recipients,
                                         snapshot.thresholds)
        subject = ctx.subject
        message_id = new_message_id(received)
        # A refusal sends nothing on: its reply is known before the message is archived,
        # and goes in with it (one statement, not an update after); a delivery's outcome
        # is written once the next hop answered (the archive has the message first).
        refusal = None
        if decision.verdict in (Verdict.REJECT, Verdict.TEMPFAIL):
            refusal = await self._act(session, ctx, decision, message_id, snapshot,
                                      smtputf8=envelope.smtp_utf8)
        try:
            await self._archive(message_id, received, session, ctx, subject, decision,
                                original if decision.verdict is Verdict.REJECT else content,
                                "" if refusal is None else f"{refusal[0].code} {refusal[0].text}")
        except ArchiveError as exc:
            log.error("archive unavailable, deferring message: %s", exc)
            await self._release_nexthop(session)
            self._record(session, ctx, subject, "TempFailed Archive unavailable",
                         Verdict.TEMPFAIL)
            return STORAGE_ERROR

        try:
            reply, delivered = refusal or await self._act(
                session, ctx, decision, message_id, snapshot, smtputf8=envelope.smtp_utf8)
        except Exception:
            # The client is told INTERNAL_ERROR (_data_or_error) and sends the message
            # again: the archive and the log must say it was deferred, not accepted.
            self.services.archive.set_delivery(message_id, INTERNAL_ERROR,
                                               Verdict.TEMPFAIL.value, "internal error")
            self._record(session, ctx, subject, "TempFailed Internal error",
                         Verdict.TEMPFAIL)
            raise
        await self._release_nexthop(session)      # aborts the transaction unless delivered
        outcome = decision
        if refusal is None:
            if not delivered:
                outcome = refused_by_host(decision, reply)
            self.services.archive.set_delivery(message_id, f"{reply.code} {reply.text}",
                                               outcome.verdict.value, outcome.reason)
        verdict = outcome.verdict
        self._record(session, ctx, subject, outcome.log_label, verdict)
        # Accepted unjudged (a domain without filtering, a sender on the white list): the
        # MTA earns nothing by it, else a forged white-listed sender would buy a spammer's
        # MTA the bonus of a legitimate one.
        whitelisted = decision.deciding is not None and \
            decision.deciding.flag is Flag.WHITELIST
        session.verdicts[UNFILTERED if verdict is Verdict.ACCEPT
                         and (not route.filtered or whitelisted) else verdict.value] += 1
        if delivered:
            session.errors = session.junk = session.deferrals = 0
        if decision.deciding is not None and decision.deciding.flag in (Flag.REJECT,
                                                                        Flag.BLACKLIST):
            session.verdicts["listed"] += 1
        self.observers.message(MessageEvent(ctx, decision, delivered, message_id, received))
        return str(reply)

    def _refused_unread(self, content: bytes) -> Reply | None:
        """The refusal of a message before anything parses it, or None: more than the
        checks should read (the limits are on what parsing would cost), or a mail loop."""
        smtp = self.config.smtp
        if header_section_too_large(content, smtp.max_header_size):
            return Reply(552, f"5.3.4 Message header too large (over {smtp.max_header_size}"
                              " bytes)")
        if smtp.max_message_lines and line_count(content) > smtp.max_message_lines:
            return Reply(552, f"5.3.4 Message has too many lines (over"
                              f" {smtp.max_message_lines})")
        # Counted as Postfix's cleanup counts them, with the Received: the gateway adds.
        if smtp.max_hops and received_count(content) + 1 >= smtp.max_hops:
            return Reply(554, f"5.4.6 Too many hops (a mail loop: {smtp.max_hops} or more"
                              " Received: header fields)")
        return None

    async def _consume(self, session: GatewaySession, ctx: Context, mailbox: VirtualMailbox,
                       common: list[Symbol]) -> str:
        subject = ctx.subject
        malware = [s for s in common if s.flag is Flag.MALWARE]
        if malware:
            reply = Reply(554, _reply_text("5.7.1", malware[0].reason, ""))
        else:
            reply = await mailbox.consume(ctx)
        label = f"{mailbox.name}: {reply.code} {reply.text}"
        self.services.decision_log.write(label, session.client_ip, ctx.helo, ctx.recipients,
                                         subject)
        return str(reply)

    async def _act(self, session: GatewaySession, ctx: Context, decision: Decision,
                   message_id: str, snapshot: Snapshot, *, smtputf8: bool
                   ) -> tuple[Reply, bool]:
        """Carry the decision out; return the reply for the client and whether the next
        hop took the message."""
        nexthop = session.nexthop
        assert nexthop is not None and ctx.content is not None
        extra = snapshot.settings.get("reject_text", "")
        if decision.verdict is Verdict.REJECT:
            malware = decision.deciding is not None and decision.deciding.flag is Flag.MALWARE
            # FAQ: the reply says it was rejected and which virus or attachment it was.
            reason = f"Rejected {decision.reason}" if malware else decision.reason
            return Reply(554 if malware else 550, _reply_text("5.7.1", reason, extra)), False
        if decision.verdict is Verdict.TEMPFAIL:
            return Reply(451, _reply_text("4.7.1", decision.reason, "")), False
        prepend = [received_header(helo=ctx.helo, client_ip=ctx.client_ip,
                                   hostname=self.config.smtp.hostname, queue_id=message_id,
                                   tls=session.ssl is not None, smtputf8=smtputf8,
                                   recipient=ctx.recipients[0] if len(ctx.recipients) == 1
                                   else None)]
        if ctx.route is not None and ctx.route.filtered:
            prepend += [fold(h.encode("utf-8", "replace")) for h in ctx.headers]
            prepend += status_headers(decision, snapshot.thresholds.tag,
                                      self.config.smtp.hostname)
        tag = snapshot.settings["tag_phrase"] if decision.verdict is Verdict.TAG else None
        outgoing = rewrite(ctx.content, prepend=prepend, tag_phrase=tag,
                           authserv_id=self.config.smtp.hostname)
        # Judged on the sender's header section (ours is what the gateway added), and only
        # under SMTPUTF8, the one case it matters: splitting copies the whole message.
        utf8_header = smtputf8 and not split_message(ctx.content)[0].isascii()
        reply = await nexthop.data(outgoing, utf8_header=utf8_header,
                                   deadline=session.reply_by)
        if reply.ok:
            return Reply(250, f"2.0.0 Ok: queued as {message_id}"), True
        return reply, False

    async def _archive(self, message_id: str, received: float, session: GatewaySession,
                       ctx: Context, subject: str, decision: Decision, body: bytes,
                       delivery: str) -> None:
        archive = self.services.archive
        path = await offload(len(body), archive.write_body, message_id, body)
        assert ctx.route is not None
        archive.index(message_id=message_id, received=received,
                      direction=ctx.route.direction.value, client_ip=session.client_ip,
                      helo=ctx.helo, mail_from=ctx.mail_from, recipients=ctx.recipients,
                      subject=subject, decision=decision, size=len(body), path=path,
                      delivery=delivery)

    # -- bookkeeping ----------------------------------------------------------------------

    def _refuse(self, session: GatewaySession, envelope: Transaction, address: str,
                reason: str, reply: Reply, label: str) -> str:
        # A 4xx refusal (greylisting, harvest block) is a TempFail, not a reject.
        verdict = Verdict.TEMPFAIL if reply.code < 500 else Verdict.REJECT
        when = time.time()
        line = self.services.decision_log.write(f"{verdict.label} {label}", session.client_ip,
                                                session.host_name or "", [address], "",
                                                when=when)
        # Counted per protected domain; a refused relay attempt's domain is the sender's
        # choice, and one row each would let it grow the traffic table without end.
        domain = domain_of(address)
        if domain not in self.services.snapshots.get().domains:
            domain = ""
        self.services.traffic.count(verdict.value, [domain])
        session.refused[reason if reply.permanent else f"{reason}-temporary"] += 1
        self.observers.recipient_refused(RecipientRefused(
            session.client_ip, session.host_name or "", envelope.sender, address,
            reason, when, domain, line))
        return str(reply).replace("{rcpt}", address)

    def _record(self, session: GatewaySession, ctx: Context, subject: str, label: str,
                verdict: Verdict) -> None:
        self.services.decision_log.write(label, session.client_ip, ctx.helo, ctx.recipients,
                                         subject)
        self.services.traffic.count(verdict.value, recipient_domains(ctx.recipients))

    async def _release_nexthop(self, session: GatewaySession) -> None:
        """End the session's use of its next-hop connection (aborting any transaction
        on it) and give the connection back to the pool."""
        nexthop, session.nexthop = session.nexthop, None
        if nexthop is not None:
            await self.nexthops.release(nexthop)


# aiosmtpd reads handle_EHLO's signature on every connection (to tell its two forms
# apart); a function that carries its signature is not inspected again each time.
GatewayHandler.handle_EHLO.__signature__ = inspect.signature(  # type: ignore[attr-defined]
    GatewayHandler.handle_EHLO)

SEVERITY = {Verdict.ACCEPT: 0, Verdict.TAG: 1, Verdict.TEMPFAIL: 2, Verdict.REJECT: 3}


def decide_for_recipients(common: list[Symbol], per_recipient: dict[str, list[Symbol]],
                          recipients: list[str], thresholds: Thresholds) -> Decision:
    """One decision for a message to several recipients.

    SMTP gives one reply per message, so the message is judged for each recipient (the
    message's own symbols plus what was learnt about that recipient, e.g. a peer bonus)
    and the most lenient judgement wins: no recipient loses wanted mail.
    """
    decisions = [decide([*common, *per_recipient.get(r, [])], thresholds)
                 for r in recipients or [""]]
    return min(decisions, key=lambda d: (SEVERITY[d.verdict], d.score))


def refused_by_host(decision: Decision, reply: Reply) -> Decision:
    """A message judged wanted that the internal host did not take (``reply``), as the
    archive, the log and the counters record it: the client got that host's reply, so
    it was rejected or deferred, by the internal host (the score and symbols stay the
    filter's).  Its text as far as the archive keeps a delivery's (300 characters)."""
    verdict = Verdict.REJECT if reply.permanent else Verdict.TEMPFAIL
    return replace(decision, verdict=verdict, reason=f"by internal host: {reply.text[:300]}")


def _reply_text(enhanced: str, reason: str, extra: str) -> str:
    text = " ".join(part for part in (reason, extra) if part)
    # Replies are one line of printable ASCII; reasons may quote hostile input.
    text = "".join(c if " " <= c <= "~" else "?" for c in text)[:400]
    return f"{enhanced} {text or 'Message refused'}"


async def run_checks(checks: list[Check], ctx: Context) -> list[Symbol]:
    """Run checks: the inline ones first (they never wait), then those that wait on the
    network concurrently, each bounded by its timeout; a failing check yields a symbol saying so
    (TEMPFAIL when the check is fail-closed) instead of an exception.  Symbols come in
    the order of ``checks``."""
    results: list[list[Symbol]] = [[] for _ in checks]
    for i, check in enumerate(checks):
        if check.inline:
            try:
                results[i] = await check.check(ctx)
            except Exception as exc:  # noqa: BLE001 - logged by _failed
                results[i] = _failed(check, exc)
    # Then the others, in order, only now: decoding parts in the inline checks records
    # MIME defects that later checks read.  Each takes its first step at once: one that
    # does not wait (DNS answered from the cache) needs no task, nor a timer for its
    # timeout (eager.start).
    waiting = {i: eager.start(c.check(ctx), c.timeout)
               for i, c in enumerate(checks) if not c.inline}
    try:
        for i, future in waiting.items():
            try:
                results[i] = await future
            except Exception as exc:  # noqa: BLE001 - logged by _failed
                results[i] = _failed(checks[i], exc)
    finally:
        for future in waiting.values():     # cancelled: so are the checks still waiting
            future.cancel()
    return [symbol for result in results for symbol in result]


def _failed(check: Check, exc: Exception) -> list[Symbol]:
    """The symbol for a check that failed or timed out; a failure is logged."""
    if not isinstance(exc, asyncio.TimeoutError):
        log.error("check %s failed", check.name, exc_info=exc)
    what = "timed out" if isinstance(exc, asyncio.TimeoutError) else "failed"
    # A mandatory scan that could not be done defers the message whoever sent it: a white
    # list entry vouches for the sender, not for what it attached.
    flag = Flag.UNSCANNED if check.fail_closed else None
    return [Symbol(f"CHECK_FAILED_{check.name.upper()}", 0.0,
                   f"check {check.name} {what}, try again later", flag)]


async def _connect_results(task: asyncio.Future[list[Symbol]]) -> list[Symbol]:
    try:
        return await asyncio.shield(task)
    except (asyncio.CancelledError, StoreError):
        return []
