"""The image catalog's servers beyond the echo apps: redis, memcached, postgres, mysql, httpd,
python's http.server, more agnhost subcommands, pause, and unknown images.

Invariants:
- Each program listens in the pod's network namespace on the image's default port and speaks
  enough of its protocol for clients' connect/ping/get/set (RESP2 for redis, memcached's text
  protocol, PostgreSQL v3 startup + simple query, MySQL protocol 10 handshake + COM_PING/QUIT).
- Servers never die from one bad request; SIGTERM (``ctx.stopping``) closes the listeners and
  returns 0, as the real servers shut down on SIGTERM.
- Image start-up checks the real entrypoints make are kept (postgres without
  ``POSTGRES_PASSWORD`` and mysql without a root-password variable exit 1 with their message).
- An unknown image accepts TCP connections on its declared ports and answers nothing.
"""

from __future__ import annotations

import asyncio
import html
import posixpath
import re
import struct
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from knet.model.core import Protocol

if TYPE_CHECKING:
    from knet.runtime.apps import PodContext

REDIS_VERSION = "7.4.1"
POSTGRES_VERSION = "17.2"
MYSQL_VERSION = "8.4.3"
MEMCACHED_VERSION = "1.6.32"
HTTPD_VERSION = "2.4.62"


def _tag_version(image: str, default: str) -> str:
    last = image.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    m = re.match(r"(\d+(?:\.\d+){0,2})", tag)
    if not m:
        return default
    v = m.group(1)
    parts = v.split(".")
    return v if len(parts) == 3 else (v + default[len(v):] if default.startswith(v + ".") else v)


async def _serve_streams(ctx: PodContext, ports: list[int],
                         handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                           Awaitable[None]]) -> int:
    async def safe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, struct.error,
                IndexError, UnicodeDecodeError):
            pass
        finally:
            writer.close()

    servers = [await ctx.netns.start_server(safe, None, p) for p in dict.fromkeys(ports)]
    try:
        await ctx.stopping.wait()
        return 0
    finally:
        for s in servers:
            s.close()


# --- redis ----------------------------------------------------------------------------------

def _resp(v: Any) -> bytes:
    if v is None:
        return b"$-1\r\n"
    if isinstance(v, int) and not isinstance(v, bool):
        return b":%d\r\n" % v
    if isinstance(v, list):
        return b"*%d\r\n" % len(v) + b"".join(_resp(x) for x in v)
    if isinstance(v, _Simple):
        return b"+" + v.encode() + b"\r\n"
    if isinstance(v, _Err):
        return b"-" + v.encode() + b"\r\n"
    b = v if isinstance(v, bytes) else str(v).encode()
    return b"$%d\r\n%s\r\n" % (len(b), b)


class _Simple(str):
    pass


class _Err(str):
    pass


async def _read_command(reader: asyncio.StreamReader) -> list[bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    if line[:1] == b"*":
        n = int(line[1:].strip())
        out = []
        for _ in range(n):
            hdr = await reader.readline()
            if hdr[:1] != b"$":
                raise ValueError("Protocol error")
            size = int(hdr[1:].strip())
            data = await reader.readexactly(size + 2)
            out.append(data[:-2])
        return out
    return line.strip().split()  # inline command (redis-cli over telnet/nc)


async def redis_app(ctx: PodContext) -> int:
    """redis: RESP2 on 6379 (PING, ECHO, GET/SET/DEL/EXISTS/INCR/KEYS/EXPIRE/TTL, INFO…)."""
    store: dict[bytes, bytes] = {}
    expires: dict[bytes, float] = {}
    version = _tag_version(ctx.container.image, REDIS_VERSION)
    password = None
    args = [*ctx.container.command, *ctx.container.args]
    if "--requirepass" in args and args.index("--requirepass") + 1 < len(args):
        password = args[args.index("--requirepass") + 1]
    port = 6379
    if "--port" in args and args.index("--port") + 1 < len(args):
        port = int(args[args.index("--port") + 1])
    loop = asyncio.get_running_loop()
    started = loop.time()
    ctx.log(f"1:M * Redis version={version}, bits=64, commit=00000000, modified=0, pid=1, "
            f"just started")
    ctx.log(f"1:M * Running mode=standalone, port={port}.")
    ctx.log("1:M * Ready to accept connections tcp")

    def alive(k: bytes) -> bool:
        t = expires.get(k)
        if t is not None and loop.time() >= t:
            store.pop(k, None)
            expires.pop(k, None)
        return k in store

    def run(cmd: list[bytes], authed: list[bool]) -> Any:
        name = cmd[0].decode(errors="replace").upper()
        a = cmd[1:]
        if password is not None and not authed[0] and name not in ("AUTH", "HELLO", "QUIT"):
            return _Err("NOAUTH Authentication required.")
        if name == "PING":
            return _Simple("PONG") if not a else a[0]
        if name == "ECHO" and len(a) == 1:
            return a[0]
        if name == "AUTH":
            if password is None:
                return _Err("ERR AUTH <password> called without any password configured for the "
                            "default user. Are you sure your configuration is correct?")
            if a and a[-1].decode() == password:
                authed[0] = True
                return _Simple("OK")
            return _Err("WRONGPASS invalid username-password pair or user is disabled.")
        if name == "SET" and len(a) >= 2:
            store[a[0]] = a[1]
            expires.pop(a[0], None)
            opts = [x.upper() for x in a[2:]]
            if b"EX" in opts:
                expires[a[0]] = loop.time() + int(a[2 + opts.index(b"EX") + 1])
            return _Simple("OK")
        if name == "GET" and len(a) == 1:
            return store.get(a[0]) if alive(a[0]) else None
        if name == "DEL":
            n = 0
            for k in a:
                if alive(k):
                    del store[k]
                    n += 1
            return n
        if name == "EXISTS":
            return sum(1 for k in a if alive(k))
        if name in ("INCR", "DECR", "INCRBY", "DECRBY") and a:
            cur = store.get(a[0], b"0") if alive(a[0]) else b"0"
            try:
                v = int(cur)
            except ValueError:
                return _Err("ERR value is not an integer or out of range")
            step = int(a[1]) if len(a) > 1 else 1
            v = v + step if name.startswith("INCR") else v - step
            store[a[0]] = str(v).encode()
            return v
        if name == "KEYS" and a:
            pat = a[0].decode()
            import fnmatch

            return sorted(k for k in list(store) if alive(k) and fnmatch.fnmatchcase(k.decode(), pat))
        if name == "EXPIRE" and len(a) == 2:
            if not alive(a[0]):
                return 0
            expires[a[0]] = loop.time() + int(a[1])
            return 1
        if name == "TTL" and a:
            if not alive(a[0]):
                return -2
            t = expires.get(a[0])
            return -1 if t is None else int(t - loop.time() + 0.999)
        if name == "DBSIZE":
            return sum(1 for k in list(store) if alive(k))
        if name in ("FLUSHALL", "FLUSHDB"):
            store.clear()
            expires.clear()
            return _Simple("OK")
        if name == "SELECT":
            return _Simple("OK")
        if name == "INFO":
            up = int(loop.time() - started)
            keys = sum(1 for k in list(store) if alive(k))
            text = (f"# Server\r\nredis_version:{version}\r\nredis_mode:standalone\r\nos:Linux\r\n"
                    f"arch_bits:64\r\nprocess_id:1\r\ntcp_port:{port}\r\n"
                    f"uptime_in_seconds:{up}\r\n\r\n# Clients\r\nconnected_clients:1\r\n\r\n"
                    f"# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n# Keyspace\r\n"
                    + (f"db0:keys={keys},expires={len(expires)},avg_ttl=0\r\n" if keys else ""))
            return text.encode()
        if name == "CONFIG" and a and a[0].upper() == b"GET":
            return [a[1], b""] if len(a) > 1 else []
        if name == "COMMAND":
            return []
        if name == "CLIENT":
            return _Simple("OK")
        if name == "HELLO":
            return [b"server", b"redis", b"version", version.encode(), b"proto", 2]
        return _Err(f"ERR unknown command '{cmd[0].decode(errors='replace')}', with args "
                    f"beginning with: " + " ".join(f"'{x.decode(errors='replace')}'" for x in a[:5]))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        authed = [password is None]
        while True:
            try:
                cmd = await _read_command(reader)
            except ValueError:
                writer.write(_resp(_Err("ERR Protocol error: invalid multibulk length")))
                return
            if cmd is None:
                return
            if not cmd:
                continue
            if cmd[0].upper() == b"QUIT":
                writer.write(_resp(_Simple("OK")))
                return
            writer.write(_resp(run(cmd, authed)))
            await writer.drain()

    return await _serve_streams(ctx, [port], handle)


# --- memcached --------------------------------------------------------------------------------

async def memcached_app(ctx: PodContext) -> int:
    """memcached: the text protocol on 11211 (set/add/get/gets/delete/incr/version/stats)."""
    store: dict[str, tuple[int, bytes]] = {}
    version = _tag_version(ctx.container.image, MEMCACHED_VERSION)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            parts = line.decode(errors="replace").split()
            if not parts:
                writer.write(b"ERROR\r\n")
                continue
            cmd = parts[0].lower()
            if cmd in ("set", "add", "replace") and len(parts) >= 5:
                data = (await reader.readexactly(int(parts[4]) + 2))[:-2]
                key = parts[1]
                if (cmd == "add" and key in store) or (cmd == "replace" and key not in store):
                    writer.write(b"NOT_STORED\r\n")
                else:
                    store[key] = (int(parts[2]), data)
                    if "noreply" not in parts:
                        writer.write(b"STORED\r\n")
            elif cmd in ("get", "gets"):
                for k in parts[1:]:
                    if k in store:
                        flags, data = store[k]
                        writer.write(f"VALUE {k} {flags} {len(data)}\r\n".encode() + data + b"\r\n")
                writer.write(b"END\r\n")
            elif cmd == "delete" and len(parts) >= 2:
                writer.write(b"DELETED\r\n" if store.pop(parts[1], None) else b"NOT_FOUND\r\n")
            elif cmd in ("incr", "decr") and len(parts) >= 3:
                if parts[1] not in store:
                    writer.write(b"NOT_FOUND\r\n")
                else:
                    flags, data = store[parts[1]]
                    v = max(0, int(data) + (int(parts[2]) if cmd == "incr" else -int(parts[2])))
                    store[parts[1]] = (flags, str(v).encode())
                    writer.write(f"{v}\r\n".encode())
            elif cmd == "version":
                writer.write(f"VERSION {version}\r\n".encode())
            elif cmd == "stats":
                writer.write(f"STAT pid 1\r\nSTAT version {version}\r\nSTAT curr_items "
                             f"{len(store)}\r\nEND\r\n".encode())
            elif cmd == "flush_all":
                store.clear()
                writer.write(b"OK\r\n")
            elif cmd == "quit":
                return
            else:
                writer.write(b"ERROR\r\n")
            await writer.drain()

    return await _serve_streams(ctx, [11211], handle)


# --- postgres -------------------------------------------------------------------------------

def _pg(tag: bytes, body: bytes) -> bytes:
    return tag + struct.pack("!I", len(body) + 4) + body


async def postgres_app(ctx: PodContext) -> int:
    """postgres: protocol 3.0 on 5432: SSLRequest → 'N', startup → AuthenticationOk (trust from
    the pod network as the image's pg_hba allows with a password set), simple queries answer
    ``SELECT 1``-style constants and ``SELECT version()``."""
    env = ctx.env
    if not env.get("POSTGRES_PASSWORD") and env.get("POSTGRES_HOST_AUTH_METHOD") != "trust":
        for line in ("Error: Database is uninitialized and superuser password is not specified.",
                     "       You must specify POSTGRES_PASSWORD to a non-empty value for the",
                     "       superuser. For example, \"-e POSTGRES_PASSWORD=password\" on \"docker run\"."):
            ctx.log(line)
        return 1
    version = _tag_version(ctx.container.image, POSTGRES_VERSION)
    user_default = env.get("POSTGRES_USER", "postgres")
    db_default = env.get("POSTGRES_DB", user_default)
    ctx.log("LOG:  database system is ready to accept connections")

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            (n,) = struct.unpack("!I", await reader.readexactly(4))
            body = await reader.readexactly(n - 4)
            (code,) = struct.unpack("!I", body[:4])
            if code == 80877103 or code == 80877104:  # SSLRequest, GSSENCRequest
                writer.write(b"N")
                continue
            if code == 80877102:  # CancelRequest
                return
            params = body[4:].split(b"\x00")
            kv = dict(zip(params[::2], params[1::2]))
            user = kv.get(b"user", user_default.encode()).decode()
            db = kv.get(b"database", user.encode()).decode()
            if db not in (db_default, "postgres", "template1") and db != user:
                writer.write(_pg(b"E", b"SFATAL\x00VFATAL\x00C3D000\x00M" +
                                 f'database "{db}" does not exist'.encode() + b"\x00\x00"))
                return
            break
        out = _pg(b"R", struct.pack("!I", 0))
        for k, v in (("server_version", version), ("server_encoding", "UTF8"),
                     ("client_encoding", "UTF8"), ("DateStyle", "ISO, MDY"),
                     ("TimeZone", "Etc/UTC"), ("integer_datetimes", "on"),
                     ("standard_conforming_strings", "on"), ("application_name", "")):
            out += _pg(b"S", k.encode() + b"\x00" + v.encode() + b"\x00")
        out += _pg(b"K", struct.pack("!II", 1, 12345678))
        out += _pg(b"Z", b"I")
        writer.write(out)
        while True:
            tag = await reader.readexactly(1)
            (n,) = struct.unpack("!I", await reader.readexactly(4))
            body = await reader.readexactly(n - 4)
            if tag == b"X":
                return
            if tag != b"Q":
                writer.write(_pg(b"E", b"SERROR\x00C0A000\x00Munsupported message\x00\x00") +
                             _pg(b"Z", b"I"))
                continue
            q = body.rstrip(b"\x00").decode(errors="replace").strip().rstrip(";").strip()
            writer.write(_pg_query(q, version, db, user) + _pg(b"Z", b"I"))
            await writer.drain()

    return await _serve_streams(ctx, [5432], handle)


def _pg_query(q: str, version: str, db: str, user: str) -> bytes:
    if not q:
        return _pg(b"I", b"")
    low = q.lower()
    m = re.fullmatch(r"select\s+(.+?)(?:\s+as\s+(\w+))?", low)
    if m:
        expr = q[len("select"):].strip()
        col = m.group(2) or "?column?"
        if m.group(1).startswith("version()"):
            val, col = (f"PostgreSQL {version} on x86_64-pc-linux-gnu, compiled by gcc, 64-bit",
                        m.group(2) or "version")
        elif m.group(1).startswith("current_database()"):
            val, col = db, m.group(2) or "current_database"
        elif m.group(1).startswith("current_user"):
            val, col = user, m.group(2) or "current_user"
        else:
            val = expr.split()[0].strip("'")
        rd = struct.pack("!H", 1) + col.encode() + b"\x00" + struct.pack("!IHIhih", 0, 0, 25, -1, -1, 0)
        dr = struct.pack("!HI", 1, len(val.encode())) + val.encode()
        return _pg(b"T", rd) + _pg(b"D", dr) + _pg(b"C", b"SELECT 1\x00")
    word = low.split()[0].upper()
    if word in ("BEGIN", "COMMIT", "ROLLBACK", "SET", "CREATE", "DROP"):
        tag = {"CREATE": "CREATE TABLE", "DROP": "DROP TABLE"}.get(word, word)
        return _pg(b"C", tag.encode() + b"\x00")
    return _pg(b"E", b"SERROR\x00VERROR\x00C0A000\x00M" +
               b"knet's postgres answers only constant SELECTs\x00\x00")


# --- mysql ----------------------------------------------------------------------------------

def _my(seq: int, body: bytes) -> bytes:
    return struct.pack("<I", len(body))[:3] + bytes([seq & 0xFF]) + body


def _my_ok(seq: int) -> bytes:
    return _my(seq, b"\x00\x00\x00\x02\x00\x00\x00")


async def mysql_app(ctx: PodContext) -> int:
    """mysql/mariadb: protocol 10 greeting on 3306; any handshake response → OK; COM_PING → OK;
    COM_QUERY ``SELECT 1``-style → a one-row text result set; COM_QUIT closes."""
    env = ctx.env
    maria = "mariadb" in ctx.container.image
    pre = "MARIADB" if maria else "MYSQL"
    if not any(env.get(f"{p}_{k}") for p in (pre, "MYSQL")
               for k in ("ROOT_PASSWORD", "ALLOW_EMPTY_PASSWORD", "RANDOM_ROOT_PASSWORD",
                         "ALLOW_EMPTY_ROOT_PASSWORD", "ROOT_PASSWORD_HASH")):
        ctx.log("[ERROR] [Entrypoint]: Database is uninitialized and password option is not "
                "specified")
        ctx.log(f"    You need to specify one of the following as an environment variable:\n"
                f"    - {pre}_ROOT_PASSWORD\n    - {pre}_ALLOW_EMPTY_PASSWORD\n"
                f"    - {pre}_RANDOM_ROOT_PASSWORD")
        return 1
    version = _tag_version(ctx.container.image, "11.6.2" if maria else MYSQL_VERSION)
    if maria:
        version = f"{version}-MariaDB-ubu2404"
    ctx.log(f"[Server] /usr/sbin/mysqld: ready for connections. Version: '{version}'  "
            f"socket: '/var/run/mysqld/mysqld.sock'  port: 3306  MySQL Community Server - GPL.")
    conn_ids = iter(range(8, 1 << 30))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        caps = 0xF7FF | (0x81BF << 16)  # CLIENT_PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH…
        salt = b"knetsalt0123456789ab"
        greet = (b"\x0a" + version.encode() + b"\x00" + struct.pack("<I", next(conn_ids)) +
                 salt[:8] + b"\x00" + struct.pack("<H", caps & 0xFFFF) + b"\xff" +
                 struct.pack("<H", 2) + struct.pack("<H", caps >> 16) + bytes([21]) + b"\x00" * 10 +
                 salt[8:] + b"\x00" + b"mysql_native_password\x00")
        writer.write(_my(0, greet))
        hdr = await reader.readexactly(4)
        n = int.from_bytes(hdr[:3], "little")
        await reader.readexactly(n)
        writer.write(_my(hdr[3] + 1, b"\x00\x00\x00\x02\x00\x00\x00"))
        while True:
            hdr = await reader.readexactly(4)
            n = int.from_bytes(hdr[:3], "little")
            body = await reader.readexactly(n)
            cmd = body[:1]
            if cmd == b"\x01":  # COM_QUIT
                return
            if cmd in (b"\x0e", b"\x02"):  # COM_PING, COM_INIT_DB
                writer.write(_my_ok(1))
            elif cmd == b"\x03":
                writer.write(_mysql_query(body[1:].decode(errors="replace"), version))
            else:
                writer.write(_my(1, b"\xff" + struct.pack("<H", 1047) + b"#08S01Unknown command"))
            await writer.drain()

    return await _serve_streams(ctx, [3306], handle)


def _lenenc(b: bytes) -> bytes:
    return bytes([len(b)]) + b


def _mysql_query(q: str, version: str) -> bytes:
    m = re.fullmatch(r"\s*select\s+(.+?)\s*;?\s*", q, re.I)
    if not m:
        return _my_ok(1)
    expr = m.group(1)
    val = version if expr.lower().startswith(("version()", "@@version")) else expr.strip("'\"")
    col = (b"\x03def" + b"\x00" * 3 + _lenenc(expr.encode()) + _lenenc(expr.encode()) +
           b"\x0c" + struct.pack("<HIBHB", 33, 255, 0xFD, 0, 0) + b"\x00\x00")
    eof = b"\xfe\x00\x00\x02\x00"
    return (_my(1, b"\x01") + _my(2, col) + _my(3, eof) + _my(4, _lenenc(val.encode())) +
            _my(5, eof))


# --- httpd, python http.server --------------------------------------------------------------

HTTPD_INDEX = "<html><body><h1>It works!</h1></body></html>\n"


def static_files_app(ctx: PodContext, root: str, server: str, index: tuple[str, ...],
                     listing: bool = False) -> web.Application:
    """Serve files from the container's filesystem under ``root`` (what nginx/httpd/python
    serve from their document roots, volumes mounted there included)."""
    fs = ctx.fs

    async def handle(request: web.Request) -> web.StreamResponse:
        hdrs = {"Server": server}
        if request.method not in ("GET", "HEAD"):
            return web.Response(status=405, text="405 Not Allowed\n", headers=hdrs)
        path = posixpath.normpath(posixpath.join(root, request.path.lstrip("/")))
        if not (path == root or path.startswith(root.rstrip("/") + "/")):
            return web.Response(status=404, text="404 Not Found\n", headers=hdrs)
        if fs.isdir(path):
            if not request.path.endswith("/"):
                return web.Response(status=301, headers={**hdrs, "Location": request.path + "/"})
            for name in index:
                data = fs.read(posixpath.join(path, name))
                if data is not None:
                    return web.Response(body=data, content_type=_ctype(name), headers=hdrs)
            if listing:
                names = fs.listdir(path)
                items = "".join(f'<li><a href="{html.escape(n)}{"/" if fs.isdir(posixpath.join(path, n)) else ""}">'
                                f'{html.escape(n)}{"/" if fs.isdir(posixpath.join(path, n)) else ""}</a></li>\n'
                                for n in names)
                body = (f'<!DOCTYPE HTML>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                        f"<title>Directory listing for {request.path}</title>\n</head>\n<body>\n"
                        f"<h1>Directory listing for {request.path}</h1>\n<hr>\n<ul>\n{items}"
                        f"</ul>\n<hr>\n</body>\n</html>\n")
                return web.Response(text=body, content_type="text/html", headers=hdrs)
            return web.Response(status=403, text="403 Forbidden\n", headers=hdrs)
        data = fs.read(path)
        if data is None:
            return web.Response(status=404, text="404 Not Found\n", headers=hdrs)
        return web.Response(body=data, content_type=_ctype(path), headers=hdrs)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    return app


def _ctype(name: str) -> str:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return {"html": "text/html", "htm": "text/html", "css": "text/css", "js": "application/javascript",
            "json": "application/json", "txt": "text/plain", "png": "image/png",
            "svg": "image/svg+xml"}.get(ext, "application/octet-stream")


async def httpd_app(ctx: PodContext) -> int:
    """httpd: files from /usr/local/apache2/htdocs on 80 ("It works!" by default)."""
    from knet.runtime.apps import serve_until_stopped

    root = "/usr/local/apache2/htdocs"
    if not ctx.fs.exists(root + "/index.html"):
        ctx.fs.write(root + "/index.html", HTTPD_INDEX)
    version = _tag_version(ctx.container.image, HTTPD_VERSION)
    app = static_files_app(ctx, root, f"Apache/{version} (Unix)", ("index.html",))
    return await serve_until_stopped(ctx, app, [80])


def python_server(argv: list[str]) -> tuple[int, str] | None:
    """``python -m http.server [--directory D] [-b ADDR] [PORT]`` or a ``python -c`` one-liner
    that starts http.server/socketserver on a literal port → (port, directory)."""
    args = [a for a in argv[1:]]
    if "-m" in args and args.index("-m") + 1 < len(args) and args[args.index("-m") + 1] == "http.server":
        rest = args[args.index("-m") + 2:]
        port, directory = 8000, "/"
        i = 0
        while i < len(rest):
            a = rest[i]
            if a in ("--directory", "-d") and i + 1 < len(rest):
                directory = rest[i + 1]
                i += 2
                continue
            if a in ("--bind", "-b") and i + 1 < len(rest):
                i += 2
                continue
            if a.isdigit():
                port = int(a)
            i += 1
        return port, directory
    if "-c" in args and args.index("-c") + 1 < len(args):
        code = args[args.index("-c") + 1]
        if "http.server" in code or "socketserver" in code or "HTTPServer" in code:
            m = re.search(r"\(\s*\(\s*['\"][^'\"]*['\"]\s*,\s*(\d+)\s*\)", code) or \
                re.search(r"PORT\s*=\s*(\d+)", code)
            return (int(m.group(1)) if m else 8000), "/"
    return None


async def python_app(ctx: PodContext) -> int:
    from knet.runtime.apps import serve_until_stopped

    argv = [*ctx.container.command, *ctx.container.args]
    found = python_server(argv)
    if found is None:
        ctx.log("knet: this python program cannot run in knet (only `python -m http.server` and "
                "http.server one-liners do); attach an app with knet.run(apps=...) or the "
                "knet.dev/app annotation")
        await ctx.stopping.wait()
        return 0
    port, directory = found
    root = directory if directory.startswith("/") else posixpath.join("/", directory)
    app = static_files_app(ctx, root, "SimpleHTTP/0.6 Python/3.13.1", ("index.html", "index.htm"),
                           listing=True)
    return await serve_until_stopped(ctx, app, [port])


# --- agnhost extras -------------------------------------------------------------------------

async def agnhost_porter(ctx: PodContext) -> int:
    """agnhost porter: for each ``SERVE_PORT_<n>=<text>`` env var, answer <text> on port n
    (``SERVE_TLS_PORT_`` likewise; knet serves those without TLS)."""
    from knet.runtime.apps import serve_until_stopped

    apps = []
    for k, v in ctx.env.items():
        m = re.fullmatch(r"SERVE_(?:TLS_)?PORT_(\d+)", k)
        if not m:
            continue

        async def answer(request: web.Request, text: str = v) -> web.Response:
            return web.Response(text=text)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        apps.append((int(m.group(1)), app))
    if not apps:
        await ctx.stopping.wait()
        return 0
    first_port, first = apps[0]
    runners = []
    try:
        from knet.fabric.aio import KnetSite

        for port, app in apps[1:]:
            r = web.AppRunner(app, handle_signals=False, access_log=None)
            await r.setup()
            await KnetSite(r, ctx.netns, None, port).start()
            runners.append(r)
        return await serve_until_stopped(ctx, first, [first_port])
    finally:
        for r in runners:
            await r.cleanup()


async def agnhost_liveness(ctx: PodContext) -> int:
    """agnhost liveness: /healthz on 8080 answers 200 for 10 s after start, then 500."""
    from knet.runtime.apps import serve_until_stopped

    loop = asyncio.get_running_loop()
    started = loop.time()

    async def healthz(request: web.Request) -> web.Response:
        dur = loop.time() - started
        if dur > 10:
            return web.Response(status=500, text=f"error: {dur:.6f}")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    return await serve_until_stopped(ctx, app, [8080])


async def agnhost_test_webserver(ctx: PodContext) -> int:
    """agnhost test-webserver: "hello" on / (port 80, ``--port``)."""
    from knet.runtime.apps import _flags, serve_until_stopped

    flags = _flags([*ctx.container.command, *ctx.container.args])
    port = int(flags.get("port", "80"))

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    return await serve_until_stopped(ctx, app, [port])


async def agnhost_connect(ctx: PodContext) -> int:
    """agnhost connect HOST:PORT [--timeout 5s] [--protocol tcp]: exit 0 when it connects."""
    from knet.runtime.apps import _flags

    argv = [a for a in [*ctx.container.command, *ctx.container.args] if not a.endswith("agnhost")]
    pos = [a for a in argv if not a.startswith("-") and a != "connect"]
    flags = _flags([a for a in argv if a != "connect"])
    if not pos:
        ctx.log("usage: connect <host:port>")
        return 1
    host, _, port = pos[0].rpartition(":")
    timeout = float(flags.get("timeout", "5s").rstrip("s") or 5)
    try:
        _, w = await asyncio.wait_for(ctx.open_connection(host, int(port)), timeout)
        w.close()
        return 0
    except (TimeoutError, OSError, ConnectionError) as e:
        ctx.log("TIMEOUT" if isinstance(e, asyncio.TimeoutError) else "REFUSED")
        return 1


async def agnhost_dns_server(ctx: PodContext) -> int:
    """agnhost dns-server: answers A queries for any name with 1.1.1.1 on 53/UDP+TCP? No: the
    upstream server answers ``dns.test`` style queries for the DNS e2e tests; knet answers every
    A query with the pod's own IP."""
    from dnslib import QTYPE, RR, A, DNSRecord

    from knet.runtime.apps import _UDPEcho, serve_until_stopped

    def answer(data: bytes, addr: Any) -> bytes:
        q = DNSRecord.parse(data)
        r = q.reply()
        if q.q.qtype == QTYPE.A and ctx.pod_ip and ":" not in ctx.pod_ip:
            r.add_answer(RR(q.q.qname, QTYPE.A, rdata=A(ctx.pod_ip), ttl=30))
        return r.pack()

    return await serve_until_stopped(ctx, web.Application(), [],
                                     {53: lambda: _UDPEcho(answer)})


AGNHOST_EXTRA: dict[str, Callable[[PodContext], Awaitable[int]]] = {
    "porter": agnhost_porter, "liveness": agnhost_liveness,
    "test-webserver": agnhost_test_webserver, "connect": agnhost_connect,
    "dns-server": agnhost_dns_server,
}


# --- unknown images -------------------------------------------------------------------------

async def tcp_accept_app(ctx: PodContext) -> int:
    """An image knet does not know: accept TCP on the declared ports, answer nothing."""
    ports = [p.container_port for p in ctx.container.ports if p.protocol == Protocol.TCP]

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass

    if not ports:
        await ctx.stopping.wait()
        return 0
    return await _serve_streams(ctx, ports, hold)


UNKNOWN_HINT = ("attach an app with knet.run(..., apps={'NS/NAME': factory}) or the pod "
                "annotation knet.dev/app: 'module:factory' (docs/apps.md)")


__all__ = ["redis_app", "memcached_app", "postgres_app", "mysql_app", "httpd_app", "python_app",
           "tcp_accept_app", "AGNHOST_EXTRA", "static_files_app", "UNKNOWN_HINT", "python_server"]
