-- The list's name search by prefix with the spaces left out (a family and given name typed
-- without the space between them finds the name stored with it), answered from indexes: the
-- expressions are the ones `Node::list_sheets` compares, and each index holds the name, the
-- list's order and the id, so neither the count nor the page's ids read the table (whose rows
-- hold the sheet documents).
CREATE INDEX sheets_kana_joined ON sheets(
    institution, replace(replace(name_kana, ' ', ''), '　', ''), updated_at, id, name_kana);
CREATE INDEX sheets_name_joined ON sheets(
    institution, replace(replace(name, ' ', ''), '　', ''), updated_at, id, name);
