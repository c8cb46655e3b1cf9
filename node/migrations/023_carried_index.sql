-- 更新登録 looks for a renewal already open of the same sheet (`carried_from`) before it makes
-- one, inside the write that makes it: without this index the single writer walked every
-- open sheet of the institution at each renewal.
CREATE INDEX sheets_carried ON sheets(carried_from, institution) WHERE carried_from IS NOT NULL;
