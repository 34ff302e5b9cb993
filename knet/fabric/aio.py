"""aiohttp on the fabric: serve a ``web.Application`` in a pod, and a ``ClientSession`` from a pod.

Invariants:
- Server side uses aiohttp's own runner: ``KnetSite(runner, ns, host, port)`` is a ``BaseSite``
  whose ``start`` passes ``runner.server`` (aiohttp's low-level ``web.Server``, a protocol
  factory) to ``Namespace.create_server``; the application runs unmodified.
- Client side subclasses ``TCPConnector`` and overrides only ``_wrap_create_connection`` (the
  single place aiohttp 3.9-3.14 opens a socket for a direct connection): it receives the
  resolved ``addr_infos`` and opens a fabric connection instead. Pooling, keep-alive, proxies,
  TLS (``Namespace.create_connection(ssl=…)``), timeouts and retries over the resolved
  addresses stay aiohttp's.
- Name resolution is the caller's: ``KnetResolver`` delegates to a callback (the pod's stub
  resolver); IP literals never reach it (aiohttp short-circuits them).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.client_exceptions import ClientConnectorError
from aiohttp.helpers import ceil_timeout

from knet.fabric.network import Namespace

ResolveCallback = Callable[[str, int, int], Awaitable[Sequence[str]]]
"""``(host, port, family) -> [ip, …]``; raise ``OSError`` (e.g. ``socket.gaierror``) if none."""


class KnetResolver(AbstractResolver):
    """An aiohttp resolver that asks ``resolve(host, port, family)`` for addresses."""

    def __init__(self, resolve: ResolveCallback) -> None:
        self._resolve = resolve

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        addresses = await self._resolve(host, port, int(family))
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        results: list[ResolveResult] = []
        for addr in addresses:
            fam = socket.AF_INET6 if ":" in str(addr) else socket.AF_INET
            results.append(ResolveResult(hostname=host, host=str(addr), port=port, family=fam,
                                         proto=0, flags=socket.AI_NUMERICHOST))
        return results

    async def close(self) -> None:
        return None


async def _no_resolver(host: str, port: int, family: int) -> Sequence[str]:
    raise socket.gaierror(socket.EAI_NONAME, f"{host}: no resolver attached to this pod")


class KnetConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` whose connections are opened inside a fabric namespace."""

    def __init__(self, ns: Namespace, resolver: AbstractResolver | ResolveCallback | None = None,
                 **kwargs: Any) -> None:
        if resolver is None:
            resolver = KnetResolver(_no_resolver)
        elif not isinstance(resolver, AbstractResolver):
            resolver = KnetResolver(resolver)
        kwargs.setdefault("happy_eyeballs_delay", None)
        super().__init__(resolver=resolver, **kwargs)
        self._ns = ns

    @property
    def namespace(self) -> Namespace:
        return self._ns

    async def _wrap_create_connection(self, *args: Any, addr_infos: list[Any], req: Any,
                                      timeout: Any, client_error: type[Exception] = ClientConnectorError,
                                      **kwargs: Any) -> tuple[Any, Any]:
        protocol_factory = args[0] if args else kwargs.pop("protocol_factory")
        kwargs.pop("sock", None)
        family, _, _, _, address = addr_infos[0]
        host, port = address[0], address[1]
        try:
            async with ceil_timeout(timeout.sock_connect, ceil_threshold=timeout.ceil_threshold):
                return await self._ns.create_connection(protocol_factory, host, port, **kwargs)
        except OSError as exc:
            if exc.errno is None and isinstance(exc, TimeoutError):
                raise
            raise client_error(req.connection_key, exc) from exc


def client_session(ns: Namespace, resolver: AbstractResolver | ResolveCallback | None = None,
                   **session_kwargs: Any) -> aiohttp.ClientSession:
    """An ``aiohttp.ClientSession`` whose traffic leaves from ``ns``."""
    connector_kwargs = session_kwargs.pop("connector_kwargs", {})
    return aiohttp.ClientSession(connector=KnetConnector(ns, resolver, **connector_kwargs),
                                 **session_kwargs)


class KnetSite(web.BaseSite):
    """An aiohttp site listening on a fabric namespace: ``await KnetSite(runner, ns, port=80).start()``."""

    __slots__ = ("_ns", "_host", "_port", "_bound_port")

    def __init__(self, runner: web.BaseRunner, ns: Namespace, host: str | None = None,
                 port: int = 80, *, ssl_context: Any = None, backlog: int = 128) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._ns = ns
        self._host = host
        self._port = port
        self._bound_port = port

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        host = self._host or "0.0.0.0"
        return f"{scheme}://{host}:{self._bound_port} (netns {self._ns.name})"

    @property
    def port(self) -> int:
        return self._bound_port

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await self._ns.create_server(server, self._host, self._port,
                                                    ssl=self._ssl_context)
        if self._server.sockets:
            self._bound_port = self._server.sockets[0].getsockname()[1]


async def serve_app(app: web.Application, ns: Namespace, port: int = 80, host: str | None = None,
                    **runner_kwargs: Any) -> web.AppRunner:
    """Run ``app`` in ``ns`` on ``port``; ``await runner.cleanup()`` stops it."""
    runner_kwargs.setdefault("handle_signals", False)
    runner_kwargs.setdefault("access_log", None)
    runner = web.AppRunner(app, **runner_kwargs)
    await runner.setup()
    site = KnetSite(runner, ns, host, port)
    await site.start()
    return runner
