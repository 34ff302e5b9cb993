"""POSIX shell grammar (IEEE Std 1003.1, "Shell Command Language" §2.10) → a small AST.

Invariants: pure, no IO. Words stay *raw* (quotes and ``$…`` kept) and are expanded at run
time by ``knet.runtime.shell``; the parser only finds word boundaries, operators, reserved
words in command position, here-documents and the compound commands busybox ``ash`` runs:
``if``/``while``/``until``/``for``/``case``, ``{ …; }``, ``( … )``, functions, pipelines with
``!``, ``&&``/``||`` lists and ``&``. Syntax errors raise ``ShellSyntaxError`` with ash's text.

Why not a library: bashlex (PyPI, last release 2023) raises NotImplementedError on ``case``
and ``$((…))``, both common in chart scripts; tree-sitter-bash is error-tolerant (a broken
script still "parses") and nests pipelines inside here-document nodes, which is the opposite
of what an interpreter wants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPERATORS = ("&&", "||", ";;", "<<-", "<<", ">>", "<&", ">&", "<>", ">|", "|", "&", ";", "<",
             ">", "(", ")")
RESERVED = frozenset({"if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while",
                      "until", "for", "in", "{", "}", "!"})


class ShellSyntaxError(Exception):
    pass


# --- AST ------------------------------------------------------------------------------------

@dataclass
class Redirect:
    op: str              # < > >> <& >& <> >| << <<-
    fd: int | None       # explicit IO_NUMBER
    target: str          # raw word (for here-docs: the delimiter)
    heredoc: str | None = None
    quoted: bool = False  # here-doc delimiter was quoted: no expansion


@dataclass
class Simple:
    assigns: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)
    redirects: list[Redirect] = field(default_factory=list)


@dataclass
class Pipeline:
    commands: list[object]
    negate: bool = False


@dataclass
class AndOr:
    first: object
    rest: list[tuple[str, object]] = field(default_factory=list)  # ("&&"|"||", pipeline)


@dataclass
class Item:
    node: object       # AndOr
    background: bool = False


@dataclass
class Seq:
    items: list[Item]


@dataclass
class If:
    branches: list[tuple[Seq, Seq]]
    orelse: Seq | None = None


@dataclass
class Loop:
    cond: Seq
    body: Seq
    until: bool = False


@dataclass
class For:
    var: str
    words: list[str] | None  # None: "$@"
    body: Seq


@dataclass
class Case:
    word: str
    arms: list[tuple[list[str], Seq]]


@dataclass
class Group:
    body: Seq
    subshell: bool = False


@dataclass
class Compound:
    node: object
    redirects: list[Redirect]


@dataclass
class FuncDef:
    name: str
    body: object


# --- lexer ----------------------------------------------------------------------------------

@dataclass
class Tok:
    kind: str  # WORD, OP, NL, IO (io number), EOF
    text: str
    quoted: bool = False


class _Lexer:
    def __init__(self, src: str) -> None:
        self.s = src
        self.i = 0
        self.pending: list[Redirect] = []
        self.bodies: list[str] = []  # here-document bodies, in the order of their ``<<``

    def tokens(self) -> list[Tok]:
        out: list[Tok] = []
        s = self.s
        n = len(s)
        while True:
            # blanks and comments
            while self.i < n and s[self.i] in " \t":
                self.i += 1
            if self.i < n and s.startswith("\\\n", self.i):
                self.i += 2
                continue
            if self.i >= n:
                if self.pending:
                    self._heredocs()
                out.append(Tok("EOF", ""))
                return out
            c = s[self.i]
            if c == "#":
                while self.i < n and s[self.i] != "\n":
                    self.i += 1
                continue
            if c == "\n":
                self.i += 1
                out.append(Tok("NL", "\n"))
                if self.pending:
                    self._heredocs()
                continue
            op = next((o for o in OPERATORS if s.startswith(o, self.i)), None)
            if op is not None:
                self.i += len(op)
                out.append(Tok("OP", op))
                if op in ("<<", "<<-"):
                    while self.i < n and s[self.i] in " \t":
                        self.i += 1
                    word, quoted = self._word()
                    if not word:
                        raise ShellSyntaxError("syntax error: unexpected newline")
                    out.append(Tok("WORD", word, quoted))
                    self.pending.append(Redirect(op, None, word, quoted=quoted))
                continue
            word, quoted = self._word()
            if word.isdigit() and self.i < n and s[self.i] in "<>":
                out.append(Tok("IO", word))
            else:
                out.append(Tok("WORD", word, quoted))

    def _word(self) -> tuple[str, bool]:
        s = self.s
        n = len(s)
        start = self.i
        quoted = False
        while self.i < n:
            c = s[self.i]
            if c in " \t\n;&|<>()":
                break
            if c == "\\":
                quoted = True
                self.i += 2
            elif c == "'":
                quoted = True
                j = s.find("'", self.i + 1)
                if j < 0:
                    raise ShellSyntaxError("syntax error: unterminated quoted string")
                self.i = j + 1
            elif c == '"':
                quoted = True
                self.i = _skip_dquote(s, self.i + 1)
            elif c == "`":
                j = self.i + 1
                while j < n and s[j] != "`":
                    j += 2 if s[j] == "\\" else 1
                if j >= n:
                    raise ShellSyntaxError("syntax error: unterminated quoted string")
                self.i = j + 1
            elif c == "$" and self.i + 1 < n and s[self.i + 1] in "({":
                self.i = _skip_dollar(s, self.i)
            else:
                self.i += 1
        return s[start:self.i], quoted

    def _heredocs(self) -> None:
        s = self.s
        for r in self.pending:
            delim = unquote(r.target)
            lines = []
            while True:
                if self.i >= len(s):
                    break
                j = s.find("\n", self.i)
                line = s[self.i:] if j < 0 else s[self.i:j]
                self.i = len(s) if j < 0 else j + 1
                check = line.lstrip("\t") if r.op == "<<-" else line
                if check == delim:
                    break
                lines.append(check)
            self.bodies.append("".join(x + "\n" for x in lines))
        self.pending = []


def _skip_dquote(s: str, i: int) -> int:
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
        elif c == '"':
            return i + 1
        elif c == "$" and i + 1 < n and s[i + 1] in "({":
            i = _skip_dollar(s, i)
        elif c == "`":
            j = i + 1
            while j < n and s[j] != "`":
                j += 2 if s[j] == "\\" else 1
            i = j + 1
        else:
            i += 1
    raise ShellSyntaxError("syntax error: unterminated quoted string")


def _skip_dollar(s: str, i: int) -> int:
    """Index after the ``$(…)``, ``$((…))`` or ``${…}`` starting at ``i``."""
    open_, close = ("(", ")") if s[i + 1] == "(" else ("{", "}")
    depth = 0
    j = i + 1
    n = len(s)
    while j < n:
        c = s[j]
        if c == "\\":
            j += 2
            continue
        if c == "'" and open_ == "(":
            k = s.find("'", j + 1)
            j = n if k < 0 else k + 1
            continue
        if c == '"':
            j = _skip_dquote(s, j + 1)
            continue
        if c == "$" and j + 1 < n and s[j + 1] in "({" and j != i:
            j = _skip_dollar(s, j)
            continue
        if c == open_:
            depth += 1
        elif c == close:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise ShellSyntaxError(f"syntax error: unterminated {'$(' if open_ == '(' else '${'}")


def unquote(word: str) -> str:
    """Quote removal only (no expansion): here-doc delimiters, case patterns' literal parts."""
    out = []
    i = 0
    while i < len(word):
        c = word[i]
        if c == "\\" and i + 1 < len(word):
            out.append(word[i + 1])
            i += 2
        elif c == "'":
            j = word.find("'", i + 1)
            out.append(word[i + 1:j])
            i = j + 1
        elif c == '"':
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


# --- parser ---------------------------------------------------------------------------------

class _Parser:
    def __init__(self, src: str) -> None:
        self.lexer = _Lexer(src)
        self.toks = self.lexer.tokens()
        self.p = 0
        self.heredocs = 0

    @property
    def tok(self) -> Tok:
        return self.toks[self.p]

    def next(self) -> Tok:
        t = self.toks[self.p]
        self.p += 1
        return t

    def is_word(self, *texts: str) -> bool:
        t = self.tok
        return t.kind == "WORD" and not t.quoted and t.text in texts

    def is_op(self, *texts: str) -> bool:
        return self.tok.kind == "OP" and self.tok.text in texts

    def unexpected(self) -> ShellSyntaxError:
        t = self.tok
        what = {"EOF": "end of file", "NL": "newline"}.get(t.kind, f'"{t.text}"')
        return ShellSyntaxError(f"syntax error: unexpected {what}")

    def expect_word(self, text: str) -> None:
        if not self.is_word(text):
            raise self.unexpected()
        self.p += 1

    def linebreak(self) -> None:
        while self.tok.kind == "NL":
            self.p += 1

    def program(self) -> Seq:
        seq = self.seq(())
        if self.tok.kind != "EOF":
            raise self.unexpected()
        return seq

    def seq(self, stops: tuple[str, ...]) -> Seq:
        items: list[Item] = []
        while True:
            while self.tok.kind == "NL" or self.is_op(";"):
                if self.is_op(";") and not items:
                    raise self.unexpected()
                self.p += 1
            t = self.tok
            if t.kind == "EOF" or (t.kind == "WORD" and not t.quoted and t.text in stops) or \
                    self.is_op(")", ";;"):
                return Seq(items)
            node = self.and_or()
            bg = False
            if self.is_op("&"):
                bg = True
                self.p += 1
            elif self.is_op(";"):
                self.p += 1
            elif self.tok.kind == "NL":
                pass
            elif not (self.tok.kind == "EOF" or self.is_op(")", ";;") or
                      (self.tok.kind == "WORD" and self.tok.text in stops)):
                raise self.unexpected()
            items.append(Item(node, bg))

    def and_or(self) -> AndOr:
        node = AndOr(self.pipeline())
        while self.is_op("&&", "||"):
            op = self.next().text
            self.linebreak()
            node.rest.append((op, self.pipeline()))
        return node

    def pipeline(self) -> Pipeline:
        neg = False
        if self.is_word("!"):
            neg = True
            self.p += 1
        cmds = [self.command()]
        while self.is_op("|"):
            self.p += 1
            self.linebreak()
            cmds.append(self.command())
        return Pipeline(cmds, neg)

    def command(self) -> object:
        t = self.tok
        if t.kind == "WORD" and not t.quoted:
            kw = t.text
            if kw in ("if", "while", "until", "for", "case", "{"):
                node = self.compound()
                return Compound(node, self.redirects())
            if kw in RESERVED:
                raise self.unexpected()
            nxt = self.toks[self.p + 1]
            if nxt.kind == "OP" and nxt.text == "(" and self.toks[self.p + 2].text == ")" \
                    and _is_name(kw.replace("-", "_").replace(".", "_")):
                self.p += 3
                self.linebreak()
                body = self.command()
                return FuncDef(kw, body)
        if self.is_op("("):
            return Compound(self.compound(), self.redirects())
        return self.simple()

    def redirects(self) -> list[Redirect]:
        out = []
        while self.tok.kind == "IO" or self.is_op("<", ">", ">>", "<&", ">&", "<>", ">|", "<<",
                                                 "<<-"):
            out.append(self.redirect())
        return out

    def redirect(self) -> Redirect:
        fd = int(self.next().text) if self.tok.kind == "IO" else None
        op = self.next().text
        if self.tok.kind != "WORD":
            raise self.unexpected()
        word = self.next()
        r = Redirect(op, fd, word.text, quoted=word.quoted)
        if op in ("<<", "<<-"):
            r.heredoc = self.lexer.bodies[self.heredocs] if self.heredocs < len(
                self.lexer.bodies) else ""
            self.heredocs += 1
        return r

    def simple(self) -> Simple:
        cmd = Simple()
        while True:
            t = self.tok
            if t.kind == "IO" or self.is_op("<", ">", ">>", "<&", ">&", "<>", ">|", "<<", "<<-"):
                cmd.redirects.append(self.redirect())
            elif t.kind == "WORD":
                if not cmd.words and _is_assignment(t.text):
                    cmd.assigns.append(t.text)
                else:
                    cmd.words.append(t.text)
                self.p += 1
            else:
                break
        if not (cmd.words or cmd.assigns or cmd.redirects):
            raise self.unexpected()
        return cmd

    def compound(self) -> object:
        t = self.next()
        kw = t.text
        if kw == "(":
            body = self.seq(())
            if not self.is_op(")"):
                raise self.unexpected()
            self.p += 1
            return Group(body, subshell=True)
        if kw == "{":
            body = self.seq(("}",))
            self.expect_word("}")
            return Group(body)
        if kw == "if":
            branches = []
            cond = self.seq(("then",))
            self.expect_word("then")
            body = self.seq(("elif", "else", "fi"))
            branches.append((cond, body))
            orelse = None
            while True:
                if self.is_word("elif"):
                    self.p += 1
                    cond = self.seq(("then",))
                    self.expect_word("then")
                    body = self.seq(("elif", "else", "fi"))
                    branches.append((cond, body))
                elif self.is_word("else"):
                    self.p += 1
                    orelse = self.seq(("fi",))
                else:
                    break
            self.expect_word("fi")
            return If(branches, orelse)
        if kw in ("while", "until"):
            cond = self.seq(("do",))
            self.expect_word("do")
            body = self.seq(("done",))
            self.expect_word("done")
            return Loop(cond, body, until=kw == "until")
        if kw == "for":
            if self.tok.kind != "WORD":
                raise self.unexpected()
            var = self.next().text
            words: list[str] | None = None
            self.linebreak()
            if self.is_word("in"):
                self.p += 1
                words = []
                while self.tok.kind == "WORD":
                    words.append(self.next().text)
                if not (self.is_op(";") or self.tok.kind == "NL"):
                    raise self.unexpected()
                self.p += 1
            elif self.is_op(";"):
                self.p += 1
            self.linebreak()
            self.expect_word("do")
            body = self.seq(("done",))
            self.expect_word("done")
            return For(var, words, body)
        if kw == "case":
            if self.tok.kind != "WORD":
                raise self.unexpected()
            word = self.next().text
            self.linebreak()
            self.expect_word("in")
            self.linebreak()
            arms = []
            while not self.is_word("esac"):
                if self.is_op("("):
                    self.p += 1
                pats = []
                while True:
                    if self.tok.kind != "WORD":
                        raise self.unexpected()
                    pats.append(self.next().text)
                    if self.is_op("|"):
                        self.p += 1
                        continue
                    break
                if not self.is_op(")"):
                    raise self.unexpected()
                self.p += 1
                body = self.seq(("esac",))
                arms.append((pats, body))
                if self.is_op(";;"):
                    self.p += 1
                    self.linebreak()
                elif not self.is_word("esac"):
                    raise self.unexpected()
            self.p += 1
            return Case(word, arms)
        raise self.unexpected()


def _is_name(s: str) -> bool:
    return bool(s) and (s[0].isalpha() or s[0] == "_") and all(c.isalnum() or c == "_" for c in s)


def _is_assignment(word: str) -> bool:
    name, eq, _ = word.partition("=")
    return bool(eq) and _is_name(name)


def parse(src: str) -> Seq:
    """Parse a whole script; raises ShellSyntaxError."""
    return _Parser(src).program()


__all__ = ["parse", "ShellSyntaxError", "Seq", "Item", "AndOr", "Pipeline", "Simple",
           "Compound", "FuncDef", "If", "Loop", "For", "Case", "Group", "Redirect", "unquote"]
