//! Room on the data directory's file system, as the health check, the metrics and `nsdb doctor`
//! see it: the free space (`fs4::available_space`, what an unprivileged writer may still use)
//! against the configured minimum (`min_free_disk_mib`), and whether a write met a full disk
//! within the last [`DISK_FULL_WINDOW`]. It only measures; it must never write or delete a file
//! to make room.

use std::path::Path;
use std::time::Duration;

/// The minimum free space (MiB) when the config does not give `min_free_disk_mib`: 1 GiB.
pub const DEFAULT_MIN_FREE_MIB: u64 = 1024;

/// How long a write refused for a full disk keeps the node `degraded`: 10 minutes.
pub const DISK_FULL_WINDOW: Duration = Duration::from_secs(600);

/// Bytes an unprivileged writer may still use on the file system holding `dir` (or, while `dir`
/// does not exist yet, its parent). None when the file system cannot be asked.
pub fn free_bytes(dir: &Path) -> Option<u64> {
    let probe = if dir.exists() {
        dir
    } else {
        dir.parent().filter(|p| !p.as_os_str().is_empty())?
    };
    fs4::available_space(probe).ok()
}

/// The data directory's room, measured now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Free bytes on the data directory's file system; None when it could not be measured.
    pub free_bytes: Option<u64>,
    /// The configured minimum, in bytes.
    pub min_free_bytes: u64,
    /// Whether a write met a full disk within [`DISK_FULL_WINDOW`].
    pub recently_full: bool,
}

impl Room {
    /// Whether the free space is under the minimum.
    pub fn low(&self) -> bool {
        self.free_bytes.is_some_and(|f| f < self.min_free_bytes)
    }

    /// What makes the node degraded, one Japanese sentence each for the operator (empty: none).
    pub fn problems(&self) -> Vec<String> {
        let mib = |b: u64| b / (1 << 20);
        let mut out = Vec::new();
        if let Some(free) = self.free_bytes.filter(|_| self.low()) {
            out.push(format!(
                "データディレクトリのディスクの空きが {} MiB で、下限 {} MiB（min_free_disk_mib）を下回っています。空きを作るかディスクを増やしてください。",
                mib(free),
                mib(self.min_free_bytes)
            ));
        }
        if self.recently_full {
            out.push(format!(
                "直近 {} 分以内に、ディスクの空き不足で保存できなかった書き込みがあります。",
                DISK_FULL_WINDOW.as_secs() / 60
            ));
        }
        out
    }
}

impl crate::Node {
    /// The data directory's room now: free space, the configured minimum, a recent full disk.
    pub fn room(&self) -> Room {
        Room {
            free_bytes: free_bytes(&self.config.data_dir),
            min_free_bytes: self.config.min_free_bytes,
            recently_full: self.store.disk_full_within(DISK_FULL_WINDOW),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_measured_and_low_space_or_a_recent_full_disk_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).expect("free space of a temporary directory");
        assert!(free > 0);
        assert!(free_bytes(&dir.path().join("not-yet")).is_some_and(|f| f > 0));
        let room = Room {
            free_bytes: Some(free),
            min_free_bytes: 1,
            recently_full: false,
        };
        assert!(!room.low() && room.problems().is_empty());
        let room = Room {
            min_free_bytes: u64::MAX,
            ..room
        };
        assert!(room.low());
        assert!(room.problems()[0].contains("下限"), "{:?}", room.problems());
        let room = Room {
            min_free_bytes: 1,
            recently_full: true,
            ..room
        };
        assert!(room.problems()[0].contains("保存できなかった"));
    }
}
