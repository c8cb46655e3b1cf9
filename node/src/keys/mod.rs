//! Access keys (アクセスキー): the number printed on a registered sheet that the patient hands to
//! the municipality, and that links the electronic sheet to the paper.
//!
//! A key is 11 digits: a 5-digit block, a 5-digit serial in that block, and a Damm check digit,
//! which catches every single mistyped digit and every swap of two neighbouring digits. It is
//! written in groups as `12345-67890-1`; input is accepted with or without separators and with
//! full-width digits.
//!
//! Keys are unique nationwide: the hub leases each block (100,000 serials) to one node only
//! ([`lease_block`], a random free block, recorded in `key_leases` whose primary key is the
//! block), and a node issues only from the blocks leased to it ([`issue`]), offline, asking for
//! another block while it still holds [`RESERVE`] serials. A node with no block left refuses
//! 登録 instead of inventing a key. This module never issues the same key twice: the block's
//! counter is advanced in the same transaction that stores the key, and never lends a block
//! twice.
//!
//! Serials do not follow one another: the n-th key of a block carries serial `P(n)`, where `P` is
//! a keyed permutation of 0..100,000 (a Feistel network over 18 bits, SHA-256 as the round
//! function, cycle-walking back into the range), keyed by a random secret the node draws once
//! and keeps in `node_meta`. Holding one paper therefore tells nothing about the next patient's
//! key beyond its block; every serial is still issued exactly once per block.

use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};

/// The Damm algorithm's quasigroup table (order 10, weakly totally anti-symmetric).
const DAMM: [[u8; 10]; 10] = [
    [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
    [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
    [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
    [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
    [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
    [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
    [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
    [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
    [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
    [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];

/// The Damm check digit of a string of ASCII digits.
pub fn check_digit(digits: &str) -> u8 {
    digits.bytes().fold(0u8, |interim, b| {
        DAMM[interim as usize][(b - b'0') as usize]
    })
}

/// Serials per block.
pub const BLOCK_SIZE: u32 = 100_000;

/// A key as typed, separators (`-`, spaces, full-width too) left out, full-width digits made
/// half-width, and any other character as `x`.
fn typed(input: &str) -> String {
    input
        .chars()
        .filter_map(|c| match c {
            '0'..='9' => Some(c),
            '０'..='９' => char::from_u32(c as u32 - 0xFEE0),
            // Separators as typed on a Japanese keyboard: hyphens, dashes and the long-vowel
            // mark an IME gives for "-" (ー, ｰ), spaces of either width.
            '-' | '－' | '‐' | '‑' | '–' | '—' | '―' | '−' | 'ー' | 'ｰ' | ' ' | '　' => {
                None
            }
            _ => Some('x'),
        })
        .collect()
}

/// An access key, held as its 11 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AccessKey(String);

impl AccessKey {
    /// The key for `serial` in `block`.
    pub fn new(block: u32, serial: u32) -> AccessKey {
        let body = format!("{:05}{:05}", block % BLOCK_SIZE, serial % BLOCK_SIZE);
        let check = check_digit(&body);
        AccessKey(format!("{body}{check}"))
    }

    /// Reads a key as a person typed it; None unless it has 11 digits and a valid check digit.
    pub fn parse(input: &str) -> Option<AccessKey> {
        let digits = typed(input);
        let ok = digits.len() == 11
            && digits.bytes().all(|b| b.is_ascii_digit())
            && check_digit(&digits) == 0;
        ok.then_some(AccessKey(digits))
    }

    /// What is wrong with a typed key that [`AccessKey::parse`] refuses, said for the person who
    /// typed it: empty, not eleven digits (or other characters), or eleven digits whose check
    /// digit does not match (a mistyped or swapped digit).
    pub fn problem(input: &str) -> String {
        let typed = typed(input);
        let digits = typed.bytes().filter(u8::is_ascii_digit).count();
        let other = digits != typed.len();
        // The example is a key that passes its own check digit.
        let example = AccessKey::new(12345, 67890).display();
        if input.trim().is_empty() {
            format!("アクセスキーを入力してください（例: {example}）。")
        } else if other {
            format!(
                "アクセスキーは11桁の数字です（例: {example}）。入力に数字以外の文字が含まれています（数字は{digits}桁）。"
            )
        } else if digits != 11 {
            format!("アクセスキーは11桁の数字です（例: {example}）。入力は{digits}桁です。")
        } else {
            "アクセスキーの数字に誤りがあります（検査用の末尾1桁が合いません）。紙のアクセスキーを確かめてください。"
                .into()
        }
    }

    /// The 11 digits, as stored.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// As printed: `12345-67890-1`.
    pub fn display(&self) -> String {
        format!("{}-{}-{}", &self.0[..5], &self.0[5..10], &self.0[10..])
    }

    /// A stored key (11 digits, as in `sheets.access_key` and `resolutions.access_key`) as
    /// every screen, print, CSV and message shows it: `12345-67890-1`. Anything that is not 11
    /// ASCII digits is returned as it is, so nothing stored is hidden.
    pub fn shown(stored: &str) -> String {
        if stored.len() == 11 && stored.bytes().all(|b| b.is_ascii_digit()) {
            format!("{}-{}-{}", &stored[..5], &stored[5..10], &stored[10..])
        } else {
            stored.to_string()
        }
    }
}

/// Serials a node keeps in reserve: it asks the hub for another block while fewer than this
/// many are left in its leased blocks (arithmetic in docs/security.md, "Access keys").
pub const RESERVE: u64 = 50_000;

/// Issues the next key of this node (`own`: the node id as 32 hex digits) from its leased
/// blocks, oldest lease first; call inside the transaction that stores it. The serial is the
/// block's counter (`key_leases.next_serial`) put through the node's keyed permutation
/// ([`permute`]). `Ok(None)` when no leased block has a serial left: the caller refuses 登録
/// rather than invent a key, and also while the node, restored from a copy, has not heard its
/// blocks' high-water marks from the hub ([`awaits_hub`]).
pub fn issue(conn: &Connection, own: &str) -> rusqlite::Result<Option<AccessKey>> {
    let current: Option<(u32, u32)> = conn
        .query_row(
            "SELECT block, next_serial FROM key_leases
             WHERE node = ?1 AND next_serial < ?2 ORDER BY leased_at, block LIMIT 1",
            rusqlite::params![own, BLOCK_SIZE],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((block, serial)) = current else {
        return Ok(None);
    };
    if awaits_hub(conn)? {
        return Ok(None);
    }
    conn.execute(
        "UPDATE key_leases SET next_serial = ?2 WHERE block = ?1 AND next_serial = ?3",
        rusqlite::params![block, serial + 1, serial],
    )?;
    let secret = permutation_secret(conn)?;
    Ok(Some(AccessKey::new(block, permute(&secret, block, serial))))
}

/// On the hub: issues the next key for a clinic it serves (M18) or a paper it enters (M15)
/// from the blocks it leases to itself (`own`: the hub's node id). When none has a serial
/// left, it first leases itself a free block from the same `key_leases` table it leases every
/// node's from ([`lease_block`]), audited like any lease ([`audit_lease`]), so clinic keys and
/// hospital keys never share a block and stay unique nationwide. `Ok(None)` only when every
/// block is leased. Call inside the registering transaction.
pub fn issue_leasing(
    conn: &Connection,
    own: &str,
    now_ms: i64,
) -> rusqlite::Result<Option<AccessKey>> {
    if let Some(key) = issue(conn, own)? {
        return Ok(Some(key));
    }
    let Some(block) = lease_block(conn, own, now_ms)? else {
        return Ok(None);
    };
    audit_lease(conn, Some(own), block, now_ms)?;
    issue(conn, own)
}

/// Records a lease in the audit log (`key_lease`, ids only): at the hub with the node it went
/// to (`to`), at a node that received it with `None`.
pub fn audit_lease(
    conn: &Connection,
    to: Option<&str>,
    block: u32,
    now_ms: i64,
) -> rusqlite::Result<()> {
    let detail = match to {
        Some(to) => format!("node={to} block={block:05}"),
        None => format!("block={block:05}"),
    };
    crate::audit::append(
        conn,
        crate::audit::Entry {
            at_ms: now_ms,
            user: None,
            action: "key_lease",
            target: None,
            detail: Some(&detail),
        },
    )
}

/// Serials this node (`own`) can still issue from its leased blocks.
pub fn remaining(conn: &Connection, own: &str) -> rusqlite::Result<u64> {
    conn.query_row(
        "SELECT coalesce(sum(?2 - next_serial), 0) FROM key_leases
         WHERE node = ?1 AND next_serial < ?2",
        rusqlite::params![own, BLOCK_SIZE],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n.max(0) as u64)
}

/// Whether this node (`own`) should ask the hub for another block: fewer than [`RESERVE`]
/// serials left.
pub fn needs_block(conn: &Connection, own: &str) -> rusqlite::Result<bool> {
    Ok(remaining(conn, own)? < RESERVE)
}

/// On a node: records the block the hub leased to it (`own`). Recording the same block again
/// changes nothing (a lease answer that arrives twice).
pub fn accept_lease(conn: &Connection, block: u32, own: &str, now_ms: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO key_leases (block, node, leased_at, next_serial)
         VALUES (?1, ?2, ?3, 0)",
        rusqlite::params![block % BLOCK_SIZE, own, now_ms],
    )?;
    Ok(())
}

/// `node_meta` key written by `nsdb restore` into the database it puts in place (value: unix
/// ms of the restore). While it is there the node issues no key ([`issue`] answers `None`,
/// [`awaits_hub`] says why): the restored counters may be behind what the node issued before,
/// and only the hub knows how far each block was used.
pub const RESTORED: &str = "keys_restored_at";

/// Marks the database `conn` as restored from a copy: no key is issued until the hub's
/// high-water marks are adopted ([`adopt_marks`]).
pub fn mark_restored(conn: &Connection, now_ms: i64) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO node_meta (key, value) VALUES (?1, ?2)",
        rusqlite::params![RESTORED, now_ms.to_string()],
    )?;
    Ok(())
}

/// Whether this node was restored from a copy and has not yet heard from the hub how far its
/// blocks were used: 登録 is refused until it has.
pub fn awaits_hub(conn: &Connection) -> rusqlite::Result<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM node_meta WHERE key = ?1", [RESTORED], |_| {
            Ok(())
        })
        .optional()?
        .is_some())
}

/// A block's high-water mark: serials `0..next_serial` of the block's counter have been (or
/// may have been) issued.
pub type BlockMark = (u32, u32);

/// On a node: its counter per leased block (`own`: the node id), as it reports them to the hub.
pub fn counters(conn: &Connection, own: &str) -> rusqlite::Result<Vec<BlockMark>> {
    let mut st = conn.prepare_cached(
        "SELECT block, next_serial FROM key_leases WHERE node = ?1 ORDER BY block",
    )?;
    st.query_map([own], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// On a node: adopts the hub's high-water marks of the blocks leased to it (`own`): each
/// counter becomes at least the hub's mark, a block the hub leased to this node that the
/// database does not know (restored from before the lease) is recorded again, and the restore
/// mark ([`RESTORED`]) is cleared. Returns how many counters moved forward. Call inside a
/// transaction.
pub fn adopt_marks(
    conn: &Connection,
    own: &str,
    marks: &[BlockMark],
    now_ms: i64,
) -> rusqlite::Result<usize> {
    let mut raised = 0;
    for &(block, mark) in marks {
        let mark = mark.min(BLOCK_SIZE);
        conn.execute(
            "INSERT OR IGNORE INTO key_leases (block, node, leased_at, next_serial)
             VALUES (?1, ?2, ?3, 0)",
            rusqlite::params![block % BLOCK_SIZE, own, now_ms],
        )?;
        raised += conn.execute(
            "UPDATE key_leases SET next_serial = ?3
             WHERE block = ?1 AND node = ?2 AND next_serial < ?3",
            rusqlite::params![block % BLOCK_SIZE, own, mark],
        )?;
    }
    conn.execute("DELETE FROM node_meta WHERE key = ?1", [RESTORED])?;
    Ok(raised)
}

/// On the hub: records the counters node `node` reported for its blocks (a block not leased to
/// it is ignored; a mark never goes back) and answers the high-water mark of every block leased
/// to it: the highest counter it ever reported, or, when higher, the number of the block's keys
/// on sheets the hub holds (each issued key advanced the counter once). Call inside a
/// transaction. On the hub `key_leases.next_serial` holds these marks.
pub fn record_marks(
    conn: &Connection,
    node: &str,
    reported: &[BlockMark],
) -> rusqlite::Result<Vec<BlockMark>> {
    for &(block, counter) in reported {
        conn.execute(
            "UPDATE key_leases SET next_serial = ?3
             WHERE block = ?1 AND node = ?2 AND next_serial < ?3",
            rusqlite::params![block, node, counter.min(BLOCK_SIZE)],
        )?;
    }
    let leased: Vec<BlockMark> = {
        let mut st = conn.prepare_cached(
            "SELECT block, next_serial FROM key_leases WHERE node = ?1 ORDER BY block",
        )?;
        st.query_map([node], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?
    };
    let mut on_sheets = conn
        .prepare_cached("SELECT count(*) FROM sheets WHERE access_key >= ?1 AND access_key < ?2")?;
    leased
        .into_iter()
        .map(|(block, reported)| {
            // Keys of block B are the 11-digit strings from "B" up to, not including, "B:".
            let from = format!("{block:05}");
            let to = format!("{block:05}:");
            let seen: u32 = on_sheets.query_row([&from, &to], |r| r.get(0))?;
            Ok((block, reported.max(seen).min(BLOCK_SIZE)))
        })
        .collect()
}

/// Blocks there are: the key's first five digits.
pub const BLOCKS: u32 = 100_000;

/// On the hub: leases a free block to node `to`, chosen at random among the free ones (so the
/// blocks of one node do not follow one another), and records it. Call inside a transaction;
/// the primary key of `key_leases` makes a second lease of one block fail rather than happen.
/// `Ok(None)` when every block is leased.
pub fn lease_block(conn: &Connection, to: &str, now_ms: i64) -> rusqlite::Result<Option<u32>> {
    let taken: i64 = conn.query_row("SELECT count(*) FROM key_leases", [], |r| r.get(0))?;
    if taken >= i64::from(BLOCKS) {
        return Ok(None);
    }
    // While most blocks are free a random draw finds one in a few tries; when few are left,
    // the n-th free one is picked at random instead.
    let mut chosen = None;
    for _ in 0..32 {
        let candidate = rand::random_range(0..BLOCKS);
        let used: bool = conn
            .query_row(
                "SELECT 1 FROM key_leases WHERE block = ?1",
                [candidate],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !used {
            chosen = Some(candidate);
            break;
        }
    }
    let block = match chosen {
        Some(b) => b,
        None => {
            let free = i64::from(BLOCKS) - taken;
            let mut nth = rand::random_range(0..free);
            let mut used = conn.prepare("SELECT block FROM key_leases ORDER BY block")?;
            let used: Vec<u32> = used
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut used = used.into_iter().peekable();
            let mut found = None;
            for b in 0..BLOCKS {
                if used.peek() == Some(&b) {
                    used.next();
                    continue;
                }
                if nth == 0 {
                    found = Some(b);
                    break;
                }
                nth -= 1;
            }
            match found {
                Some(b) => b,
                None => return Ok(None),
            }
        }
    };
    conn.execute(
        "INSERT INTO key_leases (block, node, leased_at, next_serial) VALUES (?1, ?2, ?3, 0)",
        rusqlite::params![block, to, now_ms],
    )?;
    Ok(Some(block))
}

/// The node's secret for the serial permutation: drawn once (32 random bytes) and kept in
/// `node_meta`, so a restored node keeps issuing along the same permutation.
fn permutation_secret(conn: &Connection) -> rusqlite::Result<[u8; 32]> {
    const KEY: &str = "access_key_secret";
    let stored: Option<String> = conn
        .query_row("SELECT value FROM node_meta WHERE key = ?1", [KEY], |r| {
            r.get(0)
        })
        .optional()?;
    if let Some(bytes) = stored
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
    {
        return Ok(bytes);
    }
    let secret: [u8; 32] = rand::random();
    conn.execute(
        "INSERT OR REPLACE INTO node_meta (key, value) VALUES (?1, ?2)",
        rusqlite::params![KEY, hex::encode(secret)],
    )?;
    Ok(secret)
}

/// Bits of the Feistel domain: 2^18 = 262,144 ≥ [`BLOCK_SIZE`], in two halves of 9 bits.
const HALF_BITS: u32 = 9;
const HALF_MASK: u32 = (1 << HALF_BITS) - 1;
const ROUNDS: u8 = 8;

/// The keyed permutation of serials: a bijection of 0..[`BLOCK_SIZE`] onto itself, different
/// for every `secret` and `block`. `n` must be below [`BLOCK_SIZE`].
pub fn permute(secret: &[u8; 32], block: u32, n: u32) -> u32 {
    let mut x = n;
    // Cycle-walking: a permutation of 0..2^18 applied until the value falls back into range
    // stays a bijection of 0..BLOCK_SIZE.
    loop {
        x = feistel(secret, block, x);
        if x < BLOCK_SIZE {
            return x;
        }
    }
}

fn feistel(secret: &[u8; 32], block: u32, x: u32) -> u32 {
    let (mut left, mut right) = (x >> HALF_BITS, x & HALF_MASK);
    for round in 0..ROUNDS {
        let digest = Sha256::new()
            .chain_update(secret)
            .chain_update(block.to_be_bytes())
            .chain_update([round])
            .chain_update(right.to_be_bytes())
            .finalize();
        let f = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) & HALF_MASK;
        (left, right) = (right, left ^ f);
    }
    (left << HALF_BITS) | right
}

#[cfg(test)]
mod tests {

    #[test]
    fn says_what_is_wrong_with_a_typed_key() {
        assert!(AccessKey::problem("").contains("入力してください"));
        assert!(AccessKey::problem("1234").contains("入力は4桁です"));
        assert!(AccessKey::problem("12345-6789x-1").contains("数字以外"));
        assert!(AccessKey::problem("12345-67890-2").contains("末尾1桁が合いません"));
        // The example the messages give is itself a valid key, and the messages read as one
        // sentence each (found when tried: 「…数字以外の文字を含みますです。」).
        let example = AccessKey::new(12345, 67890).display();
        assert!(AccessKey::parse(&example).is_some());
        assert!(AccessKey::problem("1234").contains(&example));
        assert!(!AccessKey::problem("12345-6789x-1").contains("ますです"));
        // Typed with the IME's long-vowel mark, dashes or a minus sign for the hyphens.
        let digits = example.replace('-', "");
        for sep in ['ー', 'ｰ', '－', '‐', '―', '−'] {
            let typed = format!(
                "{}{sep}{}{sep}{}",
                &digits[..5],
                &digits[5..10],
                &digits[10..]
            );
            assert_eq!(
                AccessKey::parse(&typed).map(|k| k.display()),
                Some(example.clone()),
                "{typed}"
            );
        }
    }

    use super::*;

    #[test]
    fn the_check_digit_is_damms() {
        // The algorithm's published example: 572 → 4.
        assert_eq!(check_digit("572"), 4);
        assert_eq!(check_digit("5724"), 0);
    }

    #[test]
    fn every_single_digit_error_and_neighbour_swap_is_caught() {
        let key = AccessKey::new(31_415, 92_653);
        let d: Vec<u8> = key.digits().bytes().collect();
        for i in 0..d.len() {
            for wrong in b'0'..=b'9' {
                if wrong == d[i] {
                    continue;
                }
                let mut t = d.clone();
                t[i] = wrong;
                assert!(AccessKey::parse(std::str::from_utf8(&t).unwrap()).is_none());
            }
            if i + 1 < d.len() && d[i] != d[i + 1] {
                let mut t = d.clone();
                t.swap(i, i + 1);
                assert!(AccessKey::parse(std::str::from_utf8(&t).unwrap()).is_none());
            }
        }
    }

    #[test]
    fn keys_are_read_as_people_type_them() {
        let key = AccessKey::new(1, 2);
        let shown = key.display();
        assert_eq!(shown.len(), 13);
        assert_eq!(AccessKey::parse(&shown), Some(key.clone()));
        let wide: String = key
            .digits()
            .chars()
            .map(|c| char::from_u32(c as u32 + 0xFEE0).unwrap())
            .collect();
        assert_eq!(AccessKey::parse(&wide), Some(key));
        assert!(AccessKey::parse("1234").is_none());
        assert!(AccessKey::parse("0000100002a").is_none());
    }

    const OWN: &str = "0123456789abcdef0123456789abcdef";

    fn node_db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE key_leases (block INTEGER PRIMARY KEY, node TEXT NOT NULL,
                 leased_at INTEGER NOT NULL, next_serial INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE node_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
             CREATE TABLE audit (seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, user_id INTEGER,
                 action TEXT NOT NULL, target TEXT, detail TEXT, prev_hash BLOB NOT NULL,
                 hash BLOB NOT NULL);",
        )
        .unwrap();
        c
    }

    fn serial(k: &AccessKey) -> u32 {
        k.digits()[5..10].parse().unwrap()
    }

    fn block(k: &AccessKey) -> u32 {
        k.digits()[..5].parse().unwrap()
    }

    #[test]
    fn the_hub_keeps_the_highest_mark_and_counts_the_blocks_keys_on_its_sheets() {
        let hub = node_db();
        hub.execute_batch("CREATE TABLE sheets (id TEXT PRIMARY KEY, access_key TEXT UNIQUE);")
            .unwrap();
        let other = "ffffffffffffffffffffffffffffffff";
        accept_lease(&hub, 7, OWN, 1).unwrap();
        accept_lease(&hub, 8, other, 1).unwrap();
        // Three keys of block 7 on sheets, and one of block 70 (not counted).
        for (i, serial) in [5u32, 90_000, 12].into_iter().enumerate() {
            let key = AccessKey::new(7, serial);
            hub.execute(
                "INSERT INTO sheets VALUES (?1, ?2)",
                rusqlite::params![format!("s{i}"), key.digits()],
            )
            .unwrap();
        }
        hub.execute(
            "INSERT INTO sheets VALUES ('x', ?1)",
            [AccessKey::new(70, 1).digits()],
        )
        .unwrap();
        assert_eq!(record_marks(&hub, OWN, &[]).unwrap(), vec![(7, 3)]);
        assert_eq!(record_marks(&hub, OWN, &[(7, 40)]).unwrap(), vec![(7, 40)]);
        // A lower report (a restored node) never lowers the mark; another node's block is not
        // this node's to report.
        assert_eq!(
            record_marks(&hub, OWN, &[(7, 2), (8, 99_999)]).unwrap(),
            vec![(7, 40)]
        );
        assert_eq!(record_marks(&hub, other, &[]).unwrap(), vec![(8, 0)]);
    }

    #[test]
    fn a_restored_node_issues_nothing_until_it_adopts_the_hubs_marks() {
        let c = node_db();
        accept_lease(&c, 7, OWN, 1).unwrap();
        let first = issue(&c, OWN).unwrap().unwrap();
        mark_restored(&c, 2).unwrap();
        assert!(awaits_hub(&c).unwrap());
        assert_eq!(issue(&c, OWN).unwrap(), None);
        // The hub saw five keys of block 7 issued, and a block leased to this node that the
        // restored database forgot.
        assert_eq!(adopt_marks(&c, OWN, &[(7, 5), (9, 3)], 3).unwrap(), 2);
        assert!(!awaits_hub(&c).unwrap());
        assert_eq!(
            counters(&c, OWN).unwrap(),
            vec![(7, 5), (9, 3)],
            "counters move to the marks"
        );
        let next = issue(&c, OWN).unwrap().unwrap();
        assert_ne!(next, first);
        // A lower mark never moves a counter back.
        assert_eq!(adopt_marks(&c, OWN, &[(7, 1)], 4).unwrap(), 0);
        assert_eq!(counters(&c, OWN).unwrap()[0], (7, 6));
    }

    #[test]
    fn a_node_without_a_leased_block_issues_nothing() {
        let c = node_db();
        assert_eq!(issue(&c, OWN).unwrap(), None);
        assert!(needs_block(&c, OWN).unwrap());
        // Another node's lease (as the hub holds them) is not this node's to issue from.
        accept_lease(&c, 5, "ffffffffffffffffffffffffffffffff", 1).unwrap();
        assert_eq!(issue(&c, OWN).unwrap(), None);
    }

    #[test]
    fn the_hub_leases_itself_a_block_for_clinics_and_never_one_a_node_holds() {
        let c = node_db();
        let hospital = "ffffffffffffffffffffffffffffffff";
        let lent = lease_block(&c, hospital, 1).unwrap().unwrap();
        let leases = |c: &Connection| -> Vec<String> {
            c.prepare("SELECT detail FROM audit WHERE action = 'key_lease' ORDER BY seq")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let first = issue_leasing(&c, OWN, 2).unwrap().unwrap();
        let own_block = block(&first);
        assert_ne!(own_block, lent, "never the hospital's block");
        assert_eq!(leases(&c), [format!("node={OWN} block={own_block:05}")]);
        // The next key comes from the same block, without another lease.
        let second = issue_leasing(&c, OWN, 3).unwrap().unwrap();
        assert_eq!(leases(&c).len(), 1);
        assert_eq!(block(&second), own_block);
        assert_ne!(first, second);
        // A used-up block leads to a new one.
        c.execute(
            "UPDATE key_leases SET next_serial = ?1 WHERE block = ?2",
            rusqlite::params![BLOCK_SIZE, own_block],
        )
        .unwrap();
        let third = issue_leasing(&c, OWN, 4).unwrap().unwrap();
        let next = block(&third);
        assert!(next != own_block && next != lent);
        assert_eq!(leases(&c).len(), 2);
    }

    #[test]
    fn issued_keys_are_unique_and_move_to_the_next_leased_block() {
        let c = node_db();
        accept_lease(&c, 7, OWN, 1).unwrap();
        accept_lease(&c, 42_001, OWN, 2).unwrap();
        let a = issue(&c, OWN).unwrap().unwrap();
        let b = issue(&c, OWN).unwrap().unwrap();
        assert_ne!(a, b);
        assert_eq!(&a.digits()[..5], "00007");
        assert_eq!(&b.digits()[..5], "00007");
        c.execute(
            "UPDATE key_leases SET next_serial = ?1 WHERE block = 7",
            [BLOCK_SIZE],
        )
        .unwrap();
        assert_eq!(&issue(&c, OWN).unwrap().unwrap().digits()[..5], "42001");
    }

    #[test]
    fn the_next_key_cannot_be_computed_from_the_last_one() {
        // The fault this prevents: four registrations in a row issued 59397-00000-0, -00001-3,
        // -00002-1, -00003-7.
        let c = node_db();
        accept_lease(&c, 59_397, OWN, 1).unwrap();
        let serials: Vec<u32> = (0..4)
            .map(|_| serial(&issue(&c, OWN).unwrap().unwrap()))
            .collect();
        for pair in serials.windows(2) {
            assert_ne!(pair[1], pair[0] + 1, "consecutive serials {serials:?}");
        }
        // Another node (another secret) issues along another order.
        let other = node_db();
        accept_lease(&other, 59_397, OWN, 1).unwrap();
        let theirs: Vec<u32> = (0..4)
            .map(|_| serial(&issue(&other, OWN).unwrap().unwrap()))
            .collect();
        assert_ne!(serials, theirs);
    }

    #[test]
    fn a_block_issues_every_serial_exactly_once() {
        let secret = [42u8; 32];
        let mut seen = vec![false; BLOCK_SIZE as usize];
        for n in 0..BLOCK_SIZE {
            let s = permute(&secret, 59_397, n);
            assert!(s < BLOCK_SIZE);
            assert!(!seen[s as usize], "serial {s} issued twice");
            seen[s as usize] = true;
        }
    }

    #[test]
    fn the_permutation_survives_a_restart() {
        let c = node_db();
        accept_lease(&c, 3, OWN, 1).unwrap();
        let first = issue(&c, OWN).unwrap().unwrap();
        let secret = permutation_secret(&c).unwrap();
        assert_eq!(serial(&first), permute(&secret, 3, 0));
        assert_eq!(permutation_secret(&c).unwrap(), secret);
    }

    #[test]
    fn the_hub_never_lends_a_block_twice_and_blocks_do_not_follow_one_another() {
        let hub = node_db();
        let mut blocks: Vec<u32> = (0..200)
            .map(|i| lease_block(&hub, &format!("{i:032x}"), i).unwrap().unwrap())
            .collect();
        let leased: i64 = hub
            .query_row("SELECT count(DISTINCT block) FROM key_leases", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(leased, 200);
        let in_order = blocks.windows(2).filter(|w| w[1] == w[0] + 1).count();
        assert!(in_order < 3, "{in_order} leases followed the one before");
        blocks.sort_unstable();
        blocks.dedup();
        assert_eq!(blocks.len(), 200);
        // A second lease of a taken block fails at the primary key.
        assert!(
            hub.execute(
                "INSERT INTO key_leases (block, node, leased_at) VALUES (?1, 'x', 0)",
                [blocks[0]],
            )
            .is_err()
        );
    }

    #[test]
    fn the_last_free_blocks_are_found_and_then_there_are_none() {
        let hub = node_db();
        hub.execute_batch(
            "WITH RECURSIVE n(b) AS (SELECT 0 UNION ALL SELECT b + 1 FROM n WHERE b < 99999)
             INSERT INTO key_leases (block, node, leased_at) SELECT b, 'x', 0 FROM n
             WHERE b NOT IN (17, 99998);",
        )
        .unwrap();
        let mut last = vec![
            lease_block(&hub, OWN, 1).unwrap().unwrap(),
            lease_block(&hub, OWN, 1).unwrap().unwrap(),
        ];
        last.sort_unstable();
        assert_eq!(last, vec![17, 99_998]);
        assert_eq!(lease_block(&hub, OWN, 1).unwrap(), None);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Issuing across the end of a block moves to the next leased block, every key once,
        /// and running out with no block left is `None`, never a reused key.
        #[test]
        fn lease_boundaries(
            blocks in proptest::collection::btree_set(0u32..BLOCKS, 1..4),
            used in proptest::collection::vec(BLOCK_SIZE - 40..=BLOCK_SIZE, 3),
            extra in 0usize..30,
        ) {
            let c = node_db();
            let blocks: Vec<u32> = blocks.into_iter().collect();
            for (i, b) in blocks.iter().enumerate() {
                accept_lease(&c, *b, OWN, i as i64).unwrap();
                c.execute(
                    "UPDATE key_leases SET next_serial = ?2 WHERE block = ?1",
                    [*b, used[i]],
                )
                .unwrap();
            }
            let left: u64 = blocks
                .iter()
                .enumerate()
                .map(|(i, _)| u64::from(BLOCK_SIZE - used[i]))
                .sum();
            proptest::prop_assert_eq!(remaining(&c, OWN).unwrap(), left);
            let secret = permutation_secret(&c).unwrap();
            let mut seen = std::collections::HashSet::new();
            let mut order = Vec::new();
            for _ in 0..left as usize + extra {
                match issue(&c, OWN).unwrap() {
                    Some(k) => {
                        proptest::prop_assert!(AccessKey::parse(k.digits()).is_some());
                        proptest::prop_assert!(blocks.contains(&block(&k)));
                        proptest::prop_assert!(seen.insert(k.clone()), "{} issued twice", k.display());
                        order.push(block(&k));
                    }
                    None => proptest::prop_assert_eq!(seen.len() as u64, left),
                }
            }
            proptest::prop_assert_eq!(seen.len() as u64, left);
            proptest::prop_assert_eq!(remaining(&c, OWN).unwrap(), 0);
            // Blocks are used up in the order they were leased.
            let mut firsts: Vec<u32> = order.clone();
            firsts.dedup();
            let expected: Vec<u32> = blocks
                .iter()
                .enumerate()
                .filter(|(i, _)| used[*i] < BLOCK_SIZE)
                .map(|(_, b)| *b)
                .collect();
            proptest::prop_assert_eq!(firsts, expected);
            // Each key's serial is the permutation of a counter value never used before.
            for k in &seen {
                let b = block(k);
                let i = blocks.iter().position(|x| *x == b).unwrap();
                let n = (used[i]..BLOCK_SIZE).find(|n| permute(&secret, b, *n) == serial(k));
                proptest::prop_assert!(n.is_some());
            }
        }
    }
}
