"""Which parts of SQL text carry a secret: the values bound to secret-naming columns, options and parameters.

A statement that only names a secret column carries no secret: ``CREATE TABLE users (password_hash
bytea NOT NULL DEFAULT '')``, ``CREATE INDEX ON users (api_key)``, ``COMMENT ON COLUMN users.token IS
'...'``, ``SELECT password_hash FROM users WHERE name = 'bob'`` (the literal is bound to ``name``),
``UPDATE users SET password_hash = %s`` (a placeholder). A statement that binds a value to one does:

- by position: ``INSERT INTO users (name, password_hash) VALUES ('bob', 'x'), ...`` (and ``... SELECT
  'bob', 'x'``, ``(name, password) = ('bob', 'x')``);
- by an operator: ``SET password = 'x'``, ``WHERE api_key = 'x'`` (also ``<>``, ``LIKE``, ``IN (...)``,
  ``IS DISTINCT FROM``), ``password => 'x'``, ``data->>'password' = 'x'``, ``SET my.secret TO 'x'``;
- by juxtaposition: ``CREATE USER bob PASSWORD 'x'``, ``OPTIONS (user 'bob', password 'x')``, and
  ``IDENTIFIED BY 'x'``;
- as an argument: ``crypt('x', ...)``, ``pgp_sym_encrypt(data, 'key')``, ``set_password('bob', 'x')``,
  ``set_config('my.secret', 'x', false)``, ``json_build_object('password', 'x')``; the algorithm and
  format arguments of such functions (``gen_salt('bf')``, ``digest(x, 'sha256')``) are not secrets.

Comparisons inside DDL (``CHECK (token <> '')``, a partial index's ``WHERE``, ``DEFAULT 'none'``) are
schema, not values. A value expression that cannot be read cleanly as SQL (``password=hunter2`` in a
log line that happens to start with "select") is left to the generic ``key=value`` rule, which
redacts it: when in doubt, the text is redacted, never kept.

The text is read once by one tokenizer (each token kind starts with its own characters and runs over
one character class, so it is linear), then each statement is judged from its tokens with a bounded
amount of work; past that bound (hostile input) every literal of the statement goes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import NamedTuple

# The scrubber's own secret-key rule: one judgement for attribute keys, text keys and SQL names.
SecretName = Callable[[str], bool]

# --------------------------------------------------------------------------- tokens


class Token(NamedTuple):
    """One token of SQL text: its kind (``ident``, ``string``, ``op``...), where it is, what it says."""

    kind: str
    start: int
    end: int
    text: str


_IDENT, _QIDENT, _BTICK, _STRING, _DOLLAR, _NUMBER, _PARAM, _MARKER, _WORD, _OP = (
    "ident",
    "qident",
    "btick",
    "string",
    "dollar",
    "number",
    "param",
    "marker",
    "word",
    "op",
)
_COMMENT = "comment"
# A double-quoted text that is no identifier ("userPassword: x", a message in a traceback).
_QTEXT = "qtext"
_NAMES = frozenset((_IDENT, _QIDENT, _BTICK))
_LITERALS = frozenset((_STRING, _DOLLAR, _NUMBER, _QIDENT, _QTEXT))


@cache
def _token_pattern() -> re.Pattern[str]:
    # Compiled on first use: importing the scrubber stays cheap.
    return re.compile(
        # White space before a token is taken with it (one match a token).
        r"\s*(?:(?P<comment>--[^\n]*|/\*(?:[^*]|\*(?!/))*(?:\*/)?)"
        r"|(?P<marker>\[REDACTED:[a-z_]{1,32}\])"
        r"|(?P<string>(?:[EeNnBbXx]|[Uu]&)?'(?:[^'\\]|\\.|'')*(?:'|\Z))"
        r"|(?P<dollar>\$(?P<tag>(?:[A-Za-z_][A-Za-z0-9_]{0,31})?)\$(?:[^$]|\$(?!(?P=tag)\$))*(?:\$(?P=tag)\$|\Z))"
        r"|(?P<qident>\"(?:[^\"]|\"\")*(?:\"|\Z))"
        r"|(?P<btick>`(?:[^`]|``)*(?:`|\Z))"
        r"|(?P<param>\$\d+|%(?:\([^()\s]{1,64}\))?[sbt]|\?\d*|(?<!:):(?!:)[A-Za-z_][A-Za-z0-9_]*|@[A-Za-z_][A-Za-z0-9_]*)"
        r"|(?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?![A-Za-z0-9_$]))"
        r"|(?P<ident>[^\W\d][\w$]*)"
        r"|(?P<word>[\w$]+)"
        r"|(?P<op>::|:=|=>|->>|->|\#>>|\#>|<>|!=|<=|>=|==|\|\||!~\*?|~\*|.)|\Z)",
        re.DOTALL,
    )


@cache
def _quoted_name() -> re.Pattern[str]:
    return re.compile(r"[\"`][A-Za-z_][\w$]{0,127}[\"`]")


def tokens(text: str, offset: int = 0, comments: list[Token] | None = None) -> list[Token]:
    """The code tokens of ``text`` (white space and comments left out), positions shifted by ``offset``;
    the comments are added to ``comments`` when it is given."""
    out: list[Token] = []
    append = out.append
    new = Token._make
    for match in _token_pattern().finditer(text):
        kind = match.lastgroup
        if kind is None:
            continue  # the end of the text
        if kind == _COMMENT:
            if comments is not None:
                start, end = match.span(kind)
                comments.append(new((kind, start + offset, end + offset, match.group(kind))))
            continue
        start, end = match.span(kind)
        text_ = match.group(kind)
        if kind in (_QIDENT, _BTICK) and not _quoted_name().fullmatch(text_):
            kind = _QTEXT
        append(new((kind, start + offset, end + offset, text_)))
    return out


# --------------------------------------------------------------------------- what the words mean


def _word_set(words: str) -> frozenset[str]:
    """The words of ``words`` (separated by spaces) as a set."""
    return frozenset(words.split())


# The first word of a statement (what comes before it, "query failed:", is not part of it).
_STATEMENT_WORDS = _word_set(
    "select insert update delete merge replace with values create alter comment set call exec execute do"
    " drop truncate grant revoke copy explain analyze vacuum reindex cluster refresh upsert"
)
# Schema objects whose DDL defines columns, constraints and defaults, never values.
_DDL_OBJECTS = _word_set(
    "table index type domain sequence extension schema trigger collation tablespace statistics policy"
    " operator aggregate conversion publication"
)
_CREATE_MODIFIERS = _word_set(
    "or replace global local temp temporary unlogged unique if not exists concurrently foreign"
)
_INSERT_MODIFIERS = _word_set(
    "into ignore or replace rollback abort fail low_priority delayed high_priority overwrite table"
)
_NOT_A_TABLE = _word_set("values select with set default")
# Words that end a value expression.
_STOP_WORDS = _word_set(
    "and or where from returning then else when end order group limit offset having on join inner left"
    " right full cross natural using union except intersect set values into window for fetch do conflict"
    " valid escape"
)
_NOT_FUNCTIONS = _STATEMENT_WORDS | _STOP_WORDS | _word_set("not in is like ilike exists any all some")
# Words inside a value expression that are SQL, not a value someone wrote.
_SQL_WORDS = _word_set(
    "null default true false unknown on off not is distinct from any all some array row interval date"
    " time timestamp timestamptz with without zone case when then else end cast as collate exists"
    " current_user session_user current_role current_date current_time current_timestamp localtime"
    " localtimestamp user excluded new old and"  # and: only BETWEEN's reaches into a value
)
# Functions a value bound to a secret column is commonly computed with (any other name there may be
# the secret itself, written unquoted).
_KNOWN_FUNCTIONS = _word_set(
    "lower upper trim btrim ltrim rtrim coalesce nullif concat concat_ws substring substr replace md5"
    " sha1 sha224 sha256 sha384 sha512 sha2 to_hex encode decode convert_to convert_from now"
    " current_setting cast gen_random_uuid uuid_generate_v4 gen_random_bytes random values password"
    " unhex hex from_base64 to_base64 digest hmac crypt gen_salt"
)
# Row names of an upsert or a trigger: excluded.password_hash, new.token.
_ROW_QUALIFIERS = _word_set("excluded new old")
# Types a placeholder is cast to.
_TYPES = _word_set(
    "text varchar char character bytea int integer bigint smallint numeric decimal uuid json jsonb"
    " boolean bool timestamp timestamptz date time inet citext binary varbinary blob string"
)
# Comparisons and assignments: the value on their right is bound to the name on their left.
_BINDING_OPS = frozenset(
    ("=", "==", ":=", "=>", "<>", "!=", "<", ">", "<=", ">=", ":", "~", "~*", "!~", "!~*")
)
_BINDING_WORDS = frozenset(("like", "ilike", "in", "between"))
_JSON_OPS = frozenset(("->", "->>", "#>", "#>>"))
# Operators a clean value expression may hold.
_VALUE_OPS = frozenset(("(", ")", "[", "]", ",", ".", "::", "||", "+", "-", "*", "/", "%", "->", "->>"))
# Functions whose arguments (by position; None: all) are secrets wherever they appear.
_SECRET_ARGUMENTS: dict[str, frozenset[int] | None] = {
    "crypt": frozenset((0, 1)),
    "password": None,
    "old_password": None,
    "hmac": frozenset((1,)),
    "encrypt": frozenset((1,)),
    "decrypt": frozenset((1,)),
    "encrypt_iv": frozenset((1, 2)),
    "decrypt_iv": frozenset((1, 2)),
    "pgp_sym_encrypt": frozenset((1,)),
    "pgp_sym_decrypt": frozenset((1,)),
    "pgp_sym_encrypt_bytea": frozenset((1,)),
    "pgp_sym_decrypt_bytea": frozenset((1,)),
    "pgp_pub_decrypt": frozenset((2,)),
    "pgp_pub_decrypt_bytea": frozenset((2,)),
    "aes_encrypt": frozenset((1,)),
    "aes_decrypt": frozenset((1,)),
}
# Functions whose arguments (by position; None: all) name an algorithm or a format, never a secret.
_SETTING_ARGUMENTS: dict[str, frozenset[int] | None] = {
    "gen_salt": None,
    "digest": frozenset((1,)),
    "hmac": frozenset((2,)),
    "encode": frozenset((1,)),
    "decode": frozenset((1,)),
    "convert_to": frozenset((1,)),
    "convert_from": frozenset((1,)),
    "encrypt": frozenset((2,)),
    "decrypt": frozenset((2,)),
    "encrypt_iv": frozenset((3,)),
    "decrypt_iv": frozenset((3,)),
    "pgp_sym_encrypt": frozenset((2,)),
    "pgp_sym_decrypt": frozenset((2,)),
    "pgp_sym_encrypt_bytea": frozenset((2,)),
    "pgp_sym_decrypt_bytea": frozenset((2,)),
    "sha2": frozenset((1,)),
}
# Functions taking name/value pairs: the value after a secret-naming name is a secret.
_PAIR_FUNCTIONS = frozenset(("json_build_object", "jsonb_build_object", "json_object", "set_config"))
# How deep comments inside comments (and quotes) are read.
_MAX_QUOTED_DEPTH = 3
# How much judging one text may cost (steps); past it, the statement-wide rule applies.
_BUDGET_PER_TOKEN = 24


# --------------------------------------------------------------------------- the judgement


class Judgement(NamedTuple):
    """What of a SQL text is secret.

    ``secrets``: the values to redact as (start, end, statement number), sorted; ``judged``: the
    start positions of secret-naming names whose use the SQL reading has fully judged (the
    ``key=value`` rule leaves those alone); ``prose_judged``: those of names followed by an ``IS``
    that is SQL, not prose (``COMMENT ON COLUMN t.token IS '...'``, ``token IS DISTINCT FROM``).
    """

    secrets: tuple[tuple[int, int, int], ...]
    judged: frozenset[int]
    prose_judged: frozenset[int] = frozenset()


NOTHING = Judgement((), frozenset())


@cache
def _statement_pattern() -> re.Pattern[str]:
    return re.compile(
        r"(?i)\b(?:insert[ \t\r\n]+(?:into|ignore|or)\b|update\b|delete[ \t\r\n]+from|select\b"
        r"|merge[ \t\r\n]+into|replace[ \t\r\n]+into|upsert\b|values[ \t]*\(|comment[ \t\r\n]+on\b"
        r"|create[ \t\r\n]|alter[ \t\r\n]|set[ \t\r\n]|call[ \t\r\n]|do[ \t\r\n]+\$|exec(?:ute)?[ \t\r\n])"
    )


def looks_like_sql(text: str) -> bool:
    """Whether ``text`` holds something that starts a SQL statement (a cheap test before ``judge``)."""
    return _statement_pattern().search(text) is not None


def judge(text: str, names_secret: SecretName) -> Judgement:
    """Read ``text`` as SQL and say which of its values are bound to secrets.

    Example::

        judge("UPDATE users SET password = 'x' WHERE name = 'bob'", names_secret).secrets
        # ((28, 31),): the 'x', not the 'bob'
    """
    comments: list[Token] = []
    toks = tokens(text, 0, comments)
    budget = [max(4096, _BUDGET_PER_TOKEN * len(toks))]
    secrets: list[tuple[int, int, int]] = []
    judged: set[int] = set()
    prose_judged: set[int] = set()
    try:
        _judge_tokens(text, toks, names_secret, budget, secrets, (judged, prose_judged), depth=0)
        # A statement commented out still holds what it says: "-- INSERT ... VALUES ('bob', 'x')".
        _judge_quoted(text, comments, set(), names_secret, budget, secrets, (judged, prose_judged), 0)
    except Exception:  # a shape this reading gets wrong: fail closed (every literal goes), never raise
        literals = [(t.start, t.end, 0) for t in toks if t.kind in (_STRING, _DOLLAR)]
        return Judgement(tuple(literals), frozenset())
    return Judgement(tuple(sorted(set(secrets))), frozenset(judged), frozenset(prose_judged))


def _judge_tokens(
    text: str,
    toks: list[Token],
    names_secret: SecretName,
    budget: list[int],
    secrets: list[tuple[int, int, int]],
    judged: tuple[set[int], set[int]],
    depth: int,
) -> None:
    """Judge each statement of ``toks``, adding its secrets (numbered by statement) and judged names."""
    start = 0
    for index in range(len(toks) + 1):
        if index < len(toks) and not (toks[index].kind == _OP and toks[index].text == ";"):
            continue
        if index > start:
            statement = _Statement(toks[start:index], names_secret, budget)
            found = statement.judge()
            number = secrets[-1][2] + 1 if secrets else 0  # distinct for each statement with secrets
            secrets.extend((a, b, number) for a, b in found)
            judged[0].update(statement.judged)
            judged[1].update(_starts(statement.toks, statement.prose_keys))
            if depth < _MAX_QUOTED_DEPTH:
                _judge_quoted(
                    text, toks[start:index], set(found), names_secret, budget, secrets, judged, depth
                )
        start = index + 1


def _judge_quoted(
    text: str,
    toks: list[Token],
    redacted: set[tuple[int, int]],
    names_secret: SecretName,
    budget: list[int],
    secrets: list[tuple[int, int, int]],
    judged: tuple[set[int], set[int]],
    depth: int,
) -> None:
    """SQL inside quotes or comments, read once more: ``DO $$ ... $$`` and function bodies, a statement
    quoted in a message (``ValueError("INSERT INTO users (name, password) VALUES ('bob', 'x')")``)."""
    for token in toks:
        if token.kind not in (_DOLLAR, _QTEXT, _STRING, _COMMENT) or (token.start, token.end) in redacted:
            continue
        if token.kind == _COMMENT:
            opening, closing = token.text[:2], ("*/" if token.text.startswith("/*") else "")
        elif token.kind == _DOLLAR:
            opening = closing = token.text[: token.text.index("$", 1) + 1]
        elif token.kind == _STRING:
            opening = token.text[: _prefix(token.text) + 1]
            closing = "'"
        else:
            opening = closing = token.text[0]
        closed = len(token.text) >= len(opening) + len(closing) and token.text.endswith(closing)
        body_start = token.start + len(opening)
        body = text[body_start : token.end - (len(closing) if closed else 0)]
        if len(body) < 8 or not looks_like_sql(body):
            continue
        # Quotes and comments inside are read too, a few levels deep: "-- SELECT 1; -- INSERT ...",
        # 'log: "DO $$ ... $$"'.
        inner_comments: list[Token] = []
        inner = tokens(body, body_start, inner_comments)
        _judge_tokens(text, inner, names_secret, budget, secrets, judged, depth + 1)
        if depth + 1 < _MAX_QUOTED_DEPTH:
            _judge_quoted(text, inner_comments, set(), names_secret, budget, secrets, judged, depth + 1)


class _OverBudget(Exception):
    """Judging took too many steps (hostile input): the statement-wide rule applies instead."""


class _Statement:
    """One statement's tokens and what is known of them."""

    def __init__(self, toks: list[Token], names_secret: SecretName, budget: list[int]) -> None:
        self.toks = toks
        self.names_secret = names_secret
        self.budget = budget
        self.n = len(toks)
        self.lower = [t.text.lower() if t.kind == _IDENT else "" for t in toks]
        self.depth: list[int] = []  # bracket depth of each token
        self.partner = self._partners()
        self.marked: set[int] = set()  # token indices whose value is a secret
        self.runs: list[tuple[int, int]] = []  # secret spans of several tokens (an unquoted password)
        self.keys: dict[int, bool] = {}  # token index of a secret name -> judged
        self.chain_start: dict[int, int] = {}  # token index of a name's last part -> of its first part
        self.prose_keys: set[int] = set()  # token indices of secret names followed by a SQL "IS"
        self.setting: set[int] = set()  # literal tokens that are an algorithm or format argument
        self.ddl_to = self._ddl_extent()
        self.ddl_where = self._top_level_where()

    # --- the whole statement

    def judge(self) -> list[tuple[int, int]]:
        """The spans of this statement's secret values (empty when it carries none)."""
        try:
            self._walk()
        except Exception:  # _OverBudget, or a shape this reading gets wrong: fail closed, never raise
            self.marked = self._statement_wide()
            self.keys = {}
            self.prose_keys = set()
        spans = []
        for index in sorted(self.marked):
            token = self.toks[index]
            if token.kind == _STRING and len(token.text) - _prefix(token.text) <= 2:
                continue  # '' is empty, not a secret
            if token.kind == _MARKER:
                continue
            spans.append((token.start, token.end))
        return spans + self.runs

    @property
    def judged(self) -> set[int]:
        """Where the secret names whose use was read cleanly start (each part of a qualified name)."""
        out: set[int] = set()
        for index, ok in self.keys.items():
            if not ok:
                continue
            for part in (self.toks[index], self.toks[self.chain_start.get(index, index)]):
                out.add(part.start + (1 if part.kind in (_QIDENT, _BTICK) else 0))
        return out

    def _statement_wide(self) -> set[int]:
        """Every literal of the statement: the rule for a statement too costly (or too odd) to read."""
        return {i for i, t in enumerate(self.toks) if t.kind in (_STRING, _DOLLAR)}

    def _step(self, cost: int = 1) -> None:
        self.budget[0] -= cost
        if self.budget[0] < 0:
            raise _OverBudget

    def _walk(self) -> None:
        """One pass over the tokens: operators, IDENTIFIED BY, INSERTs, names and calls."""
        toks = self.toks
        self._setting_arguments()
        has_set = False
        i = 0
        while i < self.n:
            self._step()
            token = toks[i]
            word = self.lower[i]
            if word == "set":
                has_set = True
            operator_end = self._operator_end(i, has_set)
            if operator_end:
                self._binding(i, operator_end)
                i = operator_end
                continue
            if word == "identified":
                self._identified(i)
            elif word in ("insert", "replace", "upsert"):
                self._insert(i)
            if token.kind in _NAMES and not (i > 0 and _is_op(toks[i - 1], ".")):
                i = self._name(i)
            i += 1

    def _operator_end(self, i: int, has_set: bool) -> int:
        """The end of a binding operator at ``i`` (``=``, ``LIKE``, ``NOT IN``, ``IS DISTINCT FROM``,
        ``TO`` after ``SET``), or 0 when there is none."""
        token, word = self.toks[i], self.lower[i]
        following = self.lower[i + 1] if i + 1 < self.n else ""
        if token.kind == _OP:
            return i + 1 if token.text in _BINDING_OPS else 0
        if (word in _BINDING_WORDS and i > 0) or (word == "to" and has_set):
            return i + 1
        if (word == "not" and following in _BINDING_WORDS) or (word == "similar" and following == "to"):
            return i + 2
        if word == "is":
            return self._distinct_from(i)
        return 0

    # --- names, calls and juxtaposed values

    def _name(self, i: int) -> int:
        """A name (``a``, ``u.password``, ``"t"."token"``) at ``i``; returns the index of its last part."""
        last = self._chain_end(i)
        token = self.toks[last]
        following = self.toks[last + 1] if last + 1 < self.n else None
        if following is not None and _is_op(following, "(") and token.kind == _IDENT:
            self._call(_name(token).lower(), last + 1)
        if self.names_secret(_name(token)):
            self.keys.setdefault(last, self._clean_follower(last))
            self.chain_start[last] = i
            if following is not None and following.kind in (_STRING, _DOLLAR) and following.start > token.end:
                # PASSWORD 'x', OPTIONS (password 'x'): a value written right after its name.
                self.marked.add(last + 1)
            if following is not None and self.lower[last + 1] == "is" and self._sql_is(last + 1):
                self.prose_keys.add(last)
        return last

    def _sql_is(self, k: int) -> bool:
        """Whether the ``IS`` at ``k`` is SQL: ``IS [NOT] DISTINCT FROM``, or ``COMMENT ON ... IS '...'``."""
        if self._distinct_from(k):
            return True
        # COMMENT ON COLUMN users.token IS '...': the statement's last word is the comment's text.
        comment = self.lower[0] == "comment" and self.n > 1 and self.lower[1] == "on"
        return comment and k + 2 == self.n and self.toks[k + 1].kind == _STRING

    def _clean_follower(self, last: int) -> bool:
        """Whether what follows a secret name is plainly SQL (so the generic rules may leave it alone)."""
        if last + 1 >= self.n:
            return True
        following = self.toks[last + 1]
        if following.kind == _IDENT:
            return True
        if following.kind in (_STRING, _DOLLAR):
            return following.start > self.toks[last].end  # password'x' is not SQL
        if following.kind == _OP and following.text == "::":  # password_hash::text, not password::hunter2
            return last + 2 < self.n and self.lower[last + 2] in _TYPES
        if following.kind == _OP:
            return following.text in (",", ")", "]", "(", ";") or following.text in _BINDING_OPS
        return False

    def _chain_end(self, i: int) -> int:
        toks = self.toks
        while i + 2 < self.n and _is_op(toks[i + 1], ".") and toks[i + 2].kind in _NAMES:
            self._step()
            i += 2
        return i

    def _call(self, function: str, open_index: int) -> None:
        arguments = self._arguments(open_index)
        if function in _SECRET_ARGUMENTS:
            positions = _SECRET_ARGUMENTS[function]
            for position, (a, b) in enumerate(arguments):
                if positions is None or position in positions:
                    self._mark(a, b, mode="literals")
        elif function in _PAIR_FUNCTIONS:
            step = 1 if function == "set_config" else 2
            for position in range(0, len(arguments) - 1, step):
                a, b = arguments[position]
                if b - a == 1 and self.toks[a].kind == _STRING and self._names_secret_literal(a):
                    self._mark(*arguments[position + 1], mode="literals")
                if function == "set_config":
                    break
        elif self.names_secret(function) and function not in _SETTING_ARGUMENTS:
            # set_password('bob', 'x'), verify_api_key('k'): the arguments of a secret-named routine.
            for a, b in arguments:
                self._mark(a, b, mode="literals")

    def _setting_arguments(self) -> None:
        """The algorithm and format arguments (``gen_salt('bf')``), which are never secrets."""
        for i in range(self.n - 1):
            self._step()
            if self.toks[i].kind != _IDENT or not _is_op(self.toks[i + 1], "("):
                continue
            if self.lower[i] not in _SETTING_ARGUMENTS:
                continue
            positions = _SETTING_ARGUMENTS[self.lower[i]]
            for position, (a, b) in enumerate(self._arguments(i + 1)):
                if positions is None or position in positions:
                    self._step(b - a)
                    self.setting.update(range(a, b))

    def _identified(self, i: int) -> None:
        """``IDENTIFIED BY 'x'``, ``IDENTIFIED WITH plugin BY 'x'`` / ``AS 'hash'``, Oracle's ``BY x``."""
        j = i + 1
        while j < min(self.n, i + 4) and self.lower[j] not in ("by", "as"):
            j += 1
        if j >= self.n or self.lower[j] not in ("by", "as"):
            return
        j += 1
        while j < self.n and self.lower[j] in ("password", "values"):
            j += 1
        if j >= self.n or _is_op(self.toks[j], ";"):
            return
        if self.toks[j].kind in (_STRING, _DOLLAR):
            self.marked.add(j)
            return
        # Unquoted (Oracle): the password runs to white space, whatever SQL would make of its characters.
        last = j
        while last + 1 < self.n and self.toks[last + 1].start == self.toks[last].end:
            self._step()
            last += 1
        self.runs.append((self.toks[j].start, self.toks[last].end))

    def _distinct_from(self, i: int) -> int:
        """The end of ``IS [NOT] DISTINCT FROM`` starting at ``i``, or 0."""
        j = i + 1
        if j < self.n and self.lower[j] == "not":
            j += 1
        if j + 1 < self.n and self.lower[j] == "distinct" and self.lower[j + 1] == "from":
            return j + 2
        return 0

    # --- bindings: name op value

    def _binding(self, op: int, value_start: int) -> None:
        """``name <op> value`` at ``op``: the value is a secret when the name is one (or, for
        ``'x' = password``, the other way round)."""
        left = self._left_operand(op)
        secret_left = left < op and self._secret_operand(left, op)
        if not secret_left and not (value_start < self.n and self.toks[value_start].kind in _NAMES):
            return  # the common case, "id = %s": nothing more to read
        right_end = self._expression_end(value_start)
        if self.lower[op] == "between" and right_end < self.n and self.lower[right_end] == "and":
            right_end = self._expression_end(right_end + 1)  # BETWEEN 'a' AND 'b': both
        if secret_left:
            names = [k for k in range(left, op) if k in self.keys or self._is_secret_name(k)]
            if self._in_ddl(op):
                return  # a constraint or a default in DDL: schema, not a value
            if self._row(left, op) and value_start < self.n and _is_op(self.toks[value_start], "("):
                self._positional(self._row_names(left), value_start)
                return
            # "password=~x", "token=4~x": nothing SQL reads on the right, or a value that runs into
            # another comparison; "password: x" is a header or YAML. None is a value SQL would bind.
            unclean = right_end <= value_start or not self._ends_value(right_end) or self.toks[op].text == ":"
            marked = None if unclean else self._mark(value_start, right_end, mode="binding")
            if marked is None:
                for k in names:
                    self.keys[k] = False  # not read cleanly: left to the generic key=value rule
            return
        # 'x' = password: the value on the left.
        if (
            self._chain_end(value_start) == right_end - 1
            and self.names_secret(_name(self.toks[right_end - 1]))
            and all(self.toks[k].kind in (_STRING, _NUMBER, _DOLLAR) for k in range(left, op))
            and left < op
            and not self._in_ddl(op)
        ):
            self.marked.update(range(left, op))

    def _ends_value(self, k: int) -> bool:
        """Whether a value expression may end at ``k``: the statement's end, a comma, a closing bracket,
        or a word that starts the next clause (``WHERE``, ``AND``...)."""
        if k >= self.n:
            return True
        token = self.toks[k]
        if token.kind == _OP:
            return token.text in (",", ")", "]", ";")
        return self.lower[k] in _STOP_WORDS

    def _left_operand(self, op: int) -> int:
        """Where the operand left of ``op`` starts: a name, a call, a literal, with casts and JSON paths."""
        p = op - 1
        for _ in range(8):
            if p < 0:
                return op
            token = self.toks[p]
            if token.kind == _OP and token.text in (")", "]"):
                opener = self.partner.get(p, -1)
                if opener < 0:
                    return op
                p = opener
                if p > 0 and self._function_name(p - 1):
                    p -= 1
            if self.toks[p].kind in _NAMES:
                while p >= 2 and _is_op(self.toks[p - 1], ".") and self.toks[p - 2].kind in _NAMES:
                    p -= 2
            elif self.toks[p].kind not in (_STRING, _NUMBER, _PARAM, _MARKER, _DOLLAR) and not _is_op(
                self.toks[p], "("
            ):
                return op
            if (
                p >= 2
                and self.toks[p - 1].kind == _OP
                and (self.toks[p - 1].text == "::" or self.toks[p - 1].text in _JSON_OPS)
            ):
                p -= 2
                continue
            return p
        return p

    def _secret_member(self, k: int) -> bool:
        """Whether the qualified name starting at ``k`` ends in a secret column (``u.password_hash``)."""
        last = self._chain_end(k)
        return last > k and self.names_secret(_name(self.toks[last]))

    def _function_name(self, k: int) -> bool:
        """Whether the name at ``k``, before a bracket, is a function's (not ``SET (a, b)``, ``IN (...)``)."""
        token = self.toks[k]
        return token.kind in _NAMES and self.lower[k] not in _NOT_FUNCTIONS

    def _secret_operand(self, a: int, b: int) -> bool:
        """Whether the operand ``toks[a:b]`` is a secret: a secret column, or a JSON path to one
        (``data->>'password'``, ``json_extract(data, '$.auth.token')``)."""
        for k in range(a, b):
            self._step()
            token = self.toks[k]
            if token.kind in _NAMES:
                if k + 1 < b and (_is_op(self.toks[k + 1], "(") or _is_op(self.toks[k + 1], ".")):
                    continue  # a function's or a table's name
                if k > 0 and _is_op(self.toks[k - 1], "::"):
                    continue  # a type
                if self.names_secret(_name(token)):
                    return True
            elif token.kind == _STRING and b - a > 1 and self._names_secret_literal(k):
                return True
        return False

    def _is_secret_name(self, k: int) -> bool:
        token = self.toks[k]
        return token.kind in _NAMES and self.names_secret(_name(token))

    def _names_secret_literal(self, k: int) -> bool:
        """Whether a string literal's content is a secret name (``'password'``, ``'{auth,token}'``)."""
        content = self.toks[k].text[_prefix(self.toks[k].text) + 1 : -1]
        if not content or len(content) > 64:
            return False
        return any(self.names_secret(part) for part in re.split(r"[^\w\-]+", content) if part)

    def _expression_end(self, i: int) -> int:
        """Where the value expression starting at ``i`` ends: a stop word, a comma, a closing bracket."""
        while i < self.n:
            self._step()
            token = self.toks[i]
            if token.kind == _OP:
                if token.text in ("(", "["):
                    i = self.partner.get(i, self.n - 1) + 1
                    continue
                if token.text in (")", "]", ",", ";") or token.text in _BINDING_OPS:
                    return i
            elif self.lower[i] in _STOP_WORDS or self.lower[i] in _BINDING_WORDS:
                return i
            i += 1
        return min(i, self.n)

    # --- positions: (a, b) VALUES ('x', 'y')

    def _insert(self, i: int) -> None:
        toks, lower = self.toks, self.lower
        j = i + 1
        if lower[i] == "replace" and not (j < self.n and lower[j] == "into"):
            return  # replace(...), the function
        while j < self.n and lower[j] in _INSERT_MODIFIERS:
            j += 1
        table = ""
        if j < self.n and toks[j].kind in _NAMES and lower[j] not in _NOT_A_TABLE:
            last = self._chain_end(j)
            table = _name(toks[last])
            j = last + 1
            if j < self.n and lower[j] == "as":
                j += 2
            elif j < self.n and toks[j].kind == _IDENT and lower[j] not in _NOT_A_TABLE | {"overriding"}:
                j += 1
        columns: list[str] | None = None
        if j < self.n and _is_op(toks[j], "(") and self._is_name_list(j):
            columns = self._row_names(j)
            j = self.partner.get(j, self.n - 1) + 1
        if j < self.n and lower[j] == "overriding":
            j += 3
        if columns is not None and not any(self.names_secret(c) for c in columns):
            return
        if columns is None and not (table and self.names_secret(table)):
            return
        if j >= self.n:
            return
        if lower[j] == "values":
            self._positional(columns, j + 1)
        elif lower[j] == "select":
            self._select_list(columns, j + 1)
        elif lower[j] == "with" or _is_op(toks[j], "("):
            for k in range(j, self.n):  # a query we do not follow: its literals go
                self._step()
                if toks[k].kind in (_STRING, _DOLLAR, _NUMBER) and k not in self.setting:
                    self.marked.add(k)

    def _positional(self, columns: list[str] | None, j: int) -> None:
        """``(...), (...)`` from ``j``: the items under a secret column (all, when unknown) are secrets."""
        secret = None if columns is None else [self.names_secret(c) for c in columns]
        while j < self.n and _is_op(self.toks[j], "("):
            items = self._arguments(j)
            for position, (a, b) in enumerate(items):
                if secret is None or len(items) != len(secret) or secret[position]:
                    self._mark(a, b, mode="positional")
            j = self.partner.get(j, self.n - 1) + 1
            if j < self.n and _is_op(self.toks[j], ","):
                j += 1
            else:
                break

    def _select_list(self, columns: list[str] | None, j: int) -> None:
        if j < self.n and self.lower[j] in ("distinct", "all"):
            j += 1
        items: list[tuple[int, int]] = []
        start = j
        while j < self.n:
            self._step()
            token = self.toks[j]
            if _is_op(token, "(") or _is_op(token, "["):
                j = self.partner.get(j, self.n - 1) + 1
                continue
            if _is_op(token, ",") or _is_op(token, ")") or self.lower[j] in _STOP_WORDS:
                items.append((start, j))
                if not _is_op(token, ","):
                    break
                start = j + 1
            j += 1
        else:
            items.append((start, j))
        secret = None if columns is None else [self.names_secret(c) for c in columns]
        for position, (a, b) in enumerate(items):
            if secret is None or len(items) != len(secret) or secret[position]:
                self._mark(a, b, mode="positional")

    def _is_name_list(self, open_index: int) -> bool:
        close = self.partner.get(open_index, -1)
        if close < 0:
            return False
        expect_name = True
        for k in range(open_index + 1, close):
            self._step()
            token = self.toks[k]
            if expect_name:
                if token.kind not in _NAMES:
                    return False
                expect_name = False
            elif _is_op(token, ","):
                expect_name = True
            elif not (_is_op(token, ".") and k + 1 < close and self.toks[k + 1].kind in _NAMES):
                return False
            else:
                expect_name = True
        return not expect_name

    def _row(self, left: int, op: int) -> bool:
        return _is_op(self.toks[left], "(") and self.partner.get(left) == op - 1 and self._is_name_list(left)

    def _row_names(self, open_index: int) -> list[str]:
        names: list[str] = []
        for a, b in self._arguments(open_index):
            names.append(_name(self.toks[b - 1]) if b > a else "")
        return names

    # --- values

    def _mark(self, a: int, b: int, mode: str) -> list[int] | None:
        """Mark the values in ``toks[a:b]``; None (nothing marked) when ``binding`` finds it unclean.

        ``literals``: string, dollar-quoted and numeric literals; ``positional``: those and bare words
        (a value position holds no column); ``binding``: literals, but nothing at all when a bare word,
        a stray operator or two glued tokens say the text is not SQL (``password=hunter2!x``).
        """
        found: list[int] = []
        values = 0
        b = min(b, self.n)
        k = a
        while k < b:
            self._step()
            token = self.toks[k]
            kind = token.kind
            if kind == _OP and token.text == "(" and k + 1 < b and self.lower[k + 1] in ("select", "with"):
                k = self.partner.get(k, b - 1) + 1  # a sub-query: its own bindings are judged on their own
                values += 1
                continue
            if mode == "binding" and k > a and token.start == self.toks[k - 1].end:
                previous = self.toks[k - 1]
                if kind != _OP and previous.kind != _OP:
                    return None
            if kind in _LITERALS:
                if kind in (_QIDENT, _QTEXT) and "\\" in token.text:
                    if mode == "binding":
                        return None
                elif k not in self.setting:
                    found.append(k)
            elif kind in (_IDENT, _BTICK):
                if not self._sql_word(k, a):
                    if mode == "binding":
                        return None
                    if mode == "positional":
                        found.append(k)
            elif kind == _WORD or (kind == _PARAM and token.text[0] == "@"):
                # A bare digit-led word; an @name (a password may start with "@", and T-SQL is rare here).
                if mode == "binding":
                    return None
                if mode == "positional":
                    found.append(k)
            elif kind == _OP and token.text not in _VALUE_OPS and mode == "binding":
                return None
            if kind != _OP:
                values += 1
            k += 1
        if mode == "binding" and not values:
            return None  # "apiKey=+~x": operators only, nothing SQL reads as a value
        self.marked.update(found)
        return found

    def _sql_word(self, k: int, a: int) -> bool:
        """Whether a bare word in a value is SQL: a keyword, a known function, a type, a secret column,
        or a row of the upsert (``excluded.password_hash``).

        Anything else may be the secret itself, unquoted, in a log line that only looks like SQL
        ("select failed: password = my.pass.word", "= Abc(123)"): it makes the value unclean, and the
        generic ``key=value`` rule redacts it.
        """
        toks, word = self.toks, self.lower[k]
        if word in _SQL_WORDS:
            return True
        following = toks[k + 1] if k + 1 < self.n else None
        if following is not None and _is_op(following, "("):
            return word in _KNOWN_FUNCTIONS or word in _SECRET_ARGUMENTS or word in _SETTING_ARGUMENTS
        if following is not None and _is_op(following, "."):
            return word in _ROW_QUALIFIERS or self._secret_member(k)
        if k > 0 and _is_op(toks[k - 1], "."):
            return (k >= 2 and self.lower[k - 2] in _ROW_QUALIFIERS) or self.names_secret(_name(toks[k]))
        if k > 0 and (_is_op(toks[k - 1], "::") or self.lower[k - 1] == "as"):
            return word in _TYPES  # $1::bytea, CAST($1 AS bytea)
        # A secret column as an argument: crypt($1, password_hash). Unqualified and on its own
        # ("SET password_hash = password_hash") it is rare SQL, and the same word is an auth scheme in
        # "Authorization: Token x": not read as SQL.
        return self.depth[k] > self.depth[a] and self.names_secret(_name(toks[k]))

    # --- structure

    def _partners(self) -> dict[int, int]:
        """Matching brackets, both ways; an unclosed one runs to the end of the statement."""
        partner: dict[int, int] = {}
        stack: list[int] = []
        depth = self.depth
        for k, token in enumerate(self.toks):
            depth.append(len(stack))
            if token.kind != _OP:
                continue
            if token.text in ("(", "["):
                stack.append(k)
            elif token.text in (")", "]") and stack:
                opener = stack.pop()
                partner[opener] = k
                partner[k] = opener
                depth[k] = len(stack)
        for opener in stack:
            partner[opener] = self.n
        return partner

    def _arguments(self, open_index: int) -> list[tuple[int, int]]:
        """The comma-separated items inside the bracket at ``open_index``, as token ranges."""
        close = min(self.partner.get(open_index, self.n), self.n)
        items: list[tuple[int, int]] = []
        start = open_index + 1
        k = start
        while k < close:
            self._step()
            token = self.toks[k]
            if token.kind == _OP and token.text in ("(", "["):
                k = min(self.partner.get(k, close), close) + 1
                continue
            if _is_op(token, ","):
                items.append((start, k))
                start = k + 1
            k += 1
        if close > open_index + 1 or items:
            items.append((start, close))
        return items

    def _ddl_extent(self) -> int:
        """Where the DDL part of a CREATE/ALTER TABLE, INDEX, DOMAIN... statement ends (0: no DDL).

        Only a statement that starts with the DDL is DDL ("create table failed: password = 'x'" in a
        log line starts with "create" but has its comparison outside any bracket, so it stays a
        binding: see ``_in_ddl``). ``CREATE TABLE ... AS SELECT``: the query is not schema.
        """
        lower = self.lower
        if not self.n or lower[0] not in ("create", "alter"):
            return 0
        j = 1
        while j < self.n and lower[j] in _CREATE_MODIFIERS:
            j += 1
        if j >= self.n or lower[j] not in _DDL_OBJECTS:
            return 0
        for k in range(j, self.n - 1):
            if lower[k] == "as" and (
                lower[k + 1] in ("select", "with", "values", "table")
                or (_is_op(self.toks[k + 1], "(") and k + 2 < self.n and lower[k + 2] in ("select", "with"))
            ):
                return k
        return self.n

    def _in_ddl(self, k: int) -> bool:
        """Whether the comparison at ``k`` is schema: inside the brackets of DDL (``CHECK (token <> '')``,
        ``GENERATED ALWAYS AS (...)``) or in a partial index's ``WHERE``."""
        if k >= self.ddl_to:
            return False
        return self.depth[k] > 0 or self.ddl_where < k

    def _top_level_where(self) -> int:
        for k in range(min(self.ddl_to, self.n)):
            if self.lower[k] == "where" and self.depth[k] == 0:
                return k
        return self.n


def _starts(toks: list[Token], indices: set[int]) -> set[int]:
    """The start positions of the tokens at ``indices``."""
    return {toks[k].start for k in indices}


def _is_op(token: Token, text: str) -> bool:
    return token.kind == _OP and token.text == text


def _name(token: Token) -> str:
    """A name as written, without its quotes."""
    if token.kind == _QIDENT:
        return token.text[1:-1].replace('""', '"') if token.text.endswith('"') else token.text[1:]
    if token.kind == _BTICK:
        return token.text[1:-1].replace("``", "`") if token.text.endswith("`") else token.text[1:]
    return token.text


def _prefix(literal: str) -> int:
    """How many characters come before a string literal's opening quote (``E'``, ``U&'``)."""
    return literal.find("'") if literal[:1] != "'" else 0
