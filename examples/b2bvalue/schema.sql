-- b2bvalue schema: created idempotently inside the run's own PostgreSQL schema (search_path),
-- so concurrent or repeated runs never see each other's rows.

-- Users and their roles: the login check and the authorisation decisions read these.
CREATE TABLE IF NOT EXISTS users (
    id            text PRIMARY KEY,
    display_name  text NOT NULL,
    salt          bytea NOT NULL,
    password_hash bytea NOT NULL,           -- PBKDF2-HMAC-SHA256, never the password itself
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS user_roles (
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('viewer', 'editor', 'analyst', 'approver', 'admin')),
    granted_by text NOT NULL,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, role)
);

CREATE TABLE IF NOT EXISTS login_attempts (
    id             bigserial PRIMARY KEY,
    user_id        text NOT NULL,           -- not a foreign key: attackers try names that do not exist
    client_address inet NOT NULL,
    success        boolean NOT NULL,
    method         text NOT NULL,
    attempted_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS login_attempts_by_client ON login_attempts (client_address, attempted_at);

-- The business cases the workflow builds, approves and publishes.
CREATE TABLE IF NOT EXISTS business_cases (
    id             text PRIMARY KEY,
    account_id     text NOT NULL,
    account_name   text,
    requested_by   text NOT NULL REFERENCES users (id),
    status         text NOT NULL DEFAULT 'draft'
                   CHECK (status IN ('draft', 'built', 'approved', 'rejected', 'published', 'failed')),
    annual_benefit numeric(16, 2),
    npv            numeric(16, 2),
    payback_months numeric(6, 1),
    roi_pct        numeric(10, 2),
    data_quality   numeric(4, 3) CHECK (data_quality BETWEEN 0 AND 1),
    narrative      text,
    decided_by     text REFERENCES users (id),  -- who approved or rejected it
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

-- Episodic memory: what each agent observed or decided, per business case. The CHECK on `kind`
-- is the contract between code and database (the failing_memory fault writes a kind it rejects).
CREATE TABLE IF NOT EXISTS episodic_memory (
    id               bigserial PRIMARY KEY,
    business_case_id text NOT NULL REFERENCES business_cases (id) ON DELETE CASCADE,
    account_id       text NOT NULL,
    agent            text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('integration', 'value_drivers', 'roi', 'narrative')),
    content          jsonb NOT NULL CHECK (jsonb_typeof(content) = 'object'),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS episodic_memory_by_account ON episodic_memory (account_id, created_at DESC);
CREATE INDEX IF NOT EXISTS episodic_memory_by_case ON episodic_memory (business_case_id, kind);

-- Semantic memory: industry benchmarks for each value driver.
CREATE TABLE IF NOT EXISTS benchmarks (
    industry text NOT NULL,
    driver   text NOT NULL,
    value    double precision NOT NULL,
    unit     text NOT NULL,
    source   text NOT NULL,
    PRIMARY KEY (industry, driver)
);

-- Knowledge graph: typed edges between concepts (here: industry taxonomy).
CREATE TABLE IF NOT EXISTS kg_edges (
    subject   text NOT NULL,
    predicate text NOT NULL,
    object    text NOT NULL,
    PRIMARY KEY (subject, predicate, object)
);

INSERT INTO benchmarks (industry, driver, value, unit, source) VALUES
    ('manufacturing', 'revenue_uplift_pct',       0.22, 'percent',     'b2bvalue benchmark study 2024'),
    ('manufacturing', 'opex_reduction_pct',       0.45, 'percent',     'b2bvalue benchmark study 2024'),
    ('manufacturing', 'dso_reduction_days',       5.0,  'days',        'b2bvalue benchmark study 2024'),
    ('manufacturing', 'hours_saved_per_employee', 10.0, 'hours/year',  'b2bvalue benchmark study 2024'),
    ('software',      'revenue_uplift_pct',       0.60, 'percent',     'b2bvalue benchmark study 2024'),
    ('software',      'opex_reduction_pct',       0.30, 'percent',     'b2bvalue benchmark study 2024'),
    ('software',      'dso_reduction_days',       3.0,  'days',        'b2bvalue benchmark study 2024'),
    ('software',      'hours_saved_per_employee', 16.0, 'hours/year',  'b2bvalue benchmark study 2024'),
    ('healthcare',    'revenue_uplift_pct',       0.15, 'percent',     'b2bvalue benchmark study 2024'),
    ('healthcare',    'opex_reduction_pct',       0.50, 'percent',     'b2bvalue benchmark study 2024'),
    ('healthcare',    'dso_reduction_days',       7.0,  'days',        'b2bvalue benchmark study 2024'),
    ('healthcare',    'hours_saved_per_employee', 8.0,  'hours/year',  'b2bvalue benchmark study 2024'),
    ('logistics',     'revenue_uplift_pct',       0.20, 'percent',     'b2bvalue benchmark study 2024'),
    ('logistics',     'opex_reduction_pct',       0.65, 'percent',     'b2bvalue benchmark study 2024'),
    ('logistics',     'dso_reduction_days',       4.0,  'days',        'b2bvalue benchmark study 2024'),
    ('logistics',     'hours_saved_per_employee', 9.0,  'hours/year',  'b2bvalue benchmark study 2024'),
    -- A more specific benchmark overrides its parent industry's for that driver only.
    ('fintech',       'dso_reduction_days',       1.5,  'days',        'fintech practitioner panel 2024')
ON CONFLICT DO NOTHING;

INSERT INTO kg_edges (subject, predicate, object) VALUES
    ('fintech',  'is_a', 'software'),
    ('medtech',  'is_a', 'healthcare'),
    ('agritech', 'is_a', 'manufacturing')
ON CONFLICT DO NOTHING;
