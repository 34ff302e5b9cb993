"""knet: Kubernetes networking and service routing, emulated."""
