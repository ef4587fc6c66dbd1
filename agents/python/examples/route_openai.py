#!/usr/bin/env python3
"""Route one call of an OpenAI-compatible chat API through bursar
(docs/python.md): ask bursard which model serves, call it with plain
urllib (no SDK needed), validate the answer (here: it must be a JSON
object), report the outcome with its cost and tokens, fall back to the
next model when the provider fails, and escalate to another model when
the answer fails validation.

    BURSAR_API_KEY=sk-... route_openai.py --base-url https://api.example.com/v1 \\
        --bucket extraction 'Give {"city": ...} for: I live in Paris.'

Prints the valid answer on stdout (exit 0), the path taken on stderr;
exit 1 when no model gave a valid answer, 2 on a bad argument.

Where a model is called, and with which key, is this program's own
configuration (--base-url, --api-key-env), never the controller's:
bursard names models and prices only (docs/security.md). Every model is
called at the one --base-url (an OpenAI-compatible gateway serving them
all); only models whose provider is "openai" (the wire format) are called.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Optional, Tuple

import bursar


class ProviderFailed(Exception):
    """The provider gave no usable answer (HTTP error, timeout, bad body)."""


def call_chat(base_url: str, api_key: str, model: str, prompt: str,
              timeout: float) -> Tuple[str, int, int]:
    """POST {base_url}/chat/completions; the answer's text and its tokens
    (usage.prompt_tokens, usage.completion_tokens)."""
    body = json.dumps({"model": model,
                       "messages": [{"role": "user", "content": prompt}]}).encode()
    req = urllib.request.Request(
        base_url.rstrip("/") + "/chat/completions", data=body, method="POST",
        headers={"Content-Type": "application/json",
                 "Authorization": f"Bearer {api_key}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            reply = json.loads(resp.read())
    except urllib.error.HTTPError as e:
        raise ProviderFailed(f"HTTP {e.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as e:
        raise ProviderFailed(f"no answer: {e}") from None
    except ValueError:
        raise ProviderFailed("a body that is not JSON") from None
    try:
        text = reply["choices"][0]["message"]["content"] or ""
        usage = reply.get("usage") or {}
        return text, int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
    except (KeyError, IndexError, TypeError, ValueError):
        raise ProviderFailed("a body without choices[0].message.content") from None


def valid(answer: str) -> bool:
    """The task's validator: the answer must be a JSON object."""
    try:
        return isinstance(json.loads(answer), dict)
    except ValueError:
        return False


def serve(client: bursar.Client, catalog: bursar.Catalog, d: bursar.Decision,
          args: argparse.Namespace, api_key: str, tried: list) -> Optional[str]:
    """One step of the cascade: the decision's model, else its fallbacks in
    order; the outcome reported. Returns the answer if it is valid."""
    for name in d.candidates:
        model = catalog.model(name)
        if model.provider != "openai":
            continue  # another wire format: not called by this example
        tried.append(name)
        t0 = time.monotonic()
        try:
            text, tokens_in, tokens_out = call_chat(
                args.base_url, api_key, model.model, args.prompt, args.timeout)
        except ProviderFailed as e:
            print(f"step: {name} failed ({e}); reported, next model", file=sys.stderr)
            client.provider_error(d, str(e))
            continue
        latency_ms = (time.monotonic() - t0) * 1000
        ok = valid(text)
        client.outcome(d, success=ok, cost_usd=model.cost_usd(tokens_in, tokens_out),
                       tokens_in=tokens_in, tokens_out=tokens_out,
                       latency_ms=latency_ms, model=None if name == d.model else name)
        print(f"step: {name} answered, {'valid' if ok else 'invalid'} "
              f"({tokens_in}+{tokens_out} tokens)", file=sys.stderr)
        return text if ok else None
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("prompt")
    p.add_argument("--controller", default=os.environ.get("BURSAR_CONTROLLER",
                                                          bursar.DEFAULT_ENDPOINT))
    p.add_argument("--bucket", default="extraction")
    p.add_argument("--base-url", default="https://api.openai.com/v1")
    p.add_argument("--api-key-env", default="BURSAR_API_KEY",
                   help="the variable holding the API key")
    p.add_argument("--key", default=os.environ.get("BURSAR_KEY"),
                   help="CURVE: this client's secret key (else $BURSAR_KEY)")
    p.add_argument("--server-key", default=os.environ.get("BURSAR_SERVER_KEY"),
                   help="CURVE: bursard's public key (else $BURSAR_SERVER_KEY)")
    p.add_argument("--max-steps", type=int, default=3)
    p.add_argument("--timeout", type=float, default=60, help="seconds per call")
    args = p.parse_args()
    api_key = os.environ.get(args.api_key_env)
    if not api_key:
        p.error(f"${args.api_key_env} is not set (the API key)")

    with bursar.Client(args.controller, secret_key=args.key,
                       server_key=args.server_key) as client:
        catalog = client.models()
        d = client.choose(args.bucket)
        tried: list = []
        for step in range(args.max_steps):
            print(f"step {step}: bursar chose {d.model} (p={d.propensity:.2f})",
                  file=sys.stderr)
            answer = serve(client, catalog, d, args, api_key, tried)
            if answer is not None:
                print(answer)
                return 0
            if step + 1 == args.max_steps:
                break
            try:  # ask again without the models tried so far
                d = client.escalate(d, exclude=tried)
            except bursar.UnavailableError as e:  # no_model_available
                print(f"no model left: {e.message}", file=sys.stderr)
                break
    print("no valid answer", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
