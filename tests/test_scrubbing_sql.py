"""Scrubbing SQL: a value bound to a secret-naming column is a secret; DDL that defines one is not.

The false positive this guards against: every start of the example application raised a
``security.sensitive_data`` warning because its ``schema.sql`` defines a ``password_hash`` column, and
the old rule blanked every literal of any statement naming a secret column. An alert that fires on
every start teaches operations to ignore it. Each form below is one row: what the scrubber must turn
it into (secrets) or leave as it is (not secrets), with the number of findings.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.semconv.attributes.db_attributes import DB_QUERY_TEXT

from b2b_otel import semconv as sc
from b2b_otel.scrub import Finding, Scrubber, names_secret, sql
from b2b_otel.scrub import patterns as p
from tests.support.otlp_receiver import OTLPReceiver
from tests.support.timing import best_time
from tests.test_scrub_channels import KEY_FORMS, passwords

REPO = Path(__file__).resolve().parents[1]
M = "[REDACTED:secret_key]"
SECRET = "Zr8kQw2m"


def scrub(text: str) -> tuple[str, list[Finding]]:
    findings: list[Finding] = []
    out = Scrubber().text(text, DB_QUERY_TEXT, findings.append)
    return out, findings


# --------------------------------------------------------------------------- values that are secrets

# (SQL, what it becomes). Each carries one statement with secrets: exactly one finding.
SECRET_STATEMENTS = [
    # by position
    (
        f"INSERT INTO users (name, password_hash) VALUES ('bob', '{SECRET}')",
        f"INSERT INTO users (name, password_hash) VALUES ('bob', '{M}')",
    ),
    (
        f"INSERT INTO users (name, password_hash) VALUES ('bob', '{SECRET}'), ('eve', 'Qx7pLm3n')",
        f"INSERT INTO users (name, password_hash) VALUES ('bob', '{M}'), ('eve', '{M}')",
    ),
    (
        f"insert into public.users as u (name, api_key) values ('bob', '{SECRET}')"
        " on conflict (name) do update set api_key = excluded.api_key",
        f"insert into public.users as u (name, api_key) values ('bob', '{M}')"
        " on conflict (name) do update set api_key = excluded.api_key",
    ),
    (
        f"INSERT INTO users (name, password) SELECT 'bob', '{SECRET}'",
        f"INSERT INTO users (name, password) SELECT 'bob', '{M}'",
    ),
    (
        f"MERGE INTO users u USING src s ON u.id = s.id WHEN NOT MATCHED THEN INSERT (name, password)"
        f" VALUES ('bob', '{SECRET}')",
        f"MERGE INTO users u USING src s ON u.id = s.id WHEN NOT MATCHED THEN INSERT (name, password)"
        f" VALUES ('bob', '{M}')",
    ),
    (
        f"REPLACE INTO users (name, token) VALUES ('bob', '{SECRET}')",
        f"REPLACE INTO users (name, token) VALUES ('bob', '{M}')",
    ),
    (
        f"UPDATE users SET (name, password) = ('bob', '{SECRET}')",
        f"UPDATE users SET (name, password) = ('bob', '{M}')",
    ),
    (
        f"SELECT id FROM users WHERE (name, password) = ('bob', '{SECRET}')",
        f"SELECT id FROM users WHERE (name, password) = ('bob', '{M}')",
    ),
    # by position, when the positions cannot be matched: every value of the row goes
    (
        "INSERT INTO users (name, password) VALUES ('bob')",
        f"INSERT INTO users (name, password) VALUES ('{M}')",
    ),
    (
        f"INSERT INTO user_credentials VALUES ('bob', '{SECRET}')",
        f"INSERT INTO user_credentials VALUES ('{M}', '{M}')",
    ),
    # by an operator
    (
        f"UPDATE users SET password = '{SECRET}' WHERE name = 'bob'",
        f"UPDATE users SET password = '{M}' WHERE name = 'bob'",
    ),
    (
        f"INSERT INTO users SET name = 'bob', password = '{SECRET}'",
        f"INSERT INTO users SET name = 'bob', password = '{M}'",
    ),
    (
        f"SELECT id FROM users WHERE api_key = '{SECRET}'",
        f"SELECT id FROM users WHERE api_key = '{M}'",
    ),
    (
        f"SELECT id FROM users u WHERE u.api_key <> '{SECRET}' AND name = 'bob'",
        f"SELECT id FROM users u WHERE u.api_key <> '{M}' AND name = 'bob'",
    ),
    (
        f"SELECT id FROM users WHERE token IN ('{SECRET}', 'Qx7pLm3n')",
        f"SELECT id FROM users WHERE token IN ('{M}', '{M}')",
    ),
    ("SELECT id FROM users WHERE token LIKE 'Zr8k%'", f"SELECT id FROM users WHERE token LIKE '{M}'"),
    (
        "SELECT id FROM users WHERE token ~* '^Zr8k' AND a !~ 'b'",
        f"SELECT id FROM users WHERE token ~* '{M}' AND a !~ 'b'",
    ),
    (
        f"SELECT id FROM t WHERE password BETWEEN '{SECRET}' AND 'Qx7pLm3n' AND name = 'bob'",
        f"SELECT id FROM t WHERE password BETWEEN '{M}' AND '{M}' AND name = 'bob'",
    ),
    (
        f"SELECT id FROM t WHERE json_extract(data, '$.auth.token') = '{SECRET}'",
        f"SELECT id FROM t WHERE json_extract(data, '$.auth.token') = '{M}'",
    ),
    (
        f"SELECT id FROM users WHERE token IS DISTINCT FROM '{SECRET}'",
        f"SELECT id FROM users WHERE token IS DISTINCT FROM '{M}'",
    ),
    (
        f"SELECT id FROM users WHERE password_hash = ANY(ARRAY['{SECRET}', 'Qx7pLm3n'])",
        f"SELECT id FROM users WHERE password_hash = ANY(ARRAY['{M}', '{M}'])",
    ),
    (f"SELECT id FROM users WHERE '{SECRET}' = api_key", f"SELECT id FROM users WHERE '{M}' = api_key"),
    (
        f"SELECT id FROM users WHERE md5(password) = '{SECRET}'",
        f"SELECT id FROM users WHERE md5(password) = '{M}'",
    ),
    (
        f"SELECT id FROM users WHERE password_hash::text = '{SECRET}'",
        f"SELECT id FROM users WHERE password_hash::text = '{M}'",
    ),
    (
        f"SELECT id FROM events WHERE payload->>'api_key' = '{SECRET}'",
        f"SELECT id FROM events WHERE payload->>'api_key' = '{M}'",
    ),
    (
        f"SELECT id FROM events WHERE payload #>> '{{auth,token}}' = '{SECRET}'",
        f"SELECT id FROM events WHERE payload #>> '{{auth,token}}' = '{M}'",
    ),
    (
        f"SELECT login(username => 'bob', password => '{SECRET}')",
        f"SELECT login(username => 'bob', password => '{M}')",
    ),
    (
        "UPDATE users SET password = 'Zr8k' || 'Qw2m' WHERE id = 1",
        f"UPDATE users SET password = '{M}' || '{M}' WHERE id = 1",
    ),
    (
        "UPDATE users SET pin_secret = 12345678 WHERE id = 1",
        f"UPDATE users SET pin_secret = {M} WHERE id = 1",
    ),
    (
        f'UPDATE users SET password = "{SECRET}" WHERE id = 1',
        f'UPDATE users SET password = "{M}" WHERE id = 1',
    ),
    (
        f"UPDATE users SET password = $t${SECRET}$t$ WHERE id = 1",
        f"UPDATE users SET password = $t${M}$t$ WHERE id = 1",
    ),
    (
        "UPDATE users SET password = E'Zr8k\\'Qw2m' WHERE id = 1",
        f"UPDATE users SET password = E'{M}' WHERE id = 1",
    ),
    (f"UPDATE users SET password = '{SECRET}", f"UPDATE users SET password = '{M}"),  # cut off
    # settings
    (f"SET SESSION my.secret = '{SECRET}'", f"SET SESSION my.secret = '{M}'"),
    (f"SET my.api_key TO '{SECRET}'", f"SET my.api_key TO '{M}'"),
    (f"ALTER ROLE app SET app.token = '{SECRET}'", f"ALTER ROLE app SET app.token = '{M}'"),
    (
        f"SELECT set_config('app.secret', '{SECRET}', false)",
        f"SELECT set_config('app.secret', '{M}', false)",
    ),
    # the DDL forms that do carry a secret
    (f"CREATE USER bob WITH PASSWORD '{SECRET}'", f"CREATE USER bob WITH PASSWORD '{M}'"),
    (
        f"CREATE ROLE bob LOGIN ENCRYPTED PASSWORD '{SECRET}' VALID UNTIL '2030-01-01'",
        f"CREATE ROLE bob LOGIN ENCRYPTED PASSWORD '{M}' VALID UNTIL '2030-01-01'",
    ),
    (f"ALTER ROLE bob PASSWORD '{SECRET}'", f"ALTER ROLE bob PASSWORD '{M}'"),
    (f"ALTER USER bob IDENTIFIED BY '{SECRET}'", f"ALTER USER bob IDENTIFIED BY '{M}'"),
    (f"ALTER USER bob IDENTIFIED BY {SECRET}", f"ALTER USER bob IDENTIFIED BY {M}"),  # Oracle, unquoted
    (
        f"CREATE USER 'bob'@'localhost' IDENTIFIED WITH caching_sha2_password BY '{SECRET}'",
        f"CREATE USER 'bob'@'localhost' IDENTIFIED WITH caching_sha2_password BY '{M}'",
    ),
    (
        f"SET PASSWORD FOR 'bob'@'localhost' = PASSWORD('{SECRET}')",
        f"SET PASSWORD FOR 'bob'@'localhost' = PASSWORD('{M}')",
    ),
    (
        f"CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'db', password '{SECRET}')",
        f"CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'db', password '{M}')",
    ),
    (
        f"CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password '{SECRET}')",
        f"CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password '{M}')",
    ),
    (
        f"DO $$ BEGIN ALTER ROLE bob PASSWORD '{SECRET}'; END $$",
        f"DO $$ BEGIN ALTER ROLE bob PASSWORD '{M}'; END $$",
    ),
    # function arguments
    (f"SELECT crypt('{SECRET}', gen_salt('bf'))", f"SELECT crypt('{M}', gen_salt('bf'))"),
    (
        f"INSERT INTO users (name, pin) VALUES ('bob', crypt('{SECRET}', gen_salt('bf')))",
        f"INSERT INTO users (name, pin) VALUES ('bob', crypt('{M}', gen_salt('bf')))",
    ),
    (
        f"UPDATE users SET password_hash = crypt('{SECRET}', gen_salt('bf')) WHERE id = 7",
        f"UPDATE users SET password_hash = crypt('{M}', gen_salt('bf')) WHERE id = 7",
    ),
    (
        f"SELECT pgp_sym_decrypt(data, '{SECRET}') FROM vault",
        f"SELECT pgp_sym_decrypt(data, '{M}') FROM vault",
    ),
    (
        f"SELECT json_build_object('user', 'bob', 'password', '{SECRET}')",
        f"SELECT json_build_object('user', 'bob', 'password', '{M}')",
    ),
    # a secret-named routine: its parameters' names are unknown, so every literal argument goes
    (f"CALL set_password('bob', '{SECRET}')", f"CALL set_password('{M}', '{M}')"),
    # not read cleanly as SQL: the generic key=value rule redacts the whole value
    (f"select failed for bob: password={SECRET}", f"select failed for bob: password={M}"),
    ("select failed for bob: password = Zr8k!Qw2m", f"select failed for bob: password = {M}"),
    ("UPDATE users SET password = 12ab34cd", f"UPDATE users SET password = {M}"),
    (f"call failed: password: @{SECRET}", f"call failed: password: {M}"),
    (f"set failed: password' = '{SECRET}'", f"set failed: password' = '{M}'"),
    # a bare name assigned to a secret column cannot be told from an unquoted secret: redacted
    (
        "UPDATE users SET password_hash = new_hash FROM staging WHERE users.id = staging.id",
        f"UPDATE users SET password_hash = {M} FROM staging WHERE users.id = staging.id",
    ),
]


@pytest.mark.parametrize(("text", "expected"), SECRET_STATEMENTS)
def test_value_bound_to_a_secret_is_redacted_and_the_rest_kept(text: str, expected: str) -> None:
    out, findings = scrub(text)
    assert out == expected
    assert findings == [Finding(DB_QUERY_TEXT, "secret_key")]


# --------------------------------------------------------------------------- statements without a secret

NOT_SECRET_STATEMENTS = [
    # DDL defining secret-named columns: constraints, defaults and comments are schema
    "CREATE TABLE users (password_hash TEXT NOT NULL DEFAULT '',"
    " tier text CHECK (tier IN ('episodic','semantic')))",
    "CREATE TABLE api_keys (api_key text PRIMARY KEY, token text DEFAULT 'none' CHECK (token <> ''))",
    "CREATE TABLE IF NOT EXISTS sessions (session_id text, token_count int DEFAULT 0)",
    "COMMENT ON COLUMN users.password_hash IS 'bcrypt hash'",
    "COMMENT ON COLUMN users.token IS 'opaque session value'",
    "CREATE INDEX users_by_key ON users (api_key)",
    "CREATE UNIQUE INDEX live_tokens ON sessions (token) WHERE token <> 'revoked'",
    "ALTER TABLE users ADD COLUMN token TEXT DEFAULT 'none'",
    "ALTER TABLE users ALTER COLUMN password_hash SET DEFAULT ''",
    "ALTER TABLE users ADD CONSTRAINT ck CHECK (api_key ~ '^[a-f0-9]+$')",
    "CREATE DOMAIN token_text AS text CHECK (VALUE <> 'x')",
    "GRANT SELECT (password_hash) ON users TO auditor",
    "DROP TABLE IF EXISTS api_keys",
    "COPY users (name, password_hash) FROM STDIN WITH (FORMAT csv)",
    "CREATE TABLE t AS SELECT name FROM users WHERE status = 'active'",
    # the secret column is read, the literal belongs to another column
    "SELECT password_hash FROM users WHERE name = 'bob'",
    "SELECT u.id FROM users u WHERE u.password_hash IS NOT NULL AND u.status = 'active'",
    "SELECT encode(digest(api_key, 'sha256'), 'hex') FROM users WHERE name = 'bob'",
    "SELECT id FROM users WHERE token = (SELECT t FROM tokens WHERE kind = 'refresh')",
    "SELECT password_hash::text FROM users",
    "SELECT id FROM t WHERE lower(kind) = 'password' AND x = 'y'",
    "SELECT id FROM t WHERE kind IN ('token', 'password')",
    # placeholders: nothing to redact
    "SELECT salt, password_hash FROM users WHERE id = %s",
    "UPDATE users SET password_hash = %s WHERE id = %s",
    "UPDATE users SET password_hash = $1 WHERE id = $2",
    "UPDATE users SET password_hash = ? WHERE id = ?",
    "UPDATE users SET password_hash = :password_hash WHERE id = :id",
    "UPDATE users SET password_hash = %(password_hash)s WHERE id = %(id)s",
    "INSERT INTO users (id, password_hash) VALUES (%s, %s)",
    "INSERT INTO users (name, password) VALUES %s",
    "INSERT INTO users (id, password_hash) VALUES ($1, $2)"
    " ON CONFLICT (id) DO UPDATE SET password_hash = EXCLUDED.password_hash",
    "INSERT INTO users (name, password_hash, role) VALUES ($1, $2, 'viewer')",
    "INSERT INTO users (name, password_hash) VALUES ($1, crypt($2, gen_salt('bf')))",
    "UPDATE users SET password_hash = crypt($1, gen_salt('bf', 8)) WHERE id = $2",
    "UPDATE users SET password_hash = decode($1, 'hex'), token = DEFAULT WHERE id = 1",
    "UPDATE users SET password_hash = CAST($1 AS bytea) WHERE id = 1",
    "UPDATE users SET password_hash = NULL WHERE id = 1",
    "SELECT id FROM users WHERE password_hash = crypt($1, password_hash)",
    # settings about secrets, and token counts
    "SET password_encryption = 'scram-sha-256'",
    "SELECT count(*) AS token_count FROM t WHERE model = 'gpt-4o'",
    "UPDATE usage SET input_tokens = 12, output_tokens = 5 WHERE model = 'gpt-4o'",
]


@pytest.mark.parametrize("text", NOT_SECRET_STATEMENTS)
def test_statement_naming_a_secret_column_without_binding_a_value_is_kept(text: str) -> None:
    out, findings = scrub(text)
    assert out == text
    assert findings == []


# --------------------------------------------------------------------------- the example's schema.sql


def example_schema() -> str:
    """The script the example executes (``examples/b2bvalue/store.py``: schema.sql, leading comments cut)."""
    from examples.b2bvalue.store import SCHEMA_FILE, schema_script

    assert SCHEMA_FILE == REPO / "examples" / "b2bvalue" / "schema.sql"
    script = schema_script()
    assert "password_hash bytea NOT NULL" in script and "INSERT INTO benchmarks" in script
    return script


def test_the_example_schema_script_raises_no_finding() -> None:
    script = example_schema()
    out, findings = scrub(script)
    assert findings == []
    assert out == script


def test_the_example_schema_with_a_password_insert_raises_one_finding_for_that_statement() -> None:
    script = example_schema()
    line = (
        f"INSERT INTO users (id, display_name, salt, password_hash) VALUES ('u1', 'Bob', 'salt', '{SECRET}');"
    )
    cut = script.index("CREATE TABLE IF NOT EXISTS user_roles")
    with_insert = f"{script[:cut]}{line}\n\n{script[cut:]}"
    out, findings = scrub(with_insert)
    assert findings == [Finding(DB_QUERY_TEXT, "secret_key")]
    redacted = (
        f"INSERT INTO users (id, display_name, salt, password_hash) VALUES ('u1', 'Bob', 'salt', '{M}');"
    )
    assert out == with_insert.replace(line, redacted)  # every other literal of the script kept


def test_the_example_schema_goes_through_a_span_without_a_finding() -> None:
    """The path of the demo: the statement as a span's ``db.query.text``, through the span exporter."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from b2b_otel.export.scrubbing import ScrubbingSpanExporter

    findings: list[Any] = []
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        SimpleSpanProcessor(ScrubbingSpanExporter(spans, Scrubber(), lambda *a: findings.append(a)))
    )
    script = example_schema()
    provider.get_tracer("test").start_span("CREATE", attributes={DB_QUERY_TEXT: script}).end()
    provider.shutdown()
    (span,) = spans.get_finished_spans()
    assert dict(span.attributes or {})[DB_QUERY_TEXT] == script
    assert findings == []


# --------------------------------------------------------------------------- scripts and other contexts


def test_script_redacts_only_the_statements_that_carry_a_secret() -> None:
    text = (
        "CREATE TABLE users (name text, password_hash text DEFAULT '');\n"
        f"INSERT INTO users (name, password_hash) VALUES ('bob', '{SECRET}');\n"
        "INSERT INTO audit (kind, note) VALUES ('signup', 'bob');\n"
        "UPDATE users SET password_hash = 'Qx7pLm3n' WHERE name = 'eve';\n"
    )
    out, findings = scrub(text)
    assert out == (
        "CREATE TABLE users (name text, password_hash text DEFAULT '');\n"
        f"INSERT INTO users (name, password_hash) VALUES ('bob', '{M}');\n"
        "INSERT INTO audit (kind, note) VALUES ('signup', 'bob');\n"
        f"UPDATE users SET password_hash = '{M}' WHERE name = 'eve';\n"
    )
    assert findings == [Finding(DB_QUERY_TEXT, "secret_key")] * 2  # one per statement


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the generic rules still read inside literals and comments
        (
            f"""INSERT INTO events (payload) VALUES ('{{"password": "{SECRET}"}}')""",
            f"""INSERT INTO events (payload) VALUES ('{{"password": "{M}"}}')""",
        ),
        (
            f"CREATE SUBSCRIPTION sub CONNECTION 'host=db user=rep password={SECRET}' PUBLICATION pub",
            f"CREATE SUBSCRIPTION sub CONNECTION 'host=db user=rep password={M}' PUBLICATION pub",
        ),
        (f"SELECT 1; -- password={SECRET}", f"SELECT 1; -- password={M}"),
        (f"SELECT 1 /* api_key: {SECRET} */", f"SELECT 1 /* api_key: {M} */"),
        (
            f"UPDATE t SET note = 'the password is {SECRET}' WHERE id = 1",
            f"UPDATE t SET note = 'the password is {M}' WHERE id = 1",
        ),
        # prose that merely contains a SQL word stays prose
        (
            f"Traceback (most recent call last):\n  ValueError: db password is {SECRET}",
            f"Traceback (most recent call last):\n  ValueError: db password is {M}",
        ),
        (f'select failed: {{"password": "{SECRET}"}}', f'select failed: {{"password": "{M}"}}'),
        # log lines that start like DDL or hold SQL-shaped secrets are not read as schema or columns
        (f"create table failed: password = '{SECRET}'", f"create table failed: password = '{M}'"),
        (f"comment on pull request: password = '{SECRET}'", f"comment on pull request: password = '{M}'"),
        ("comment on the token is Zr8kQw2m", f"comment on the token is {M}"),
        ("select failed: password = my.pass.word", f"select failed: password = {M}"),
        ("select failed: password = Abc(123)", f"select failed: password = {M}"),
        ("select failed: password::Zr8kQw2m", f"select failed: password:{M}"),
        (
            f'select failed: {{\\"password\\": \\"{SECRET}\\"}}',
            f'select failed: {{\\"password\\": \\"{M}\\"}}',
        ),
    ],
)
def test_secrets_in_literals_comments_and_prose_around_sql_are_still_redacted(
    text: str, expected: str
) -> None:
    out, findings = scrub(text)
    assert out == expected
    assert len(findings) == 1


def test_judge_names_the_spans_of_the_secret_values() -> None:
    text = "UPDATE users SET password = 'x' WHERE name = 'bob'"
    judgement = sql.judge(text, names_secret)
    assert [text[a:b] for a, b, _ in judgement.secrets] == ["'x'"]
    assert text.index("password") in judgement.judged


def test_text_without_a_statement_word_is_not_read_as_sql() -> None:
    assert not sql.looks_like_sql("token_count=12 password_policy=strict")
    assert sql.looks_like_sql("query failed: UPDATE users SET password = 'x'")


# --------------------------------------------------------------------------- keys that name no secret


def registry_attribute_names() -> list[str]:
    """Every attribute, metric and event name of the semantic-convention registry (``semconv.py``)."""
    names = []
    for name, value in vars(sc).items():
        if name.isupper() and isinstance(value, str) and "." in value and " " not in value:
            names.append(value)
    assert sc.GEN_AI_USAGE_INPUT_TOKENS in names and sc.GEN_AI_TOKEN_TYPE in names
    return sorted(set(names))


def test_no_name_of_the_registry_names_a_secret() -> None:
    # gen_ai.usage.input_tokens, gen_ai.token.type, b2b.llm.token.usage, b2b.auth.method, session.id...
    secret = [name for name in registry_attribute_names() if names_secret(name)]
    assert secret == []


GENAI_AND_ABOUT_SECRETS: dict[str, Any] = {
    "gen_ai.usage.input_tokens": 1200,
    "gen_ai.usage.output_tokens": 340,
    "gen_ai.usage.cache_read.input_tokens": 100,
    "gen_ai.usage.reasoning_tokens": 64,
    "gen_ai.request.max_tokens": 512,
    "gen_ai.token.type": "input",
    "b2b.llm.token.usage": 1540,
    "llm.token_count.total": 1540,
    "llm.usage.total_tokens": 1540,
    "token_count": "123",
    "tokens": 4,
    "password_reset.required": "true",
    "password_policy": "strict",
    "password_encryption": "scram-sha-256",
    "secret_name": "db-creds",
    "auth.method": "oauth",
    "b2b.auth.method": "password",
    "token_type": "bearer",
    "session.id": "s-42",
}


def test_attributes_about_secrets_and_llm_token_counts_are_kept() -> None:
    findings: list[Finding] = []
    assert Scrubber().attributes(GENAI_AND_ABOUT_SECRETS, findings.append) is None
    assert findings == []


@pytest.mark.parametrize("key", sorted(GENAI_AND_ABOUT_SECRETS))
def test_key_about_a_secret_is_kept_in_text_forms(key: str) -> None:
    value = GENAI_AND_ABOUT_SECRETS[key]
    for text in (f"{key}={value}", f'{{"{key}": "{value}"}}', f"{key}: {value}"):
        findings: list[Finding] = []
        assert Scrubber().text(text, "log.body", findings.append) == text
        assert findings == []


ABOUT_A_SECRET = {
    "cookie_consent": "accepted",
    "cookie_domain": ".example.com",
    "session_affinity": "node-3",
    "oauth.token_endpoint": "https://login.example.com/oauth2/token",
    "secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf",
    "password_last_changed": "2026-11-30",
    "token_issued_at": "2026-12-04T10:00:00Z",
    "api_key_prefix": "sk-live",
    "api_key_last4": "x9Qz",
    "token_estimate": "1200",
    "auth.passwordless": "enabled",
    "app.secret_source": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf",
}


@pytest.mark.parametrize("key", sorted(ABOUT_A_SECRET))
def test_attribute_about_a_secret_is_kept(key: str) -> None:
    findings: list[Finding] = []
    assert Scrubber().attributes({key: ABOUT_A_SECRET[key]}, findings.append) is None
    assert findings == []


@pytest.mark.parametrize(
    "key", ["session_token", "api_key", "cookie", "token", "client_secret", "db_password", "x-api-key"]
)
def test_attribute_holding_a_secret_is_still_redacted(key: str) -> None:
    findings: list[Finding] = []
    assert Scrubber().attributes({key: SECRET}, findings.append) == {key: M}
    assert findings == [Finding(key, "secret_key")]


@pytest.mark.parametrize(
    "text",
    [
        "token was refreshed",
        "the token was issued at 10:00",
        "secret was created for tenant acme",
        "token is expiring soon",
        "the access token was renewed",
        "api key was generated for tenant acme",
        "the secret was deleted",
        "token was exchanged for a session",
        "the password was verified",
        "session token was found in the cache",
    ],
)
def test_prose_about_what_happened_to_a_secret_is_kept(text: str) -> None:
    findings: list[Finding] = []
    assert Scrubber().text(text, "log.body", findings.append) == text
    assert findings == []


def test_prose_giving_a_secret_is_still_redacted() -> None:
    assert Scrubber().text(f"the password is {SECRET}") == f"the password is {M}"
    assert Scrubber().text(f"token was {SECRET}") == f"token was {M}"
    assert Scrubber().text(f"note secret:{SECRET}") == f"note secret:{M}"  # not an ARN
    assert Scrubber().text(f"secretsmanager_password={SECRET}") == f"secretsmanager_password={M}"


LOGPROBS = {
    "content": [
        {
            "token": " the",
            "logprob": -0.01,
            "bytes": [32, 116],
            "top_logprobs": [{"token": " a", "logprob": -2.3}],
        }
    ]
}


def test_a_language_models_logprob_tokens_are_text_not_credentials() -> None:
    import json

    findings: list[Finding] = []
    assert Scrubber().value("app.response", LOGPROBS, findings.append) is LOGPROBS
    body = json.dumps(LOGPROBS)
    assert Scrubber().text(body, "log.body", findings.append) == body
    assert findings == []
    # A token's text is still searched like any text.
    entry = {"token": "password=Zr8kQw2m", "logprob": -0.5}
    assert Scrubber().value("app.response", entry) == {"token": f"password={M}", "logprob": -0.5}


def test_a_token_without_logprobs_beside_it_is_a_credential() -> None:
    assert Scrubber().value("app.x", {"token": SECRET, "user": "bob"}) == {"token": M, "user": "bob"}
    assert Scrubber().text(f'{{"token": "{SECRET}", "user": "bob"}}') == f'{{"token": "{M}", "user": "bob"}}'


def test_password_encryption_names_a_setting_not_a_secret() -> None:
    assert not p.names_secret("password_encryption")
    assert p.names_secret("encryption_key") and p.names_secret("db_password")


# --------------------------------------------------------------------------- linear time

ADVERSARIAL_SQL: dict[str, Callable[[int], str]] = {
    "open_brackets": lambda n: "update t set password = " + "(" * n,
    "nested_calls": lambda n: "select " + "crypt(" * (n // 6),
    "chained_bindings": lambda n: "select 1 where " + "password = " * (n // 11),
    "bindings_and_literals": lambda n: "update t set " + "password = 'x', " * (n // 16),
    "reverse_bindings": lambda n: "select 1 where " + "'x' = password and " * (n // 19),
    "insert_values": lambda n: "insert into t (a, password) values " + "('a', 'x'), " * (n // 12),
    "insert_columns": lambda n: "insert into t (" + "password, " * (n // 10) + ") values ('x')",
    "row_comparisons": lambda n: "select 1 where (a, password) = " * (n // 30),
    "dollar_quotes": lambda n: "do $$ " * (n // 6),
    "dollar_body": lambda n: "do $$ " + "alter role b password 'x'; " * (n // 27) + "$$",
    "identified": lambda n: "alter user b identified by " + "password " * (n // 9),
    "json_paths": lambda n: "select 1 where " + "d->>'password' = 'x' or " * (n // 24),
    "statements": lambda n: "set password = 'x';" * (n // 19),
    "in_list": lambda n: "select 1 where token in (" + "'x', " * (n // 5),
    "pair_function": lambda n: "select json_build_object(" + "'password', 'x', " * (n // 17),
    "setting_calls": lambda n: "select " + "gen_salt(" * (n // 9),
    "unclosed_string": lambda n: "update t set password = 'x" + "\\'" * (n // 2),
    "qualified_names": lambda n: "update t set " + "a." * (n // 2) + "password = 'x'",
    "unclosed_block_comment": lambda n: "select password /* " + "*" * n,
    "quoted_statements": lambda n: "log " + "'update t set password = 1' " * (n // 29),
    "comments_in_comments": lambda n: "select 1 " + "-- set password = 'x' " * (n // 22),
    "quotes_in_quotes": lambda n: "select " + "\"set '$$update t set token = 1" * (n // 30),
}


@pytest.mark.parametrize("shape", sorted(ADVERSARIAL_SQL))
def test_adversarial_sql_scrubs_in_linear_time(shape: str) -> None:
    scrubber = Scrubber()
    small, large = ADVERSARIAL_SQL[shape](10_000), ADVERSARIAL_SQL[shape](100_000)
    assert len(large) >= 90_000
    scrubber.text(small, "f")
    small_s = best_time(lambda: scrubber.text(small, "f"), repeat=3)
    large_s = best_time(lambda: scrubber.text(large, "f"), repeat=3)
    assert large_s < 50 * small_s + 0.05, (
        f"{shape}: 10 KB {small_s * 1e3:.2f} ms, 100 KB {large_s * 1e3:.2f} ms"
    )


def test_statement_too_costly_to_read_loses_every_literal_rather_than_leak() -> None:
    # crypt() nested 5,000 deep: each call's arguments hold all the calls inside it. Past the
    # reading's budget, the statement loses every literal (it fails closed).
    text = "SELECT " + "crypt(" * 5_000 + f"'{SECRET}'" + ")" * 5_000 + ", 'kept?'"
    started = time.perf_counter()
    out, findings = scrub(text)
    assert time.perf_counter() - started < 10  # bounded, not 5,000 squared
    assert SECRET not in out and "'kept?'" not in out
    assert findings == [Finding(DB_QUERY_TEXT, "secret_key")]


# ------------------------------------------------------------------- property: SQL never hides a secret

# Where a secret written in a common form may sit: after a SQL word (a log line the SQL reading sees),
# in a traceback that quotes it, inside a SQL literal or comment.
SQL_CONTEXTS = [
    "select {}",
    "update failed: {}",
    "call {}",
    "set {}",
    "create table failed: {}",
    "comment on {}",
    "INSERT INTO audit (note) VALUES (1); {}",
    'Traceback (most recent call last):\n  File "x.py", line 3, in f\n'
    '    raise ValueError("{}")\nValueError: {}',
    "SELECT 1; -- {}",
]


@settings(max_examples=300, deadline=None, database=None)
@given(
    secret=passwords,
    form=st.sampled_from(KEY_FORMS),
    context=st.sampled_from(SQL_CONTEXTS),
)
def test_property_a_secret_in_any_form_next_to_sql_words_never_survives(
    secret: str, form: str, context: str
) -> None:
    text = context.replace("{}", form.format(secret))
    out = Scrubber().text(text, "f")
    leaked = sorted(
        {secret[i : i + 6] for i in range(len(secret) - 5)} & {out[i : i + 6] for i in range(len(out))}
    )
    assert not leaked, f"{leaked} of {secret!r} survived in {out!r}"


SECRET_TEMPLATES = [text for text, _ in SECRET_STATEMENTS if SECRET in text]
PREFIXES = ["", "query failed: ", "-- ", 'log: "', "SELECT 1; ", "/* retry */ ", "ERROR:  "]


@settings(max_examples=300, deadline=None, database=None)
@given(secret=passwords, template=st.sampled_from(SECRET_TEMPLATES), prefix=st.sampled_from(PREFIXES))
def test_property_a_secret_bound_in_sql_never_survives_wherever_the_statement_is_quoted(
    secret: str, template: str, prefix: str
) -> None:
    text = prefix + template.replace(SECRET, secret)
    out = Scrubber().text(text, "f")
    leaked = sorted(
        {secret[i : i + 6] for i in range(len(secret) - 5)} & {out[i : i + 6] for i in range(len(out))}
    )
    assert not leaked, f"{leaked} of {secret!r} survived in {out!r}"


# --------------------------------------------------------------------------- the demo path


def test_a_run_of_the_example_without_faults_raises_no_sensitive_data_alert(
    otlp_receiver: OTLPReceiver, pg_url: str, tmp_path: Path
) -> None:
    """The real thing: the example creates its schema over psycopg and exports over OTLP."""
    from tests.test_example_app import run_b2bvalue

    run_b2bvalue(otlp_receiver, pg_url, tmp_path, "--cases", "1")
    spans = otlp_receiver.spans()
    scripts = [s for s in spans if str(s["attributes"].get(DB_QUERY_TEXT, "")).startswith("CREATE TABLE")]
    assert scripts, sorted({s["name"] for s in spans})
    assert scripts[0]["attributes"][DB_QUERY_TEXT] == example_schema()  # exported whole, nothing redacted
    assert [s["name"] for s in spans if s["name"] == f"alert {sc.RULE_SECURITY_SENSITIVE_DATA}"] == []
    rule_id = sc.B2B_RULE_ID
    records = [
        r for r in otlp_receiver.logs() if r["attributes"].get(rule_id) == sc.RULE_SECURITY_SENSITIVE_DATA
    ]
    assert records == []
    security_log = tmp_path / "security.log"
    lines = security_log.read_text().splitlines() if security_log.exists() else []
    assert not [line for line in lines if "sensitive" in line.lower()]
