//! Identifiers carried in sheet documents: the node, the author of a change (node + user, which
//! is also the Automerge actor of that change) and the sheet itself.
//!
//! These types only carry and convert bytes and text. This module must never derive node ids
//! from keys, generate ids from randomness or the clock, or accept a malformed id silently.

use std::fmt;
use std::str::FromStr;

use automerge::ActorId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// 16 bytes identifying a node (derived by the caller from its ed25519 key; carried as is).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub [u8; 16]);

/// A node id written as text was not 32 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a node id: a node id is written as exactly 32 hexadecimal digits (0-9, a-f)"
)]
pub struct ParseNodeIdError {
    /// The text that was given.
    pub text: String,
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.0 {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({self})")
    }
}

impl FromStr for NodeId {
    type Err = ParseNodeIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParseNodeIdError {
            text: text.to_owned(),
        };
        let digits = text.as_bytes();
        if digits.len() != 32 {
            return Err(error());
        }
        let mut bytes = [0u8; 16];
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let high = hex_digit(pair[0]).ok_or_else(error)?;
            let low = hex_digit(pair[1]).ok_or_else(error)?;
            *byte = (high << 4) | low;
        }
        Ok(NodeId(bytes))
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Serialize for NodeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for NodeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Length of an author's Automerge actor id: node (16 bytes) then user id (8 bytes, big-endian).
const ACTOR_LEN: usize = 24;

/// Who made a change: which node and which user on that node.
///
/// Encoded as the Automerge actor id of the change, `node (16 bytes) || user (u64 big-endian)`,
/// so every change in a sheet's history is attributable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Author {
    pub node: NodeId,
    pub user: u64,
}

impl Author {
    /// The Automerge actor id under which this author's changes are recorded.
    pub fn to_actor(&self) -> ActorId {
        let mut bytes = [0u8; ACTOR_LEN];
        bytes[..16].copy_from_slice(&self.node.0);
        bytes[16..].copy_from_slice(&self.user.to_be_bytes());
        ActorId::from(bytes)
    }

    /// The author behind an actor id, or `None` if the actor was not written by nsdb
    /// (for example the random actor of a document made by another tool).
    pub fn from_actor(actor: &ActorId) -> Option<Author> {
        let bytes: &[u8; ACTOR_LEN] = actor.to_bytes().try_into().ok()?;
        let (node, user) = bytes.split_at(16);
        Some(Author {
            node: NodeId(node.try_into().ok()?),
            user: u64::from_be_bytes(user.try_into().ok()?),
        })
    }
}

impl fmt::Display for Author {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "user {} on node {}", self.user, self.node)
    }
}

/// Identifies one sheet (one yearly instance of a disease form for one patient).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SheetId(pub uuid::Uuid);

/// A sheet id written as text was not a hyphenated uuid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{text}` is not a sheet id: a sheet id is a hyphenated uuid such as 67e55044-10b1-426f-9247-bb680e5fe0c8"
)]
pub struct ParseSheetIdError {
    /// The text that was given.
    pub text: String,
}

impl SheetId {
    /// A fresh random sheet id (uuid v4).
    pub fn random() -> SheetId {
        SheetId(uuid::Uuid::new_v4())
    }
}

impl fmt::Display for SheetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for SheetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SheetId({self})")
    }
}

impl FromStr for SheetId {
    type Err = ParseSheetIdError;

    /// Accepts only the hyphenated form (either case), so one sheet has one spelling.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = || ParseSheetIdError {
            text: text.to_owned(),
        };
        if text.len() != uuid::fmt::Hyphenated::LENGTH {
            return Err(error());
        }
        uuid::Uuid::try_parse(text)
            .map(SheetId)
            .map_err(|_| error())
    }
}

impl Serialize for SheetId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SheetId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_displays_as_32_hex_digits_and_parses_back() {
        let node = NodeId([
            0x00, 0x01, 0x0a, 0xff, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0,
            0xb0, 0xc0,
        ]);
        let text = node.to_string();
        assert_eq!(text, "00010aff102030405060708090a0b0c0");
        assert_eq!(text.parse::<NodeId>(), Ok(node));
        assert_eq!(text.to_uppercase().parse::<NodeId>(), Ok(node));
    }

    #[test]
    fn node_id_rejects_wrong_length_and_non_hex() {
        assert!("".parse::<NodeId>().is_err());
        assert!("00".parse::<NodeId>().is_err());
        assert!("00010aff102030405060708090a0b0c".parse::<NodeId>().is_err());
        assert!(
            "00010aff102030405060708090a0b0c0ff"
                .parse::<NodeId>()
                .is_err()
        );
        assert!(
            "g0010aff102030405060708090a0b0c0"
                .parse::<NodeId>()
                .is_err()
        );
        // 32 bytes but not 32 ASCII digits
        assert!("あ0010aff102030405060708090a0b0".parse::<NodeId>().is_err());
    }

    #[test]
    fn author_round_trips_through_actor_id() {
        let author = Author {
            node: NodeId([7; 16]),
            user: 0x0102_0304_0506_0708,
        };
        let actor = author.to_actor();
        assert_eq!(actor.to_bytes().len(), 24);
        assert_eq!(&actor.to_bytes()[16..], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(Author::from_actor(&actor), Some(author));
    }

    #[test]
    fn foreign_actor_has_no_author() {
        assert_eq!(Author::from_actor(&ActorId::random()), None);
        assert_eq!(Author::from_actor(&ActorId::from([1u8; 25])), None);
    }

    #[test]
    fn sheet_id_text_and_serde_are_the_hyphenated_uuid() {
        let text = "67e55044-10b1-426f-9247-bb680e5fe0c8";
        let id: SheetId = text.parse().expect("valid id");
        assert_eq!(id.to_string(), text);
        assert_eq!(
            serde_json::to_string(&id).expect("serialises"),
            format!("\"{text}\"")
        );
        let back: SheetId = serde_json::from_str(&format!("\"{text}\"")).expect("deserialises");
        assert_eq!(back, id);
        assert!(
            "67e5504410b1426f9247bb680e5fe0c8"
                .parse::<SheetId>()
                .is_err()
        );
        assert!("not-a-uuid".parse::<SheetId>().is_err());
        assert!(serde_json::from_str::<SheetId>("\"nope\"").is_err());
    }
}
