//! Tickets: what it takes to join a private swarm, in one copy-pasteable string.
//!
//! A ticket holds the swarm ID, the swarm's 32-byte secret, the owner's peer ID and its
//! addresses. It is `swsh1` followed by the hex of: the format byte `1`, the swarm ID, the
//! secret, the owner's peer ID, and each address as a family byte (`4` or `6`), the IP and
//! the port (big-endian). A peer joining through the owner checks that the node at the
//! address proves the owner's ID, so a member that intercepts the address cannot pose as
//! the owner. Every
//! connection in the swarm proves the secret in its handshake: the Noise pre-shared key is
//! a BLAKE3 key derivation from the secret and the swarm ID ([`Ticket::psk`]), so a ticket
//! of another swarm, or with one bit changed, proves nothing.
//!
//! The owner keeps its ticket in `DIR/.swarmshare/ticket` (mode 0600), so a restarted
//! owner keeps its swarm's secret and the tickets it gave out stay good.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::str::FromStr;

use rand::RngCore;

use crate::identity::{PeerId, PEER_ID_LEN};
use crate::manifest::{SwarmId, HASH_LEN};

/// What every ticket starts with.
const PREFIX: &str = "swsh1";
/// The format byte.
const FORMAT: u8 = 1;
/// The file a private owner keeps its ticket in.
pub(crate) const TICKET_FILE: &str = "ticket";
/// The most addresses a ticket carries.
pub const MAX_ADDRS: usize = 16;
const PSK_CONTEXT: &str = "swarmshare 2026-12 private swarm pre-shared key";
const DHT_CONTEXT: &str = "swarmshare 2026-12 private swarm DHT key";

/// A private swarm's ticket. `Debug` leaves the secret out.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    swarm: SwarmId,
    secret: [u8; 32],
    owner: PeerId,
    addrs: Vec<SocketAddr>,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("swarm", &self.swarm)
            .field("owner", &self.owner)
            .field("addrs", &self.addrs)
            .finish_non_exhaustive()
    }
}

/// Why a ticket does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TicketError {
    /// It does not start with `swsh1`.
    #[error("not a swarmshare ticket (it should start with {PREFIX})")]
    Prefix,
    /// A character that is not a hex digit, or an odd count of them.
    #[error("the ticket is not valid hex after {PREFIX}")]
    Hex,
    /// Too short, a format this build does not know, a bad address, or bytes left over.
    #[error("the ticket is damaged or from a newer version ({0})")]
    Damaged(&'static str),
}

impl Ticket {
    /// A new swarm secret for `swarm`, reachable at `addrs`.
    pub(crate) fn generate(swarm: SwarmId, owner: PeerId, addrs: Vec<SocketAddr>) -> Ticket {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        Ticket {
            swarm,
            secret,
            owner,
            addrs: addrs.into_iter().take(MAX_ADDRS).collect(),
        }
    }

    /// The owner's peer ID.
    pub fn owner(&self) -> PeerId {
        self.owner
    }

    /// The swarm it admits to.
    pub fn swarm(&self) -> SwarmId {
        self.swarm
    }

    /// Where the owner listens.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The same secret, for this owner at these addresses.
    pub(crate) fn at(&self, owner: PeerId, addrs: Vec<SocketAddr>) -> Ticket {
        Ticket {
            owner,
            addrs: addrs.into_iter().take(MAX_ADDRS).collect(),
            ..self.clone()
        }
    }

    /// The Noise pre-shared key every connection of the swarm proves.
    pub(crate) fn psk(&self) -> [u8; 32] {
        let mut material = [0u8; 32 + HASH_LEN];
        material[..32].copy_from_slice(&self.secret);
        material[32..].copy_from_slice(&self.swarm.0);
        blake3::derive_key(PSK_CONTEXT, &material)
    }

    /// The key the swarm's nodes announce themselves under in the DHT: derived from the
    /// secret, so only ticket holders can look the swarm up ([`crate::dht`]).
    pub(crate) fn dht_key(&self) -> [u8; 20] {
        let mut material = [0u8; 32 + HASH_LEN];
        material[..32].copy_from_slice(&self.secret);
        material[32..].copy_from_slice(&self.swarm.0);
        let full = blake3::derive_key(DHT_CONTEXT, &material);
        let mut key = [0u8; 20];
        key.copy_from_slice(&full[..20]);
        key
    }

    /// The ticket's text.
    pub fn encode(&self) -> String {
        let mut bytes = vec![FORMAT];
        bytes.extend_from_slice(&self.swarm.0);
        bytes.extend_from_slice(&self.secret);
        bytes.extend_from_slice(&self.owner.0);
        for a in &self.addrs {
            match a.ip() {
                IpAddr::V4(ip) => {
                    bytes.push(4);
                    bytes.extend_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    bytes.push(6);
                    bytes.extend_from_slice(&ip.octets());
                }
            }
            bytes.extend_from_slice(&a.port().to_be_bytes());
        }
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        format!("{PREFIX}{hex}")
    }

    /// The ticket kept in `store/ticket`, if it is a valid one for `swarm`.
    pub(crate) fn load(store: &Path, swarm: SwarmId) -> Option<Ticket> {
        let text = std::fs::read_to_string(store.join(TICKET_FILE)).ok()?;
        text.trim().parse::<Ticket>().ok().filter(|t| t.swarm == swarm)
    }

    /// Keeps it in `store/ticket`: mode 0600, written atomically.
    pub(crate) fn save(&self, store: &Path) -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(store)?;
        std::io::Write::write_all(&mut tmp, format!("{}\n", self.encode()).as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist(store.join(TICKET_FILE)).map_err(|e| e.error)?;
        Ok(())
    }
}

impl FromStr for Ticket {
    type Err = TicketError;

    fn from_str(text: &str) -> Result<Ticket, TicketError> {
        let hex = text.trim().strip_prefix(PREFIX).ok_or(TicketError::Prefix)?;
        if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(TicketError::Hex);
        }
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect();
        let (&format, rest) = bytes.split_first().ok_or(TicketError::Damaged("empty"))?;
        if format != FORMAT {
            return Err(TicketError::Damaged("unknown format"));
        }
        if rest.len() < HASH_LEN + 32 + PEER_ID_LEN {
            return Err(TicketError::Damaged("too short"));
        }
        let (swarm, rest) = rest.split_at(HASH_LEN);
        let (secret, rest) = rest.split_at(32);
        let (owner, mut rest) = rest.split_at(PEER_ID_LEN);
        let mut addrs = Vec::new();
        while let Some((&family, more)) = rest.split_first() {
            let ip_len = match family {
                4 => 4,
                6 => 16,
                _ => return Err(TicketError::Damaged("unknown address family")),
            };
            if more.len() < ip_len + 2 || addrs.len() == MAX_ADDRS {
                return Err(TicketError::Damaged("a cut-off address, or too many"));
            }
            let ip = match family {
                4 => IpAddr::from(
                    <[u8; 4]>::try_from(&more[..4]).map_err(|_| TicketError::Damaged("address"))?,
                ),
                _ => IpAddr::from(
                    <[u8; 16]>::try_from(&more[..16]).map_err(|_| TicketError::Damaged("address"))?,
                ),
            };
            let port = u16::from_be_bytes([more[ip_len], more[ip_len + 1]]);
            if port == 0 || ip.is_unspecified() {
                return Err(TicketError::Damaged("an address nobody can dial"));
            }
            addrs.push(SocketAddr::new(ip, port));
            rest = &more[ip_len + 2..];
        }
        if addrs.is_empty() {
            return Err(TicketError::Damaged("no address"));
        }
        let mut id = [0u8; HASH_LEN];
        id.copy_from_slice(swarm);
        let mut s = [0u8; 32];
        s.copy_from_slice(secret);
        let mut o = [0u8; PEER_ID_LEN];
        o.copy_from_slice(owner);
        Ok(Ticket {
            swarm: SwarmId(id),
            secret: s,
            owner: PeerId(o),
            addrs,
        })
    }
}

/// The addresses to put in a ticket for a node listening on `listen`: that address; for an
/// unspecified one, the address this host uses to reach other networks (learned without
/// sending a packet), then its other IPv4 addresses (from `/proc/net/fib_trie`), then
/// loopback last.
pub(crate) fn addrs_for(listen: SocketAddr) -> Vec<SocketAddr> {
    if !listen.ip().is_unspecified() {
        return vec![listen];
    }
    let outward = std::net::UdpSocket::bind((listen.ip(), 0))
        .and_then(|s| {
            let probe: SocketAddr = if listen.is_ipv4() {
                SocketAddr::from(([192, 0, 2, 1], 9))
            } else {
                SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1], 9))
            };
            s.connect(probe)?;
            s.local_addr()
        })
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_unspecified() && !ip.is_loopback());
    let mut ips: Vec<IpAddr> = outward.into_iter().collect();
    if listen.is_ipv4() {
        let table = std::fs::read_to_string("/proc/net/fib_trie").unwrap_or_default();
        for ip in local_ipv4s(&table) {
            if !ips.contains(&ip) {
                ips.push(ip);
            }
        }
        ips.push(IpAddr::from([127, 0, 0, 1]));
    } else {
        ips.push(IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]));
    }
    ips.into_iter()
        .take(MAX_ADDRS)
        .map(|ip| SocketAddr::new(ip, listen.port()))
        .collect()
}

/// This host's own IPv4 addresses other than loopback, from the kernel's routing trie: an
/// address line followed by a `/32 host LOCAL` line.
fn local_ipv4s(table: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut last: Option<IpAddr> = None;
    for line in table.lines() {
        let line = line.trim();
        if let Some(ip) = line.strip_prefix("|-- ").and_then(|t| t.parse::<IpAddr>().ok()) {
            last = Some(ip);
        } else if line == "/32 host LOCAL" {
            if let Some(ip) = last.take().filter(|ip| !ip.is_loopback() && !out.contains(ip)) {
                out.push(ip);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Ticket {
        Ticket::generate(
            SwarmId([9; 32]),
            PeerId([3; 16]),
            vec![
                "10.1.2.3:5000".parse().unwrap(),
                "[2001:db8::7]:6000".parse().unwrap(),
            ],
        )
    }

    #[test]
    fn a_ticket_round_trips_and_never_prints_its_secret() {
        let t = sample();
        let text = t.encode();
        assert!(text.starts_with("swsh1"));
        assert_eq!(text.parse::<Ticket>(), Ok(t.clone()));
        let secret: String = t.secret.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!format!("{t:?}").contains(&secret[..16]));
    }

    #[test]
    fn damaged_tickets_are_refused_with_a_reason() {
        let text = sample().encode();
        assert_eq!("swsh2ab".parse::<Ticket>(), Err(TicketError::Prefix));
        assert_eq!(format!("{text}z").parse::<Ticket>(), Err(TicketError::Hex));
        assert!(matches!(
            text[..text.len() - 2].parse::<Ticket>(),
            Err(TicketError::Damaged(_))
        ));
        assert!(matches!(
            text[..101].parse::<Ticket>(),
            Err(TicketError::Damaged(_))
        ));
        assert!(matches!(
            format!("{PREFIX}02").parse::<Ticket>(),
            Err(TicketError::Damaged(_))
        ));
    }

    #[test]
    fn one_changed_bit_or_another_swarm_is_another_key() {
        let t = sample();
        let mut flipped = t.clone();
        flipped.secret[7] ^= 0x10;
        assert_ne!(t.psk(), flipped.psk());
        let mut other = t.clone();
        other.swarm = SwarmId([8; 32]);
        assert_ne!(t.psk(), other.psk());
        assert_eq!(
            t.psk(),
            t.at(PeerId([4; 16]), vec!["10.0.0.1:1".parse().unwrap()]).psk()
        );
    }

    #[test]
    fn an_owner_on_every_address_names_them_all_loopback_last() {
        let table = "Main:\n  +-- 0.0.0.0/0 3 0 5\n     |-- 127.0.0.1\n        /32 host LOCAL\n     |-- 10.78.0.1\n        /32 host LOCAL\n     |-- 10.78.0.255\n        /32 link BROADCAST\nLocal:\n     |-- 10.78.0.1\n        /32 host LOCAL\n";
        assert_eq!(local_ipv4s(table), vec![IpAddr::from([10, 78, 0, 1])]);
        let addrs = addrs_for("0.0.0.0:7000".parse().unwrap());
        assert_eq!(addrs.last(), Some(&"127.0.0.1:7000".parse().unwrap()));
        assert!(addrs.iter().all(|a| a.port() == 7000 && !a.ip().is_unspecified()));
        assert_eq!(
            addrs_for("10.1.1.1:5".parse().unwrap()),
            vec!["10.1.1.1:5".parse().unwrap()]
        );
    }

    #[test]
    fn a_kept_ticket_is_private_and_only_for_its_swarm() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let t = sample();
        t.save(dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(TICKET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Ticket::load(dir.path(), t.swarm()), Some(t));
        assert_eq!(Ticket::load(dir.path(), SwarmId([1; 32])), None);
    }
}
