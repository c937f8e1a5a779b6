"""The shared optimisers take torch's own steps, and their statistics live in shared memory (also after a load)."""

from __future__ import annotations

import multiprocessing as mp

import pytest
import torch

from thorndike.core.shared_optim import SharedAdam, SharedRMSprop

CASES = [
    (lambda ps: SharedRMSprop(ps, lr=1e-2, alpha=0.9, eps=1e-5),
     lambda ps: torch.optim.RMSprop(ps, lr=1e-2, alpha=0.9, eps=1e-5)),
    (lambda ps: SharedAdam(ps, lr=1e-2, betas=(0.8, 0.9), eps=1e-6),
     lambda ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.8, 0.9), eps=1e-6)),
]


@pytest.mark.parametrize(("shared", "reference"), CASES, ids=["rmsprop", "adam"])
def test_steps_equal_torchs_optimiser(shared, reference) -> None:
    torch.manual_seed(0)
    a = torch.nn.Linear(3, 2)
    b = torch.nn.Linear(3, 2)
    b.load_state_dict(a.state_dict())
    opt_a, opt_b = shared(list(a.parameters())), reference(list(b.parameters()))
    for i in range(5):
        x = torch.randn(4, 3, generator=torch.Generator().manual_seed(i))
        for net, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            net(x).square().sum().backward()
            opt.step()
        for p, q in zip(a.parameters(), b.parameters(), strict=True):
            torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    assert int(opt_a.state[a.weight]["step"]) == 5


@pytest.mark.parametrize("make", [CASES[0][0], CASES[1][0]], ids=["rmsprop", "adam"])
def test_state_is_shared_from_the_start_and_after_a_load(make) -> None:
    net = torch.nn.Linear(2, 1)
    opt = make(list(net.parameters()))
    tensors = [v for s in opt.state.values() for v in s.values()]
    assert tensors and all(t.is_shared() for t in tensors)
    opt.load_state_dict(opt.state_dict())
    assert all(t.is_shared() for s in opt.state.values() for t in s.values())


def _step_in_child(opt: SharedRMSprop, param: torch.Tensor) -> None:
    param.grad = torch.ones_like(param)
    opt.step()


def test_a_step_in_another_process_moves_the_shared_statistics() -> None:
    param = torch.nn.Parameter(torch.zeros(3))
    param.data.share_memory_()
    opt = SharedRMSprop([param], lr=0.1, alpha=0.5, eps=1e-8)
    child = mp.get_context("fork").Process(target=_step_in_child, args=(opt, param))
    child.start()
    child.join(10)
    assert child.exitcode == 0
    # g = 0.5 * 1: seen here although the child took the step; theta moved by -0.1 / sqrt(0.5)
    torch.testing.assert_close(opt.state[param]["square_avg"], torch.full((3,), 0.5))
    torch.testing.assert_close(param.detach(), torch.full((3,), -0.1 / 0.5**0.5))
    assert int(opt.state[param]["step"]) == 1
