"""The one error a user's bad input gets, raised before any work starts."""

from __future__ import annotations


class ConfigError(ValueError):
    """A bad dataset, method or hyperparameter, found before any work starts."""
