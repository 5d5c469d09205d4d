"""The API's HTTP concerns: GraphQL over HTTP, body limit, CORS, request ids,
CSV exports, health and metrics. The app (``graphql_api.app``) mounts them."""
