"""Direct preference optimisation (DPO): fine-tune the policy on preference pairs directly, with no reward model and
no sampling, against a frozen reference.

Lecture-notes concept: 003 lecture 8, "DPO (Direct Preference Optimization)" (heading only in the notes); the loss is
Rafailov et al. 2023's. The policy that maximises E[r] - beta KL(pi || pi_ref) is pi_ref exp(r / beta) / Z(x), so
r = beta log(pi / pi_ref) + beta log Z(x): put into the Bradley-Terry likelihood of the pairs, Z cancels and

    L(theta) = -E log sigmoid(beta [(log pi(y_c|x) - log pi_ref(y_c|x)) - (log pi(y_r|x) - log pi_ref(y_r|x))])

(:func:`~thorndike.lm.losses.dpo_loss`); ``nll_coef`` > 0 adds the chosen completions' negative log-likelihood per
token (DPO + NLL, Pang et al. 2024), since pure DPO only widens the margin and may do so by lowering the chosen's
probability too, moving mass to completions no pair contains. A step is one Adam update on ``batch_size`` pairs
labelled by the hidden rule (:mod:`thorndike.lm.preferences`). The log has the implicit rewards beta log(pi / pi_ref)
of the chosen and rejected completions and their margin; the held-out columns have the preference accuracy of the
implicit reward on held-out pairs and the WIN RATE of the policy's greedy completions against the reference's on
held-out prompts, judged by the hidden rule (0.5: no better than the reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from thorndike.config import check, describe
from thorndike.lm.common import Completions, LMAgent, LMParts, lm_curves, refuse_env
from thorndike.lm.losses import dpo_implicit_rewards, dpo_loss, preference_accuracy, sequence_logprob
from thorndike.lm.model import sequence_logprobs
from thorndike.lm.preferences import PreferenceConfig, PreferenceData, due, win_rate

__all__ = ["DPO", "DPOConfig", "pair_logprobs"]


@dataclass
class DPOConfig(PreferenceConfig):
    """DPO's fields: the LM's, the hidden rule's and its pairs' (:class:`~thorndike.lm.preferences.PreferenceConfig`),
    and the KL strength beta."""

    beta: float = describe("DPO's beta: the strength of the implicit KL to the reference (smaller lets the policy "
                           "move further)", 0.1)
    nll_coef: float = describe("weight of the chosen completions' negative log-likelihood per token added to the loss "
                               "(DPO + NLL, Pang et al. 2024): keeps the chosen likely, where pure DPO (0) may lower "
                               "both sides", 0.0)
    win_prompts: int = describe("held-out prompts on which the win rate against the reference is judged", 200,
                                at_most=10_000)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.beta > 0, "beta", self.beta, "> 0")
        check(self.nll_coef >= 0, "nll_coef", self.nll_coef, ">= 0 (0: pure DPO)")
        check(self.win_prompts >= 1, "win_prompts", self.win_prompts, "at least 1")


def pair_logprobs(model: nn.Module, batch: Completions) -> tuple[Tensor, Tensor]:
    """log pi(y|x) of the chosen and of the rejected completions ``[B]`` each, from one forward pass over a pair
    batch (:meth:`~thorndike.lm.preferences.PreferenceData.batch`: chosen rows, then rejected rows)."""
    logp = sequence_logprob(sequence_logprobs(model, batch.ids, batch.attention_mask, batch.completion_mask),
                            batch.token_mask)
    chosen, rejected = logp.chunk(2)
    return chosen, rejected


class DPO(LMAgent):
    """Direct preference optimisation: the Bradley-Terry loss of the implicit reward beta log(pi / pi_ref)."""

    name = "dpo"
    Config = DPOConfig

    def build(self) -> None:
        refuse_env(self)
        self.lm = LMParts(self.config, self.device)
        self.reference = self.lm.reference()  # the warm start's weights (init_from), frozen
        self.data = PreferenceData(self.lm, self.config)
        self.optimizer = self.lm.optimizer()
        self.components = {**self.lm.components(), "reference": self.reference, "optimizer": self.optimizer}

    def pair_loss(self, batch: Completions) -> tuple[Tensor, Tensor, Tensor]:
        """The mean DPO loss of a pair batch and the implicit rewards of its chosen and rejected completions."""
        policy_chosen, policy_rejected = pair_logprobs(self.lm.model, batch)
        with torch.no_grad():
            ref_chosen, ref_rejected = pair_logprobs(self.reference, batch)
        beta = self.config.beta
        loss = dpo_loss(policy_chosen, policy_rejected, ref_chosen, ref_rejected, beta).mean()
        if self.config.nll_coef > 0:  # the chosen completions' NLL per token (rows 0..B-1 of the pair batch)
            tokens = batch.token_mask.chunk(2)[0].sum().clamp_min(1)
            loss = loss + self.config.nll_coef * -policy_chosen.sum() / tokens
        chosen, rejected = dpo_implicit_rewards(policy_chosen.detach(), policy_rejected.detach(), ref_chosen,
                                                ref_rejected, beta)
        return loss, chosen, rejected

    def learn(self, total_steps: int) -> DPO:
        config = self.config
        self.lm.model.train()
        with self.session(total_steps) as run:
            while run.running():
                start = self.global_step
                stats: dict[str, list[Tensor]] = {"loss": [], "reward/chosen": [], "reward/rejected": [],
                                                  "margin": [], "accuracy": []}
                for _ in range(self.steps_this_iteration(config.log_every)):
                    batch = self.data.batch(self.data.sample(config.batch_size, self.generator))  # collect
                    loss, chosen, rejected = self.pair_loss(batch)  # targets: the labelled pairs
                    self.lm.clip_and_step(self.optimizer, loss, self.global_step)  # update
                    for key, value in (("loss", loss.detach()), ("reward/chosen", chosen.mean()),
                                       ("reward/rejected", rejected.mean()), ("margin", (chosen - rejected).mean()),
                                       ("accuracy", preference_accuracy(chosen, rejected))):
                        stats[key].append(value)
                    self.global_step += 1
                row = {key: float(torch.stack(values).mean()) for key, values in stats.items()}
                self.check_finite("DPO loss", torch.tensor(row["loss"]))
                row.update(self.heldout_columns(start))
                run.log(row)  # log
        return self

    def heldout_columns(self, start: int) -> dict[str, float]:
        """Held-out preference accuracy of the implicit reward, the win rate against the reference and the held-out
        exact-match accuracy, when a multiple of ``heldout_every`` was passed this row (NaN otherwise)."""
        every = self.config.heldout_every
        if every == 0:
            return {}
        columns = ("heldout/pair_accuracy", "heldout/win_rate", "heldout/accuracy", "heldout/hidden_score")
        if not due(every, start, self.global_step):
            return dict.fromkeys(columns, float("nan"))
        return dict(zip(columns, self.preference_metrics(), strict=True))

    @torch.no_grad()
    def preference_metrics(self) -> tuple[float, float, float, float]:
        """(held-out pair accuracy of the implicit reward, win rate against the reference, held-out exact-match
        accuracy, the hidden rule's mean score of the policy's greedy completions), on the fixed held-out sets."""
        model = self.lm.model
        was_training = model.training
        model.eval()
        try:
            def implicit(batch: Completions) -> Tensor:
                chosen, rejected = pair_logprobs(model, batch)
                ref_chosen, ref_rejected = pair_logprobs(self.reference, batch)
                return torch.cat(dpo_implicit_rewards(chosen, rejected, ref_chosen, ref_rejected, self.config.beta))

            chosen, rejected = self.data.heldout_scores(implicit)
            prompts = [e.prompt for e in self.lm.heldout(self.config.win_prompts)]
            mine = self.data.greedy_completions(model, prompts)
            theirs = self.data.greedy_completions(self.reference, prompts)
        finally:
            model.train(was_training)
        accuracy = sum(self.lm.task.is_correct(p, c) for p, c in zip(prompts, mine)) / len(prompts)
        return (float(preference_accuracy(chosen, rejected)), win_rate(mine, theirs, self.data.rule, prompts),
                accuracy, self.data.hidden_score(prompts, mine))

    # ---- what the lifecycle and users ask of an LM ---------------------------------------------------------------

    def write_pictures(self, run_dir: Path) -> list[Path]:
        return [lm_curves(run_dir, run_dir / "curve.png", ("loss", "margin", "heldout/pair_accuracy",
                                                           "heldout/win_rate"))]
