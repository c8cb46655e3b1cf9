//! National statistics that may be published: consented sheets counted by year, disease,
//! prefecture, age band, sex and severity, and two-way tables with primary suppression of small
//! cells and secondary suppression so that no suppressed cell follows from the margins.
//!
//! Raw counts live in `research_counts` (built by [`build`]); every table that leaves this
//! module is a [`Published`] one. This module must never hand out an unsuppressed table.

use std::collections::BTreeMap;

use rusqlite::{Connection, params};
use serde::Serialize;

use super::{ResearchError, ScanCounts, rows};

/// Cells (and margins) from 1 to `PRIMARY_BELOW - 1` are suppressed.
pub const PRIMARY_BELOW: u64 = 10;

/// One cell of the count cube.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CountKey {
    pub year: i32,
    pub disease: String,
    pub prefecture: String,
    pub age_band: String,
    pub sex: String,
    pub severity: String,
}

/// A dimension of the cube, as the page and the command line name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Dim {
    Year,
    Disease,
    Prefecture,
    AgeBand,
    Sex,
    Severity,
}

impl Dim {
    pub const ALL: [Dim; 6] = [
        Dim::Year,
        Dim::Disease,
        Dim::Prefecture,
        Dim::AgeBand,
        Dim::Sex,
        Dim::Severity,
    ];

    /// The name in URLs and file names.
    pub fn name(self) -> &'static str {
        match self {
            Dim::Year => "year",
            Dim::Disease => "disease",
            Dim::Prefecture => "prefecture",
            Dim::AgeBand => "age_band",
            Dim::Sex => "sex",
            Dim::Severity => "severity",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Dim::Year => "年",
            Dim::Disease => "疾病",
            Dim::Prefecture => "都道府県",
            Dim::AgeBand => "年齢階級",
            Dim::Sex => "性別",
            Dim::Severity => "重症度基準",
        }
    }

    pub fn parse(s: &str) -> Option<Dim> {
        Dim::ALL.into_iter().find(|d| d.name() == s)
    }

    fn of(self, k: &CountKey) -> String {
        match self {
            Dim::Year => k.year.to_string(),
            Dim::Disease => k.disease.clone(),
            Dim::Prefecture => k.prefecture.clone(),
            Dim::AgeBand => k.age_band.clone(),
            Dim::Sex => match k.sex.as_str() {
                "1" => "男".into(),
                "2" => "女".into(),
                _ => "不明".into(),
            },
            Dim::Severity => k.severity.clone(),
        }
    }
}

/// The count cube: consented sheets per cell.
pub type Cube = BTreeMap<CountKey, u64>;

/// The count cube, from the index `research_rows_counts` alone.
pub(crate) const COUNT_CUBE: &str =
    "SELECT year, disease, prefecture, age_band, sex, severity, count(*)
     FROM research_rows WHERE kept = 1
     GROUP BY year, disease, prefecture, age_band, sex, severity";

/// Counts every kept research row into the cube, grouped by the database. Memory grows with
/// the number of distinct cells, never with sheets. Runs on a read connection; the rows must be
/// up to date (`Node::research_refresh_rows`).
pub fn count(c: &Connection) -> Result<(ScanCounts, Cube), ResearchError> {
    let mut cube = Cube::new();
    let mut kept = 0u64;
    {
        let mut st = c.prepare(COUNT_CUBE)?;
        let mut rows = st.query([])?;
        while let Some(r) = rows.next()? {
            let n = r.get::<_, i64>(6)? as u64;
            kept += n;
            cube.insert(
                CountKey {
                    year: r.get(0)?,
                    disease: r.get(1)?,
                    prefecture: r.get(2)?,
                    age_band: r.get(3)?,
                    sex: r.get(4)?,
                    severity: r.get(5)?,
                },
                n,
            );
        }
    }
    // What was left out, from the rows that say so (the export counts the same way).
    let mut counts = rows::each_left_out(c)?;
    counts.read += kept;
    counts.kept = kept;
    Ok((counts, cube))
}

/// Replaces `research_counts` with `cube`, in one transaction.
pub fn store(c: &mut Connection, cube: &Cube) -> Result<(), ResearchError> {
    let tx = c.transaction()?;
    tx.execute("DELETE FROM research_counts", [])?;
    {
        let mut ins = tx.prepare(
            "INSERT INTO research_counts (year, disease, prefecture, age_band, sex, severity, n)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        for (k, n) in cube {
            ins.execute(params![
                k.year,
                k.disease,
                k.prefecture,
                k.age_band,
                k.sex,
                k.severity,
                *n as i64
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// Which counts a table is made from. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub year: Option<i32>,
    pub disease: Option<String>,
    pub prefecture: Option<String>,
}

/// The stored counts that pass `filter`.
pub fn load(c: &Connection, filter: &Filter) -> Result<Vec<(CountKey, u64)>, ResearchError> {
    let mut st = c.prepare_cached(
        "SELECT year, disease, prefecture, age_band, sex, severity, n FROM research_counts
         WHERE (?1 IS NULL OR year = ?1) AND (?2 IS NULL OR disease = ?2)
           AND (?3 IS NULL OR prefecture = ?3)",
    )?;
    let rows = st.query_map(
        params![filter.year, filter.disease, filter.prefecture],
        |r| {
            Ok((
                CountKey {
                    year: r.get(0)?,
                    disease: r.get(1)?,
                    prefecture: r.get(2)?,
                    age_band: r.get(3)?,
                    sex: r.get(4)?,
                    severity: r.get(5)?,
                },
                r.get::<_, i64>(6)? as u64,
            ))
        },
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The distinct values of the stored counts per dimension (for the page's filters).
pub fn values(c: &Connection, dim: Dim) -> Result<Vec<String>, ResearchError> {
    let col = match dim {
        Dim::Year => "year",
        Dim::Disease => "disease",
        Dim::Prefecture => "prefecture",
        Dim::AgeBand => "age_band",
        Dim::Sex => "sex",
        Dim::Severity => "severity",
    };
    let mut st = c.prepare(&format!(
        "SELECT DISTINCT CAST({col} AS TEXT) FROM research_counts ORDER BY 1"
    ))?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A two-way table of raw counts. Never leaves this module unsuppressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    /// `cells[row][col]`.
    pub cells: Vec<Vec<u64>>,
}

/// Sums the counts into a `rows` × `cols` table.
pub fn table(counts: &[(CountKey, u64)], rows: Dim, cols: Dim) -> Table {
    let mut grid: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut col_set = std::collections::BTreeSet::new();
    for (k, n) in counts {
        let (r, c) = (rows.of(k), cols.of(k));
        col_set.insert(c.clone());
        *grid.entry(r).or_default().entry(c).or_default() += n;
    }
    let cols: Vec<String> = col_set.into_iter().collect();
    let cells = grid
        .values()
        .map(|m| {
            cols.iter()
                .map(|c| m.get(c).copied().unwrap_or(0))
                .collect()
        })
        .collect();
    Table {
        rows: grid.into_keys().collect(),
        cols,
        cells,
    }
}

/// One published cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Cell {
    Shown(u64),
    /// Below [`PRIMARY_BELOW`].
    Primary,
    /// Hidden so that a primary cell cannot be worked out from the margins.
    Secondary,
}

impl Cell {
    pub fn shown(self) -> Option<u64> {
        match self {
            Cell::Shown(n) => Some(n),
            _ => None,
        }
    }

    /// As printed: the number, or `*` (秘匿).
    pub fn text(self) -> String {
        match self {
            Cell::Shown(n) => n.to_string(),
            Cell::Primary | Cell::Secondary => "*".into(),
        }
    }
}

/// A table that may be published: the body with row totals (last column) and column totals
/// (last row; its last entry is the grand total), all suppressed together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Published {
    pub rows: Vec<String>,
    pub cols: Vec<String>,
    /// `(rows + 1) × (cols + 1)`: the last column holds row totals, the last row column totals.
    pub cells: Vec<Vec<Cell>>,
}

impl Published {
    pub fn suppressed(&self) -> usize {
        self.cells
            .iter()
            .flatten()
            .filter(|c| c.shown().is_none())
            .count()
    }

    /// The table as CSV (UTF-8 with BOM), `*` for suppressed cells.
    pub fn csv(&self, row_label: &str) -> String {
        let mut out = String::from("\u{feff}");
        let quote = |s: &str| {
            if s.contains([',', '"', '\n']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s.to_string()
            }
        };
        out.push_str(&quote(row_label));
        for c in &self.cols {
            out.push(',');
            out.push_str(&quote(c));
        }
        out.push_str(",計\n");
        for (i, line) in self.cells.iter().enumerate() {
            let name = self.rows.get(i).map(String::as_str).unwrap_or("計");
            out.push_str(&quote(name));
            for c in line {
                out.push(',');
                out.push_str(&c.text());
            }
            out.push('\n');
        }
        out
    }
}

/// The table with its margins, primary suppression of counts 1–9 (margins too) and secondary
/// suppression until every row and column of the table with margins holds either no suppressed
/// cell or at least two. A line with exactly one hidden entry is solved by subtraction; with two
/// or more, every single line equation has several unknowns.
///
/// The partner chosen for a lone hidden cell is the smallest non-zero body cell of that line (a
/// hidden zero next to a small count would bound it), else the line's total, else a zero.
pub fn suppress(t: &Table) -> Published {
    let (r, c) = (t.rows.len(), t.cols.len());
    // The table with margins.
    let mut v = vec![vec![0u64; c + 1]; r + 1];
    for i in 0..r {
        for j in 0..c {
            let n = t.cells[i][j];
            v[i][j] = n;
            v[i][c] += n;
            v[r][j] += n;
            v[r][c] += n;
        }
    }
    let mut cells: Vec<Vec<Cell>> = v
        .iter()
        .map(|line| {
            line.iter()
                .map(|&n| {
                    if n > 0 && n < PRIMARY_BELOW {
                        Cell::Primary
                    } else {
                        Cell::Shown(n)
                    }
                })
                .collect()
        })
        .collect();
    loop {
        let mut changed = false;
        // Rows (with the totals row), then columns (with the totals column).
        for line in lines(r + 1, c + 1) {
            let hidden = line
                .iter()
                .filter(|&&(i, j)| cells[i][j].shown().is_none())
                .count();
            if hidden != 1 {
                continue;
            }
            let total = *line.last().expect("a line has a total");
            let open: Vec<(usize, usize)> = line
                .iter()
                .copied()
                .filter(|&(i, j)| cells[i][j].shown().is_some())
                .collect();
            let pick = open
                .iter()
                .filter(|&&p| p != total && v[p.0][p.1] > 0)
                .min_by_key(|&&(i, j)| v[i][j])
                .or_else(|| open.iter().find(|&&p| p == total))
                .or_else(|| open.first())
                .copied();
            if let Some((i, j)) = pick {
                cells[i][j] = Cell::Secondary;
                changed = true;
            }
        }
        if changed {
            continue;
        }
        // Lines with two or more hidden entries can still give one away through other lines
        // (a hidden cell that bridges two groups): hide a partner beside any cell the
        // equations determine, and start again.
        let determined = solve(r + 1, c + 1, &|i, j| cells[i][j].shown());
        for (i, j, _) in determined {
            let line_of_row: Vec<(usize, usize)> = (0..=c).map(|k| (i, k)).collect();
            let line_of_col: Vec<(usize, usize)> = (0..=r).map(|k| (k, j)).collect();
            let pick = line_of_row
                .iter()
                .chain(line_of_col.iter())
                .copied()
                .filter(|&(a, b)| cells[a][b].shown().is_some())
                .min_by_key(|&(a, b)| (v[a][b] == 0, a == r || b == c, v[a][b]));
            if let Some((a, b)) = pick {
                cells[a][b] = Cell::Secondary;
                changed = true;
                break;
            }
        }
        if !changed {
            break;
        }
    }
    Published {
        rows: t.rows.clone(),
        cols: t.cols.clone(),
        cells,
    }
}

/// Every row and column of an `h × w` table with margins, each as its cells with the total last.
fn lines(h: usize, w: usize) -> Vec<Vec<(usize, usize)>> {
    let rows = (0..h).map(|i| (0..w).map(|j| (i, j)).collect());
    let cols = (0..w).map(|j| (0..h).map(|i| (i, j)).collect());
    rows.chain(cols).collect()
}

/// What someone holding only a published table can work out: every hidden entry whose value
/// follows from the row and column equations (each line's cells sum to its total) and the
/// shown entries, by Gaussian elimination over all of them at once, so chains and cycles of
/// lines are used, not just a line with a single hidden entry. Returns `(row, col, value)` in
/// the table with margins. [`suppress`] makes this empty; the tests attack with it.
pub fn recover(p: &Published) -> Vec<(usize, usize, u64)> {
    let h = p.cells.len();
    let w = p.cells.first().map_or(0, Vec::len);
    let known = |i: usize, j: usize| p.cells[i][j].shown();
    solve(h, w, &known)
        .into_iter()
        .map(|(i, j, v)| (i, j, v.round().max(0.0) as u64))
        .collect()
}

/// The hidden entries of an `h × w` table with margins that the line equations determine, with
/// their values.
fn solve(
    h: usize,
    w: usize,
    known: &dyn Fn(usize, usize) -> Option<u64>,
) -> Vec<(usize, usize, f64)> {
    let mut index = vec![vec![usize::MAX; w]; h];
    let mut unknowns = Vec::new();
    for (i, line) in index.iter_mut().enumerate() {
        for (j, slot) in line.iter_mut().enumerate() {
            if known(i, j).is_none() {
                *slot = unknowns.len();
                unknowns.push((i, j));
            }
        }
    }
    let n = unknowns.len();
    if n == 0 {
        return Vec::new();
    }
    // One equation per line: the body entries minus the total are zero.
    let mut m: Vec<Vec<f64>> = Vec::new();
    for line in lines(h, w) {
        let mut row = vec![0.0; n + 1];
        let last = line.len() - 1;
        let mut any = false;
        for (k, &(i, j)) in line.iter().enumerate() {
            let coef = if k == last { -1.0 } else { 1.0 };
            match known(i, j) {
                Some(v) => row[n] -= coef * v as f64,
                None => {
                    row[index[i][j]] += coef;
                    any = true;
                }
            }
        }
        if any {
            m.push(row);
        }
    }
    // Reduced row echelon form.
    let mut pivots = Vec::new();
    let mut r = 0;
    for col in 0..n {
        let Some(p) = (r..m.len()).max_by(|&a, &b| m[a][col].abs().total_cmp(&m[b][col].abs()))
        else {
            break;
        };
        if m[p][col].abs() < 1e-9 {
            continue;
        }
        m.swap(r, p);
        let d = m[r][col];
        for x in m[r].iter_mut() {
            *x /= d;
        }
        let pivot_row = m[r].clone();
        for (q, row) in m.iter_mut().enumerate() {
            if q != r && row[col].abs() > 1e-12 {
                let f = row[col];
                for (x, p) in row.iter_mut().zip(&pivot_row) {
                    *x -= f * p;
                }
            }
        }
        pivots.push((r, col));
        r += 1;
        if r == m.len() {
            break;
        }
    }
    // An unknown is determined when its row in the reduced form names no other unknown.
    pivots
        .into_iter()
        .filter(|&(row, col)| (0..n).all(|k| k == col || m[row][k].abs() < 1e-9))
        .map(|(row, col)| (unknowns[col].0, unknowns[col].1, m[row][n]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(cells: Vec<Vec<u64>>) -> Table {
        Table {
            rows: (0..cells.len()).map(|i| format!("r{i}")).collect(),
            cols: (0..cells[0].len()).map(|j| format!("c{j}")).collect(),
            cells,
        }
    }

    #[test]
    fn small_cells_are_hidden_and_large_ones_shown() {
        let p = suppress(&table(vec![vec![3, 40], vec![25, 50]]));
        assert_eq!(p.cells[0][0], Cell::Primary);
        // In a 2 × 2 table every body cell has to go; the totals stay published.
        assert_eq!(p.cells[1][1], Cell::Secondary);
        assert_eq!(p.cells[0][2], Cell::Shown(43));
        assert_eq!(p.cells[2][2], Cell::Shown(118));
        assert_eq!(recover(&p), vec![]);
    }

    #[test]
    fn a_hidden_cell_cannot_be_recovered_from_the_margins() {
        let t = table(vec![
            vec![3, 40, 12, 0],
            vec![25, 50, 7, 31],
            vec![60, 11, 90, 2],
            vec![14, 0, 33, 48],
        ]);
        // Primary suppression alone gives the cells away: the attack works on it.
        let primary_only = Published {
            rows: t.rows.clone(),
            cols: t.cols.clone(),
            cells: {
                let full = suppress(&t);
                full.cells
                    .iter()
                    .enumerate()
                    .map(|(i, l)| {
                        l.iter()
                            .enumerate()
                            .map(|(j, c)| match c {
                                Cell::Secondary => {
                                    let v = if i < 4 && j < 4 {
                                        t.cells[i][j]
                                    } else if i < 4 {
                                        t.cells[i].iter().sum()
                                    } else if j < 4 {
                                        t.cells.iter().map(|l| l[j]).sum()
                                    } else {
                                        t.cells.iter().flatten().sum()
                                    };
                                    Cell::Shown(v)
                                }
                                other => *other,
                            })
                            .collect()
                    })
                    .collect()
            },
        };
        let leaked = recover(&primary_only);
        assert!(leaked.contains(&(0, 0, 3)), "{leaked:?}");
        // With secondary suppression nothing hidden follows from what is shown.
        let p = suppress(&t);
        assert!(p.suppressed() > 3);
        assert_eq!(recover(&p), vec![]);
    }

    #[test]
    fn the_attack_solves_a_cell_that_bridges_two_groups_of_hidden_cells() {
        // Every row and column holds two or more hidden entries, yet (1, 2) follows from the
        // equations taken together: rows 0 and 1 minus columns 0 and 1 leave it alone.
        let body = vec![
            vec![3, 4, 20, 30],
            vec![5, 6, 7, 40],
            vec![50, 60, 8, 9],
            vec![70, 80, 2, 1],
        ];
        let t = table(body.clone());
        let mut p = Published {
            rows: t.rows.clone(),
            cols: t.cols.clone(),
            cells: vec![vec![Cell::Shown(0); 5]; 5],
        };
        for i in 0..5 {
            for j in 0..5 {
                let v = match (i < 4, j < 4) {
                    (true, true) => body[i][j],
                    (true, false) => body[i].iter().sum(),
                    (false, true) => body.iter().map(|l| l[j]).sum(),
                    (false, false) => body.iter().flatten().sum(),
                };
                p.cells[i][j] = Cell::Shown(v);
            }
        }
        for (i, j) in [
            (0, 0),
            (0, 1),
            (1, 0),
            (1, 1),
            (1, 2),
            (2, 2),
            (2, 3),
            (3, 2),
            (3, 3),
        ] {
            p.cells[i][j] = Cell::Primary;
        }
        assert_eq!(recover(&p), vec![(1, 2, 7)]);
    }

    #[test]
    fn no_suppressed_table_gives_a_cell_away() {
        // Many tables of small and large counts, with small rows and columns among them.
        let mut seed: u64 = 0x5eed;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            seed >> 33
        };
        for _ in 0..200 {
            let (h, w) = (1 + next() as usize % 6, 1 + next() as usize % 6);
            let body: Vec<Vec<u64>> = (0..h)
                .map(|_| {
                    (0..w)
                        .map(|_| match next() % 4 {
                            0 => 0,
                            1 => next() % 10,
                            _ => next() % 60,
                        })
                        .collect()
                })
                .collect();
            let p = suppress(&table(body.clone()));
            assert_eq!(recover(&p), vec![], "{body:?} gives a cell away: {p:?}");
        }
    }

    #[test]
    fn a_small_row_total_is_hidden_with_a_partner() {
        let p = suppress(&table(vec![vec![4, 0], vec![30, 40]]));
        // Row 0 totals 4 and is hidden; the column of totals needs a second hidden entry.
        assert_eq!(p.cells[0][2], Cell::Primary);
        assert_eq!(recover(&p), vec![]);
    }
}
