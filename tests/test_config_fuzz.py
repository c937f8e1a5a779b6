"""Property test: values of the wrong kind for any field of any registered algorithm's Config or of the run options
are refused at construction with a ConfigError naming the field (never a traceback from deep inside, never silently
accepted), from the Python API and from the command line's strings alike."""

from __future__ import annotations

import dataclasses
import math
import types
import typing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import thorndike as th
from thorndike.config import ConfigError, RunOptions, build_config
from thorndike.registry import ALGORITHMS, get_algorithm

OWNERS = {name: get_algorithm(name).Config for name in sorted(ALGORITHMS)} | {"run options": RunOptions}


def base_type(annotation: typing.Any) -> tuple[type | None, bool]:
    """(the field's type without None, whether None is allowed)."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing) | vars(types))  # noqa: S307  (our own annotations)
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else None), type(None) in args
    return (tuple if typing.get_origin(annotation) is tuple else annotation), False


def wrong_values(kind: type | None, optional: bool) -> st.SearchStrategy:
    """Values no field of this kind may take."""
    containers = st.sampled_from([[1, 2], {"a": 1}, object()])
    if kind is bool:
        return st.one_of(containers, st.sampled_from([2, -1, 0.5, float("nan"), "maybe", "2"]),
                         *([] if optional else [st.none()]))
    if kind is int:
        return st.one_of(containers, st.booleans(), st.sampled_from([float("inf"), float("-inf"), float("nan")]),
                         st.floats(allow_nan=False, allow_infinity=False).filter(lambda x: not float(x).is_integer()),
                         st.sampled_from(["3.5", "many", "inf", "1e400", ""]), *([] if optional else [st.none()]))
    if kind is float:
        return st.one_of(containers, st.booleans(), st.sampled_from([float("inf"), float("-inf"), float("nan")]),
                         st.sampled_from(["fast", "nan", "inf", "-inf", ""]), *([] if optional else [st.none()]))
    if kind is str:
        return st.one_of(containers, st.integers(), st.floats(), st.booleans(), *([] if optional else [st.none()]))
    # tuples of whole numbers (layer widths): not a list, or a list holding something else
    return st.sampled_from([{"a": 1}, object(), True, 5, 2.5, ["x"], [1.5], [None], [True]])


FIELDS = [(owner, f.name, *base_type(f.type)) for owner, cls in OWNERS.items() for f in dataclasses.fields(cls)]


@pytest.mark.parametrize(("owner", "field", "kind", "optional"), FIELDS, ids=[f"{o}.{f}" for o, f, _, _ in FIELDS])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_a_value_of_the_wrong_kind_is_refused_naming_the_field(owner: str, field: str, kind: type | None,
                                                               optional: bool, data: st.DataObject) -> None:
    value = data.draw(wrong_values(kind, optional))
    with pytest.raises(ConfigError, match=field):
        build_config(OWNERS[owner], {field: value})


@pytest.mark.parametrize("seed", [True, -1, 2**70, 1.5, "0"])
def test_a_bad_seed_is_refused_naming_it(seed: object) -> None:
    with pytest.raises(ConfigError, match="seed"):
        th.make("q_learning", env="FrozenLake-v1", seed=seed, progress=False)


def test_the_cli_refuses_a_fraction_where_a_count_is_due(capsys: pytest.CaptureFixture[str]) -> None:
    from thorndike.cli import main

    assert main(["train", "ppo", "--env", "CartPole-v1", "--n-envs", "3.5"]) == 2
    err = capsys.readouterr().err
    assert "n_envs='3.5'" in err and "whole number" in err


def test_broken_yaml_and_device_names_are_clear(tmp_path: typing.Any) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("lr: [1, 2\n")
    with pytest.raises(ConfigError, match="broken.yaml is not valid YAML"):
        th.make("ppo", env="CartPole-v1", config=broken)
    with pytest.raises(ConfigError, match="device='cuda:abc'"):
        build_config(RunOptions, {"device": "cuda:abc"})
    assert math.isfinite(build_config(RunOptions, {"stop_return": "475"}).stop_return)


# ---- huge counts -----------------------------------------------------------------------------------------------------

EXAMPLE_COUNTS = [(name, f.name, kind) for name in sorted(ALGORITHMS)
                  for f in dataclasses.fields(OWNERS[name]) + dataclasses.fields(RunOptions)
                  for kind, _ in [base_type(f.type)] if kind in (int, tuple)]


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_a_huge_count_is_refused_at_construction_quickly(name: str, data: st.DataObject) -> None:
    # A count from ten million up to far past any bound, given to th.make on the algorithm's example: refused with a
    # ConfigError naming the field, or (a count that sizes nothing, such as log_every) built, in moments. Above
    # MAX_COUNT every config field is refused. The machine is taken to have 2 GiB, the same everywhere.
    import time

    from thorndike.config import MAX_COUNT
    from thorndike.core import resources
    from thorndike.registry import example

    field, kind = data.draw(st.sampled_from([(f, k) for n, f, k in EXAMPLE_COUNTS if n == name]))
    count = data.draw(st.one_of(st.integers(10**7, MAX_COUNT), st.integers(MAX_COUNT + 1, 10**40)))
    ex = example(name)
    quiet = {**ex.fields, "progress": False, "tensorboard": False}
    th.make(name, env=ex.env, **quiet)  # the first one imports the algorithm's modules: not what is timed
    started = time.perf_counter()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resources, "memory_budget", lambda device="cpu": (2**30, 2**31))
        try:
            th.make(name, env=ex.env, **{**quiet, field: (count,) if kind is tuple else count})
        except ConfigError as err:
            assert field in str(err), err
        else:
            assert count <= MAX_COUNT or field in ("checkpoint_every", "eval_every"), f"{field}={count} accepted"
    assert time.perf_counter() - started < 3, f"{field}={count} took {time.perf_counter() - started:.1f} s"
