"""The Gateway API conformance echo server (``gcr.io/k8s-staging-gateway-api/echo-basic`` and
``echo-advanced``, any tag), as a built-in app.

Reproduces ``conformance/echo-basic/echo-basic.go``: every request is answered with JSON
``{"path", "host", "method", "proto", "headers": {Name: [values]}, "namespace", "ingress",
"service", "pod"}`` (``path`` with the query, header names canonicalised as Go does), and the
``X-Echo-Set-Header: Name: value, Name2: value2`` request header sets response headers.
The pod's namespace and name come from the ``NAMESPACE``/``POD_NAME`` environment (the
conformance manifests set them through the downward API), else from the pod itself. It listens
on the container's declared ports, else 3000. (The gRPC echo service is not served.)
"""

from __future__ import annotations

from typing import Any

from aiohttp import web


def canonical(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``."""
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


def echo_basic_application(namespace: str, pod: str) -> web.Application:
    async def handle(request: web.Request) -> web.Response:
        headers: dict[str, list[str]] = {}
        for k, v in request.headers.items():
            if k.lower() == "host":
                continue
            headers.setdefault(canonical(k), []).append(v)
        body = {"path": request.raw_path, "host": request.host, "method": request.method,
                "proto": f"HTTP/{request.version.major}.{request.version.minor}",
                "headers": headers, "namespace": namespace, "ingress": "", "service": "",
                "pod": pod}
        out = web.json_response(body)
        for item in request.headers.getall("X-Echo-Set-Header", ()):
            for part in item.split(","):
                name, sep, value = part.partition(":")
                if sep and name.strip():
                    out.headers[name.strip()] = value.strip()
        return out

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


async def echo_basic_app(ctx: Any) -> int:
    from knet.runtime.apps import serve_until_stopped

    ns = ctx.env.get("NAMESPACE") or ctx.namespace
    pod = ctx.env.get("POD_NAME") or ctx.name
    ports = [p.container_port for p in ctx.container.ports
             if str(getattr(p, "protocol", "TCP")) == "TCP"] or [3000]
    return await serve_until_stopped(ctx, echo_basic_application(ns, pod), ports)


__all__ = ["canonical", "echo_basic_app", "echo_basic_application"]
