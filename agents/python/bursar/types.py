"""Typed results of the bursar client (docs/protocol.md, "Operations")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

__all__ = ["Decision", "Ack", "Model", "BucketModels", "Catalog", "Counters"]


@dataclass(frozen=True)
class Decision:
    """The controller's answer to a choose: which model serves one request.

    Attributes:
        id: the decision token, opaque; quoted in every feedback about the
            request and in an escalation (at most 320 characters of
            ``[A-Za-z0-9_-]``).
        bucket: the bucket asked for.
        model: the model to call (a routing name: ``Client.models()`` says
            which provider and model id it is).
        propensity: the probability with which this model was chosen, in
            (0, 1] (off-policy evaluation).
        fallbacks: the other models to use, in order, when the provider of
            ``model`` fails (report that failure: ``Client.provider_error``).
        expected_cost_usd: the cost reserved against the budget until the
            outcome reports the real one; None when no estimate is finite.
        over_budget: no allowed model was affordable; the cheapest was chosen.
        explored: the choice came from the exploration floor.
        tenant: the tenant named in the choose, if any.
        escalates: the token of the decision this one escalates (made by
            ``Client.escalate``), else None.
        excluded: the models its choose excluded (an escalation by default
            excludes these and ``model``: every model tried so far).
    """

    id: str
    bucket: str
    model: str
    propensity: float
    fallbacks: Tuple[str, ...]
    expected_cost_usd: Optional[float]
    over_budget: bool = False
    explored: bool = False
    tenant: Optional[str] = None
    escalates: Optional[str] = None
    excluded: Tuple[str, ...] = ()

    @property
    def candidates(self) -> Tuple[str, ...]:
        """The model and its fallbacks, in the order to try them."""
        return (self.model,) + self.fallbacks


@dataclass(frozen=True)
class Ack:
    """The controller's acknowledgement of a feedback event, durable when
    returned. ``duplicate`` is True when this kind of event had already
    been applied to the decision (a retry, a second report): nothing
    changed."""

    duplicate: bool = False


@dataclass(frozen=True)
class Model:
    """A configured model as ``models`` gives it: its routing name, the
    wire format of its provider (``"openai"`` or ``"anthropic"``), the
    provider's model id, prices in USD per million tokens, and the arm's
    health (``"ok"``, ``"cooldown"``, ...; None when not sent)."""

    name: str
    provider: str
    model: str
    price_in_per_mtok: float
    price_out_per_mtok: float
    health: Optional[str] = None

    def cost_usd(self, tokens_in: int, tokens_out: int) -> float:
        """What tokens_in + tokens_out cost at this model's prices."""
        return (
            tokens_in * self.price_in_per_mtok + tokens_out * self.price_out_per_mtok
        ) / 1e6


@dataclass(frozen=True)
class BucketModels:
    """A bucket the controller serves: the models it allows and the tokens
    a request of it is expected to take."""

    name: str
    models: Tuple[str, ...]
    expected_tokens_in: float
    expected_tokens_out: float


@dataclass(frozen=True)
class Catalog:
    """The ``models`` reply: every configured model, and every bucket the
    controller serves (None from an older controller that does not send
    them). Where a model is served and with which key is the caller's own
    configuration, never the controller's (docs/security.md)."""

    models: Tuple[Model, ...]
    buckets: Optional[Tuple[BucketModels, ...]]

    def model(self, name: str) -> Model:
        """The model of this routing name; KeyError if none."""
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def bucket(self, name: str) -> BucketModels:
        """The bucket of this name; KeyError if none (or none were sent)."""
        for b in self.buckets or ():
            if b.name == name:
                return b
        raise KeyError(name)


@dataclass
class Counters:
    """What a client did so far: requests answered by the controller,
    attempts that timed out (each followed by a fresh socket), and
    feedback acknowledgements marked duplicate."""

    requests: int = 0
    timeouts: int = 0
    duplicates: int = 0
