"""Finance applications of issue #19 (004's RL for finance): synthetic prices, trading and portfolio envs.

- :mod:`.prices`: seeded, batched price paths (geometric Brownian motion, Ornstein-Uhlenbeck on the log price,
  regime switching);
- :mod:`.trading`: one asset, positions long/flat/short or continuous, proportional costs, reward
  a R - cost |a - a_prev| - lam a^2 var (``thorndike/Trading-v0``);
- :mod:`.portfolio`: weights over K correlated assets, reward w . r - lam w' Sigma w - cost |w - w_prev|_1
  (``thorndike/Portfolio-v0``), and the Markowitz oracle :func:`markowitz_weights`.
"""

from __future__ import annotations

import gymnasium as gym

from thorndike.envs.finance import prices
from thorndike.envs.finance.portfolio import PortfolioEnv, markowitz_weights, portfolio_objective, risk_adjusted_return
from thorndike.envs.finance.trading import TradingEnv, trading_reward

__all__ = ["PortfolioEnv", "TradingEnv", "markowitz_weights", "portfolio_objective", "prices",
           "risk_adjusted_return", "trading_reward"]

# Gymnasium ids (no Gymnasium time limit or checker wrappers: the envs truncate themselves after n_steps)
for _env_id, _entry_point in (("thorndike/Trading-v0", "thorndike.envs.finance.trading:TradingEnv"),
                              ("thorndike/Portfolio-v0", "thorndike.envs.finance.portfolio:PortfolioEnv")):
    if _env_id not in gym.registry:
        gym.register(_env_id, entry_point=_entry_point, disable_env_checker=True, order_enforce=False)
