"""Optional ``torch.compile`` with a clean fallback: the fast path must never be the reason a run fails.

``maybe_compile(fn, enabled)`` returns ``fn`` itself when disabled. When enabled it returns a wrapper that calls
the compiled function; if compiling or running it raises (no C++ compiler, an unsupported op, an old GPU), it warns
once, names the cause, and uses the eager ``fn`` from then on. On CUDA, ``mode="reduce-overhead"`` also captures
CUDA graphs, which removes the per-kernel launch cost of small networks.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import torch

F = TypeVar("F", bound=Callable[..., Any])

# Inductor settings for CPU programs of many small elementwise steps on [N, D] rows (a native env's rollout with
# random actions). On an AVX-512 CPU inductor vectorises a row of D = 2-6 values with 16-lane masked loads and
# stores, which costs more than scalar code; asked for 8 lanes, it emitted plain scalar loops for the whole CartPole
# program here (no vector code at all), which ran 1.3-1.6x faster. A C++ wrapper in place of the Python one that
# calls the kernels and allocates their buffers saves some 6% more at 16 steps of 4,096 copies (A/B in one process,
# 25.7M against 24.2M steps/s), for about 6 s more of a first compile (28 s against 22 s; seconds once cached).
# A CPU without AVX-512 already uses 8 lanes, so the first setting changes nothing there.
CPU_ELEMENTWISE_OPTIONS: dict[str, Any] = {"cpp.simdlen": 8, "cpp_wrapper": True}


def maybe_compile(fn: F, enabled: bool, device: torch.device | str = "cpu", name: str | None = None,
                  dynamic: bool | None = None, options: dict[str, Any] | None = None) -> F:
    """``torch.compile(fn)`` when ``enabled`` (CUDA graphs on CUDA), falling back to eager ``fn`` on any error.
    ``dynamic`` is ``torch.compile``'s: False compiles every new input shape for that shape (no code generic in
    the sizes), which matters when the same code is compiled for several sizes (torch caches by code object).
    ``options``: inductor settings for this function alone (e.g. :data:`CPU_ELEMENTWISE_OPTIONS`)."""
    if not enabled:
        return fn
    label = name or getattr(fn, "__name__", "function")
    mode = "reduce-overhead" if torch.device(device).type == "cuda" else None
    try:
        compiled = torch.compile(fn, mode=mode, dynamic=dynamic, options=options)
    except Exception as err:  # torch.compile itself can refuse (e.g. an unsupported Python version)
        warnings.warn(f"torch.compile is unavailable for {label} ({err}); running it eagerly", stacklevel=2)
        return fn
    state = {"fn": compiled}

    def call(*args: Any, **kwargs: Any) -> Any:
        if state["fn"] is fn:
            return fn(*args, **kwargs)
        try:
            return state["fn"](*args, **kwargs)
        except Exception as err:
            warnings.warn(f"compiling {label} failed ({type(err).__name__}: {err}); running it eagerly from now on",
                          stacklevel=2)
            state["fn"] = fn
            return fn(*args, **kwargs)

    call.__wrapped__ = fn  # type: ignore[attr-defined]
    return call  # type: ignore[return-value]
