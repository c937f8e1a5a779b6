"""Environments: ``make`` builds a batch of env copies that speaks torch tensors (see :mod:`.vec_env`).

An env is named by a Gymnasium id (``"CartPole-v1"``), by ``"package.module:function"`` returning a
``gymnasium.Env``, or given as a callable that builds one. A :class:`TabularMDP` is such a callable, and on the
``"auto"`` or ``"torch"`` backend it is batched natively. ``make`` also takes the env's keyword arguments
(``env_kwargs``), Gymnasium wrappers by registered name (``wrappers``, see :mod:`.wrappers`) and how Gymnasium copies
are stepped (``vectorization="sync" | "async"``); all of them are plain data, so a run's config can record them.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import torch

from thorndike.envs import gridworld, toy_text
from thorndike.envs.atari import atari_defaults
from thorndike.envs.checker import UPDATE_API, CheckReport, EnvCheckError, OldGymAPIError, check
from thorndike.envs.normalize import NormalizeReward
from thorndike.envs.tabular import TabularMDP, random_mdp
from thorndike.envs.vec_env import GAME_KEYS, INFO_KEYS, VECTORIZATIONS, GymnasiumVecEnv, VecEnv
from thorndike.envs.wrappers import WrapperSpec, register_wrapper, resolve_wrappers

EnvSpec = str | Callable[[], gym.Env]

# MuJoCo draws with OpenGL, chosen by MUJOCO_GL when mujoco is imported. Without a display (a server, CI, a
# container) its default (GLFW) has no window to draw in and rendering fails; EGL renders headless with the GPU
# driver or Mesa's software EGL (libEGL), so it is the default here. A MUJOCO_GL set by the user is kept
# (``osmesa`` also works headless where libOSMesa is installed; ``glfw`` needs a display).
if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY") and os.name == "posix":
    os.environ["MUJOCO_GL"] = "egl"

# Native batched torch envs register here by Gymnasium id: a callable (n_envs, device, **env_kwargs) -> VecEnv (see
# envs/batched). ``make`` uses it for env_kwargs only when it honours them: its ``accepts(env_kwargs)`` when it has
# one, else its signature.
NATIVE_ENVS: dict[str, Callable[..., VecEnv]] = {}

BACKENDS = ("auto", "gymnasium", "torch", "envpool")

__all__ = [
    "BACKENDS",
    "CheckReport",
    "EnvCheckError",
    "OldGymAPIError",
    "check",
    "NATIVE_ENVS",
    "EnvImportError",
    "EnvSpec",
    "GymnasiumVecEnv",
    "GAME_KEYS",
    "INFO_KEYS",
    "MissingDependencyError",
    "NormalizeReward",
    "TabularMDP",
    "VECTORIZATIONS",
    "VecEnv",
    "WrapperSpec",
    "atari_defaults",
    "env_builder",
    "env_name",
    "require_tabular_model",
    "tabular_model",
    "gridworld",
    "make",
    "random_mdp",
    "register_wrapper",
    "toy_text",
]


def env_name(env: EnvSpec) -> str:
    """A short name for run folders: the id, or the builder's name."""
    if isinstance(env, str):
        return env.split(":")[-1]
    return getattr(env, "__name__", type(env).__name__)


class MissingDependencyError(ModuleNotFoundError):
    """An env needs an optional package that is not installed; the message names the env and the install command."""


# Gymnasium entry-point module prefixes -> (the thorndike extra that installs them, the package, as users know it).
_EXTRAS = (
    ("gymnasium.envs.box2d", "box2d", "Box2D"),
    ("ale_py", "atari", "ale-py"),
    ("gymnasium.envs.mujoco", "mujoco", "MuJoCo"),
)


def _missing_dependency(env_id: str) -> MissingDependencyError | None:
    """The one-line error for ``env_id`` when it belongs to one of thorndike's extras, else None."""
    if env_id.startswith("ALE/"):  # ale-py registers these ids itself, so without it they are not in the registry
        entry_point = "ale_py"
    else:
        spec = gym.registry.get(env_id)
        entry_point = spec.entry_point if spec is not None and isinstance(spec.entry_point, str) else ""
    for prefix, extra, package in _EXTRAS:
        if entry_point == prefix or entry_point.startswith((prefix + ".", prefix + ":")):
            return MissingDependencyError(f'{env_id} needs {package}: pip install -e ".[{extra}]"', name=package)
    return None


def _register_ale_envs(env_id: str) -> None:
    """Make the ``ALE/...`` ids known: ale-py registers them when imported (Gymnasium >= 1.0 no longer does it)."""
    if not env_id.startswith("ALE/") or env_id in gym.registry:
        return
    try:
        import ale_py
    except ImportError:
        raise _missing_dependency(env_id) from None
    gym.register_envs(ale_py)


def env_builder(env: EnvSpec, **env_kwargs: Any) -> Callable[[], gym.Env]:
    """A zero-argument callable that builds one copy, or a clear error saying what is wrong with ``env``.

    A Gymnasium id whose optional dependency (Box2D, ale-py, MuJoCo) is missing raises
    :class:`MissingDependencyError` when the copy is built, with the one command that installs it.
    """
    if callable(env):
        return _returns_an_env(lambda: env(**env_kwargs), env_name(env))
    if not isinstance(env, str):
        raise TypeError(f"env must be a Gymnasium id, 'module:function' or a callable, got {type(env).__name__}")
    _register_ale_envs(env)
    if ":" in env and env not in gym.registry:
        builder = _import_builder(env)
        if not callable(builder):
            raise ValueError(f"env builder '{env}' is a {type(builder).__name__}, not a function returning a "
                             "gymnasium.Env")
        return _returns_an_env(lambda: builder(**env_kwargs), env)
    if env not in gym.registry:
        close = difflib.get_close_matches(env, list(gym.registry), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"unknown environment id '{env}'.{hint} Use a registered Gymnasium id (see gymnasium.pprint_registry()),"
            " 'package.module:function', or pass a callable that returns a gymnasium.Env."
        )

    def build() -> gym.Env:
        try:
            return gym.make(env, **env_kwargs)
        except TypeError as err:
            if not env_kwargs:
                raise
            # almost always a keyword the env's constructor does not take: name them and where they came from
            raise ValueError(f"{env} could not be built with env_kwargs {env_kwargs!r} (--env-kwargs on the command "
                             f"line): {err}") from None
        except (gym.error.DependencyNotInstalled, ImportError):
            missing = _missing_dependency(env)
            if missing is None:
                raise
            # one line instead of Gymnasium's chained traceback and advice
            raise missing from None

    return build


class EnvImportError(ValueError):
    """A ``"module:function"`` env spec whose module cannot be imported or has no such function."""


def _import_builder(env: str) -> Any:
    """The object ``"package.module:function"`` names, or :class:`EnvImportError` saying which part is missing
    and where Python looked: a missing module is not an env "given as an object or a function"."""
    module_name, _, attr = env.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name is not None and (module_name == err.name or module_name.startswith(err.name + ".")):
            raise EnvImportError(
                f"cannot import env builder '{env}': module '{module_name}' could not be imported (no module named "
                f"'{err.name}' on sys.path). The thorndike command looks in the current folder ({os.getcwd()}) and "
                "in the installed packages and PYTHONPATH; run it from the folder that holds "
                f"{module_name.replace('.', '/')}.py, or add that folder to PYTHONPATH") from None
        raise EnvImportError(f"cannot import env builder '{env}': importing module '{module_name}' failed: {err}"
                             ) from err
    except ImportError as err:
        raise EnvImportError(f"cannot import env builder '{env}': importing module '{module_name}' failed: {err}"
                             ) from err
    if not hasattr(module, attr):
        raise EnvImportError(f"cannot import env builder '{env}': module '{module_name}' ({module.__file__}) has no "
                             f"attribute '{attr}'")
    return getattr(module, attr)


def _returns_an_env(builder: Callable[[], Any], name: str) -> Callable[[], gym.Env]:
    """``builder``, refusing by name anything it returns that is not a ``gymnasium.Env`` (``"os:getcwd"``)."""

    def build() -> gym.Env:
        made = builder()
        if not isinstance(made, gym.Env) and callable(getattr(made, "step", None)) and \
                callable(getattr(made, "reset", None)):
            raise OldGymAPIError(f"env builder {name!r} returned a {type(made).__name__}, an env of the old gym "
                                 f"package, not a gymnasium.Env: subclass gymnasium.Env. {UPDATE_API}")
        if not isinstance(made, gym.Env):
            raise ValueError(f"env builder {name!r} returned a {type(made).__name__}, not a gymnasium.Env; pass a "
                             "function or class that builds the env")
        return made

    return build


def _wrapped(builder: Callable[[], gym.Env], wrappers: list[tuple[str, Callable[..., gym.Env], dict[str, Any]]]
             ) -> Callable[[], gym.Env]:
    """``builder`` whose copies are wrapped by the resolved ``wrappers`` in order."""
    if not wrappers:
        return builder

    def build() -> gym.Env:
        env = builder()
        for _, fn, kwargs in wrappers:
            env = fn(env, **kwargs)
        return env

    return build


def _native_accepts(builder: Callable[..., VecEnv], env_kwargs: dict[str, Any]) -> bool:
    """Whether a :data:`NATIVE_ENVS` builder honours ``env_kwargs``: its ``accepts(env_kwargs)`` when it has one,
    else whether its signature takes them next to ``n_envs`` and ``device``."""
    accepts = getattr(builder, "accepts", None)
    if accepts is not None:
        return bool(accepts(env_kwargs))
    try:
        inspect.signature(builder).bind(n_envs=1, device="cpu", **env_kwargs)
    except TypeError:
        return False
    return True


def make(
    env: EnvSpec,
    n_envs: int = 1,
    seed: int | None = None,
    backend: str = "auto",
    device: torch.device | str = "cpu",
    normalize_reward: bool = False,
    gamma: float = 0.99,
    vectorization: str = "sync",
    env_kwargs: dict[str, Any] | None = None,
    wrappers: Sequence[WrapperSpec] | None = None,
    **extra_env_kwargs: Any,
) -> VecEnv:
    """Build ``n_envs`` copies of ``env`` as a torch :class:`VecEnv`, reset with ``seed`` (copy i gets seed+i).

    Args:
        env: a Gymnasium id, ``"package.module:function"``, a callable returning a ``gymnasium.Env``, or a
            :class:`TabularMDP`.
        backend: ``"auto"`` picks the native batched torch env when one is registered for the id and it can honour
            ``env_kwargs`` and there are no ``wrappers``, else Gymnasium; ``"gymnasium"`` always wraps Gymnasium;
            ``"torch"`` insists on the native env (ValueError saying why when it cannot be used); ``"envpool"``
            steps an ``ALE/...`` id in EnvPool with the atari preset done in C++ (:mod:`.envpool_backend`; an
            :class:`~.envpool_backend.EnvPoolUnavailableError` when EnvPool is not installed).
        vectorization: how Gymnasium copies are stepped: ``"sync"`` in this process, ``"async"`` one subprocess
            per copy (for envs whose step is slow). Native envs are one tensor and ignore it; ``backend="torch"``
            with ``"async"`` is an error.
        env_kwargs: keyword arguments for the env's constructor (``gym.make(env, **env_kwargs)``), e.g.
            ``{"is_slippery": False}``. Keyword arguments given directly to ``make`` are added to them.
        wrappers: registered wrapper names or ``{"name": ..., **kwargs}`` dicts, applied to each Gymnasium copy in
            order (see :mod:`thorndike.envs.wrappers`). An ``ALE/...`` id without wrappers gets the ``atari`` preset
            (84x84 grayscale, frame skip 4, stack of 4, episodic life, clipped rewards; see :mod:`.atari`) and
            ``frameskip=1``; give wrappers (e.g. ``[{"name": "atari", "episodic_life": False}]``) to change it, or
            pass a callable returning the bare ALE env.
        normalize_reward, gamma: reward scaling by the running std of the discounted return (see
            :mod:`.normalize`). Observations are normalised by the model, not here
            (:class:`thorndike.core.normalization.ObservationNormalizer`).

    Call ``reset()`` yourself before stepping if you pass ``seed=None``. A missing optional dependency (Box2D,
    ale-py, MuJoCo) raises :class:`MissingDependencyError` with the command that installs it.
    """
    if not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"n_envs must be a positive int, got {n_envs!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if vectorization not in VECTORIZATIONS:
        raise ValueError(f"vectorization must be one of {VECTORIZATIONS}, got {vectorization!r}")
    if env_kwargs is not None and not isinstance(env_kwargs, Mapping):
        raise TypeError(f"env_kwargs must be a dict of keyword arguments, got {type(env_kwargs).__name__}")
    both = set(env_kwargs or {}) & set(extra_env_kwargs)
    if both:
        raise ValueError(f"{', '.join(sorted(both))} given both in env_kwargs and as keyword arguments of make")
    kwargs = {**(env_kwargs or {}), **extra_env_kwargs}
    wrappers, kwargs = atari_defaults(env, wrappers, kwargs)  # ALE ids: the atari preset and frameskip=1
    resolved_wrappers = resolve_wrappers(wrappers)

    native_builder = NATIVE_ENVS.get(env) if isinstance(env, str) else None
    # Why the native env cannot be used here (empty: it can).
    if native_builder is None and not isinstance(env, TabularMDP):
        available = ", ".join(sorted(NATIVE_ENVS)) or "none yet"
        why_not_native = f"no native torch env for {env!r} (native envs: {available})"
    elif resolved_wrappers:
        why_not_native = "wrappers apply to Gymnasium copies only"
    elif kwargs and (native_builder is None or not _native_accepts(native_builder, kwargs)):
        why_not_native = f"the native version of {env_name(env)} does not take {', '.join(sorted(kwargs))}"
    else:
        why_not_native = ""
    if backend == "torch" and why_not_native:
        raise ValueError(f"{why_not_native}; use backend='gymnasium' (or 'auto')")
    if backend == "torch" and vectorization == "async":
        raise ValueError("vectorization='async' steps Gymnasium copies in subprocesses; a native torch env is one "
                         "tensor, so use backend='gymnasium' for async")

    if backend == "envpool":
        from thorndike.envs.envpool_backend import EnvPoolVecEnv

        venv: VecEnv = EnvPoolVecEnv(env, n_envs, device=device, wrappers=wrappers, env_kwargs=kwargs)
    elif backend != "gymnasium" and not why_not_native:
        if isinstance(env, TabularMDP):
            from thorndike.envs.batched import batched

            venv = batched(env, n_envs, device=device)
        else:
            venv = native_builder(n_envs=n_envs, device=device, **kwargs)
    else:
        builder = _wrapped(env_builder(env, **kwargs), resolved_wrappers)
        games = any(getattr(fn, "thorndike_game_score", False) for _, fn, _ in resolved_wrappers)
        venv = GymnasiumVecEnv(builder, n_envs, device=device, vectorization=vectorization, games=games)
    if normalize_reward:
        venv = NormalizeReward(venv, gamma=gamma)
    if seed is not None:
        venv.reset(seed=seed)
    return venv


# Keyword arguments that change how an env is shown, not its dynamics: a model ignores them.
_DISPLAY_KWARGS = frozenset({"render_mode"})


def _model_builder(env: EnvSpec | TabularMDP, env_kwargs: Mapping[str, Any]) -> tuple[Callable[..., Any] | None, str]:
    """The builder of ``env``'s TabularMDP for ``env_kwargs``, or None and why there is none."""
    kwargs = {k: v for k, v in env_kwargs.items() if k not in _DISPLAY_KWARGS}
    if isinstance(env, TabularMDP):
        if kwargs:
            return None, f"a TabularMDP takes no env_kwargs, got {', '.join(sorted(kwargs))}"
        return (lambda: env), ""
    if not isinstance(env, str):
        return None, "only TabularMDPs and registered ids have a model"
    from thorndike.envs.batched.tabular import TOY_TEXT
    from thorndike.envs.classic import CLASSIC

    if env in TOY_TEXT:
        model = TOY_TEXT[env]
        unsupported = model.unsupported(kwargs)
        if unsupported:
            return None, (f"its model cannot honour {', '.join(map(repr, unsupported))} "
                          f"(it takes {', '.join(sorted(model.kwargs))})")
        return (lambda: model(**kwargs)), ""
    if env in CLASSIC:
        builder = CLASSIC[env]
        try:
            inspect.signature(builder).bind(**kwargs)
        except TypeError as err:
            return None, f"its model builder {builder.__name__} does not take {', '.join(sorted(kwargs))} ({err})"
        return (lambda: builder(**kwargs)), ""
    return None, "thorndike knows no TabularMDP for it"


def tabular_model(env: EnvSpec | TabularMDP, env_kwargs: Mapping[str, Any] | None = None) -> TabularMDP | None:
    """The :class:`TabularMDP` behind ``env`` made with ``env_kwargs`` when thorndike knows it (a TabularMDP, a
    toy-text id with a native version, or one of thorndike's registered tabular ids), else None. Planning on it
    gives learning's oracles.

    ``env_kwargs`` are those given to ``make`` (``{"is_slippery": False}``, ``{"map_name": "8x8"}``): the model is
    that of the configured env. When the model cannot honour one of them (Taxi's ``fickle_passenger``, which changes
    dynamics outside the table) the answer is None, as for an env without a model; :func:`require_tabular_model`
    says which argument is the reason. ``render_mode`` does not change the model and is ignored.
    """
    builder, _ = _model_builder(env, env_kwargs or {})
    return builder() if builder is not None else None


def require_tabular_model(env: EnvSpec | TabularMDP, env_kwargs: Mapping[str, Any] | None = None) -> TabularMDP:
    """:func:`tabular_model`, or an error saying that ``env`` (with ``env_kwargs``) has none and why, so nothing
    can be evaluated exactly."""
    builder, reason = _model_builder(env, env_kwargs or {})
    if builder is None:
        configured = f" with {dict(env_kwargs)}" if env_kwargs else ""
        raise ValueError(f"{env_name(env)}{configured} has no TabularMDP model in thorndike ({reason}), so policies "
                         "on it cannot be evaluated exactly; use agent.evaluate(episodes) instead, or pass a "
                         "TabularMDP as the env")
    return builder()


from thorndike.envs import batched, classic, finance  # noqa: E402,F401  (registers the native envs, the classic and finance ids)
