//! Access keys (アクセスキー): the number printed on a registered sheet that the patient hands to
//! the municipality, and that links the electronic sheet to the paper.
//!
//! A key is 11 digits: a 5-digit block, a 5-digit serial in that block, and a Damm check digit,
//! which catches every single mistyped digit and every swap of two neighbouring digits. It is
//! written in groups as `12345-67890-1`; input is accepted with or without separators and with
//! full-width digits. Keys are issued from the node's own block so registration never waits for
//! the network. This module never issues the same key twice on one node: the counter is advanced
//! in the same transaction that stores the key.
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

/// An access key, held as its 11 digits.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        let digits: String = input
            .chars()
            .filter_map(|c| match c {
                '0'..='9' => Some(c),
                '０'..='９' => char::from_u32(c as u32 - 0xFEE0),
                '-' | '－' | ' ' | '　' => None,
                _ => Some('x'),
            })
            .collect();
        let ok = digits.len() == 11
            && digits.bytes().all(|b| b.is_ascii_digit())
            && check_digit(&digits) == 0;
        ok.then_some(AccessKey(digits))
    }

    /// The 11 digits, as stored.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// As printed: `12345-67890-1`.
    pub fn display(&self) -> String {
        format!("{}-{}-{}", &self.0[..5], &self.0[5..10], &self.0[10..])
    }
}

/// The block a node issues from until the hub leases blocks: derived from the node id, so two
/// nodes rarely share one. (Leased blocks from the hub replace this; see docs/security.md.)
pub fn local_block(node_id: &[u8; 16]) -> u32 {
    u32::from_be_bytes([node_id[0], node_id[1], node_id[2], node_id[3]]) % BLOCK_SIZE
}

/// Issues the next key of this node; call inside the transaction that stores it. The serial is
/// the block's counter put through the node's keyed permutation ([`permute`]).
pub fn issue(conn: &Connection, block: u32) -> rusqlite::Result<AccessKey> {
    let current: Option<(u32, u32)> = conn
        .query_row(
            "SELECT block, next_serial FROM access_key_counter ORDER BY rowid DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (block, serial) = match current {
        Some((b, s)) if s < BLOCK_SIZE => (b, s),
        Some((b, _)) => ((b + 1) % BLOCK_SIZE, 0),
        None => (block, 0),
    };
    conn.execute(
        "INSERT INTO access_key_counter (block, next_serial) VALUES (?1, ?2)
         ON CONFLICT(block) DO UPDATE SET next_serial = excluded.next_serial",
        rusqlite::params![block, serial + 1],
    )?;
    let secret = permutation_secret(conn)?;
    Ok(AccessKey::new(block, permute(&secret, block, serial)))
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

    fn counter_db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE access_key_counter (block INTEGER PRIMARY KEY, next_serial INTEGER NOT NULL);
             CREATE TABLE node_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
        )
        .unwrap();
        c
    }

    fn serial(k: &AccessKey) -> u32 {
        k.digits()[5..10].parse().unwrap()
    }

    #[test]
    fn issued_keys_are_unique_and_roll_into_the_next_block() {
        let c = counter_db();
        let a = issue(&c, 7).unwrap();
        let b = issue(&c, 7).unwrap();
        assert_ne!(a, b);
        assert_eq!(&a.digits()[..5], "00007");
        assert_eq!(&b.digits()[..5], "00007");
        c.execute(
            "UPDATE access_key_counter SET next_serial = ?1",
            [BLOCK_SIZE],
        )
        .unwrap();
        assert_eq!(&issue(&c, 7).unwrap().digits()[..5], "00008");
    }

    #[test]
    fn the_next_key_cannot_be_computed_from_the_last_one() {
        // The fault this prevents: four registrations in a row issued 59397-00000-0, -00001-3,
        // -00002-1, -00003-7.
        let c = counter_db();
        let serials: Vec<u32> = (0..4)
            .map(|_| serial(&issue(&c, 59_397).unwrap()))
            .collect();
        for pair in serials.windows(2) {
            assert_ne!(pair[1], pair[0] + 1, "consecutive serials {serials:?}");
        }
        // Another node (another secret) issues along another order.
        let other = counter_db();
        let theirs: Vec<u32> = (0..4)
            .map(|_| serial(&issue(&other, 59_397).unwrap()))
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
        let c = counter_db();
        let first = issue(&c, 3).unwrap();
        let secret = permutation_secret(&c).unwrap();
        assert_eq!(serial(&first), permute(&secret, 3, 0));
        assert_eq!(permutation_secret(&c).unwrap(), secret);
    }
}
