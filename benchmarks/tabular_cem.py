"""Tabular CEM learning curves on FrozenLake 4x4 (non-slippery) and Taxi-v4, many runs in one agent each.

    .venv/bin/python benchmarks/tabular_cem.py [--frozen-lake-iterations 30] [--taxi-iterations 120] [--plot-only]

For every iteration and run it records the mean session return, the elite threshold, and the exact value (policy
evaluation on the env's model, gamma 0.99) from the start distribution of the greedy policy and of the stochastic
policy matrix itself; the DP optimum (value iteration) is drawn as a line. Variants: FrozenLake ranked by the
discounted score (gamma 0.99) and by the notes' plain sum (gamma 1); Taxi with the elites of the last 3 iterations
remembered (notes 003 L99) and without memory. Writes benchmarks/results/tabular_cem.{png,json}
(``--plot-only`` redraws the PNG from the JSON).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import thorndike as th  # noqa: E402
from thorndike.envs import toy_text  # noqa: E402
from thorndike.planning import value_iteration  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def run(name: str, env, mdp, iterations: int, seed: int, run_root: str, **fields) -> dict:
    """Learn ``iterations`` iterations, recording the exact values after every update."""
    agent = th.make("cem", env=env, seed=seed, run_root=run_root, progress=False, tensorboard=False, **fields)
    start = mdp.start
    greedy, stochastic = [], []
    update = agent.update

    def recording_update(counts: torch.Tensor) -> None:
        update(counts)
        greedy.append(agent.exact_values() @ start)
        stochastic.append(agent.exact_values(policy=agent.policy_matrix) @ start)

    agent.update = recording_update
    began = time.perf_counter()
    # Steps per iteration vary (sessions shorten as the policy improves): learn one iteration at a time.
    while agent.iteration < iterations:
        agent.learn(total_steps=agent.global_step + 1)
    wall = time.perf_counter() - began
    curves = {field: agent.curves.matrix(field) for field in ("return_mean", "threshold", "step")}
    curves["greedy_value"] = torch.stack(greedy)
    curves["stochastic_value"] = torch.stack(stochastic)
    return {"name": name, "config": {k: v for k, v in fields.items()}, "seed": seed, "wall_s": round(wall, 1),
            "curves": curves}


FIELDS = ("return_mean", "threshold", "greedy_value", "stochastic_value")


def band(ax, values: torch.Tensor, color: str, label: str, style: str = "-") -> None:
    """Mean over runs as a line, min to max over runs as a shaded band; ``values`` is [iterations, runs]."""
    x = torch.arange(1, values.shape[0] + 1)
    ax.plot(x, values.mean(1), style, color=color, label=label, lw=1.6)
    ax.fill_between(x, values.amin(1), values.amax(1), color=color, alpha=0.18, lw=0)


def each_run(ax, values: torch.Tensor, color: str, label: str) -> None:
    """Every run as a thin dashed line (for variants whose runs split into groups, where a mean misleads)."""
    x = torch.arange(1, values.shape[0] + 1)
    for r in range(values.shape[1]):
        ax.plot(x, values[:, r], "--", color=color, lw=0.8, alpha=0.7, label=label if r == 0 else None)


def summary(result: dict) -> dict:
    c = result["curves"]
    return {"name": result["name"], "config": result["config"], "seed": result["seed"], "wall_s": result["wall_s"],
            "runs": c["return_mean"].shape[1], "iterations": c["return_mean"].shape[0],
            "steps_per_run": int(c["step"][-1, 0]),
            "final_per_run": {k: [round(v, 4) for v in c[k][-1].tolist()] for k in FIELDS},
            # [iteration][run]
            "curves": {k: [[round(v, 4) for v in row] for row in c[k].tolist()] for k in FIELDS}}


def compute(args: argparse.Namespace) -> dict:
    torch.set_num_threads(1)
    run_root = tempfile.mkdtemp(prefix="thorndike-cem-")
    lake = toy_text.frozen_lake(is_slippery=False)
    taxi = th.envs.tabular_model("Taxi-v4")
    optimum = {
        "FrozenLake": {"return": float(lake.start @ value_iteration(lake, gamma=1.0).V),
                       "value_0.99": float(lake.start @ value_iteration(lake).V)},
        "Taxi": {"return": float(taxi.start @ value_iteration(taxi, gamma=1.0).V),
                 "value_0.99": float(taxi.start @ value_iteration(taxi).V)},
    }
    lake_fields = dict(n_runs=20, n_sessions=100, elite_percentile=70, smoothing=0.5, keep_iterations=3)
    taxi_fields = dict(n_runs=10, n_sessions=250, elite_percentile=50, smoothing=0.5)
    results = [
        run("FrozenLake gamma=0.99", lake, lake, args.frozen_lake_iterations, args.seed, run_root, gamma=0.99,
            **lake_fields),
        run("FrozenLake gamma=1", lake, lake, args.frozen_lake_iterations, args.seed, run_root, gamma=1.0,
            **lake_fields),
        run("Taxi keep_iterations=3", "Taxi-v4", taxi, args.taxi_iterations, args.seed, run_root, keep_iterations=3,
            **taxi_fields),
        run("Taxi keep_iterations=1", "Taxi-v4", taxi, args.taxi_iterations, args.seed, run_root, keep_iterations=1,
            **taxi_fields),
    ]
    for r in results:
        print(r["name"], f"{r['wall_s']} s", "final session return per run:",
              [round(v, 2) for v in r["curves"]["return_mean"][-1].tolist()], flush=True)
    return {"command": "python benchmarks/tabular_cem.py", "torch": torch.__version__, "optimum": optimum,
            "results": [summary(r) for r in results]}


def plot(payload: dict, path: Path) -> None:
    optimum = payload["optimum"]
    curves = {r["name"]: {k: torch.tensor(v, dtype=torch.float64) for k, v in r["curves"].items()}
              for r in payload["results"]}
    lake, lake_plain = curves["FrozenLake gamma=0.99"], curves["FrozenLake gamma=1"]
    taxi, taxi_plain = curves["Taxi keep_iterations=3"], curves["Taxi keep_iterations=1"]
    lake_runs, taxi_runs = lake["return_mean"].shape[1], taxi["return_mean"].shape[1]

    fig, axes = plt.subplots(2, 2, figsize=(14, 10))
    ax = axes[0, 0]
    band(ax, lake["return_mean"], "C0", "mean session return (ranked by gamma 0.99 score)")
    band(ax, lake["threshold"], "C1", "elite threshold (gamma 0.99 score)")
    band(ax, lake_plain["return_mean"], "C2", "mean session return (ranked by plain return, gamma 1)", "--")
    ax.axhline(optimum["FrozenLake"]["return"], color="k", ls=":", lw=1, label="DP optimum return (1)")
    ax.axhline(optimum["FrozenLake"]["value_0.99"], color="grey", ls="-.", lw=1,
               label=f"DP optimum gamma 0.99 score ({optimum['FrozenLake']['value_0.99']:.3f})")
    ax.set(title=f"FrozenLake 4x4 non-slippery: sessions ({lake_runs} runs x 100)", xlabel="iteration",
           ylabel="return / score", ylim=(-0.03, 1.08))
    ax.legend(fontsize=8, loc="lower right")

    ax = axes[0, 1]
    band(ax, lake["greedy_value"], "C0", "greedy policy (gamma 0.99 ranking)")
    band(ax, lake["stochastic_value"], "C1", "stochastic policy (gamma 0.99 ranking)")
    band(ax, lake_plain["greedy_value"], "C2", "greedy policy (gamma 1 ranking; each run 0 or 0.951)", "--")
    band(ax, lake_plain["stochastic_value"], "C3", "stochastic policy (gamma 1 ranking)", "--")
    ax.axhline(optimum["FrozenLake"]["value_0.99"], color="k", ls=":", lw=1, label="V*(start), value iteration")
    ax.set(title="FrozenLake: exact V(start) with gamma 0.99", xlabel="iteration", ylabel="V(start)",
           ylim=(-0.03, 1.0))
    ax.legend(fontsize=8, loc="lower right")

    ax = axes[1, 0]
    band(ax, taxi["return_mean"], "C0", "mean session return (elites of 3 iterations)")
    band(ax, taxi["threshold"], "C1", "elite threshold (50th percentile; 3 iterations)")
    each_run(ax, taxi_plain["return_mean"], "C2", "mean session return, each run (no memory: 1 iteration)")
    ax.axhline(optimum["Taxi"]["return"], color="k", ls=":", lw=1,
               label=f"DP optimum mean return ({optimum['Taxi']['return']:.2f})")
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylim(-5000, 30)  # room below the curves for the legend
    ax.set(title=f"Taxi-v4: sessions ({taxi_runs} runs x 250)", xlabel="iteration",
           ylabel="undiscounted return (symlog axis)")
    ax.legend(fontsize=8, loc="lower right")

    ax = axes[1, 1]
    band(ax, taxi["greedy_value"], "C0", "greedy policy (3 iterations)")
    band(ax, taxi["stochastic_value"], "C1", "stochastic policy (3 iterations)")
    each_run(ax, taxi_plain["stochastic_value"], "C2", "stochastic policy, each run (1 iteration)")
    ax.axhline(optimum["Taxi"]["value_0.99"], color="k", ls=":", lw=1,
               label=f"V* averaged over starts ({optimum['Taxi']['value_0.99']:.2f})")
    ax.set_yscale("symlog", linthresh=10)
    ax.set_ylim(-5000, 30)
    ax.set(title="Taxi: exact value averaged over start states, gamma 0.99", xlabel="iteration",
           ylabel="E_start V(s) (symlog axis)")
    ax.legend(fontsize=8, loc="lower right")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
    fig.suptitle("Tabular cross-entropy method ('cem'), seed 0: solid lines = mean over runs, bands = min to max "
                 "over runs", fontsize=12)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frozen-lake-iterations", type=int, default=30)
    parser.add_argument("--taxi-iterations", type=int, default=120)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from the saved JSON")
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    data = RESULTS / "tabular_cem.json"
    if args.plot_only:
        payload = json.loads(data.read_text())
    else:
        payload = compute(args)
        data.write_text(json.dumps(payload))
    plot(payload, RESULTS / "tabular_cem.png")
    print("wrote", RESULTS / "tabular_cem.png", data)


if __name__ == "__main__":
    main()
