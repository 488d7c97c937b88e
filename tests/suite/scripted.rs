//! A scripted owner: it accepts one JOIN, answers the handshake and hello like a real
//! owner, sends a manifest and then does whatever the test scripts, so a peer can be
//! shown exactly the bytes (and the pauses) a test needs.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::Duration;

use swarmshare::blocking::{Mode, SecureStream};
use swarmshare::manifest::SwarmId;

use super::protocol::{hello, Msg, HELLO_LEN, ROLE_OWNER};

/// Listens on an ephemeral port; the first connection gets the owner's hello for the
/// swarm of `manifest` (the bytes as sent), then `MANIFEST`, then `script`. Returns the
/// port and the thread.
pub fn owner(
    manifest: Vec<u8>,
    script: impl FnOnce(&mut SecureStream) + Send + 'static,
) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut s = SecureStream::accept(s, &Mode::Open, Duration::from_secs(30)).unwrap();
        let swarm = SwarmId(*blake3::hash(&manifest).as_bytes());
        let mine = hello(ROLE_OWNER, port, Some(swarm), s.id());
        s.write_all(&mine).unwrap();
        let mut theirs = [0u8; HELLO_LEN];
        s.read_exact(&mut theirs).unwrap();
        let _ = s.write_all(&Msg::Manifest(manifest).frame());
        script(&mut s);
    });
    (port, handle)
}

/// Waits for the other side to close (or 30 s).
pub fn until_closed(s: &mut SecureStream) {
    let _ = s.socket().set_read_timeout(Some(Duration::from_secs(30)));
    let _ = s.read(&mut [0u8; 16]);
}

/// Starts a peer in `root/peer` whose owner is the scripted one at `port` (logs under
/// `root`).
pub fn peer_of(root: &std::path::Path, port: u16) -> super::util::Proc {
    use super::util::free_port;
    let dir = root.join("peer");
    super::util::Proc::start(
        root,
        "peer",
        &[
            "peer",
            &port.to_string(),
            &free_port().to_string(),
            &free_port().to_string(),
            "--bind",
            "127.0.0.1",
            "--dir",
            dir.to_str().unwrap(),
        ],
    )
}
