//! A blocking, encrypted stream for scripted clients and servers: the integration tests and
//! the attack example, which craft frames the real nodes never send and so need the
//! transport without the protocol on top. It runs the same handshake as every node
//! ([`crate::secure`]) and then reads and writes plaintext bytes, each `write` sealed as
//! one or more transport messages.
//!
//! Not part of the supported API.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;

use crate::secure::{self, Access, Credentials, NodeKey, LEN_PREFIX, PREAMBLE_LEN};

/// Which swarm a scripted client claims to be of. `Debug` leaves the key out.
#[derive(Clone)]
pub enum Mode {
    /// An open swarm.
    Open,
    /// A private swarm with this pre-shared key.
    Private([u8; 32]),
}

impl std::fmt::Debug for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Open => "Open",
            Mode::Private(_) => "Private",
        })
    }
}

impl Mode {
    /// The private swarm a ticket admits to.
    pub fn from_ticket(ticket: &crate::ticket::Ticket) -> Mode {
        Mode::Private(ticket.psk())
    }

    fn access(&self) -> Access {
        match self {
            Mode::Open => Access::Open,
            Mode::Private(psk) => Access::Private(*psk),
        }
    }
}

/// A scripted node's key: the same identity across connections.
#[derive(Clone)]
pub struct Identity(NodeKey);

impl Identity {
    /// A fresh key.
    pub fn generate() -> Identity {
        Identity(NodeKey::generate())
    }

    /// The peer ID it proves.
    pub fn id(&self) -> [u8; 16] {
        self.0.id().0
    }
}

/// The bytes a dialer sends for the handshake (preamble and its two messages).
pub const DIALER_HANDSHAKE_BYTES: u64 = (PREAMBLE_LEN + 2 * LEN_PREFIX + 48 + 64) as u64;

/// An encrypted stream over a blocking socket. Clones share the cipher state, so one
/// thread may read while another writes (one writer at a time).
pub struct SecureStream {
    stream: TcpStream,
    transport: Arc<Mutex<snow::TransportState>>,
    cipher: BytesMut,
    plain: BytesMut,
    id: [u8; 16],
    remote: [u8; 16],
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// The socket's read limit set, and the credentials a handshake under `who` proves.
fn prepare(stream: &TcpStream, who: &Identity, mode: &Mode, limit: Duration) -> io::Result<Credentials> {
    stream.set_read_timeout(Some(limit))?;
    Ok(Credentials {
        key: who.0.clone(),
        access: mode.access(),
    })
}

fn read_message(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; LEN_PREFIX];
    stream.read_exact(&mut len)?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut msg)?;
    Ok(msg)
}

impl SecureStream {
    /// Dials `addr` with a fresh key and runs the dialer's handshake.
    pub fn connect(addr: SocketAddr, mode: &Mode, limit: Duration) -> io::Result<SecureStream> {
        let stream = TcpStream::connect_timeout(&addr, limit)?;
        SecureStream::dial_over(stream, mode, limit)
    }

    /// Runs the dialer's handshake over a connected socket, with a fresh key.
    pub fn dial_over(stream: TcpStream, mode: &Mode, limit: Duration) -> io::Result<SecureStream> {
        SecureStream::dial_as(stream, &Identity::generate(), mode, limit)
    }

    /// Runs the dialer's handshake over a connected socket under `who`'s key.
    pub fn dial_as(
        mut stream: TcpStream,
        who: &Identity,
        mode: &Mode,
        limit: Duration,
    ) -> io::Result<SecureStream> {
        let creds = prepare(&stream, who, mode, limit)?;
        let mut state = secure::start(&creds, true).map_err(other)?;
        let mut out = secure::preamble(&creds.access).to_vec();
        secure::write_handshake(&mut state, &mut out).map_err(other)?;
        stream.write_all(&out)?;
        secure::read_handshake(&mut state, &read_message(&mut stream)?).map_err(other)?;
        out.clear();
        secure::write_handshake(&mut state, &mut out).map_err(other)?;
        stream.write_all(&out)?;
        SecureStream::ready(stream, state, creds.key.id().0)
    }

    /// Runs the listener's handshake over an accepted socket, with a fresh key.
    pub fn accept(stream: TcpStream, mode: &Mode, limit: Duration) -> io::Result<SecureStream> {
        SecureStream::accept_as(stream, &Identity::generate(), mode, limit)
    }

    /// Runs the listener's handshake over an accepted socket under `who`'s key.
    pub fn accept_as(
        mut stream: TcpStream,
        who: &Identity,
        mode: &Mode,
        limit: Duration,
    ) -> io::Result<SecureStream> {
        let creds = prepare(&stream, who, mode, limit)?;
        let mut preamble = [0u8; PREAMBLE_LEN];
        stream.read_exact(&mut preamble)?;
        secure::check_preamble(&preamble, &creds.access).map_err(other)?;
        let mut state = secure::start(&creds, false).map_err(other)?;
        secure::read_handshake(&mut state, &read_message(&mut stream)?).map_err(other)?;
        let mut out = Vec::new();
        secure::write_handshake(&mut state, &mut out).map_err(other)?;
        stream.write_all(&out)?;
        secure::read_handshake(&mut state, &read_message(&mut stream)?).map_err(other)?;
        SecureStream::ready(stream, state, creds.key.id().0)
    }

    fn ready(stream: TcpStream, state: snow::HandshakeState, id: [u8; 16]) -> io::Result<SecureStream> {
        let (transport, remote) = secure::finish(state).map_err(other)?;
        Ok(SecureStream {
            stream,
            transport: Arc::new(Mutex::new(transport)),
            cipher: BytesMut::new(),
            plain: BytesMut::new(),
            id,
            remote: remote.0,
        })
    }

    /// The peer ID this stream's key proves (what its hello must carry).
    pub fn id(&self) -> [u8; 16] {
        self.id
    }

    /// The peer ID the other side's key proved.
    pub fn remote_id(&self) -> [u8; 16] {
        self.remote
    }

    /// The socket (timeouts, shutdown, raw bytes that bypass the encryption).
    pub fn socket(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Another handle on the same connection and cipher state: one may read while another
    /// writes, but two must not write at once (each write is sealed under the lock and
    /// sent after it, so two writers could send their messages out of nonce order).
    pub fn try_clone(&self) -> io::Result<SecureStream> {
        Ok(SecureStream {
            stream: self.stream.try_clone()?,
            transport: Arc::clone(&self.transport),
            cipher: BytesMut::new(),
            plain: BytesMut::new(),
            id: self.id,
            remote: self.remote,
        })
    }
}

impl Read for SecureStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.plain.is_empty() {
            let mut raw = [0u8; 64 * 1024];
            let n = self.stream.read(&mut raw)?;
            if n == 0 {
                return Ok(0);
            }
            self.cipher.extend_from_slice(&raw[..n]);
            let mut t = self.transport.lock().unwrap_or_else(PoisonError::into_inner);
            secure::open(&mut t, &mut self.cipher, &mut self.plain).map_err(other)?;
        }
        let n = buf.len().min(self.plain.len());
        buf[..n].copy_from_slice(&self.plain.split_to(n));
        Ok(n)
    }
}

impl Write for SecureStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut out = Vec::with_capacity(buf.len() + 64);
        {
            let mut t = self.transport.lock().unwrap_or_else(PoisonError::into_inner);
            secure::seal(&mut t, buf, &mut out).map_err(other)?;
        }
        self.stream.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.stream.flush()
    }
}
