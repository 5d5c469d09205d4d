"""The GraphQL API: the schema of docs/api.md and the Starlette app that serves it."""

from graphql_api.app import create_app
from graphql_api.schema import schema

__all__ = ["create_app", "schema"]
