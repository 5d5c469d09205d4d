"""The API reference, generated from the schema's descriptions: ``/docs`` and ``docs/api.md``."""

from graphql_api.reference.routes import api_markdown, reference_routes

__all__ = ["api_markdown", "reference_routes"]
