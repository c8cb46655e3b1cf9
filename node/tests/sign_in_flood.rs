//! Sign-in as a resource attack: 150 concurrent wrong-password requests, each from its own
//! loopback address (so the per-address limit does not stop them), against a node's real TCP
//! listener. The password checks run in a bounded pool whose threads reuse their Argon2 memory,
//! so the process's peak memory grows by less than 19 MiB per pool thread plus
//! [`IN_FLIGHT_MIB`], and every request is answered: 401, or 429 when the pool stayed full.
//! Alone in its binary, so no other test moves the peak.
//!
//! Measured on 2 cores (pool of 2): +21 MiB (VmHWM 104 → 125 MiB), 46 answered 401 and 104
//! answered 429. Before the pool, the same flood grew the peak by 305 MiB with one thread per
//! check and allocator arenas keeping each check's 19 MiB.

use std::net::{Ipv4Addr, SocketAddr};

use nsdb::config::NodeRole;
use nsdb::testing::TestNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the 150 requests in flight may add beyond the pool's Argon2 memory (19 MiB a thread).
const IN_FLIGHT_MIB: u64 = 32;

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} not in /proc/self/status"))
}

async fn wrong_password_from(source: Ipv4Addr, to: SocketAddr, i: usize) -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source.into(), 0)).unwrap();
    let mut stream = socket.connect(to).await.unwrap();
    let body = format!(r#"{{"login":"doctor{i}","password":"not-the-password"}}"#);
    let req = format!(
        "POST /api/v1/session HTTP/1.1\r\nHost: {to}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {answer}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_cannot_take_memory_beyond_a_bound() {
    let t = TestNode::start(NodeRole::Hospital).await;
    // One check first, so the pool's threads and the unknown-login hash exist before measuring.
    wrong_password_from(Ipv4Addr::new(127, 0, 0, 1), t.addr, 0).await;
    let before = status_kib("VmHWM:");
    let tasks: Vec<_> = (0..150)
        .map(|i| {
            let source = Ipv4Addr::new(127, 0, 1 + (i / 200) as u8, 1 + (i % 200) as u8);
            tokio::spawn(wrong_password_from(source, t.addr, i))
        })
        .collect();
    let mut answers = std::collections::BTreeMap::<u16, usize>::new();
    for task in tasks {
        *answers.entry(task.await.unwrap()).or_default() += 1;
    }
    let peak = status_kib("VmHWM:");
    let grown_mib = peak.saturating_sub(before) / 1024;
    eprintln!(
        "flood of 150: answers {answers:?}; VmHWM {} MiB -> {} MiB (+{grown_mib} MiB), VmRSS {} MiB; pool {}",
        before / 1024,
        peak / 1024,
        status_kib("VmRSS:") / 1024,
        t.node.password_checks.size()
    );
    assert_eq!(answers.values().sum::<usize>(), 150);
    assert!(
        answers.keys().all(|s| *s == 401 || *s == 429),
        "only 401 and 429: {answers:?}"
    );
    assert!(answers.contains_key(&401), "no password was checked");
    let bound = 19 * t.node.password_checks.size() as u64 + IN_FLIGHT_MIB;
    assert!(
        grown_mib < bound,
        "peak memory grew by {grown_mib} MiB (bound {bound})"
    );
}
