-- corral's demo and test schema: a users table with 10 000 deterministic rows.
-- Re-runnable: the table is created once and missing rows are filled in.
CREATE TABLE IF NOT EXISTS users (
  id bigint PRIMARY KEY,
  name text,
  email text,
  version bigint NOT NULL DEFAULT 1,
  updated_at timestamptz DEFAULT now()
);

-- Fixed timestamps, so a row's JSON is the same on every run (the clusters run with TimeZone UTC).
INSERT INTO users (id, name, email, version, updated_at)
SELECT g, 'user ' || g, 'user' || g || '@example.com', 1,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1 second'
FROM generate_series(1, 10000) AS g
ON CONFLICT (id) DO NOTHING;

ANALYZE users;
