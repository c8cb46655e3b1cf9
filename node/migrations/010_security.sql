-- Sign-in protection (docs/security.md, "Sign-in").
-- failed_signins: consecutive wrong passwords since the last success or lock;
-- locked_until: Unix ms until which a sign-in is refused after too many (the cool-down lock,
-- apart from `locked`, the administrator's lock).
ALTER TABLE users ADD COLUMN failed_signins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until INTEGER;
-- Sessions end after 30 idle minutes: the last request that used one (Unix ms, kept to a minute).
ALTER TABLE sessions ADD COLUMN last_seen INTEGER NOT NULL DEFAULT 0;
UPDATE sessions SET last_seen = created_at;
