//! Access keys (アクセスキー): the number printed on a registered sheet that the patient hands to
//! the municipality, and that links the electronic sheet to the paper.
//!
//! A key is 11 digits: a 5-digit block, a 5-digit serial in that block, and a Damm check digit,
//! which catches every single mistyped digit and every swap of two neighbouring digits. It is
//! written in groups as `12345-67890-1`; input is accepted with or without separators and with
//! full-width digits. Keys are issued from the node's own block so registration never waits for
//! the network. This module never issues the same key twice on one node: the counter is advanced
//! in the same transaction that stores the key.

use rusqlite::{Connection, OptionalExtension};

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

/// Issues the next key of this node; call inside the transaction that stores it.
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
    Ok(AccessKey::new(block, serial))
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

    #[test]
    fn issued_keys_are_unique_and_roll_into_the_next_block() {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch(
            "CREATE TABLE access_key_counter (block INTEGER PRIMARY KEY, next_serial INTEGER NOT NULL);",
        )
        .unwrap();
        let a = issue(&c, 7).unwrap();
        let b = issue(&c, 7).unwrap();
        assert_ne!(a, b);
        assert_eq!(&a.digits()[..10], "0000700000");
        assert_eq!(&b.digits()[..10], "0000700001");
        c.execute(
            "UPDATE access_key_counter SET next_serial = ?1",
            [BLOCK_SIZE],
        )
        .unwrap();
        assert_eq!(&issue(&c, 7).unwrap().digits()[..10], "0000800000");
    }
}
