"""Action-value networks of the DQN family: noisy linear layers, the dueling head, and the Q-network builder.

Notes: 003 lecture 4. The DQN network maps a state to one value per action (F3 L381; F1 L65-L73 for the Atari frame
stack); the dueling architecture (F3 L506-L522) splits it into a state value and advantages,

    Q(s, a) = V(s) + (A(s, a) - (1 / |A|) sum_a' A(s, a')),

the mean advantage subtracted so that V and A are identifiable; Rainbow (F3 L524-L538) adds noisy networks and a
distributional output, one value per atom (C51) or per quantile (QR-DQN), dueling per atom.

Noisy networks (Fortunato et al. 2018, factorised Gaussian noise; the notes only name them, F3 L538): a linear layer
y = (mu_w + sigma_w * eps_w) x + mu_b + sigma_b * eps_b whose noise scales sigma are learned, so exploration comes
from the weights instead of epsilon-greedy. The noise is factorised: eps_w = f(eps_out) f(eps_in)^T and
eps_b = f(eps_out), with eps_in, eps_out standard normal and f(x) = sign(x) sqrt(|x|): p + q draws per layer
instead of p q.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import gymnasium as gym
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from thorndike.core.encoders import make_encoder
from thorndike.core.networks import layer_init

__all__ = ["DuelingHead", "NoisyLinear", "QNetwork", "dueling_combine", "q_network", "reset_noise"]


def scaled_noise(x: Tensor) -> Tensor:
    """f(x) = sign(x) sqrt(|x|), the factorised noise's transform of a standard normal draw."""
    return x.sign() * x.abs().sqrt()


class NoisyLinear(nn.Module):
    """A linear layer with learned factorised Gaussian noise on its weights and bias: [..., in] -> [..., out].

    Initialisation (the paper's, for factorised noise): mu_w, mu_b ~ U(-1/sqrt(in), 1/sqrt(in)) and
    sigma_w = sigma_b = sigma_0 / sqrt(in), sigma_0 = 0.5. The noise factors ``eps_in`` [in] and ``eps_out`` [out]
    (already passed through f) are buffers, so a checkpoint holds the noise in use; they change only in
    :meth:`reset_noise`, so every forward between two resets sees the same weights. In eval mode
    (``module.eval()``) the layer uses mu alone.
    """

    def __init__(self, in_features: int, out_features: int, sigma_0: float = 0.5) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"NoisyLinear needs positive sizes, got {in_features} -> {out_features}")
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight_mu = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias_mu = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        self.weight_sigma = nn.Parameter(torch.full((out_features, in_features), sigma_0 * bound))
        self.bias_sigma = nn.Parameter(torch.full((out_features,), sigma_0 * bound))
        self.register_buffer("eps_in", torch.zeros(in_features))
        self.register_buffer("eps_out", torch.zeros(out_features))
        self.reset_noise()

    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        """Draw new noise factors, from ``generator`` (on the layer's device) for a reproducible run."""
        device = self.eps_in.device
        self.eps_in.copy_(scaled_noise(torch.randn(self.in_features, generator=generator, device=device)))
        self.eps_out.copy_(scaled_noise(torch.randn(self.out_features, generator=generator, device=device)))

    def weight_and_bias(self) -> tuple[Tensor, Tensor]:
        """The weights and bias the forward uses: mu + sigma * eps when training, mu alone in eval mode."""
        if not self.training:
            return self.weight_mu, self.bias_mu
        weight = self.weight_mu + self.weight_sigma * torch.outer(self.eps_out, self.eps_in)
        return weight, self.bias_mu + self.bias_sigma * self.eps_out

    def forward(self, x: Tensor) -> Tensor:
        weight, bias = self.weight_and_bias()
        return F.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def linear(in_features: int, out_features: int, noisy: bool, gain: float = math.sqrt(2)) -> nn.Module:
    """A noisy layer with the paper's initialisation, or an orthogonally initialised plain one."""
    return NoisyLinear(in_features, out_features) if noisy else layer_init(nn.Linear(in_features, out_features), gain)


def reset_noise(module: nn.Module, generator: torch.Generator | None = None) -> None:
    """Resample the noise of every :class:`NoisyLinear` inside ``module`` (none: nothing happens)."""
    for layer in module.modules():
        if isinstance(layer, NoisyLinear):
            layer.reset_noise(generator)


def dueling_combine(value: Tensor, advantage: Tensor) -> Tensor:
    """Q = V + (A - mean_a A) (F3 L519): value ``[B, 1, ...]``, advantage ``[B, A, ...]`` -> Q ``[B, A, ...]``.

    With atoms (``[B, 1, N]`` and ``[B, A, N]``) the mean over actions is taken per atom, as in Rainbow.
    """
    return value + advantage - advantage.mean(1, keepdim=True)


class DuelingHead(nn.Module):
    """Two streams from shared features ``[B, in]``: V (``n_atoms`` outputs) and A (``n_actions * n_atoms``),
    combined by :func:`dueling_combine` into ``[B, n_actions]``, or ``[B, n_actions, n_atoms]`` when n_atoms > 1
    (logits per atom for C51, quantile values for QR-DQN).

    ``hidden_size``: one hidden ReLU layer of that width in each stream (the dueling paper's stream layer), or
    none (each stream a single linear layer). ``noisy``: every layer a :class:`NoisyLinear`.
    """

    def __init__(self, in_features: int, n_actions: int, n_atoms: int = 1, hidden_size: int | None = None,
                 noisy: bool = False) -> None:
        super().__init__()
        if n_actions < 1 or n_atoms < 1:
            raise ValueError(f"DuelingHead needs n_actions >= 1 and n_atoms >= 1, got {n_actions} and {n_atoms}")
        self.n_actions, self.n_atoms = n_actions, n_atoms
        self.value = stream(in_features, hidden_size, n_atoms, noisy)
        self.advantage = stream(in_features, hidden_size, n_actions * n_atoms, noisy)

    def streams(self, features: Tensor) -> tuple[Tensor, Tensor]:
        """V ``[B, 1, n_atoms]`` and A ``[B, n_actions, n_atoms]`` before they are combined."""
        batch = features.shape[0]
        value = self.value(features).view(batch, 1, self.n_atoms)
        return value, self.advantage(features).view(batch, self.n_actions, self.n_atoms)

    def forward(self, features: Tensor) -> Tensor:
        q = dueling_combine(*self.streams(features))
        return q.squeeze(-1) if self.n_atoms == 1 else q


def stream(in_features: int, hidden_size: int | None, out_features: int, noisy: bool) -> nn.Sequential:
    """[in] -> (hidden, ReLU) -> out; the output layer gain 1, as for a value."""
    if hidden_size is None:
        return nn.Sequential(linear(in_features, out_features, noisy, gain=1.0))
    return nn.Sequential(linear(in_features, hidden_size, noisy), nn.ReLU(), linear(hidden_size, out_features, noisy,
                                                                                     gain=1.0))


class QNetwork(nn.Module):
    """Observations ``[B, *storage_shape]`` -> Q ``[B, n_actions]``, or ``[B, n_actions, n_atoms]`` when
    n_atoms > 1 (logits per atom or quantile values: what they mean is the algorithm's business).

    Built by :func:`q_network`: the encoder, a ReLU torso, then a plain linear head or a :class:`DuelingHead`.
    """

    def __init__(self, encoder: nn.Module, torso: nn.Module, head: nn.Module, n_actions: int, n_atoms: int) -> None:
        super().__init__()
        self.encoder, self.torso, self.head = encoder, torso, head
        self.n_actions, self.n_atoms = n_actions, n_atoms
        self.noisy = any(isinstance(layer, NoisyLinear) for layer in self.modules())

    def forward(self, obs: Tensor) -> Tensor:
        out = self.head(self.torso(self.encoder(obs)))
        if self.n_atoms > 1 and out.dim() == 2:  # the plain head's flat [B, A * N]
            out = out.view(out.shape[0], self.n_actions, self.n_atoms)
        return out

    def reset_noise(self, generator: torch.Generator | None = None) -> None:
        """Resample every noisy layer's noise (nothing for a network without noisy layers)."""
        reset_noise(self, generator)


def q_network(observation_space: gym.Space, n_actions: int, hidden_sizes: Sequence[int] = (64, 64),
              dueling: bool = False, noisy: bool = False, n_atoms: int = 1) -> QNetwork:
    """The Q-network of DQN, double DQN, C51, QR-DQN and Rainbow.

    The torso is :func:`thorndike.core.encoders.make_encoder`'s encoder (flatten for vectors; the Nature CNN for
    image stacks, uint8 scaled inside, whose own 512-unit layer ends it) followed by ReLU layers of
    ``hidden_sizes``. Without ``dueling`` a linear layer maps the last features to ``n_actions * n_atoms`` outputs;
    with it, the last hidden layer is not shared but given to each stream of a :class:`DuelingHead` (so
    ``hidden_sizes=(64, 64)`` is one shared layer and a 64-unit layer per stream; the encoder alone is shared when
    there is a single hidden size). ``noisy`` makes every layer after the encoder a :class:`NoisyLinear` (Rainbow);
    the encoder's layers stay plain.
    """
    if n_actions < 1 or n_atoms < 1:
        raise ValueError(f"q_network needs n_actions >= 1 and n_atoms >= 1, got {n_actions} and {n_atoms}")
    if any(size < 1 for size in hidden_sizes):
        raise ValueError(f"hidden sizes must be positive, got {tuple(hidden_sizes)}")
    encoder = make_encoder(observation_space)
    shared = list(hidden_sizes[:-1]) if dueling and hidden_sizes else list(hidden_sizes)
    layers: list[nn.Module] = []
    width = encoder.out_features
    for size in shared:
        layers += [linear(width, size, noisy), nn.ReLU()]
        width = size
    if dueling:
        stream_size = hidden_sizes[-1] if hidden_sizes else None
        head: nn.Module = DuelingHead(width, n_actions, n_atoms, stream_size, noisy)
    else:
        head = linear(width, n_actions * n_atoms, noisy, gain=1.0)
    return QNetwork(encoder, nn.Sequential(*layers), head, n_actions, n_atoms)
