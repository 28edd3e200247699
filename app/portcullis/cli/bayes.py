"""``portcullis train|score|eval``: teaching the classifier, judging a message file, and
measuring detection quality."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from portcullis.bayes.engine import Bayes
from portcullis.bayes.evaluate import EvalSets, evaluate
from portcullis.bayes.forwarded import arrival
from portcullis.bayes.sources import SourceError
from portcullis.bayes.training import train
from portcullis.checks.offline import ContentScorer
from portcullis.cli.common import CommandError, add_command, open_services, print_json
from portcullis.policy import Thresholds


def register(subparsers: argparse._SubParsersAction) -> None:
    learn = add_command(subparsers, "train", "learn spam and ham from maildirs, mbox files or "
                        "folders of messages (progress on stderr)")
    learn.add_argument("--spam", action="append", default=[], metavar="SOURCE", type=Path,
                       help="unwanted mail (may be given more than once)")
    learn.add_argument("--ham", action="append", default=[], metavar="SOURCE", type=Path,
                       help="wanted mail (may be given more than once)")
    learn.add_argument("--json", action="store_true", help="print the summary as JSON")
    learn.set_defaults(func=run_train)

    score = add_command(subparsers, "score", "the verdict content checks alone give a message "
                        "file (no network)")
    score.add_argument("file", type=Path, metavar="FILE.eml")
    score.add_argument("--json", action="store_true")
    score.set_defaults(func=run_score)

    ev = subparsers.add_parser(
        "eval", help="train a temporary store and measure detection quality",
        description="Train a fresh temporary store on the train sets, score the test sets "
        "with content checks only; the last line printed is one JSON object. A SOURCE is a "
        "maildir, an mbox, a folder of messages or a list file (.txt) of message paths.")
    for name in ("train-ham", "train-spam", "test-ham", "test-spam"):
        ev.add_argument(f"--{name}", action="append", required=True, type=Path,
                        metavar="SOURCE")
    ev.add_argument("--workers", type=int, default=2, help="scoring processes (default 2)")
    ev.add_argument("--tag-threshold", type=float, help="default: the built-in default")
    ev.add_argument("--reject-threshold", type=float, help="default: the built-in default")
    ev.add_argument("--details", type=Path, metavar="FILE",
                    help="write each test message's verdict and symbols (JSON lines)")
    ev.add_argument("--json", action="store_true",
                    help="JSON only (the summary line on stderr is left out)")
    ev.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    if not args.spam and not args.ham:
        raise CommandError("train: give --spam SOURCE and/or --ham SOURCE")
    services = open_services(args)
    bayes = Bayes(services.store, services.config.bayes.min_trained)
    plan = [(p, True) for p in args.spam] + [(p, False) for p in args.ham]
    try:
        report = train(bayes, plan, arrived=arrival(services))
    except SourceError as exc:
        raise CommandError(str(exc)) from None
    totals = bayes.totals()
    if args.json:
        print_json({**report.to_json(), "totals": totals})
    else:
        print(f"learnt {report.learnt['spam']} spam and {report.learnt['ham']} ham "
              f"({report.known} already known, {len(report.skipped)} skipped); "
              f"the classifier now knows {totals['spam']} spam and {totals['ham']} ham")
    return 0


def run_score(args: argparse.Namespace) -> int:
    try:
        content = args.file.read_bytes()
    except OSError as exc:
        raise CommandError(f"{args.file}: {exc.strerror}") from None
    services = open_services(args)
    snapshot = services.snapshots.get()
    scorer = ContentScorer(services, snapshot.thresholds)
    decision = scorer.score(content)
    scorer.close()
    if args.json:
        print_json({"action": decision.verdict.value, "score": decision.score,
                    "reason": decision.reason,
                    "symbols": [s.to_json() for s in decision.symbols]})
    else:
        print(f"{decision.log_label} (score {decision.score:.2f})")
        for symbol in decision.symbols:
            print(f"  {symbol.name:<22} {symbol.score:>6.2f}  {symbol.reason}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    defaults = Thresholds()
    thresholds = Thresholds(
        args.tag_threshold if args.tag_threshold is not None else defaults.tag,
        args.reject_threshold if args.reject_threshold is not None else defaults.reject)
    if thresholds.tag >= thresholds.reject:
        raise CommandError("eval: the tag threshold must be below the reject threshold")
    sets = EvalSets(args.train_ham, args.train_spam, args.test_ham, args.test_spam)
    try:
        figures = evaluate(sets, workers=args.workers, thresholds=thresholds,
                           details=args.details)
    except SourceError as exc:
        raise CommandError(str(exc)) from None
    if not args.json:
        print(f"ham {figures['ham']}: {figures['ham_tagged_rate']:.2%} tagged, "
              f"{figures['ham_rejected_rate']:.2%} rejected; spam {figures['spam']}: "
              f"{figures['spam_accepted_rate']:.2%} let through untagged, "
              f"{figures['spam_rejected_rate']:.2%} rejected; "
              f"{figures['msgs_per_s']} msgs/s", file=sys.stderr)
    print(json.dumps(figures, sort_keys=True))
    return 0
