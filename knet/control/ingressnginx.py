"""The ingress-nginx add-on knet installs when a topology uses Ingresses (kind's install).

Source: kind's "Ingress NGINX" guide, which applies ingress-nginx's
``deploy/static/provider/kind/deploy.yaml``: a ``ingress-nginx`` Namespace, the IngressClass
``nginx`` (``spec.controller: k8s.io/ingress-nginx``, not marked default) and the controller
Deployment run with ``--watch-ingress-without-class=true``. knet keeps the Service as a
LoadBalancer (its cloud-provider-kind address is what ``knet up --ingress`` exposes).

Invariants:
- nothing is installed when the topology has no Ingress and no ingress-nginx IngressClass, or
  when it already runs an ingress-nginx controller (its own Deployment or Pod);
- a user IngressClass named ``nginx`` wins over the built-in one (same kind/name);
- ``controller_args(state)`` are the flags the controller that serves the topology runs with:
  the user's controller container when there is one, else the built-in ones, so ``knet route``
  (static) and the running proxy claim the same Ingresses.
"""

from __future__ import annotations

from typing import Any, Protocol

CONTROLLER_IMAGE = "registry.k8s.io/ingress-nginx/controller:v1.12.0"
CONTROLLER_CLASS = "k8s.io/ingress-nginx"
CLASS_NAME = "nginx"
NAMESPACE = "ingress-nginx"
# deploy/static/provider/kind/deploy.yaml (the flags that matter to routing; the admission
# webhook and --publish-status-address are not modelled)
CONTROLLER_ARGS: tuple[str, ...] = (
    "/nginx-ingress-controller", "--election-id=ingress-nginx-leader",
    f"--controller-class={CONTROLLER_CLASS}", f"--ingress-class={CLASS_NAME}",
    "--watch-ingress-without-class=true",
)
SOURCE = "<knet: ingress-nginx (kind)>"


class State(Protocol):
    """The read side of the control plane this module needs."""

    def ingresses(self, namespace: str | None = None) -> list[Any]: ...
    def ingress_classes(self) -> list[Any]: ...
    def pods(self, namespace: str | None = None) -> list[Any]: ...
    def deployments(self, namespace: str | None = None) -> list[Any]: ...


def _is_controller_image(image: str) -> bool:
    return "ingress-nginx/controller" in image


def user_controller_args(state: State) -> tuple[str, ...] | None:
    """The command+args of an ingress-nginx controller the topology brings itself, if any."""
    for p in state.pods():
        for c in p.spec.containers:
            if _is_controller_image(c.image):
                return tuple(c.command) + tuple(c.args)
    for d in state.deployments():
        for c in d.template.get("spec", {}).get("containers", []) or []:
            if isinstance(c, dict) and _is_controller_image(str(c.get("image", ""))):
                return tuple(str(x) for x in (c.get("command") or []) + (c.get("args") or []))
    return None


def wanted(state: State) -> bool:
    """Whether the topology needs the built-in controller (Ingresses, no controller of its own)."""
    wants = any(getattr(c, "controller", "") == CONTROLLER_CLASS
                for c in state.ingress_classes()) or bool(state.ingresses())
    return wants and user_controller_args(state) is None


def controller_args(state: State) -> tuple[str, ...]:
    """The flags of the controller serving this topology (the user's, else the built-in)."""
    user = user_controller_args(state)
    return CONTROLLER_ARGS if user is None else user


def builtin_classes(state: State) -> list[Any]:
    """The IngressClass the built-in install adds (``nginx``), unless the user has one so named
    or the built-in controller is not installed."""
    if not wanted(state) or any(c.metadata.name == CLASS_NAME for c in state.ingress_classes()):
        return []
    return [o for o in builtin_objects(state) if getattr(o, "kind", "") == "IngressClass"]


def controller_address(state: Any) -> str | None:
    """The address a client reaches the controller at (``curl http://ADDRESS/`` sends it as the
    Host): the LoadBalancer IP of the Service in front of the controller pods, else its
    ClusterIP. None when no Service selects an ingress-nginx controller pod."""
    pods = [p for p in state.pods()
            if any(_is_controller_image(c.image) for c in p.spec.containers)]
    for svc in state.services():
        sel = svc.spec.selector
        if not sel or not any(p.metadata.namespace == svc.metadata.namespace and all(
                p.metadata.labels.get(k) == v for k, v in sel.items()) for p in pods):
            continue
        for ing in svc.load_balancer_ingress:
            if ing.ip:
                return str(ing.ip)
        if svc.spec.cluster_ip and svc.spec.cluster_ip != "None":
            return str(svc.spec.cluster_ip)
    return None


def builtin_objects(state: State) -> list[Any]:
    """kind's ingress-nginx install, when ``wanted(state)``: apply these in order."""
    from knet.manifests import read_text

    if not wanted(state):
        return []
    have_class = any(c.metadata.name == CLASS_NAME for c in state.ingress_classes())
    args = ", ".join(CONTROLLER_ARGS)
    ingress_class = "" if have_class else f"""
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: {CLASS_NAME}
  labels:
    app.kubernetes.io/component: controller
    app.kubernetes.io/instance: ingress-nginx
    app.kubernetes.io/name: ingress-nginx
spec:
  controller: {CONTROLLER_CLASS}
"""
    text = f"""
apiVersion: v1
kind: Namespace
metadata:
  name: {NAMESPACE}
  labels: {{app.kubernetes.io/instance: ingress-nginx, app.kubernetes.io/name: ingress-nginx}}
{ingress_class}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ingress-nginx-controller
  namespace: {NAMESPACE}
  labels:
    app.kubernetes.io/component: controller
    app.kubernetes.io/instance: ingress-nginx
    app.kubernetes.io/name: ingress-nginx
spec:
  replicas: 1
  selector:
    matchLabels:
      app.kubernetes.io/component: controller
      app.kubernetes.io/instance: ingress-nginx
      app.kubernetes.io/name: ingress-nginx
  template:
    metadata:
      labels:
        app.kubernetes.io/component: controller
        app.kubernetes.io/instance: ingress-nginx
        app.kubernetes.io/name: ingress-nginx
    spec:
      terminationGracePeriodSeconds: 0
      tolerations:
        - {{effect: NoSchedule, key: node-role.kubernetes.io/master, operator: Equal}}
        - {{effect: NoSchedule, key: node-role.kubernetes.io/control-plane, operator: Equal}}
      containers:
        - name: controller
          image: {CONTROLLER_IMAGE}
          args: [{args}]
          ports:
            - {{name: http, containerPort: 80, protocol: TCP}}
            - {{name: https, containerPort: 443, protocol: TCP}}
          readinessProbe:
            httpGet: {{path: /healthz, port: 10254, scheme: HTTP}}
            initialDelaySeconds: 10
            periodSeconds: 10
            timeoutSeconds: 1
            successThreshold: 1
            failureThreshold: 3
          livenessProbe:
            httpGet: {{path: /healthz, port: 10254, scheme: HTTP}}
            initialDelaySeconds: 10
            periodSeconds: 10
            timeoutSeconds: 1
            successThreshold: 1
            failureThreshold: 5
---
apiVersion: v1
kind: Service
metadata:
  name: ingress-nginx-controller
  namespace: {NAMESPACE}
  labels:
    app.kubernetes.io/component: controller
    app.kubernetes.io/instance: ingress-nginx
    app.kubernetes.io/name: ingress-nginx
spec:
  type: LoadBalancer
  ipFamilyPolicy: SingleStack
  selector:
    app.kubernetes.io/component: controller
    app.kubernetes.io/instance: ingress-nginx
    app.kubernetes.io/name: ingress-nginx
  ports:
    - {{name: http, port: 80, targetPort: http, protocol: TCP, appProtocol: http}}
    - {{name: https, port: 443, targetPort: https, protocol: TCP, appProtocol: https}}
"""
    return list(read_text(text, SOURCE).objects)


__all__ = ["CLASS_NAME", "CONTROLLER_ARGS", "CONTROLLER_CLASS", "CONTROLLER_IMAGE",
           "builtin_classes", "builtin_objects", "controller_address", "controller_args", "user_controller_args",
           "wanted"]
