"""What every resolver gets in ``info.context``."""

from __future__ import annotations

from dataclasses import dataclass, field

import strawberry
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

from graphql_api.loaders import Loaders

__all__ = ["Context", "Info"]


@dataclass
class Context:
    """The request (or WebSocket), and the batch loaders of this request or connection.

    Strawberry stores the payload of a WebSocket ``connection_init`` in
    ``connection_params`` before it asks the view whether to accept it.
    """

    request: Request | WebSocket
    response: Response | WebSocket
    loaders: Loaders
    connection_params: dict[str, object] = field(default_factory=dict)


Info = strawberry.Info[Context, None]
