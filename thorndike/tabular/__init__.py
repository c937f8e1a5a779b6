"""Tabular learning: Monte Carlo and TD prediction, Q-learning, the SARSA family, double Q-learning, Dyna-Q and
linear function approximation, each for many runs at once (see :mod:`thorndike.tabular.base`)."""

from thorndike.tabular.base import RunHistory, Tables, TabularAgent, TabularConfig, Transition

__all__ = ["RunHistory", "TabularAgent", "TabularConfig", "Tables", "Transition"]
