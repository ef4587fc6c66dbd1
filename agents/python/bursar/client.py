"""The client of bursard (docs/protocol.md, docs/python.md).

Transport: the "lazy pirate" pattern of the ZeroMQ guide, as the C client
(agents/bursar.h) uses it: one REQ socket, a poll with a timeout, and on
timeout the socket is closed (linger 0) and a new one made for the next
attempt, so that a late reply can never be taken for the answer to another
request. Retrying feedback is safe: the controller applies each kind of
feedback at most once per decision (a resent event is acknowledged with
``duplicate``). Retrying a choose may leave an orphan decision on the
controller, which reserves its expected cost until it expires after the
controller's ``decision_ttl_s``.
"""

from __future__ import annotations

import time
from typing import Any, Dict, Iterable, Iterator, Optional, Tuple, Union

import zmq

from . import _wire
from .errors import BursarTimeoutError, ProtocolError
from .keys import KeySpec, load_key, public_key
from .types import Ack, Catalog, Counters, Decision

__all__ = ["Client", "DEFAULT_ENDPOINT"]

DEFAULT_ENDPOINT = "tcp://127.0.0.1:7878"

DecisionRef = Union[Decision, str]


def _token(decision: DecisionRef) -> str:
    if isinstance(decision, Decision):
        return decision.id
    return _wire.check_token(decision)


class Client:
    """A client of bursard. Not thread-safe: use one per thread.

    Args:
        endpoint: where bursard listens (``tcp://host:port`` or ``ipc://path``).
        server_key: bursard's public key, for CURVE (docs/security.md): a
            key spec, the 40 Z85 characters or a key file's path
            (``server.pub``).
        secret_key: this client's secret key (a key spec: Z85 text or the
            path of the ``.key`` file ``bursar keygen`` wrote; a file others
            may read is refused). Both keys or neither.
        public_key: this client's public key; derived from secret_key when
            left out (given, it must match it).
        timeout: seconds to wait for each attempt's reply.
        retries: attempts after the first one times out (each on a fresh
            socket); a request fails with BursarTimeoutError after
            ``(retries + 1) * timeout`` seconds at most.
        tenant: the tenant (application) sent with every choose and
            escalate unless one names its own (1 to 31 characters of
            ``A-Z a-z 0-9 . _ -``).
        context: a ZeroMQ context to share (the caller terminates it);
            None: the client's own.

    Raises ValueError (or TypeError) for a bad argument or a key that
    cannot be read, naming it. Connects lazily, at the first request.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        server_key: Optional[KeySpec] = None,
        secret_key: Optional[KeySpec] = None,
        public_key: Optional[KeySpec] = None,
        timeout: float = 1.0,
        retries: int = 1,
        tenant: Optional[str] = None,
        context: Optional[zmq.Context] = None,
    ) -> None:
        if not isinstance(endpoint, str) or not endpoint:
            raise ValueError("endpoint must be a non-empty str (tcp://host:port, ipc://path)")
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0, got {retries!r}")
        self.endpoint = endpoint
        self.timeout = float(timeout)
        self.retries = retries
        self._tenant = _wire.check_tenant(tenant)
        self._curve = self._load_keys(server_key, secret_key, public_key)
        self._own_ctx = context is None
        self._ctx = zmq.Context() if context is None else context
        self._sock: Optional[zmq.Socket] = None
        self._closed = False
        #: what this client did so far (requests, timeouts, duplicates)
        self.counters = Counters()

    @staticmethod
    def _load_keys(
        server_key: Optional[KeySpec],
        secret_key: Optional[KeySpec],
        public: Optional[KeySpec],
    ) -> Optional[Tuple[str, str, str]]:
        """(server, public, secret) Z85 keys, or None without CURVE."""
        if server_key is None and secret_key is None:
            if public is not None:
                raise ValueError("public_key given without secret_key and server_key")
            return None
        if server_key is None or secret_key is None:
            given = "secret_key" if secret_key is not None else "server_key"
            raise ValueError(
                "CURVE needs both this client's secret key and the server's "
                f"public key; only {given} was given"
            )
        server = load_key(server_key, secret=False)
        secret = load_key(secret_key, secret=True)
        derived = public_key(secret)
        if public is not None and load_key(public) != derived:
            raise ValueError("public_key is not the public key of secret_key")
        return server, derived, secret

    # --------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Closes the socket (and the client's own context). Idempotent."""
        if self._closed:
            return
        self._drop_socket()
        if self._own_ctx:
            self._ctx.term()
        self._closed = True

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def tenant(self) -> Optional[str]:
        """The tenant sent with every later choose and escalate; settable
        (None clears it)."""
        return self._tenant

    @tenant.setter
    def tenant(self, value: Optional[str]) -> None:
        self._tenant = _wire.check_tenant(value)

    # --------------------------------------------------------- transport

    def _socket(self) -> zmq.Socket:
        if self._closed:
            raise RuntimeError("the client is closed")
        if self._sock is None:
            s = self._ctx.socket(zmq.REQ)
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.RECONNECT_IVL, 100)
            if self._curve:
                server, pub, sec = self._curve
                s.curve_serverkey = server.encode("ascii")
                s.curve_publickey = pub.encode("ascii")
                s.curve_secretkey = sec.encode("ascii")
            try:
                s.connect(self.endpoint)
            except zmq.ZMQError as e:
                s.close(0)
                raise ValueError(f"endpoint {self.endpoint!r}: {e}") from None
            self._sock = s
        return self._sock

    def _drop_socket(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def _attempt(self, frame: bytes) -> Optional[bytes]:
        """One attempt: the reply frame, or None on timeout (the socket is
        then dropped, and the next attempt makes a fresh one)."""
        sock = self._socket()
        deadline = time.monotonic() + self.timeout
        if sock.poll(int(self.timeout * 1000) + 1, zmq.POLLOUT):
            sock.send(frame, zmq.NOBLOCK)
            left = deadline - time.monotonic()
            if left > 0 and sock.poll(int(left * 1000) + 1, zmq.POLLIN):
                frames = sock.recv_multipart(zmq.NOBLOCK)
                if len(frames) != 1:
                    raise ProtocolError(
                        f"a reply is one frame, got {len(frames)} frames"
                    )
                return frames[0]
        self.counters.timeouts += 1
        self._drop_socket()
        return None

    def _rpc(self, request: Dict[str, Any]) -> bytes:
        """Sends one request with retries; the reply frame."""
        frame = _wire.encode(request)
        for _ in range(self.retries + 1):
            reply = self._attempt(frame)
            if reply is not None:
                self.counters.requests += 1
                return reply
        raise BursarTimeoutError(
            f"no reply from {self.endpoint} to {request.get('op')} after "
            f"{self.retries + 1} attempt(s) of {self.timeout:g} s (the "
            "controller is away, or with CURVE does not accept this "
            "client's key or is not the server key given)"
        )

    def _call(self, request: Dict[str, Any]) -> Dict[str, Any]:
        """An ok reply object; raises the error reply's exception."""
        return _wire.read_envelope(self._rpc(request))

    def request(self, request: Dict[str, Any]) -> Dict[str, Any]:
        """Sends one raw request object and returns the reply object as it
        came, ``ok`` false included (for tools and tests). Retried like
        every request; raises BursarTimeoutError, or ProtocolError for a
        reply that is not a JSON object."""
        return _wire.read_object(self._rpc(request))

    # -------------------------------------------------------- operations

    def ping(self) -> None:
        """{"op":"ping"}: returns when the controller answers."""
        self._call({"op": "ping"})

    def choose(
        self,
        bucket: str,
        exclude: Iterable[str] = (),
        *,
        tenant: Optional[str] = None,
    ) -> Decision:
        """Asks which model serves one request of bucket.

        Args:
            bucket: the bucket (1 to 63 bytes).
            exclude: models not to choose (names the bucket lacks are
                ignored by the controller).
            tenant: the tenant of this request; None: the client's.

        Raises NotFoundError (``unknown_bucket``), UnavailableError
        (``no_model_available``, ``rate_limited``, ...), ForbiddenError,
        BursarTimeoutError (a choose retried after a lost reply may leave
        an orphan decision that expires after decision_ttl_s),
        ProtocolError.
        """
        return self._choose(bucket, exclude, tenant, None)

    def escalate(
        self,
        prev: Decision,
        exclude: Optional[Iterable[str]] = None,
        *,
        tenant: Optional[str] = None,
    ) -> Decision:
        """Asks again for the request prev served, whose answer failed
        validation (a cascade): a choose in prev's bucket linked to prev
        (``escalates``), so that the controller records its step and
        off-policy evaluation judges the request as a whole.

        Args:
            prev: the decision whose answer failed.
            exclude: the models not to choose; None: every model tried so
                far (prev's ``excluded`` and ``model``).
            tenant: the tenant; None: prev's, else the client's.

        Raises what choose raises; NotFoundError ``unknown_decision`` when
        the controller did not make prev, ForbiddenError when prev is
        another client's.
        """
        if not isinstance(prev, Decision):
            raise TypeError(f"prev must be a Decision, got {type(prev).__name__}")
        if exclude is None:
            exclude = prev.excluded + (prev.model,)
        if tenant is None:
            tenant = prev.tenant
        return self._choose(prev.bucket, exclude, tenant, prev.id)

    def _choose(
        self,
        bucket: str,
        exclude: Iterable[str],
        tenant: Optional[str],
        escalates: Optional[str],
    ) -> Decision:
        _wire.check_name(bucket, "bucket")
        if isinstance(exclude, str):
            raise TypeError("exclude must be a sequence of model names, not a str")
        excluded = tuple(exclude)
        for i, m in enumerate(excluded):
            _wire.check_name(m, f"exclude[{i}]")
        tenant = _wire.check_tenant(tenant) if tenant is not None else self._tenant
        req: Dict[str, Any] = {"op": "choose", "bucket": bucket}
        if excluded:
            req["exclude"] = list(excluded)
        if escalates is not None:
            req["escalates"] = escalates
        if tenant is not None:
            req["tenant"] = tenant
        return _wire.read_choice(self._call(req), bucket, tenant, escalates, excluded)

    def feedback(self, decision: DecisionRef, kind: str, **fields: Any) -> Ack:
        """Reports one feedback event on decision (a Decision or its token):
        kind ``"outcome"``, ``"correction"`` or ``"provider_error"`` with the
        kind's fields (docs/protocol.md, feedback). :meth:`outcome`,
        :meth:`correction` and :meth:`provider_error` check the fields and
        call this. Retried on timeout: each kind applies at most once per
        decision, so a resent event is acknowledged ``duplicate``.

        Raises NotFoundError (``unknown_decision``: a token the controller
        did not make, altered or forged; ``decision_expired``;
        ``unknown_model``), ForbiddenError (another client's decision),
        InvalidRequestError (a figure above the controller's ceilings),
        UnavailableError (``rate_limited``, ``store_error``: nothing was
        recorded, send it again later), BursarTimeoutError, ProtocolError.
        """
        if kind not in ("outcome", "correction", "provider_error"):
            raise ValueError(
                f'kind must be "outcome", "correction" or "provider_error", got {kind!r}'
            )
        req: Dict[str, Any] = {"op": "feedback", "decision_id": _token(decision), "kind": kind}
        req.update({k: v for k, v in fields.items() if v is not None})
        reply = self._call(req)
        ack = Ack(duplicate=_wire.rd_flag(reply, "duplicate"))
        if ack.duplicate:
            self.counters.duplicates += 1
        return ack

    def outcome(
        self,
        decision: DecisionRef,
        *,
        success: Optional[bool] = None,
        reward: Optional[float] = None,
        cost_usd: Optional[float] = None,
        tokens_in: Optional[int] = None,
        tokens_out: Optional[int] = None,
        latency_ms: Optional[float] = None,
        model: Optional[str] = None,
    ) -> Ack:
        """Reports what happened to the answer: exactly one of success
        (bool) or reward (in [0, 1]); optional real cost (USD), tokens
        (the controller prices them when cost_usd is left out), latency
        (ms), and the model that actually served when a fallback did."""
        if (success is None) == (reward is None):
            raise ValueError("give exactly one of success and reward")
        if success is not None and not isinstance(success, bool):
            raise TypeError(f"success must be a bool, got {type(success).__name__}")
        if reward is not None and _wire.check_number(reward, "reward") > 1:
            raise ValueError(f"reward must be in [0, 1], got {reward!r}")
        for name, v in (("cost_usd", cost_usd), ("latency_ms", latency_ms)):
            if v is not None:
                _wire.check_number(v, name)
        for name, v in (("tokens_in", tokens_in), ("tokens_out", tokens_out)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        if model is not None:
            _wire.check_name(model, "model")
        return self.feedback(
            decision,
            "outcome",
            success=success,
            reward=reward,
            cost_usd=cost_usd,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_ms=latency_ms,
            model=model,
        )

    def correction(self, decision: DecisionRef) -> Ack:
        """The user corrected the answer later: the decision's reward
        becomes 0 (before or after its outcome)."""
        return self.feedback(decision, "correction")

    def provider_error(self, decision: DecisionRef, error: Optional[str] = None) -> Ack:
        """The provider of the decision's model failed (a timeout, a 5xx):
        feeds the model's health, not its posterior. The decision stays
        open: report the outcome of the fallback that served with
        ``model``. The controller keeps 127 bytes of error."""
        if error is not None and not isinstance(error, str):
            raise TypeError(f"error must be a str, got {type(error).__name__}")
        return self.feedback(decision, "provider_error", error=error)

    def models(self) -> Catalog:
        """{"op":"models"}: the configured models and the buckets served."""
        return _wire.read_catalog(self._call({"op": "models"}))

    def stats(self, bucket: Optional[str] = None) -> Dict[str, Any]:
        """{"op":"stats"} (needs the operator role with CURVE): the reply
        object of docs/protocol.md, without ``ok``: ``budget``, ``buckets``
        with their ``arms``, ``health``, ... A bucket names one bucket."""
        req: Dict[str, Any] = {"op": "stats"}
        if bucket is not None:
            req["bucket"] = _wire.check_name(bucket, "bucket")
        return _wire.read_stats(self._call(req))

    def export(self, since: Optional[float] = None, limit: int = 1000) -> Iterator[Dict[str, Any]]:
        """The decision log (operator role), oldest first, one dict per
        decision as docs/protocol.md's export gives it; pages of limit
        (1 to 10000) are asked for as the iteration goes."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10000:
            raise ValueError(f"limit must be an int in [1, 10000], got {limit!r}")
        after: Optional[str] = None
        while True:
            req: Dict[str, Any] = {"op": "export", "limit": limit}
            if since is not None:
                req["since"] = _wire.check_number(since, "since")
            if after is not None:
                req["after"] = after
            rows, after = _wire.read_export(self._call(req))
            yield from rows
            if after is None:
                return
