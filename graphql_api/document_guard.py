"""Every limit on a GraphQL document, checked before anything expensive, and the parse cache.

In order, each step bounded by the one before it:

1. the document's length in characters (``MAX_QUERY_LENGTH``): the lexer reads
   every character, a comment or whitespace too, before any token is counted;
2. its tokens (``MAX_QUERY_TOKENS``), counted by graphql-core's parser as it
   goes, which stops at the first token over the limit;
3. one walk (``graphql_api.query_cost.measure``), linear in the document, for
   depth, aliases, fields once fragments are expanded, and cost; then every
   list in the variables is cut to one item over its limit
   (``graphql_api.input_size``) before graphql-core converts a single item;
4. only then graphql-core's validation, whose rules are not all linear (the
   check that fields of one name can be merged compares them in pairs).

A document that passed all four is kept by its hash in an LRU bounded by an
estimate of the memory its syntax tree takes (``QUERY_CACHE_BYTES``); a
document seen again skips parsing and validation, never the walk, whose cost
depends on the variables. Nothing that failed is kept, so a client cannot fill
the cache with documents that cost the server a parse each and serve nobody.
This replaces Strawberry's ``MaxTokensLimiter``, ``ParserCache``,
``ValidationCache``, ``QueryDepthLimiter`` and ``MaxAliasesLimiter``: the two
limiters expand every fragment spread again (exponential in the document), and
the two caches keep what they parse whether it passed or not, counted in
entries, not bytes.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from graphql import (
    DocumentNode,
    GraphQLError,
    GraphQLSyntaxError,
    NameNode,
    OperationDefinitionNode,
    SelectionSetNode,
)
from graphql import OperationType as AstOperationType
from graphql.language.parser import Parser
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionContext

from graphql_api.coded_errors import coded
from graphql_api.error_codes import ErrorCode
from graphql_api.input_size import bounded_variables
from graphql_api.query_cost import Measure, measure

__all__ = ["BYTES_PER_TOKEN", "DocumentCache", "DocumentGuard", "QueryLimits"]

# What a parsed document's syntax tree takes in memory, per token, at most:
# measured with tracemalloc over dense shapes (repeated fields, aliases,
# arguments, fragments, variables): 560 to 640 bytes (bench/README.md).
BYTES_PER_TOKEN = 700


@dataclass(frozen=True, slots=True)
class QueryLimits:
    """The limits a document must stay within (the ``MAX_QUERY_*`` settings)."""

    max_length: int
    max_tokens: int
    max_depth: int
    max_aliases: int
    max_fields: int
    max_nodes: int
    # Not a setting: what validation's quadratic rule may compare, measured
    # with MAX_QUERY_TOKENS (bench/bench_query_limits.py).
    max_pairs: int = 2_000

    def refusal(self, found: Measure) -> GraphQLError | None:
        """The error for the first limit ``found`` exceeds, if any."""
        if found.depth > self.max_depth:
            return _refused(
                f"This request nests fields {found.depth} deep, more than the "
                f"{self.max_depth} allowed",
                ErrorCode.QUERY_TOO_DEEP,
                depth=found.depth,
                limit=self.max_depth,
            )
        if found.aliases > self.max_aliases:
            return _refused(
                f"This request has {found.aliases:,} aliases once its fragments are "
                f"expanded, more than the {self.max_aliases} allowed",
                ErrorCode.TOO_MANY_ALIASES,
                aliases=found.aliases,
                limit=self.max_aliases,
            )
        if found.fields > self.max_fields:
            return _refused(
                f"This request selects {found.fields:,} fields once its fragments are "
                f"expanded, more than the {self.max_fields:,} allowed",
                ErrorCode.QUERY_TOO_LARGE,
                fields=found.fields,
                limit=self.max_fields,
            )
        if found.pairs > self.max_pairs:
            return _refused(
                f"This request's selections are too wide to check: about {found.pairs:,} "
                f"pairs of fields to compare, more than the {self.max_pairs:,} allowed; "
                "repeat fewer fields or fragment spreads in one selection",
                ErrorCode.QUERY_TOO_LARGE,
                pairs=found.pairs,
                limit=self.max_pairs,
            )
        if found.cost > self.max_nodes:
            return _refused(
                f"This request may return up to {found.cost:,} list items, more than the "
                f"{self.max_nodes:,} allowed in one request: ask for smaller pages "
                "(`first`/`last`) or fewer nested lists, and page through the rest",
                ErrorCode.QUERY_TOO_COSTLY,
                cost=found.cost,
                limit=self.max_nodes,
            )
        return None


def _refused(message: str, code: ErrorCode, **figures: int) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code.value, **figures})


@dataclass(frozen=True, slots=True)
class _Entry:
    document: DocumentNode
    size: int


class DocumentCache:
    """Documents that passed every limit and validation, by hash, least recently used first out.

    ``max_bytes`` bounds the estimated memory of the syntax trees held; one
    document may take at most an eighth of it, so one large document cannot
    push out every other.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, _Entry] = OrderedDict()
        self._bytes = 0

    @property
    def size(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def key(query: str) -> bytes:
        return hashlib.blake2b(query.encode("utf-8", "surrogatepass"), digest_size=20).digest()

    def get(self, key: bytes) -> DocumentNode | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry.document

    def put(self, key: bytes, document: DocumentNode, size: int) -> None:
        if key in self._entries or size > self.max_bytes // 8:
            return
        self._entries[key] = _Entry(document, size)
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size


class DocumentGuard(SchemaExtension):
    """Refuses a document over any limit before it is validated; caches those that pass."""

    def __init__(self, limits: QueryLimits, cache: DocumentCache) -> None:
        super().__init__()
        self.limits = limits
        self.cache = cache
        self._key: bytes | None = None
        self._size = 0
        self._cached = False

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query
        if query is not None and context.graphql_document is None:
            try:
                context.graphql_document = self._checked(query)
            except _Refused as refused:
                # Raised here, the error would escape a subscription's stream;
                # as the parse's outcome it is answered like a syntax error.
                document = refused.document
                if document is None or get_operation_ast(document, context.operation_name) is None:
                    document = _stand_in(context)  # no operation to read the type from
                context.graphql_document = document
                context.pre_execution_errors = [refused.error]
        yield

    def _checked(self, query: str) -> DocumentNode:
        context = self.execution_context
        limits = self.limits
        if len(query) > limits.max_length:
            raise _Refused(
                _refused(
                    f"This document is {len(query):,} characters long, more than the "
                    f"{limits.max_length:,} allowed",
                    ErrorCode.QUERY_TOO_LARGE,
                    limit=limits.max_length,
                )
            )
        self._key = key = DocumentCache.key(query)
        document = self.cache.get(key)
        self._cached = document is not None
        if document is None:
            document, tokens = _parse(query, limits.max_tokens)
            self._size = tokens * BYTES_PER_TOKEN
        found = measure(context.schema._schema, document, context.operation_name, context.variables)
        refusal = limits.refusal(found)
        if refusal is not None:
            raise _Refused(refusal, document)
        bounded = bounded_variables(
            context.schema._schema, document, context.operation_name, context.variables
        )
        if bounded is not None:
            context.variables = bounded
        return document

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is not None and context.pre_execution_errors is None:
            if self._cached:
                context.pre_execution_errors = []
            else:
                errors = validate_document(
                    context.schema._schema, document, context.validation_rules
                )
                context.pre_execution_errors = errors
                if not errors and self._key is not None:
                    self.cache.put(self._key, document, self._size)
        yield


class _Refused(Exception):
    def __init__(self, error: GraphQLError, document: DocumentNode | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.document = document


def _stand_in(context: ExecutionContext) -> DocumentNode:
    """An empty operation of an allowed type, where a refused document did not parse.

    Strawberry reads the operation's type from the document before it looks
    at the errors of the parse; this one passes that step to the refusal.
    """
    allowed = sorted(operation.value for operation in context.allowed_operations)
    name = context.operation_name
    operation = OperationDefinitionNode(
        operation=AstOperationType(allowed[0] if allowed else "query"),
        name=NameNode(value=name) if name else None,
        variable_definitions=(),
        directives=(),
        selection_set=SelectionSetNode(selections=()),
    )
    return DocumentNode(definitions=(operation,))


def _parse(query: str, max_tokens: int) -> tuple[DocumentNode, int]:
    """The document and its token count; the parser stops at the first token over the limit.

    Comments are not tokens to graphql-core, so they are bounded alike: the
    lexer keeps each one in its token list. A syntax error is a refusal too.
    """
    parser = Parser(query, max_lexical_tokens=max_tokens, max_comments=max_tokens)
    try:
        document = parser.parse_document()
    except RecursionError:
        raise _refused(
            "This document is nested too deeply to parse", ErrorCode.QUERY_TOO_DEEP
        ) from None
    except GraphQLSyntaxError as error:
        if "Document contains more than" in error.message:  # tokens or comments
            raise _Refused(
                _refused(
                    f"This document has more than the {max_tokens:,} tokens allowed",
                    ErrorCode.QUERY_TOO_LARGE,
                    limit=max_tokens,
                )
            ) from None
        raise _Refused(coded(error, ErrorCode.GRAPHQL_PARSE_FAILED)) from None
    return document, parser.token_count
