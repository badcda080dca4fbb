//! Listening sockets passed from one process to the next, as systemd's socket activation does
//! (`sd_listen_fds(3)`): `LISTEN_FDS=N` says that the process inherited N sockets, from file
//! descriptor 3 on; `LISTEN_PID`, when set, names the process they are for, so a child that
//! inherited the variables ignores them.
//!
//! A blob server ([`bind`]: `bcfl node run`'s and `bcfl node serve`'s) takes one such socket,
//! which must listen on the address it was configured with, and binds that address itself when
//! none was passed. Under systemd a `.socket` unit with `ListenStream=` can so own the port a
//! member registered on chain. `bcfl demo` passes each member process the port it drew for it
//! ([`pass_listener`]), bound from the draw on: no other process can take the port between the
//! draw and the member's start, which a bound-and-released port allowed.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// The first passed descriptor (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: i32 = 3;

/// Set once the passed socket was taken: it is taken once.
static TAKEN: AtomicBool = AtomicBool::new(false);

/// A listener on `addr`: the socket passed to this process if there is one (which must listen
/// on `addr`; port 0 accepts any port on its IP), else a fresh bind of `addr`.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    match passed_listener()? {
        Some(listener) => {
            let local = listener.local_addr()?;
            if local != addr && !(addr.port() == 0 && local.ip() == addr.ip()) {
                return Err(std::io::Error::other(format!(
                    "the socket passed in (LISTEN_FDS, fd {LISTEN_FDS_START}) listens on {local}, \
                     not on the configured {addr}"
                )));
            }
            tracing::info!(%local, "serving on the socket passed in");
            tokio::net::TcpListener::from_std(listener)
        }
        None => tokio::net::TcpListener::bind(addr).await,
    }
}

/// How many sockets the environment says were passed to the process `pid`: `None` when none
/// were (no `LISTEN_FDS`, `0`, or a `LISTEN_PID` that names another process), `Some(fd)` with
/// the one socket's descriptor, an error when the variables are malformed or pass more than one.
fn passed_fd(
    listen_fds: Option<&str>,
    listen_pid: Option<&str>,
    pid: u32,
) -> Result<Option<i32>, String> {
    let Some(fds) = listen_fds else {
        return Ok(None);
    };
    if let Some(for_pid) = listen_pid {
        match for_pid.trim().parse::<u32>() {
            Ok(p) if p == pid => {}
            Ok(_) => return Ok(None),
            Err(_) => return Err(format!("LISTEN_PID={for_pid:?} is not a process id")),
        }
    }
    match fds.trim().parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(1) => Ok(Some(LISTEN_FDS_START)),
        Ok(n) => Err(format!(
            "LISTEN_FDS={n}: a blob server takes one socket, passed as fd {LISTEN_FDS_START}"
        )),
        Err(_) => Err(format!("LISTEN_FDS={fds:?} is not a number of sockets")),
    }
}

/// The listening TCP socket passed to this process (see the [module](self)), once: a second
/// call, or a process without one, gets `None`. An error when the variables are malformed or
/// the descriptor is not a listening TCP socket (it is then left alone).
pub fn passed_listener() -> std::io::Result<Option<std::net::TcpListener>> {
    let fds = std::env::var("LISTEN_FDS").ok();
    let pid = std::env::var("LISTEN_PID").ok();
    let Some(fd) = passed_fd(fds.as_deref(), pid.as_deref(), std::process::id())
        .map_err(std::io::Error::other)?
    else {
        return Ok(None);
    };
    if TAKEN.swap(true, Ordering::SeqCst) {
        return Ok(None);
    }
    take_listener(fd).map(Some)
}

/// Has `command`'s process inherit `listener` as the passed socket (fd 3, `LISTEN_FDS=1`, no
/// `LISTEN_PID`). `listener` must stay open until the command is spawned; the caller may close
/// its own copy after that.
pub fn pass_listener(command: &mut Command, listener: &std::net::TcpListener) {
    command.env("LISTEN_FDS", "1").env_remove("LISTEN_PID");
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd as _;
        use std::os::unix::process::CommandExt as _;
        let fd = listener.as_raw_fd();
        #[allow(unsafe_code)]
        // SAFETY: the closure runs in the child between fork and exec and calls only dup2 and
        // fcntl, which are async-signal-safe; `fd` is open there (the caller keeps the listener
        // open until the spawn returns).
        unsafe {
            command.pre_exec(move || {
                let rc = if fd == LISTEN_FDS_START {
                    // Already in place: only keep it open across exec.
                    libc::fcntl(fd, libc::F_SETFD, 0)
                } else {
                    // dup2 leaves the copy open across exec.
                    libc::dup2(fd, LISTEN_FDS_START)
                };
                if rc == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    #[cfg(not(unix))]
    let _ = listener;
}

/// Takes `fd` as a listening TCP socket, after checking that it is one.
#[cfg(unix)]
fn take_listener(fd: i32) -> std::io::Result<std::net::TcpListener> {
    use std::os::fd::FromRawFd as _;
    let option = |name: libc::c_int| -> std::io::Result<libc::c_int> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        #[allow(unsafe_code)]
        // SAFETY: getsockopt writes at most `len` bytes into `value`; an fd that is not a
        // socket (or not open) only makes it fail.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc == -1 {
            return Err(std::io::Error::other(format!(
                "LISTEN_FDS=1 but fd {fd} is not a socket: {}",
                std::io::Error::last_os_error()
            )));
        }
        Ok(value)
    };
    let domain = option(libc::SO_DOMAIN)?;
    if option(libc::SO_TYPE)? != libc::SOCK_STREAM
        || (domain != libc::AF_INET && domain != libc::AF_INET6)
    {
        return Err(std::io::Error::other(format!(
            "LISTEN_FDS=1 but fd {fd} is not a TCP socket"
        )));
    }
    if option(libc::SO_ACCEPTCONN)? == 0 {
        return Err(std::io::Error::other(format!(
            "LISTEN_FDS=1 but fd {fd} is a TCP socket that does not listen"
        )));
    }
    #[allow(unsafe_code)]
    // SAFETY: `fd` is an open listening TCP socket (checked above) that the passing protocol
    // gives to this process, and `TAKEN` makes this the only owner.
    let listener = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    #[allow(unsafe_code)]
    // SAFETY: fcntl on a descriptor this process owns; the processes it starts do not inherit it.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
        return Err(std::io::Error::last_os_error());
    }
    listener.set_nonblocking(true)?;
    Ok(listener)
}

/// Passed sockets are a Unix convention.
#[cfg(not(unix))]
fn take_listener(fd: i32) -> std::io::Result<std::net::TcpListener> {
    Err(std::io::Error::other(format!(
        "LISTEN_FDS=1: passed sockets (fd {fd}) are not supported on this platform"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The variables' rules: absent, zero or for another process is none; one is fd 3; more
    /// than one, or malformed values, are refused with the variable named.
    #[test]
    fn the_variables_name_one_socket_for_this_process() {
        assert_eq!(passed_fd(None, None, 7), Ok(None));
        assert_eq!(passed_fd(None, Some("7"), 7), Ok(None));
        assert_eq!(passed_fd(Some("0"), None, 7), Ok(None));
        assert_eq!(passed_fd(Some("1"), None, 7), Ok(Some(3)));
        assert_eq!(passed_fd(Some("1"), Some("7"), 7), Ok(Some(3)));
        assert_eq!(passed_fd(Some("1"), Some("8"), 7), Ok(None));
        assert!(passed_fd(Some("2"), None, 7)
            .unwrap_err()
            .contains("LISTEN_FDS=2: a blob server takes one socket"));
        assert!(passed_fd(Some("x"), None, 7)
            .unwrap_err()
            .contains("LISTEN_FDS=\"x\""));
        assert!(passed_fd(Some("1"), Some("me"), 7)
            .unwrap_err()
            .contains("LISTEN_PID=\"me\""));
    }

    /// A descriptor that is not a listening TCP socket is refused, and left open.
    #[cfg(unix)]
    #[test]
    fn only_a_listening_tcp_socket_is_taken() {
        use std::os::fd::AsRawFd as _;
        let file = tempfile::tempfile().unwrap();
        let err = take_listener(file.as_raw_fd()).unwrap_err().to_string();
        assert!(err.contains("is not a socket"), "{err}");
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = take_listener(udp.as_raw_fd()).unwrap_err().to_string();
        assert!(err.contains("is not a TCP socket"), "{err}");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let err = take_listener(stream.as_raw_fd()).unwrap_err().to_string();
        assert!(err.contains("does not listen"), "{err}");
        // Still open: all can be used.
        file.metadata().unwrap();
        udp.local_addr().unwrap();
        stream.peer_addr().unwrap();
    }

    /// A listening socket is taken as it is: same address, accepting connections.
    #[cfg(unix)]
    #[test]
    fn a_listening_socket_is_taken_and_accepts() {
        use std::os::fd::IntoRawFd as _;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let taken = take_listener(listener.into_raw_fd()).unwrap();
        assert_eq!(taken.local_addr().unwrap(), addr);
        let _client = std::net::TcpStream::connect(addr).unwrap();
        // Non-blocking, as tokio wants it: the queued connection is there at once.
        let mut accepted = None;
        for _ in 0..100 {
            match taken.accept() {
                Ok((stream, _)) => {
                    accepted = Some(stream);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert!(accepted.is_some());
    }
}
