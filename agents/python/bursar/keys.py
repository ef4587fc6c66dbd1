"""CURVE keys as bursar's programs read and write them (agents/keys.h,
docs/security.md).

A key is 32 bytes written in Z85: 40 characters. Where the client takes a
key it takes a *key spec*: the 40 characters themselves, or the path of a
key file. A key file holds one key on one line; empty lines and lines
that begin with ``#`` are comments. ``bursar keygen PREFIX`` writes
``PREFIX.key`` (the secret key, mode 0600) and ``PREFIX.pub`` (the public
key); :func:`write_pair` writes the same files.
"""

from __future__ import annotations

import os
import stat
from typing import Tuple, Union

import zmq
from zmq.utils import z85

__all__ = ["KEY_Z85", "key_valid", "load_key", "public_key", "write_pair", "KeySpec"]

KEY_Z85 = 40  # characters of a key in Z85

KeySpec = Union[str, "os.PathLike[str]", bytes]


def key_valid(s: Union[str, bytes]) -> bool:
    """True if s is exactly 40 characters that decode as Z85."""
    if isinstance(s, str):
        try:
            s = s.encode("ascii")
        except UnicodeEncodeError:
            return False
    if len(s) != KEY_Z85 or any(c not in z85.Z85CHARS for c in s):
        return False
    try:
        z85.decode(s)
    except (ValueError, KeyError, OverflowError):
        return False
    return True


def _key_line(text: str) -> Tuple[int, str]:
    """The first line that is neither empty nor a comment, trimmed, and its
    number (1-based); (0, "") when there is none."""
    for no, line in enumerate(text.split("\n"), 1):
        line = line.strip(" \t\r")
        if line and not line.startswith("#"):
            return no, line
    return 0, ""


def load_key(spec: KeySpec, secret: bool = False) -> str:
    """The Z85 text of a key spec (the key itself, or a key file's path).

    A secret key file (secret=True) that others may read is refused, as
    bursar's programs refuse it. Raises ValueError naming the file and
    line (or saying the text is not a key)."""
    if isinstance(spec, bytes):
        spec = spec.decode("utf-8", "surrogateescape")
    spec = os.fspath(spec)
    if not spec:
        raise ValueError("no key given")
    if key_valid(spec):
        return spec
    try:
        fd = os.open(spec, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise ValueError(
            f"{spec}: {e.strerror} (a key is 40 Z85 characters or the path of "
            "a key file)"
        ) from None
    try:
        mode = os.fstat(fd).st_mode
        if secret and mode & 0o077:
            raise ValueError(
                f"{spec}: a secret key file must not be readable by others "
                f"(mode {stat.S_IMODE(mode):03o}; chmod 600 {spec})"
            )
        data = os.read(fd, 1023)
    finally:
        os.close(fd)
    no, line = _key_line(data.decode("utf-8", "replace"))
    if not no:
        raise ValueError(f"{spec}: no key in the file")
    if not key_valid(line):
        raise ValueError(
            f"{spec}:{no}: not a key (40 Z85 characters expected, got "
            f"{len(line)} characters)"
        )
    return line


def public_key(secret_z85: str) -> str:
    """The public key of a secret key (both Z85)."""
    if not key_valid(secret_z85):
        raise ValueError("not a CURVE key (40 Z85 characters expected)")
    return zmq.curve_public(secret_z85.encode("ascii")).decode("ascii")


def write_pair(prefix: Union[str, "os.PathLike[str]"]) -> str:
    """Writes a new key pair as ``bursar keygen`` does: PREFIX.key (mode
    0600) and PREFIX.pub, neither overwritten if it exists. Returns the
    public key."""
    pub, sec = (k.decode("ascii") for k in zmq.curve_keypair())
    prefix = os.fspath(prefix)
    key_path, pub_path = f"{prefix}.key", f"{prefix}.pub"
    _write_new(
        key_path,
        "# bursar CURVE secret key: keep it private (mode 0600).\n"
        f"# Its public key: {pub}\n{sec}\n",
        0o600,
    )
    try:
        _write_new(pub_path, f"# bursar CURVE public key\n{pub}\n", 0o644)
    except OSError:
        os.unlink(key_path)
        raise
    return pub


def _write_new(path: str, text: str, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
