"""The episode ledger (thorndike/core/ledger.py), checked by hand on three env copies."""

import math

import pytest
import torch

from thorndike.core.ledger import EpisodeLedger


def step_info(done: list[bool], returns: list[float], lengths: list[int]) -> dict[str, torch.Tensor]:
    """What a VecEnv reports on one step: the fixed-shape entries (other copies' values are their running ones)."""
    return {"done": torch.tensor(done), "episode_return": torch.tensor(returns, dtype=torch.float64),
            "episode_length": torch.tensor(lengths)}


def three_steps(ledger: EpisodeLedger) -> None:
    # step 1: copy 2 ends (return 5, 3 steps); step 2: nothing ends; step 3: copies 0 and 1 end, in that order
    ledger.record(step_info([False, False, True], [0.5, 1.0, 5.0], [1, 1, 3]), step=1)
    ledger.record(step_info([False, False, False], [1.5, 2.0, 0.0], [2, 2, 1]), step=2)
    ledger.record(step_info([True, True, False], [-1.0, 3.0, 0.0], [3, 3, 2]), step=3)


def test_episodes_in_the_order_they_ended_time_then_copy() -> None:
    ledger = EpisodeLedger(3, "cpu")
    three_steps(ledger)
    columns = ledger.columns
    assert columns["copy"].tolist() == [2, 0, 1]
    assert columns["return"].tolist() == [5.0, -1.0, 3.0]
    assert columns["length"].tolist() == [3, 3, 3]
    assert columns["step"].tolist() == [1, 3, 3]
    assert len(ledger) == 3 and ledger.total == 3
    assert ledger.recent_returns(2) == [-1.0, 3.0]
    assert ledger.recent_returns(10) == [5.0, -1.0, 3.0]
    assert ledger.of_copy(2).tolist() == [5.0] and ledger.of_copy(0, "step").tolist() == [3]


def test_matrix_pads_copies_with_fewer_episodes_with_nan() -> None:
    ledger = EpisodeLedger(3, "cpu")
    three_steps(ledger)
    ledger.record(step_info([False, False, True], [0.0, 0.0, 7.0], [1, 1, 2]), step=4)
    assert ledger.matrix("return").tolist() == [[-1.0], [3.0], [5.0]]  # k = the fewest any copy finished
    wide = ledger.matrix("return", 3, 2)
    assert wide[2].tolist() == [5.0, 7.0]
    assert wide[0, 0] == -1.0 and math.isnan(wide[0, 1]) and math.isnan(wide[1, 1])
    assert ledger.matrix("length", 2, 1).tolist() == [[3.0], [3.0]]


def test_keep_bounds_the_episodes_kept_but_total_counts_all() -> None:
    ledger = EpisodeLedger(3, "cpu", keep=2)
    three_steps(ledger)
    assert ledger.columns["copy"].tolist() == [0, 1] and ledger.columns["return"].tolist() == [-1.0, 3.0]
    assert len(ledger) == 2 and ledger.total == 3
    ledger.record(step_info([True, False, False], [9.0, 0.0, 0.0], [1, 1, 1]), step=4)
    assert ledger.columns["return"].tolist() == [3.0, 9.0] and ledger.total == 4
    with pytest.raises(ValueError, match="keep"):
        EpisodeLedger(3, "cpu", keep=0)


def test_state_round_trip() -> None:
    ledger = EpisodeLedger(3, "cpu", keep=2)
    three_steps(ledger)
    state = ledger.state_dict()
    other = EpisodeLedger(3, "cpu", keep=2)
    other.record(step_info([True, True, True], [1.0, 1.0, 1.0], [1, 1, 1]), step=1)  # dropped by the load
    other.load_state_dict(state)
    assert other.total == 3
    for field in EpisodeLedger.FIELDS:
        assert torch.equal(other.columns[field], ledger.columns[field])
    state["return"][0] = 100.0  # the state is a copy
    assert ledger.columns["return"][0] == -1.0


def test_record_never_reads_back_to_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("record synchronised with the device")

    ledger = EpisodeLedger(3, "cpu")
    infos = [step_info([False, True, False], [1.0, 2.0, 3.0], [1, 2, 3]) for _ in range(3)]
    for name in ("item", "tolist", "__bool__", "cpu", "numpy"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    for step, info in enumerate(infos, 1):
        ledger.record(info, step)
    monkeypatch.undo()
    assert ledger.columns["step"].tolist() == [1, 2, 3] and ledger.total == 3
