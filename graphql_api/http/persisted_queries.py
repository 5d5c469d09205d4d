"""Automatic persisted queries: Apollo's APQ protocol, spoken by Apollo Client and urql.

A client sends ``extensions.persistedQuery = {version: 1, sha256Hash}`` and
no ``query``; a known hash runs the document stored under it. An unknown one
is answered ``PersistedQueryNotFound`` (code ``PERSISTED_QUERY_NOT_FOUND``),
and the client sends the document with its hash once, which is checked
against the document and stored. Queries may go over GET, so the URL holds
only the hash and variables and a cache in front can keep the answer.

The store is an LRU in the process, bounded by the memory its entries take
(``PERSISTED_QUERY_CACHE_BYTES``: each document's and hash's string objects
and the entry itself, not the bare UTF-8 bytes, which undercounted tiny
documents 70 times; 0 turns APQ off: ``PersistedQueryNotSupported``). Only
a document that parses, within ``MAX_QUERY_TOKENS``, is stored: the others
would be refused each time they are named. Not Redis: every query would then wait on a
Redis round trip, fail with Redis, and let any client write into the store
the queue depends on; a process that misses a hash (another replica, a
restart) costs its client one more round trip, which the protocol is built
for.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections import OrderedDict
from dataclasses import replace

from graphql import GraphQLSyntaxError
from graphql.language.parser import Parser
from strawberry.http import GraphQLRequestData

__all__ = [
    "NOT_FOUND",
    "NOT_SUPPORTED",
    "BadPersistedQuery",
    "PersistedQueries",
    "PersistedQueryError",
]

NOT_FOUND = "PersistedQueryNotFound"
NOT_SUPPORTED = "PersistedQueryNotSupported"
_CODES = {NOT_FOUND: "PERSISTED_QUERY_NOT_FOUND", NOT_SUPPORTED: "PERSISTED_QUERY_NOT_SUPPORTED"}
_SHA256 = re.compile(r"[0-9a-f]{64}")
# One document may take at most this share of the store, so that one huge
# document cannot push out every other.
_LARGEST_SHARE = 8
# An OrderedDict entry: its slot, its hash-table share and the linked-list node.
_ENTRY_OVERHEAD = 120


def _utf8(text: str) -> bytes:
    # A lone surrogate (JSON allows "\\ud800") hashes as itself, never raises.
    return text.encode("utf-8", "surrogatepass")


class PersistedQueryError(Exception):
    """A hash the store cannot serve: the client answers by sending the document (or stops)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = _CODES[message]


class BadPersistedQuery(ValueError):
    """A ``persistedQuery`` extension that breaks the protocol; the message says how."""


class PersistedQueries:
    """Documents by their sha256, least recently used first out."""

    def __init__(self, max_bytes: int, max_tokens: int = 1000) -> None:
        self.max_bytes = max_bytes
        self.max_tokens = max_tokens
        self._documents: OrderedDict[str, str] = OrderedDict()
        self._bytes = 0

    @property
    def size(self) -> int:
        """The memory the entries take, in bytes: strings and entries."""
        return self._bytes

    @staticmethod
    def _cost(sha256: str, document: str) -> int:
        return sys.getsizeof(sha256) + sys.getsizeof(document) + _ENTRY_OVERHEAD

    def _parses(self, document: str) -> bool:
        try:
            Parser(
                document, max_lexical_tokens=self.max_tokens, max_comments=self.max_tokens
            ).parse_document()
        except (GraphQLSyntaxError, RecursionError):
            return False
        return True

    def __len__(self) -> int:
        return len(self._documents)

    def get(self, sha256: str) -> str | None:
        document = self._documents.get(sha256)
        if document is not None:
            self._documents.move_to_end(sha256)
        return document

    def put(self, sha256: str, document: str) -> None:
        cost = self._cost(sha256, document)
        if sha256 in self._documents or cost > self.max_bytes // _LARGEST_SHARE:
            return
        if not self._parses(document):
            return
        self._documents[sha256] = document
        self._bytes += cost
        while self._bytes > self.max_bytes:
            evicted_hash, evicted = self._documents.popitem(last=False)
            self._bytes -= self._cost(evicted_hash, evicted)

    def resolve(self, request: GraphQLRequestData) -> GraphQLRequestData:
        """The request with its document, from the store or checked and stored.

        Raises ``PersistedQueryError`` for a hash to send the document for,
        and ``BadPersistedQuery`` for a malformed extension or a wrong hash.
        """
        extension = (request.extensions or {}).get("persistedQuery")
        if extension is None:
            return request
        if not isinstance(extension, dict) or extension.get("version") != 1:
            raise BadPersistedQuery(
                "extensions.persistedQuery must be {version: 1, sha256Hash: <64 hex digits>}"
            )
        sha256 = extension.get("sha256Hash")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise BadPersistedQuery(
                "extensions.persistedQuery.sha256Hash must be 64 lowercase hex digits"
            )
        if self.max_bytes == 0:
            if request.query is None:
                raise PersistedQueryError(NOT_SUPPORTED)
            return request
        if request.query is None:
            document = self.get(sha256)
            if document is None:
                raise PersistedQueryError(NOT_FOUND)
            return replace(request, query=document)
        if hashlib.sha256(_utf8(request.query)).hexdigest() != sha256:
            raise BadPersistedQuery(
                "extensions.persistedQuery.sha256Hash is not the sha256 of the query"
            )
        self.put(sha256, request.query)
        return request
