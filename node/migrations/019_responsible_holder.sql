-- The 責任者 role is held by one account per institution (users.responsible), whatever its kind:
-- an account of kind `admin` no longer administers users by its kind alone, so that 責任者変更
-- hands the role over instead of adding a second holder. An institution where nobody holds the
-- flag gives it to its first account of kind `admin` that is not deleted.
UPDATE users SET responsible = 1
WHERE id IN (SELECT min(id) FROM users WHERE kind = 'admin' AND deleted_at IS NULL
             GROUP BY institution)
  AND institution NOT IN (SELECT institution FROM users WHERE responsible = 1);
