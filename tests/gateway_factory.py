"""Builders for Gateway API tests: YAML snippets → a converged control-plane Cluster."""

from __future__ import annotations

import textwrap
from typing import Any

from knet.control import Cluster
from knet.gateway.decision import GatewayRequest, decide
from knet.gateway.view import tables_for
from knet.manifests import read_text


def cluster(*docs: str, seed: int = 0) -> Any:
    text = "\n---\n".join(textwrap.dedent(d).strip() for d in docs)
    return Cluster.from_input(read_text(text, "test.yaml"), seed=seed)


def service(name: str, ns: str = "default", port: int = 80, replicas: int = 1,
            app_protocol: str = "") -> str:
    ap = f", appProtocol: {app_protocol}" if app_protocol else ""
    dep = f"""
    apiVersion: apps/v1
    kind: Deployment
    metadata: {{name: {name}, namespace: {ns}}}
    spec:
      replicas: {replicas}
      selector: {{matchLabels: {{app: {name}}}}}
      template:
        metadata: {{labels: {{app: {name}}}}}
        spec:
          containers: [{{name: c, image: knet/echo, ports: [{{containerPort: 8080}}]}}]
    """
    svc = f"""
    apiVersion: v1
    kind: Service
    metadata: {{name: {name}, namespace: {ns}}}
    spec:
      selector: {{app: {name}}}
      ports: [{{port: {port}, targetPort: 8080{ap}}}]
    """
    return textwrap.dedent(svc).strip() + "\n---\n" + textwrap.dedent(dep).strip()


def namespace(name: str, **labels: str) -> str:
    lab = ", ".join(f"{k}: {v!r}" for k, v in labels.items())
    return f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {{{lab}}}}}"


def gateway(listeners: str, name: str = "gw", ns: str = "default", cls: str = "knet") -> str:
    body = textwrap.indent(textwrap.dedent(listeners).strip(), "  ")
    return (f"apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"
            f"metadata: {{name: {name}, namespace: {ns}}}\n"
            f"spec:\n  gatewayClassName: {cls}\n  listeners:\n{body}")


def httproute(name: str, spec: str, ns: str = "default", created: str = "") -> str:
    ts = f", creationTimestamp: '{created}'" if created else ""
    body = textwrap.indent(textwrap.dedent(spec).strip(), "  ")
    return (f"apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n"
            f"metadata: {{name: {name}, namespace: {ns}{ts}}}\nspec:\n{body}")


def ask(c: Any, path: str, host: str = "", method: str = "GET", headers: Any = (),
        gw: str = "default/gw", port: int | None = None, scheme: str = "http",
        seed: int = 0, tables: Any = None, sni: str | None = None) -> Any:
    import random

    t = tables if tables is not None else tables_for(c)
    return decide(t, gw, GatewayRequest(method, path, host, tuple(headers), scheme, port, sni),
                  random.Random(seed))
