"""A live cluster's objects as knet's model: listed through the API, read by knet's own
manifest parser (the API's output is valid input), indexed by kind and ``ns/name``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# resource → (apiVersion, kind) as the API names them (list items carry neither)
RESOURCES = {
    "namespaces": ("v1", "Namespace"), "nodes": ("v1", "Node"), "pods": ("v1", "Pod"),
    "services": ("v1", "Service"), "configmaps": ("v1", "ConfigMap"),
    "endpointslices": ("discovery.k8s.io/v1", "EndpointSlice"),
}


class LiveState:
    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.objects = objects

    @classmethod
    async def fetch(cls, api: Any, resources: Iterable[str]) -> LiveState:
        from knet.manifests.read import read_text
        from knet.manifests.render import to_yaml

        docs: list[dict[str, Any]] = []
        for res in resources:
            version, kind = RESOURCES[res]
            async for o in api.get(res, namespace="all"):
                docs.append({**o.raw.to_dict(), "apiVersion": version, "kind": kind})
        objects: dict[str, dict[str, Any]] = {}
        for obj in read_text(to_yaml(docs), "<cluster>").objects:
            ns = getattr(obj.metadata, "namespace", "") or ""
            key = f"{ns}/{obj.metadata.name}" if ns else obj.metadata.name
            objects.setdefault(obj.kind, {})[key] = obj
        return cls(objects)

    def of(self, kind: str) -> list[Any]:
        return list(self.objects.get(kind, {}).values())

    def get(self, kind: str, key: str) -> Any:
        return self.objects.get(kind, {}).get(key)


async def open_api(kubeconfig: str, context: str | None) -> Any:
    """A kr8s client for the kubeconfig (a clear error when kr8s is not installed)."""
    try:
        import kr8s.asyncio
    except ImportError:
        from knet.errors import UsageError

        raise UsageError("the kubeconfig backend and knet diff need kr8s: "
                         "pip install 'knet[real]'") from None
    return await kr8s.asyncio.api(kubeconfig=kubeconfig, context=context)


async def close_api(api: Any) -> None:
    """Close kr8s' HTTP client (it has no public close; its sessions are re-created on next
    use, and an event loop that ends must not leave sockets behind)."""
    session = getattr(api, "_session", None)
    if session is not None:
        await session.aclose()


__all__ = ["RESOURCES", "LiveState", "close_api", "open_api"]
