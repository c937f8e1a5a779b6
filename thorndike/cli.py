"""The thorndike command: demo, train, eval, sample, plan, plot, tune, list.

Flags for ``train`` are built from the algorithm's Config dataclass and :class:`RunOptions`, so every field
(``--lr``, ``--n-envs``, ``--checkpoint-every``, ...) can be set from the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import sys
import time
from pathlib import Path
from typing import Any

from thorndike.config import ConfigError, RunOptions, field_help, unknown_field_error
from thorndike.core.checkpoint import CheckpointError
from thorndike.core.diagnostics import EnvOutputError, NonFiniteError
from thorndike.envs import MissingDependencyError


def _field_parser(algo_cls: type, tuned: dict[str, Any] | None = None, env: str | None = None
                  ) -> argparse.ArgumentParser:
    """Every Config field and run option as a flag; ``tuned`` (the values shipped for ``env``) are shown as what the
    run will use."""
    tuned = tuned or {}
    parser = argparse.ArgumentParser(prog=f"thorndike train {algo_cls.name}", add_help=False, allow_abbrev=False)
    for owner in (algo_cls.Config, RunOptions):
        helps = field_help(owner)
        for f in dataclasses.fields(owner):
            flags = [f"--{f.name.replace('_', '-')}"]
            if "_" in f.name:
                flags.append(f"--{f.name}")
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            shown = f"tuned for {env}: {tuned[f.name]}; default {default}" if f.name in tuned else f"default: {default}"
            parser.add_argument(*flags, dest=f.name, default=argparse.SUPPRESS, metavar="VALUE",
                                help=f"{helps[f.name]} ({shown})")
    return parser


def _parse_fields(cls: type, argv: list[str]) -> dict[str, str]:
    parser = _field_parser(cls)
    values, unknown = parser.parse_known_args(argv)
    if unknown:
        flag = next((u for u in unknown if u.startswith("--")), unknown[0])
        names = [f.name for f in dataclasses.fields(cls.Config)] + [f.name for f in dataclasses.fields(RunOptions)]
        raise unknown_field_error(flag.lstrip("-").split("=")[0].replace("-", "_"), names, cls.name)
    return vars(values)


def parse_key_values(items: list[str], flag: str) -> dict[str, Any]:
    """``["is_slippery=false", "map_name=8x8"]`` -> ``{"is_slippery": False, "map_name": "8x8"}`` (YAML values)."""
    import yaml

    values = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} takes KEY=VALUE pairs, got {item!r} (e.g. {flag} is_slippery=false)")
        values[key] = yaml.safe_load(text) if text else ""
    return values


def parse_wrapper(item: str) -> str | dict[str, Any]:
    """``"time_limit:max_episode_steps=50"`` -> ``{"name": "time_limit", "max_episode_steps": 50}``; a bare name
    stays a name."""
    name, sep, rest = item.partition(":")
    if not sep:
        return name
    return {"name": name, **parse_key_values(rest.split(","), "--wrappers NAME:")}


# What a resumed run may change: how it shows progress, not what it computes.
RESUME_OPTIONS = ("progress", "tensorboard", "pictures")


def _parse_resume(argv: list[str]) -> argparse.Namespace:
    """``train --resume RUN`` with --steps and the display options; anything else would change the run and is
    refused by name."""
    parser = argparse.ArgumentParser(prog="thorndike train --resume RUN", add_help=False, allow_abbrev=False)
    parser.add_argument("command")
    parser.add_argument("--resume", required=True)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--workers", type=int, default=None)
    for name in RESUME_OPTIONS:
        parser.add_argument(f"--{name}", dest=name, default=None, metavar="VALUE")
    values, unknown = parser.parse_known_args(argv)
    if unknown:
        raise ConfigError(f"--resume continues a run with its saved config, so {' '.join(unknown)} cannot change; "
                          f"only --steps (to extend it) and {', '.join('--' + n for n in RESUME_OPTIONS)} may be given")
    return values


def cmd_train(args: argparse.Namespace, rest: list[str]) -> int:
    import thorndike as th
    from thorndike.registry import get_algorithm

    if not args.algo:
        raise ConfigError("train needs ALGO and --env (or --resume RUN)")
    cls = get_algorithm(args.algo)
    if not args.env and cls.action_spaces:
        raise ConfigError(f"train {cls.name} needs --env (or --resume RUN)")
    fields = _parse_fields(cls, rest)
    env_kwargs = parse_key_values(args.env_kwargs, "--env-kwargs")
    wrappers = [parse_wrapper(w) for w in args.wrappers]
    steps = 100_000 if args.steps is None else args.steps
    from thorndike.experiment import parse_seeds

    seeds = parse_seeds(args.seeds or args.seed)
    if args.seeds or len(seeds) > 1:
        return cmd_experiment(args, cls, seeds, steps, env_kwargs, wrappers, fields)
    if args.workers is not None:
        raise ConfigError("--workers sets how many seeds train at once: give several, e.g. --seeds 0-9")
    agent = th.make(args.algo, env=args.env, seed=seeds[0], config=args.config, env_kwargs=env_kwargs,
                    wrappers=wrappers, **fields)
    agent.learn(steps)
    return report(agent)


def cmd_experiment(args: argparse.Namespace, cls: type, seeds: list[int], steps: int, env_kwargs: dict[str, Any],
                   wrappers: list[Any], fields: dict[str, Any]) -> int:
    """``train ALGO --env ID --seeds 0-9``: every seed in its own process, grouped in one experiment folder."""
    import thorndike as th
    from thorndike.experiment import make_record, start_experiment

    run_root = fields.pop("run_root", "runs")
    # Build the first seed's agent here, so a bad field or env fails once, now, instead of in every process.
    th.make(cls.name, env=args.env, seed=seeds[0], config=args.config, env_kwargs=env_kwargs, wrappers=wrappers,
            **{**fields, "run_root": run_root})
    make = make_record(cls.name, args.env, args.config, env_kwargs, wrappers, fields)
    experiment, statuses = start_experiment(make, steps, seeds, args.workers, run_root)
    return experiment_report(experiment, statuses)


def experiment_report(experiment: Any, statuses: dict[int, str]) -> int:
    """The end of a multi-seed command: where the experiment is, which seeds did not finish and how to go on."""
    unfinished = {seed: status for seed, status in statuses.items() if status != "done"}
    print(f"experiment folder: {experiment.folder}")
    if unfinished:
        listed = ", ".join(f"seed {seed} {status}" for seed, status in sorted(unfinished.items()))
        print(f"thorndike: {len(unfinished)} of {len(statuses)} seeds did not finish ({listed}); go on with "
              f"`thorndike train --resume {experiment.folder}`", file=sys.stderr)
        return 1
    print(f"plot it: thorndike plot {experiment.folder}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    """``train --resume RUN [--steps N] [--progress ...]``: go on from the run's newest state, to its own budget or
    to a larger one."""
    import thorndike as th
    from thorndike.experiment import is_experiment, resume_experiment

    if is_experiment(args.resume):
        return experiment_report(*resume_experiment(args.resume, args.steps, args.workers))
    if args.workers is not None:
        raise ConfigError("--workers applies to resuming an experiment (a folder with experiment.yaml)")
    display = {name: getattr(args, name) for name in RESUME_OPTIONS if getattr(args, name) is not None}
    agent = th.resume(args.resume, **display)
    # A run ends at the first iteration boundary at or past its budget, so a finished one may be a little past it.
    total = max(agent.total_steps, agent.global_step) if args.steps is None else args.steps
    if total < agent.global_step:
        raise ConfigError(f"--steps {total} is below the step the run is at ({agent.global_step}); give a larger "
                          "budget to extend it")
    print(f"resuming {agent.run_dir} at step {agent.global_step} of {total}")
    agent.learn(total)
    return report(agent)


def report(agent: Any) -> int:
    """The end of a training command: where the run is and how its policy does."""
    print(f"run folder: {agent.run_dir}")
    summary = getattr(agent, "summary", None)
    if summary is not None:  # an algorithm judged in its own terms (the reward model: held-out pair accuracy)
        print(f"evaluation: {summary()}")
        return 0
    if hasattr(agent, "complete"):  # a language model: its held-out exact-match accuracy
        print(f"evaluation: {heldout_summary(agent)}")
        return 0
    result = agent.evaluate(episodes=10)
    print(f"evaluation: {result}")
    return 0


def heldout_summary(agent: Any, prompts: int | None = None) -> str:
    """A language model's greedy exact-match accuracy and mean reward on its task's fixed held-out set."""
    result = agent.lm.evaluate(prompts)
    return (f"held-out exact-match accuracy {result['accuracy']:.3f} (greedy, {len(result['correct'])} test-split "
            f"prompts of {agent.config.task}), mean reward {result['reward']:.3f}")


def cmd_eval(args: argparse.Namespace) -> int:
    import thorndike as th

    agent = th.load(args.path)
    if hasattr(agent, "complete"):  # a language model: held-out accuracy (all eval_prompts unless --episodes)
        print(f"{agent.name} on {agent.config.task}: {heldout_summary(agent, args.episodes)}")
        return 0
    result = agent.evaluate(episodes=10 if args.episodes is None else args.episodes,
                            deterministic=not args.stochastic)
    print(f"{agent.name} on {agent.env_spec}: {result}")
    print("returns:", ", ".join(f"{r:.1f}" for r in result.returns))
    if args.video:
        from thorndike.envs.video import record_video

        path = Path(args.path)
        folder = (path if path.is_dir() else path.parent) / "videos"
        print(f"video: {record_video(agent, folder / f'eval.{args.video_format}')}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    """``sample RUN --prompt "12+34="``: a trained language model's greedy completion of each prompt, and
    ``--samples K`` sampled ones at ``--temperature``."""
    import thorndike as th

    agent = th.load(args.run)
    if not hasattr(agent, "complete"):
        raise ValueError(f"{args.run} is a {agent.name} run, not a language model's: sample takes runs of the LM "
                         "trainers (sft, grpo, ...)")
    for prompt in args.prompt:
        greedy = agent.complete([prompt], greedy=True)[0]
        verdict = ""
        try:
            verdict = " (correct)" if agent.lm.task.is_correct(prompt, greedy) else \
                f" (wrong: the answer is {agent.lm.task.answer(prompt)})"
        except ValueError:  # a prompt the task could not have made: no reference answer
            pass
        print(f"{prompt}{greedy}{verdict}")
        if args.samples:
            samples = agent.complete([prompt] * args.samples, greedy=False, temperature=args.temperature,
                                     seed=args.seed)
            for text in samples:
                print(f"  sample: {prompt}{text}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from thorndike.experiment import is_experiment
    from thorndike.plot import experiment_curves, learning_curves

    experiments = [is_experiment(path) for path in args.runs]
    if any(experiments):
        if not all(experiments):
            raise ConfigError("plot either run folders or experiment folders (with experiment.yaml), not both")
        out = args.out or (Path(args.runs[0]) / "seeds.png" if len(args.runs) == 1 else Path("experiments.png"))
        print(experiment_curves(args.runs, out, labels=args.labels, metric=args.metric))
        return 0
    if args.labels:
        raise ConfigError("--labels names experiments (folders made by train --seeds)")
    out = args.out or (Path(args.runs[0]) / "curve.png" if len(args.runs) == 1 else Path("curves.png"))
    print(learning_curves(args.runs, out))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Gymnasium's env checker and thorndike's VecEnv contract on ENV (see thorndike.envs.checker)."""
    from thorndike.envs import check

    print(check(args.env, n_envs=args.n_envs, seed=args.seed, steps=args.steps,
                env_kwargs=parse_key_values(args.env_kwargs, "--env-kwargs"),
                wrappers=[parse_wrapper(w) for w in args.wrappers]))
    return 0


def cmd_tune(args: argparse.Namespace, rest: list[str]) -> int:
    """``tune ALGO --env ID --trials N``: an Optuna study of the algorithm's search space (thorndike/tune.py)."""
    from thorndike.registry import get_algorithm
    from thorndike.tune import tune

    cls = get_algorithm(args.algo)
    fields = _parse_fields(cls, rest)
    tune(cls.name, args.env, args.trials, seeds=args.seeds, steps=args.steps, eval_every=args.eval_every,
         eval_episodes=args.eval_episodes, timeout=args.timeout, storage=args.storage, space=args.space,
         folder=args.folder, config=args.config, env_kwargs=parse_key_values(args.env_kwargs, "--env-kwargs"),
         wrappers=[parse_wrapper(w) for w in args.wrappers], **fields)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from thorndike.registry import algorithms

    rows = algorithms()
    width = max(len("algorithm"), *(len(name) for name, _, _ in rows))
    print(f"{'algorithm':<{width}}  {'action spaces':<14}  description")
    for name, spaces, doc in rows:
        print(f"{name:<{width}}  {spaces:<14}  {doc}")
    return 0


PLANNING_PROBLEMS = ("gridworld", "discount-grid", "frozenlake", "frozenlake8x8", "taxi", "cliffwalking")
PLANNING_METHODS = ("vi", "pi", "mpi", "soft")


def planning_problem(name: str, gamma: float, noise: float, living_reward: float,
                     env_kwargs: dict[str, Any] | None = None):
    """A TabularMDP by its command-line name, or a Gymnasium id with a tabular model (FrozenLake-v1, Taxi-v4, ...:
    the ids ``train`` takes whose dynamics thorndike knows as a table), made with ``env_kwargs``."""
    from thorndike.envs import gridworld, tabular_model, toy_text

    builders = {
        "gridworld": lambda: gridworld.classic(noise=noise, living_reward=living_reward, gamma=gamma),
        "discount-grid": lambda: gridworld.discount_grid(noise=noise, living_reward=living_reward, gamma=gamma),
        "frozenlake": lambda: toy_text.frozen_lake("4x4", gamma=gamma),
        "frozenlake8x8": lambda: toy_text.frozen_lake("8x8", gamma=gamma),
        "taxi": lambda: toy_text.taxi(gamma=gamma),
        "cliffwalking": lambda: toy_text.cliff_walking(gamma=gamma),
    }
    if name in builders and not env_kwargs:
        return builders[name]()
    if name not in builders:
        model = tabular_model(name, env_kwargs)
        if model is not None:
            return model
    import gymnasium as gym

    from thorndike.envs import require_tabular_model
    from thorndike.envs.batched.tabular import TOY_TEXT
    from thorndike.envs.classic import CLASSIC

    if name in builders:
        raise ValueError(f"--env-kwargs configure Gymnasium ids; '{name}' takes --gamma, --noise and --living-reward")
    if name in TOY_TEXT or name in CLASSIC:
        require_tabular_model(name, env_kwargs)  # says which env_kwarg the model cannot honour
    ids = [*TOY_TEXT, *CLASSIC]
    if name in gym.registry:
        raise ValueError(f"{name} has no tabular model in thorndike (plan needs every transition probability); "
                         f"plan takes {', '.join(builders)} and the Gymnasium ids {', '.join(ids)}")
    close = difflib.get_close_matches(name, [*builders, *ids], n=2, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown planning problem '{name}'.{hint} Available: {', '.join(builders)}, or a Gymnasium id "
                     f"with a tabular model: {', '.join(ids)}")


def solve(mdp, method: str, gamma: float, temperature: float, k: int):
    from thorndike import planning

    solvers = {
        "vi": lambda: planning.value_iteration(mdp, gamma),
        "pi": lambda: planning.policy_iteration(mdp, gamma),
        "mpi": lambda: planning.modified_policy_iteration(mdp, gamma, k=k),
        "soft": lambda: planning.soft_value_iteration(mdp, gamma, temperature=temperature),
    }
    if method not in solvers:
        raise ValueError(f"unknown planning method '{method}'; use one of {', '.join(solvers)}")
    return solvers[method]()


PLANNING_NAMES = {"vi": "value iteration", "pi": "policy iteration", "mpi": "modified policy iteration",
                  "soft": "soft value iteration"}


def cmd_plan(args: argparse.Namespace) -> int:
    """Solve a tabular problem exactly, print its value table and write the pictures."""
    from thorndike import plot
    from thorndike.envs.gridworld import format_values

    mdp = planning_problem(args.env, args.gamma, args.noise, args.living_reward,
                           parse_key_values(args.env_kwargs, "--env-kwargs"))
    result = solve(mdp, args.method, args.gamma, args.temperature, args.k)
    out = Path(args.out)
    stem = f"{args.env.replace('/', '_')}-{args.method}"
    settings = {"mpi": f" (k = {args.k})", "soft": f" (temperature {args.temperature:g})"}.get(args.method, "")
    if args.method == "pi":  # its residuals are value changes between successive policies, not a convergence test
        how = (f"policy stable after {result.improvements} improvements ({result.sweeps} exact policy evaluations)"
               if result.converged else f"policy still changing after {result.improvements} improvements")
    else:
        last = result.residuals[-1] if result.residuals else 0.0
        how = f"{result.sweeps} sweeps, last change max|V_k - V_k-1| {last:.2e}"
    print(f"{args.env}: {mdp.n_states} states, {mdp.n_actions} actions, gamma {args.gamma}; "
          f"{PLANNING_NAMES[args.method]}{settings}: {how}")
    print(f"Bellman residual of the result: max_s |{'soft ' if args.method == 'soft' else ''}T V(s) - V(s)| = "
          f"{bellman_residual(mdp, result.V, args.gamma, args.temperature if args.method == 'soft' else None):.1e}")
    if args.method == "soft":
        print(soft_policy_note(mdp, result, args.gamma, args.temperature))
    if mdp.grid is not None:
        print(format_values(mdp, result.V, result.policy))
        caption = f"{stem}, gamma {args.gamma}" + (f", temperature {args.temperature:g}: arrows are the most likely "
                                                   "action" if args.method == "soft" else "")
        print(f"values: {plot.values(mdp, result, out / f'{stem}-values.png', title=caption)}")
    else:
        print(f"expected value from the start distribution: {float((mdp.start * result.V).sum()):.6f}")
    print(f"convergence: {plot.convergence({args.method: result}, out / f'{stem}-convergence.png')}")
    return 0


def soft_policy_note(mdp: Any, result: Any, gamma: float, temperature: float) -> str:
    """Why a soft policy's arrows can lead away from the best exit: the entropy it earns on the way."""
    import math

    from thorndike.planning import value_iteration

    per_step = temperature * math.log(mdp.n_actions)
    horizon = f", up to {per_step / (1 - gamma):.3f} over an infinite horizon at gamma {gamma}" if gamma < 1 else ""
    live = ~mdp.terminal
    differ = int((result.policy != value_iteration(mdp, gamma).policy)[live].sum())
    return (f"The soft policy pi(a|s) = exp((Q(s, a) - V(s)) / temperature) maximises return + temperature x "
            f"entropy: each step earns up to temperature x ln {mdp.n_actions} = {per_step:.3f} of entropy{horizon}, "
            "so lingering can pay more than exiting (V may exceed every exit's reward) and an arrow (the state's "
            f"most likely action) may lead away from the best exit: in {differ} of {int(live.sum())} states it "
            "differs from value iteration's greedy action. A lower --temperature approaches value iteration "
            "(maximum-entropy RL: Ziebart 2010; Haarnoja et al. 2017).")


def bellman_residual(mdp: Any, V: Any, gamma: float, temperature: float | None = None) -> float:
    """max_s |T V(s) - V(s)| over non-terminal states, with T the Bellman optimality backup (the soft one with a
    ``temperature``): 0 up to round-off exactly when V is the fixed point, whatever method produced it."""
    import torch

    Q = mdp.backup(V, gamma)
    backed_up = Q.amax(1) if temperature is None else temperature * torch.logsumexp(Q / temperature, dim=1)
    gap = (backed_up - V).masked_fill(mdp.terminal, 0.0).abs()
    return float(gap.max()) if gap.numel() else 0.0


def gridworld_table() -> str:
    """The classic 4x3 gridworld's values (Russell & Norvig ch. 17), recomputed by value iteration with H = 100."""
    from thorndike import planning
    from thorndike.envs import gridworld

    cells = [(4, 3), (3, 3), (2, 3), (1, 1), (4, 2)]
    lines = ["| setting | " + " | ".join(f"V*{c}" for c in cells) + " |", "|---" * 6 + "|"]
    for label, gamma, noise in (("gamma = 1, H = 100", 1.0, 0.0), ("gamma = 0.9, H = 100", 0.9, 0.0),
                                ("gamma = 0.9, H = 100, success rate 0.8", 0.9, 0.2)):
        mdp = gridworld.classic(noise=noise, gamma=gamma)
        V = planning.value_iteration(mdp, gamma, horizon=100).V
        lines.append(f"| {label} | " + " | ".join(f"{float(V[mdp.grid.state(*c)]):.4f}" for c in cells) + " |")
    return "\n".join(lines)


def cmd_demo(args: argparse.Namespace) -> int:
    """Solve the notes' gridworld exactly; train PPO on CartPole-v1 until solved, evaluate, write the curve and a
    GIF of the trained agent."""
    import thorndike as th
    from thorndike.core.logger import read_progress
    from thorndike.envs.gridworld import format_values
    from thorndike.envs.video import record_gif

    print("thorndike demo, part 1: the classic 4x3 gridworld (Russell & Norvig ch. 17), solved by value iteration")
    print(gridworld_table())
    mdp = th.envs.gridworld.classic(noise=0.2, gamma=0.9)
    solution = th.planning.value_iteration(mdp, gamma=0.9)
    print("\nnoise 0.2, gamma 0.9, greedy action per cell:")
    print(format_values(mdp, solution.V, solution.policy))
    values_png = th.plot.values(mdp, solution, Path(args.run_root) / "values.png",
                                title="the 4x3 gridworld: noise 0.2, gamma 0.9")
    print(f"values picture: {values_png}\n")

    print("thorndike demo, part 2: PPO on CartPole-v1 until the deterministic evaluation mean reaches 475")
    start = time.perf_counter()
    # The fast config (thorndike/configs/ppo_cartpole_fast.yaml) on the native batched CartPole: about a second.
    agent = th.make("ppo", env="CartPole-v1", seed=args.seed, config="ppo_cartpole_fast", eval_every=8192,
                    eval_episodes=10, stop_return=475.0, run_root=args.run_root)
    agent.learn(args.steps)
    training_s = read_progress(agent.run_dir)["time/elapsed_s"][-1]  # the session's clock, evaluations included
    result = agent.evaluate(episodes=10)
    gif = record_gif(agent, agent.run_dir / "videos" / "cartpole.gif")
    print(f"trained for {agent.global_step} steps in {training_s:.1f} s "
          f"({time.perf_counter() - start:.1f} s with set-up, the final evaluation, the curve and the GIF)")
    print(f"evaluation (10 episodes, deterministic): {result}")
    print(f"run folder:     {agent.run_dir}")
    print(f"learning curve: {agent.run_dir / 'curve.png'}")
    print(f"video:          {gif}")
    if result.mean < 475:
        print("CartPole was not solved within the step budget", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thorndike", description=__doc__.splitlines()[0],
                                     epilog="--debug anywhere on the line shows an error's full traceback")
    from thorndike import __version__

    parser.add_argument("--version", action="version", version=f"thorndike {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="train PPO on CartPole until solved; write curve and video")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--steps", type=int, default=100_000, help="step budget")
    demo.add_argument("--run-root", default="runs")

    train = sub.add_parser("train", help="train an algorithm; any Config field is a flag (--lr 1e-3 ...)",
                           epilog="Config fields: see `thorndike train ALGO --env ID --help-fields`.")
    train.add_argument("algo", nargs="?")
    train.add_argument("--env")
    train.add_argument("--seed", nargs="+", default=["0"], metavar="SEED",
                       help="the run's seed; several (0 1 2, 0-9, 0-4,7) make an experiment, as --seeds does")
    train.add_argument("--seeds", nargs="+", metavar="SEEDS",
                       help="train one run per seed (0-9, 0 1 2 or 0-4,7), each in its own process, grouped in "
                       "runs/<algo>-<env>-<time>-seeds/ with experiment.yaml; resume with --resume EXPERIMENT")
    train.add_argument("--workers", type=int, default=None,
                       help="seeds trained at once (default: the CPU cores available)")
    train.add_argument("--steps", type=int, default=None,
                       help="total env steps (all copies; per run for the tabular learners); default 100000, or with "
                       "--resume the run's own budget (a larger one extends a finished run)")
    train.add_argument("--config", help="YAML file of config fields, or the name of one shipped in thorndike/configs "
                       "(e.g. ppo_cartpole_fast)")
    train.add_argument("--env-kwargs", nargs="+", metavar="KEY=VALUE", default=[],
                       help="keyword arguments of the env's constructor, e.g. --env-kwargs is_slippery=false "
                       "map_name=8x8 (values read as YAML)")
    train.add_argument("--wrappers", nargs="+", metavar="NAME", default=[],
                       help="registered wrappers applied to each env copy, in order (NAME or NAME:key=value,...)")
    train.add_argument("--resume", metavar="RUN", help="continue RUN from its newest valid checkpoint (an experiment "
                       "folder: every seed not done)")
    train.add_argument("--help-fields", action="store_true", help="list the algorithm's config fields")

    ev = sub.add_parser("eval", help="evaluate a saved agent or run folder")
    ev.add_argument("path")
    ev.add_argument("--episodes", type=int, default=None,
                    help="episodes to play (default 10); a language model: held-out prompts (default eval_prompts)")
    ev.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    ev.add_argument("--video", action="store_true", help="also write a video of one episode (videos/eval.mp4)")
    ev.add_argument("--video-format", choices=("mp4", "gif"), default="mp4",
                    help="the --video format: mp4 (H.264, default) or gif")

    sample = sub.add_parser("sample", help="print a trained language model's completions of prompts")
    sample.add_argument("run", help="a run folder or checkpoint of an LM trainer (sft, grpo, ...)")
    sample.add_argument("--prompt", nargs="+", required=True, help='one or more prompts, e.g. --prompt "12+34="')
    sample.add_argument("--samples", type=int, default=0, help="also print this many sampled completions each")
    sample.add_argument("--temperature", type=float, default=1.0, help="temperature of the sampled completions")
    sample.add_argument("--seed", type=int, default=0, help="seed of the sampled completions")

    plan = sub.add_parser("plan", help="solve a tabular problem exactly; print its values, write pictures")
    plan.add_argument("env", help=", ".join(PLANNING_PROBLEMS) + ", or a Gymnasium id with a tabular model "
                      "(FrozenLake-v1, Taxi-v4, CliffWalking-v1, ...)")
    plan.add_argument("--method", default="vi", help=", ".join(PLANNING_METHODS))
    plan.add_argument("--gamma", type=float, default=0.9)
    plan.add_argument("--noise", type=float, default=0.2, help="gridworlds: probability of slipping sideways")
    plan.add_argument("--living-reward", type=float, default=0.0, help="gridworlds: reward of every move")
    plan.add_argument("--temperature", type=float, default=0.1,
                      help="soft value iteration's temperature: the weight of the policy's entropy (default 0.1)")
    plan.add_argument("--env-kwargs", nargs="+", metavar="KEY=VALUE", default=[],
                      help="Gymnasium ids: the env's keyword arguments, e.g. is_slippery=false map_name=8x8")
    plan.add_argument("--k", type=int, default=5, help="modified policy iteration's evaluation sweeps")
    plan.add_argument("--out", default=".", help="folder for the pictures")

    plot = sub.add_parser("plot", help="plot learning curves of one or more runs, or of experiments (mean and IQM "
                          "over seeds with 95%% bootstrap intervals)")
    plot.add_argument("runs", nargs="+", help="run folders, or experiment folders (train --seeds)")
    plot.add_argument("--out")
    plot.add_argument("--labels", nargs="+", help="experiments' names in the legend (default: what differs between "
                      "their configs)")
    plot.add_argument("--metric", default="auto", choices=("auto", "eval", "train"),
                      help="experiments: the evaluation mean (eval), the training return (train), or eval when "
                      "every seed has evaluations (auto)")

    tune = sub.add_parser("tune", help="tune an algorithm's hyperparameters with Optuna; fixed config fields as flags",
                          description="Each trial trains --seeds seeds for --steps steps and scores the mean final "
                          "evaluation; evaluations during training feed Optuna's median pruner. The study is kept in "
                          "runs/tune-ALGO-ENV/study.db: the same command again adds --trials more trials. Writes "
                          "best.yaml (for train --config) and study.png there.")
    tune.add_argument("algo")
    tune.add_argument("--env", required=True)
    tune.add_argument("--trials", type=int, required=True, help="trials to run now (added to the study's)")
    tune.add_argument("--seeds", type=int, default=1, metavar="K", help="seeds 0..K-1 per trial (default 1)")
    tune.add_argument("--steps", type=int, default=100_000, help="step budget of each seed (default 100000)")
    tune.add_argument("--eval-every", type=int, default=None, help="steps between evaluations (default steps/10)")
    tune.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation (default 10)")
    tune.add_argument("--timeout", type=float, default=None, metavar="S", help="stop starting trials after S seconds")
    tune.add_argument("--storage", help="Optuna storage URL (any SQLAlchemy URL; default: sqlite in the study folder)")
    tune.add_argument("--space", help="search space YAML (default thorndike/configs/tune/ALGO.yaml, or one derived "
                      "from the config's defaults)")
    tune.add_argument("--folder", help="study folder (default runs/tune-ALGO-ENV)")
    tune.add_argument("--config", help="YAML file of config fields every trial starts from")
    tune.add_argument("--env-kwargs", nargs="+", metavar="KEY=VALUE", default=[])
    tune.add_argument("--wrappers", nargs="+", metavar="NAME", default=[])

    sub.add_parser("list", help="list algorithms and the action spaces each supports")

    chk = sub.add_parser("check", help="check an env: Gymnasium's API, then thorndike's VecEnv contract (autoreset, "
                         "dtypes, shapes, seeding)")
    chk.add_argument("env", help="a Gymnasium id or module:function (found in the current folder too)")
    chk.add_argument("--env-kwargs", nargs="+", metavar="KEY=VALUE", default=[], help="the env's keyword arguments")
    chk.add_argument("--wrappers", nargs="+", metavar="NAME", default=[], help="registered wrappers, in order")
    chk.add_argument("--seed", type=int, default=0)
    chk.add_argument("--steps", type=int, default=500, help="random steps per batch")
    chk.add_argument("--n-envs", type=int, default=2, help="copies in the batch")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _import_from_cwd()
    debug = "--debug" in argv  # anywhere on the line: the full traceback instead of one paragraph
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command == "train":
            if args.help_fields:
                from thorndike.registry import get_algorithm, tuned_config

                cls = get_algorithm(args.algo or "ppo")
                tuned = tuned_config(cls.name, args.env) if args.env else {}
                _field_parser(cls, tuned, args.env).print_help()
                return 0
            if args.resume:
                return cmd_resume(_parse_resume(argv))
            return cmd_train(args, rest)
        if args.command == "tune":
            return cmd_tune(args, rest)
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        commands = {"demo": cmd_demo, "eval": cmd_eval, "sample": cmd_sample, "plan": cmd_plan, "plot": cmd_plot,
                    "list": cmd_list, "check": cmd_check}
        return commands[args.command](args)
    except (ConfigError, ValueError, FileNotFoundError, CheckpointError, MissingDependencyError) as err:
        if debug:
            raise
        if isinstance(err, EnvOutputError):  # the env failed during a run (a ValueError): as for NaN below
            print(f"thorndike: error: {err}{_notes(err)}\n(run with --debug for the traceback)", file=sys.stderr)
            return 1
        print(f"thorndike: error: {err}{_notes(err)}", file=sys.stderr)
        return 2
    except (NonFiniteError, OSError) as err:  # data or the file system failed during a run: say what and how to go on
        if debug:
            raise
        print(f"thorndike: error: {err}{_notes(err)}\n(run with --debug for the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt as err:
        print(f"\nthorndike: interrupted{_notes(err) or '; nothing had been written yet'}", file=sys.stderr)
        return 130


def _import_from_cwd() -> None:
    """Let ``--env mymodule:make_env`` find ``mymodule.py`` in the current folder, as ``python -m`` would: a console
    script's sys.path lacks it. Appended, so a file there never shadows an installed package."""
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.append(here)


def _notes(err: BaseException) -> str:
    """The notes the run added to an error (the step it stopped at, the last checkpoint, how to resume)."""
    notes = getattr(err, "__notes__", [])
    return "".join(f"\n{note}" for note in notes)


if __name__ == "__main__":
    sys.exit(main())
