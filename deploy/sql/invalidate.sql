-- corral's invalidation trigger: a changed row sends NOTIFY with payload '<namespace>:<id>', which
-- corral-server (LISTENing on the primary) turns into an invalidation of that cache key.
-- Usage: EXECUTE FUNCTION corral_notify('<namespace>' [, '<channel>', default 'corral_invalidate']).

CREATE OR REPLACE FUNCTION corral_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  namespace text := TG_ARGV[0];
  channel text := coalesce(TG_ARGV[1], 'corral_invalidate');
BEGIN
  IF TG_OP IN ('UPDATE', 'DELETE') THEN
    PERFORM pg_notify(channel, namespace || ':' || OLD.id);
  END IF;
  -- An INSERT (or an UPDATE that changes the id) may replace a cached "not found" for the new id.
  IF TG_OP = 'INSERT' OR (TG_OP = 'UPDATE' AND NEW.id IS DISTINCT FROM OLD.id) THEN
    PERFORM pg_notify(channel, namespace || ':' || NEW.id);
  END IF;
  RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS users_corral_notify ON users;
CREATE TRIGGER users_corral_notify
  AFTER INSERT OR UPDATE OR DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION corral_notify('user');
