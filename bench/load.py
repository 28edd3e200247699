"""Load: Postfix's smtp-source for throughput, the probe for latency under that load."""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LoadResult:
    target: str
    concurrency: int
    reuse: bool
    messages: int
    seconds: float
    ok: bool
    error: str
    latency_ms: dict[str, float]

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.ok and self.seconds else 0.0

    def to_json(self) -> dict:
        return {"target": self.target, "concurrency": self.concurrency,
                "connection_reuse": self.reuse, "messages": self.messages,
                "seconds": round(self.seconds, 3), "msgs_per_s": round(self.rate, 1),
                "ok": self.ok, "error": self.error, "latency_ms": self.latency_ms}


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p95/p99 (nearest rank) and the sample count."""
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)

    def rank(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, int(p * len(ordered) + 0.5) - 1))], 2)

    return {"n": len(ordered), "p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99),
            "mean": round(statistics.fmean(ordered), 2)}


def probe_command(address: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "bench.probe", "--target", address, *extra]


def smtp_source(target: str, address: str, *, concurrency: int, messages: int, reuse: bool,
                message_file: Path | None, with_probe: bool = True) -> LoadResult:
    """Send ``messages`` with ``concurrency`` sessions (one message per connection unless
    ``reuse``); smtp-source stops with an error at the first reply it did not expect, so a
    run that completes means every message got its 250."""
    host, _, port = address.rpartition(":")
    cmd = ["smtp-source", "-s", str(concurrency), "-m", str(messages), "-f",
           "load@bench.test", "-t", "bob@example.com", "-M", "source.bench.test"]
    if reuse:
        cmd.append("-d")
    if message_file is not None:
        cmd += ["-F", str(message_file)]
    else:
        cmd += ["-l", "1000"]
    cmd.append(f"{host}:{port}")
    probe = None
    if with_probe:
        probe = subprocess.Popen(probe_command(address, "--sequential"), cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert probe.stderr is not None
        probe.stderr.readline()
    start = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    seconds = time.perf_counter() - start
    latency: dict[str, float] = {}
    if probe is not None:
        probe.send_signal(signal.SIGTERM)
        out, _ = probe.communicate(timeout=180)
        data = json.loads(out or "{}")
        latency = percentiles(data.get("latencies_ms", []))
        if data.get("failures"):
            latency["failures"] = sum(data["failures"].values())
    error = (run.stderr.strip().splitlines() or [""])[-1] if run.returncode else ""
    return LoadResult(target, concurrency, reuse, messages, seconds, run.returncode == 0,
                      error, latency)


def light_load_latency(address: str, *, rate: float, count: int) -> dict[str, float]:
    """Open-loop latency at a rate well below capacity: what one message costs."""
    run = subprocess.run(probe_command(address, "--rate", str(rate), "--count", str(count)),
                         cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    data = json.loads(run.stdout or "{}")
    result = percentiles(data.get("latencies_ms", []))
    if data.get("failures"):
        result["failures"] = sum(data["failures"].values())
    return result
