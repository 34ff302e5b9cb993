"""``Status`` errors as kube-apiserver writes them (apimachinery ``pkg/api/errors/errors.go``,
v0.32.13): one exception type carrying code, reason, message and details; helpers build the
exact messages (``<resource>[.<group>] "<name>" not found`` …)."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str,
                 details: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details
        self.headers = headers or {}

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {},
                               "status": "Failure", "message": self.message}
        if self.reason:
            out["reason"] = self.reason
        if self.details:
            out["details"] = self.details
        out["code"] = self.code
        return out


def group_resource(resource: str, group: str) -> str:
    return f"{resource}.{group}" if group else resource


def _details(name: str, group: str, kind: str, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {}
    if name:
        d["name"] = name
    if group:
        d["group"] = group
    if kind:
        d["kind"] = kind
    d.update({k: v for k, v in extra.items() if v})
    return d


def not_found(resource: str, group: str, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{group_resource(resource, group)} "{name}" not found',
                    _details(name, group, resource))


def already_exists(resource: str, group: str, name: str) -> ApiError:
    return ApiError(409, "AlreadyExists",
                    f'{group_resource(resource, group)} "{name}" already exists',
                    _details(name, group, resource))


def conflict(resource: str, group: str, name: str, why: str) -> ApiError:
    return ApiError(409, "Conflict", f'Operation cannot be fulfilled on '
                    f'{group_resource(resource, group)} "{name}": {why}',
                    _details(name, group, resource))


MODIFIED = ("the object has been modified; please apply your changes to the latest version "
            "and try again")


def forbidden(resource: str, group: str, name: str, text: str) -> ApiError:
    gr = group_resource(resource, group)
    if not resource:
        msg = f"forbidden: {text}"
    elif name:
        msg = f'{gr} "{name}" is forbidden: {text}'
    else:
        msg = f"{gr} is forbidden: {text}"
    return ApiError(403, "Forbidden", msg, _details(name, group, resource))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def method_not_allowed(action: str, resource: str, group: str) -> ApiError:
    return ApiError(405, "MethodNotAllowed", f'{action} is not supported on resources of kind '
                    f'"{group_resource(resource, group)}"', _details("", group, resource))


def gone(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def too_large(message: str = "Request entity too large") -> ApiError:
    return ApiError(413, "RequestEntityTooLarge", message)


def unsupported_media(accepted: list[str]) -> ApiError:
    return ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                    f"format - accepted media types include: {', '.join(accepted)}")


# Cause types by the field error's type string (apimachinery util/validation/field/errors.go).
_CAUSES = (("Required value", "FieldValueRequired"), ("Invalid value", "FieldValueInvalid"),
           ("Unsupported value", "FieldValueNotSupported"),
           ("Duplicate value", "FieldValueDuplicate"), ("Forbidden", "FieldValueForbidden"),
           ("Too long", "FieldValueTooLong"), ("Too many", "FieldValueTooMany"),
           ("Not found", "FieldValueNotFound"), ("Internal error", "InternalError"))


def cause_type(message: str) -> str:
    for prefix, reason in _CAUSES:
        if message.startswith(prefix):
            return reason
    return "FieldValueTypeInvalid"


def invalid(kind: str, group: str, name: str, errors: list[tuple[str, str]]) -> ApiError:
    """422: ``<Kind>[.<group>] "<name>" is invalid: <field>: <msg>`` or ``[e1, e2]``."""
    texts = [f"{f}: {m}" if f else m for f, m in errors]
    agg = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    qual = f"{kind}.{group}" if group else kind
    causes = [{"reason": cause_type(m), "message": m, "field": f} for f, m in errors]
    return ApiError(422, "Invalid", f'{qual} "{name}" is invalid: {agg}',
                    {"name": name, **({"group": group} if group else {}), "kind": kind,
                     "causes": causes})


def success(resource: str, group: str, name: str, uid: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
            "details": _details(name, group, resource, uid=uid)}
