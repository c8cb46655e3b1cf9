//! Measures sealing and opening sheets on one core:
//! `cargo run --release -p nsdb-provisioning --example seal -- 10000 [xml-bytes]`.

use std::time::Instant;

use nsdb_provisioning::NodeIdentity;
use nsdb_provisioning::sealed::{KeyInfo, SealKey, UserKey, open, seal};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5_000);
    let hub = NodeIdentity::generate()?;
    let node = NodeIdentity::generate()?;
    let seal_key = SealKey::generate();
    let user = UserKey::generate()?;
    let info = KeyInfo::request(&node, "計測ノード", &seal_key, "2099-12-31")?.sign(&hub);
    let verified = info.verify(&hub.public_key().to_bytes(), "2026-01-01")?;
    let xml = vec![b'x'; size];

    let started = Instant::now();
    let mut files = Vec::with_capacity(n);
    for _ in 0..n {
        files.push(seal(&xml, &verified, &user, "1.0.0", "2026.04-1")?);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "sealed {n} files of {size} bytes in {secs:.3} s: {:.0} files/s on one core",
        n as f64 / secs
    );

    let known = [user.public_key()];
    let started = Instant::now();
    for f in &files {
        open(f, &seal_key, &known)?;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "opened {n} files in {secs:.3} s: {:.0} files/s on one core",
        n as f64 / secs
    );
    Ok(())
}
