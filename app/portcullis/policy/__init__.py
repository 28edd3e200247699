"""Turning symbols into a decision: the one place that maps scores to actions."""

from portcullis.policy.decide import Thresholds, decide
from portcullis.policy.symbols import Decision, Flag, Symbol, Verdict

__all__ = ["Decision", "Flag", "Symbol", "Thresholds", "Verdict", "decide"]
