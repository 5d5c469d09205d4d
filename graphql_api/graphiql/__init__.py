"""GraphiQL at ``GET /graphql``, from this origin only: its files are vendored from npm."""

from graphql_api.graphiql.routes import ServeGraphiQL, graphiql_routes, wants_graphiql

__all__ = ["ServeGraphiQL", "graphiql_routes", "wants_graphiql"]
