-- TOTP second factor, re-authentication, password change (docs/security.md, "Sign-in").
-- totp_secret: the active RFC 6238 secret (raw bytes; NULL = not enrolled); totp_pending: the
-- secret shown on the enrolment screen, active only once a code from it was typed;
-- totp_last_step: the last accepted time step (Unix s / 30), so a code is never used twice.
ALTER TABLE users ADD COLUMN totp_secret BLOB;
ALTER TABLE users ADD COLUMN totp_pending BLOB;
ALTER TABLE users ADD COLUMN totp_last_step INTEGER;
-- 1 when someone else set the password: the user is sent to パスワード変更 after sign-in.
ALTER TABLE users ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
-- When the session's user last gave their password (and code) again: sign-in or 再認証 (Unix ms).
ALTER TABLE sessions ADD COLUMN reauth_at INTEGER NOT NULL DEFAULT 0;
-- Half-signed-in: the password was right, the code not yet typed. Not a session; 5 minutes.
CREATE TABLE sign_in_challenges (
    token_hash BLOB PRIMARY KEY,   -- SHA-256 of the token in the browser's cookie
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL    -- Unix ms
);
