"""busybox's file and text applets over the container's virtual filesystem.

Invariants: output and error texts are busybox 1.36's (``cat: can't open 'x': No such file or
directory``, ``ls -l`` columns); time comes from the shell's clock (the emulation's virtual
time, as seconds since the Unix epoch); nothing reads the real machine.
"""

from __future__ import annotations

import asyncio
import base64
import posixpath
import re
import time
from typing import TYPE_CHECKING

from knet.runtime.shell import IO, applet
from knet.runtime.vfs import Dir, File, FSError

if TYPE_CHECKING:
    from knet.runtime.shell import Shell


def _opts(argv: list[str], with_value: str = "") -> tuple[set[str], dict[str, str], list[str]]:
    """Short-option parsing as getopt does: ``-abc``, ``-n 5``/``-n5``, ``--`` ends options."""
    flags: set[str] = set()
    values: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            rest += argv[i + 1:]
            break
        if a.startswith("-") and len(a) > 1 and not a[1:].lstrip("-").isdigit() or \
                (a.startswith("-") and len(a) > 1 and with_value and a[1] in with_value):
            if a.startswith("--"):
                k, eq, v = a[2:].partition("=")
                if eq:
                    values[k] = v
                else:
                    flags.add(k)
                i += 1
                continue
            j = 1
            while j < len(a):
                ch = a[j]
                if ch in with_value:
                    v = a[j + 1:] if j + 1 < len(a) else (argv[i + 1] if i + 1 < len(argv) else "")
                    if j + 1 >= len(a):
                        i += 1
                    values[ch] = v
                    break
                flags.add(ch)
                j += 1
        else:
            rest.append(a)
        i += 1
    return flags, values, rest


def _read(sh: Shell, io: IO, name: str, prog: str) -> str | None:
    if name == "-":
        data, io.stdin = io.stdin, ""
        return data
    path = sh.path(name)
    node = sh.fs.node(path)
    if isinstance(node, Dir):
        io.error(f"{prog}: read error: Is a directory\n")
        return None
    if not isinstance(node, File):
        io.error(f"{prog}: can't open '{name}': No such file or directory\n")
        return None
    return node.data.decode(errors="replace")


def _inputs(sh: Shell, io: IO, files: list[str], prog: str) -> tuple[list[tuple[str, str]], int]:
    if not files:
        return [("-", io.stdin)], 0
    out, code = [], 0
    for f in files:
        t = _read(sh, io, f, prog)
        if t is None:
            code = 1
        else:
            out.append((f, t))
    return out, code


@applet("echo")
async def echo(sh: Shell, argv: list[str], io: IO) -> int:
    args = argv[1:]
    nl, esc = True, False
    while args and re.fullmatch(r"-[neE]+", args[0]):
        nl = nl and "n" not in args[0]
        esc = ("e" in args[0]) or (esc and "E" not in args[0])
        args = args[1:]
    text = " ".join(args)
    if esc:
        text, stop = _escapes(text)
        if stop:
            nl = False
    io.print(text + ("\n" if nl else ""))
    return 0


def _escapes(text: str) -> tuple[str, bool]:
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            n = text[i + 1]
            if n == "c":
                return "".join(out), True
            m = {"n": "\n", "t": "\t", "\\": "\\", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b",
                 "f": "\f", "v": "\v"}.get(n)
            if m is not None:
                out.append(m)
                i += 2
                continue
            if n == "0" or n.isdigit():
                mm = re.match(r"0?([0-7]{1,3})", text[i + 1:])
                if mm:
                    out.append(chr(int(mm.group(1), 8)))
                    i += 1 + len(mm.group(0))
                    continue
        out.append(c)
        i += 1
    return "".join(out), False


@applet("printf")
async def printf(sh: Shell, argv: list[str], io: IO) -> int:
    if len(argv) < 2:
        io.error("printf: usage: printf FORMAT [ARGUMENT...]\n")
        return 1
    fmt, args = argv[1], argv[2:]
    spec = re.compile(r"%([-+ #0]*)(\d+|\*)?(?:\.(\d+))?([diouxXfeEgGcsb%])")
    out: list[str] = []
    code = 0
    while True:
        used = 0

        def sub(m: re.Match[str], args: list[str] = args) -> str:
            nonlocal used, code
            flags, width, prec, conv = m.groups()
            if conv == "%":
                return "%"
            arg = args[used] if used < len(args) else ""
            used += 1
            if conv in "diouxX":
                try:
                    v = int(arg, 0) if arg else 0
                except ValueError:
                    io.error(f"printf: invalid number '{arg}'\n")
                    code = 1
                    v = 0
                pyconv = "d" if conv in "iu" else conv
                return ("%" + flags + (width or "") + pyconv) % v
            if conv in "feEgG":
                try:
                    fv = float(arg) if arg else 0.0
                except ValueError:
                    fv = 0.0
                return ("%" + flags + (width or "") + ("." + prec if prec else "") + conv) % fv
            if conv == "c":
                return arg[:1]
            if conv == "b":
                return _escapes(arg)[0]
            s = arg if prec is None else arg[: int(prec)]
            return ("%" + flags + (width or "") + "s") % s

        text = _escapes(spec.sub(sub, fmt.replace("%%", "\x00")).replace("\x00", "%"))[0] \
            if "%" in fmt else _escapes(fmt)[0]
        out.append(text)
        if used == 0 or used >= len(args):
            break
        args = args[used:]
    io.print("".join(out))
    return code


@applet("cat")
async def cat(sh: Shell, argv: list[str], io: IO) -> int:
    flags, _, files = _opts(argv[1:])
    inputs, code = _inputs(sh, io, files, "cat")
    text = "".join(t for _, t in inputs)
    if "n" in flags:
        text = "".join(f"{i + 1:6d}\t{line}\n" for i, line in enumerate(text.splitlines()))
    io.print(text)
    return code


def _mode_str(node: File | Dir) -> str:
    kind = "d" if isinstance(node, Dir) else ("l" if isinstance(node, File) and node.link else "-")
    m = node.mode
    bits = "".join(c if m & (1 << (8 - i)) else "-" for i, c in enumerate("rwxrwxrwx"))
    if m & 0o1000:
        bits = bits[:8] + ("t" if m & 1 else "T")
    return kind + bits


def _ls_time(sh: Shell, t: float) -> str:
    return time.strftime("%b %e %H:%M", time.gmtime(t or sh.clock()))


@applet("ls")
async def ls(sh: Shell, argv: list[str], io: IO) -> int:
    flags, _, paths = _opts(argv[1:])
    long_ = "l" in flags
    all_ = "a" in flags or "A" in flags
    one = "1" in flags or long_ or True
    code = 0
    paths = paths or ["."]
    files = [p for p in paths if sh.fs.exists(sh.path(p)) and not sh.fs.isdir(sh.path(p))]
    dirs = [p for p in paths if sh.fs.isdir(sh.path(p))]
    for p in paths:
        if not sh.fs.exists(sh.path(p)) and sh.fs.node(sh.path(p), follow=False) is None:
            io.error(f"ls: {p}: No such file or directory\n")
            code = 1

    def entry(name: str, path: str) -> str:
        node = sh.fs.node(path, follow=False)
        if not long_ or node is None:
            return name
        size = len(node.data) if isinstance(node, File) else 4096
        links = 2 if isinstance(node, Dir) else 1
        tail = f" -> {node.link}" if isinstance(node, File) and node.link else ""
        return f"{_mode_str(node)} {links:4d} root     root     {size:9d} " \
               f"{_ls_time(sh, node.mtime)} {name}{tail}"

    for f in files:
        io.print(entry(f, sh.path(f)) + "\n")
    for k, d in enumerate(dirs):
        if len(dirs) + len(files) > 1:
            io.print(("\n" if k or files else "") + f"{d}:\n")
        names = sh.fs.listdir(sh.path(d))
        if "a" in flags:
            names = [".", "..", *names]
        elif not all_:
            names = [n for n in names if not n.startswith(".")]
        if long_:
            io.print(f"total {len(names) * 4}\n")
        if one:
            for n in names:
                io.print(entry(n, posixpath.join(sh.path(d), n)) + "\n")
    return code


@applet("mkdir")
async def mkdir(sh: Shell, argv: list[str], io: IO) -> int:
    flags, _, paths = _opts(argv[1:], "m")
    code = 0
    for p in paths:
        try:
            sh.fs.mkdir(sh.path(p), parents="p" in flags)
        except FSError as e:
            io.error(f"mkdir: can't create directory '{p}': {e.strerror}\n")
            code = 1
    return code


@applet("touch")
async def touch(sh: Shell, argv: list[str], io: IO) -> int:
    _, _, paths = _opts(argv[1:])
    code = 0
    for p in paths:
        path = sh.path(p)
        node = sh.fs.node(path)
        if node is not None:
            node.mtime = sh.clock()
            continue
        try:
            sh.fs.write(path, b"", parents=False)
            n = sh.fs.node(path)
            if n is not None:
                n.mtime = sh.clock()
        except FSError as e:
            io.error(f"touch: {p}: {e.strerror}\n")
            code = 1
    return code


@applet("rm")
async def rm(sh: Shell, argv: list[str], io: IO) -> int:
    flags, _, paths = _opts(argv[1:])
    rec = bool(flags & {"r", "R"})
    code = 0
    for p in paths:
        try:
            sh.fs.unlink(sh.path(p), recursive=rec)
        except FSError as e:
            if "f" in flags and e.errno == 2:
                continue
            what = "is a directory" if e.errno == 21 else e.strerror
            io.error(f"rm: can't remove '{p}': {what}\n" if e.errno != 21 else f"rm: '{p}' {what}\n")
            code = 1
    return code


@applet("rmdir")
async def rmdir(sh: Shell, argv: list[str], io: IO) -> int:
    code = 0
    for p in argv[1:]:
        try:
            sh.fs.unlink(sh.path(p), dirs=True)
        except FSError as e:
            io.error(f"rmdir: '{p}': {e.strerror}\n")
            code = 1
    return code


def _copy(node: File | Dir) -> File | Dir:
    if isinstance(node, File):
        return File(node.data, node.mode, node.mtime, node.link)
    return Dir({k: _copy(v) for k, v in node.entries.items()}, node.mode, node.mtime)


@applet("cp", "mv")
async def cp(sh: Shell, argv: list[str], io: IO) -> int:
    prog = argv[0].rsplit("/", 1)[-1]
    flags, _, paths = _opts(argv[1:])
    if len(paths) < 2:
        io.error(f"{prog}: missing destination file operand\n" if paths else
                 f"{prog}: missing file operand\n")
        return 1
    *srcs, dst = paths
    code = 0
    for s in srcs:
        node = sh.fs.node(sh.path(s))
        if node is None:
            io.error(f"{prog}: can't stat '{s}': No such file or directory\n")
            code = 1
            continue
        if isinstance(node, Dir) and prog == "cp" and not (flags & {"r", "R", "a"}):
            io.error(f"cp: omitting directory '{s}'\n")
            code = 1
            continue
        target = sh.path(dst)
        if sh.fs.isdir(target):
            target = posixpath.join(target, posixpath.basename(sh.path(s)))
        try:
            if isinstance(node, File):
                sh.fs.write(target, node.data, parents=False, mode=node.mode)
            else:
                sh.fs.link(target, _copy(node))
            if prog == "mv":
                sh.fs.unlink(sh.path(s), recursive=True)
        except FSError as e:
            io.error(f"{prog}: can't create '{dst}': {e.strerror}\n")
            code = 1
    return code


@applet("ln")
async def ln(sh: Shell, argv: list[str], io: IO) -> int:
    flags, _, paths = _opts(argv[1:])
    if len(paths) != 2:
        return 1
    src, dst = paths
    try:
        if "s" in flags:
            sh.fs.link(sh.path(dst), File(link=src, mode=0o777))
        else:
            n = sh.fs.node(sh.path(src))
            if n is None:
                io.error(f"ln: {src}: No such file or directory\n")
                return 1
            sh.fs.link(sh.path(dst), n)
    except FSError as e:
        io.error(f"ln: {dst}: {e.strerror}\n")
        return 1
    return 0


@applet("chmod", "chown", "sync")
async def chmod(sh: Shell, argv: list[str], io: IO) -> int:
    if argv[0] == "chmod" and len(argv) >= 3 and re.fullmatch(r"[0-7]{3,4}", argv[1]):
        for p in argv[2:]:
            n = sh.fs.node(sh.path(p))
            if n is None:
                io.error(f"chmod: {p}: No such file or directory\n")
                return 1
            n.mode = int(argv[1], 8)
    return 0


@applet("test", "[", "[[")
async def test(sh: Shell, argv: list[str], io: IO) -> int:
    args = argv[1:]
    if argv[0] in ("[", "[["):
        close = "]" if argv[0] == "[" else "]]"
        if not args or args[-1] != close:
            io.error(f"{argv[0]}: missing {close}\n")
            return 2
        args = args[:-1]
    try:
        return 0 if _test_expr(sh, args) else 1
    except ValueError as e:
        io.error(f"sh: {e}\n")
        return 2


def _test_expr(sh: Shell, a: list[str]) -> bool:
    # POSIX test by argument count, then -a/-o (busybox accepts both)
    if "-o" in a[1:-1]:
        i = a.index("-o", 1)
        return _test_expr(sh, a[:i]) or _test_expr(sh, a[i + 1:])
    if "-a" in a[1:-1]:
        i = a.index("-a", 1)
        return _test_expr(sh, a[:i]) and _test_expr(sh, a[i + 1:])
    n = len(a)
    if n == 0:
        return False
    if a[0] == "!" and n > 1:
        return not _test_expr(sh, a[1:])
    if n >= 3 and a[0] == "(" and a[-1] == ")":
        return _test_expr(sh, a[1:-1])
    if n == 1:
        return a[0] != ""
    if n == 2:
        op, x = a
        fs = sh.fs
        p = sh.path(x) if x else ""
        node = fs.node(p) if x else None
        checks = {
            "-n": lambda: x != "", "-z": lambda: x == "",
            "-e": lambda: node is not None, "-f": lambda: isinstance(node, File),
            "-d": lambda: isinstance(node, Dir),
            "-s": lambda: isinstance(node, File) and bool(node.data) or isinstance(node, Dir),
            "-r": lambda: node is not None, "-w": lambda: node is not None,
            "-x": lambda: node is not None and bool(node.mode & 0o111),
            "-L": lambda: isinstance(fs.node(p, follow=False), File) and
            fs.node(p, follow=False).link is not None,  # type: ignore[union-attr]
            "-h": lambda: isinstance(fs.node(p, follow=False), File) and
            fs.node(p, follow=False).link is not None,  # type: ignore[union-attr]
            "-t": lambda: False, "-p": lambda: False, "-S": lambda: False, "-b": lambda: False,
            "-c": lambda: p in ("/dev/null", "/dev/zero", "/dev/tty"),
        }
        if op in checks:
            return bool(checks[op]())
        raise ValueError(f"{op}: unknown operand")
    if n == 3:
        x, op, y = a
        if op in ("=", "=="):
            return x == y
        if op == "!=":
            return x != y
        if op in ("<", ">"):
            return x < y if op == "<" else x > y
        if op in ("-eq", "-ne", "-lt", "-le", "-gt", "-ge"):
            try:
                i, j = int(x), int(y)
            except ValueError:
                bad = x if not x.lstrip("-").isdigit() else y
                raise ValueError(f"{bad}: bad number") from None
            return {"-eq": i == j, "-ne": i != j, "-lt": i < j, "-le": i <= j, "-gt": i > j,
                    "-ge": i >= j}[op]
        if op in ("-nt", "-ot", "-ef"):
            return False
    raise ValueError("syntax error")


@applet("date")
async def date(sh: Shell, argv: list[str], io: IO) -> int:
    flags, values, rest = _opts(argv[1:], "d")
    t = time.gmtime(sh.clock())
    fmt = next((r[1:] for r in rest if r.startswith("+")), None)
    if fmt is None:
        fmt = "%a %b %e %H:%M:%S UTC %Y"
    fmt = fmt.replace("%s", str(int(sh.clock()))).replace("%N", "000000000")
    io.print(time.strftime(fmt, t) + "\n")
    return 0


@applet("env", "printenv")
async def env(sh: Shell, argv: list[str], io: IO) -> int:
    if argv[0] == "printenv" and len(argv) > 1:
        code = 0
        for name in argv[1:]:
            v = sh.env.get(name)
            if v is None:
                code = 1
            else:
                io.print(v + "\n")
        return code
    args = argv[1:]
    extra: dict[str, str] = {}
    clear = False
    while args and (("=" in args[0] and not args[0].startswith("=")) or args[0] in ("-i", "-")):
        if args[0] in ("-i", "-"):
            clear = True
        else:
            k, _, v = args[0].partition("=")
            extra[k] = v
        args = args[1:]
    if args:
        sub = sh.clone()
        if clear:
            sub.env = {}
        sub.env.update(extra)
        return await sub._command(args, io)
    envs = {**({} if clear else sh.env), **extra}
    for k, v in envs.items():
        io.print(f"{k}={v}\n")
    return 0


@applet("grep", "egrep", "fgrep")
async def grep(sh: Shell, argv: list[str], io: IO) -> int:
    flags, values, rest = _opts(argv[1:], "eAB" if True else "")
    pats = [values["e"]] if "e" in values else []
    if not pats:
        if not rest:
            io.error("Usage: grep [-HhnlLoqvsrRiwFE] [-m N] [-A|B|C N] PATTERN/-e PATTERN.../-f FILE [FILE]...\n")
            return 2
        pats, rest = [rest[0]], rest[1:]
    fixed = "F" in flags or argv[0] == "fgrep"
    ext = "E" in flags or argv[0] == "egrep"
    rx_flags = re.I if "i" in flags else 0
    rxs = []
    for p in pats:
        src = re.escape(p) if fixed else p if ext else _bre_to_ere(p)
        if "w" in flags:
            src = rf"\b(?:{src})\b"
        if "x" in flags:
            src = rf"^(?:{src})$"
        try:
            rxs.append(re.compile(src, rx_flags))
        except re.error:
            rxs.append(re.compile(re.escape(p), rx_flags))
    inputs, code = _inputs(sh, io, rest, "grep")
    found = False
    many = len(rest) > 1
    count_only = "c" in flags
    for name, text in inputs:
        count = 0
        for num, line in enumerate(text.splitlines(), 1):
            hit = any(r.search(line) for r in rxs)
            if hit != ("v" in flags):
                found = True
                count += 1
                if "q" in flags:
                    return 0
                if "l" in flags or count_only:
                    continue
                prefix = (f"{name}:" if many and "h" not in flags else "") + \
                         (f"{num}:" if "n" in flags else "")
                if "o" in flags and "v" not in flags:
                    for r in rxs:
                        for m in r.finditer(line):
                            io.print(prefix + m.group(0) + "\n")
                else:
                    io.print(prefix + line + "\n")
        if "l" in flags and count:
            io.print(name + "\n")
        if count_only:
            io.print((f"{name}:" if many else "") + f"{count}\n")
    if code and "s" not in flags:
        return 2
    return 0 if found else 1


def _bre_to_ere(p: str) -> str:
    """POSIX basic regex → Python: ``\\(``/``\\)``/``\\{``/``\\|``/``\\+`` are the operators."""
    out = []
    i = 0
    while i < len(p):
        c = p[i]
        if c == "\\" and i + 1 < len(p):
            n = p[i + 1]
            out.append(n if n in "(){}|+?" else "\\" + n)
            i += 2
            continue
        out.append("\\" + c if c in "(){}|+?" else c)
        i += 1
    return "".join(out)


@applet("sed")
async def sed(sh: Shell, argv: list[str], io: IO) -> int:
    flags, values, rest = _opts(argv[1:], "e")
    scripts = [values["e"]] if "e" in values else []
    if not scripts:
        if not rest:
            io.error("Usage: sed [-inrE] [-f FILE]... [-e CMD]... [FILE]...\n")
            return 1
        scripts, rest = [rest[0]], rest[1:]
    ere = bool(flags & {"E", "r"})
    cmds = [c for s in scripts for c in _split_sed(s)]
    inputs, code = _inputs(sh, io, rest, "sed")
    out: list[str] = []
    for name, text in inputs:
        res: list[str] = []
        lines = text.splitlines()
        for num, line in enumerate(lines, 1):
            printed_extra: list[str] = []
            deleted = False
            for cmd in cmds:
                addr, op, arg = _sed_parse(cmd)
                if addr is not None and not _sed_addr(addr, num, line, len(lines), ere):
                    continue
                if op == "p":
                    printed_extra.append(line)
                elif op == "d":
                    deleted = True
                    break
                elif op == "s":
                    line, hit, pflag = _sed_sub(arg, line, ere)
                    if hit and pflag:
                        printed_extra.append(line)
                elif op == "q":
                    res.extend(printed_extra)
                    if "n" not in flags:
                        res.append(line)
                    if "i" in flags and name != "-":
                        sh.fs.write(sh.path(name), "".join(x + "\n" for x in res))
                    else:
                        out.extend(res)
                    io.print("".join(x + "\n" for x in out))
                    return code
            res.extend(printed_extra)
            if not deleted and "n" not in flags:
                res.append(line)
        if "i" in flags and name != "-":
            sh.fs.write(sh.path(name), "".join(x + "\n" for x in res))
        else:
            out.extend(res)
    io.print("".join(x + "\n" for x in out))
    return code


def _split_sed(script: str) -> list[str]:
    parts, cur, i = [], [], 0
    in_s = 0
    delim = ""
    while i < len(script):
        c = script[i]
        if in_s:
            if c == "\\" and i + 1 < len(script):
                cur.append(script[i:i + 2])
                i += 2
                continue
            if c == delim:
                in_s -= 1
            cur.append(c)
        elif c in ";\n":
            if "".join(cur).strip():
                parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
            stripped = "".join(cur).lstrip()
            if c == "s" and re.fullmatch(r"(\d+|\$|/[^/]*/)?,?(\d+|\$|/[^/]*/)?s", stripped) \
                    and i + 1 < len(script):
                delim = script[i + 1]
                cur.append(delim)
                i += 1
                in_s = 2
        i += 1
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def _sed_parse(cmd: str) -> tuple[str | None, str, str]:
    m = re.match(r"((?:\d+|\$|/(?:[^/\\]|\\.)*/)(?:,(?:\d+|\$|/(?:[^/\\]|\\.)*/))?)?\s*(.)(.*)", cmd,
                 re.S)
    if not m:
        return None, "", ""
    return m.group(1), m.group(2), m.group(3)


def _sed_addr(addr: str, num: int, line: str, total: int, ere: bool) -> bool:
    def one(a: str) -> bool:
        if a == "$":
            return num == total
        if a.isdigit():
            return num == int(a)
        return bool(re.search(a[1:-1] if ere else _bre_to_ere(a[1:-1]), line))
    if "," in addr and not addr.startswith("/"):
        lo, hi = addr.split(",", 1)
        lo_n = int(lo) if lo.isdigit() else 1
        hi_n = total if hi == "$" else (int(hi) if hi.isdigit() else total)
        return lo_n <= num <= hi_n
    return one(addr)


def _sed_sub(arg: str, line: str, ere: bool) -> tuple[str, bool, bool]:
    if not arg:
        return line, False, False
    d = arg[0]
    parts = re.split(rf"(?<!\\){re.escape(d)}", arg[1:])
    if len(parts) < 3:
        return line, False, False
    pat, rep, fl = parts[0], parts[1], parts[2]
    rx = re.compile(pat if ere else _bre_to_ere(pat), re.I if "I" in fl or "i" in fl else 0)
    py_rep = re.sub(r"\\(\d)", r"\\g<\1>", rep.replace("\\" + d, d)).replace("&", r"\g<0>")
    py_rep = py_rep.replace("\\&", "&")
    new, n = rx.subn(py_rep, line, count=0 if "g" in fl else 1)
    return new, n > 0, "p" in fl


@applet("head", "tail")
async def head(sh: Shell, argv: list[str], io: IO) -> int:
    prog = argv[0].rsplit("/", 1)[-1]
    args = [("-n" + a[1:]) if re.fullmatch(r"-\d+", a) else a for a in argv[1:]]
    flags, values, rest = _opts(args, "nc")
    nval = values.get("n", "10")
    inputs, code = _inputs(sh, io, rest, prog)
    for k, (name, text) in enumerate(inputs):
        if len(inputs) > 1:
            io.print(("\n" if k else "") + f"==> {name} <==\n")
        if "c" in values:
            c = int(values["c"])
            io.print(text[:c] if prog == "head" else text[-c:])
            continue
        lines = text.splitlines(keepends=True)
        if prog == "head":
            n = int(nval)
            io.print("".join(lines[:n] if n >= 0 else lines[:n]))
        elif nval.startswith("+"):
            io.print("".join(lines[int(nval[1:]) - 1:]))
        else:
            n = int(nval)
            io.print("".join(lines[-n:] if n else []))
    if prog == "tail" and "f" in flags:
        await _forever(sh)
    return code


async def _forever(sh: Shell) -> None:
    await asyncio.Event().wait()


@applet("wc")
async def wc(sh: Shell, argv: list[str], io: IO) -> int:
    flags, _, rest = _opts(argv[1:])
    inputs, code = _inputs(sh, io, rest, "wc")
    sel = [f for f in "lwc" if f in flags] or ["l", "w", "c"]
    tot = {"l": 0, "w": 0, "c": 0}
    for name, text in inputs:
        v = {"l": text.count("\n"), "w": len(text.split()), "c": len(text.encode())}
        for k in tot:
            tot[k] += v[k]
        cols = [v[k] for k in sel]
        width = 7 if len(sel) > 1 or name != "-" else 0
        line = " ".join(f"{c:{width}d}" if width else str(c) for c in cols)
        io.print(line + (f" {name}" if name != "-" else "") + "\n")
    if len(inputs) > 1:
        io.print(" ".join(f"{tot[k]:7d}" for k in sel) + " total\n")
    return code


@applet("sleep")
async def sleep(sh: Shell, argv: list[str], io: IO) -> int:
    total = 0.0
    for a in argv[1:] or ["0"]:
        if a in ("infinity", "inf"):
            await _forever(sh)
        m = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)([smhd]?)", a)
        if not m:
            io.error(f"sleep: invalid number '{a}'\n")
            return 1
        total += float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    await asyncio.sleep(total)
    return 0


@applet("kill")
async def kill(sh: Shell, argv: list[str], io: IO) -> int:
    args = argv[1:]
    if args and args[0] == "-l":
        io.print(" ".join(["HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL",
                           "USR1", "SEGV", "USR2", "PIPE", "ALRM", "TERM"]) + "\n")
        return 0
    sig = "TERM"
    if args and args[0].startswith("-"):
        sig = args[0][1:].upper().removeprefix("SIG")
        args = args[1:]
        if sig == "S" and args:
            sig = args.pop(0).upper()
    code = 0
    for a in args:
        pid_s = a.lstrip("%")
        job = None
        if a.startswith("%") and pid_s.isdigit() and 0 < int(pid_s) <= len(sh.jobs):
            job = sh.jobs[int(pid_s) - 1]
        elif pid_s.isdigit():
            job = next((j for j in sh.jobs if j.pid == int(pid_s)), None)
        if job is None:
            if pid_s == "1" or (pid_s.isdigit() and int(pid_s) == sh.pid):
                continue
            io.error(f"sh: kill: can't kill pid {a}: No such process\n")
            code = 1
            continue
        if sig not in ("0",):
            job.task.cancel()
    return code


@applet("hostname")
async def hostname(sh: Shell, argv: list[str], io: IO) -> int:
    if "-i" in argv[1:] or "-I" in argv[1:]:
        ips = [str(i) for i in getattr(sh.net, "ips", [])] if sh.net is not None else []
        io.print((" ".join(ips) + (" " if "-I" in argv[1:] else "")) + "\n")
        return 0
    io.print(sh.hostname + "\n")
    return 0


@applet("id", "whoami")
async def ident(sh: Shell, argv: list[str], io: IO) -> int:
    if argv[0] == "whoami":
        io.print("root\n")
    else:
        io.print("uid=0(root) gid=0(root) groups=0(root),10(wheel)\n")
    return 0


@applet("uname")
async def uname(sh: Shell, argv: list[str], io: IO) -> int:
    flags, _, _ = _opts(argv[1:])
    parts = {"s": "Linux", "n": sh.hostname, "r": "6.8.0-knet", "v": "#1 SMP", "m": "x86_64"}
    if "a" in flags:
        io.print(f"Linux {sh.hostname} 6.8.0-knet #1 SMP x86_64 GNU/Linux\n")
        return 0
    sel = [k for k in "snrvm" if k in flags] or ["s"]
    io.print(" ".join(parts[k] for k in sel) + "\n")
    return 0


@applet("seq")
async def seq(sh: Shell, argv: list[str], io: IO) -> int:
    nums = [int(a) for a in argv[1:] if a.lstrip("-").isdigit()]
    if not nums:
        return 1
    first, step, last = (1, 1, nums[0]) if len(nums) == 1 else \
        (nums[0], 1, nums[1]) if len(nums) == 2 else (nums[0], nums[1], nums[2])
    io.print("".join(f"{i}\n" for i in range(first, last + (1 if step > 0 else -1), step)))
    return 0


@applet("tr")
async def tr(sh: Shell, argv: list[str], io: IO) -> int:
    flags, _, rest = _opts(argv[1:])

    def expand(s: str) -> str:
        s = s.replace("[:upper:]", "A-Z").replace("[:lower:]", "a-z").replace(
            "[:digit:]", "0-9").replace("[:space:]", " \t\n\r\f\v").replace("\\n", "\n")
        out: list[str] = []
        i = 0
        while i < len(s):
            if i + 2 < len(s) and s[i + 1] == "-":
                out.extend(chr(c) for c in range(ord(s[i]), ord(s[i + 2]) + 1))
                i += 3
            else:
                out.append(s[i])
                i += 1
        return "".join(out)
    text = io.stdin
    if "d" in flags and rest:
        drop = set(expand(rest[0]))
        io.print("".join(c for c in text if c not in drop))
        return 0
    if len(rest) < 2:
        return 1
    a, b = expand(rest[0]), expand(rest[1])
    b = b + b[-1:] * (len(a) - len(b))
    io.print(text.translate(str.maketrans(a, b[:len(a)])))
    return 0


@applet("cut")
async def cut(sh: Shell, argv: list[str], io: IO) -> int:
    _, values, rest = _opts(argv[1:], "dfc")
    inputs, code = _inputs(sh, io, rest, "cut")
    d = values.get("d", "\t")
    sel = values.get("f") or values.get("c") or "1"
    idx: list[int] = []
    for part in sel.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            idx += list(range(int(lo or 1), int(hi or 100) + 1))
        else:
            idx.append(int(part))
    for _, text in inputs:
        for line in text.splitlines():
            if "c" in values:
                io.print("".join(line[i - 1] for i in idx if i <= len(line)) + "\n")
            else:
                fs = line.split(d)
                io.print(d.join(fs[i - 1] for i in idx if i <= len(fs)) + "\n")
    return code


@applet("sort")
async def sort(sh: Shell, argv: list[str], io: IO) -> int:
    flags, _, rest = _opts(argv[1:])
    inputs, code = _inputs(sh, io, rest, "sort")
    lines = [ln for _, t in inputs for ln in t.splitlines()]
    if "n" in flags:
        def num(s: str) -> float:
            m = re.match(r"\s*-?\d+(\.\d+)?", s)
            return float(m.group(0)) if m else 0.0
        lines.sort(key=num, reverse="r" in flags)
    else:
        lines.sort(reverse="r" in flags)
    if "u" in flags:
        lines = list(dict.fromkeys(lines))
    io.print("".join(x + "\n" for x in lines))
    return code


@applet("uniq")
async def uniq(sh: Shell, argv: list[str], io: IO) -> int:
    flags, _, rest = _opts(argv[1:])
    inputs, code = _inputs(sh, io, rest, "uniq")
    prev: str | None = None
    count = 0
    out: list[str] = []
    lines: list[str | None] = [ln for _, t in inputs for ln in t.splitlines()]
    for line in [*lines, None]:
        if line == prev:
            count += 1
            continue
        if prev is not None:
            out.append(f"{count:7d} {prev}" if "c" in flags else prev)
        prev, count = line, 1
    io.print("".join(x + "\n" for x in out))
    return code


@applet("basename", "dirname")
async def basename(sh: Shell, argv: list[str], io: IO) -> int:
    if len(argv) < 2:
        return 1
    p = argv[1]
    if argv[0] == "dirname":
        io.print((posixpath.dirname(p.rstrip("/")) or ".") + "\n")
    else:
        b = posixpath.basename(p.rstrip("/")) or "/"
        if len(argv) > 2 and b.endswith(argv[2]) and b != argv[2]:
            b = b[: -len(argv[2])]
        io.print(b + "\n")
    return 0


@applet("tee")
async def tee(sh: Shell, argv: list[str], io: IO) -> int:
    flags, _, rest = _opts(argv[1:])
    for f in rest:
        try:
            sh.fs.write(sh.path(f), io.stdin, append="a" in flags, parents=False)
        except FSError as e:
            io.error(f"tee: {f}: {e.strerror}\n")
    io.print(io.stdin)
    return 0


@applet("base64")
async def b64(sh: Shell, argv: list[str], io: IO) -> int:
    flags, _, rest = _opts(argv[1:])
    inputs, code = _inputs(sh, io, rest, "base64")
    data = "".join(t for _, t in inputs)
    if "d" in flags:
        try:
            io.print(base64.b64decode("".join(data.split())).decode(errors="replace"))
        except ValueError:
            io.error("base64: invalid input\n")
            return 1
    else:
        enc = base64.b64encode(data.encode()).decode()
        io.print("".join(enc[i:i + 76] + "\n" for i in range(0, len(enc), 76)))
    return code


@applet("ps")
async def ps(sh: Shell, argv: list[str], io: IO) -> int:
    io.print("PID   USER     TIME  COMMAND\n    1 root      0:00 " + " ".join(
        getattr(sh, "argv0", ["sh"])) + "\n")
    for j in sh.jobs:
        io.print(f"{j.pid:5d} root      0:00 sh\n")
    return 0


@applet("yes")
async def yes(sh: Shell, argv: list[str], io: IO) -> int:
    word = " ".join(argv[1:]) or "y"
    io.print((word + "\n") * 1000)
    return 0


@applet("mktemp")
async def mktemp(sh: Shell, argv: list[str], io: IO) -> int:
    flags, _, _ = _opts(argv[1:])
    sh.next_pid += 1
    path = f"/tmp/tmp.{sh.next_pid:06d}"
    if "d" in flags:
        sh.fs.mkdir(path)
    else:
        sh.fs.write(path, b"")
    io.print(path + "\n")
    return 0


@applet("stat")
async def stat(sh: Shell, argv: list[str], io: IO) -> int:
    _, values, rest = _opts(argv[1:], "c")
    code = 0
    for p in rest:
        n = sh.fs.node(sh.path(p))
        if n is None:
            io.error(f"stat: can't stat '{p}': No such file or directory\n")
            code = 1
            continue
        size = len(n.data) if isinstance(n, File) else 4096
        if "c" in values:
            io.print(values["c"].replace("%s", str(size)).replace("%n", p).replace(
                "%a", f"{n.mode & 0o7777:o}").replace("%A", _mode_str(n)) + "\n")
        else:
            io.print(f"  File: {p}\n  Size: {size}\n")
    return code


@applet("df")
async def df(sh: Shell, argv: list[str], io: IO) -> int:
    io.print("Filesystem           1K-blocks      Used Available Use% Mounted on\n"
             "overlay               61202244   8915464  49145452  15% /\n")
    for m in sorted(sh.fs.mounts):
        io.print(f"tmpfs                  8048588        12   8048576   0% {m}\n")
    return 0


__all__ = ["echo", "cat", "ls", "test"]
