"""The running emulation: nodes (kubelet + kube-proxy), pods as asyncio apps on the fabric.

``async with knet.runtime.run(paths, seed=…) as cluster:`` — see docs/apps.md for the
built-in apps and the user-app API, and ``RuntimeCluster`` for handles and faults.
"""

from knet.fabric.clock import run_virtual, virtual_time
from knet.runtime.apps import PodContext
from knet.runtime.cluster import (
    ExternalHandle, NodeHandle, PodHandle, RuntimeCluster, builtin_ingress_controller, run,
)
from knet.runtime.nodeproxy import NodeProxy

__all__ = ["ExternalHandle", "NodeHandle", "NodeProxy", "PodContext", "PodHandle",
           "RuntimeCluster", "builtin_ingress_controller", "run", "run_virtual", "virtual_time"]
