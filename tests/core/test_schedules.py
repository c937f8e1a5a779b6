import dataclasses

import pytest

from thorndike.core.schedules import Constant, Exponential, Linear, Schedule, make_schedule


def test_constant():
    assert Constant(3.0)(0) == 3.0
    assert Constant(3.0)(1e9) == 3.0


def test_linear():
    s = Linear(1.0, 0.1, 100)
    assert s(0) == pytest.approx(1.0)
    assert s(50) == pytest.approx(0.55)  # 1 + .5 * (.1 - 1)
    assert s(100) == pytest.approx(0.1)
    assert s(250) == pytest.approx(0.1)  # clamped after duration
    assert Linear(0.0, 1.0, 10)(2.5) == pytest.approx(0.25)
    assert Linear(1.0, 0.0, 0)(0) == 0.0  # zero duration: already at the end


def test_exponential_oracle():
    s = Exponential(0.9, 0.995)
    # .995^1000 = exp(1000 ln .995) = exp(-5.012542) = .0066540 ; * .9 = .0059886
    assert s(1000) == pytest.approx(0.0059886, rel=1e-4)
    # .9 * .995^t < .01  <=>  t > ln(1/90) / ln(.995) = 897.7, so t = 898 is the first
    assert s(897) >= 0.01
    assert s(898) < 0.01
    assert s(0) == 0.9


def test_exponential_floor():
    # .5^10 ~ .001 is below the floor .2
    assert Exponential(1.0, 0.5, end=0.2)(10) == 0.2
    assert Exponential(1.0, 0.5, end=0.2)(1) == 0.5


def test_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Linear(1.0, 0.0, 10).start = 2.0  # type: ignore[misc]


def test_make_schedule():
    assert make_schedule(0.3) == Constant(0.3)
    assert make_schedule(2) == Constant(2.0)
    s = Linear(1.0, 0.0, 10)
    assert make_schedule(s) is s
    assert isinstance(make_schedule(1e-3), Schedule)
    for bad in ("0.1", True, None):
        with pytest.raises(TypeError):
            make_schedule(bad)  # type: ignore[arg-type]
