"""How fast the black-box policy searches are: whole populations as one batch against a loop over candidates.

Two measurements, side by side in one run, reported as ratios:

1. **Population throughput.** The same ``P`` linear policies each play one greedy CartPole-v1 episode (at most 500
   steps). Two populations: ``early``, random weights ~ N(0, 1) (a search's start: episodes of about 20 steps, a
   few of 500), and ``late``, small perturbations of a balancing policy (near convergence: episodes of hundreds of
   steps, where a search spends most of its env steps). Evaluated by

   - thorndike on its native batched torch env (:func:`thorndike.core.population.evaluate_population`: one batched
     matrix multiply per step for all candidates, all copies stepped as one tensor op, lockstep until the longest
     episode ends);
   - the same with ``compile=True`` (ten lockstep steps per call of a function compiled by ``torch.compile``; its
     compilation time is reported separately);
   - thorndike with ``backend="gymnasium"`` (the same batched policy, Gymnasium's vector env stepping the copies);
   - the plain loop: for each candidate, a Gymnasium env played step by step with a NumPy policy (the loop every
     tutorial writes);
   - EvoTorch's ``VecGymNE`` (its vectorised Gymnasium problem), where installed;
   - evosax's companion gymnax: CartPole in JAX, the rollout ``jit(vmap(scan))`` over the population (500 steps,
     no early exit, as the JAX libraries do), where installed; its compilation time is reported separately.

   Reported: population evaluations per second and the ratio to the plain loop (goal: >= 20x at P = 256).

2. **Wall time to solve CartPole-v1.** Each thorndike method with its tuned CartPole settings learns until the greedy
   evaluation of the policy it acts with (mean of 20 episodes) reaches 475, checked after every iteration, from
   ``th.make`` to the stop (goal: <= 10 s on this 2-core CPU). Beside them: the same algorithms with their
   population played by the plain loop (identical updates and accounting, only ``play`` replaced), EvoTorch's CEM
   (against ``param_cem``) and evosax's OpenAI-ES on gymnax (against ``es``), each stopping by the same criterion.

    .venv/bin/python benchmarks/search_speed.py [--populations 64 256 1024] [--seeds 0 1 2] [--quick]

The peers are optional (``pip install evotorch evosax gymnax six``); a missing one is a printed note and an empty
row, never an error. Run it with nothing else loading the CPU.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import thorndike as th
from thorndike.core.population import PopulationPolicy, evaluate_population

RESULTS = Path(__file__).parent / "results"
RUNS = "/tmp/thorndike-bench-runs"
ENV = "CartPole-v1"
SOLVED, EVAL_EPISODES, MAX_STEPS = 475.0, 20, 500
METHODS = ("hill_climbing", "param_cem", "es", "approx_cem")
QUIET = dict(progress=False, tensorboard=False, pictures=False, checkpoint_every=10**9, run_root=RUNS)


# ---- the plain loop ------------------------------------------------------------------------------------------------


def numpy_layers(policy: PopulationPolicy, weights: torch.Tensor) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Each candidate's layers as NumPy (W [in, out], b [out]) pairs."""
    layers = policy.unflatten(weights.float())
    return [[(w[p].numpy(), b[p].numpy()) for w, b in layers] for p in range(weights.shape[0])]


def plain_episode(env: gym.Env, layers: list[tuple[np.ndarray, np.ndarray]], max_steps: int) -> tuple[float, int]:
    """One greedy episode of one candidate, step by step (the loop of the tutorials)."""
    obs, _ = env.reset()
    total, steps = 0.0, 0
    for steps in range(1, max_steps + 1):  # noqa: B007 (steps is the episode length after the loop)
        x = obs.astype(np.float32)
        for i, (w, b) in enumerate(layers):
            x = x @ w + b
            if i < len(layers) - 1:
                x = np.tanh(x)
        obs, reward, terminated, truncated, _ = env.step(int(np.argmax(x)))
        total += float(reward)
        if terminated or truncated:
            break
    return total, steps


def plain_population(env: gym.Env, policy: PopulationPolicy, weights: torch.Tensor, episodes: int,
                     max_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns and lengths ``[P, episodes]`` of every candidate, one candidate and one episode after another."""
    results = [[plain_episode(env, layers, max_steps) for _ in range(episodes)]
               for layers in numpy_layers(policy, weights)]
    returns = torch.tensor([[r for r, _ in row] for row in results], dtype=torch.float64)
    lengths = torch.tensor([[n for _, n in row] for row in results], dtype=torch.int64)
    return returns, lengths


def use_plain_loop(agent: Any, seed: int) -> None:
    """Replace a population search's batched ``play`` by the plain loop (same updates, same step accounting)."""
    env = gym.make(ENV)
    env.reset(seed=seed)
    config = agent.config

    def play(candidates: torch.Tensor) -> torch.Tensor:
        R, C, k = candidates.shape[0], candidates.shape[1], config.episodes_per_candidate
        returns, lengths = plain_population(env, agent.population, candidates.reshape(R * C, -1), k,
                                            config.max_episode_steps)
        agent.global_step += int(lengths.max()) * C * k
        agent.ledger.record({"done": torch.ones(lengths.numel(), dtype=torch.bool),
                             "episode_return": returns.view(-1), "episode_length": lengths.view(-1)},
                            agent.global_step)
        return returns.mean(1).view(R, C)

    agent.play = play


# ---- 1. population throughput ------------------------------------------------------------------------------------


def timed(fn, repeats: int) -> float:
    """Best of ``repeats`` wall times of ``fn()`` (seconds)."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def population_weights(policy: PopulationPolicy, population: int, kind: str) -> torch.Tensor:
    """``[P, n_params]`` linear CartPole policies: ``early``, N(0, 1) weights (a search's first population: most
    episodes last about 20 steps, a few lucky ones 500); ``late``, a balancing policy (push right when
    0.1 x_dot + theta + theta_dot > 0) plus N(0, 0.05^2) noise (a population near convergence: most episodes last
    hundreds of steps)."""
    generator = torch.Generator().manual_seed(population)
    if kind == "early":
        return torch.randn((population, policy.n_params), generator=generator)
    centre = torch.zeros(policy.n_params)
    w = centre[:policy.obs_dim * policy.out_dim].view(policy.obs_dim, policy.out_dim)  # layout: W [in, out], then b
    w[1, 1], w[2, 1], w[3, 1] = 0.1, 1.0, 1.0
    return centre + 0.05 * torch.randn((population, policy.n_params), generator=generator)


def throughput(population: int, repeats: int, kind: str) -> list[dict[str, Any]]:
    probe = gym.make(ENV)
    policy = PopulationPolicy(probe.observation_space, probe.action_space, 0)
    weights = population_weights(policy, population, kind)
    rows: list[dict[str, Any]] = []

    def add(name: str, seconds: float | None, mean_return: float | None, note: str = "") -> None:
        rows.append({"P": population, "population": kind, "implementation": name, "seconds": seconds,
                     "evaluations_per_s": population / seconds if seconds else None,
                     "mean_return": mean_return, "note": note})

    for backend in ("torch", "gymnasium"):
        envs = th.envs.make(ENV, n_envs=population, seed=0, backend=backend)
        result: dict[str, torch.Tensor] = {}

        def ours(envs=envs, result=result) -> None:
            result["returns"], _ = evaluate_population(envs, policy, weights, 1, MAX_STEPS)

        add("thorndike native" if backend == "torch" else "thorndike on Gymnasium vector env",
            timed(ours, repeats), float(result["returns"].mean()))
        if backend == "torch":
            def compiled(envs=envs, result=result) -> None:
                result["returns"], _ = evaluate_population(envs, policy, weights, 1, MAX_STEPS, compile=True)

            compile_s = timed(compiled, 1)  # the first call compiles
            add("thorndike native, compile=True", timed(compiled, repeats), float(result["returns"].mean()),
                f"first call (compile) {compile_s:.2f} s")
        envs.close()

    plain: dict[str, torch.Tensor] = {}
    probe.reset(seed=0)

    def loop() -> None:
        plain["returns"], _ = plain_population(probe, policy, weights, 1, MAX_STEPS)

    add("plain loop (Gymnasium, NumPy policy)", timed(loop, max(1, repeats // 2)), float(plain["returns"].mean()))

    try:
        from evotorch import SolutionBatch
        from evotorch.neuroevolution import VecGymNE
    except ImportError:
        add("EvoTorch VecGymNE", None, None, "not installed")
    else:
        problem = VecGymNE(ENV, "Linear(obs_length, act_length)", num_actors=0)
        # EvoTorch's Linear is torch's (W [out, in], then b): the same policies in its layout.
        w, b = policy.unflatten(weights)[0]
        their = torch.cat([w.transpose(1, 2).reshape(population, -1), b], dim=1)
        batch = SolutionBatch(problem, popsize=population)
        batch.set_values(their)
        seconds = timed(lambda: problem.evaluate(batch), repeats)
        add("EvoTorch VecGymNE", seconds, float(batch.evals[:, 0].mean()))

    jax_rollout = gymnax_rollout()
    if jax_rollout is None:
        add("evosax/gymnax jit(vmap(scan))", None, None, "not installed")
    else:
        import jax
        import jax.numpy as jnp

        w, b = (jnp.asarray(t.numpy()) for t in policy.unflatten(weights)[0])
        keys = jax.random.split(jax.random.PRNGKey(0), population)
        start = time.perf_counter()
        jax_rollout(keys, w, b).block_until_ready()
        compile_s = time.perf_counter() - start
        out: dict[str, Any] = {}

        def run_jax() -> None:
            out["returns"] = jax_rollout(keys, w, b).block_until_ready()

        add("evosax/gymnax jit(vmap(scan))", timed(run_jax, repeats), float(out["returns"].mean()),
            f"first call (compile) {compile_s:.2f} s")
    plain_s = next(r["seconds"] for r in rows if r["implementation"].startswith("plain"))
    for row in rows:
        row["ratio_to_plain_loop"] = plain_s / row["seconds"] if row["seconds"] else None
    return rows


def gymnax_rollout():
    """``f(keys [P], W [P, in, out], b [P, out]) -> returns [P]``: greedy CartPole episodes in JAX, or None."""
    try:
        import gymnax
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    env, params = gymnax.make(ENV)

    def episode(key, w, b):
        key, reset_key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)

        def step(carry, _):
            obs, state, key, total, alive = carry
            key, step_key = jax.random.split(key)
            action = jnp.argmax(obs @ w + b)
            obs, state, reward, terminated, truncated, _ = env.step(step_key, state, action, params)
            total = total + reward * alive
            done = jnp.logical_or(terminated, truncated).astype(jnp.float32)
            return (obs, state, key, total, alive * (1.0 - done)), None

        init = (obs, state, key, jnp.float32(0.0), jnp.float32(1.0))
        (_, _, _, total, _), _ = jax.lax.scan(step, init, None, length=MAX_STEPS)
        return total

    return jax.jit(jax.vmap(episode))


# ---- 2. wall time to solve ---------------------------------------------------------------------------------------


def solve_thorndike(method: str, seed: int, budget: int, plain: bool) -> dict[str, Any]:
    """Time from ``th.make`` to the greedy evaluation reaching 475 (the tuned CartPole settings)."""
    start = time.perf_counter()
    agent = th.make(method, env=ENV, seed=seed, eval_every=1, eval_episodes=EVAL_EPISODES, stop_return=SOLVED,
                    backend="gymnasium" if plain else "auto", **QUIET)
    if plain:
        use_plain_loop(agent, seed)
    agent.learn(budget)
    seconds = time.perf_counter() - start
    with open(agent.run_dir / "progress.csv") as f:
        last_eval = float(list(csv.DictReader(f))[-1]["eval_mean"])
    solved = last_eval >= SOLVED
    return {"seconds": seconds, "solved": solved, "steps": agent.global_step, "episodes": len(agent.ledger)}


def solve_evotorch_cem(seed: int, time_limit: float) -> dict[str, Any] | None:
    """EvoTorch's CEM on its VecGymNE (linear policy; param_cem's P = 50, elites 20%, initial std 1)."""
    try:
        from evotorch.algorithms import CEM
        from evotorch.neuroevolution import VecGymNE
    except ImportError:
        return None
    torch.manual_seed(seed)
    start = time.perf_counter()
    problem = VecGymNE(ENV, "Linear(obs_length, act_length)", num_actors=0)
    searcher = CEM(problem, popsize=50, parenthood_ratio=0.2, stdev_init=1.0)
    env = gym.make(ENV)
    env.reset(seed=seed)
    generations = 0
    while time.perf_counter() - start < time_limit:
        searcher.step()
        generations += 1
        center = searcher.status["center"]
        module = problem.to_policy(center)
        returns = []
        for _ in range(EVAL_EPISODES):
            obs, _ = env.reset()
            total, done = 0.0, False
            while not done:
                with torch.no_grad():
                    action = int(module(torch.as_tensor(obs, dtype=torch.float32)).argmax())
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
        if statistics.fmean(returns) >= SOLVED:
            return {"seconds": time.perf_counter() - start, "solved": True, "generations": generations}
    return {"seconds": time.perf_counter() - start, "solved": False, "generations": generations}


def solve_evosax_es(seed: int, time_limit: float) -> dict[str, Any] | None:
    """evosax's OpenAI-ES on gymnax CartPole (es's settings: P = 10, sigma 0.2, Adam 0.1), compilation included."""
    rollout = gymnax_rollout()
    if rollout is None:
        return None
    import jax
    import jax.numpy as jnp
    import optax
    from evosax.algorithms import Open_ES

    start = time.perf_counter()
    n_in, n_out = 4, 2
    size = n_in * n_out + n_out
    strategy = Open_ES(population_size=10, solution=jnp.zeros(size), optimizer=optax.adam(0.1),
                       std_schedule=optax.constant_schedule(0.2))
    params = strategy.default_params
    key = jax.random.PRNGKey(seed)
    key, init_key = jax.random.split(key)
    state = strategy.init(init_key, jnp.zeros(size), params)

    def split(flat):
        return flat[..., :n_in * n_out].reshape(*flat.shape[:-1], n_in, n_out), flat[..., n_in * n_out:]

    generations = 0
    while time.perf_counter() - start < time_limit:
        key, ask_key, eval_key, tell_key, test_key = jax.random.split(key, 5)
        population, state = strategy.ask(ask_key, state, params)
        w, b = split(population)
        returns = rollout(jax.random.split(eval_key, population.shape[0]), w, b)
        state, _ = strategy.tell(tell_key, population, -returns, state, params)  # evosax minimises
        generations += 1
        w, b = split(jnp.broadcast_to(state.mean, (EVAL_EPISODES, size)))
        if float(rollout(jax.random.split(test_key, EVAL_EPISODES), w, b).mean()) >= SOLVED:
            return {"seconds": time.perf_counter() - start, "solved": True, "generations": generations}
    return {"seconds": time.perf_counter() - start, "solved": False, "generations": generations}


def median_row(name: str, results: list[dict[str, Any] | None]) -> dict[str, Any]:
    done = [r for r in results if r is not None]
    if not done:
        return {"implementation": name, "note": "not installed"}
    return {"implementation": name, "median_s": statistics.median(r["seconds"] for r in done),
            "per_seed_s": [round(r["seconds"], 2) for r in done], "solved": sum(r["solved"] for r in done),
            "seeds": len(done)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--populations", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--kinds", nargs="+", default=["early", "late"], choices=["early", "late"],
                        help="populations to time: early (random weights) and late (near a solution)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="*", default=list(METHODS), help="none: throughput only")
    parser.add_argument("--budget", type=int, default=2_000_000, help="env steps per run before giving up")
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds before a peer gives up")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="P = 256 and one seed only")
    args = parser.parse_args()
    if args.quick:
        args.populations, args.seeds, args.repeats = [256], args.seeds[:1], 1
    torch.set_num_threads(1)

    throughput_rows = [row for kind in args.kinds for p in args.populations
                       for row in throughput(p, args.repeats, kind)]
    lines = ["## Population throughput (CartPole-v1, one greedy episode per candidate)", "",
             "| population | P | implementation | s per population | evaluations/s | x plain loop | mean return "
             "| note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in throughput_rows:
        if r["seconds"] is None:
            lines.append(f"| {r['population']} | {r['P']} | {r['implementation']} | - | - | - | - | {r['note']} |")
        else:
            lines.append(f"| {r['population']} | {r['P']} | {r['implementation']} | {r['seconds']:.3f} | "
                         f"{r['evaluations_per_s']:.0f} | {r['ratio_to_plain_loop']:.1f} | {r['mean_return']:.1f} | "
                         f"{r['note']} |")
    print("\n" + "\n".join(lines))

    registered = {name for name, _, _ in th.algorithms()}
    solve_rows = []
    for method in args.methods:
        if method not in registered:
            print(f"note: {method} is not registered; skipped")
            continue
        solve_rows.append(median_row(f"thorndike {method}",
                                     [solve_thorndike(method, s, args.budget, False) for s in args.seeds]))
        if method != "approx_cem":  # plays a population of weight vectors, so the plain loop can play it too
            solve_rows.append(median_row(f"{method}, plain loop",
                                         [solve_thorndike(method, s, args.budget, True) for s in args.seeds]))
        if method == "param_cem":
            solve_rows.append(median_row("EvoTorch CEM (VecGymNE)",
                                         [solve_evotorch_cem(s, args.time_limit) for s in args.seeds]))
        if method == "es":
            solve_rows.append(median_row("evosax Open_ES (gymnax, jit)",
                                         [solve_evosax_es(s, args.time_limit) for s in args.seeds]))
    solve_lines = ["## Wall time to solve CartPole-v1 (greedy mean of 20 episodes >= 475), seconds", "",
                   "| implementation | median s | per seed | solved |", "|---|---|---|---|"]
    for r in solve_rows:
        if "median_s" not in r:
            solve_lines.append(f"| {r['implementation']} | - | - | {r['note']} |")
        else:
            solve_lines.append(f"| {r['implementation']} | {r['median_s']:.2f} | {r['per_seed_s']} | "
                               f"{r['solved']}/{r['seeds']} |")
    if solve_rows:
        print("\n" + "\n".join(solve_lines))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "search_speed.md").write_text(
        f"Command: `python benchmarks/search_speed.py {' '.join(sys.argv[1:])}` (torch threads: 1)\n\n"
        + "\n".join(lines) + ("\n\n" + "\n".join(solve_lines) if solve_rows else "") + "\n")
    (RESULTS / "search_speed.json").write_text(json.dumps({"throughput": throughput_rows, "solve": solve_rows,
                                                           "seeds": args.seeds}, indent=1))


if __name__ == "__main__":
    main()
