"""knet's tests and checks against a real Kubernetes API (a kubeconfig): the pytest plugin's
kubeconfig backend (``cluster``) and ``knet diff`` (``diff``)."""

from knet.real.cluster import NotOnRealCluster, RealCluster, connect

__all__ = ["NotOnRealCluster", "RealCluster", "connect"]
