"""The algorithm registry and the public entry points ``make``, ``load``, ``resume`` and ``algorithms``."""

from __future__ import annotations

import contextvars
import dataclasses
import difflib
import importlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import torch
import yaml

from thorndike.config import ConfigError, RunOptions, build_config, check, unknown_field_error

if TYPE_CHECKING:  # the agent module imports this one
    from thorndike.agent import Agent

# name -> "module:Class"; imported lazily so `thorndike list` stays fast.
ALGORITHMS: dict[str, str] = {
    "ppo": "thorndike.policy_gradient.ppo:PPO",
    "reinforce": "thorndike.policy_gradient.reinforce:REINFORCE",
    "a2c": "thorndike.policy_gradient.a2c:A2C",
    "a3c": "thorndike.policy_gradient.a3c:A3C",
    "vpg": "thorndike.policy_gradient.vpg:VPG",
    "trpo": "thorndike.policy_gradient.trpo:TRPO",
    "dqn": "thorndike.value_based.dqn:DQN",
    "c51": "thorndike.value_based.c51:C51",
    "qr_dqn": "thorndike.value_based.qr_dqn:QRDQN",
    "rainbow": "thorndike.value_based.rainbow:Rainbow",
    "ddpg": "thorndike.continuous.ddpg:DDPG",
    "td3": "thorndike.continuous.td3:TD3",
    "sac": "thorndike.continuous.sac:SAC",
    "sac_discrete": "thorndike.continuous.sac_discrete:DiscreteSAC",
    "q_learning": "thorndike.tabular.q_learning:QLearning",
    # Tabular prediction (evaluate a fixed policy) and control; see thorndike/tabular/.
    "mc_prediction": "thorndike.tabular.monte_carlo:MCPrediction",
    "mc_control": "thorndike.tabular.monte_carlo:MCControl",
    "td0": "thorndike.tabular.td:TD0",
    "td_lambda": "thorndike.tabular.td:TDLambda",
    "sarsa": "thorndike.tabular.sarsa:SARSA",
    "expected_sarsa": "thorndike.tabular.sarsa:ExpectedSARSA",
    "n_step_sarsa": "thorndike.tabular.sarsa:NStepSARSA",
    "n_step_q_learning": "thorndike.tabular.sarsa:NStepQLearning",
    "double_q_learning": "thorndike.tabular.double_q:DoubleQLearning",
    "dyna_q": "thorndike.tabular.dyna_q:DynaQ",
    "linear_q": "thorndike.tabular.linear_q:LinearQ",
    "cem": "thorndike.search.cem:TabularCEM",
    "approx_cem": "thorndike.search.approx_cem:ApproxCEM",
    "hill_climbing": "thorndike.search.hill_climbing:HillClimbing",
    "param_cem": "thorndike.search.param_cem:ParamCEM",
    "es": "thorndike.search.es:ES",
    # RL for language models (thorndike/lm/): no env; a task of thorndike.lm.tasks gives the prompts and rewards.
    "sft": "thorndike.lm.sft:SFT",
    "grpo": "thorndike.lm.grpo:GRPO",
    "reward_model": "thorndike.lm.reward_model:RewardModelAgent",
    "dpo": "thorndike.lm.dpo:DPO",
    "rlhf_ppo": "thorndike.lm.rlhf_ppo:RLHFPPO",
    "scst": "thorndike.lm.scst:SCST",
}


@dataclass(frozen=True)
class Example:
    """A tiny run of an algorithm: an env it supports, config fields and run options that make ``learn(steps)``
    take well under a second, and a step budget spanning several log rows (and at least 3 checkpoints with
    ``checkpoint_every=steps // 4``). The contract suite (tests/test_contract.py) runs every registered algorithm
    through its example, so registering an algorithm means giving it one here."""

    env: str | None  # None: an algorithm that takes no env (the LM trainers)
    fields: dict[str, Any]
    steps: int


def _tabular(**fields: Any) -> Example:
    """A tabular learner on FrozenLake: steps count per run, so 400 is each run's budget, logged every 50."""
    return Example("FrozenLake-v1", {"n_runs": 2, "epsilon": 0.5, "log_every": 50, **fields}, 400)


# The model of the LM trainers' examples: one block, 16 wide.
_TINY_LM = {"d_model": 16, "n_layers": 1, "n_heads": 2}


# Where a learner has variants with more state to carry (decaying epsilon, episode buffers, value curves), the
# example picks them, so the contract's exact-resume test checkpoints that state too.
EXAMPLES: dict[str, Example] = {
    "ppo": Example("CartPole-v1", {"n_envs": 4, "n_steps": 16, "minibatch_size": 32, "n_epochs": 2,
                                   "hidden_sizes": (16,), "normalize_obs": True, "normalize_reward": True}, 1024),
    # One REINFORCE iteration is at most n_episodes * max_episode_steps = 120 steps, so each quarter of learn(1200)
    # spans at least two iteration boundaries; the value baseline puts both Adams' moments in the checkpoints.
    "reinforce": Example("CartPole-v1", {"n_episodes": 4, "max_episode_steps": 30, "hidden_sizes": (16,),
                                         "baseline": "value", "value_steps": 2, "ent_coef": 0.01}, 1200),
    # 4 x 8 = 32 steps an iteration: many updates in learn(1024); RMSprop's square averages and the observation
    # statistics are in the checkpoints.
    "a2c": Example("CartPole-v1", {"n_envs": 4, "n_steps": 8, "hidden_sizes": (16,), "normalize_obs": True,
                                   "ent_coef": 0.01, "optimizer": "rmsprop"}, 1024),
    # One worker (the deterministic case: with two, the OS's interleaving of the workers decides the run, so no seed
    # fixes it and no resume can be exact; tests/policy_gradient/test_a3c.py checks what holds there), 2 x 8 x 2 = 32
    # steps an iteration; the shared RMSprop statistics and the worker's env copies and generator are in checkpoints.
    # The fields the tuned CartPole values set are all given here.
    "a3c": Example("CartPole-v1", {"n_workers": 1, "n_envs": 2, "n_steps": 8, "updates_per_iteration": 2,
                                   "hidden_sizes": (16,), "gamma": 0.99, "lr": 7e-4, "optimizer": "rmsprop",
                                   "ent_coef": 0.01, "normalize_advantages": True}, 1024),
    # 2 x 16 = 32 steps an iteration; V's Adam (minibatches, so the shuffles draw from the generator) and the
    # observation statistics are in the checkpoints.
    "vpg": Example("CartPole-v1", {"n_envs": 2, "n_steps": 16, "hidden_sizes": (16,), "normalize_obs": True,
                                   "value_steps": 2, "value_minibatch_size": 16, "ent_coef": 0.01}, 1024),
    # Likewise for TRPO, whose policy has no optimiser state: the trust-region step is a function of the batch.
    "trpo": Example("CartPole-v1", {"n_envs": 2, "n_steps": 16, "hidden_sizes": (16,), "normalize_obs": True,
                                    "cg_iterations": 5, "value_steps": 2, "value_minibatch_size": 16}, 1024),
    # A small buffer (kept in checkpoints), learning from step 64, an update every 4 steps and a target copy every
    # 100: learn(1200) crosses every kind of boundary; prioritised 3-step replay puts the sum tree in the checkpoints.
    "dqn": Example("CartPole-v1", {"n_envs": 2, "buffer_size": 500, "learning_starts": 64, "batch_size": 16,
                                   "gradient_steps": 1,
                                   "train_freq": 4, "target_update_interval": 100, "epsilon_steps": 500,
                                   "hidden_sizes": (16,), "n_step": 3, "prioritized": True, "double": True,
                                   "log_every": 100}, 1200),
    # DQN's example with C51's and QR-DQN's heads (prioritised 3-step replay: the sum tree in the checkpoints); one
    # gradient step per update, as the tuned CartPole values' 128 would make the example slow.
    "c51": Example("CartPole-v1", {"n_envs": 2, "buffer_size": 500, "learning_starts": 64, "batch_size": 16,
                                   "train_freq": 4, "gradient_steps": 1, "target_update_interval": 100,
                                   "epsilon_steps": 500, "hidden_sizes": (16,), "n_atoms": 11, "v_min": 0.0,
                                   "v_max": 20.0, "n_step": 3, "prioritized": True, "double": True,
                                   "log_every": 100}, 1200),
    "qr_dqn": Example("CartPole-v1", {"n_envs": 2, "buffer_size": 500, "learning_starts": 64, "batch_size": 16,
                                      "train_freq": 4, "gradient_steps": 1, "target_update_interval": 100,
                                      "epsilon_steps": 500, "hidden_sizes": (16,), "n_quantiles": 8, "n_step": 3,
                                      "prioritized": True, "log_every": 100}, 1200),
    # Rainbow's noise buffers (online and target) are in the checkpoints with the sum tree.
    "rainbow": Example("CartPole-v1", {"n_envs": 2, "buffer_size": 500, "learning_starts": 64, "batch_size": 16,
                                       "train_freq": 4, "gradient_steps": 1, "target_update_interval": 100,
                                       "hidden_sizes": (16, 16), "n_atoms": 11, "v_min": 0.0, "v_max": 20.0,
                                       "log_every": 100}, 1200),
    # The off-policy actor-critics on Pendulum (discrete SAC on CartPole): a small buffer (kept in checkpoints),
    # learning from step 64, a gradient step every 4 env steps; Ornstein-Uhlenbeck noise (DDPG) and TD3's
    # critic-update count put their state in the checkpoints with the temperature's Adam moments (SAC).
    "ddpg": Example("Pendulum-v1", {"n_envs": 2, "buffer_size": 500, "learning_starts": 64, "batch_size": 16,
                                    "train_freq": 4, "gradient_steps": 1, "hidden_sizes": (16,),
                                    "action_noise": "ou", "noise_std": 0.3, "log_every": 100}, 1200),
    "td3": Example("Pendulum-v1", {"n_envs": 2, "buffer_size": 500, "learning_starts": 64, "batch_size": 16,
                                   "train_freq": 4, "gradient_steps": 1, "hidden_sizes": (16,), "policy_delay": 3,
                                   "log_every": 100}, 1200),
    "sac": Example("Pendulum-v1", {"n_envs": 2, "buffer_size": 500, "learning_starts": 64, "batch_size": 16,
                                   "train_freq": 4, "gradient_steps": 1, "hidden_sizes": (16,), "log_every": 100},
                   1200),
    "sac_discrete": Example("CartPole-v1", {"n_envs": 2, "buffer_size": 500, "learning_starts": 64,
                                            "batch_size": 16, "train_freq": 4, "gradient_steps": 1,
                                            "hidden_sizes": (16,), "log_every": 100}, 1200),
    "q_learning": _tabular(epsilon_decay=0.99),
    "mc_prediction": _tabular(visit="every", curve_episodes=3),
    "mc_control": _tabular(step_size="constant", alpha=0.3, epsilon_decay=0.9),
    "td0": _tabular(curve_episodes=3),
    "td_lambda": _tabular(mode="offline", curve_episodes=3),
    "sarsa": _tabular(),
    "expected_sarsa": _tabular(),
    "n_step_sarsa": _tabular(),
    "n_step_q_learning": _tabular(),
    "double_q_learning": _tabular(),
    "dyna_q": _tabular(planning_steps=3),
    "linear_q": Example("MountainCar-v0", {"n_runs": 2, "n_tilings": 4, "tiles": 4, "target": "sarsa", "epsilon": 0.2,
                                           "epsilon_decay": 0.9, "log_every": 50}, 400),
    # One CEM iteration is at most n_sessions * max_episode_steps = 320 steps (per run), so learn(6000) stops within
    # 320 steps of the budget and each quarter of it (1500 steps) ends in a checkpoint before the budget is spent.
    "cem": Example("FrozenLake-v1", {"n_runs": 2, "n_sessions": 16, "max_episode_steps": 20}, 6000),
    # One approximate-CEM iteration is at most n_sessions * max_episode_steps = 200 steps (per run), so each quarter
    # of learn(1600) spans at least two iteration boundaries; two runs, an entropy bonus and a two-iteration memory
    # put every part of the state (networks, Adam's moments, remembered elites) in the checkpoints.
    "approx_cem": Example("CartPole-v1", {"n_runs": 2, "n_sessions": 8, "max_episode_steps": 25,
                                          "keep_iterations": 2, "hidden_sizes": (16,), "minibatch_size": 64,
                                          "n_epochs": 2, "entropy_coef": 0.01}, 1600),
    # One adaptive hill-climbing iteration with theta_best re-judged is at most (1 + 1) candidates *
    # episodes_per_candidate * max_episode_steps = 200 steps (per run), so each quarter of learn(2000) (500 steps)
    # spans at least two iteration boundaries. The fields the tuned CartPole values set are all given here.
    "hill_climbing": Example("CartPole-v1", {"n_runs": 2, "variant": "adaptive", "n_neighbours": 1, "rejudge": True,
                                             "policy": "linear", "episodes_per_candidate": 2,
                                             "max_episode_steps": 50}, 2000),
    # One CEM iteration is at most population * max_episode_steps = 200 steps (per run), so each quarter of
    # learn(1600) spans at least two iteration boundaries; the extra noise still decays at the end.
    "param_cem": Example("CartPole-v1", {"n_runs": 2, "population": 8, "elite_frac": 0.25, "alpha": 0.7,
                                         "extra_noise_iterations": 20, "max_episode_steps": 25}, 1600),
    # Likewise: one ES iteration is at most 8 * 25 = 200 steps per run, with Adam's moments to checkpoint.
    "es": Example("CartPole-v1", {"n_runs": 2, "population": 8, "max_episode_steps": 25}, 1600),
    # The LM trainers on 1-digit addition with a 2-layer, 16-wide model: a step is one batch, 40 steps in rows of 5.
    "sft": Example(None, {"task": "addition", "task_size": 1, "d_model": 16, "n_layers": 1, "n_heads": 2,
                          "batch_size": 8, "eval_prompts": 8, "log_every": 5}, 40),
    "grpo": Example(None, {"task": "addition", "task_size": 1, "d_model": 16, "n_layers": 1, "n_heads": 2,
                           "batch_size": 2, "group_size": 4, "inner_epochs": 2, "eval_prompts": 8, "kl_coef": 0.0,
                           "skip_flat_groups": True,
                           "log_every": 5}, 40),
    # The preference learners on 2-digit addition (the hidden rule needs a test split with more prompts than
    # 1-digit addition's): 16 held-out pairs, 8 held-out prompts. rlhf_ppo's example has no reward model run to load
    # (reward_from=None: the hidden rule is its reward) and uses every part that has state: the adaptive KL
    # coefficient, two minibatches (the shuffles draw from the generator) and PPO-ptx.
    "reward_model": Example(None, {"task": "addition", "task_size": 2, **_TINY_LM, "batch_size": 4,
                                   "heldout_pairs": 16, "eval_prompts": 8, "log_every": 5}, 40),
    "dpo": Example(None, {"task": "addition", "task_size": 2, **_TINY_LM, "batch_size": 4, "heldout_pairs": 16,
                          "win_prompts": 8, "eval_prompts": 8, "log_every": 5, "heldout_every": 10}, 40),
    "rlhf_ppo": Example(None, {"task": "addition", "task_size": 2, **_TINY_LM, "batch_size": 4, "minibatches": 2,
                               "n_epochs": 2, "adaptive_kl": True, "kl_horizon": 100, "ptx_coef": 0.5,
                               "ptx_batch_size": 4, "heldout_pairs": 16, "eval_prompts": 8, "log_every": 5}, 40),
    "scst": Example(None, {"task": "addition", "task_size": 1, **_TINY_LM, "batch_size": 2, "samples": 3,
                           "eval_prompts": 8, "log_every": 5}, 40),
}


def example(name: str) -> Example:
    """The registered algorithm ``name``'s tiny example run, or an error saying it has none."""
    get_algorithm(name)  # an unknown name gets the error listing close matches
    if name.lower() not in EXAMPLES:
        raise KeyError(f"algorithm '{name}' has no example run; add one to thorndike.registry.EXAMPLES")
    return EXAMPLES[name.lower()]


CONFIG_DIR = Path(__file__).parent / "configs"


def get_algorithm(name: str) -> type:
    """The algorithm class registered as ``name``, or an error listing close matches."""
    key = name.lower()
    if key not in ALGORITHMS:
        close = difflib.get_close_matches(key, list(ALGORITHMS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown algorithm '{name}'.{hint} Available: {', '.join(sorted(ALGORITHMS))}")
    module, _, cls = ALGORITHMS[key].partition(":")
    return getattr(importlib.import_module(module), cls)


def algorithms() -> list[tuple[str, str, str]]:
    """(name, supported action spaces, one-line description) for every registered algorithm."""
    rows = []
    for name in sorted(ALGORITHMS):
        cls = get_algorithm(name)
        spaces = ", ".join(s.__name__ for s in cls.action_spaces) or "no env"
        rows.append((name, spaces, (cls.__doc__ or "").strip().splitlines()[0]))
    return rows


# Set while algorithms_supporting probes the classes: their refusals then skip listing the supporters, which would
# call algorithms_supporting again without end.
_probing_spaces = contextvars.ContextVar("probing_spaces", default=False)


def algorithms_supporting(observation_space: gym.Space, action_space: gym.Space) -> list[str]:
    """Registered algorithms whose ``check_spaces`` accepts these observation and action spaces, sorted."""
    token = _probing_spaces.set(True)
    try:
        supporting = []
        for name in sorted(ALGORITHMS):
            try:
                get_algorithm(name).check_spaces(observation_space, action_space)
            except Exception:  # any refusal means unsupported
                continue
            supporting.append(name)
        return supporting
    finally:
        _probing_spaces.reset(token)


def alternatives(name: str, observation_space: gym.Space, action_space: gym.Space) -> str:
    """The end of a refusal of these spaces by ``name``: the other algorithms that support them, or that none does."""
    if _probing_spaces.get():
        return ""
    others = [a for a in algorithms_supporting(observation_space, action_space) if a != name]
    if others:
        return f"algorithms that support these spaces: {', '.join(others)}"
    return "no thorndike algorithm supports these spaces yet"


def tuned_config(algo: str, env: Any) -> dict[str, Any]:
    """Tuned hyperparameters for ``algo`` on ``env`` from ``thorndike/configs/<algo>.yaml`` (empty if none); ``env`` is
    the task's name for the LM trainers."""
    path = CONFIG_DIR / f"{algo}.yaml"
    if not isinstance(env, str) or not path.exists():
        return {}
    return dict((yaml.safe_load(path.read_text()) or {}).get(env, {}))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML file of config fields (flat, or a run's ``config.yaml`` with ``config``/``options`` sections).

    A bare name such as ``"ppo_cartpole_fast"`` that is not a file here names a config shipped in
    ``thorndike/configs/``.
    """
    path = Path(path)
    shipped = CONFIG_DIR / f"{path}.yaml"
    if not path.is_file() and path.suffix == "" and shipped.is_file():
        path = shipped
    if not path.is_file():
        names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem not in ALGORITHMS)  # not the tuned tables
        raise FileNotFoundError(f"config file {path} does not exist (configs shipped with thorndike: {names})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of field: value")
    if "config" in data and isinstance(data["config"], dict):
        return {**data["config"], **data.get("options", {})}
    return data


def split_fields(cls: type, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split ``values`` into the algorithm's Config fields and RunOptions fields; refuse anything else."""
    config_fields = {f.name for f in dataclasses.fields(cls.Config)}
    option_fields = {f.name for f in dataclasses.fields(RunOptions)}
    config, options = {}, {}
    for key, value in values.items():
        if key in config_fields:
            config[key] = value
        elif key in option_fields:
            options[key] = value
        else:
            raise unknown_field_error(key, sorted(config_fields | option_fields), f"{cls.name}")
    return config, options


def make(algo: str, env: Any = None, seed: int = 0, config: str | Path | None = None, tuned: bool = True,
         env_kwargs: dict[str, Any] | None = None, wrappers: list[Any] | None = None, **fields: Any) -> Agent:
    """Build an agent: ``th.make("ppo", env="CartPole-v1", seed=0, n_envs=8)``.

    Config values are taken in this order, later ones winning: the Config's defaults, the tuned values for this
    env in ``thorndike/configs/<algo>.yaml`` (unless ``tuned=False``), the YAML file ``config``, then ``fields``.
    Run options (``device``, ``checkpoint_every``, ``stop_return``, ...) may be given the same way. ``env_kwargs``
    go to the env's constructor (``{"is_slippery": False}``) and ``wrappers`` wrap each copy (registered names, or
    ``{"name": ..., **kwargs}``); both are recorded, so ``th.load`` rebuilds the same env.
    """
    cls = get_algorithm(algo)
    # True is an int to Python; torch seeds must fit in 64 bits
    check(isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**63, "seed", seed,
          "a whole number in [0, 2**63)")
    if env is None and cls.action_spaces:
        raise ValueError(f"{cls.name} learns by acting in an env: pass env=... (a Gymnasium id such as "
                         "'CartPole-v1', 'package.module:function', a callable or a TabularMDP)")
    # Tuned tables are keyed by env id, or, for an algorithm without env (the LM trainers), by task name.
    key = env if cls.action_spaces else fields.get("task", _default(cls.Config, "task"))
    values = tuned_config(cls.name, key) if tuned else {}
    if config is not None:
        values.update(read_config_file(config))
    values.update(fields)
    config_values, option_values = split_fields(cls, values)
    return cls(env, build_config(cls.Config, config_values), seed=seed,
               options=build_config(RunOptions, option_values), env_kwargs=env_kwargs, wrappers=wrappers)


def _default(config_cls: type, name: str) -> Any:
    """A Config field's default (None when it has no such field)."""
    for f in dataclasses.fields(config_cls):
        if f.name == name:
            return f.default
    return None


def _from_state(state: dict[str, Any], env: Any, options: dict[str, Any]) -> Agent:
    cls = get_algorithm(state["algo"])
    recorded = state["env"]
    if env is None and recorded is not None:
        from thorndike.envs import NATIVE_ENVS, EnvImportError, env_builder

        if recorded not in NATIVE_ENVS:
            try:
                env_builder(recorded)
            except EnvImportError:
                raise  # a "module:function" spec whose module is not found here: that error says where it looked
            except ValueError:
                raise ValueError(
                    f"this {state['algo']} agent was trained on an env given as an object or a function "
                    f"({recorded!r}), which a file cannot hold; pass it again: th.load(path, env=...) or, on the "
                    "command line, train with a registered id"
                ) from None
    saved_options = dict(state["options"])
    if "device" not in options and saved_options.get("device", "cpu").startswith("cuda") and \
            not torch.cuda.is_available():
        warnings.warn(f"this agent was trained on {saved_options['device']}, which is not available here; loading "
                      "it on the CPU", stacklevel=3)
        saved_options["device"] = "cpu"
    run_options = build_config(RunOptions, {**saved_options, **options})
    agent = cls(env if env is not None else recorded, build_config(cls.Config, state["config"]), seed=state["seed"],
                options=run_options, env_kwargs=state.get("env_kwargs"), wrappers=state.get("wrappers"))
    agent.load_state_dict(state)
    return agent


def load(path: str | Path, env: Any = None, **options: Any) -> Agent:
    """Load an agent saved with ``agent.save`` (or a run's ``final.pt`` or checkpoint, or a run folder).

    ``env`` overrides the env recorded in the file (needed when it was built by a callable).
    """
    from thorndike.core.checkpoint import load_checkpoint

    path = Path(path)
    if path.is_dir():
        return _from_state(_run_state(path), env, {"progress": False, **options})
    return _from_state(load_checkpoint(path), env, {"progress": False, **options})


def _run_state(run_dir: Path) -> dict[str, Any]:
    """A run folder's ``final.pt``, or, when it is missing, damaged or another run's, its newest checkpoint that is
    this run's (each refusal said by name)."""
    from thorndike.core.checkpoint import list_checkpoints, load_latest_checkpoint
    from thorndike.run import identity_mismatch, run_identity

    identity = run_identity(run_dir)
    candidates = list_checkpoints(run_dir / "checkpoints")
    if (run_dir / "final.pt").exists():
        candidates.append(run_dir / "final.pt")
    return load_latest_checkpoint(run_dir, lambda state: identity_mismatch(state, identity), candidates)[1]


def resume(run_dir: str | Path, **options: Any) -> Agent:
    """Rebuild an interrupted run from its newest valid checkpoint; ``agent.learn(agent.total_steps)`` goes on."""
    from thorndike.agent import resume_state

    run_dir = Path(run_dir)
    path, state = resume_state(run_dir)
    agent = _from_state(state, None, options)
    agent.run.run_dir = run_dir
    agent.run.last_checkpoint = path
    return agent
