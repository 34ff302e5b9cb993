"""Ingress: routes + decision (pure, ingress-nginx compatible) and the aiohttp proxy adapter."""

from knet.ingress.annotations import Annotations, parse_annotations
from knet.ingress.decision import (
    Decision, Request, Router, make_request, route_request, upstream_headers,
)
from knet.ingress.routes import (
    CONTROLLER_NAME, ControllerConfig, Location, RoutingTable, Server, Upstream, build_table,
    claims, normalize_uri,
)

__all__ = [
    "Annotations", "CONTROLLER_NAME", "ControllerConfig", "Decision", "Location", "Request",
    "Router", "RoutingTable", "Server", "Upstream", "build_table", "claims", "make_request",
    "normalize_uri", "parse_annotations", "route_request", "upstream_headers",
]
