"""Content scoring side by side: Portcullis, rspamd (Bayes in Redis) and SpamAssassin
(spamd -L), on the same corpus messages, with the same number of workers, in one run.

Each filter is trained on the same training messages first (Bayes needs 200 of each class
in rspamd and SpamAssassin), then scores the same test messages; the figure is messages
scored per second over that phase, the client keeping twice as many requests in flight as
there are workers.  Detection on the scored messages is recorded as a side figure only
(``make eval`` is the place for detection quality).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.gateway import free_port, wait_for_port

CORPUS = Path(os.environ.get("PORTCULLIS_CORPUS",
                             Path(__file__).resolve().parents[2] / "shared" / "corpus"))


@dataclass
class Corpus:
    """The same message files for every filter (mbox ``From `` line removed)."""

    root: Path
    train_ham: list[Path] = field(default_factory=list)
    train_spam: list[Path] = field(default_factory=list)
    test: list[tuple[Path, bool]] = field(default_factory=list)   # (file, is spam)


def spaced(items: list[str], count: int) -> list[str]:
    """``count`` items spread evenly over the list (a fixed, repeatable choice)."""
    if count >= len(items):
        return items
    step = len(items) / count
    return [items[int(i * step)] for i in range(count)]


def prepare_corpus(workdir: Path, train_per_class: int, test_per_class: int) -> Corpus:
    base = CORPUS / "spamassassin"
    split = base / "split"
    corpus = Corpus(workdir / "corpus")

    def take(list_name: str, count: int, label: str) -> list[Path]:
        names = spaced(split.joinpath(list_name).read_text().split(), count)
        target = corpus.root / label
        target.mkdir(parents=True, exist_ok=True)
        out = []
        for n, name in enumerate(names):
            content = (base / name).read_bytes()
            if content.startswith(b"From "):
                content = content.split(b"\n", 1)[1]
            path = target / f"{n:05d}.eml"
            path.write_bytes(content)
            out.append(path)
        return out

    corpus.train_ham = take("train_ham.txt", train_per_class, "train_ham")
    corpus.train_spam = take("train_spam.txt", train_per_class, "train_spam")
    corpus.test = [(p, False) for p in take("test_ham.txt", test_per_class, "test_ham")] + \
                  [(p, True) for p in take("test_spam.txt", test_per_class, "test_spam")]
    # Daemons running as their own users read these.
    for path in [workdir, *workdir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return corpus


@dataclass
class ScoreRun:
    name: str
    messages: int
    seconds: float
    flagged_spam: int
    flagged_ham: int
    errors: int
    note: str = ""

    def to_json(self) -> dict:
        spam = ham = self.messages // 2
        return {"messages": self.messages, "seconds": round(self.seconds, 2),
                "msgs_per_s": round(self.messages / self.seconds, 1) if self.seconds else 0,
                "spam_flagged_rate": round(self.flagged_spam / spam, 4) if spam else None,
                "ham_flagged_rate": round(self.flagged_ham / ham, 4) if ham else None,
                "errors": self.errors, "note": self.note}


async def _drive(messages: list[tuple[bytes, bool]], concurrency: int, one) -> tuple[
        float, int, int, int]:
    """Send every message through ``one(content) -> flagged`` with ``concurrency`` in
    flight; return (seconds, spam flagged, ham flagged, errors)."""
    queue: asyncio.Queue[tuple[bytes, bool]] = asyncio.Queue()
    for item in messages:
        queue.put_nowait(item)
    counts = {"spam": 0, "ham": 0, "errors": 0}

    async def worker() -> None:
        while not queue.empty():
            content, is_spam = queue.get_nowait()
            try:
                flagged = await one(content)
            except (OSError, ValueError, asyncio.IncompleteReadError):
                counts["errors"] += 1
                continue
            if flagged:
                counts["spam" if is_spam else "ham"] += 1

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - start, counts["spam"], counts["ham"], counts["errors"]


async def _http(port: int, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = f"POST {path} HTTP/1.0\r\nContent-Length: {len(body)}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        writer.write(head.encode() + body)
        raw = await reader.read()
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), payload


# -- the peers ------------------------------------------------------------------------------

class Peers:
    """Redis, the DNS stub, rspamd and spamd for one run; stopped by ``close``."""

    def __init__(self, workdir: Path, workers: int) -> None:
        self.workdir = workdir
        self.workers = workers
        self.processes: list[subprocess.Popen] = []

    def spawn(self, cmd: list[str], log: str, **kwargs) -> subprocess.Popen:
        handle = (self.workdir / log).open("ab")
        process = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, **kwargs)
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()

    # Redis and DNS ---------------------------------------------------------------------

    def start_support(self) -> None:
        self.redis_port = free_port()
        redis = self.spawn(["redis-server", "--port", str(self.redis_port), "--bind",
                            "127.0.0.1", "--save", "", "--appendonly", "no"], "redis.log")
        wait_for_port("127.0.0.1", self.redis_port, process=redis)
        self.dns_port = free_port()
        self.spawn([sys.executable, "-m", "bench.stub_dns", "--port", str(self.dns_port)],
                   "dns.log", cwd=Path(__file__).resolve().parent.parent)

    # rspamd ----------------------------------------------------------------------------

    def start_rspamd(self) -> None:
        conf = self.workdir / "rspamd"
        local = conf / "local.d"
        local.mkdir(parents=True)
        for sub in ("db", "run", "log"):
            (conf / sub).mkdir()
            shutil.chown(conf / sub, "_rspamd", "_rspamd")
        self.rspamd_port, self.rspamd_controller = free_port(), free_port()
        redis = f'servers = "127.0.0.1:{self.redis_port}";'
        files = {
            "options.inc": (f'dns {{ nameserver = ["127.0.0.1:{self.dns_port}"]; '
                            "timeout = 1s; retransmits = 1; }\n"),
            "logging.inc": f'type = "file"; filename = "{conf}/log/rspamd.log"; '
                           'level = "error";\n',
            "worker-normal.inc": f'bind_socket = "127.0.0.1:{self.rspamd_port}"; '
                                 f"count = {self.workers};\n",
            "worker-controller.inc": f'bind_socket = "127.0.0.1:{self.rspamd_controller}"; '
                                     "count = 1;\n",
            "worker-proxy.inc": "count = 0;\n",
            "redis.conf": redis + "\n",
            "classifier-bayes.conf": f'backend = "redis"; {redis} autolearn = false;\n',
            "fuzzy_check.conf": "enabled = false;\n",
            # No DNS answers here: failures to look something up must not score.
            "groups.conf": "\n".join(
                f'symbols {{ "{s}" {{ weight = 0.0; }} }}' for s in (
                    "R_SPF_DNSFAIL", "R_DKIM_TEMPFAIL", "DMARC_DNSFAIL", "ARC_DNSFAIL",
                    "RBL_SPAMHAUS_BLOCKED", "RBL_MAILSPIKE_BLOCKED", "URIBL_BLOCKED",
                    "DBL_BLOCKED", "SURBL_BLOCKED")) + "\n",
        }
        for name, text in files.items():
            (local / name).write_text(text)
        cmd = ["rspamd", "-f", "-u", "_rspamd", "-g", "_rspamd", "-c",
               "/etc/rspamd/rspamd.conf", f"--var=LOCAL_CONFDIR={conf}",
               f"--var=DBDIR={conf}/db", f"--var=RUNDIR={conf}/run",
               f"--var=LOGDIR={conf}/log", "-p", f"{conf}/run/rspamd.pid"]
        process = self.spawn(cmd, "rspamd.out")
        wait_for_port("127.0.0.1", self.rspamd_port, timeout=120, process=process)
        wait_for_port("127.0.0.1", self.rspamd_controller, timeout=60, process=process)

    async def rspamd_learn(self, corpus: Corpus) -> None:
        jobs = [(p.read_bytes(), True) for p in corpus.train_spam] + \
               [(p.read_bytes(), False) for p in corpus.train_ham]
        failures = 0
        for content, spam in jobs:
            status, _payload = await _http(
                self.rspamd_controller, "/learnspam" if spam else "/learnham", content,
                {"Learn-Type": "bulk"})
            failures += status != 200
        if failures > len(jobs) // 10:
            raise RuntimeError(f"rspamd refused to learn {failures} of {len(jobs)} messages")

    async def rspamd_score(self, messages: list[tuple[bytes, bool]]) -> tuple:
        async def one(content: bytes) -> bool:
            status, payload = await _http(self.rspamd_port, "/checkv2", content, {})
            if status != 200:
                raise ValueError(f"rspamd answered {status}")
            return json.loads(payload).get("action", "no action") != "no action"

        return await _drive(messages, self.workers * 2, one)

    # SpamAssassin ----------------------------------------------------------------------

    def start_spamd(self, corpus: Corpus) -> float:
        """Train SpamAssassin's Bayes (sa-learn) and start spamd; return training seconds."""
        site = self.workdir / "spamassassin"
        site.mkdir()
        bayes = site / "bayes"
        # A site config path replaces /etc/spamassassin: keep its plugin loads (Bayes).
        for pre in Path("/etc/spamassassin").glob("*.pre"):
            shutil.copy(pre, site / pre.name)
        (site / "local.cf").write_text(
            f"use_bayes 1\nbayes_auto_learn 0\nbayes_path {bayes}/bayes\n"
            "bayes_file_mode 0777\nskip_rbl_checks 1\n")
        bayes.mkdir()
        start = time.perf_counter()
        for flag, folder in (("--spam", "train_spam"), ("--ham", "train_ham")):
            learnt = subprocess.run(["sa-learn", f"--siteconfigpath={site}", "--local",
                                     "--no-sync", flag, str(corpus.root / folder)],
                                    capture_output=True, text=True, timeout=1800, check=False)
            if learnt.returncode != 0:
                raise RuntimeError(f"sa-learn failed: {learnt.stdout[-500:]}"
                                   f"{learnt.stderr[-500:]}")
        subprocess.run(["sa-learn", f"--siteconfigpath={site}", "--sync"], check=True,
                       capture_output=True, timeout=600)
        seconds = time.perf_counter() - start
        nobody = pwd.getpwnam("nobody")
        for path in [site, *site.rglob("*")]:
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        self.spamd_port = free_port()
        process = self.spawn(
            ["spamd", "-L", "-x", f"--siteconfigpath={site}", "-u", "nobody",
             f"--max-children={self.workers}", f"--min-children={self.workers}",
             "-i", "127.0.0.1", "-p", str(self.spamd_port), "-s", "stderr",
             f"--helper-home-dir={site}", "-r", str(site / "spamd.pid")], "spamd.log")
        wait_for_port("127.0.0.1", self.spamd_port, timeout=180, process=process)
        return seconds

    async def spamd_score(self, messages: list[tuple[bytes, bool]]) -> tuple:
        async def one(content: bytes) -> bool:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.spamd_port)
            try:
                writer.write(b"CHECK SPAMC/1.5\r\nContent-length: %d\r\n\r\n" % len(content)
                             + content)
                writer.write_eof()
                raw = await reader.read()
            finally:
                writer.close()
            if b"EX_OK" not in raw.split(b"\r\n", 1)[0]:
                raise ValueError(raw[:80].decode(errors="replace"))
            return b"Spam: True" in raw

        return await _drive(messages, self.workers * 2, one)


# -- Portcullis ------------------------------------------------------------------------------

_scorer = None


def _init_scorer(config_path: str) -> None:
    """Per worker process: open the trained store once (as a gateway worker does)."""
    global _scorer
    from portcullis import config as configuration
    from portcullis.services import Services

    services = Services.open(configuration.load(config_path))
    _scorer = content_scorer(services)


def content_scorer(services):
    """The gateway's content scoring: ``ContentScorer`` (all DATA-stage content checks,
    Bayes included) where the reputation work has landed, else the registered DATA checks
    and the policy, exactly as the handler runs them."""
    thresholds = services.snapshots.get().thresholds
    try:
        from portcullis.checks.offline import ContentScorer  # type: ignore[import-not-found]
    except ImportError:
        return _CoreScorer(services, thresholds)
    return ContentScorer(services, thresholds)


class _CoreScorer:
    def __init__(self, services, thresholds) -> None:
        from portcullis.checks import Stage, build_checks

        self.services = services
        self.thresholds = thresholds
        self.checks = [c for c in build_checks(services) if c.stage is Stage.DATA]
        self.loop = asyncio.new_event_loop()

    def score(self, content: bytes):
        from portcullis.checks import Context
        from portcullis.policy import decide
        from portcullis.smtp.handler import run_checks

        ctx = Context(client_ip="192.0.2.1", helo="bench.test", mail_from="x@bench.test",
                      recipients=["bob@example.com"], content=content,
                      snapshot=self.services.snapshots.get())
        symbols = self.loop.run_until_complete(run_checks(self.checks, ctx))
        return decide(symbols, self.thresholds)


def _score_file(path: str) -> bool:
    assert _scorer is not None
    decision = _scorer.score(Path(path).read_bytes())
    return decision.verdict.value in ("tag", "reject")


def portcullis_scoring(workdir: Path, corpus: Corpus, workers: int,
                       dns_port: int) -> tuple[ScoreRun, float]:
    """Train a fresh store with ``portcullis train`` (where it exists) and score the test
    messages with ``workers`` processes; return the run and the training seconds.  DNS
    goes to the same NXDOMAIN stub as rspamd's; no ClamAV (the peers do not scan)."""
    from bench.servers import CHECKS_ON, config_sections, section_fields

    state = workdir / "portcullis"
    state.mkdir()
    config = state / "portcullis.toml"
    text = (f'[smtp]\nlisten = "127.0.0.1:{free_port()}"\n[web]\n'
            f'listen = "127.0.0.1:{free_port()}"\n[store]\ndir = "{state}"\n'
            f'[dns]\nnameservers = ["127.0.0.1"]\nport = {dns_port}\ntimeout = 1\n')
    if "clamav" in config_sections():
        text += "[clamav]\nenabled = false\n"
    if "defenses" in config_sections():
        known = section_fields("defenses")
        text += "[defenses]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in
                                        CHECKS_ON.items() if k in known)
    config.write_text(text)
    env = {**os.environ, "PORTCULLIS_CONFIG": str(config)}
    portcullis = [sys.executable, "-m", "portcullis"]
    has_train = subprocess.run([*portcullis, "train", "--help"], env=env, capture_output=True,
                               check=False).returncode == 0
    start = time.perf_counter()
    if has_train:
        subprocess.run([*portcullis, "train", "--spam", str(corpus.root / "train_spam"),
                        "--ham", str(corpus.root / "train_ham")], env=env, check=True,
                       capture_output=True, timeout=1800)
        note = "portcullis train + content scorer (Bayes and content checks)"
    else:
        subprocess.run([*portcullis, "settings", "show"], env=env, check=True,
                       capture_output=True)      # creates and migrates the store
        note = ("core DATA checks only: Bayes/content scoring (reputation branch) "
                "not merged yet")
    training = time.perf_counter() - start
    paths = [(str(p), spam) for p, spam in corpus.test]
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, initializer=_init_scorer, initargs=(str(config),)) as pool:
        pool.map(_score_file, [str(p) for p in corpus.train_spam[:10 * workers]])  # warm-up
        start = time.perf_counter()
        flags = pool.map(_score_file, [p for p, _ in paths], chunksize=8)
        seconds = time.perf_counter() - start
    spam = sum(1 for (_, s), f in zip(paths, flags, strict=True) if s and f)
    ham = sum(1 for (_, s), f in zip(paths, flags, strict=True) if not s and f)
    return ScoreRun("portcullis", len(paths), seconds, spam, ham, 0, note), training


def run_scoring(workers: int, train_per_class: int, test_per_class: int) -> dict:
    """The whole side-by-side comparison; returns the figures for the results file."""
    workdir = Path(tempfile.mkdtemp(prefix="portcullis-bench-scoring-"))
    workdir.chmod(0o755)
    peers = Peers(workdir, workers)
    results: dict = {"workers": workers, "train_per_class": train_per_class,
                     "test_messages": 2 * test_per_class}
    try:
        corpus = prepare_corpus(workdir, train_per_class, test_per_class)
        messages = [(p.read_bytes(), spam) for p, spam in corpus.test]
        # Not timed: each daemon's first requests pay for lazy start-up (rule compilation,
        # children forking); training messages, so the scored ones are not cached.
        warm_up = [(p.read_bytes(), True) for p in corpus.train_spam[:10 * workers]]
        peers.start_support()
        run, training = portcullis_scoring(workdir, corpus, workers, peers.dns_port)
        results["portcullis"] = {**run.to_json(), "training_seconds": round(training, 1)}

        peers.start_rspamd()
        start = time.perf_counter()
        asyncio.run(peers.rspamd_learn(corpus))
        training = time.perf_counter() - start
        asyncio.run(peers.rspamd_score(warm_up))
        seconds, spam, ham, errors = asyncio.run(peers.rspamd_score(messages))
        results["rspamd"] = {**ScoreRun("rspamd", len(messages), seconds, spam, ham, errors,
                                        "rspamd 3.4, Bayes in Redis, DNS stub (NXDOMAIN)"
                                        ).to_json(), "training_seconds": round(training, 1)}

        training = peers.start_spamd(corpus)
        asyncio.run(peers.spamd_score(warm_up))
        seconds, spam, ham, errors = asyncio.run(peers.spamd_score(messages))
        results["spamassassin"] = {**ScoreRun(
            "spamassassin", len(messages), seconds, spam, ham, errors,
            "spamd -L (local tests only), Bayes trained with sa-learn").to_json(),
            "training_seconds": round(training, 1)}
    finally:
        peers.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return results
