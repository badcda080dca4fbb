//! Loopback ports.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// Another process may take it before the test binds it; where the program can bind port 0 and
/// print the port it got (as `bcfl-devnet` and `bcfl node serve` do), or take a bound socket
/// passed in (`bcfl node run` and `bcfl node serve`, `bcfl_net::activation`, which is how the
/// demo starts its members), prefer that. The port is drawn at random below Linux's ephemeral
/// range (32768-60999): a port the kernel handed out for `bind(0)` is soon handed out again as
/// the local port of some outgoing connection, and a member process of a test once found its
/// blob server's port taken that way while other tests ran; below the range only another
/// listener can take it. Falls back to the kernel's choice when 64 draws are all in use.
pub fn free_port() -> u16 {
    for _ in 0..64 {
        let port = 20_000 + (next_random() % 12_768) as u16;
        if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
            if let Ok(addr) = listener.local_addr() {
                return addr.port();
            }
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

/// SplitMix64 over a process-wide counter seeded by the clock and the process id, so that
/// concurrent tests and test processes draw different ports.
fn next_random() -> u64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()).rotate_left(32);
    let mut z = STATE
        .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
        .wrapping_add(seed);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_drawn_below_the_ephemeral_range_and_bindable() {
        let ports: Vec<u16> = (0..20).map(|_| free_port()).collect();
        assert!(
            ports.iter().all(|p| (20_000..32_768).contains(p)),
            "{ports:?}"
        );
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert!(distinct.len() > 15, "{ports:?}");
        let port = free_port();
        TcpListener::bind(("127.0.0.1", port)).expect("the port is free");
    }
}
