//! Loopback ports.

use std::net::TcpListener;

/// A TCP port on 127.0.0.1 that the OS reported free a moment ago.
///
/// Another process may take it before the test binds it; where the program can bind port 0 and
/// print the port it got (as `bcfl-devnet` and `bcfl node serve` do), prefer that.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}
