"""Name and value grammars of the Kubernetes API (k8s.io/apimachinery/pkg/util/validation).

Each checker returns a list of messages (empty = valid), worded as apimachinery words them, so
a Problem reads like the API server's own rejection.
"""

from __future__ import annotations

import re
from ipaddress import ip_address, ip_network

DNS1123_LABEL_MAX = 63
DNS1123_SUBDOMAIN_MAX = 253
DNS1035_LABEL_MAX = 63

_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL = re.compile(f"^{_LABEL}$")
_DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_IANA_SVC_NAME_CHARS = re.compile(r"^[-a-z0-9]+$")
_IANA_HAS_LETTER = re.compile(r"[a-z]")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_WILDCARD_SUBDOMAIN = re.compile(rf"^\*\.{_LABEL}(\.{_LABEL})*$")


def _max_len(n: int) -> str:
    return f"must be no more than {n} characters"


def _regex_msg(msg: str, rx: str, *examples: str) -> str:
    ex = ", ".join(f"'{e}'" for e in examples)
    # apimachinery's RegexError: "... (e.g. 'my-name',  or '123-abc', regex used ...)"
    if len(examples) > 1:
        ex = f"'{examples[0]}',  or '{examples[1]}'"
    return f"{msg} (e.g. {ex}, regex used for validation is '{rx}')"


def dns1123_label(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_LABEL_MAX:
        errs.append(_max_len(DNS1123_LABEL_MAX))
    if not _DNS1123_LABEL.match(value):
        errs.append(_regex_msg(
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
            "'-', and must start and end with an alphanumeric character",
            _LABEL, "my-name", "123-abc"))
    return errs


def dns1123_subdomain(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(_max_len(DNS1123_SUBDOMAIN_MAX))
    if not _DNS1123_SUBDOMAIN.match(value):
        errs.append(_regex_msg(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character",
            rf"{_LABEL}(\.{_LABEL})*", "example.com"))
    return errs


def dns1035_label(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1035_LABEL_MAX:
        errs.append(_max_len(DNS1035_LABEL_MAX))
    if not _DNS1035.match(value):
        errs.append(_regex_msg(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start "
            "with an alphabetic character, and end with an alphanumeric character",
            "[a-z]([-a-z0-9]*[a-z0-9])?", "my-name", "abc-123"))
    return errs


def wildcard_dns1123_subdomain(value: str) -> list[str]:
    if _WILDCARD_SUBDOMAIN.match(value) and len(value) <= DNS1123_SUBDOMAIN_MAX:
        return []
    return [_regex_msg(
        "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
        "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
        "alphanumeric character", rf"\*\.{_LABEL}(\.{_LABEL})*", "*.example.com")]


def qualified_name(value: str) -> list[str]:
    """Label/annotation keys: optional DNS subdomain prefix + '/' + name (≤63)."""
    errs = []
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            errs += [f"prefix part {m}" for m in dns1123_subdomain(prefix)]
    else:
        return ["a qualified name must consist of alphanumeric characters, '-', '_' or '.', and "
                "must start and end with an alphanumeric character (e.g. 'MyName',  or "
                "'my.name',  or '123-abc', regex used for validation is "
                "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain "
                "prefix and '/' (e.g. 'example.com/MyName')"]
    if not name:
        errs.append("name part must be non-empty")
    else:
        if len(name) > 63:
            errs.append(f"name part {_max_len(63)}")
        if not _QUALIFIED_NAME.match(name):
            errs.append(
                "name part must consist of alphanumeric characters, '-', '_' or '.', and must "
                "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  "
                "or '123-abc', regex used for validation is "
                "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')")
    return errs


def label_value(value: str) -> list[str]:
    errs = []
    if len(value) > 63:
        errs.append(_max_len(63))
    if not _LABEL_VALUE.match(value):
        errs.append(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', "
            "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
            "or 'my_value',  or '12345', regex used for validation is "
            "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
    return errs


def iana_svc_name(value: str) -> list[str]:
    """IsValidPortName: container port names and named targetPorts (RFC 6335 §5.1)."""
    errs = []
    if len(value) > 15:
        errs.append(_max_len(15))
    if not _IANA_SVC_NAME_CHARS.match(value):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if "--" in value:
        errs.append("must not contain consecutive hyphens")
    if value and (value[0] == "-" or value[-1] == "-"):
        errs.append("must not begin or end with a hyphen")
    if not _IANA_HAS_LETTER.search(value):
        errs.append("must contain at least one letter (a-z)")
    return errs


def port_number(value: int) -> list[str]:
    if 1 <= value <= 65535:
        return []
    return ["must be between 1 and 65535, inclusive"]


def config_map_key(value: str) -> list[str]:
    errs = []
    if len(value) > DNS1123_SUBDOMAIN_MAX:
        errs.append(_max_len(DNS1123_SUBDOMAIN_MAX))
    if not _CONFIG_KEY.match(value):
        errs.append("a valid config key must consist of alphanumeric characters, '-', '_' or "
                    "'.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
                    "validation is '[-._a-zA-Z0-9]+')")
    if value in (".", ".."):
        errs.append(f"must not be '{value}'")
    elif value.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def sloppy_ip(value: str) -> str | None:
    """k8s.io/utils/net ``ParseIPSloppy`` (the pre-Go-1.17 parser the API server and kube-proxy
    keep for legacy fields): IPv4 octets may have leading zeros and are read as **decimal**
    (``010.096.0.041`` → ``10.96.0.41``, never octal). The canonical text, or None."""
    try:
        return str(ip_address(value))
    except ValueError:
        pass
    parts = value.split(".")
    if len(parts) != 4 or not all(p.isascii() and p.isdigit() for p in parts):
        return None
    octets = [int(p) for p in parts]
    if any(o > 255 for o in octets):
        return None
    return ".".join(map(str, octets))


def ip_warning(path: str, value: str) -> str | None:
    """pkg/api/service/warnings.go ``getWarningsForIP`` (v1.32) for a value ``sloppy_ip``
    accepted but Go's ``netip.ParseAddr`` refuses (leading zeros)."""
    try:
        ip_address(value)
        return None
    except ValueError:
        pass
    return (f'{path}: IPv4 address "{value}" should not have leading zeros, '
            f'ParseAddr("{value}"): IPv4 field has octet with leading zero')


def sloppy_cidr(value: str) -> str | None:
    """``ParseCIDRSloppy``: a CIDR whose address part may have leading zeros; canonical
    network text (``198.51.100.000/24`` → ``198.51.100.0/24``), or None."""
    addr, slash, bits = value.partition("/")
    fixed = sloppy_ip(addr)
    if not slash or fixed is None or not (bits.isascii() and bits.isdigit()):
        return None
    try:
        return str(ip_network(f"{fixed}/{int(bits)}", strict=False))
    except ValueError:
        return None


def cidr_warning(path: str, value: str) -> str | None:
    """``getWarningsForCIDR`` (v1.32) for a CIDR with a leading-zero octet."""
    addr = value.partition("/")[0]
    try:
        ip_address(addr)
        return None
    except ValueError:
        pass
    return (f'{path}: IPv4 prefix "{value}" should not have leading zeros, '
            f'netip.ParsePrefix("{value}"): ParseAddr("{addr}"): IPv4 field has octet with '
            "leading zero")


def ip(value: str) -> list[str]:
    if sloppy_ip(value) is None:
        return ["must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]
    return []


def cidr(value: str) -> list[str]:
    try:
        ip_network(value, strict=False)
        if "/" not in value:
            raise ValueError
    except ValueError:
        if sloppy_cidr(value) is None:
            return ["must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"]
    return []
