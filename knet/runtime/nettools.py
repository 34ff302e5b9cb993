"""Network applets of the pod shell: wget, curl, nslookup, dig, host, getent, nc, ip.

Invariants:
- Every packet leaves the pod's network namespace on the fabric (``sh.net.netns``): names are
  resolved with the container's own ``/etc/resolv.conf`` and ``/etc/hosts`` (so a hostAliases
  entry or an edited file counts), queries go to the nameserver through the node's kube-proxy
  tables, connections are DNATed like any app's. Nothing reads cluster state on this side.
- Output formats are the tools': busybox 1.36 ``wget``/``nslookup``/``nc``, curl 8.11 (its
  error numbers and messages, ``-v`` trace, ``-w`` variables), BIND 9.18 ``dig``, glibc
  ``getent``, iproute2-as-busybox ``ip``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from knet.dns.client import Resolution
from knet.dns.stub import ResolvConf
from knet.runtime.shell import IO, applet

if TYPE_CHECKING:
    from knet.runtime.shell import Shell

CURL_VERSION = "8.11.1"
WGET_UA = "Wget"


class _NetError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _resolver(sh: Shell) -> Any:
    """The container's resolver, from its own /etc/resolv.conf and /etc/hosts."""
    from knet.runtime.dns import PodDns

    conf_b = sh.fs.read("/etc/resolv.conf")
    hosts_b = sh.fs.read("/etc/hosts")
    conf = ResolvConf.parse(conf_b.decode()) if conf_b is not None else \
        getattr(sh.net, "resolv_conf", ResolvConf())
    return PodDns(sh.net.netns, conf, hosts_b.decode() if hosts_b else "", cache=False)


async def _lookup(sh: Shell, host: str, family: int = 4) -> Resolution:
    return await _resolver(sh).resolution(host, family)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


def _no_net(sh: Shell, io: IO, prog: str) -> bool:
    if sh.net is None:
        io.error(f"{prog}: network is unreachable\n")
        return True
    return False


# --- HTTP client ---------------------------------------------------------------------------

@dataclass
class _Response:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    peer: str = ""
    raw_head: str = ""

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


@dataclass
class _Request:
    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    insecure: bool = False
    connect_timeout: float | None = None
    resolve: dict[tuple[str, int], str] = field(default_factory=dict)


async def _http(sh: Shell, req: _Request, trace: list[str] | None = None) -> _Response:
    u = urlsplit(req.url if "://" in req.url else "http://" + req.url)
    scheme = u.scheme.lower()
    if scheme not in ("http", "https"):
        raise _NetError(1, f'Protocol "{scheme}" not supported')
    host = u.hostname or ""
    port = u.port or (443 if scheme == "https" else 80)
    addr = req.resolve.get((host, port))
    if addr is None:
        if _is_ip(host):
            addr = host
        else:
            res = await _lookup(sh, host, 0)
            addrs = [a for a in res.addresses if ":" not in a] or list(res.addresses)
            if not addrs:
                raise _NetError(6, f"Could not resolve host: {host}")
            addr = addrs[0]
    if trace is not None:
        trace.append(f"* Host {host}:{port} was resolved.")
        trace.append(f"*   Trying {addr if ':' not in addr else '[' + addr + ']'}:{port}...")
    sslctx = None
    if scheme == "https":
        sslctx = ssl.create_default_context()
        if req.insecure:
            sslctx.check_hostname = False
            sslctx.verify_mode = ssl.CERT_NONE
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    try:
        conn = sh.net.netns.open_connection(addr, port, ssl=sslctx,
                                            server_hostname=host if sslctx else None)
        if req.connect_timeout is not None:
            reader, writer = await asyncio.wait_for(conn, req.connect_timeout)
        else:
            reader, writer = await conn
    except TimeoutError:
        ms = int((loop.time() - t0) * 1000)
        raise _NetError(28, f"Failed to connect to {host} port {port} after {ms} ms: "
                            f"Timeout was reached") from None
    except ssl.SSLCertVerificationError as e:
        raise _NetError(60, f"SSL certificate problem: {e.verify_message}") from None
    except (ConnectionError, OSError) as e:
        ms = int((loop.time() - t0) * 1000)
        why = "Could not connect to server" if isinstance(e, ConnectionRefusedError) else \
            "Couldn't connect to server"
        raise _NetError(7, f"Failed to connect to {host} port {port} after {ms} ms: "
                           f"{why}") from None
    if trace is not None:
        trace.append(f"* Connected to {host} ({addr}) port {port}")
    try:
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        host_hdr = u.netloc.rsplit("@", 1)[-1]
        hdrs = [("Host", host_hdr)]
        names = {k.lower() for k, _ in req.headers}
        hdrs = [h for h in hdrs if h[0].lower() not in names] + req.headers
        if req.body and "content-length" not in names:
            hdrs.append(("Content-Length", str(len(req.body))))
        head = f"{req.method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs
                                                                 if v != "") + "\r\n"
        if trace is not None:
            trace.extend("> " + ln for ln in head.split("\r\n")[:-1])
        writer.write(head.encode() + req.body)
        status_line = (await reader.readline()).decode(errors="replace").rstrip("\r\n")
        if not status_line:
            raise _NetError(52, "Empty reply from server")
        parts = status_line.split(" ", 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            raise _NetError(1, "Unsupported HTTP/1 subversion in response") from None
        headers: list[tuple[str, str]] = []
        raw = [status_line]
        while True:
            line = (await reader.readline()).decode(errors="replace").rstrip("\r\n")
            if not line:
                break
            raw.append(line)
            k, _, v = line.partition(":")
            headers.append((k.strip(), v.strip()))
        resp = _Response(parts[0], status, parts[2] if len(parts) > 2 else "", headers,
                         peer=addr, raw_head="\r\n".join(raw) + "\r\n\r\n")
        if trace is not None:
            trace.extend("< " + ln for ln in raw)
            trace.append("< ")
        if req.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            return resp
        te = (resp.header("Transfer-Encoding") or "").lower()
        cl = resp.header("Content-Length")
        if "chunked" in te:
            chunks = []
            while True:
                size_line = (await reader.readline()).decode().strip()
                size = int(size_line.split(";")[0] or "0", 16)
                if size == 0:
                    await reader.readline()
                    break
                chunks.append(await reader.readexactly(size))
                await reader.readline()
            resp.body = b"".join(chunks)
        elif cl is not None:
            resp.body = await reader.readexactly(int(cl))
        else:
            resp.body = await reader.read()
        return resp
    except (asyncio.IncompleteReadError, ConnectionError) as e:
        raise _NetError(56, f"Recv failure: {e}") from None
    finally:
        writer.close()


# --- curl ----------------------------------------------------------------------------------

@applet("curl")
async def curl(sh: Shell, argv: list[str], io: IO) -> int:
    if _no_net(sh, io, "curl"):
        return 7
    opts: dict[str, Any] = {"headers": [], "data": [], "resolve": {}}
    urls: list[str] = []
    takes = {"-o": "output", "--output": "output", "-w": "write_out", "--write-out": "write_out",
             "-H": "header", "--header": "header", "-X": "method", "--request": "method",
             "-d": "data", "--data": "data", "--data-raw": "data", "--data-binary": "data",
             "--connect-timeout": "connect_timeout", "-m": "max_time", "--max-time": "max_time",
             "--resolve": "resolve", "-A": "agent", "--user-agent": "agent",
             "--retry": "retry", "-u": "user", "--cacert": "cacert", "-e": "referer"}
    flags = {"-s": "silent", "--silent": "silent", "-S": "show_error", "--show-error": "show_error",
             "-f": "fail", "--fail": "fail", "-k": "insecure", "--insecure": "insecure",
             "-v": "verbose", "--verbose": "verbose", "-I": "head", "--head": "head",
             "-L": "location", "--location": "location", "-i": "include", "--include": "include",
             "-4": "v4", "-6": "v6", "--http1.1": "h1", "-N": "nobuf", "--fail-with-body": "fail"}
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a in takes:
            if i + 1 >= len(args):
                io.error(f"curl: option {a}: requires parameter\n")
                return 2
            key, val = takes[a], args[i + 1]
            if key == "header":
                k, _, v = val.partition(":")
                opts["headers"].append((k.strip(), v.strip()))
            elif key == "data":
                opts["data"].append(val)
            elif key == "resolve":
                h, p, ad = val.split(":", 2)
                opts["resolve"][(h, int(p))] = ad.strip("[]")
            else:
                opts[key] = val
            i += 2
            continue
        if a in flags:
            opts[flags[a]] = True
        elif a.startswith("-") and not a.startswith("--") and len(a) > 2 and \
                all(("-" + c) in flags for c in a[1:]):
            for c in a[1:]:
                opts[flags["-" + c]] = True
        elif a.startswith("-") and len(a) > 2 and ("-" + a[1]) in takes and not a.startswith("--"):
            args[i:i + 1] = [a[:2], a[2:]]
            continue
        elif a.startswith("-"):
            io.error(f"curl: option {a}: is unknown\ncurl: try 'curl --help' or 'curl --manual' "
                     f"for more information\n")
            return 2
        else:
            urls.append(a)
        i += 1
    if not urls:
        io.error("curl: no URL specified\ncurl: try 'curl --help' or 'curl --manual' for more "
                 "information\n")
        return 2
    silent = opts.get("silent", False)
    show_err = not silent or opts.get("show_error", False)
    code = 0
    for url in urls:
        code = await _curl_one(sh, io, url, opts, show_err)
    return code


async def _curl_one(sh: Shell, io: IO, url: str, opts: dict[str, Any], show_err: bool) -> int:
    method = opts.get("method") or ("HEAD" if opts.get("head") else "POST" if opts["data"] else "GET")
    headers = [("User-Agent", opts.get("agent", f"curl/{CURL_VERSION}")), ("Accept", "*/*")]
    body = "&".join(opts["data"]).encode()
    if body and not any(k.lower() == "content-type" for k, _ in opts["headers"]):
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    names = {k.lower() for k, _ in opts["headers"]}
    headers = [h for h in headers if h[0].lower() not in names] + opts["headers"]
    trace: list[str] | None = [] if opts.get("verbose") else None
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    max_time = float(opts["max_time"]) if "max_time" in opts else None
    ct = float(opts["connect_timeout"]) if "connect_timeout" in opts else None
    redirects = 0
    resp: _Response | None = None
    try:
        while True:
            req = _Request(method, url, headers, body, bool(opts.get("insecure")), ct,
                           opts["resolve"])
            coro = _http(sh, req, trace)
            resp = await (asyncio.wait_for(coro, max_time) if max_time else coro)
            loc = resp.header("Location")
            if opts.get("location") and loc and resp.status in (301, 302, 303, 307, 308) and \
                    redirects < 50:
                if trace is not None:
                    trace.append(f"* Issue another request to this URL: '{urljoin(url, loc)}'")
                url = urljoin(url, loc)
                redirects += 1
                if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                    method, body = "GET", b""
                continue
            break
    except TimeoutError:
        ms = int((loop.time() - t0) * 1000)
        return _curl_fail(io, trace, 28, f"Operation timed out after {ms} milliseconds with 0 "
                                         f"bytes received", show_err)
    except _NetError as e:
        return _curl_fail(io, trace, e.code, str(e), show_err)
    assert resp is not None
    if trace is not None:
        io.error("".join(t + "\n" for t in trace))
    if opts.get("fail") and resp.status >= 400:
        if show_err:
            io.error(f"curl: (22) The requested URL returned error: {resp.status}\n")
        _write_out(io, opts, resp, loop.time() - t0, url)
        return 22
    out = b""
    if opts.get("include") or opts.get("head"):
        out += resp.raw_head.encode()
    if not opts.get("head"):
        out += resp.body
    if "output" in opts and opts["output"] != "-":
        path = sh.path(opts["output"])
        if opts["output"] == "/dev/null":
            pass
        else:
            try:
                sh.fs.write(path, out, parents=False)
            except OSError:
                if show_err:
                    io.error("curl: (23) Failure writing output to destination\n")
                return 23
    else:
        io.print(out.decode(errors="replace"))
    if trace is not None:
        io.error(f"* Connection #0 to host {urlsplit(url).hostname} left intact\n")
    _write_out(io, opts, resp, loop.time() - t0, url)
    return 0


def _curl_fail(io: IO, trace: list[str] | None, code: int, msg: str, show_err: bool) -> int:
    if trace is not None:
        io.error("".join(t + "\n" for t in trace) + f"* {msg}\n")
    if show_err:
        io.error(f"curl: ({code}) {msg}\n")
    return code


def _write_out(io: IO, opts: dict[str, Any], resp: _Response | None, secs: float, url: str) -> None:
    fmt = opts.get("write_out")
    if not fmt:
        return
    vals = {"http_code": f"{resp.status:03d}" if resp else "000",
            "response_code": f"{resp.status:03d}" if resp else "000",
            "time_total": f"{secs:.6f}", "time_connect": f"{secs:.6f}",
            "time_namelookup": "0.000000", "time_starttransfer": f"{secs:.6f}",
            "size_download": str(len(resp.body)) if resp else "0",
            "remote_ip": resp.peer if resp else "", "url_effective": url,
            "content_type": (resp.header("Content-Type") or "") if resp else "",
            "num_redirects": "0", "http_version": "1.1", "method": opts.get("method") or "GET",
            "remote_port": str(urlsplit(url).port or 80), "exitcode": "0"}
    out = fmt
    for k, v in vals.items():
        out = out.replace("%{" + k + "}", v)
    out = out.replace("\\n", "\n").replace("\\t", "\t").replace("\\r", "\r")
    io.print(out)


# --- wget (busybox) ------------------------------------------------------------------------

@applet("wget")
async def wget(sh: Shell, argv: list[str], io: IO) -> int:
    if _no_net(sh, io, "wget"):
        return 1
    quiet = False
    output: str | None = None
    timeout: float | None = None
    spider = False
    server_resp = False
    headers: list[tuple[str, str]] = []
    post: str | None = None
    urls: list[str] = []
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        nxt = args[i + 1] if i + 1 < len(args) else ""
        if a in ("-O", "--output-document"):
            output, i = nxt, i + 2
            continue
        if a.startswith("-O") and len(a) > 2 and not a.startswith("--"):
            output = a[2:]
        elif a.startswith("--output-document="):
            output = a.split("=", 1)[1]
        elif a in ("-T", "--timeout"):
            timeout, i = float(nxt), i + 2
            continue
        elif a.startswith("-T") and a[2:].isdigit():
            timeout = float(a[2:])
        elif a.startswith("--timeout="):
            timeout = float(a.split("=", 1)[1])
        elif a in ("--header",):
            k, _, v = nxt.partition(":")
            headers.append((k.strip(), v.strip()))
            i += 2
            continue
        elif a in ("-U", "--user-agent"):
            headers.append(("User-Agent", nxt))
            i += 2
            continue
        elif a == "--post-data":
            post, i = nxt, i + 2
            continue
        elif a.startswith("--post-data="):
            post = a.split("=", 1)[1]
        elif a == "--spider":
            spider = True
        elif a.startswith("-") and not a.startswith("--") and len(a) > 1:
            rest = a[1:]
            for j, c in enumerate(rest):
                if c == "q":
                    quiet = True
                elif c == "S":
                    server_resp = True
                elif c == "O":
                    output = rest[j + 1:] or nxt
                    if not rest[j + 1:]:
                        i += 1
                    break
                elif c == "T":
                    timeout = float(rest[j + 1:] or nxt)
                    if not rest[j + 1:]:
                        i += 1
                    break
        elif a.startswith("--"):
            pass  # --no-check-certificate, -c …: accepted
        else:
            urls.append(a)
        i += 1
    if not urls:
        io.error("BusyBox v1.36.1 (2023-05-18 22:34:17 UTC) multi-call binary.\n\n"
                 "Usage: wget [-cqS] [--spider] [-O FILE] [-o LOGFILE] [--header STR]\n"
                 "\t[--post-data STR | --post-file FILE] [-Y on/off]\n"
                 "\t[--no-check-certificate] [-P DIR] [-U AGENT] [-T SEC] URL...\n")
        return 1
    code = 0
    for url in urls:
        code = max(code, await _wget_one(sh, io, url, quiet, output, timeout, spider,
                                         server_resp, headers, post))
    return code


async def _wget_one(sh: Shell, io: IO, url: str, quiet: bool, output: str | None,
                    timeout: float | None, spider: bool, server_resp: bool,
                    headers: list[tuple[str, str]], post: str | None) -> int:
    full = url if "://" in url else "http://" + url
    u = urlsplit(full)
    host = u.hostname or ""
    port = u.port or (443 if u.scheme == "https" else 80)
    hdrs = [("User-Agent", WGET_UA), *headers, ("Connection", "close")]
    if post is not None:
        hdrs.append(("Content-Type", "application/x-www-form-urlencoded"))
    method = "POST" if post is not None else ("HEAD" if spider else "GET")
    loop = asyncio.get_running_loop()
    for _hop in range(20):
        if not _is_ip(host):
            res = await _lookup(sh, host, 0)
            addrs = [a for a in res.addresses if ":" not in a] or list(res.addresses)
            if not addrs:
                io.error(f"wget: bad address '{host}'\n")
                return 1
            addr = addrs[0]
        else:
            addr = host
        if not quiet:
            io.error(f"Connecting to {host}{':' + str(u.port) if u.port else ''} ({addr}:{port})\n")
        req = _Request(method, full, hdrs, (post or "").encode(), insecure=True,
                       resolve={(host, port): addr})
        try:
            coro = _http(sh, req)
            resp = await (asyncio.wait_for(coro, timeout) if timeout else coro)
        except TimeoutError:
            io.error("wget: download timed out\n")
            return 1
        except _NetError as e:
            if e.code == 7:
                io.error(f"wget: can't connect to remote host ({addr}): Connection refused\n"
                         if "Could not" in str(e) else
                         f"wget: can't connect to remote host ({addr}): Connection timed out\n")
            elif e.code == 28:
                io.error("wget: download timed out\n")
            else:
                io.error(f"wget: {e}\n")
            return 1
        if server_resp:
            io.error("".join(f"  {ln}\n" for ln in resp.raw_head.split("\r\n") if ln))
        loc = resp.header("Location")
        if resp.status in (301, 302, 303, 307, 308) and loc:
            full = urljoin(full, loc)
            u = urlsplit(full)
            host, port = u.hostname or "", u.port or (443 if u.scheme == "https" else 80)
            continue
        break
    if resp.status >= 400 or resp.status < 200:
        io.error(f"wget: server returned error: {resp.version} {resp.status} {resp.reason}\n")
        return 1
    if spider:
        if not quiet:
            io.error("remote file exists\n")
        return 0
    name = output
    if name is None:
        name = u.path.rsplit("/", 1)[-1] or "index.html"
    size = len(resp.body)
    if name == "-":
        if not quiet:
            io.error("writing to stdout\n")
        io.print(resp.body.decode(errors="replace"))
        if not quiet:
            io.error(f"-                    100% |********************************| {_size(size)}"
                     f"  0:00:00 ETA\nwritten to stdout\n")
        return 0
    path = sh.path(name)
    if sh.fs.exists(path) and output is None:
        io.error(f"wget: can't open '{name}': File exists\n")
        return 1
    try:
        sh.fs.write(path, resp.body, parents=False)
    except OSError as e:
        io.error(f"wget: can't open '{name}': {e.strerror}\n")
        return 1
    if not quiet:
        io.error(f"saving to '{name}'\n{name[:20]:<20} 100% |********************************| "
                 f"{_size(size)}  0:00:00 ETA\n'{name}' saved\n")
    del loop
    return 0


def _size(n: int) -> str:
    return f"{n:5d}" if n < 100000 else f"{n // 1024:4d}k"


# --- DNS tools -------------------------------------------------------------------------------

async def _query(sh: Shell, server: str | None, name: str, qtype: str, tcp: bool = False
                 ) -> tuple[bytes | None, str]:
    from knet.dns.answer import make_query
    from knet.runtime.dns import PodDns

    r = _resolver(sh)
    if server:
        r = PodDns(sh.net.netns, ResolvConf((server,), (), r.conf.options), cache=False)
    srv = r.conf.nameservers[0] if r.conf.nameservers else ""
    data = make_query(name, qtype, id=next(_qid), rd=True, edns=1232)
    reply = await r.send(data, tcp)
    return reply, srv


def _ids() -> Any:
    n = 0x3A1F
    while True:
        n = (n * 1103515245 + 12345) & 0xFFFF
        yield n


_qid = _ids()


@applet("nslookup")
async def nslookup(sh: Shell, argv: list[str], io: IO) -> int:
    if _no_net(sh, io, "nslookup"):
        return 1
    from dnslib import DNSRecord

    from knet.dns.stub import Status, candidates

    args = [a for a in argv[1:] if not a.startswith("-")]
    qtype = next((a.split("=", 1)[1].upper() for a in argv[1:] if a.startswith(("-type=",
                                                                               "-query="))), "")
    if not args:
        io.error("BusyBox v1.36.1 (2023-05-18 22:34:17 UTC) multi-call binary.\n\n"
                 "Usage: nslookup [-type=QUERY_TYPE] [-debug] HOST [DNS_SERVER]\n")
        return 1
    name = args[0]
    r = _resolver(sh)
    server = args[1] if len(args) > 1 else (r.conf.nameservers[0] if r.conf.nameservers else "")
    if not server:
        io.error("nslookup: can't resolve server\n")
        return 1
    io.print(f"Server:\t\t{server}\nAddress:\t{server}:53\n\n")
    if _is_ip(name):
        rev = ipaddress.ip_address(name).reverse_pointer
        reply, _ = await _query(sh, server, rev, "PTR")
        if reply is None:
            io.print(";; connection timed out; no servers could be reached\n\n")
            return 1
        rec = DNSRecord.parse(reply)
        if not rec.rr:
            io.print(f"** server can't find {rev}: NXDOMAIN\n\n")
            return 1
        for rr in rec.rr:
            io.print(f"{rev}\tname = {str(rr.rdata).rstrip('.')}\n")
        io.print("\n")
        return 0
    conf = r.conf if len(args) < 2 else ResolvConf((server,), r.conf.searches, r.conf.options)
    names = [n.rstrip(".") for n in candidates(name, conf)] if not name.endswith(".") else \
        [name.rstrip(".")]
    types = [qtype] if qtype else ["A", "AAAA"]
    errors: list[str] = []
    for fq in names:
        found = False
        outputs: list[str] = []
        status = Status.NXDOMAIN
        for t in types:
            reply, _ = await _query(sh, server, fq, t)
            if reply is None:
                io.print(";; connection timed out; no servers could be reached\n\n")
                return 1
            rec = DNSRecord.parse(reply)
            rcode = rec.header.rcode
            if rcode == 3:
                status = Status.NXDOMAIN
                break
            if rcode != 0:
                status = Status.SERVFAIL
                break
            status = Status.SUCCESS if rec.rr else Status.NODATA
            for rr in rec.rr:
                from dnslib import QTYPE

                rt = QTYPE.get(rr.rtype)
                if rt in ("A", "AAAA"):
                    outputs.append(f"Name:\t{str(rr.rname).rstrip('.')}\nAddress: {rr.rdata}\n")
                    found = True
                elif rt == "CNAME":
                    outputs.append(f"{str(rr.rname).rstrip('.')}\tcanonical name = "
                                   f"{str(rr.rdata).rstrip('.')}\n")
                elif rt == "SRV":
                    outputs.append(f"{str(rr.rname).rstrip('.')}\tservice = {rr.rdata}\n")
                    found = True
                else:
                    outputs.append(f"{str(rr.rname).rstrip('.')}\t{rt.lower()} = {rr.rdata}\n")
                    found = True
            if qtype and rec.rr:
                found = True
        if found:
            io.print("".join(outputs) + "\n")
            return 0
        why = {Status.NXDOMAIN: "NXDOMAIN", Status.SERVFAIL: "SERVFAIL"}.get(status, "No answer")
        errors.append(f"** server can't find {fq}: {why}\n\n")
    io.print("".join(errors))
    return 1


@applet("getent")
async def getent(sh: Shell, argv: list[str], io: IO) -> int:
    if len(argv) < 3 or argv[1] not in ("hosts", "ahosts", "ahostsv4", "passwd", "group"):
        io.error("Usage: getent [OPTION...] database [key ...]\n") if len(argv) < 2 else None
        return 1 if len(argv) >= 2 else 1
    db = argv[1]
    if db in ("passwd", "group"):
        data = (sh.fs.read(f"/etc/{db}") or b"").decode()
        hits = [ln for ln in data.splitlines() if ln.split(":", 1)[0] in argv[2:]]
        io.print("".join(h + "\n" for h in hits))
        return 0 if hits else 2
    if _no_net(sh, io, "getent"):
        return 2
    code = 0
    for name in argv[2:]:
        res = await _lookup(sh, name, 4 if db == "ahostsv4" else 0)
        if not res.addresses:
            code = 2
            continue
        canon = name if res.from_hosts else (res.canonical or name).rstrip(".")
        if db == "hosts":
            io.print(f"{res.addresses[0]:<15} {canon}\n")
        else:
            for a in res.addresses:
                io.print(f"{a:<15} STREAM {canon}\n{a:<15} DGRAM  \n{a:<15} RAW    \n")
    return code


@applet("host")
async def host(sh: Shell, argv: list[str], io: IO) -> int:
    if _no_net(sh, io, "host"):
        return 1
    args = [a for a in argv[1:] if not a.startswith("-")]
    if not args:
        return 1
    name = args[0]
    res = await _lookup(sh, name, 0)
    if not res.addresses:
        canon = name if name.endswith(".") else name
        io.print(f"Host {canon} not found: 3(NXDOMAIN)\n")
        return 1
    canon = (res.canonical or name).rstrip(".")
    for a in res.addresses:
        io.print(f"{canon} has {'IPv6 ' if ':' in a else ''}address {a}\n")
    return 0


@applet("dig")
async def dig(sh: Shell, argv: list[str], io: IO) -> int:
    if _no_net(sh, io, "dig"):
        return 1
    from knet.dns.answer import make_query
    from knet.dns.dig import render
    from knet.dns.stub import candidates
    from knet.dns.wire import qtype_value
    from knet.runtime.dns import PodDns

    server: str | None = None
    short = search = tcp = False
    name = ""
    qtype = "A"
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("@"):
            server = a[1:]
        elif a == "+short":
            short = True
        elif a == "+search":
            search = True
        elif a in ("+tcp", "+vc"):
            tcp = True
        elif a.startswith("+"):
            pass
        elif a == "-x" and i + 1 < len(args):
            name, qtype = ipaddress.ip_address(args[i + 1]).reverse_pointer, "PTR"
            i += 1
        elif a == "-t" and i + 1 < len(args):
            qtype = args[i + 1].upper()
            i += 1
        elif not name:
            name = a
        else:
            try:
                qtype_value(a.upper())
                qtype = a.upper()
            except (KeyError, ValueError):
                name = a
        i += 1
    name = name or "."
    r = _resolver(sh)
    srv = server or (r.conf.nameservers[0] if r.conf.nameservers else "127.0.0.1")
    pod_dns = PodDns(sh.net.netns, ResolvConf((srv,), r.conf.searches, r.conf.options), cache=False)
    names = [n for n in candidates(name, r.conf)] if search else [name]
    loop = asyncio.get_running_loop()
    reply = None
    t0 = loop.time()
    for fq in names:
        data = make_query(fq, qtype, id=next(_qid), rd=True, edns=1232)
        reply = await pod_dns.send(data, tcp)
        if reply is None:
            break
        from dnslib import DNSRecord

        if DNSRecord.parse(reply).header.rcode == 0 and DNSRecord.parse(reply).rr:
            break
    if reply is None:
        io.print(f";; communications error to {srv}#53: timed out\n"
                 f";; communications error to {srv}#53: timed out\n"
                 f";; communications error to {srv}#53: timed out\n\n"
                 f"; <<>> DiG 9.18.33 <<>> {' '.join(argv[1:])}\n;; global options: +cmd\n"
                 f";; no servers could be reached\n")
        return 9
    if short:
        from dnslib import DNSRecord

        from knet.dns.dig import rdata_text

        for rr in DNSRecord.parse(reply).rr:
            io.print(rdata_text(rr) + "\n")
        return 0
    ms = int((loop.time() - t0) * 1000)
    when = time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime(sh.clock()))
    io.print(f"\n; <<>> DiG 9.18.33 <<>> {' '.join(argv[1:])}\n;; global options: +cmd\n"
             f";; Got answer:\n" + render(reply, query_time_ms=ms).replace(
                 ";; MSG SIZE", f";; SERVER: {srv}#53({srv}) ({'TCP' if tcp else 'UDP'})\n"
                                 f";; WHEN: {when}\n;; MSG SIZE") + "\n")
    return 0


# --- nc ------------------------------------------------------------------------------------

class _UdpRecv(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.q: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.error: Exception | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.q.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.error = exc
        self.q.put_nowait((b"", None))


@applet("nc", "netcat", "ncat")
async def nc(sh: Shell, argv: list[str], io: IO) -> int:
    if _no_net(sh, io, "nc"):
        return 1
    listen = udp = zero = verbose = keep = False
    wait: float | None = None
    port_opt: int | None = None
    pos: list[str] = []
    args = argv[1:]
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-") and len(a) > 1:
            for k, c in enumerate(a[1:]):
                if c == "l":
                    listen = True
                elif c == "u":
                    udp = True
                elif c == "z":
                    zero = True
                elif c == "v":
                    verbose = True
                elif c == "k":
                    keep = True
                elif c in "wpq":
                    val = a[k + 2:] or (args[i + 1] if i + 1 < len(args) else "")
                    if not a[k + 2:]:
                        i += 1
                    if c == "w":
                        wait = float(val)
                    elif c == "p":
                        port_opt = int(val)
                    break
        else:
            pos.append(a)
        i += 1
    netns = sh.net.netns
    if listen:
        port = port_opt or (int(pos[-1]) if pos else 0)
        return await _nc_listen(sh, io, netns, port, udp, keep, verbose)
    if len(pos) < 2:
        io.error("BusyBox v1.36.1 (2023-05-18 22:34:17 UTC) multi-call binary.\n\n"
                 "Usage: nc [OPTIONS] HOST PORT  - connect\nnc [OPTIONS] -l -p PORT [HOST] [PORT]"
                 "  - listen\n")
        return 1
    hostname, ports = pos[0], pos[1:]
    if _is_ip(hostname):
        addr = hostname
    else:
        res = await _lookup(sh, hostname, 0)
        if not res.addresses:
            io.error(f"nc: bad address '{hostname}'\n")
            return 1
        addr = [a for a in res.addresses if ":" not in a][0] if any(
            ":" not in a for a in res.addresses) else res.addresses[0]
    code = 0
    for p in ports:
        lo, _, hi = p.partition("-")
        for port in range(int(lo), int(hi or lo) + 1):
            code = max(code, await _nc_connect(sh, io, netns, hostname, addr, port, udp, zero,
                                               verbose, wait))
    return code


async def _nc_connect(sh: Shell, io: IO, netns: Any, hostname: str, addr: str, port: int,
                      udp: bool, zero: bool, verbose: bool, wait: float | None) -> int:
    if udp:
        t, proto = await netns.create_datagram_endpoint(_UdpRecv, remote_addr=(addr, port))
        try:
            if zero:
                t.sendto(b"")
                if verbose:
                    io.error(f"{hostname} ({addr}:{port}) open\n")
                return 0
            if io.stdin:
                t.sendto(io.stdin.encode())
            try:
                while True:
                    data, _ = await asyncio.wait_for(proto.q.get(), wait if wait else 2.0)
                    if proto.error is not None:
                        if verbose:
                            io.error(f"nc: {proto.error}\n")
                        return 1
                    io.print(data.decode(errors="replace"))
            except TimeoutError:
                return 0
        finally:
            t.close()
    try:
        conn = netns.open_connection(addr, port)
        reader, writer = await (asyncio.wait_for(conn, wait) if wait else conn)
    except TimeoutError:
        if verbose or not zero:
            io.error(f"nc: {hostname} ({addr}:{port}): Connection timed out\n")
        return 1
    except (ConnectionError, OSError) as e:
        why = "Connection refused" if isinstance(e, ConnectionRefusedError) else \
            (e.strerror or "Connection timed out")
        if verbose or not zero:
            io.error(f"nc: {hostname} ({addr}:{port}): {why}\n")
        return 1
    try:
        if zero:
            if verbose:
                io.error(f"{hostname} ({addr}:{port}) open\n")
            return 0
        if io.stdin:
            writer.write(io.stdin.encode())
            if writer.can_write_eof():
                writer.write_eof()
        while True:
            try:
                chunk = await (asyncio.wait_for(reader.read(65536), wait) if wait
                               else reader.read(65536))
            except TimeoutError:
                break
            if not chunk:
                break
            io.print(chunk.decode(errors="replace"))
        return 0
    finally:
        writer.close()


async def _nc_listen(sh: Shell, io: IO, netns: Any, port: int, udp: bool, keep: bool,
                     verbose: bool) -> int:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    reply = io.stdin.encode()
    if udp:
        t, proto = await netns.create_datagram_endpoint(_UdpRecv, local_addr=("0.0.0.0", port))
        try:
            while True:
                data, addr = await proto.q.get()
                io.print(data.decode(errors="replace"))
                if reply and addr is not None:
                    t.sendto(reply, addr)
                if not keep:
                    return 0
        finally:
            t.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if verbose:
            io.error(f"connect to [{sh.net.ip}]:{port} from [{peer[0]}]:{peer[1]} "
                     f"({peer[0]}:{peer[1]})\n" if peer else "")
        if reply:
            writer.write(reply)
        try:
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                io.print(chunk.decode(errors="replace"))
        finally:
            writer.close()
            if not keep and not done.done():
                done.set_result(None)

    server = await netns.start_server(handle, None, port)
    if verbose:
        io.error(f"listening on [::]:{port} ...\n")
    try:
        if keep:
            await asyncio.Event().wait()
        await done
        return 0
    finally:
        server.close()


# --- ip ------------------------------------------------------------------------------------

def _mac(ip: str) -> str:
    b = ipaddress.ip_address(ip).packed[-4:]
    return "0a:58:" + ":".join(f"{x:02x}" for x in b)


@applet("ip")
async def ip(sh: Shell, argv: list[str], io: IO) -> int:
    args = [a for a in argv[1:] if a not in ("-4", "-6", "-o", "-br")]
    obj = args[0] if args else ""
    ips = [str(a) for a in getattr(sh.net, "ips", [])] if sh.net is not None else []
    v4 = [a for a in ips if ":" not in a]
    if obj in ("a", "addr", "address"):
        out = ["1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue qlen 1000",
               "    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00",
               "    inet 127.0.0.1/8 scope host lo", "       valid_lft forever preferred_lft forever",
               "    inet6 ::1/128 scope host ", "       valid_lft forever preferred_lft forever"]
        if ips:
            out += [f"2: eth0@if{_ifindex(ips[0])}: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu "
                    f"1500 qdisc noqueue ", f"    link/ether {_mac(ips[0])} brd ff:ff:ff:ff:ff:ff"]
            for a in ips:
                if ":" in a:
                    out.append(f"    inet6 {a}/64 scope global ")
                else:
                    net = ipaddress.ip_network(f"{a}/24", strict=False)
                    out.append(f"    inet {a}/24 brd {net.broadcast_address} scope global eth0")
                out.append("       valid_lft forever preferred_lft forever")
        io.print("".join(x + "\n" for x in out))
        return 0
    if obj in ("r", "ro", "route"):
        if v4:
            net = ipaddress.ip_network(f"{v4[0]}/24", strict=False)
            gw = net.network_address + 1
            io.print(f"default via {gw} dev eth0 \n{net} via {gw} dev eth0 src {v4[0]} \n"
                     f"{gw} dev eth0 scope link src {v4[0]} \n")
        return 0
    if obj in ("l", "link"):
        io.print("1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue qlen 1000\n"
                 "    link/loopback 00:00:00:00:00:00 brd 00:00:00:00:00:00\n")
        if ips:
            io.print(f"2: eth0@if{_ifindex(ips[0])}: <BROADCAST,MULTICAST,UP,LOWER_UP,M-DOWN> mtu "
                     f"1500 qdisc noqueue \n    link/ether {_mac(ips[0])} brd ff:ff:ff:ff:ff:ff\n")
        return 0
    io.error("BusyBox v1.36.1 (2023-05-18 22:34:17 UTC) multi-call binary.\n\n"
             "Usage: ip [OPTIONS] address|route|link|tunnel|neigh|rule [ARGS]\n")
    return 1


def _ifindex(ip: str) -> int:
    return 2 + ipaddress.ip_address(ip).packed[-1] % 250


__all__ = ["curl", "wget", "nslookup", "dig", "nc", "ip", "getent", "host"]


# --- database clients people use in init containers and exec ----------------------------------

async def _connect(sh: Shell, host: str, port: int, timeout: float = 5.0) -> Any:
    addr = host
    if not _is_ip(host):
        res = await _lookup(sh, host, 4)
        if not res.addresses:
            raise _NetError(2, f"could not translate host name \"{host}\" to address: Name or "
                               f"service not known")
        addr = res.addresses[0]
    return await asyncio.wait_for(sh.net.netns.open_connection(addr, port), timeout)


def _resp_text(reply: bytes) -> str:
    kind, rest = reply[:1], reply[1:].split(b"\r\n", 1)[0].decode(errors="replace")
    if kind == b"+":
        return rest
    if kind == b"-":
        return f"(error) {rest}"
    if kind == b":":
        return f"(integer) {rest}"
    if kind == b"$":
        if rest == "-1":
            return "(nil)"
        body = reply.split(b"\r\n", 1)[1][:int(rest)].decode(errors="replace")
        return f'"{body}"' if "\r\n" not in body else body
    if kind == b"*":
        items = []
        data = reply.split(b"\r\n", 1)[1]
        for n in range(int(rest)):
            hdr, data = data.split(b"\r\n", 1)
            size = int(hdr[1:])
            items.append(f'{n + 1}) "{data[:size].decode(errors="replace")}"')
            data = data[size + 2:]
        return "\n".join(items) if items else "(empty array)"
    return reply.decode(errors="replace")


@applet("redis-cli", "valkey-cli")
async def redis_cli(sh: Shell, argv: list[str], io: IO) -> int:
    if _no_net(sh, io, "redis-cli"):
        return 1
    host, port, password = "127.0.0.1", 6379, None
    args = argv[1:]
    cmd: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-h", "-p", "-a") and i + 1 < len(args):
            if a == "-h":
                host = args[i + 1]
            elif a == "-p":
                port = int(args[i + 1])
            else:
                password = args[i + 1]
            i += 2
            continue
        cmd.append(a)
        i += 1
    if not cmd:
        cmd = ["PING"]
    try:
        reader, writer = await _connect(sh, host, port)
    except (TimeoutError, OSError, ConnectionError, _NetError):
        io.error(f"Could not connect to Redis at {host}:{port}: Connection refused\n")
        return 1
    try:
        if password is not None:
            io.error("Warning: Using a password with '-a' or '-u' option on the command line "
                     "interface may not be safe.\n")
            writer.write(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(password), password.encode()))
            await reader.readline()
        parts = [c.encode() for c in cmd]
        writer.write(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p)
                                                       for p in parts))
        first = await reader.readline()
        reply = first
        if first[:1] == b"$" and first[1:3] != b"-1":
            reply += await reader.readexactly(int(first[1:]) + 2)
        elif first[:1] == b"*":
            for _ in range(int(first[1:])):
                hdr = await reader.readline()
                reply += hdr + await reader.readexactly(int(hdr[1:]) + 2)
        io.print(_resp_text(reply) + "\n")
        return 0
    finally:
        writer.close()


@applet("pg_isready")
async def pg_isready(sh: Shell, argv: list[str], io: IO) -> int:
    host, port = "/var/run/postgresql", 5432
    args = argv[1:]
    quiet = "-q" in args or "--quiet" in args
    for k, a in enumerate(args):
        if a in ("-h", "--host") and k + 1 < len(args):
            host = args[k + 1]
        elif a.startswith("--host="):
            host = a.split("=", 1)[1]
        elif a in ("-p", "--port") and k + 1 < len(args):
            port = int(args[k + 1])
    if host.startswith("/") or sh.net is None:
        if not quiet:
            io.print(f"{host}:{port} - no response\n")
        return 2
    try:
        reader, writer = await _connect(sh, host, port, 3.0)
    except _NetError as e:
        if not quiet:
            io.error(f"pg_isready: {e}\n")
            io.print(f"{host}:{port} - no attempt\n")
        return 3
    except (TimeoutError, OSError, ConnectionError):
        if not quiet:
            io.print(f"{host}:{port} - no response\n")
        return 2
    try:
        body = b"user\x00postgres\x00database\x00postgres\x00\x00"
        writer.write(len(body + b"\x00\x03\x00\x00").to_bytes(4, "big") + b"\x00\x03\x00\x00" + body)
        tag = await asyncio.wait_for(reader.readexactly(1), 3.0)
        ok = tag in (b"R", b"E")
    except (TimeoutError, asyncio.IncompleteReadError, OSError, ConnectionError):
        ok = False
    finally:
        writer.close()
    if not quiet:
        io.print(f"{host}:{port} - {'accepting connections' if ok else 'no response'}\n")
    return 0 if ok else 2


@applet("mysqladmin")
async def mysqladmin(sh: Shell, argv: list[str], io: IO) -> int:
    host, port = "localhost", 3306
    args = argv[1:]
    for k, a in enumerate(args):
        if a == "-h" and k + 1 < len(args):
            host = args[k + 1]
        elif a.startswith("-h") and len(a) > 2:
            host = a[2:]
        elif a.startswith("--host="):
            host = a.split("=", 1)[1]
        elif a == "-P" and k + 1 < len(args):
            port = int(args[k + 1])
    if "ping" not in args:
        io.error("mysqladmin: only 'ping' is supported in knet\n")
        return 1
    try:
        reader, writer = await _connect(sh, "127.0.0.1" if host == "localhost" else host, port, 3.0)
        hdr = await asyncio.wait_for(reader.readexactly(4), 3.0)
        await reader.readexactly(int.from_bytes(hdr[:3], "little"))
        writer.close()
    except (TimeoutError, asyncio.IncompleteReadError, OSError, ConnectionError, _NetError):
        io.error(f"mysqladmin: connect to server at '{host}' failed\nerror: 'Can't connect to "
                 f"MySQL server on '{host}:{port}' (111)'\nCheck that mysqld is running on "
                 f"{host} and that the port is {port}.\nYou can check this by doing 'telnet "
                 f"{host} {port}'\n")
        return 1
    io.print("mysqld is alive\n")
    return 0
