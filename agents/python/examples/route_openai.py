#!/usr/bin/env python3
"""Route one call of an OpenAI-compatible chat API through bursar
(docs/python.md): ask bursard which model serves, call it with plain
urllib (no SDK needed), validate the answer (here: it must be a JSON
object), report the outcome with its cost and tokens, fall back to the
next model when the provider fails, and escalate to another model when
the answer fails validation.

    route_openai.py --models bursard.json --bucket extraction \\
        'Give {"city": ...} for: I live in Paris.'

Prints the valid answer on stdout (exit 0), the path taken on stderr;
exit 1 when no model gave a valid answer or bursard could not be asked,
2 on a bad argument or models table.

Where each model is called, and with which key, is this program's own
configuration, never the controller's: bursard names models and prices
only (docs/security.md). --models FILE is a models table as bursar-agent
--models reads it (docs/agents.md; bursard's configuration file is one):
each model's provider, model id, base_url and api_key_env, the key read
from that environment variable. --base-url URL calls every model at that
one OpenAI-compatible endpoint instead (a gateway serving them all, the
mock provider), with the key in $BURSAR_API_KEY (--api-key-env).

Only models this program can call are ever chosen: the others are passed
in every choose's "exclude", each said once on stderr with the reason
(provider "anthropic": another wire format; not in the table; its key
variable unset). So a provider error it reports is the provider's, never
a call sent to the wrong place.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Dict, List, Optional, Tuple

import bursar

PROG = "route_openai.py"
PUBLIC_URL = {"openai": "https://api.openai.com/v1",
              "anthropic": "https://api.anthropic.com/v1"}
# a model's fields in a models table (proto.c, proto_model_keys)
MODEL_KEYS = ("name", "provider", "model", "base_url", "api_key_env",
              "price_in_per_mtok", "price_out_per_mtok", "health")


class ProviderFailed(Exception):
    """The provider gave no usable answer (HTTP error, timeout, bad body)."""


class BadTable(Exception):
    """A models table or URL this program refuses, naming the field."""


class Endpoint:
    """Where one model is called: its provider's model id, the base URL,
    the API key (None: no Authorization header)."""

    def __init__(self, model: str, base_url: str, api_key: Optional[str]) -> None:
        self.model, self.base_url, self.api_key = model, base_url, api_key


def check_url(url: str, what: str) -> None:
    """https, or http to a loopback address only (as bursar-agent): an API
    key never crosses a network in clear."""
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https" and u.hostname:
        return
    if u.scheme != "http" or not u.hostname:
        raise BadTable(f"{what}: must be an https URL (or http to a loopback address), "
                       f"got {url!r}")
    host = u.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise BadTable(f"{what}: http is allowed only to a loopback address, got {url!r}")


def _field(m: dict, at: str, key: str, kind: type, required: bool):
    if key not in m:
        if required:
            raise BadTable(f'field "{at}.{key}" missing')
        return None
    v = m[key]
    if kind is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
        want = "a number >= 0"
    else:
        ok = isinstance(v, kind)
        want = "a string"
    if not ok:
        raise BadTable(f'field "{at}.{key}" must be {want}, got {json.dumps(v)}')
    return v


def read_table(path: str) -> Dict[str, dict]:
    """The models table of FILE (docs/agents.md, "Models"): its "models",
    an array of the models reply's shape or an object keyed by name
    (bursard's configuration). Name -> {provider, model, base_url,
    api_key_env}, with bursard's defaults."""
    try:
        with open(path, encoding="utf-8") as f:
            root = json.load(f)
    except OSError as e:
        raise BadTable(f"cannot read it: {e.strerror}") from None
    except ValueError as e:
        raise BadTable(f"not valid JSON: {e}") from None
    models = root.get("models") if isinstance(root, dict) else None
    if isinstance(models, dict):
        items = [(f"models.{k}", k, m) for k, m in models.items()]
    elif isinstance(models, list):
        items = [(f"models[{i}]", None, m) for i, m in enumerate(models)]
    else:
        raise BadTable('field "models" must be an object or an array of models')
    table: Dict[str, dict] = {}
    for at, key, m in items:
        if not isinstance(m, dict):
            raise BadTable(f'field "{at}" must be an object')
        for k in m:
            if k not in MODEL_KEYS:
                raise BadTable(f'field "{at}.{k}" is not a model field ({", ".join(MODEL_KEYS)})')
        name = _field(m, at, "name", str, key is None)
        if key is not None and name is not None and name != key:
            raise BadTable(f'field "{at}.name" must be the model\'s key "{key}"')
        name = key if key is not None else name
        if not name or name in table:
            raise BadTable(f'field "{at}": the model name "{name}" is empty or given twice')
        provider = _field(m, at, "provider", str, True)
        if provider not in PUBLIC_URL:
            raise BadTable(f'field "{at}.provider" must be "openai" or "anthropic"')
        _field(m, at, "price_in_per_mtok", float, True)
        _field(m, at, "price_out_per_mtok", float, True)
        _field(m, at, "health", str, False)
        base_url = _field(m, at, "base_url", str, False) or PUBLIC_URL[provider]
        check_url(base_url, f'field "{at}.base_url"')
        table[name] = {"provider": provider,
                       "model": _field(m, at, "model", str, False) or name,
                       "base_url": base_url,
                       "api_key_env": _field(m, at, "api_key_env", str, False) or ""}
    return table


def endpoints(catalog: bursar.Catalog, bucket: str, table: Optional[Dict[str, dict]],
              args: argparse.Namespace) -> Tuple[Dict[str, Endpoint], List[str]]:
    """The models this program can call, and the others (said on stderr
    once, with the reason: they go in every choose's exclude)."""
    try:
        names = list(catalog.bucket(bucket).models)
    except KeyError:  # a bucket the reply does not list: every model
        names = [m.name for m in catalog.models]
    where = args.models or "the table"
    callable_: Dict[str, Endpoint] = {}
    skipped: List[str] = []
    for name in names:
        m = catalog.model(name)
        t = table.get(name) if table is not None else None
        provider = t["provider"] if t else m.provider
        why = None
        if table is not None and t is None:
            why = f"not in {where}, so where it is served is unknown"
        elif provider != "openai":
            why = f'provider "{provider}": this example speaks only OpenAI\'s chat completions'
        elif args.base_url:
            callable_[name] = Endpoint(t["model"] if t else m.model, args.base_url,
                                       os.environ[args.api_key_env])
        elif t["api_key_env"] and not os.environ.get(t["api_key_env"]):
            why = f"${t['api_key_env']} is not set (its API key, as {where} says)"
        else:
            callable_[name] = Endpoint(t["model"], t["base_url"],
                                       os.environ.get(t["api_key_env"]) if t["api_key_env"] else None)
        if why:
            skipped.append(name)
            print(f"skip: {name}: {why}; excluded from every choose", file=sys.stderr)
    for name, e in callable_.items():
        print(f"model: {name} at {e.base_url} ({e.model})", file=sys.stderr)
    return callable_, skipped


def call_chat(e: Endpoint, prompt: str, timeout: float) -> Tuple[str, int, int]:
    """POST {base_url}/chat/completions; the answer's text and its tokens
    (usage.prompt_tokens, usage.completion_tokens)."""
    body = json.dumps({"model": e.model,
                       "messages": [{"role": "user", "content": prompt}]}).encode()
    headers = {"Content-Type": "application/json"}
    if e.api_key:
        headers["Authorization"] = f"Bearer {e.api_key}"
    req = urllib.request.Request(e.base_url.rstrip("/") + "/chat/completions",
                                 data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            reply = json.loads(resp.read())
    except urllib.error.HTTPError as err:
        raise ProviderFailed(f"HTTP {err.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise ProviderFailed(f"no answer: {err}") from None
    except ValueError:
        raise ProviderFailed("a body that is not JSON") from None
    try:
        text = reply["choices"][0]["message"]["content"] or ""
        usage = reply.get("usage") or {}
        return text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise ProviderFailed("a body without choices[0].message.content") from None


def valid(answer: str) -> bool:
    """The task's validator: the answer must be a JSON object."""
    try:
        return isinstance(json.loads(answer), dict)
    except ValueError:
        return False


def serve(client: bursar.Client, catalog: bursar.Catalog, d: bursar.Decision,
          where: Dict[str, Endpoint], args: argparse.Namespace,
          tried: list) -> Optional[str]:
    """One step of the cascade: the decision's model, else its fallbacks in
    order; the outcome reported. Returns the answer if it is valid."""
    for name in d.candidates:
        e = where.get(name)
        if e is None:  # not in the catalog read at start: not called, nothing reported
            print(f"step: {name} skipped: not a model this program can call", file=sys.stderr)
            tried.append(name)
            continue
        tried.append(name)
        t0 = time.monotonic()
        try:
            text, tokens_in, tokens_out = call_chat(e, args.prompt, args.timeout)
        except ProviderFailed as err:
            print(f"step: {name} failed ({err}); reported, next model", file=sys.stderr)
            client.provider_error(d, str(err))
            continue
        latency_ms = (time.monotonic() - t0) * 1000
        ok = valid(text)
        client.outcome(d, success=ok,
                       cost_usd=catalog.model(name).cost_usd(tokens_in, tokens_out),
                       tokens_in=tokens_in, tokens_out=tokens_out,
                       latency_ms=latency_ms, model=None if name == d.model else name)
        print(f"step: {name} answered, {'valid' if ok else 'invalid'} "
              f"({tokens_in}+{tokens_out} tokens)", file=sys.stderr)
        return text if ok else None
    return None


def route(client: bursar.Client, table: Optional[Dict[str, dict]],
          args: argparse.Namespace) -> int:
    catalog = client.models()  # provider model ids and prices
    where, skipped = endpoints(catalog, args.bucket, table, args)
    if not where:
        print(f"{PROG}: no model of bucket {args.bucket!r} that this program can call",
              file=sys.stderr)
        return 1
    d = client.choose(args.bucket, exclude=skipped)
    tried: list = []
    for step in range(args.max_steps):
        print(f"step {step}: bursar chose {d.model} (p={d.propensity:.2f})", file=sys.stderr)
        answer = serve(client, catalog, d, where, args, tried)
        if answer is not None:
            print(answer)
            return 0
        if step + 1 == args.max_steps:
            break
        try:  # ask again without the models tried so far
            d = client.escalate(d, exclude=tried + skipped)
        except bursar.UnavailableError as e:  # no_model_available
            print(f"no model left: {e.message}", file=sys.stderr)
            break
    print("no valid answer", file=sys.stderr)
    return 1


def parse_args() -> Tuple[argparse.Namespace, Optional[Dict[str, dict]]]:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("prompt")
    p.add_argument("--controller", default=os.environ.get("BURSAR_CONTROLLER",
                                                          bursar.DEFAULT_ENDPOINT))
    p.add_argument("--bucket", default="extraction")
    p.add_argument("--models", metavar="FILE",
                   help="where each model is served: a models table (docs/agents.md), "
                        "bursard's configuration file among them")
    p.add_argument("--base-url", metavar="URL",
                   help="call every model at this one OpenAI-compatible endpoint instead "
                        "(a gateway serving them all, the mock provider)")
    p.add_argument("--api-key-env", default="BURSAR_API_KEY", metavar="VAR",
                   help="with --base-url: the variable holding the API key")
    p.add_argument("--key", default=os.environ.get("BURSAR_KEY"),
                   help="CURVE: this client's secret key (else $BURSAR_KEY)")
    p.add_argument("--server-key", default=os.environ.get("BURSAR_SERVER_KEY"),
                   help="CURVE: bursard's public key (else $BURSAR_SERVER_KEY)")
    p.add_argument("--max-steps", type=int, default=3)
    p.add_argument("--timeout", type=float, default=60, help="seconds per call")
    args = p.parse_args()
    if not args.models and not args.base_url:
        p.error("give --models FILE (where each model is served) or --base-url URL "
                "(one endpoint serving every model)")
    table = None
    try:
        if args.base_url:
            check_url(args.base_url, "--base-url")
    except BadTable as e:
        p.error(str(e))
    try:
        if args.models:
            table = read_table(args.models)
    except BadTable as e:
        p.error(f"{args.models}: {e}")
    if args.base_url and not os.environ.get(args.api_key_env):
        p.error(f"${args.api_key_env} is not set (the API key for --base-url)")
    return args, table


def main() -> int:
    args, table = parse_args()
    try:
        client = bursar.Client(args.controller, secret_key=args.key,
                               server_key=args.server_key)
    except (ValueError, TypeError) as e:  # a bad endpoint or CURVE key
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    try:
        with client:
            return route(client, table, args)
    except bursar.BursarError as e:  # the controller away, a refusal, ...
        print(f"{PROG}: bursard at {args.controller}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
