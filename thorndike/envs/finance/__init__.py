"""Finance applications of issue #19 (004's RL for finance): optimal liquidation against the Almgren-Chriss closed
form, synthetic prices, and trading and portfolio envs.

- :mod:`.almgren_chriss`: the closed forms (discrete and continuous), TWAP, VWAP, the cost of any static schedule and
  the efficient frontier; :mod:`.liquidation`: ``thorndike/OptimalLiquidation-v0``, registered as a Gymnasium id and
  as a native batched env in :data:`thorndike.envs.NATIVE_ENVS`, and the paired scoring of learned schedules;
- :mod:`.prices`: seeded, batched price paths (geometric Brownian motion, Ornstein-Uhlenbeck on the log price,
  regime switching);
- :mod:`.trading`: one asset, positions long/flat/short or continuous, proportional costs, reward
  a R - cost |a - a_prev| - lam a^2 var (``thorndike/Trading-v0``);
- :mod:`.portfolio`: weights over K correlated assets, reward w . r - lam w' Sigma w - cost |w - w_prev|_1
  (``thorndike/Portfolio-v0``), and the Markowitz oracle :func:`markowitz_weights`.
"""

from __future__ import annotations

import gymnasium as gym

from thorndike.envs import NATIVE_ENVS
from thorndike.envs.finance import prices
from thorndike.envs.finance.almgren_chriss import (
    Frontier,
    Schedule,
    almgren_chriss,
    continuous_holdings,
    continuous_kappa,
    continuous_rate,
    discrete_kappa,
    efficient_frontier,
    notes_holdings,
    notes_rate,
    schedule_cost,
    twap,
    vwap,
)
from thorndike.envs.finance.liquidation import (
    ENV_ID as LIQUIDATION_ID,
)
from thorndike.envs.finance.liquidation import (
    BatchedLiquidation,
    LiquidationParams,
    OptimalLiquidationEnv,
    PathCosts,
    paired_difference,
    schedule_policy,
    simulate,
)
from thorndike.envs.finance.portfolio import PortfolioEnv, markowitz_weights, portfolio_objective, risk_adjusted_return
from thorndike.envs.finance.trading import TradingEnv, trading_reward

__all__ = [
    "LIQUIDATION_ID",
    "BatchedLiquidation",
    "Frontier",
    "LiquidationParams",
    "OptimalLiquidationEnv",
    "PathCosts",
    "PortfolioEnv",
    "Schedule",
    "TradingEnv",
    "almgren_chriss",
    "continuous_holdings",
    "continuous_kappa",
    "continuous_rate",
    "discrete_kappa",
    "efficient_frontier",
    "markowitz_weights",
    "notes_holdings",
    "notes_rate",
    "paired_difference",
    "portfolio_objective",
    "prices",
    "risk_adjusted_return",
    "schedule_cost",
    "schedule_policy",
    "simulate",
    "trading_reward",
    "twap",
    "vwap",
]

# Gymnasium ids. The trading and portfolio envs truncate themselves after n_steps, so no Gymnasium time limit or
# checker wrappers; the liquidation env terminates after its N steps.
for _env_id, _entry_point in (("thorndike/Trading-v0", "thorndike.envs.finance.trading:TradingEnv"),
                              ("thorndike/Portfolio-v0", "thorndike.envs.finance.portfolio:PortfolioEnv")):
    if _env_id not in gym.registry:
        gym.register(_env_id, entry_point=_entry_point, disable_env_checker=True, order_enforce=False)
if LIQUIDATION_ID not in gym.registry:
    gym.register(LIQUIDATION_ID, entry_point="thorndike.envs.finance.liquidation:OptimalLiquidationEnv",
                 disable_env_checker=True)
NATIVE_ENVS[LIQUIDATION_ID] = BatchedLiquidation
