"""Preference learning on addition, end to end on a CPU: SFT warm start -> reward model -> RLHF-PPO, and DPO, with
the comparisons labelled by the hidden rule of ``thorndike.lm.preferences`` (closeness of the answer to the true sum,
minus 0.5 per character beyond its length), which no trainer ever calls.

1. ``sft``: the warm start (and every later run's frozen reference), on 2-digit addition demonstrations of which
   ``NOISE`` (30%) end in 1-3 junk characters (``+`` and ``=``): the flawed supervised data whose flaw the hidden rule
   penalises (and which the trainers must learn from the comparisons, never from the rule).
2. ``reward_model``: from the SFT weights, Bradley-Terry on pairs labelled by the hidden rule, half perturbed answers
   and half the SFT model's own samples (``pair_source="mixed"``); held-out pair accuracy on test-split prompts.
3. ``rlhf_ppo``: from the SFT weights, PPO against the LEARNED reward model (its score at the last token), a per-token
   KL penalty to the SFT reference and PPO-ptx. Claim: the HIDDEN score of the policy's completions rises while the
   KL to the reference stays bounded. A second run without the KL penalty (kl_coef=0) shows what the penalty bounds.
4. ``dpo``: from the SFT weights, on pairs of the SFT model's own samples (``pair_source="samples"``). Claim: the
   win rate of the policy's greedy completions against the reference's on held-out prompts, judged by the hidden
   rule, rises above 0.5.
5. ``scst`` (for reference, no preferences): from the SFT weights, with the task's verifier as the reward.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/lm_preferences.py [--seed 0] [--scale 1.0]

Writes benchmarks/results/lm_preferences.{json,md,png}; ``--scale`` multiplies every step budget.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
MODEL = dict(task="addition", task_size=2, d_model=64, n_layers=2, n_heads=4, max_new_tokens=7)
QUIET = dict(progress=False, tensorboard=False, pictures=False)
NOISE = 0.3
KL_COEF = 0.2
TARGET_KL = 0.4
# The RLHF-PPO runs: a fixed KL penalty, one adapted towards TARGET_KL nats per completion (Ziegler et al.), none.
PPO_RUNS = {"kl": dict(kl_coef=KL_COEF),
            "adaptive": dict(kl_coef=KL_COEF, adaptive_kl=True, target_kl=TARGET_KL, kl_horizon=1000),
            "no_kl": dict(kl_coef=0.0)}
STYLES = {"kl": ("C0", f"kl_coef={KL_COEF}"), "adaptive": ("C1", f"adaptive kl_coef, target {TARGET_KL}"),
          "no_kl": ("C3", "kl_coef=0 (no penalty)")}


def noisy_demonstrations(agent, noise: float):
    """``agent.demonstrations`` (an ``sft`` agent's) with a fraction ``noise`` of the demonstrations ending in 1-3
    junk characters, drawn with the agent's generator (so the run stays reproducible)."""
    import torch

    from thorndike.lm.preferences import JUNK, MAX_EXTRA

    def demonstrations(n: int):
        examples = agent.lm.sample_examples(n, agent.generator)
        draws = torch.rand(n, 2, generator=agent.generator, device=agent.generator.device).tolist()
        completions = []
        for example, (u, v) in zip(examples, draws):
            text = agent.lm.task.demonstration(example)
            if u < noise:
                junk = 1 + int(v * MAX_EXTRA)
                text += "".join(JUNK[(i + int(v * 997)) % len(JUNK)] for i in range(junk))
            completions.append(text)
        return agent.lm.join([e.prompt for e in examples], completions)

    return demonstrations


def columns(run_dir: Path, *names: str) -> dict[str, list[list[float]]]:
    """Each named column of progress.csv as [step, value] points, rows without a value (NaN) left out."""
    from thorndike.core.logger import read_progress

    progress = read_progress(run_dir)
    return {name: [[s, v] for s, v in zip(progress["step"], progress[name]) if not math.isnan(v)]
            for name in names if name in progress}


def main() -> None:
    import torch

    import thorndike as th

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scale", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    steps = {name: max(int(n * args.scale), 10) for name, n in
             dict(sft=1000, reward_model=1000, rlhf_ppo=300, dpo=400, scst=200).items()}
    root = tempfile.mkdtemp(prefix="thorndike-lm-preferences-")
    common = dict(seed=args.seed, run_root=root, **MODEL, **QUIET)
    results: dict = {"seed": args.seed, "steps": steps, "model": MODEL}
    timings = {}

    start = time.perf_counter()
    sft = th.make("sft", batch_size=64, lr=3e-3, log_every=100, eval_prompts=200, **common)
    sft.demonstrations = noisy_demonstrations(sft, NOISE)
    sft.learn(steps["sft"])
    timings["sft"] = time.perf_counter() - start
    results["sft_heldout_accuracy"] = sft.evaluate().mean
    print(f"sft: held-out accuracy {results['sft_heldout_accuracy']:.3f} ({timings['sft']:.0f} s)", flush=True)

    start = time.perf_counter()
    reward = th.make("reward_model", init_from=str(sft.run_dir), batch_size=32, lr=1e-3, log_every=50,
                     heldout_every=100, heldout_pairs=400, pair_source="mixed", **common)
    results["reward_model_pair_accuracy_before"] = reward.evaluate().mean
    reward.learn(steps["reward_model"])
    timings["reward_model"] = time.perf_counter() - start
    results["reward_model_pair_accuracy"] = reward.evaluate().mean
    results["reward_model_curve"] = columns(reward.run_dir, "loss", "heldout/pair_accuracy")
    print(f"reward model: held-out pair accuracy {results['reward_model_pair_accuracy']:.3f} "
          f"({timings['reward_model']:.0f} s)", flush=True)

    ppo_runs = {}
    for label, kl in PPO_RUNS.items():
        start = time.perf_counter()
        ppo = th.make("rlhf_ppo", init_from=str(sft.run_dir), reward_from=str(reward.run_dir), batch_size=64,
                      lr=5e-5, n_epochs=2, ptx_coef=0.2, ptx_batch_size=32, log_every=10, heldout_every=25,
                      eval_prompts=200, **kl, **common)
        before = ppo.heldout_metrics()  # the policy is the reference: its held-out hidden score at step 0
        ppo.learn(steps["rlhf_ppo"])
        timings[f"rlhf_ppo_{label}"] = time.perf_counter() - start
        curve = columns(ppo.run_dir, "hidden_score", "reward", "kl", "kl_coef", "heldout/hidden_score",
                        "heldout/accuracy", "heldout/win_rate")
        curve["heldout/hidden_score"].insert(0, [0.0, before["heldout/hidden_score"]])
        ppo_runs[label] = {"curve": curve, "final": {k: v[-1][1] for k, v in curve.items()},
                           "start": {"heldout/hidden_score": before["heldout/hidden_score"],
                                     "hidden_score": curve["hidden_score"][0][1], "kl": curve["kl"][0][1]},
                           "max_kl": max(v for _, v in curve["kl"])}
        print(f"rlhf_ppo ({label}): held-out hidden score {before['heldout/hidden_score']:.3f} -> "
              f"{ppo_runs[label]['final']['heldout/hidden_score']:.3f}, KL {ppo_runs[label]['final']['kl']:.3f} "
              f"(max {ppo_runs[label]['max_kl']:.3f}) ({timings[f'rlhf_ppo_{label}']:.0f} s)", flush=True)
    results["rlhf_ppo"] = ppo_runs

    start = time.perf_counter()
    dpo = th.make("dpo", init_from=str(sft.run_dir), batch_size=32, lr=1e-4, beta=0.1, nll_coef=1.0,
                  log_every=20, heldout_every=40, heldout_pairs=400, win_prompts=400, eval_prompts=200,
                  pair_source="samples", **common)
    dpo.learn(steps["dpo"])
    timings["dpo"] = time.perf_counter() - start
    curve = columns(dpo.run_dir, "loss", "margin", "heldout/pair_accuracy", "heldout/win_rate", "heldout/accuracy",
                    "heldout/hidden_score")
    curve["heldout/win_rate"].insert(0, [0.0, 0.5])  # at step 0 the policy is the reference
    results["dpo"] = {"curve": curve, "final": {k: v[-1][1] for k, v in curve.items()}}
    print(f"dpo: held-out win rate {results['dpo']['final']['heldout/win_rate']:.3f}, pair accuracy "
          f"{results['dpo']['final']['heldout/pair_accuracy']:.3f} ({timings['dpo']:.0f} s)", flush=True)
    # SCST from the same warm start, with the task's verifier (partial credit) as the reward: no preferences at all,
    # a reference point for what RL on a programmatic reward does in a similar budget.
    start = time.perf_counter()
    scst = th.make("scst", init_from=str(sft.run_dir), batch_size=32, samples=4, lr=1e-4, log_every=25,
                   heldout_every=50, eval_prompts=200, **common)
    scst.learn(steps["scst"])
    timings["scst"] = time.perf_counter() - start
    curve = columns(scst.run_dir, "reward/sample", "reward/greedy", "heldout/accuracy")
    results["scst"] = {"curve": curve, "final": {k: v[-1][1] for k, v in curve.items()},
                       "heldout_accuracy": scst.evaluate().mean}
    print(f"scst: held-out accuracy {results['sft_heldout_accuracy']:.3f} -> {results['scst']['heldout_accuracy']:.3f} "
          f"({timings['scst']:.0f} s)", flush=True)
    results["wall_s"] = {k: round(v, 1) for k, v in timings.items()}

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "lm_preferences.json").write_text(json.dumps(results, indent=1))
    plot(results, RESULTS / "lm_preferences.png")
    write_markdown(results, RESULTS / "lm_preferences.md")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(17, 3.8), dpi=110)
    for label, run in results["rlhf_ppo"].items():
        color, name = STYLES[label]
        axes[0].plot(*zip(*run["curve"]["heldout/hidden_score"]), "-o", color=color, markersize=3,
                     label=f"{name}: held-out greedy")
        axes[0].plot(*zip(*run["curve"]["hidden_score"]), ":", color=color, label=f"{name}: training samples")
        axes[1].plot(*zip(*run["curve"]["reward"]), "-", color=color, label=name)
        axes[2].plot(*zip(*run["curve"]["kl"]), "-", color=color, label=name)
    axes[0].set_title("RLHF-PPO: HIDDEN score (never seen by the trainer)", fontsize=9)
    axes[1].set_title("RLHF-PPO: LEARNED reward model's score (samples)", fontsize=9)
    axes[2].set_title("RLHF-PPO: KL(pi || pi_ref) per completion (nats)", fontsize=9)
    dpo = results["dpo"]["curve"]
    axes[3].plot(*zip(*dpo["heldout/win_rate"]), "-o", color="C2", markersize=3, label="win rate vs reference")
    axes[3].plot(*zip(*dpo["heldout/pair_accuracy"]), "-s", color="C4", markersize=3,
                 label="held-out pair accuracy (implicit reward)")
    axes[3].axhline(0.5, color="grey", lw=0.8, ls="--")
    axes[3].set_title("DPO: judged by the hidden rule on held-out prompts", fontsize=9)
    for ax in axes:
        ax.set_xlabel("training steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Preference learning on 2-digit addition from an SFT warm start (held-out accuracy "
                 f"{results['sft_heldout_accuracy']:.2f}); reward model's held-out pair accuracy "
                 f"{results['reward_model_pair_accuracy']:.2f}; seed {results['seed']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_markdown(results: dict, path: Path) -> None:
    dpo = results["dpo"]["final"]
    lines = [
        "# Preference learning on addition (benchmarks/lm_preferences.py)",
        "",
        f"2-digit addition, a {MODEL['n_layers']}-layer {MODEL['d_model']}-wide TinyTransformer, seed "
        f"{results['seed']}, on this machine's CPU (1 thread). Steps: {results['steps']}. The comparisons are "
        "labelled by the hidden rule of `thorndike.lm.preferences` (closeness of the answer to the true sum, "
        "-log10(1 + |v - s|), minus 0.5 per character beyond the true answer's length; 0 is the best score); no "
        "trainer calls it. Curves: `lm_preferences.png`.",
        "",
        "| stage | result | wall (s) |",
        "| --- | --- | --- |",
        f"| SFT warm start | held-out exact-match accuracy {results['sft_heldout_accuracy']:.3f} | "
        f"{results['wall_s']['sft']} |",
        f"| reward model (from SFT, mixed pairs) | held-out pair accuracy "
        f"{results['reward_model_pair_accuracy_before']:.3f} (zero head: every pair a tie) -> "
        f"{results['reward_model_pair_accuracy']:.3f} | {results['wall_s']['reward_model']} |",
    ]
    for label, run in results["rlhf_ppo"].items():
        lines.append(
            f"| RLHF-PPO, {STYLES[label][1]}, ptx_coef=0.2 | held-out hidden score "
            f"{run['start']['heldout/hidden_score']:.3f} -> {run['final']['heldout/hidden_score']:.3f} (best "
            f"{max(v for _, v in run['curve']['heldout/hidden_score']):.3f}); training samples' hidden score "
            f"{run['start']['hidden_score']:.3f} (first 10 steps) -> {run['final']['hidden_score']:.3f}; KL per "
            f"completion {run['start']['kl']:.3f} -> {run['final']['kl']:.3f} (max {run['max_kl']:.3f}; final kl_coef "
            f"{run['final']['kl_coef']:.3f}); held-out accuracy {run['final']['heldout/accuracy']:.3f}; win rate vs "
            f"reference {run['final']['heldout/win_rate']:.3f} | {results['wall_s'][f'rlhf_ppo_{label}']} |")
    lines += [
        f"| DPO (beta 0.1, nll_coef 1) | held-out win rate vs reference 0.5 -> {dpo['heldout/win_rate']:.3f}; "
        f"held-out pair accuracy of the implicit reward {dpo['heldout/pair_accuracy']:.3f}; held-out accuracy "
        f"{dpo['heldout/accuracy']:.3f}; hidden score {dpo['heldout/hidden_score']:.3f} | {results['wall_s']['dpo']} |",
        f"| SCST (the verifier's partial credit as reward, no preferences; for reference) | held-out exact-match "
        f"accuracy {results['sft_heldout_accuracy']:.3f} -> {results['scst']['heldout_accuracy']:.3f}; greedy "
        f"training reward {results['scst']['final']['reward/greedy']:.3f}, sampled "
        f"{results['scst']['final']['reward/sample']:.3f} | {results['wall_s']['scst']} |",
        "",
        "Held-out: greedy completions of the 200 (DPO: 400) fixed test-split prompts, which no trainer saw; the "
        "win rate counts a tie as one half, so 0.5 is 'no better than the reference'. Held-out pairs (the reward "
        "model's and DPO's pair accuracy) are perturbed answers on test-split prompts. The SFT data had "
        f"{NOISE:.0%} of its demonstrations end in 1-3 junk characters, which the hidden rule penalises.",
    ]
    path.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
