//! Build script: the git commit the binary is built from, for `nsdb --version`.
//!
//! Sets `NSDB_COMMIT` to `git rev-parse --short HEAD`, or to "unknown" outside a git checkout
//! (a source archive) or without git. A packager building from an archive may set `NSDB_COMMIT`
//! in the environment itself. The commit is HEAD's: edits not yet committed are not marked.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `git ARGS` run in this package's directory: its first line of output, if it succeeded.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    let line = text.lines().next()?.trim().to_string();
    (!line.is_empty()).then_some(line)
}

/// Runs this script again when `path` changes; only for paths that exist (cargo reruns a
/// script whose watched path is missing at every build).
fn watch(path: PathBuf) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=NSDB_COMMIT");
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into()));
    let given = std::env::var("NSDB_COMMIT")
        .ok()
        .map(|c| c.trim().to_string())
        .filter(|c| !c.is_empty());
    let commit = given.or_else(|| git(&dir, &["rev-parse", "--short", "HEAD"]));
    // Built again when HEAD moves (a commit, checkout or reset changes HEAD or the branch's
    // ref), so the binary never names a commit it was not built from.
    if commit.is_some() {
        if let Some(git_dir) = git(&dir, &["rev-parse", "--git-dir"]) {
            watch(dir.join(git_dir).join("HEAD"));
        }
        if let Some(common) = git(&dir, &["rev-parse", "--git-common-dir"]) {
            let common = dir.join(common);
            if let Some(branch) = git(&dir, &["symbolic-ref", "-q", "HEAD"]) {
                watch(common.join(branch));
            }
            watch(common.join("packed-refs"));
        }
    }
    println!(
        "cargo:rustc-env=NSDB_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
}
