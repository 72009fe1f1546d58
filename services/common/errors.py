"""The project's exceptions: one root, so callers can catch "ours" and nothing else.

The CLI maps exactly these to exit codes; anything else is a bug and shows its
traceback.
"""

from __future__ import annotations


class ClickstreamError(Exception):
    """Root of every error this project raises on purpose."""

    exit_code = 1


class ConfigError(ClickstreamError, ValueError):
    """A setting has a value the service cannot use."""

    exit_code = 2


class TopicNotFound(ClickstreamError):
    """A topic the service needs does not exist."""

    exit_code = 2


class BrokerUnavailable(ClickstreamError):
    """The broker did not answer within the bounded retries."""

    exit_code = 2


class StateStoreUnavailable(ClickstreamError):
    """Redis did not answer within the retry budget."""

    exit_code = 3


class PublishError(ClickstreamError):
    """A topic did not confirm a record within its bounds."""

    exit_code = 4
