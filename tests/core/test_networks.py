import copy
import math

import torch
from torch import nn

from thorndike.core.networks import LeanAdam, NatureCNN, adam, layer_init, mlp


def test_layer_init_orthogonal_and_bias():
    layer = layer_init(nn.Linear(32, 32), gain=math.sqrt(2), bias=0.5)
    w = layer.weight.detach().double()
    # orthogonal Q scaled by gain: W W^T = gain^2 I = 2 I
    torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(32, dtype=torch.float64), atol=1e-5, rtol=0)
    assert torch.equal(layer.bias.detach(), torch.full((32,), 0.5))


def test_layer_init_returns_same_layer_and_handles_no_bias():
    layer = nn.Linear(4, 3, bias=False)
    assert layer_init(layer, gain=1.0) is layer
    # 3x4 with orthonormal rows: W W^T = I
    w = layer.weight.detach()
    torch.testing.assert_close(w @ w.T, torch.eye(3), atol=1e-5, rtol=0)


def test_mlp_structure_and_gains():
    net = mlp([64, 64, 64, 2], activation=nn.ReLU, output_gain=0.01)
    kinds = [type(m) for m in net]
    assert kinds == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
    for hidden in (net[0], net[2]):  # square hidden layers: W W^T = 2 I
        w = hidden.weight.detach()
        torch.testing.assert_close(w @ w.T, 2.0 * torch.eye(64), atol=1e-4, rtol=0)
        assert torch.equal(hidden.bias.detach(), torch.zeros(64))
    w = net[4].weight.detach()  # 2x64, orthonormal rows * .01: W W^T = 1e-4 I
    torch.testing.assert_close(w @ w.T, 1e-4 * torch.eye(2), atol=1e-8, rtol=0)


def test_mlp_output_shape_and_default_activation():
    net = mlp([5, 16, 3])
    assert isinstance(net[1], nn.Tanh) and len(net) == 3
    assert net(torch.randn(7, 5)).shape == (7, 3)
    assert net(torch.randn(2, 7, 5)).shape == (2, 7, 3)


def test_mlp_forward_equals_the_sequential_one_bit_for_bit():
    # MLP runs each layer's forward directly: the same numbers, values and gradients, as nn.Sequential's call, and
    # the same state_dict keys (checkpoints of either load into the other).
    torch.manual_seed(0)
    for activation in (nn.Tanh, nn.ReLU):
        net = mlp([4, 32, 32, 2], activation)
        plain = nn.Sequential(*net)
        x = torch.randn(16, 4, requires_grad=True)
        out, ref = net(x), nn.Sequential.forward(plain, x)
        assert torch.equal(out, ref)
        (grad,) = torch.autograd.grad(out.square().sum(), x)
        (ref_grad,) = torch.autograd.grad(ref.square().sum(), x)
        assert torch.equal(grad, ref_grad)
        assert list(net.state_dict()) == list(plain.state_dict())
        assert type(net[:2]) is type(net) and torch.equal(net[:2](x), plain[:2](x))


def test_nature_cnn_shapes_and_scaling():
    torch.manual_seed(0)
    net = NatureCNN(in_channels=4, features=512)
    x = torch.randint(0, 256, (2, 4, 84, 84), dtype=torch.uint8)
    y = net(x)
    assert y.shape == (2, 512) and y.dtype == torch.float32
    assert (y >= 0).all()  # ends in ReLU
    # uint8 frames are scaled by 1/255 inside forward; floats are taken as already scaled
    torch.testing.assert_close(y, net(x.float() / 255.0))
    assert NatureCNN(in_channels=1, features=64)(torch.zeros(3, 1, 84, 84)).shape == (3, 64)


def test_adam_is_fused_on_cpu_and_takes_the_hand_computed_first_step() -> None:
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = adam([weight], lr=0.1, eps=1e-8)
    assert optimizer.defaults["fused"] is True
    weight.grad = torch.tensor([0.5, -3.0])
    optimizer.step()
    # First Adam step: bias-corrected m = g and v = g^2, so each weight moves lr * g / |g| = 0.1 against its gradient.
    torch.testing.assert_close(weight.detach(), torch.tensor([0.9, -1.9]))


def test_lean_adam_steps_bit_for_bit_like_fused_adam_and_shares_its_checkpoints() -> None:
    torch.manual_seed(0)
    reference_net = mlp([3, 8, 2], torch.nn.Tanh)
    lean_net = mlp([3, 8, 2], torch.nn.Tanh)
    lean_net.load_state_dict(reference_net.state_dict())
    reference = torch.optim.Adam(reference_net.parameters(), lr=3e-3, eps=1e-6, fused=True)
    lean = adam(lean_net.parameters(), lr=3e-3, eps=1e-6)
    assert isinstance(lean, LeanAdam)
    x = torch.randn(16, 3)
    for step in range(12):
        if step == 6:  # a schedule changes the rate between steps; a missing gradient skips a parameter
            for optimizer in (reference, lean):
                optimizer.param_groups[0]["lr"] = 1e-3
        for net, optimizer in ((reference_net, reference), (lean_net, lean)):
            optimizer.zero_grad(set_to_none=True)
            net(x).square().mean().backward()
            if step == 8:
                net[0].bias.grad = None
            optimizer.step()
        for expected, got in zip(reference_net.parameters(), lean_net.parameters(), strict=True):
            assert torch.equal(expected, got), step
    for p_ref, p_lean in zip(reference_net.parameters(), lean_net.parameters(), strict=True):
        assert torch.equal(reference.state[p_ref]["exp_avg_sq"], lean.state[p_lean]["exp_avg_sq"])
        assert torch.equal(reference.state[p_ref]["step"], lean.state[p_lean]["step"])
    # Adam's checkpoint loads into a LeanAdam (over a copy of the network), and the two go on identically
    resumed_net = mlp([3, 8, 2], torch.nn.Tanh)
    resumed_net.load_state_dict(reference_net.state_dict())
    resumed = adam(resumed_net.parameters(), lr=1e-3, eps=1e-6)
    resumed.load_state_dict(copy.deepcopy(reference.state_dict()))  # as from a file: no tensor shared
    for net, optimizer in ((reference_net, reference), (resumed_net, resumed)):
        optimizer.zero_grad(set_to_none=True)
        net(x).sum().backward()
        optimizer.step()
    for expected, got in zip(reference_net.parameters(), resumed_net.parameters(), strict=True):
        assert torch.equal(expected, got)


def test_lean_adam_hands_what_it_does_not_cover_to_adam() -> None:
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = adam([weight], lr=0.1)
    calls = []
    optimizer.register_step_pre_hook(lambda *args: calls.append("pre"))
    weight.grad = torch.tensor([0.5, -3.0])
    optimizer.step()
    optimizer.step(lambda: torch.tensor(0.0))
    assert calls == ["pre", "pre"]  # Adam's own step ran both times (hooks, closure)


def test_lean_adam_zero_grad_drops_or_zeroes_the_gradients() -> None:
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = adam([weight], lr=0.1)
    weight.grad = torch.tensor([0.5, -3.0])
    optimizer.zero_grad(set_to_none=False)
    assert torch.equal(weight.grad, torch.zeros(2))
    optimizer.zero_grad()
    assert weight.grad is None
