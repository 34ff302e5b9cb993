"""The system objects a fresh kind cluster (kind v0.26, Kubernetes v1.32) already has.

Sources: kubeadm ``cmd/kubeadm/app/phases/addons/dns/manifests.go`` (CoreDNS Deployment,
Service, ConfigMap; the Corefile after kubernetes/kubernetes#128359), kubeadm's kube-proxy
addon, kind's kindnet manifest, and the apiserver's ``kubernetes`` Service/EndpointSlice
reconciler. User-supplied objects with the same kind/namespace/name replace these.
"""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from knet.model.apps import DaemonSet, Deployment
from knet.model.config import ClusterConfig
from knet.model.core import (
    ConfigMap, Namespace, Node, Pod, Protocol, Service, ServicePort, ServiceSpec,
)
from knet.model.discovery import (
    SERVICE_NAME_LABEL, Endpoint, EndpointConditions, EndpointPort, EndpointSlice,
)
from knet.model.meta import LabelSelector, ObjectMeta, OwnerReference

COREDNS_IMAGE = "registry.k8s.io/coredns/coredns:v1.11.3"
KUBE_PROXY_IMAGE = "registry.k8s.io/kube-proxy:v1.32.0"
KINDNET_IMAGE = "docker.io/kindest/kindnetd:v20241212-9f82dd49"
SYSTEM_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
APISERVER_PORT = 6443


def corefile(dns_domain: str = "cluster.local") -> str:
    """kubeadm's default Corefile (CoreDNS ConfigMap ``kube-system/coredns``)."""
    return (
        ".:53 {\n"
        "    errors\n"
        "    health {\n"
        "       lameduck 5s\n"
        "    }\n"
        "    ready\n"
        f"    kubernetes {dns_domain} in-addr.arpa ip6.arpa {{\n"
        "       pods insecure\n"
        "       fallthrough in-addr.arpa ip6.arpa\n"
        "       ttl 30\n"
        "    }\n"
        "    prometheus :9153\n"
        "    forward . /etc/resolv.conf {\n"
        "       max_concurrent 1000\n"
        "    }\n"
        "    cache 30 {\n"
        f"       disable success {dns_domain}\n"
        f"       disable denial {dns_domain}\n"
        "    }\n"
        "    loop\n"
        "    reload\n"
        "    loadbalance\n"
        "}\n"
    )


def namespaces() -> list[Namespace]:
    return [Namespace(ObjectMeta(name=n, labels={"kubernetes.io/metadata.name": n}))
            for n in SYSTEM_NAMESPACES]


def kubernetes_service(ip: IPv4Address | IPv6Address) -> Service:
    return Service(
        ObjectMeta(name="kubernetes", namespace="default",
                   labels={"component": "apiserver", "provider": "kubernetes"}),
        ServiceSpec(ports=(ServicePort(443, Protocol.TCP, "https", APISERVER_PORT),),
                    selector=None, cluster_ip=str(ip), cluster_ips=(str(ip),),
                    ip_families=(ip.version,), ip_family_policy="SingleStack"))


def kubernetes_slice(apiserver_ip: IPv4Address | IPv6Address) -> EndpointSlice:
    return EndpointSlice(
        ObjectMeta(name="kubernetes", namespace="default",
                   labels={SERVICE_NAME_LABEL: "kubernetes"}),
        address_type="IPv6" if apiserver_ip.version == 6 else "IPv4",
        endpoints=(Endpoint((str(apiserver_ip),), EndpointConditions(ready=True)),),
        ports=(EndpointPort(APISERVER_PORT, "https", Protocol.TCP),))


def kube_dns_service(ip: IPv4Address | IPv6Address) -> Service:
    return Service(
        ObjectMeta(name="kube-dns", namespace="kube-system",
                   labels={"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
                           "kubernetes.io/name": "CoreDNS"},
                   annotations={"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}),
        ServiceSpec(ports=(ServicePort(53, Protocol.UDP, "dns", 53),
                           ServicePort(53, Protocol.TCP, "dns-tcp", 53),
                           ServicePort(9153, Protocol.TCP, "metrics", 9153)),
                    selector={"k8s-app": "kube-dns"}, cluster_ip=str(ip),
                    cluster_ips=(str(ip),), ip_families=(ip.version,),
                    ip_family_policy="SingleStack"))


def coredns_config_map(config: ClusterConfig) -> ConfigMap:
    return ConfigMap(ObjectMeta(name="coredns", namespace="kube-system"),
                     data={"Corefile": corefile(config.dns_domain)})


def _coredns_template() -> dict[str, Any]:
    probe = {"successThreshold": 1, "failureThreshold": 3, "periodSeconds": 10,
             "timeoutSeconds": 1}
    return {
        "metadata": {"labels": {"k8s-app": "kube-dns"}},
        "spec": {
            "priorityClassName": "system-cluster-critical",
            "priority": 2000000000,
            "serviceAccountName": "coredns",
            "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 100, "podAffinityTerm": {
                    "labelSelector": {"matchExpressions": [
                        {"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]},
                    "topologyKey": "kubernetes.io/hostname"}}]}},
            "tolerations": [{"key": "CriticalAddonsOnly", "operator": "Exists"},
                            {"key": "node-role.kubernetes.io/control-plane",
                             "effect": "NoSchedule"}],
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "containers": [{
                "name": "coredns", "image": COREDNS_IMAGE, "imagePullPolicy": "IfNotPresent",
                "args": ["-conf", "/etc/coredns/Corefile"],
                "resources": {"limits": {"memory": "170Mi"},
                              "requests": {"cpu": "100m", "memory": "70Mi"}},
                "ports": [{"containerPort": 53, "name": "dns", "protocol": "UDP"},
                          {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                          {"containerPort": 9153, "name": "metrics", "protocol": "TCP"}],
                "livenessProbe": {"httpGet": {"path": "/health", "port": 8080,
                                              "scheme": "HTTP"},
                                  **probe, "initialDelaySeconds": 60, "timeoutSeconds": 5,
                                  "failureThreshold": 5},
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181,
                                               "scheme": "HTTP"}, **probe},
                "securityContext": {"allowPrivilegeEscalation": False,
                                    "capabilities": {"add": ["NET_BIND_SERVICE"],
                                                     "drop": ["ALL"]},
                                    "readOnlyRootFilesystem": True},
                "volumeMounts": [{"mountPath": "/etc/coredns", "name": "config-volume",
                                  "readOnly": True}],
            }],
            "dnsPolicy": "Default",
            "volumes": [{"name": "config-volume", "configMap": {
                "name": "coredns", "items": [{"key": "Corefile", "path": "Corefile"}]}}],
        },
    }


def coredns_deployment() -> Deployment:
    return Deployment(
        ObjectMeta(name="coredns", namespace="kube-system", labels={"k8s-app": "kube-dns"}),
        selector=LabelSelector({"k8s-app": "kube-dns"}), template=_coredns_template(),
        replicas=2, max_surge="25%", max_unavailable=1)


def kube_proxy_daemonset() -> DaemonSet:
    template = {
        "metadata": {"labels": {"k8s-app": "kube-proxy"}},
        "spec": {
            "hostNetwork": True,
            "priorityClassName": "system-node-critical", "priority": 2000001000,
            "serviceAccountName": "kube-proxy",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": "kube-proxy", "image": KUBE_PROXY_IMAGE,
                "command": ["/usr/local/bin/kube-proxy", "--config=/var/lib/kube-proxy/config.conf",
                            "--hostname-override=$(NODE_NAME)"],
                "securityContext": {"privileged": True},
            }],
        },
    }
    return DaemonSet(ObjectMeta(name="kube-proxy", namespace="kube-system",
                                labels={"k8s-app": "kube-proxy"}),
                     selector=LabelSelector({"k8s-app": "kube-proxy"}), template=template)


def kindnet_daemonset() -> DaemonSet:
    labels = {"app": "kindnet", "k8s-app": "kindnet", "tier": "node"}
    template = {
        "metadata": {"labels": dict(labels)},
        "spec": {
            "hostNetwork": True,
            "serviceAccountName": "kindnet",
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": "kindnet-cni", "image": KINDNET_IMAGE,
                "resources": {"limits": {"cpu": "100m", "memory": "50Mi"},
                              "requests": {"cpu": "100m", "memory": "50Mi"}},
                "securityContext": {"capabilities": {"add": ["NET_RAW", "NET_ADMIN"]},
                                    "privileged": False},
            }],
        },
    }
    return DaemonSet(ObjectMeta(name="kindnet", namespace="kube-system", labels=labels),
                     selector=LabelSelector({"app": "kindnet"}), template=template)


# kubeadm's static control-plane pods (/etc/kubernetes/manifests), seen through their mirror
# pods: ``<component>-<node>``, host network, owned by the Node. Requests are kubeadm's.
CONTROL_PLANE_COMPONENTS = (
    ("etcd", "registry.k8s.io/etcd:3.5.16-0", {"cpu": "100m", "memory": "100Mi"}),
    ("kube-apiserver", "registry.k8s.io/kube-apiserver:v1.32.0", {"cpu": "250m"}),
    ("kube-controller-manager", "registry.k8s.io/kube-controller-manager:v1.32.0",
     {"cpu": "200m"}),
    ("kube-scheduler", "registry.k8s.io/kube-scheduler:v1.32.0", {"cpu": "100m"}),
)


def static_pods(node: Node) -> list[Pod]:
    """The control plane's mirror pods on ``node`` (kind runs them on every control-plane
    node). They declare no ports and no probes here: knet runs no apiserver."""
    from knet.manifests import pod_from_template

    out = []
    for component, image, requests in CONTROL_PLANE_COMPONENTS:
        name = f"{component}-{node.name}"
        template = {
            "metadata": {"labels": {"component": component, "tier": "control-plane"},
                         "annotations": {"kubernetes.io/config.source": "file",
                                         "kubernetes.io/config.mirror": "knet"}},
            "spec": {
                "hostNetwork": True, "nodeName": node.name,
                "priorityClassName": "system-node-critical", "priority": 2000001000,
                "tolerations": [{"operator": "Exists", "effect": "NoExecute"}],
                "containers": [{"name": component, "image": image,
                                "command": [component],
                                "resources": {"requests": dict(requests)}}],
            },
        }
        pod = pod_from_template(template, "kube-system", name, node_name=node.name)
        ref = OwnerReference(kind="Node", name=node.name, uid=node.metadata.uid,
                             controller=True, api_version="v1")
        meta = dataclasses.replace(pod.metadata, owner_references=(ref,))
        out.append(dataclasses.replace(pod, metadata=meta))
    return out
