//! The sync wire format: length-prefixed frames, each a postcard-encoded [`Frame`].
//!
//! A frame on the wire is a 4-byte big-endian length, then that many bytes of postcard. Every
//! frame is checked for size before it is read and for shape when it is decoded. A frame whose
//! encoding is larger than [`PIECE`] (a large document, or many changes of one sheet) crosses as
//! a run of [`Frame::Piece`] frames that the reader puts together again, up to
//! [`MAX_ASSEMBLED`]; so one large sheet never makes a frame too large for the other side. This
//! module must never allocate more than [`MAX_FRAME`] for one frame (nor more than
//! [`MAX_ASSEMBLED`] for one frame in pieces), never panic on what it reads, and never change
//! the meaning of a frame without raising [`PROTOCOL_VERSION`].

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::ids::SheetId;
use crate::summary::Summary;

/// Version of the frames below. A peer with another version is refused with a clear reason.
pub const PROTOCOL_VERSION: u16 = 5;

/// The largest frame either side sends or accepts (8 MiB).
pub const MAX_FRAME: usize = 8 * 1024 * 1024;

/// Frames whose encoding is larger than this (1 MiB) are sent in pieces of this size.
pub const PIECE: usize = 1024 * 1024;

/// The largest frame sent in pieces (256 MiB once put together): a sheet's whole document or
/// its changes. A sheet larger than this cannot cross; the sender sets it aside with
/// [`WireError::TooLarge`] and the session goes on with the others.
pub const MAX_ASSEMBLED: usize = 256 * 1024 * 1024;

/// The most entries one [`Frame::Heads`] or [`Frame::Behind`] frame carries, so a list always
/// fits a frame.
pub const HEADS_PER_FRAME: usize = 20_000;

/// A document's heads as raw 32-byte change hashes.
pub type Heads = Vec<[u8; 32]>;

/// One message of a sync session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// First frame of each side: protocol version and a summary of what the side holds.
    /// The hub also lists the sheets opened to this node beyond its own institution.
    Hello {
        version: u16,
        summary: Summary,
        granted: Vec<SheetId>,
    },
    /// Ids and heads of documents, in two runs after [`Frame::Hello`] when the summaries
    /// differ: first the sheets this side changed since they were last settled with the peer,
    /// then (after [`Frame::Rest`]) this side's heads of the sheets the peer listed and of every
    /// sheet in the buckets that still differ; `last` marks the final frame of a run.
    Heads {
        entries: Vec<(SheetId, Heads)>,
        last: bool,
    },
    /// Sheets whose heads from the peer name changes this side does not have: the peer is
    /// ahead on them, or both changed them while apart. Sent after this side's changes for
    /// sheets it is ahead on, before [`Frame::Done`]; `last` marks the final such frame.
    Behind { ids: Vec<SheetId>, last: bool },
    /// A whole document the peer does not hold (saved Automerge bytes).
    Document { id: SheetId, bytes: Vec<u8> },
    /// Changes of a document the peer holds, which it lacks (raw Automerge changes).
    Changes { id: SheetId, changes: Vec<Vec<u8>> },
    /// This side has sent everything it had for the peer.
    Done,
    /// This side has stored everything it received in this session (`stored` documents), so
    /// the peer may count what it sent as safe, except the sheets in `refused` (each with the
    /// reason, in words for the operator), which this side did not take.
    Ack {
        stored: u64,
        refused: Vec<(SheetId, String)>,
    },
    /// One piece of a larger frame's encoding; the pieces of one frame follow each other and
    /// the one with `last` ends it.
    Piece { bytes: Vec<u8>, last: bool },
    /// First and only frame a node sends on a stream that is a request to the hub, not a
    /// session (protocol version 4): `body` is the caller's encoding of what it asks (a key
    /// block, a resolution); the hub answers with one [`Frame::Answer`] and ends the stream.
    Request { version: u16, body: Vec<u8> },
    /// The hub's answer to a [`Frame::Request`], in the caller's encoding.
    Answer { body: Vec<u8> },
    /// What this side holds without the sheets either side listed in the first run of
    /// [`Frame::Heads`] (protocol version 5): first its [`Summary::fingerprint`] alone
    /// (`summary` None); when the two fingerprints differ, both sides send it again with the
    /// summary, whose buckets that differ from the peer's hold the differences the lists missed.
    Rest {
        fingerprint: [u8; 16],
        summary: Option<Summary>,
    },
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("the peer announced a frame of {len} bytes, more than the {MAX_FRAME} allowed")]
    Oversized { len: usize },
    #[error("a frame from the peer is malformed: {0}")]
    Malformed(String),
    #[error("the connection ended in the middle of a frame")]
    Truncated,
    #[error("the connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot encode a frame: {0}")]
    Encode(String),
    #[error(
        "a document of {len} bytes is larger than the {MAX_ASSEMBLED} bytes sync carries for one sheet"
    )]
    TooLarge { len: usize },
    #[error("the peer sent pieces adding up to more than {MAX_ASSEMBLED} bytes")]
    AssembledTooLarge,
}

/// Encodes `frame` with its length prefix; a frame larger than [`PIECE`] becomes a run of
/// [`Frame::Piece`] frames. [`WireError::TooLarge`] when it is larger than [`MAX_ASSEMBLED`]
/// (nothing is written then).
pub fn encode(frame: &Frame) -> Result<Vec<u8>, WireError> {
    let body =
        postcard::to_extend(frame, Vec::new()).map_err(|e| WireError::Encode(e.to_string()))?;
    if body.len() <= PIECE {
        return prefixed(&body);
    }
    if body.len() > MAX_ASSEMBLED {
        return Err(WireError::TooLarge { len: body.len() });
    }
    let mut out = Vec::with_capacity(body.len() + body.len() / PIECE * 16 + 16);
    let mut pieces = body.chunks(PIECE).peekable();
    while let Some(piece) = pieces.next() {
        let piece = Frame::Piece {
            bytes: piece.to_vec(),
            last: pieces.peek().is_none(),
        };
        let encoded = postcard::to_extend(&piece, Vec::new())
            .map_err(|e| WireError::Encode(e.to_string()))?;
        out.extend_from_slice(&prefixed(&encoded)?);
    }
    Ok(out)
}

fn prefixed(body: &[u8]) -> Result<Vec<u8>, WireError> {
    if body.len() > MAX_FRAME {
        return Err(WireError::Oversized { len: body.len() });
    }
    let len = u32::try_from(body.len()).map_err(|_| WireError::Oversized { len: body.len() })?;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Decodes one frame body (without its length prefix); trailing bytes are refused.
pub fn decode(body: &[u8]) -> Result<Frame, WireError> {
    let (frame, rest) = postcard::take_from_bytes::<Frame>(body)
        .map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(format!(
            "{} bytes after the end of the frame",
            rest.len()
        )));
    }
    Ok(frame)
}

/// Writes one frame; returns the bytes written.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frame: &Frame,
) -> Result<usize, WireError> {
    let bytes = encode(frame)?;
    writer.write_all(&bytes).await?;
    Ok(bytes.len())
}

/// Reads one frame, putting a frame sent in pieces together again; `Ok(None)` when the stream
/// ended cleanly between frames. Returns the frame and the bytes read.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<(Frame, usize)>, WireError> {
    read_frame_with(reader, |_| {}).await
}

/// [`read_frame`], calling `progress` with the bytes of each frame or piece as it arrives (so a
/// caller can tell a large frame arriving slowly from a stalled peer).
pub async fn read_frame_with<R: AsyncRead + Unpin>(
    reader: &mut R,
    mut progress: impl FnMut(usize),
) -> Result<Option<(Frame, usize)>, WireError> {
    let Some((frame, mut read)) = read_one(reader).await? else {
        return Ok(None);
    };
    let Frame::Piece { bytes, mut last } = frame else {
        return Ok(Some((frame, read)));
    };
    progress(read);
    let mut assembled = bytes;
    while !last {
        match read_one(reader).await? {
            None => return Err(WireError::Truncated),
            Some((Frame::Piece { bytes, last: l }, n)) => {
                progress(n);
                if assembled.len() + bytes.len() > MAX_ASSEMBLED {
                    return Err(WireError::AssembledTooLarge);
                }
                assembled.extend_from_slice(&bytes);
                read += n;
                last = l;
            }
            Some(_) => {
                return Err(WireError::Malformed(
                    "a frame came between the pieces of another".into(),
                ));
            }
        }
    }
    match decode(&assembled)? {
        Frame::Piece { .. } => Err(WireError::Malformed("a piece inside a piece".into())),
        frame => Ok(Some((frame, read))),
    }
}

async fn read_one<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<(Frame, usize)>, WireError> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = reader.read(&mut prefix[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(WireError::Truncated)
            };
        }
        got += n;
    }
    let len = u32::from_be_bytes(prefix) as usize;
    if len > MAX_FRAME {
        return Err(WireError::Oversized { len });
    }
    let mut body = vec![0u8; len];
    reader
        .read_exact(&mut body)
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => WireError::Truncated,
            _ => WireError::Io(e),
        })?;
    Ok(Some((decode(&body)?, len + 4)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Frame {
        Frame::Changes {
            id: SheetId::random(),
            changes: vec![vec![1, 2, 3], vec![]],
        }
    }

    #[tokio::test]
    async fn frames_round_trip_through_a_stream() {
        let frames = vec![sample(), Frame::Done];
        let mut buf = Vec::new();
        for f in &frames {
            write_frame(&mut buf, f).await.expect("writes");
        }
        let mut reader = &buf[..];
        for f in &frames {
            let (got, _) = read_frame(&mut reader)
                .await
                .expect("reads")
                .expect("a frame");
            assert_eq!(&got, f);
        }
        assert!(read_frame(&mut reader).await.expect("clean end").is_none());
    }

    #[tokio::test]
    async fn a_frame_larger_than_a_piece_crosses_in_pieces_no_frame_over_the_limit() {
        // 12 MiB of changes of one sheet: more than one frame may carry.
        let big = Frame::Changes {
            id: SheetId::random(),
            changes: (0..6).map(|i| vec![i as u8; 2 * 1024 * 1024]).collect(),
        };
        let mut buf = Vec::new();
        write_frame(&mut buf, &big).await.expect("writes");
        write_frame(&mut buf, &Frame::Done).await.expect("writes");
        // Every frame on the wire is within a piece (plus its framing).
        let mut at = 0;
        let mut frames = 0;
        while at < buf.len() {
            let len = u32::from_be_bytes(buf[at..at + 4].try_into().expect("4")) as usize;
            assert!(len <= PIECE + 64, "frame of {len} bytes");
            at += 4 + len;
            frames += 1;
        }
        assert!(frames > 12, "{frames} frames");
        let mut reader = &buf[..];
        let (got, n) = read_frame(&mut reader)
            .await
            .expect("reads")
            .expect("frame");
        assert_eq!(got, big);
        assert!(n > 12 * 1024 * 1024);
        let (got, _) = read_frame(&mut reader)
            .await
            .expect("reads")
            .expect("frame");
        assert_eq!(got, Frame::Done);

        // Pieces cut short, or another frame in the middle, are errors.
        let mut cut = Vec::new();
        write_frame(&mut cut, &big).await.expect("writes");
        cut.truncate(PIECE * 3);
        assert!(read_frame(&mut &cut[..]).await.is_err());
        let mut mixed = encode(&Frame::Piece {
            bytes: vec![1; 10],
            last: false,
        })
        .expect("encodes");
        mixed.extend(encode(&Frame::Done).expect("encodes"));
        assert!(matches!(
            read_frame(&mut &mixed[..]).await,
            Err(WireError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn oversized_truncated_and_garbage_frames_are_errors() {
        let huge = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(
            read_frame(&mut &huge[..]).await,
            Err(WireError::Oversized { .. })
        ));
        let bytes = encode(&sample()).expect("encodes");
        for cut in 1..bytes.len() {
            assert!(
                read_frame(&mut &bytes[..cut]).await.is_err(),
                "cut at {cut}"
            );
        }
        let garbage = [0, 0, 0, 3, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut &garbage[..]).await,
            Err(WireError::Malformed(_))
        ));
        let mut trailing = encode(&Frame::Done).expect("encodes");
        trailing[3] += 1;
        trailing.push(0);
        assert!(matches!(
            read_frame(&mut &trailing[..]).await,
            Err(WireError::Malformed(_))
        ));
    }
}
