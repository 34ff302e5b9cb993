"""Gateway API CRD validation and defaulting (standard channel v1.6, plus TLSRoute/TCPRoute).

Invariants: each kind's schema mirrors its CRD (``config/crd/standard/*.yaml`` of
gateway-api v1.6.1): the same enums, patterns, bounds and defaults, and the CEL rules with
their messages (``x-kubernetes-validations``), so that what ``kubectl apply`` refuses knet
refuses with the same words, located at file:line. Served versions: v1 for every kind;
ReferenceGrant also v1beta1; TLSRoute v1alpha2/v1alpha3 and TCPRoute v1alpha2 (deprecated).
"""

from __future__ import annotations

from typing import Any

from knet.gateway.model import GROUP, KINDS, MODEL, SERVED_VERSIONS, GatewayObject
from knet.gateway.schema import S, any_value, array, boolean, check, integer, obj, string
from knet.manifests.fields import F
from knet.model.meta import ObjectMeta

# --- shared types (apis/v1/shared_types.go, object_reference_types.go) -------------------------

HOSTNAME = string(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
                  min_len=1, max_len=253)
PRECISE_HOSTNAME = string(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
                          min_len=1, max_len=253)
GROUP_NAME = string(r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
                    max_len=253)
KIND = string(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$", min_len=1, max_len=63)
OBJECT_NAME = string(min_len=1, max_len=253)
NAMESPACE = string(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", min_len=1, max_len=63)
SECTION_NAME = string(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
                      min_len=1, max_len=253)
PORT = integer(1, 65535)
DURATION = string(r"^([0-9]{1,5}(h|m|s|ms)){1,4}$")
HEADER_NAME = string(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$", min_len=1, max_len=256)
CONTROLLER_NAME = string(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
                         r"\/[A-Za-z0-9\/\-._~%!$&'()*+,;=:]+$", min_len=1, max_len=253)
PROTOCOL = string(r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?"
                  r"(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$", min_len=1, max_len=255)
LABEL_SELECTOR = obj({"matchLabels": obj({}, free=True),
                      "matchExpressions": array(obj({"key": string(), "operator": string(),
                                                     "values": array(string())},
                                                    ("key", "operator")))})


def _same_parent(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k, d) == b.get(k, d) for k, d in
               (("group", GROUP), ("kind", "Gateway"), ("namespace", ""), ("name", "")))


def _parent_refs_distinct(refs: list[dict[str, Any]]) -> bool:
    for i, a in enumerate(refs):
        for b in refs[i + 1:]:
            if _same_parent(a, b) and (a.get("sectionName", ""), a.get("port", 0)) == \
                    (b.get("sectionName", ""), b.get("port", 0)):
                return False
    return True


def _parent_refs_named(refs: list[dict[str, Any]]) -> bool:
    for i, a in enumerate(refs):
        for b in refs[i + 1:]:
            if _same_parent(a, b) and (not (a.get("sectionName") or a.get("port"))
                                       or not (b.get("sectionName") or b.get("port"))):
                return False
    return True


PARENT_REF = obj({
    "group": string(r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
                    max_len=253, default=GROUP),
    "kind": string(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$", min_len=1, max_len=63,
                   default="Gateway"),
    "namespace": NAMESPACE, "name": OBJECT_NAME, "sectionName": SECTION_NAME, "port": PORT,
}, ("name",))
PARENT_REFS = array(PARENT_REF, max_items=32, rules=(
    (_parent_refs_named, "sectionName or port must be specified when parentRefs includes 2 or "
                         "more references to the same parent"),
    (_parent_refs_distinct, "sectionName or port must be unique when parentRefs includes 2 or "
                            "more references to the same parent"),
))


def _backend_port(ref: dict[str, Any]) -> bool:
    return not (ref.get("group", "") == "" and ref.get("kind", "Service") == "Service") \
        or "port" in ref


BACKEND_OBJECT_REF = {
    "group": string(r"^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
                    max_len=253, default=""),
    "kind": string(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$", min_len=1, max_len=63,
                   default="Service"),
    "name": OBJECT_NAME, "namespace": NAMESPACE, "port": PORT,
}
BACKEND_PORT_RULE = (_backend_port, "Must have port for Service reference")


def _header_modifier() -> S:
    hv = obj({"name": HEADER_NAME, "value": string(min_len=1, max_len=4096)}, ("name", "value"))

    def unique(items: list[dict[str, Any]]) -> bool:
        names = [i["name"].lower() for i in items]
        return len(names) == len(set(names))
    return obj({
        "set": array(hv, max_items=16, rules=((unique, "Header names must be unique"),)),
        "add": array(hv, max_items=16, rules=((unique, "Header names must be unique"),)),
        "remove": array(string(min_len=1, max_len=256), max_items=16),
    })


HEADER_MODIFIER = _header_modifier()


def _fraction_ok(m: dict[str, Any]) -> bool:
    fr = m.get("fraction")
    return fr is None or fr.get("numerator", 0) <= fr.get("denominator", 100)


MIRROR = obj({
    "backendRef": obj(dict(BACKEND_OBJECT_REF), ("name",), rules=(BACKEND_PORT_RULE,)),
    "percent": integer(0, 100),
    "fraction": obj({"numerator": integer(0), "denominator": integer(1, default=100)},
                    ("numerator",)),
}, ("backendRef",), rules=(
    (lambda m: not ("percent" in m and "fraction" in m),
     "Only one of percent or fraction may be specified in HTTPRequestMirrorFilter"),
    (_fraction_ok, "numerator must be less than or equal to denominator"),
))


def _path_modifier_rules() -> tuple[Any, ...]:
    return (
        (lambda p: p.get("type") != "ReplaceFullPath" or "replaceFullPath" in p,
         "replaceFullPath must be specified when type is set to 'ReplaceFullPath'"),
        (lambda p: "replaceFullPath" not in p or p.get("type") == "ReplaceFullPath",
         "type must be 'ReplaceFullPath' when replaceFullPath is set"),
        (lambda p: p.get("type") != "ReplacePrefixMatch" or "replacePrefixMatch" in p,
         "replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'"),
        (lambda p: "replacePrefixMatch" not in p or p.get("type") == "ReplacePrefixMatch",
         "type must be 'ReplacePrefixMatch' when replacePrefixMatch is set"),
    )


PATH_MODIFIER = obj({"type": string(enum=("ReplaceFullPath", "ReplacePrefixMatch")),
                     "replaceFullPath": string(max_len=1024),
                     "replacePrefixMatch": string(max_len=1024)}, ("type",),
                    rules=_path_modifier_rules())
REDIRECT = obj({
    "scheme": string(enum=("http", "https")), "hostname": PRECISE_HOSTNAME,
    "path": PATH_MODIFIER, "port": PORT,
    "statusCode": integer(default=302, enum=(301, 302, 303, 307, 308)),
})
REWRITE = obj({"hostname": PRECISE_HOSTNAME, "path": PATH_MODIFIER})
CORS = obj({
    "allowOrigins": array(string(min_len=1, max_len=253), max_items=64),
    "allowCredentials": boolean(),
    "allowMethods": array(string(), max_items=9),
    "allowHeaders": array(string(min_len=1, max_len=256), max_items=64),
    "exposeHeaders": array(string(min_len=1, max_len=256), max_items=64),
    "maxAge": integer(1, default=5),
})
EXTENSION_REF = obj({"group": GROUP_NAME, "kind": KIND, "name": OBJECT_NAME},
                    ("group", "kind", "name"))

_FILTER_FIELDS = {
    "RequestHeaderModifier": "requestHeaderModifier",
    "ResponseHeaderModifier": "responseHeaderModifier",
    "RequestMirror": "requestMirror",
    "RequestRedirect": "requestRedirect",
    "URLRewrite": "urlRewrite",
    "ExtensionRef": "extensionRef",
    "CORS": "cors",
}


def _filter(types: tuple[str, ...]) -> S:
    props: dict[str, S] = {"type": string(enum=types)}
    schemas = {"requestHeaderModifier": HEADER_MODIFIER, "responseHeaderModifier": HEADER_MODIFIER,
               "requestMirror": MIRROR, "requestRedirect": REDIRECT, "urlRewrite": REWRITE,
               "extensionRef": EXTENSION_REF, "cors": CORS}
    rules = []
    for t in types:
        fld = _FILTER_FIELDS[t]
        props[fld] = schemas[fld]
        rules.append((lambda f, t=t, fld=fld: fld not in f or f.get("type") == t,
                      f"filter.{fld} must be nil if the filter.type is not {t}"))
        rules.append((lambda f, t=t, fld=fld: f.get("type") != t or fld in f,
                      f"filter.{fld} must be specified for {t} filter.type"))
    return obj(props, ("type",), rules=tuple(rules))


def _once(t: str) -> Any:
    return (lambda fs: sum(1 for f in fs if f.get("type") == t) <= 1,
            f"{t} filter cannot be repeated")


HTTP_FILTER_TYPES = ("RequestHeaderModifier", "ResponseHeaderModifier", "RequestMirror",
                     "RequestRedirect", "URLRewrite", "ExtensionRef", "CORS")
HTTP_FILTERS = array(_filter(HTTP_FILTER_TYPES), max_items=16, rules=(
    (lambda fs: not ({"RequestRedirect", "URLRewrite"} <= {f.get("type") for f in fs}),
     "May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, "
     "but not both"),
    _once("RequestHeaderModifier"), _once("ResponseHeaderModifier"), _once("RequestRedirect"),
    _once("URLRewrite"), _once("CORS"),
))
GRPC_FILTER_TYPES = ("ResponseHeaderModifier", "RequestHeaderModifier", "RequestMirror",
                     "ExtensionRef")
GRPC_FILTERS = array(_filter(GRPC_FILTER_TYPES), max_items=16, rules=(
    _once("RequestHeaderModifier"), _once("ResponseHeaderModifier")))

_PATH_CHARS = r"^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$"


def _path_rules() -> tuple[Any, ...]:
    def plain_type(p: dict[str, Any]) -> bool:
        return p.get("type", "PathPrefix") in ("Exact", "PathPrefix")
    kinds = "when type one of ['Exact', 'PathPrefix']"
    rules: list[Any] = [
        (lambda p: not plain_type(p) or p.get("value", "/").startswith("/"),
         f"value must be an absolute path and start with '/' {kinds}"),
    ]
    for seq in ("//", "/./", "/../", "%2f", "%2F", "#"):
        rules.append((lambda p, seq=seq: not plain_type(p) or seq not in p.get("value", "/"),
                      f"must not contain '{seq}' {kinds}"))
    for suf in ("/..", "/."):
        rules.append((lambda p, suf=suf: not plain_type(p) or not p.get("value", "/").endswith(suf),
                      f"must not end with '{suf}' {kinds}"))
    import re
    rx = re.compile(_PATH_CHARS)
    rules.append((lambda p: not plain_type(p) or bool(rx.match(p.get("value", "/"))),
                  "must only contain valid characters (matching "
                  "^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$) for types "
                  "['Exact', 'PathPrefix']"))
    return tuple(rules)


def _matches_unique_names(items: list[dict[str, Any]]) -> bool:
    names = [i["name"].lower() for i in items]
    return len(names) == len(set(names))


HTTP_MATCH = obj({
    "path": obj({"type": string(enum=("Exact", "PathPrefix", "RegularExpression"),
                                default="PathPrefix"),
                 "value": string(max_len=1024, default="/")},
                rules=_path_rules(), default={"type": "PathPrefix", "value": "/"}),
    "headers": array(obj({"type": string(enum=("Exact", "RegularExpression"), default="Exact"),
                          "name": HEADER_NAME, "value": string(min_len=1, max_len=4096)},
                         ("name", "value")), max_items=16),
    "queryParams": array(obj({"type": string(enum=("Exact", "RegularExpression"),
                                             default="Exact"),
                              "name": string(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$", min_len=1,
                                             max_len=256),
                              "value": string(min_len=1, max_len=1024)}, ("name", "value")),
                         max_items=16),
    "method": string(enum=("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS",
                           "TRACE", "PATCH")),
})
HTTP_BACKEND = obj({**BACKEND_OBJECT_REF, "weight": integer(0, 1000000, default=1),
                    "filters": HTTP_FILTERS}, ("name",), rules=(BACKEND_PORT_RULE,))


def _prefix_rule(filter_field: str) -> Any:
    def holds(rule: dict[str, Any]) -> bool:
        for f in rule.get("filters", []):
            p = (f.get(filter_field) or {}).get("path") or {}
            if p.get("type") == "ReplacePrefixMatch":
                ms = rule.get("matches", [])
                if len(ms) != 1 or ms[0].get("path", {}).get("type", "PathPrefix") != "PathPrefix":
                    return False
        return True
    return holds


HTTP_RULE = obj({
    "name": SECTION_NAME,
    "matches": array(HTTP_MATCH, max_items=64,
                     default=[{"path": {"type": "PathPrefix", "value": "/"}}]),
    "filters": HTTP_FILTERS,
    "backendRefs": array(HTTP_BACKEND, max_items=16),
    "timeouts": obj({"request": DURATION, "backendRequest": DURATION}),
    "retry": any_value(), "sessionPersistence": any_value(),
}, rules=(
    (_prefix_rule("requestRedirect"), "When using RequestRedirect filter with "
     "path.replacePrefixMatch, exactly one PathPrefix match must be specified"),
    (_prefix_rule("urlRewrite"), "When using URLRewrite filter with path.replacePrefixMatch, "
     "exactly one PathPrefix match must be specified"),
    (lambda r: not (any(f.get("type") == "RequestRedirect" for f in r.get("filters", []))
                    and r.get("backendRefs")),
     "RequestRedirect filter must not be used together with backendRefs"),
))


def _at_most_128_matches(rules: list[dict[str, Any]]) -> bool:
    return sum(len(r.get("matches", [])) for r in rules) <= 128


HTTPROUTE = obj({
    "parentRefs": PARENT_REFS,
    "hostnames": array(HOSTNAME, max_items=16),
    "rules": array(HTTP_RULE, max_items=16,
                   default=[{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}]}],
                   rules=((_at_most_128_matches, "While 16 rules and 64 matches per rule are "
                           "allowed, the total number of matches across all rules in a route "
                           "must be less than 128"),)),
})

GRPC_MATCH = obj({
    "method": obj({"type": string(enum=("Exact", "RegularExpression"), default="Exact"),
                   "service": string(max_len=1024), "method": string(max_len=1024)},
                  rules=((lambda m: "service" in m or "method" in m,
                          "One or both of 'service' or 'method' must be specified"),)),
    "headers": array(obj({"type": string(enum=("Exact", "RegularExpression"), default="Exact"),
                          "name": HEADER_NAME, "value": string(min_len=1, max_len=4096)},
                         ("name", "value")), max_items=16),
})
GRPC_BACKEND = obj({**BACKEND_OBJECT_REF, "weight": integer(0, 1000000, default=1),
                    "filters": GRPC_FILTERS}, ("name",), rules=(BACKEND_PORT_RULE,))
GRPCROUTE = obj({
    "parentRefs": PARENT_REFS,
    "hostnames": array(HOSTNAME, max_items=16),
    "rules": array(obj({"name": SECTION_NAME, "matches": array(GRPC_MATCH, max_items=64),
                        "filters": GRPC_FILTERS, "backendRefs": array(GRPC_BACKEND, max_items=16),
                        "sessionPersistence": any_value()}), max_items=16, default=[{}]),
})
L4_BACKEND = obj({**BACKEND_OBJECT_REF, "weight": integer(0, 1000000, default=1)}, ("name",),
                 rules=(BACKEND_PORT_RULE,))
L4_RULE = obj({"name": SECTION_NAME,
               "backendRefs": array(L4_BACKEND, min_items=1, max_items=16)}, ("backendRefs",))
TLSROUTE = obj({
    "parentRefs": PARENT_REFS,
    "hostnames": array(HOSTNAME, min_items=1, max_items=1024),
    "rules": array(L4_RULE, min_items=1, max_items=1),
}, ("hostnames", "rules"))
TCPROUTE = obj({"parentRefs": PARENT_REFS, "rules": array(L4_RULE, min_items=1, max_items=1)},
               ("rules",))

REFERENCEGRANT = obj({
    "from": array(obj({"group": GROUP_NAME, "kind": KIND, "namespace": NAMESPACE},
                      ("group", "kind", "namespace")), min_items=1, max_items=16),
    "to": array(obj({"group": GROUP_NAME, "kind": KIND, "name": OBJECT_NAME}, ("group", "kind")),
                min_items=1, max_items=16),
}, ("from", "to"))

GATEWAYCLASS = obj({
    "controllerName": CONTROLLER_NAME,
    "description": string(max_len=64),
    "parametersRef": obj({"group": GROUP_NAME, "kind": KIND, "name": OBJECT_NAME,
                          "namespace": NAMESPACE}, ("group", "kind", "name")),
}, ("controllerName",))


def _listeners_rules() -> tuple[Any, ...]:
    def each(pred: Any) -> Any:
        return lambda ls: all(pred(ls_) for ls_ in ls)
    return (
        (each(lambda ls: ls.get("protocol") not in ("HTTP", "TCP", "UDP") or "tls" not in ls),
         "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']"),
        (each(lambda ls: not (ls.get("protocol") == "HTTPS" and "tls" in ls)
              or ls["tls"].get("mode", "Terminate") == "Terminate"),
         "tls mode must be Terminate for protocol HTTPS"),
        (each(lambda ls: ls.get("protocol") != "TLS" or bool((ls.get("tls") or {}).get("mode"))),
         "tls mode must be set for protocol TLS"),
        (each(lambda ls: ls.get("protocol") not in ("TCP", "UDP") or not ls.get("hostname")),
         "hostname must not be specified for protocols ['TCP', 'UDP']"),
        (lambda ls: len({x.get("name") for x in ls}) == len(ls),
         "Listener name must be unique within the Gateway"),
        (lambda ls: len({(x.get("port"), x.get("protocol"), x.get("hostname", ""))
                         for x in ls}) == len(ls),
         "Combination of port, protocol and hostname must be unique for each listener"),
    )


TLS_CONFIG = obj({
    "mode": string(enum=("Terminate", "Passthrough")),
    "certificateRefs": array(obj({"group": GROUP_NAME, "kind": KIND, "name": OBJECT_NAME,
                                  "namespace": NAMESPACE}, ("name",)), max_items=64),
    "options": obj({}, free=True),
    "frontendValidation": any_value(),
}, rules=((lambda t: t.get("mode", "Terminate") != "Terminate" or bool(t.get("certificateRefs"))
           or bool(t.get("options")),
           "certificateRefs or options must be specified when mode is Terminate"),))
LISTENER = obj({
    "name": SECTION_NAME, "hostname": HOSTNAME, "port": PORT, "protocol": PROTOCOL,
    "tls": TLS_CONFIG,
    "allowedRoutes": obj({
        "namespaces": obj({"from": string(enum=("All", "Selector", "Same", "None"),
                                          default="Same"),
                           "selector": LABEL_SELECTOR}, default={"from": "Same"}),
        "kinds": array(obj({"group": GROUP_NAME, "kind": KIND}, ("kind",)), max_items=8),
    }, default={"namespaces": {"from": "Same"}}),
}, ("name", "port", "protocol"))
GATEWAY = obj({
    "gatewayClassName": OBJECT_NAME,
    "listeners": array(LISTENER, min_items=1, max_items=64, rules=_listeners_rules()),
    "addresses": array(obj({"type": string(default="IPAddress"), "value": string(min_len=1,
                                                                                max_len=253)}),
                       max_items=16),
    "infrastructure": any_value(), "allowedListeners": any_value(),
    "backendTLS": any_value(), "tls": any_value(),
}, ("gatewayClassName", "listeners"))

SCHEMAS: dict[str, S] = {
    "GatewayClass": GATEWAYCLASS, "Gateway": GATEWAY, "HTTPRoute": HTTPROUTE,
    "GRPCRoute": GRPCROUTE, "TLSRoute": TLSROUTE, "TCPRoute": TCPROUTE,
    "ReferenceGrant": REFERENCEGRANT,
}
def parse(kind: str, doc: F, meta: ObjectMeta, api_version: str) -> GatewayObject:
    spec_f = doc.child("spec")
    if spec_f is None:
        doc.required("spec")
        spec: Any = {}
    else:
        spec = check(SCHEMAS[kind], spec_f) or {}
    md = doc.map("metadata")
    generation = 1
    if md is not None and md.has("generation"):
        generation = md.int("generation", 1) or 1
    return MODEL[kind](metadata=meta, api_version=api_version, spec=spec, generation=generation)


def parser(kind: str) -> Any:
    """A ``PARSERS`` entry for knet.manifests.objects: ``(doc, meta, scope) -> object``."""
    def parse_kind(doc: F, meta: ObjectMeta, scope: Any) -> GatewayObject:
        api_version = doc.str("apiVersion") or KINDS[kind][0]
        return parse(kind, doc, meta, api_version)
    return parse_kind


__all__ = ["KINDS", "SCHEMAS", "SERVED_VERSIONS", "parse", "parser"]
