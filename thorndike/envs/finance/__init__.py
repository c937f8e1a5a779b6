"""Finance applications (issue #19): optimal liquidation against the Almgren-Chriss closed form.

Importing this package registers ``thorndike/OptimalLiquidation-v0`` as a Gymnasium id and as a native batched env
in :data:`thorndike.envs.NATIVE_ENVS` (see :mod:`.liquidation`); :mod:`.almgren_chriss` holds the closed forms and the
static baselines the learned schedules are scored against.
"""

from __future__ import annotations

import gymnasium as gym

from thorndike.envs import NATIVE_ENVS
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

if LIQUIDATION_ID not in gym.registry:
    gym.register(LIQUIDATION_ID, entry_point="thorndike.envs.finance.liquidation:OptimalLiquidationEnv",
                 disable_env_checker=True)
NATIVE_ENVS[LIQUIDATION_ID] = BatchedLiquidation

__all__ = [
    "LIQUIDATION_ID",
    "BatchedLiquidation",
    "Frontier",
    "LiquidationParams",
    "OptimalLiquidationEnv",
    "PathCosts",
    "Schedule",
    "almgren_chriss",
    "continuous_holdings",
    "continuous_kappa",
    "continuous_rate",
    "discrete_kappa",
    "efficient_frontier",
    "notes_holdings",
    "notes_rate",
    "paired_difference",
    "schedule_cost",
    "schedule_policy",
    "simulate",
    "twap",
    "vwap",
]
