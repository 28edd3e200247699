"""Turning symbols into a decision: the one place that maps scores to actions."""

from portcullis.policy.decide import Thresholds, decide
from portcullis.policy.symbols import VIRUS_SYMBOL, Decision, Flag, Symbol, Verdict

__all__ = ["VIRUS_SYMBOL", "Decision", "Flag", "Symbol", "Thresholds", "Verdict", "decide"]
