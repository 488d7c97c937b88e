//! Validated configurations for the owner, a peer and the demo.
//!
//! `main.rs` turns command-line arguments into these; the library only ever sees values
//! that passed the checks here (ports, addresses, a peer that does not name itself).

pub use crate::chunk_store::ChunkFiles;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

/// An invalid argument or combination of arguments.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// An address that is neither a port nor HOST:PORT.
    #[error("{text:?} is not a port or HOST:PORT: {reason}")]
    BadEndpoint {
        /// What was given.
        text: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A peer named itself as its download neighbor.
    #[error("the download neighbor {neighbor} is this peer's own port {port}")]
    NeighborIsSelf {
        /// The neighbor as given.
        neighbor: String,
        /// Our port.
        port: u16,
    },
    /// A peer named itself as the owner.
    #[error("the owner address {owner} is this peer's own port {port}")]
    OwnerIsSelf {
        /// The owner as given.
        owner: String,
        /// Our port.
        port: u16,
    },
    /// The peer's own port is not a port number.
    #[error("{text:?} is not a port number (1-65535)")]
    BadPort {
        /// What was given.
        text: String,
    },
    /// The peer's positional arguments do not fit `[OWNER] PORT [DOWNLOAD_NEIGHBOR]`.
    #[error("peer takes OWNER PORT [DOWNLOAD_NEIGHBOR] (PORT [DOWNLOAD_NEIGHBOR] with --ticket, PORT alone with --join), got {got} arguments")]
    PeerArgs {
        /// How many were given.
        got: usize,
    },
    /// Neither the owner nor a peer to join through was given.
    #[error("a peer needs the owner's address or --join HOST:PORT to find the swarm")]
    NoWayIn,
    /// A number outside its range.
    #[error("{what} must be between {min} and {max}, got {got}")]
    Range {
        /// The option.
        what: &'static str,
        /// Smallest allowed.
        min: u64,
        /// Largest allowed.
        max: u64,
        /// What was given.
        got: u64,
    },
    /// A count that must be at least one.
    #[error("{what} must be at least {min}, got {got}")]
    TooFew {
        /// Which setting.
        what: &'static str,
        /// Its minimum.
        min: u64,
        /// What was given.
        got: u64,
    },
    /// `--ticket-file` could not be read or does not hold a ticket.
    #[error("--ticket-file {}: {reason}", crate::text::Quoted(path))]
    TicketFile {
        /// The file given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// The ticket in `path` (`--ticket-file`): at most 4 KiB of text, surrounding white space
/// ignored. A file keeps the swarm's secret out of the process list, where `--ticket`
/// shows it to every user of the machine.
pub fn read_ticket_file(path: &std::path::Path) -> Result<crate::ticket::Ticket, ConfigError> {
    use std::io::Read;
    let fail = |reason: String| ConfigError::TicketFile {
        path: path.to_owned(),
        reason,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(4096).read_to_string(&mut text))
        .map_err(|e| fail(e.to_string()))?;
    text.trim()
        .parse()
        .map_err(|e: crate::ticket::TicketError| fail(e.to_string()))
}

/// Parses `--http`: `PORT` (on 127.0.0.1) or `IP:PORT`.
pub fn parse_http_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    let addr = text
        .parse::<SocketAddr>()
        .map_err(|_| format!("'{text}' is not PORT or IP:PORT (e.g. 8080 or 127.0.0.1:8080)"))?;
    if addr.ip().is_unspecified() {
        // Requests must name the address the page is served on, and no browser names
        // 0.0.0.0 or [::].
        return Err(format!(
            "'{text}': give the address browsers will use (e.g. 10.0.0.1:{}), not an unspecified one",
            addr.port()
        ));
    }
    Ok(addr)
}

/// A host name that did not resolve.
#[derive(Debug, thiserror::Error)]
#[error("cannot resolve {host}: {source}")]
pub struct ResolveError {
    /// The host name.
    pub host: String,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// Where to reach a node: a host name or IP address and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    host: String,
    port: u16,
}

impl Endpoint {
    /// An endpoint on this machine's loopback address.
    pub fn local(port: u16) -> Endpoint {
        Endpoint {
            host: Ipv4Addr::LOCALHOST.to_string(),
            port,
        }
    }

    /// The host name or IP address, as given.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// An endpoint for a known socket address (a peer from the address book).
    pub fn from_addr(addr: SocketAddr) -> Endpoint {
        Endpoint {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }

    /// Whether this endpoint is on this host's loopback (or unspecified) address.
    pub fn is_loopback(&self) -> bool {
        self.host == "localhost"
            || self
                .host
                .parse::<IpAddr>()
                .is_ok_and(|ip| ip.is_loopback() || ip.is_unspecified())
    }

    /// Resolves the endpoint now (addresses may change between calls), preferring IPv4.
    pub async fn resolve(&self) -> Result<SocketAddr, ResolveError> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, self.port));
        }
        if self.host == "localhost" {
            return Ok(SocketAddr::new(Ipv4Addr::LOCALHOST.into(), self.port));
        }
        let resolve_err = |source| ResolveError {
            host: self.host.clone(),
            source,
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(resolve_err)?
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .ok_or_else(|| resolve_err(std::io::Error::other("no addresses")))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

fn parse_port(text: &str, whole: &str) -> Result<u16, ConfigError> {
    let bad = |reason| ConfigError::BadEndpoint {
        text: whole.to_owned(),
        reason,
    };
    match text.parse::<u16>() {
        Ok(0) => Err(bad("port 0 cannot be dialled")),
        Ok(p) => Ok(p),
        Err(_) => Err(bad("the port must be a number from 1 to 65535")),
    }
}

impl FromStr for Endpoint {
    type Err = ConfigError;

    /// `5002` (this machine), `host:5002`, `10.0.0.7:5002` or `[::1]:5002`.
    fn from_str(s: &str) -> Result<Endpoint, ConfigError> {
        if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
            return Ok(Endpoint::local(parse_port(s, s)?));
        }
        if let Ok(addr) = s.parse::<SocketAddr>() {
            parse_port(&addr.port().to_string(), s)?;
            return Ok(Endpoint {
                host: addr.ip().to_string(),
                port: addr.port(),
            });
        }
        let Some((host, port)) = s.rsplit_once(':') else {
            return Err(ConfigError::BadEndpoint {
                text: s.to_owned(),
                reason: "expected a port or HOST:PORT",
            });
        };
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !host_ok {
            return Err(ConfigError::BadEndpoint {
                text: s.to_owned(),
                reason: "the host is not a valid name or address",
            });
        }
        Ok(Endpoint {
            host: host.to_owned(),
            port: parse_port(port, s)?,
        })
    }
}

/// What the owner needs to start.
#[derive(Clone, Debug)]
pub struct OwnerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// The file to share.
    pub file: PathBuf,
    /// The owner's work directory (its chunk store lives in `DIR/.swarmshare`).
    pub dir: PathBuf,
    /// How many peers the batches are sized for.
    pub peers: u32,
    /// Copies of every chunk the swarm must hold before the owner says it may leave.
    pub safe_copies: u32,
    /// Upload cap in bytes per second, across all connections.
    pub upload_limit: Option<u64>,
    /// Where to serve the web view, if anywhere.
    pub http: Option<SocketAddr>,
    /// A private swarm: only holders of its ticket may connect.
    pub private: bool,
    /// Which chunks get a chunk file of their own (README, "On disk").
    pub chunk_files: ChunkFiles,
    /// Where it announces itself in the DHT, so peers find it at a new address.
    pub dht: DhtSetting,
}

impl OwnerConfig {
    /// Checks the settings.
    pub fn new(
        listen: SocketAddr,
        file: PathBuf,
        dir: PathBuf,
        peers: u32,
        safe_copies: u32,
    ) -> Result<OwnerConfig, ConfigError> {
        if safe_copies == 0 {
            return Err(ConfigError::TooFew {
                what: "--safe-copies",
                min: 1,
                got: 0,
            });
        }
        if peers == 0 {
            return Err(ConfigError::TooFew {
                what: "--peers",
                min: 1,
                got: 0,
            });
        }
        Ok(OwnerConfig {
            listen,
            file,
            dir,
            peers,
            safe_copies,
            upload_limit: None,
            http: None,
            private: false,
            chunk_files: ChunkFiles::Auto,
            dht: DhtSetting::Public,
        })
    }
}

/// Where a node meets the Mainline DHT ([`crate::dht`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum DhtSetting {
    /// Through the public bootstrap nodes (the `mainline` crate's list).
    #[default]
    Public,
    /// Through these bootstrap nodes (`--dht-bootstrap`).
    Nodes(Vec<Endpoint>),
    /// Not at all (`--no-dht`).
    Off,
}

/// What a peer needs to start.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// Where to listen for the upload neighbor.
    pub listen: SocketAddr,
    /// The owner, if known (in swarm mode with `--join` it may not be).
    pub owner: Option<Endpoint>,
    /// The download neighbor the seed's ring names: preferred, not exclusive.
    pub neighbor: Option<Endpoint>,
    /// A peer already in the swarm to join through instead of the owner.
    pub join: Option<Endpoint>,
    /// How many neighbors to download from at once.
    pub neighbors: usize,
    /// The peer's directory.
    pub dir: PathBuf,
    /// Where a peer without a manifest joins: `join` if given, else the owner.
    pub entry: Endpoint,
    /// Upload cap in bytes per second, across all connections.
    pub upload_limit: Option<u64>,
    /// Download cap in bytes per second, across all connections.
    pub download_limit: Option<u64>,
    /// Exit once complete and nobody has asked for anything for a while.
    pub exit_when_done: bool,
    /// With `exit_when_done`: exit at the latest this long after completing.
    pub seed_time: Option<std::time::Duration>,
    /// Sync writes to disk before they count (default). Off, a killed process still loses
    /// nothing; a power cut may.
    pub fsync: bool,
    /// Where to serve the web view, if anywhere.
    pub http: Option<SocketAddr>,
    /// A private swarm's ticket (`None`: an open swarm).
    pub ticket: Option<crate::ticket::Ticket>,
    /// Which chunks get a chunk file of their own (README, "On disk").
    pub chunk_files: ChunkFiles,
    /// Where it meets the DHT, to find the swarm when no address it knows answers.
    pub dht: DhtSetting,
    /// Relays: whether it relays for peers nobody can dial (when it can be dialled), and
    /// keeps a reservation at one when nobody can dial it.
    pub relay: bool,
}

/// How many neighbors a peer downloads from at once unless told otherwise (and how many
/// downloaders it serves: see `admission`).
pub const DEFAULT_NEIGHBORS: usize = 8;

/// The most download neighbors a peer may use at once.
pub const MAX_NEIGHBORS: usize = 32;

impl PeerConfig {
    /// Checks that the peer names itself as neither neighbor, owner nor join peer, that it
    /// has somewhere to join through, and that the neighbor count is sane.
    pub fn new(
        listen: SocketAddr,
        owner: Option<Endpoint>,
        neighbor: Option<Endpoint>,
        join: Option<Endpoint>,
        neighbors: usize,
        dir: PathBuf,
    ) -> Result<PeerConfig, ConfigError> {
        let port = listen.port();
        let is_self = |e: &Endpoint| {
            port != 0 && e.port() == port && (e.is_loopback() || e.host == listen.ip().to_string())
        };
        if let Some(neighbor) = neighbor.as_ref().filter(|n| is_self(n)) {
            return Err(ConfigError::NeighborIsSelf {
                neighbor: neighbor.to_string(),
                port,
            });
        }
        if let Some(owner) = owner.iter().chain(join.iter()).find(|e| is_self(e)) {
            return Err(ConfigError::OwnerIsSelf {
                owner: owner.to_string(),
                port,
            });
        }
        let Some(entry) = join.clone().or_else(|| owner.clone()) else {
            return Err(ConfigError::NoWayIn);
        };
        if !(1..=MAX_NEIGHBORS).contains(&neighbors) {
            return Err(ConfigError::Range {
                what: "--neighbors",
                min: 1,
                max: MAX_NEIGHBORS as u64,
                got: neighbors as u64,
            });
        }
        Ok(PeerConfig {
            listen,
            owner,
            neighbor,
            join,
            neighbors,
            dir,
            entry,
            upload_limit: None,
            download_limit: None,
            exit_when_done: false,
            seed_time: None,
            fsync: true,
            http: None,
            ticket: None,
            chunk_files: ChunkFiles::Auto,
            dht: DhtSetting::Public,
            relay: true,
        })
    }
}

/// What the demo needs.
#[derive(Clone, Debug)]
pub struct DemoConfig {
    /// Number of peers in the ring.
    pub peers: u32,
    /// Size of the sample file in bytes.
    pub size: u64,
    /// Keep the demo folder afterwards.
    pub keep: bool,
    /// Give up after this long.
    pub timeout: std::time::Duration,
    /// Where the owner serves the web view, if anywhere.
    pub http: Option<SocketAddr>,
    /// How long the swarm keeps serving (and the page stays up) after every peer completed.
    pub linger: std::time::Duration,
}

impl DemoConfig {
    /// Checks the settings: at least two peers and a shareable size.
    pub fn new(
        peers: u32,
        size: u64,
        keep: bool,
        timeout: std::time::Duration,
    ) -> Result<DemoConfig, ConfigError> {
        if peers < 2 {
            return Err(ConfigError::TooFew {
                what: "--peers",
                min: 2,
                got: u64::from(peers),
            });
        }
        if size < crate::manifest::MIN_CHUNKS {
            return Err(ConfigError::TooFew {
                what: "--size",
                min: crate::manifest::MIN_CHUNKS,
                got: size,
            });
        }
        Ok(DemoConfig {
            peers,
            size,
            keep,
            timeout,
            http: None,
            linger: std::time::Duration::ZERO,
        })
    }
}

/// Parses a rate in bytes per second: a size (see [`parse_size`]), optionally followed by
/// `/s`: `10MB`, `500KiB/s`. Zero is refused.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let bytes = parse_size(text.trim().trim_end_matches("/s"))?;
    if bytes == 0 {
        return Err(format!("{text:?}: a rate must be more than 0 bytes per second"));
    }
    Ok(bytes)
}

/// Parses a byte count: `4194304`, `4MiB`, `500KiB`, `1GiB`, `10MB`, `500kB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a size (try 4MiB or 4194304)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => {
            return Err(format!(
                "{text:?}: unknown unit {unit:?} (use KiB, MiB, GiB, KB, MB or GB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{text:?} is too large"))
}
