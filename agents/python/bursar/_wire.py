"""The wire format (docs/protocol.md): requests written and replies read
as strictly as the C codec (agents/proto.c) reads them. A reply lacking a
field its operation needs, or holding one of the wrong type, is a
ProtocolError naming the field; nothing is defaulted. Unknown fields are
ignored (a newer controller may send more)."""

from __future__ import annotations

import json
import math
import re
from typing import Any, Dict, List, Optional, Tuple

from .errors import ProtocolError, error_from_reply
from .types import BucketModels, Catalog, Decision, Model

NAME_MAX = 63  # bytes of a bucket or model name (BURSAR_NAME_MAX - 1)
TOKEN_MAX = 320  # characters of a decision token (PROTO_TOKEN_MAX)
MAX_FALLBACKS = 64  # PROTO_MAX_FALLBACK
ERROR_MAX = 127  # bytes of a provider_error's text the controller keeps

_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,%d}" % TOKEN_MAX)
_TENANT_RE = re.compile(r"[A-Za-z0-9._-]{1,31}")

# ------------------------------------------------------------ arguments


def check_name(value: Any, field: str) -> str:
    """A bucket or model name: a str of 1 to 63 bytes (UTF-8)."""
    if not isinstance(value, str):
        raise TypeError(f'{field} must be a str, got {type(value).__name__}')
    n = len(value.encode("utf-8"))
    if not 1 <= n <= NAME_MAX:
        raise ValueError(f"{field} must have 1 to {NAME_MAX} bytes, got {n}")
    return value


def check_token(value: Any, field: str = "decision_id") -> str:
    """A decision token: 1 to 320 characters of [A-Za-z0-9_-]."""
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a str, got {type(value).__name__}")
    if not _TOKEN_RE.fullmatch(value):
        raise ValueError(
            f"{field} is not a decision token (1 to {TOKEN_MAX} characters "
            "of A-Z a-z 0-9 _ -)"
        )
    return value


def check_tenant(value: Any, field: str = "tenant") -> Optional[str]:
    """None, or 1 to 31 characters of [A-Za-z0-9._-]."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a str, got {type(value).__name__}")
    if not _TENANT_RE.fullmatch(value):
        raise ValueError(f"{field} must be 1 to 31 characters of A-Z a-z 0-9 . _ -")
    return value


def check_number(value: Any, field: str) -> float:
    """A finite number >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{field} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{field} must be a finite number >= 0, got {value!r}")
    return value


def encode(request: Dict[str, Any]) -> bytes:
    """One request frame: compact JSON, UTF-8."""
    return json.dumps(request, separators=(",", ":"), allow_nan=False).encode()


# -------------------------------------------------------------- replies


def _type(v: Any) -> str:
    """A JSON type name, for messages."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, list):
        return "an array"
    return "an object"


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _need(o: Dict[str, Any], at: str, key: str) -> Any:
    if key not in o:
        raise ProtocolError(f'reply field "{at}{key}" missing')
    return o[key]


def rd_str(o: Dict[str, Any], at: str, key: str, min_len: int = 1,
           max_len: int = NAME_MAX) -> str:
    """A required string of min_len..max_len bytes."""
    v = _need(o, at, key)
    if not isinstance(v, str):
        raise ProtocolError(f'reply field "{at}{key}" must be a string, got {_type(v)}')
    n = len(v.encode("utf-8"))
    if not min_len <= n <= max_len:
        raise ProtocolError(
            f'reply field "{at}{key}" must have {min_len} to {max_len} bytes, got {n}'
        )
    return v


def rd_num(o: Dict[str, Any], at: str, key: str, nullable: bool = False) -> Optional[float]:
    """A required finite number >= 0 (None for null when nullable)."""
    v = _need(o, at, key)
    if nullable and v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ProtocolError(f'reply field "{at}{key}" must be a number, got {_type(v)}')
    if not math.isfinite(v) or v < 0:
        raise ProtocolError(f'reply field "{at}{key}" must be >= 0, got {v!r}')
    return float(v)


def rd_float(o: Dict[str, Any], at: str, key: str) -> float:
    """A required finite number >= 0."""
    v = rd_num(o, at, key)
    assert v is not None
    return v


def rd_flag(o: Dict[str, Any], key: str) -> bool:
    """An optional boolean: absent is False."""
    v = o.get(key, False)
    if not isinstance(v, bool):
        raise ProtocolError(f'reply field "{key}" must be a boolean, got {_type(v)}')
    return v


def rd_typed(o: Dict[str, Any], at: str, key: str, kind: type) -> Any:
    """A required array (kind list) or object (kind dict)."""
    v = _need(o, at, key)
    if not isinstance(v, kind):
        want = "an array" if kind is list else "an object"
        raise ProtocolError(f'reply field "{at}{key}" must be {want}, got {_type(v)}')
    return v


def read_object(frame: bytes) -> Dict[str, Any]:
    """A reply frame's JSON object, ok or not."""
    try:
        o = json.loads(frame.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("reply is not valid JSON") from None
    if not isinstance(o, dict):
        raise ProtocolError(f"reply must be a JSON object, got {_type(o)}")
    return o


def read_envelope(frame: bytes) -> Dict[str, Any]:
    """The reply object of an ok reply. Raises the error's exception for an
    error reply, ProtocolError for a malformed one."""
    o = read_object(frame)
    ok = _need(o, "", "ok")
    if not isinstance(ok, bool):
        raise ProtocolError(f'reply field "ok" must be a boolean, got {_type(ok)}')
    if not ok:
        e = rd_typed(o, "", "error", dict)
        code = rd_str(e, "error.", "code", 1, 63)
        message = rd_str(e, "error.", "message", 0, 1 << 20)
        raise error_from_reply(code, message)
    rd_flag(o, "duplicate")
    return o


def _names(o: Dict[str, Any], at: str, key: str, limit: Optional[int]) -> Tuple[str, ...]:
    """An array of names (1..63 bytes each), field errors as at+key[i]."""
    arr = rd_typed(o, at, key, list)
    if limit is not None and len(arr) > limit:
        raise ProtocolError(f'reply field "{at}{key}" holds more than {limit} names')
    out: List[str] = []
    for i, v in enumerate(arr):
        out.append(rd_str({f"{key}[{i}]": v}, at, f"{key}[{i}]"))
    return tuple(out)


def read_choice(o: Dict[str, Any], bucket: str, tenant: Optional[str],
                escalates: Optional[str], excluded: Tuple[str, ...]) -> Decision:
    """A choose reply: decision_id, model, propensity, fallbacks and
    expected_cost_usd required; over_budget and explored optional."""
    token = rd_str(o, "", "decision_id", 1, TOKEN_MAX)
    if not _TOKEN_RE.fullmatch(token):
        raise ProtocolError(
            f'reply field "decision_id" must be a decision token (1 to {TOKEN_MAX} '
            "characters of A-Z a-z 0-9 _ -)"
        )
    model = rd_str(o, "", "model")
    propensity = rd_float(o, "", "propensity")
    if not 0 < propensity <= 1:
        raise ProtocolError(f'reply field "propensity" must be in (0, 1], got {propensity!r}')
    fallbacks = _names(o, "", "fallbacks", MAX_FALLBACKS)
    cost = rd_num(o, "", "expected_cost_usd", nullable=True)
    return Decision(
        id=token,
        bucket=bucket,
        model=model,
        propensity=propensity,
        fallbacks=fallbacks,
        expected_cost_usd=cost,
        over_budget=rd_flag(o, "over_budget"),
        explored=rd_flag(o, "explored"),
        tenant=tenant,
        escalates=escalates,
        excluded=excluded,
    )


def _read_model(m: Any, at: str) -> Model:
    if not isinstance(m, dict):
        raise ProtocolError(f'reply field "{at[:-1]}" must be an object, got {_type(m)}')
    provider = rd_str(m, at, "provider")
    if provider not in ("openai", "anthropic"):
        raise ProtocolError(f'reply field "{at}provider" must be "openai" or "anthropic"')
    health = None
    if "health" in m:
        health = rd_str(m, at, "health", 0)
    return Model(
        name=rd_str(m, at, "name"),
        provider=provider,
        model=rd_str(m, at, "model"),
        price_in_per_mtok=rd_float(m, at, "price_in_per_mtok"),
        price_out_per_mtok=rd_float(m, at, "price_out_per_mtok"),
        health=health,
    )


def _read_bucket(b: Any, at: str, known: Dict[str, Model]) -> BucketModels:
    if not isinstance(b, dict):
        raise ProtocolError(f'reply field "{at[:-1]}" must be an object, got {_type(b)}')
    name = rd_str(b, at, "name")
    models = _names(b, at, "models", None)
    for i, m in enumerate(models):
        if m not in known:
            raise ProtocolError(f'reply field "{at}models[{i}]": no model "{m}" in "models"')
        if m in models[:i]:
            raise ProtocolError(f'reply field "{at}models[{i}]": model "{m}" named twice')
    return BucketModels(
        name=name,
        models=models,
        expected_tokens_in=rd_float(b, at, "expected_tokens_in"),
        expected_tokens_out=rd_float(b, at, "expected_tokens_out"),
    )


def read_catalog(o: Dict[str, Any]) -> Catalog:
    """A models reply: every field of a model but health required; the
    buckets (optional: older controllers) must name known models, once."""
    models: List[Model] = []
    for i, m in enumerate(rd_typed(o, "", "models", list)):
        model = _read_model(m, f"models[{i}].")
        if any(x.name == model.name for x in models):
            raise ProtocolError(f'reply field "models[{i}].name": "{model.name}" named twice')
        models.append(model)
    if "buckets" not in o:
        return Catalog(models=tuple(models), buckets=None)
    known = {m.name: m for m in models}
    buckets: List[BucketModels] = []
    for i, b in enumerate(rd_typed(o, "", "buckets", list)):
        bucket = _read_bucket(b, f"buckets[{i}].", known)
        if any(x.name == bucket.name for x in buckets):
            raise ProtocolError(f'reply field "buckets[{i}].name": "{bucket.name}" named twice')
        buckets.append(bucket)
    return Catalog(models=tuple(models), buckets=tuple(buckets))


def read_stats(o: Dict[str, Any]) -> Dict[str, Any]:
    """A stats reply, checked where programs read it (time, decisions,
    policy, budget, buckets with their names and arms, health) and given
    as it came, without "ok"."""
    rd_num(o, "", "time")
    rd_num(o, "", "decisions")
    rd_typed(o, "", "policy", dict)
    budget = rd_typed(o, "", "budget", dict)
    for key in ("spent_usd", "reserved_usd", "requests"):
        rd_num(budget, "budget.", key)
    for i, b in enumerate(rd_typed(o, "", "buckets", list)):
        at = f"buckets[{i}]."
        if not isinstance(b, dict):
            raise ProtocolError(f'reply field "buckets[{i}]" must be an object, got {_type(b)}')
        rd_str(b, at, "name")
        rd_num(b, at, "pulls")
        for j, a in enumerate(rd_typed(b, at, "arms", list)):
            if not isinstance(a, dict):
                raise ProtocolError(f'reply field "{at}arms[{j}]" must be an object, got {_type(a)}')
            rd_str(a, f"{at}arms[{j}].", "model")
            rd_num(a, f"{at}arms[{j}].", "mean")
            rd_num(a, f"{at}arms[{j}].", "pulls")
    rd_typed(o, "", "health", list)
    return {k: v for k, v in o.items() if k != "ok"}


def read_export(o: Dict[str, Any]) -> Tuple[List[Dict[str, Any]], Optional[str]]:
    """An export page: its decisions (objects with a seq) and next."""
    rows = rd_typed(o, "", "decisions", list)
    for i, r in enumerate(rows):
        if not isinstance(r, dict):
            raise ProtocolError(f'reply field "decisions[{i}]" must be an object, got {_type(r)}')
        rd_str(r, f"decisions[{i}].", "seq", 16, 16)
    nxt = _need(o, "", "next")
    if nxt is not None:
        nxt = rd_str(o, "", "next", 16, 16)
    return rows, nxt
