"""Tutorial: RL for language models on addition, from supervised fine-tuning to GRPO, RLHF-PPO and DPO.

Run it as a script (``--quick`` is the few-second version the test suite runs):

    .venv/bin/python docs/tutorials/lm.py [--quick] [--seed 0] [--out runs/tutorial-lm]

It writes ``lm_curves.png`` into ``--out``: held-out exact-match accuracy of SFT and of GRPO from the SFT warm start,
the hidden preference score of RLHF-PPO with its KL to the reference, and DPO's win rate against the reference.

The path the notes draw (003's workshop notes: pre-training -> SFT -> preference fine-tuning -> RLVR / RLHF; lecture
8: the reward model, PPO-ptx, DPO, self-critical training), at a size that runs on a laptop CPU in minutes: a
character-level transformer built in code with random weights, and a task whose answers a program can check.
Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import thorndike as th  # noqa: E402
from thorndike.core.logger import read_progress  # noqa: E402
from thorndike.lm.losses import dpo_loss, group_advantages  # noqa: E402

# %% [markdown]
# ## The task and the model
#
# ``thorndike.lm.tasks.addition(2)`` makes prompts like ``"12+45="`` whose answer (``"57"``) a program checks:
# a *verifiable reward*. Its reward gives partial credit, the digits right counted from the units, so a nearly
# right answer earns more than a wrong one. One prompt in ten (by a hash of its text) belongs to the held-out
# test split and is never trained on. The model is ``TinyTransformer``: a decoder-only transformer reading one
# character per token, here with about a hundred thousand weights.
#
# ## Supervised fine-tuning: ``sft``
#
# The warm start: maximise log pi(answer | prompt) on demonstrations (the task's right answers), prompt tokens
# masked out of the loss. Stopped early here, it leaves plenty for RL to do.
#
# ## RL with verifiable rewards: ``grpo``
#
# GRPO (DeepSeekMath) samples G completions o_1..o_G of each prompt, scores them with the verifier, and weighs each
# completion's tokens by its advantage within its own group, A_i = (r_i - mean(r)) / std(r): a completion is judged
# against its siblings on the same prompt, so no critic is needed. The update is PPO's clipped ratio per token,
# minus beta times an estimate of KL(pi || pi_ref) that keeps the policy near the warm start. (The notes describe
# the groups as "all possible actions"; a group is the G completions of one prompt: INVENTORY E36.)
#
# ## Preferences: ``reward_model``, ``rlhf_ppo`` and ``dpo``
#
# Here no program says what is right; a hidden rule prefers one completion to another (closeness to the true sum,
# minus a cost per extra character), and the learners see only its labels on pairs. RLHF learns a reward model
# r_phi from the pairs with the Bradley-Terry loss -log sigmoid(r_phi(chosen) - r_phi(rejected)), then runs PPO on
# sequences against it with a per-token KL penalty to the reference (PPO-ptx mixes the SFT loss back in). DPO skips
# the reward model: its loss -log sigmoid(beta ((log pi - log pi_ref)(chosen) - (log pi - log pi_ref)(rejected)))
# trains the policy on the pairs directly.
#
# What to expect at this budget (seed 0, the full run): SFT reaches about 0.6 held-out exact match and GRPO lifts it
# to about 0.77 within its first few dozen steps, mostly by sharpening what the warm start already samples; RLHF-PPO
# raises the hidden score with the KL to the reference held near its target; DPO barely moves the win rate here,
# because a correct answer from this warm start is already what the rule prefers. ``benchmarks/lm_preferences.py``
# gives the preference learners a warm start with a flaw the rule penalises (answers trailed by junk characters),
# where DPO's win rate rises to about 0.58; ``benchmarks/lm_grpo_addition.py`` runs GRPO on 3-digit addition.


def grpo_advantages_example() -> torch.Tensor:
    """Two prompts, four completions each: rewards become advantages within each prompt's group; a group whose
    completions all earned the same (the second) teaches nothing."""
    return group_advantages(torch.tensor([[1.0, 0.0, 0.5, 0.5], [0.3, 0.3, 0.3, 0.3]]))


def dpo_example() -> torch.Tensor:
    """DPO's loss for one pair whose chosen completion the policy already favours more than the reference does."""
    return dpo_loss(torch.tensor([-2.0]), torch.tensor([-5.0]), torch.tensor([-3.0]), torch.tensor([-4.0]), 0.1)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description="RL for language models on addition: SFT, GRPO, RLHF-PPO, DPO")
    parser.add_argument("--quick", action="store_true", help="tiny budgets (seconds), as the test suite runs it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/tutorial-lm")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = ({"sft": 20, "grpo": 4, "reward_model": 10, "rlhf_ppo": 4, "dpo": 4} if args.quick else
             {"sft": 1000, "grpo": 200, "reward_model": 500, "rlhf_ppo": 200, "dpo": 300})
    every = 2 if args.quick else 25
    # 2-digit addition and a 2-layer, 64-wide TinyTransformer: each stage takes seconds to a minute on one core
    model = {"task": "addition", "task_size": 2, "d_model": 64, "n_layers": 2, "n_heads": 4, "max_new_tokens": 7}
    common = {**model, "seed": args.seed, "progress": False, "tensorboard": False, "pictures": False,
              "threads": 1, "eval_prompts": 32 if args.quick else 200}
    print("group advantages of two groups of four:", grpo_advantages_example().tolist())
    print(f"DPO loss of a pair the policy already prefers: {float(dpo_example()):.4f} (log 2 = 0.6931 when policy "
          "and reference agree)")
    with tempfile.TemporaryDirectory() as scratch:
        root = scratch if args.quick else str(out / "runs")
        sft = th.make("sft", run_root=root, lr=3e-3, batch_size=64, heldout_every=every * 4, **common)
        sft.learn(steps["sft"])
        print(f"SFT: held-out exact match {sft.evaluate().mean:.2f}")
        warm = {"init_from": str(sft.run_dir), "run_root": root, **common}
        # a constant lr here (the tuned 3-digit config decays its larger one over 1,500 steps)
        grpo = th.make("grpo", batch_size=32, group_size=8, lr=1e-4, lr_final_fraction=None, heldout_every=every,
                       **warm)
        grpo.learn(steps["grpo"])
        print(f"GRPO from the SFT warm start: held-out exact match {grpo.evaluate().mean:.2f}")
        reward_model = th.make("reward_model", batch_size=32, lr=1e-3, heldout_every=every * 2, **warm)
        reward_model.learn(steps["reward_model"])
        print(f"reward model: held-out pair accuracy {reward_model.evaluate().mean:.2f}")
        rlhf = th.make("rlhf_ppo", reward_from=str(reward_model.run_dir), batch_size=64, lr=1e-4, adaptive_kl=True,
                       target_kl=0.4, ptx_coef=0.2, heldout_every=every, **warm)
        rlhf.learn(steps["rlhf_ppo"])
        dpo = th.make("dpo", batch_size=32, lr=1e-4, beta=0.1, nll_coef=1.0, heldout_every=every, **warm)
        dpo.learn(steps["dpo"])
        hidden = column(rlhf.run_dir, "heldout/hidden_score")[1]
        win = column(dpo.run_dir, "heldout/win_rate")[1]
        if hidden and win:
            print(f"RLHF-PPO: held-out hidden score {hidden[0]:.3f} -> {hidden[-1]:.3f}; DPO: win rate against the "
                  f"reference {win[-1]:.2f} (0.5: no better)")
        figure = plot(sft.run_dir, grpo.run_dir, rlhf.run_dir, dpo.run_dir, out / "lm_curves.png")
    print(f"figure: {figure}")
    return str(figure)


def column(run_dir: Path, name: str) -> tuple[list[float], list[float]]:
    """(steps, values) of a progress.csv column, NaN rows (not measured that row) left out."""
    progress = read_progress(run_dir)
    pairs = [(s, v) for s, v in zip(progress["step"], progress.get(name, []), strict=False) if not math.isnan(v)]
    return [s for s, _ in pairs], [v for _, v in pairs]


def plot(sft_dir: Path, grpo_dir: Path, rlhf_dir: Path, dpo_dir: Path, path: Path) -> Path:
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    sft_steps, sft_acc = column(sft_dir, "heldout/accuracy")
    grpo_steps, grpo_acc = column(grpo_dir, "heldout/accuracy")
    last = sft_steps[-1] if sft_steps else 0
    axes[0].plot(sft_steps, sft_acc, "o-", label="SFT")
    start = [(last, sft_acc[-1])] if sft_acc else []  # GRPO starts from SFT's last weights
    axes[0].plot([x for x, _ in start] + [last + s for s in grpo_steps], [y for _, y in start] + grpo_acc, "o-",
                 label="GRPO from the SFT warm start")
    axes[0].set(xlabel="step", ylabel="held-out exact match", title="Addition: SFT, then RLVR (GRPO)", ylim=(0, 1))
    axes[0].legend()
    steps, hidden = column(rlhf_dir, "heldout/hidden_score")
    kl_steps, kl = column(rlhf_dir, "kl")
    axes[1].plot(steps, hidden, "o-", color="C2", label="hidden score (held out)")
    twin = axes[1].twinx()
    twin.plot(kl_steps, kl, color="C3", label="KL to the reference")
    twin.set_ylabel("KL (nats)")
    axes[1].set(xlabel="step", ylabel="hidden rule's score", title="RLHF-PPO with a learned reward model")
    axes[1].legend(loc="upper left")
    twin.legend(loc="lower right")
    steps, win = column(dpo_dir, "heldout/win_rate")
    axes[2].plot(steps, win, "o-", color="C4")
    axes[2].axhline(0.5, color="grey", linestyle=":")
    axes[2].set(xlabel="step", ylabel="win rate vs the reference", title="DPO", ylim=(0, 1))
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


if __name__ == "__main__":
    main()
