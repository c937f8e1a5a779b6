"""Config dataclasses: validation helpers, the options every run shares, and building configs from dicts.

An algorithm's ``Config`` is a dataclass whose fields each carry a default and a one-line meaning (the
``help`` metadata), validated in ``__post_init__`` with :func:`check`, so a bad value fails at construction with
the field's name, never deep inside a run.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any


class ConfigError(ValueError):
    """A config value or key that cannot be used; the message names the field and the fix."""


def check(condition: bool, name: str, value: Any, requirement: str) -> None:
    """Raise :class:`ConfigError` naming ``name`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"invalid config: {name}={value!r}; {name} must be {requirement}")


def check_network(config: Any, activations: Any = None, allow_empty: bool = False) -> None:
    """The fields that shape a network: ``hidden_sizes`` (one or more positive widths; none too with
    ``allow_empty``, for a network whose encoder ends in its own hidden layer, as the Nature CNN does) and, when
    ``activations`` (the names accepted) is given, ``activation``."""
    sizes = config.hidden_sizes
    least, what = (0, "zero or more") if allow_empty else (1, "one or more")
    check(len(sizes) >= least and all(h >= 1 for h in sizes), "hidden_sizes", sizes, f"{what} positive widths")
    if activations is not None:
        check(config.activation in activations, "activation", config.activation, f"one of {sorted(activations)}")


# The largest value any whole-number field takes unless it declares its own bound (``describe(..., at_most=N)``):
# no count or size in a run is meaningfully larger, and torch indexes some tensors with 32-bit ints. Fields that size
# memory are also checked against the machine's memory where they are allocated (thorndike.core.resources).
MAX_COUNT = 2**31 - 1


def describe(help_text: str, default: Any, at_most: int | None = None) -> Any:
    """A dataclass field with a default and its one-line meaning; ``at_most`` bounds a whole-number field (or each
    entry of a tuple of them) from above, for counts that repeat work (passes, planning steps), where a huge value
    would not fail but run for ever (checked by :func:`check_limits`)."""
    metadata = {"help": help_text} if at_most is None else {"help": help_text, "at_most": at_most}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: default.copy(), metadata=metadata)
    return field(default=default, metadata=metadata)


def check_limits(config: Any) -> None:
    """Refuse, naming the field, a float field that is not finite and a whole-number field (or a tuple entry) above
    its ``at_most`` (``MAX_COUNT`` unless declared). Every Config and the run options pass through it, at
    construction (the family bases' ``__post_init__``, :func:`build_config` and ``Agent.__init__``), so a huge count
    is one clear error and never an allocation failure or a loop that does not end."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, float):
            check(math.isfinite(value), f.name, value, "a finite number")
            continue
        entries = value if isinstance(value, tuple) else (value,)
        at_most = f.metadata.get("at_most", MAX_COUNT)
        for entry in entries:
            if isinstance(entry, int) and not isinstance(entry, bool) and entry > at_most:
                what = "each entry " if isinstance(value, tuple) else ""
                raise ConfigError(f"invalid config: {f.name}={value!r}; {f.name} must be {what}at most {at_most:,} "
                                  f"({f.metadata.get('help', f.name)})")


@dataclass
class RunOptions:
    """How a run is carried out; shared by every algorithm (not part of the algorithm's math)."""

    device: str = describe("torch device: cpu, cuda, or auto (cuda when available)", "cpu")
    threads: int = describe("torch CPU threads (1 is fastest for small networks)", 1)
    backend: str = describe("env backend: auto, gymnasium, torch or envpool (ALE ids)", "auto")
    vectorization: str = describe("Gymnasium copies in this process (sync) or one subprocess each (async, for envs "
                                  "whose step is slow)", "sync")
    run_root: str = describe("folder under which runs/<algo>-<env>-<seed>-<time>/ is created", "runs")
    # step counts that size nothing: any budget a run can have
    checkpoint_every: int = describe("env steps between checkpoints (0: a tenth of the run)", 0, at_most=2**62)
    keep_checkpoints: int = describe("how many recent checkpoints to keep (0: all)", 3)
    eval_every: int = describe("env steps between evaluations during learn (0: none)", 0, at_most=2**62)
    eval_episodes: int = describe("episodes per evaluation", 10)
    stop_return: float | None = describe("stop once the deterministic evaluation mean reaches this", None)
    compile: bool = describe("torch.compile the rollouts (on a native env each rollout is one program) and the "
                             "update (PPO, DQN, SAC: each gradient step one captured program; GAE compiled); "
                             "CUDA graphs on GPU; eager if it fails", False)
    progress: bool = describe("show a progress bar", True)
    tensorboard: bool = describe("write TensorBoard events", True)
    pictures: bool = describe("draw curve.png (tabular learners: also episodes.png, values.png) when learn ends",
                              True)

    def __post_init__(self) -> None:
        check_limits(self)
        check(self.device in ("cpu", "cuda", "auto") or re.fullmatch(r"cuda:\d+", self.device) is not None,
              "device", self.device, "cpu, cuda, cuda:N or auto")
        check(1 <= self.threads <= 1024, "threads", self.threads, "in [1, 1024]")
        check(self.run_root != "", "run_root", self.run_root, "a folder name")
        check(self.keep_checkpoints >= 0, "keep_checkpoints", self.keep_checkpoints, ">= 0 (0 keeps all)")
        check(self.backend in ("auto", "gymnasium", "torch", "envpool"), "backend", self.backend,
              "auto, gymnasium, torch or envpool")
        check(self.vectorization in ("sync", "async"), "vectorization", self.vectorization, "sync or async")
        check(self.checkpoint_every >= 0, "checkpoint_every", self.checkpoint_every, ">= 0")
        check(self.eval_every >= 0, "eval_every", self.eval_every, ">= 0")
        check(1 <= self.eval_episodes <= 100_000, "eval_episodes", self.eval_episodes, "in [1, 100000]")


def field_help(cls: type) -> dict[str, str]:
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def coerce(annotation: Any, value: Any) -> Any:
    """Convert ``value`` (from YAML or a command line string) to the field's annotated type."""
    if isinstance(annotation, str):
        annotation = eval(annotation, vars(typing) | vars(types) | {"float": float, "int": int})  # noqa: S307
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            if type(None) in args:
                return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(arg, value)
            except (TypeError, ValueError) as err:
                errors.append(str(err))
        raise ValueError("; ".join(errors))
    if origin is tuple:
        if not isinstance(value, str | list | tuple):
            raise ValueError(f"expected a list of values, got {value!r}")
        if isinstance(value, str) and value.strip()[:1] in ("[", "("):  # "[32, 32]" or "(32, 32)" from a shell
            value = value.strip()[1:-1] if value.strip()[-1:] in ("]", ")") else value
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(coerce(args[0], v) for v in items if v != "")
    if annotation is bool:
        if isinstance(value, str):
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
        elif isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
        raise ValueError(f"expected true or false, got {value!r}")
    if annotation is int:
        # True is an int to Python, but never what a user means by a count; "3.5" must not become 3.
        number = _number(value)
        if not math.isfinite(number) or number != int(number):
            raise ValueError(f"expected a whole number, got {value!r}")
        return int(value) if isinstance(value, int) else int(number)
    if annotation is float:
        number = _number(value)
        if not math.isfinite(number):  # a field without a range check (q_init, log_std_init) would spread it
            raise ValueError(f"expected a finite number, got {value!r}")
        return float(number)
    if annotation is str:
        if isinstance(value, os.PathLike):  # a folder given as a Path
            return os.fspath(value)
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value
    return value


def _number(value: Any) -> float:
    """A number from a number or a numeric string; booleans, None and containers are refused."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"expected a number, got {value!r}")
    try:
        return float(value) if not isinstance(value, int) else value
    except ValueError:
        raise ValueError(f"expected a number, got {value!r}") from None


def build_config(cls: type, values: dict[str, Any]) -> Any:
    """``cls(**values)`` with types coerced and unknown keys refused with close matches."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in values if k not in fields]
    if unknown:
        raise unknown_field_error(unknown[0], list(fields), cls.__name__)
    kwargs = {}
    for key, value in values.items():
        try:
            kwargs[key] = coerce(fields[key].type, value)
        except (TypeError, ValueError) as err:
            raise ConfigError(f"invalid config: {key}={value!r} is not a {fields[key].type}: {err}") from err
    config = cls(**kwargs)
    check_limits(config)
    return config


def unknown_field_error(key: str, known: list[str], owner: str) -> ConfigError:
    close = difflib.get_close_matches(key, known, n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown config field '{key}' for {owner}.{hint} Known fields: {', '.join(sorted(known))}")
