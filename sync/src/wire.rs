//! The sync wire format: length-prefixed frames, each a postcard-encoded [`Frame`].
//!
//! A frame on the wire is a 4-byte big-endian length, then that many bytes of postcard. Every
//! frame is checked for size before it is read and for shape when it is decoded. This module
//! must never allocate more than [`MAX_FRAME`] for one frame, never panic on what it reads, and
//! never change the meaning of a frame without raising [`PROTOCOL_VERSION`].

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::ids::SheetId;
use crate::summary::Summary;

/// Version of the frames below. A peer with another version is refused with a clear reason.
pub const PROTOCOL_VERSION: u16 = 2;

/// The largest frame either side sends or accepts (8 MiB).
pub const MAX_FRAME: usize = 8 * 1024 * 1024;

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
    /// Ids and heads of the documents this side holds in the buckets where the summaries
    /// differ; `last` marks the final heads frame.
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
    /// the peer may count what it sent as safe.
    Ack { stored: u64 },
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
}

/// Encodes `frame` with its length prefix.
pub fn encode(frame: &Frame) -> Result<Vec<u8>, WireError> {
    let mut out = vec![0u8; 4];
    let body =
        postcard::to_extend(frame, Vec::new()).map_err(|e| WireError::Encode(e.to_string()))?;
    if body.len() > MAX_FRAME {
        return Err(WireError::Oversized { len: body.len() });
    }
    let len = u32::try_from(body.len()).map_err(|_| WireError::Oversized { len: body.len() })?;
    out[..4].copy_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&body);
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

/// Reads one frame; `Ok(None)` when the stream ended cleanly between frames. Returns the frame
/// and the bytes read.
pub async fn read_frame<R: AsyncRead + Unpin>(
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
