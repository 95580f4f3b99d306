"""Bearer-token authentication with two roles: readers (Search, Route, GetVideo, sound queries) and
writers (Ingest, DeleteVideo, RecordEngagement, Route with store). A token may hold both roles.

Token files hold one ``<name> <token>`` pair per line (``#`` starts a comment). Only SHA-256 digests
of tokens are kept in memory, and only the token's name is ever logged. With no token files
configured, authentication is off (every caller is ``anonymous`` with both roles) and the server
says so in its start-up log. Health checks and reflection never need a token.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from coldopen.domain.errors import PermissionDenied, Unauthenticated

log = logging.getLogger(__name__)

READ = "reader"
WRITE = "writer"


@dataclass(frozen=True)
class Caller:
    name: str
    roles: frozenset[str]


ANONYMOUS = Caller("anonymous", frozenset({READ, WRITE}))


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def read_token_file(path: Path) -> list[tuple[str, str]]:
    """(name, token) pairs; raises ValueError naming the line when the file is malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"token file {path} cannot be read ({e.strerror}); check the path and its permissions") from None
    pairs = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 2 or len(parts[1]) < 16:
            raise ValueError(
                f"token file {path} line {n} is not '<name> <token>' with a token of at least 16 characters"
            )
        pairs.append((parts[0], parts[1]))
    return pairs


class Authenticator:
    def __init__(self, readers: Iterable[tuple[str, str]] = (), writers: Iterable[tuple[str, str]] = ()):
        roles: dict[bytes, tuple[str, set[str]]] = {}
        for role, pairs in ((READ, readers), (WRITE, writers)):
            for name, token in pairs:
                entry = roles.setdefault(_digest(token), (name, set()))
                entry[1].add(role)
        self._callers = {d: Caller(name, frozenset(r)) for d, (name, r) in roles.items()}
        self.enabled = bool(self._callers)

    @classmethod
    def from_files(cls, reader_file: Path | None, writer_file: Path | None) -> Authenticator:
        readers = read_token_file(reader_file) if reader_file else []
        writers = read_token_file(writer_file) if writer_file else []
        auth = cls(readers, writers)
        if auth.enabled:
            log.info("authentication on: %d reader and %d writer tokens", len(readers), len(writers))
        else:
            log.warning("authentication OFF: no token files configured; every caller may read and write")
        return auth

    def authenticate(self, metadata: Iterable[tuple[str, str | bytes]]) -> Caller:
        if not self.enabled:
            return ANONYMOUS
        header = next((v for k, v in metadata if k == "authorization"), None)
        if header is None:
            raise Unauthenticated(
                "this server requires a bearer token: send metadata 'authorization: Bearer <token>' "
                "(coldopen --token or COLDOPEN_TOKEN)"
            )
        if isinstance(header, bytes):
            header = header.decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the authorization metadata must be 'Bearer <token>'")
        caller = self._callers.get(_digest(token.strip()))
        if caller is None:
            raise Unauthenticated("the bearer token is not valid on this server; check which token you were issued")
        return caller

    @staticmethod
    def require(caller: Caller, role: str, what: str) -> None:
        if role not in caller.roles:
            raise PermissionDenied(
                f"{what} needs the {role} role and token {caller.name!r} has {', '.join(sorted(caller.roles))}; "
                f"use a {role} token"
            )
