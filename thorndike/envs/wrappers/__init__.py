"""Gymnasium wrappers by registered name, so that a run's config can list them as plain data.

``th.envs.make(env, wrappers=[...])`` takes a list whose items are a registered name (``"clip_action"``) or a dict
with the name and the wrapper's keyword arguments (``{"name": "time_limit", "max_episode_steps": 50}``). Each
Gymnasium copy is wrapped by them in list order (the first item wraps the bare env, the last is outermost) before
the copies are vectorised. Native torch envs cannot be wrapped: ``backend="auto"`` then uses Gymnasium.

Register a wrapper of your own with :func:`register_wrapper`; a registered function takes one env copy and the
item's keyword arguments and returns the wrapped env (a Gymnasium wrapper class is such a function).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
from gymnasium.wrappers import ClipAction, FlattenObservation, RescaleAction, TimeLimit

WrapperFn = Callable[..., gym.Env]
"""``fn(env, **kwargs) -> gym.Env``: wraps one env copy."""

WrapperSpec = str | Mapping[str, Any]
"""A registered name, or ``{"name": name, **kwargs}``."""

WRAPPERS: dict[str, WrapperFn] = {}
"""The registered wrappers by name."""

__all__ = ["WRAPPERS", "WrapperFn", "WrapperSpec", "apply_wrappers", "register_wrapper", "resolve_wrappers"]


def register_wrapper(name: str, fn: WrapperFn, overwrite: bool = False) -> WrapperFn:
    """Register ``fn(env: gym.Env, **kwargs) -> gym.Env`` under ``name``, for ``make(..., wrappers=[name])``.

    Registering a taken name raises unless ``overwrite``, so two plugins cannot silently replace each other.
    Returns ``fn``.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a wrapper name must be a non-empty string, got {name!r}")
    if not callable(fn):
        raise TypeError(f"wrapper {name!r} must be a callable fn(env, **kwargs) -> gym.Env, got {type(fn).__name__}")
    if name in WRAPPERS and WRAPPERS[name] is not fn and not overwrite:
        raise ValueError(f"a wrapper named {name!r} is already registered; pass overwrite=True to replace it")
    WRAPPERS[name] = fn
    return fn


def resolve_wrappers(specs: Sequence[WrapperSpec] | None) -> list[tuple[str, WrapperFn, dict[str, Any]]]:
    """``(name, fn, kwargs)`` for each item of ``specs``, checked: unknown names and keyword arguments the wrapper
    does not take raise ValueError before any env is built."""
    if specs is None:
        return []
    if isinstance(specs, str | Mapping):
        raise TypeError(f"wrappers must be a list of names or dicts, got a single {type(specs).__name__}; "
                        f"use [{specs!r}]")
    resolved = []
    for spec in specs:
        if isinstance(spec, str):
            name, kwargs = spec, {}
        elif isinstance(spec, Mapping):
            if "name" not in spec:
                raise ValueError(f"a wrapper given as a dict needs a 'name' entry, got {dict(spec)!r}")
            kwargs = {key: value for key, value in spec.items() if key != "name"}
            name = spec["name"]
        else:
            raise TypeError(f"a wrapper is a registered name or a dict {{'name': ..., **kwargs}}, got {spec!r}")
        fn = _lookup(name)
        try:
            inspect.signature(fn).bind(None, **kwargs)
        except TypeError as err:
            raise ValueError(f"wrapper {name!r} does not take these arguments {kwargs!r}: {err}") from None
        except ValueError:  # a callable without an inspectable signature: its own call will check
            pass
        resolved.append((name, fn, kwargs))
    return resolved


def apply_wrappers(env: gym.Env, specs: Sequence[WrapperSpec] | None) -> gym.Env:
    """``env`` wrapped by each item of ``specs`` in order (the first innermost)."""
    for _, fn, kwargs in resolve_wrappers(specs):
        env = fn(env, **kwargs)
    return env


def _lookup(name: Any) -> WrapperFn:
    if isinstance(name, str) and name in WRAPPERS:
        return WRAPPERS[name]
    close = difflib.get_close_matches(str(name), list(WRAPPERS), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"unknown wrapper {name!r}.{hint} Registered wrappers: {', '.join(sorted(WRAPPERS))} "
                     "(add one with thorndike.envs.wrappers.register_wrapper)")


register_wrapper("time_limit", TimeLimit)  # max_episode_steps
register_wrapper("clip_action", ClipAction)
register_wrapper("rescale_action", RescaleAction)  # min_action, max_action
register_wrapper("flatten_observation", FlattenObservation)
