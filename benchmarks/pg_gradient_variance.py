"""The variance of REINFORCE's gradient estimate, variant by variant, on one fixed policy.

    .venv/bin/python benchmarks/pg_gradient_variance.py [--batches 400] [--episodes 16] [--quick]

Writes benchmarks/results/pg_gradient_variance.{png,json,md}.

The estimators (004 "REINFORCE" to "credit assignment"; 003 lecture 6; 002 part 3) differ only in the weight A_t
of grad log pi(a_t | s_t): the episode's total return R(tau), the reward-to-go G_t, G_t minus a baseline (the
batch's mean, or a learned V(s_t)), and that last one standardised over the batch. Each batch of m episodes gives
one estimate g_hat = 1/m sum_i sum_t grad log pi(a_t | s_t) A_t of grad J. Here the policy is held fixed and many
independent batches are played; every variant is computed from the SAME batches (common random numbers), with the
REINFORCE agent's own machinery: ``collect`` plays the m episodes, ``targets`` computes the weights
(``episode_weights`` with the variant's returns, baseline and normalisation), and ``update`` with both learning
rates at 0 leaves the policy and V where they are and its gradient in ``.grad`` (the loss is -g_hat).

Two problems:

- the small episodic MDP of ``tests/policy_gradient/test_reinforce.py`` (3 states and a terminal one, 2 actions,
  gamma = 1), as a ``TabularMDP``: the exact grad J comes from autograd through the DP solution
  J = start . (I - P_pi)^-1 r_pi with pi(. | s) the agent's network on every state;
- CartPole-v1 (native env) with a policy trained by REINFORCE for a few thousand steps: the reference gradient is the
  mean of a separate large sample of reward-to-go - V estimates (unbiased, the least noisy unbiased variant).

V for the baseline is the agent's critic, fitted to the fixed policy's returns first (the agent's own regression
steps, with the policy's learning rate at 0).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

RESULTS = Path(__file__).parent / "results"
QUIET = dict(progress=False, tensorboard=False, pictures=False)

# name: (returns, baseline, normalize), the REINFORCE config fields of each variant
VARIANTS: dict[str, tuple[str, str, bool]] = {
    "total return": ("total", "none", False),
    "reward-to-go": ("reward_to_go", "none", False),
    "reward-to-go - mean": ("reward_to_go", "mean", False),
    "reward-to-go - V": ("reward_to_go", "value", False),
    "reward-to-go - V, normalised": ("reward_to_go", "value", True),
}
UNBIASED = ("total return", "reward-to-go", "reward-to-go - V")  # the mean baseline and normalising use the batch


def small_episodic_mdp() -> Any:
    """The MDP of test_reinforce.py (same generator, same numbers) as a TabularMDP: states 0-2, terminal state 3."""
    from thorndike.envs.tabular import TabularMDP

    g = torch.Generator().manual_seed(3)
    S, A = 3, 2
    to_states = torch.rand(S, A, S, generator=g, dtype=torch.float64)
    to_states = 0.7 * to_states / to_states.sum(-1, keepdim=True)
    P = torch.zeros(S + 1, A, S + 1, dtype=torch.float64)
    P[:S, :, :S] = to_states
    P[:S, :, S] = 0.3  # every step ends the episode with probability 0.3
    P[S, :, S] = 1.0  # the terminal state is absorbing
    R = torch.zeros(S + 1, A, dtype=torch.float64)
    R[:S] = torch.randn(S, A, generator=g, dtype=torch.float64)
    start = torch.tensor([0.5, 0.3, 0.2, 0.0], dtype=torch.float64)
    return TabularMDP(P, R, terminal=[S], start=start, gamma=1.0)


def policy_parameters(agent: Any) -> list[torch.nn.Parameter]:
    """The policy's parameters (the actor, and the log std for Box actions): all but the critic's."""
    critic = set(agent.model.critic.parameters())
    return [p for p in agent.model.parameters() if p not in critic]


def freeze(agent: Any, value_lr: float = 0.0) -> None:
    """Learning rate 0 for the policy (and ``value_lr`` for V): ``update`` then computes without moving pi."""
    for group in agent.policy_optimizer.param_groups:
        group["lr"] = 0.0
    for group in agent.value_optimizer.param_groups:
        group["lr"] = value_lr


def fit_value(agent: Any, iterations: int) -> float:
    """Regress the agent's V on the fixed policy's returns with its own update; the last batch's value loss."""
    freeze(agent, value_lr=agent.config.value_lr)
    stats: dict[str, float] = {}
    for _ in range(iterations):
        sessions = agent.collect()
        weights, value_targets = agent.targets(sessions)
        stats = agent.update(sessions, weights, value_targets)
    freeze(agent)
    return stats["value_loss"]


def estimate(agent: Any, sessions: Any) -> torch.Tensor:
    """The agent's g_hat on these episodes: its weights (``targets``), its loss and backward (``update`` at lr 0)."""
    weights, value_targets = agent.targets(sessions)
    agent.update(sessions, weights, value_targets)
    return -torch.cat([p.grad.reshape(-1) for p in policy_parameters(agent)]).double()  # the loss is -g_hat


def variant_agents(base: Any, env: Any, make: dict[str, Any]) -> dict[str, Any]:
    """One frozen REINFORCE agent per variant, each with ``base``'s policy and V."""
    import thorndike as th

    agents = {}
    for name, (returns, baseline, normalize) in VARIANTS.items():
        agent = th.make("reinforce", env=env, returns=returns, baseline=baseline, normalize=normalize, **make)
        agent.model.load_state_dict(base.model.state_dict())
        freeze(agent)
        agents[name] = agent
    return agents


def measure(base: Any, agents: dict[str, Any], batches: int) -> dict[str, torch.Tensor]:
    """``batches`` independent batches played by ``base``; every variant's estimate on each -> [batches, P]."""
    before = [p.detach().clone() for p in base.model.parameters()]
    estimates: dict[str, list[torch.Tensor]] = {name: [] for name in agents}
    for _ in range(batches):
        sessions = base.collect()
        for name, agent in agents.items():
            estimates[name].append(estimate(agent, sessions))
    for agent in agents.values():  # lr 0 must have left every network exactly where it was
        assert all(torch.equal(p, q) for p, q in zip(agent.model.parameters(), before, strict=True))
    return {name: torch.stack(values) for name, values in estimates.items()}


def summarise(samples: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """Per-batch estimate statistics against the reference gradient."""
    mean = samples.mean(0)
    total_variance = float(samples.var(0).sum())  # trace of the covariance of one batch's estimate
    cosines = torch.nn.functional.cosine_similarity(samples, reference.unsqueeze(0), dim=1)
    distance = float((mean - reference).norm())
    return {
        "total_variance": total_variance,
        "mean_norm": float(mean.norm()),
        "relative_variance": total_variance / float(mean.square().sum()),
        "mean_distance_to_reference": distance,
        # for an unbiased estimator E||mean - grad||^2 = tr(Cov) / n: a ratio near 1 is what no bias looks like
        "distance_over_noise": distance / math.sqrt(total_variance / len(samples)),
        "mean_cosine_to_reference": float(torch.nn.functional.cosine_similarity(mean, reference, dim=0)),
        "batch_cosine_to_reference": float(cosines.mean()),
        "mean_norm_over_reference_norm": float(mean.norm() / reference.norm()),
    }


def exact_gradient(agent: Any, mdp: Any) -> torch.Tensor:
    """grad J of the agent's policy on ``mdp``: autograd through J = start . (I - P_pi)^-1 r_pi (non-terminal)."""
    states = torch.arange(mdp.n_states)
    pi = agent.model.distribution(states).probs.double()
    P_pi, r_pi = mdp.policy_model(pi)
    keep = ~mdp.terminal
    V = torch.linalg.solve(torch.eye(int(keep.sum()), dtype=torch.float64) - P_pi[keep][:, keep], r_pi[keep])
    J = mdp.start[keep] @ V
    grads = torch.autograd.grad(J, policy_parameters(agent))
    return torch.cat([g.reshape(-1) for g in grads]).double()


def run_problem(name: str, args: argparse.Namespace, run_root: str) -> dict[str, Any]:
    import thorndike as th

    start = time.perf_counter()
    if name == "small MDP":
        env: Any = small_episodic_mdp()
        make = dict(seed=0, n_episodes=args.episodes, gamma=1.0, hidden_sizes=(16,), run_root=run_root, **QUIET)
        base = th.make("reinforce", env=env, **make)
        # the untrained network's policy: near-uniform, the test's kind of fixed softmax policy
        note = title = "untrained policy (near-uniform)"
        value_iterations = 100 if args.quick else 600
    else:
        env = "CartPole-v1"
        make = dict(seed=0, n_episodes=args.episodes, hidden_sizes=(64,), run_root=run_root, **QUIET)
        base = th.make("reinforce", env=env, **make)
        base.learn(args.train_steps)  # the defaults: reward-to-go - V, normalised
        note = title = f"REINFORCE-trained for {base.global_step} steps"
        value_iterations = 50 if args.quick else 300
    value_loss = fit_value(base, value_iterations)
    agents = variant_agents(base, env, make)
    returns = base.evaluate(episodes=50, deterministic=False, seed=12345)
    note += f", stochastic return {returns.mean:.1f} +- {returns.std:.1f} (50 episodes)"
    samples = measure(base, agents, args.batches)
    if name == "small MDP":
        reference = exact_gradient(base, env)
        reference_note = "exact grad J (DP solution, autograd)"
    else:
        reference_samples = measure(base, {"reward-to-go - V": agents["reward-to-go - V"]}, args.reference_batches)
        reference = reference_samples["reward-to-go - V"].mean(0)
        n = args.reference_batches
        reference_note = f"mean of {n} further batches ({n * args.episodes:,} episodes) of reward-to-go - V"
    stats = {variant: summarise(values, reference) for variant, values in samples.items()}
    return dict(problem=name, title=title, policy=note, reference=reference_note,
                reference_norm=float(reference.norm()), value_loss_after_fit=value_loss,
                n_parameters=int(reference.numel()), batches=args.batches,
                episodes_per_batch=args.episodes, wall_s=round(time.perf_counter() - start, 1), variants=stats)


SHORT = {"total return": "R(tau)", "reward-to-go": "G_t", "reward-to-go - mean": "G_t - mean",
         "reward-to-go - V": "G_t - V(s_t)", "reward-to-go - V, normalised": "G_t - V(s_t)\nnormalised"}


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(VARIANTS)
    colors = [f"C{i}" for i in range(len(names))]
    panels = [("total_variance", "tr Cov(g_hat) of one batch (log)", True),
              ("relative_variance", "tr Cov(g_hat) / ||E g_hat||^2 (log)", True),
              ("batch_cosine_to_reference", "mean cosine(g_hat, reference) of one batch", False)]
    fig, axes = plt.subplots(len(results), len(panels), figsize=(13, 4.1 * len(results)), dpi=110, squeeze=False)
    for row, result in zip(axes, results, strict=True):
        for ax, (key, label, log) in zip(row, panels, strict=True):
            values = [result["variants"][n][key] for n in names]
            # normalising rescales the gradient: its raw variance is on another scale (hatched)
            hatches = ["//" if n.endswith("normalised") and key == "total_variance" else "" for n in names]
            bars = ax.bar(range(len(names)), values, color=colors, hatch=hatches, edgecolor="white")
            if log:
                ax.set_yscale("log")
            else:
                ax.set_ylim(min(0.0, min(values) - 0.05), 1.0)
            for bar, value in zip(bars, values, strict=True):
                ax.annotate(f"{value:.3g}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=7)
            ax.set_xticks(range(len(names)), [SHORT[n] for n in names], fontsize=7.5)
            ax.set_ylabel(label, fontsize=8)
            ax.grid(axis="y", alpha=0.3, which="both")
        row[0].set_title(f"{result['problem']}: {result['title']}", fontsize=9, loc="left")
        row[1].set_title(f"m = {result['episodes_per_batch']} episodes per batch, {result['batches']} batches",
                         fontsize=9)
        row[2].set_title(f"reference: {result['reference'].split(' (')[0]}", fontsize=9)
    fig.suptitle("REINFORCE's gradient estimate on one fixed policy, by weight A_t of grad log pi "
                 "(hatched: normalised, another scale)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def markdown(results: list[dict[str, Any]], command: str) -> str:
    lines = ["# The variance of REINFORCE's gradient estimate by variant", "",
             f"Command: `{command}`. Written by `benchmarks/pg_gradient_variance.py` (its docstring says how).", "",
             "Each batch of m episodes gives one estimate g_hat of grad J; every variant is computed on the same "
             "batches of one fixed policy. Columns: `tr Cov` the total variance of one batch's estimate (trace of its "
             "covariance over the batches); `rel. var.` that over the squared norm of the estimates' mean "
             "(scale-free); "
             "`|mean|/|ref|` the mean's norm over the reference's; `dist/noise` the distance of the mean from the "
             "reference over sqrt(tr Cov / batches), its expected size without bias (about 1 when unbiased, on the "
             "MDP where the reference is exact; on CartPole the reference has noise of its own); `cos(mean, ref)` and "
             "`cos per batch` the cosine of the mean, and the mean cosine of a single batch's estimate, to the "
             "reference.", "",
             "**Normalisation is not the same estimator.** Standardising the weights over the batch, (A - mu) / "
             "sigma, divides the gradient by the batch's sigma of the weights, so its scale is another one (the "
             "`|mean|/|ref|` column) and its raw variance cannot be compared with the others; it is also biased "
             "(mu and sigma come from the same batch, and the mean baseline likewise). The fair comparisons are the "
             "scale-free columns: the relative variance and the cosines. The same holds for the mean baseline's "
             "small bias (the batch mean includes each episode's own return).", ""]
    for result in results:
        lines += [f"## {result['problem']}", "",
                  f"Policy: {result['policy']}. Reference: {result['reference']} "
                  f"(norm {result['reference_norm']:.4g}). "
                  f"{result['n_parameters']} policy parameters; {result['batches']} batches of "
                  f"{result['episodes_per_batch']} episodes; V's squared error after its fit "
                  f"{result['value_loss_after_fit']:.4g}; {result['wall_s']} s.", "",
                  "| variant | tr Cov | rel. var. | abs(mean)/abs(ref) | dist/noise | cos(mean, ref) | cos per batch |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for name, s in result["variants"].items():
            lines.append(f"| {name} | {s['total_variance']:.4g} | {s['relative_variance']:.4g} | "
                         f"{s['mean_norm_over_reference_norm']:.3f} | {s['distance_over_noise']:.2f} | "
                         f"{s['mean_cosine_to_reference']:.4f} | {s['batch_cosine_to_reference']:.3f} |")
        v = result["variants"]
        base, scale = v["total return"], v["reward-to-go - V, normalised"]["mean_norm_over_reference_norm"]
        lines += ["", "Against the total return: tr Cov x" + ", x".join(
            f"{v[n]['total_variance'] / base['total_variance']:.3g} ({n})" for n in list(VARIANTS)[1:4]) +
            "; relative variance x" + ", x".join(
            f"{v[n]['relative_variance'] / base['relative_variance']:.3g} ({n})" for n in list(VARIANTS)[1:]) +
            f". The normalised estimate's mean is {scale:.3g}"
            " times the reference's length.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=400, help="independent batches per problem")
    parser.add_argument("--reference-batches", type=int, default=800, help="CartPole: batches for the reference")
    parser.add_argument("--episodes", type=int, default=16, help="episodes m per batch")
    parser.add_argument("--train-steps", type=int, default=15_000, help="CartPole: REINFORCE steps before fixing pi")
    parser.add_argument("--problems", nargs="+", default=["small MDP", "CartPole-v1"])
    parser.add_argument("--quick", action="store_true", help="few batches, to try the script")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    if args.quick:
        args.batches, args.reference_batches = 40, 40
    torch.set_num_threads(1)
    run_root = tempfile.mkdtemp(prefix="thorndike-pg-variance-")
    results = []
    for problem in args.problems:
        results.append(run_problem(problem, args, run_root))
        print(json.dumps(results[-1], indent=1), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pg_gradient_variance.json").write_text(json.dumps(results, indent=1) + "\n")
    command = ("python benchmarks/pg_gradient_variance.py" + (" --quick" if args.quick else "") +
               f" --batches {args.batches} --reference-batches {args.reference_batches} --episodes {args.episodes}"
               f" --train-steps {args.train_steps}")
    (out / "pg_gradient_variance.md").write_text(markdown(results, command))
    plot(results, out / "pg_gradient_variance.png")
    print(markdown(results, command))


if __name__ == "__main__":
    main()
