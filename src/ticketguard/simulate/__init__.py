"""Marketplace simulator: labelled histories for training, tests and demos."""

from ticketguard.simulate.domain import FRAUD_PATTERNS, PATTERNS, SimulationConfig, simulate, summarize

__all__ = ["FRAUD_PATTERNS", "PATTERNS", "SimulationConfig", "simulate", "summarize"]
