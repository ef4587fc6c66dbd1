"""Exceptions of the bursar client.

Every failure is a :class:`BursarError` carrying ``code``: the protocol's
error code (docs/protocol.md, "Errors") when the controller refused the
request, or one of the client's own codes:

* ``"timeout"`` (:class:`BursarTimeoutError`): no reply after every attempt;
* ``"bad_reply"`` (:class:`ProtocolError`): a reply that is not what the
  protocol says, the message naming the field.

Programs switch on ``code`` or catch a family: :class:`InvalidRequestError`,
:class:`NotFoundError`, :class:`ForbiddenError`, :class:`UnavailableError`.
"""

from __future__ import annotations

import builtins
from typing import Dict, Optional, Type

__all__ = [
    "BursarError",
    "BursarTimeoutError",
    "ProtocolError",
    "InvalidRequestError",
    "NotFoundError",
    "ForbiddenError",
    "UnavailableError",
    "error_from_reply",
    "KNOWN_CODES",
]


class BursarError(Exception):
    """Base of every error of the client.

    Attributes:
        code: the protocol's error code (``"unknown_bucket"``, ...), or the
            client's own ``"timeout"`` / ``"bad_reply"``.
        message: what went wrong, for people (names the offending field).
    """

    #: codes after which the same request may succeed later
    RETRYABLE = frozenset({"timeout", "rate_limited", "store_error"})

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        """True when sending the same request later may succeed (feedback
        is idempotent, so it may always be sent again)."""
        return self.code in self.RETRYABLE


class BursarTimeoutError(BursarError, builtins.TimeoutError):
    """Every attempt timed out: the controller is away, or (with CURVE) the
    handshake failed: a key it does not list, or the wrong server key.
    Also a :class:`TimeoutError`."""

    def __init__(self, message: str) -> None:
        BursarError.__init__(self, "timeout", message)


class ProtocolError(BursarError):
    """A reply that breaks the protocol: not JSON, not an object, a field
    missing or of the wrong type. The message names the field
    (``reply field "propensity" missing``)."""

    def __init__(self, message: str) -> None:
        super().__init__("bad_reply", message)


class InvalidRequestError(BursarError):
    """The controller found the request malformed: ``bad_json``,
    ``bad_request``, ``missing_field``, ``wrong_type``, ``invalid_value``,
    ``unknown_op``, ``message_too_large``."""


class NotFoundError(BursarError):
    """Something named does not exist: ``unknown_bucket``,
    ``unknown_decision`` (also a forged or altered token),
    ``decision_expired``, ``unknown_model``."""


class ForbiddenError(BursarError):
    """``forbidden``: beyond this client's role (docs/security.md)."""


class UnavailableError(BursarError):
    """The controller cannot serve this now: ``rate_limited`` and
    ``store_error`` (retry later), ``no_model_available`` (every model
    excluded or cooling down), ``bucket_limit``, ``budget_exhausted`` (a
    budget spent and configured to refuse), ``internal_error``."""


_FAMILIES: Dict[str, Type[BursarError]] = {}
for _cls, _codes in (
    (
        InvalidRequestError,
        (
            "bad_json",
            "bad_request",
            "missing_field",
            "wrong_type",
            "invalid_value",
            "unknown_op",
            "message_too_large",
        ),
    ),
    (
        NotFoundError,
        ("unknown_bucket", "unknown_decision", "decision_expired", "unknown_model"),
    ),
    (ForbiddenError, ("forbidden",)),
    (
        UnavailableError,
        (
            "rate_limited",
            "store_error",
            "no_model_available",
            "bucket_limit",
            "budget_exhausted",
            "internal_error",
            "budget_exhausted",
        ),
    ),
):
    for _code in _codes:
        _FAMILIES[_code] = _cls

#: every error code of the protocol (docs/protocol.md)
KNOWN_CODES = frozenset(_FAMILIES)


def error_from_reply(code: str, message: str) -> BursarError:
    """The exception for an error reply. A code this client does not know
    (a newer controller's) reads as ``internal_error``, its message keeping
    the code, as the protocol asks of clients."""
    if code not in _FAMILIES:
        message = f"{code}: {message}"
        code = "internal_error"
    cls: Optional[Type[BursarError]] = _FAMILIES.get(code)
    assert cls is not None
    return cls(code, message)
