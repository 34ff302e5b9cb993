"""Start and stop the API for ``knet up``: PKI, core over the running cluster, HTTPS server,
and the kubeconfig written next to the cluster's state (removed again at exit)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from knet.api.core import ApiCore
from knet.api.pki import kubeconfig, make_pki, write_kubeconfig
from knet.api.server import ApiServer, load_token_file


def kubeconfig_path(cluster: str) -> Path:
    from knet.expose.state import cluster_dir

    return cluster_dir(cluster) / "kubeconfig"


class RunningApi:
    def __init__(self, server: ApiServer, core: ApiCore, path: Path | None) -> None:
        self.server = server
        self.core = core
        self.kubeconfig = path

    def table(self) -> dict[str, Any]:
        assert self.server.address is not None
        h, p = self.server.address
        return {"address": f"{h}:{p}", "host": h, "port": p, "url": self.server.url,
                "kubeconfig": str(self.kubeconfig) if self.kubeconfig else None}

    async def aclose(self) -> None:
        await self.server.aclose()
        self.core.close()
        if self.kubeconfig is not None:
            self.kubeconfig.unlink(missing_ok=True)


def _service_ip(state: Any) -> str | None:
    svc = state.store.get("Service", "default", "kubernetes")
    return svc.spec.cluster_ip if svc is not None and svc.spec.cluster_ip else None


async def start_api(rt: Any, listen: tuple[str, int], *, token_file: str | None = None,
                    write: bool = True, name: str | None = None) -> RunningApi:
    state = rt.state
    pki = make_pki(_service_ip(state))
    core = ApiCore(state, rt.now)
    tokens = load_token_file(token_file) if token_file else {}
    server = ApiServer(core, pki, runtime=rt, tokens=tokens)
    await server.start(*listen)
    path = None
    if write:
        name = name or state.config.name
        path = kubeconfig_path(name)
        write_kubeconfig(path, kubeconfig(name, server.url, pki.ca.cert_pem, client=pki.admin))
    return RunningApi(server, core, path)
