"""The Kubernetes API over knet's control-plane store (``knet up --api``).

Layers (the core decides, the adapter moves bytes):

- ``resources``: the served resources (discovery names, kinds, verbs, short names, scope);
- ``status``: ``ApiError`` → the ``Status`` object with the real reasons and messages;
- ``selectors``: label and field selectors (apimachinery grammar);
- ``convert``: request bodies → model objects through knet's manifest validation (same
  messages), model objects → API JSON (server-set metadata, workload status);
- ``discovery``: ``/api``, ``/apis``, resource lists, aggregated discovery, ``/openapi/v3``;
- ``tables``: ``meta.k8s.io/v1`` Table responses with kubectl's server-side columns;
- ``patch``: JSON patch, merge patch, strategic merge patch, server-side apply;
- ``core``: ``ApiCore.handle(request) -> response`` — the sans-IO API server (no sockets, no
  wall clock: time comes from the cluster);
- ``server``: the thin aiohttp HTTPS adapter (TLS client certificates, watch streams);
- ``pki``: the per-cluster CA, serving and client certificates, and the kubeconfig.
"""
