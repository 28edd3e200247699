"""``make bench``: every figure in one run, printed as a table and saved under bench/results/.

Sizes come from the environment so ``make bench`` stays a few minutes long and a longer
run is one variable away:

    BENCH_MESSAGES=1500            messages per smtp-source run
    BENCH_REPEAT=3                 attempts per point (the median is reported)
    BENCH_CONCURRENCY=5,20,100     sessions (one message per connection)
    BENCH_REUSE_CONCURRENCY=20,100 sessions (connection reuse)
    BENCH_WORKERS=1,2              worker processes (gateway and bare aiosmtpd alike)
    BENCH_MEMORY_SESSIONS=100,500  sessions held open mid-DATA for the RSS figures
    BENCH_SCORING_TRAIN=250        training messages per class (Bayes needs 200)
    BENCH_SCORING_TEST=150         scored messages per class (SpamAssassin is slow)
    BENCH_DNS_TTL=300              TTL of the local zone's answers, negative ones too
                                   (0: nothing cacheable, as in runs before 2026-11-29)
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

from bench import chart, report
from bench.load import LoadResult, light_load_latency, smtp_source
from bench.memory import held_sessions
from bench.scoring import CORPUS, prepare_corpus, run_scoring
from bench.servers import ZONES, BareAiosmtpd, BenchGateway, Features, Sink, config_sections

RESULTS = Path(__file__).resolve().parent / "results"
# The local zone answers like a real one (Spamhaus' zones: records and negative answers
# cacheable for minutes), so the gateway's resolver caches as it does in service.
DNS_TTL = int(os.environ.get("BENCH_DNS_TTL", "300"))


def numbers(name: str, default: str) -> list[int]:
    return [int(v) for v in os.environ.get(name, default).split(",") if v.strip()]


def sample_message(workdir: Path) -> Path | None:
    """A real ham message of typical size from the corpus, as smtp-source's content."""
    ham = CORPUS / "spamassassin" / "ham"
    if not ham.is_dir():
        return None
    candidates = sorted(p for p in ham.iterdir() if 3000 <= p.stat().st_size <= 5000)
    if not candidates:
        return None
    content = candidates[len(candidates) // 2].read_bytes()
    if content.startswith(b"From "):
        content = content.split(b"\n", 1)[1]
    path = workdir / "message.eml"
    path.write_bytes(content.replace(b"\r\n", b"\n"))
    return path


def start_helpers(features: Features, workdir: Path) -> list:
    """The local DNS zone and clamd, where the checks that need them have landed."""
    from tests.support.clamd import Clamd
    from tests.support.dns import Dnsmasq

    helpers: list = []
    if features.has_bayes and CORPUS.is_dir():
        features.training = prepare_corpus(workdir / "training", 250, 1).root
    if features.has_dnsbl:
        zone = Dnsmasq(workdir / "dns", ZONES, ttl=DNS_TTL).start()
        features.dns_port = zone.port
        helpers.append(zone)
    if features.has_clamav:
        clamd_dir = workdir / "clamd"
        clamd_dir.parent.chmod(0o755)
        features.clamd = Clamd(clamd_dir).start()
        helpers.append(features.clamd)
    return helpers


def median_run(runs: list[LoadResult]) -> dict:
    """The attempt with the median throughput, listing every attempt's figure."""
    ordered = sorted(runs, key=lambda r: r.rate)
    summary = ordered[len(ordered) // 2].to_json()
    summary["attempts_msgs_per_s"] = [round(r.rate, 1) for r in runs]
    summary["ok"] = all(r.ok for r in runs)
    summary["error"] = next((r.error for r in runs if r.error), "")
    return summary


def main() -> int:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # 500 held sessions mean 1000+ sockets in one gateway worker (client side and next hop).
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    messages = int(os.environ.get("BENCH_MESSAGES", "1500"))
    levels = numbers("BENCH_CONCURRENCY", "5,20,100")
    reuse_levels = numbers("BENCH_REUSE_CONCURRENCY", "20,100")
    worker_counts = numbers("BENCH_WORKERS", "1,2")
    memory_sessions = numbers("BENCH_MEMORY_SESSIONS", "100,500")
    repeat = int(os.environ.get("BENCH_REPEAT", "3"))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(f"/tmp/portcullis-bench-{os.getpid()}")
    workdir.mkdir(exist_ok=True)
    message_file = sample_message(workdir)
    features = Features()
    helpers = start_helpers(features, workdir)
    results: dict = {
        "timestamp": stamp, "host": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                     "load_avg_at_start": os.getloadavg()},
        "settings": {"messages_per_run": messages, "concurrency": levels,
                     "reuse_concurrency": reuse_levels, "workers": worker_counts,
                     "repeat": repeat, "dns_ttl_s": DNS_TTL,
                     "message_bytes": message_file.stat().st_size if message_file else 1000},
        "features": {"config_sections": sorted(config_sections() - {"path"}),
                     "dnsbl": features.has_dnsbl, "clamav": features.has_clamav,
                     "bayes": features.has_bayes},
        "throughput": [], "light_load_latency_ms": {}, "memory": [],
    }
    log = report.progress
    sink = Sink().start()
    servers: dict[str, object] = {"sink": sink}
    # Each gateway delivers to a sink of its own: smtp-sink serves at most 256 sessions,
    # and gateways keep pooled next-hop connections open between messages.
    sinks = [sink]

    def own_sink() -> Sink:
        sinks.append(Sink().start())
        return sinks[-1]

    try:
        for workers in worker_counts:
            servers[f"bare-aiosmtpd w{workers}"] = BareAiosmtpd(workers).start()
            servers[f"gateway-proxy w{workers}"] = BenchGateway(
                own_sink(), features, workers=workers, checks=False).start()
            servers[f"gateway-checks w{workers}"] = BenchGateway(
                own_sink(), features, workers=workers, checks=True).start()
            if features.clamd is not None:
                servers[f"gateway-checks+clamav w{workers}"] = BenchGateway(
                    own_sink(), features, workers=workers, checks=True, clamav=True).start()
        for name, server in servers.items():           # warm-up: caches, first imports
            smtp_source(name, server.address, concurrency=5, messages=100, reuse=False,
                        message_file=message_file, with_probe=False)
        plan = [(c, False) for c in levels] + [(c, True) for c in reuse_levels]
        for concurrency, reuse in plan:
            attempts: dict[str, list[LoadResult]] = {name: [] for name in servers}
            # Targets interleaved and each point repeated, so a busy neighbour on the
            # machine hurts every target alike; the median attempt is the figure.
            for _ in range(repeat):
                for name, server in servers.items():
                    attempts[name].append(smtp_source(
                        name, server.address, concurrency=concurrency, messages=messages,
                        reuse=reuse, message_file=message_file))
            for name, runs in attempts.items():
                summary = median_run(runs)
                results["throughput"].append(summary)
                log(f"{name:<22} c={concurrency:<4} {'reuse' if reuse else 'new  '} "
                    f"{summary['msgs_per_s']:8.1f} msg/s  p99 "
                    f"{summary['latency_ms'].get('p99', '-')} ms {summary['error']}")
        for name, server in servers.items():
            if name.startswith(("sink", "gateway")):
                latency = light_load_latency(server.address, rate=50, count=500)
                results["light_load_latency_ms"][name] = latency
                log(f"{name:<22} light load p50 {latency.get('p50')} p99 {latency.get('p99')}")
        for name, server in servers.items():
            if isinstance(server, BenchGateway | BareAiosmtpd):
                results.setdefault("rss_after_load_mib", {})[name] = report.peak_rss(server)
    finally:
        for server in servers.values():
            server.stop()
        for extra in sinks[1:]:
            extra.stop()
    # A worker that died or logged an error during the run would explain an odd figure.
    results["gateway_problems"] = {name: server.problems for name, server in servers.items()
                                   if getattr(server, "problems", None)}
    for name, problems in results["gateway_problems"].items():
        log(f"{name}: {len(problems)} problem line(s) in its log, the last: {problems[-1]}")
    # smtp-sink serves at most 256 sessions at once: 500 held sessions need an internal
    # host that takes them all, so here a bare aiosmtpd server plays that part.
    for workers in worker_counts:
        for kind in ("gateway-checks", "bare-aiosmtpd"):
            for sessions in memory_sessions:
                hop = BareAiosmtpd(2).start()
                server = BenchGateway(hop, features, workers=workers, checks=True) \
                    if kind == "gateway-checks" else BareAiosmtpd(workers)
                server.start()
                try:
                    pids = server.worker_pids if isinstance(server, BenchGateway) else \
                        lambda s=server: s.pids()[1:] or s.pids()
                    figure = held_sessions(server.address, sessions, pids)
                finally:
                    server.stop()
                    hop.stop()
                figure["target"] = f"{kind} w{workers}"
                figure["gateway_problems"] = getattr(server, "problems", [])
                results["memory"].append(figure)
                log(f"{kind} w{workers} {sessions} sessions: peak RSS per worker "
                    f"{figure['peak_rss_mib_per_worker']} MiB, replies {figure['replies']}")
    for helper in helpers:
        helper.stop()
    scoring_workers = max(worker_counts)
    log(f"content scoring, {scoring_workers} workers each (SpamAssassin takes a while)")
    results["scoring"] = run_scoring(scoring_workers,
                                     int(os.environ.get("BENCH_SCORING_TRAIN", "250")),
                                     int(os.environ.get("BENCH_SCORING_TEST", "150")))
    report.derive(results)
    path = RESULTS / f"{stamp}.json"
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    throughput, latency = report.series(results)
    path.with_suffix(".svg").write_text(chart.throughput_and_latency(
        throughput, latency, f"Portcullis bench {stamp}: one message per connection, "
        f"{results['settings']['message_bytes']}-byte message"))
    print(report.table(results))
    print(f"\nresults: {path}\nchart:   {path.with_suffix('.svg')}")
    return 0


if __name__ == "__main__":
    started = time.monotonic()
    status = main()
    report.progress(f"bench finished in {time.monotonic() - started:.0f} s")
    sys.exit(status)
