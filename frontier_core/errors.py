"""The errors a user can cause.

Every ``FrontierError`` message is one paragraph that says what is wrong,
where (file:line, config path, plugin and distribution) and what to do. The CLI
prints it and exits with status 2. Any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations


class FrontierError(Exception):
    """Base of all user-facing errors (bad config, trace, flag or plugin)."""

    exit_code = 2


class ConfigError(FrontierError):
    """A run configuration is invalid or cannot be realised (e.g. the model does not fit)."""


class TraceError(FrontierError):
    """A workload trace or length file cannot be read."""


class PluginError(FrontierError):
    """A plugin is missing, duplicated, or implements a hook that does not exist."""


class FrontierWarning(UserWarning):
    """Something the user should know that does not stop the run (e.g. a predictor that
    falls back to the roofline for lack of measured data). The CLI prints it as one
    ``warning:`` paragraph on stderr."""
