"""Black-box policy search: the tabular cross-entropy method (see :mod:`thorndike.search.cem`)."""

from thorndike.search.cem import TabularCEM, TabularCEMConfig

__all__ = ["TabularCEM", "TabularCEMConfig"]
