"""bursar: a Python client of bursard, the budget-aware LLM router.

    from bursar import Client

    with Client("tcp://127.0.0.1:7878") as c:
        d = c.choose("code")              # d.model serves the request
        ...                               # call it, validate the answer
        c.outcome(d, success=True, cost_usd=0.0021, latency_ms=812)

Pure Python on pyzmq; speaks the wire protocol of docs/protocol.md.
See docs/python.md.
"""

from .client import DEFAULT_ENDPOINT, Client
from .errors import (
    BursarError,
    BursarTimeoutError,
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    ProtocolError,
    UnavailableError,
)
from .keys import load_key, public_key, write_pair
from .types import Ack, BucketModels, Catalog, Counters, Decision, Model

__version__ = "0.1.0"

__all__ = [
    "Client",
    "DEFAULT_ENDPOINT",
    "Decision",
    "Ack",
    "Model",
    "BucketModels",
    "Catalog",
    "Counters",
    "BursarError",
    "BursarTimeoutError",
    "ProtocolError",
    "InvalidRequestError",
    "NotFoundError",
    "ForbiddenError",
    "UnavailableError",
    "load_key",
    "public_key",
    "write_pair",
    "__version__",
]
