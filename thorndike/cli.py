"""The ``thorndike`` command: demo, train, eval, plot, list.

Flags for ``train`` are built from the algorithm's Config dataclass and :class:`RunOptions`, so every field
(``--lr``, ``--n-envs``, ``--checkpoint-every``, ...) can be set from the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from thorndike.config import ConfigError, RunOptions, field_help, unknown_field_error
from thorndike.core.checkpoint import CheckpointError


def _field_parser(algo_cls: type) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"thorndike train {algo_cls.name}", add_help=False, allow_abbrev=False)
    for owner in (algo_cls.Config, RunOptions):
        helps = field_help(owner)
        for f in dataclasses.fields(owner):
            flags = [f"--{f.name.replace('_', '-')}"]
            if "_" in f.name:
                flags.append(f"--{f.name}")
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            parser.add_argument(*flags, dest=f.name, default=argparse.SUPPRESS, metavar="VALUE",
                                help=f"{helps[f.name]} (default: {default})")
    return parser


def _parse_fields(cls: type, argv: list[str]) -> dict[str, str]:
    parser = _field_parser(cls)
    values, unknown = parser.parse_known_args(argv)
    if unknown:
        flag = next((u for u in unknown if u.startswith("--")), unknown[0])
        names = [f.name for f in dataclasses.fields(cls.Config)] + [f.name for f in dataclasses.fields(RunOptions)]
        raise unknown_field_error(flag.lstrip("-").split("=")[0].replace("-", "_"), names, cls.name)
    return vars(values)


def cmd_train(args: argparse.Namespace, rest: list[str]) -> int:
    import thorndike as th
    from thorndike.registry import get_algorithm

    if args.resume:
        if rest or args.algo:
            raise ConfigError("--resume continues a run with its saved config; give no algorithm or fields")
        agent = th.resume(args.resume)
        print(f"resuming {agent.run_dir} at step {agent.global_step} of {agent.total_steps}")
        agent.learn(agent.total_steps)
    else:
        if not args.algo or not args.env:
            raise ConfigError("train needs ALGO and --env (or --resume RUN)")
        cls = get_algorithm(args.algo)
        fields = _parse_fields(cls, rest)
        agent = th.make(args.algo, env=args.env, seed=args.seed, config=args.config, **fields)
        agent.learn(args.steps)
    result = agent.evaluate(episodes=10)
    print(f"run folder: {agent.run_dir}")
    print(f"evaluation: {result}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import thorndike as th

    agent = th.load(args.path)
    result = agent.evaluate(episodes=args.episodes, deterministic=not args.stochastic)
    print(f"{agent.name} on {agent.env_spec}: {result}")
    print("returns:", ", ".join(f"{r:.1f}" for r in result.returns))
    if args.video:
        from thorndike.envs.video import record_gif

        path = Path(args.path)
        folder = (path if path.is_dir() else path.parent) / "videos"
        print(f"video: {record_gif(agent, folder / 'eval.gif')}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from thorndike.plot import learning_curves

    out = args.out or (Path(args.runs[0]) / "curve.png" if len(args.runs) == 1 else Path("curves.png"))
    print(learning_curves(args.runs, out))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from thorndike.registry import algorithms

    print(f"{'algorithm':<12} {'action spaces':<20} description")
    for name, spaces, doc in algorithms():
        print(f"{name:<12} {spaces:<20} {doc}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Train PPO on CartPole-v1 until solved, evaluate, write the curve and a GIF of the trained agent."""
    import thorndike as th
    from thorndike.envs.video import record_gif

    print("thorndike demo: PPO on CartPole-v1 until the deterministic evaluation mean reaches 475")
    start = time.perf_counter()
    agent = th.make("ppo", env="CartPole-v1", seed=args.seed, eval_every=8192, eval_episodes=10,
                    stop_return=475.0, run_root=args.run_root)
    agent.learn(args.steps)
    result = agent.evaluate(episodes=10)
    gif = record_gif(agent, agent.run_dir / "videos" / "cartpole.gif")
    print(f"trained for {agent.global_step} steps in {time.perf_counter() - start:.1f} s")
    print(f"evaluation (10 episodes, deterministic): {result}")
    print(f"run folder:     {agent.run_dir}")
    print(f"learning curve: {agent.run_dir / 'curve.png'}")
    print(f"video:          {gif}")
    if result.mean < 475:
        print("CartPole was not solved within the step budget", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thorndike", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="train PPO on CartPole until solved; write curve and video")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--steps", type=int, default=100_000, help="step budget")
    demo.add_argument("--run-root", default="runs")

    train = sub.add_parser("train", help="train an algorithm; any Config field is a flag (--lr 1e-3 ...)",
                           epilog="Config fields: see `thorndike train ALGO --env ID --help-fields`.")
    train.add_argument("algo", nargs="?")
    train.add_argument("--env")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--steps", type=int, default=100_000, help="total env steps")
    train.add_argument("--config", help="YAML file of config fields")
    train.add_argument("--resume", metavar="RUN", help="continue RUN from its newest valid checkpoint")
    train.add_argument("--help-fields", action="store_true", help="list the algorithm's config fields")

    ev = sub.add_parser("eval", help="evaluate a saved agent or run folder")
    ev.add_argument("path")
    ev.add_argument("--episodes", type=int, default=10)
    ev.add_argument("--stochastic", action="store_true", help="sample actions instead of the mode")
    ev.add_argument("--video", action="store_true", help="also write a GIF of one episode")

    plot = sub.add_parser("plot", help="plot learning curves of one or more runs")
    plot.add_argument("runs", nargs="+")
    plot.add_argument("--out")

    sub.add_parser("list", help="list algorithms and the action spaces each supports")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        if args.command == "train":
            if args.help_fields:
                from thorndike.registry import get_algorithm

                _field_parser(get_algorithm(args.algo or "ppo")).print_help()
                return 0
            return cmd_train(args, rest)
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return {"demo": cmd_demo, "eval": cmd_eval, "plot": cmd_plot, "list": cmd_list}[args.command](args)
    except (ConfigError, ValueError, FileNotFoundError, CheckpointError) as err:
        print(f"thorndike: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nthorndike: interrupted; the last checkpoint is intact (resume with `thorndike train --resume "
              "RUN`)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
