"""Gateway API: objects and validation, the pure routing decision and status, the data plane.

Layout: ``model`` (frozen objects), ``schema``/``objects`` (CRD validation and defaulting),
``routes`` (attachment, listener tables and status: pure), ``decision`` (one request → the
answer: pure), ``status`` (the status stanzas), ``cli`` (``knet route --gateway``, ``get``).
"""

from __future__ import annotations

from knet.gateway.model import (
    CONTROLLER,
    Gateway,
    GatewayClass,
    GRPCRoute,
    HTTPRoute,
    ReferenceGrant,
    TCPRoute,
    TLSRoute,
)

__all__ = ["CONTROLLER", "GRPCRoute", "Gateway", "GatewayClass", "HTTPRoute", "ReferenceGrant",
           "TCPRoute", "TLSRoute"]
