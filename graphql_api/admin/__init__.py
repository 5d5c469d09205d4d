"""The operators' admin page: a static single-page app served at ``/`` beside the API.

It speaks only the public GraphQL API (``/graphql``), like any other client.
"""

from graphql_api.admin.routes import admin_routes, public_config

__all__ = ["admin_routes", "public_config"]
