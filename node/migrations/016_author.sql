-- The sheet carries who wrote it (issue 11, item 5).
--
-- sheets.doctor_name: the list's 指定医 as the sheet's own document names it (its 医師の氏名
-- item, else the doctor who registered it), written with every store of the document on every
-- node, so no list reads a local user with the same numeric id. NULL for rows stored before
-- this version: the list reads those from the document.
--
-- users.doctor_number: the doctor's 指定医番号, prefilled into every new sheet the doctor starts;
-- NULL when not known (it is learnt from the first sheet the doctor fills it on).
ALTER TABLE sheets ADD COLUMN doctor_name TEXT;
ALTER TABLE users ADD COLUMN doctor_number TEXT;
