//! Two NATs (issue 18): a public segment with the owner and two peers, and two routers
//! that each masquerade three peers behind them (nftables), every node in its own network
//! namespace, every node's link to the segment shaped with tbf. Peers behind one NAT
//! cannot dial those behind the other: a public peer relays for them and introduces them,
//! they punch a hole through both NATs and trade directly; peers behind the same NAT trade
//! over their own network.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::netlab::{nat_host_ip, node_ip, unavailable, Net, NsProc};
use super::util::{count_of, peer_args, random_file, same_file, stop_capture, wait_until};

const PORT: u16 = 7400;
const SIZE: usize = 50_000_000;
const RATE: &str = "50mbit";
/// Nodes on the segment: 0 the owner, 1 and 2 public peers, 3 and 4 the NATs' routers.
const ROUTERS: [usize; 2] = [3, 4];

fn start_peer(logs: &Path, name: &str, ns: &str, bind: &str) -> NsProc {
    start_peer_with(logs, name, ns, bind, &[])
}

fn start_peer_with(logs: &Path, name: &str, ns: &str, bind: &str, extra: &[&str]) -> NsProc {
    let args = peer_args(&format!("{}:{PORT}", node_ip(0)), PORT, bind, &logs.join(name));
    let args: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .chain(extra.iter().copied())
        .collect();
    NsProc::start(logs, name, ns, &args)
}

/// A public peer at node 1 (the relay, uploading at 400 KB/s) and one peer behind each of
/// the NATs of routers 2 and 3 (`behind`), named `relay`, `a` and `b`.
fn start_relay_and_pair(logs: &Path, net: &Net, behind: &[Vec<String>; 2]) -> (NsProc, NsProc, NsProc) {
    let relay = start_peer_with(
        logs,
        "relay",
        &net.nodes[1],
        &node_ip(1),
        &["--upload-limit", "400KB"],
    );
    let a = start_peer(logs, "a", &behind[0][0], &nat_host_ip(2, 0));
    let b = start_peer(logs, "b", &behind[1][0], &nat_host_ip(3, 0));
    (relay, a, b)
}

/// Bytes of the chunks `p` received, by the IP they came from.
fn received_from(p: &NsProc) -> HashMap<String, u64> {
    let mut by_ip = HashMap::new();
    for e in p.events().iter().filter(|e| e["event"] == "chunk_received") {
        let ip = e["peer"]
            .as_str()
            .unwrap_or_default()
            .rsplit_once(':')
            .map_or("", |(ip, _)| ip);
        *by_ip.entry(ip.to_owned()).or_default() += e["bytes"].as_u64().unwrap_or(0);
    }
    by_ip
}

fn bytes_of(p: &NsProc, event: &str, field: &str) -> u64 {
    p.events()
        .iter()
        .filter(|e| e["event"] == event)
        .map(|e| e[field].as_u64().unwrap_or(0))
        .sum()
}

fn links(p: &NsProc, how: &str) -> Vec<Value> {
    p.events()
        .into_iter()
        .filter(|e| e["event"] == "nat_link" && e["how"] == how)
        .collect()
}

#[test]
fn peers_behind_two_nats_punch_through_relay_and_trade_on_their_lan() {
    let made = Net::create("nats", &[Some(RATE); 5]).and_then(|mut net| {
        let a = net.add_nat(ROUTERS[0], 3)?;
        let b = net.add_nat(ROUTERS[1], 3)?;
        Ok((net, [a, b]))
    });
    let (net, behind) = match made {
        Ok(made) => made,
        Err(reason) => return unavailable("peers_behind_two_nats", &reason),
    };
    let root = tempfile::Builder::new()
        .prefix("swarmshare-nats-")
        .tempdir()
        .unwrap();
    let logs = root.path();
    let file = logs.join("owner").join("payload.bin");
    fs::create_dir(logs.join("owner")).unwrap();
    random_file(&file, SIZE, 1818);
    let owner = NsProc::start_owner(logs, &net.nodes[0], PORT, &file, &["--peers", "2"]);
    let started = Instant::now();
    let public: Vec<NsProc> = (1..=2)
        .map(|i| start_peer(logs, &format!("public{i}"), &net.nodes[i], &node_ip(i)))
        .collect();
    let natted: Vec<Vec<NsProc>> = behind
        .iter()
        .zip(ROUTERS)
        .enumerate()
        .map(|(n, (hosts, router))| {
            hosts
                .iter()
                .enumerate()
                .map(|(k, ns)| start_peer(logs, &format!("nat{n}{k}"), ns, &nat_host_ip(router, k)))
                .collect()
        })
        .collect();
    let names: Vec<String> = std::iter::once("public1".to_owned())
        .chain(std::iter::once("public2".to_owned()))
        .chain((0..2).flat_map(|n| (0..3).map(move |k| format!("nat{n}{k}"))))
        .collect();
    let copies: Vec<_> = names.iter().map(|n| logs.join(n).join("payload.bin")).collect();
    let done = wait_until(Duration::from_secs(240), || copies.iter().all(|c| c.exists()));
    let elapsed = started.elapsed().as_secs_f64();
    if !done {
        let kept = root.keep();
        panic!(
            "not every peer completed within 240 s (logs in {})",
            kept.display()
        );
    }
    for c in &copies {
        assert!(same_file(&file, c), "{} differs", c.display());
    }
    let all_natted: Vec<&NsProc> = natted.iter().flatten().collect();
    let sent: u64 = all_natted
        .iter()
        .map(|p| bytes_of(p, "chunk_sent", "bytes"))
        .sum();
    let got: u64 = all_natted
        .iter()
        .map(|p| bytes_of(p, "chunk_received", "bytes"))
        .sum();
    // Between the two NATs: direct bytes come from the other router's address; relayed
    // ones went through a public peer's circuits.
    let direct: u64 = (0..2)
        .map(|n| {
            let other = node_ip(ROUTERS[1 - n]);
            natted[n]
                .iter()
                .map(|p| received_from(p).get(&other).copied().unwrap_or(0))
                .sum::<u64>()
        })
        .sum();
    let mut public = public;
    for p in &mut public {
        p.terminate(Duration::from_secs(10));
    }
    let relayed: u64 = public.iter().map(|p| bytes_of(p, "relay_circuit", "bytes")).sum();
    let lan: u64 = (0..2)
        .map(|n| {
            let lan_prefix = format!("{}.", super::netlab::nat_lan(ROUTERS[n]));
            natted[n]
                .iter()
                .flat_map(|p| received_from(p).into_iter())
                .filter(|(ip, _)| ip.starts_with(&lan_prefix))
                .map(|(_, b)| b)
                .sum::<u64>()
        })
        .sum();
    let punched: usize = all_natted.iter().map(|p| links(p, "punched").len()).sum();
    let via_relay: usize = all_natted.iter().map(|p| links(p, "relayed").len()).sum();
    let via_lan: usize = all_natted.iter().map(|p| links(p, "lan").len()).sum();
    let owner_sent = bytes_of(&owner, "chunk_sent", "bytes");
    eprintln!(
        "all complete after {elapsed:.1} s; behind the NATs: sent {sent} received {got}; between the NATs: direct {direct} relayed {relayed}; on their own networks {lan}; link ends: {punched} punched, {via_relay} relayed, {via_lan} over a LAN; owner sent {:.2} F",
        owner_sent as f64 / SIZE as f64
    );
    assert!(
        sent * 10 >= got * 3,
        "peers behind the NATs sent {sent} bytes for {got} received"
    );
    assert!(punched > 0, "no hole was punched between the NATs");
    assert!(direct > 0, "nothing went directly between the NATs");
    assert!(
        direct * 10 >= (direct + relayed) * 8,
        "between the NATs: {direct} bytes direct, {relayed} relayed"
    );
    assert!(
        lan > 0,
        "peers behind the same NAT traded nothing over their own network"
    );
    assert!(
        owner_sent * 2 <= SIZE as u64 * 3,
        "the owner sent {owner_sent} bytes"
    );
    drop((public, natted, owner));
    drop(net);
}

/// Bytes that spell out the canary, every 64 KiB of the file.
const CANARY: &[u8] = b"CANARY-relay-3d1f-do-not-leak-CANARY";

#[test]
fn a_relay_carries_what_no_hole_lets_through_and_reads_none_of_it() {
    // The owner, a public peer (the relay), a NAT that keeps ports and one that does not.
    let made = Net::create("relay", &[None, None, None, None]).and_then(|mut net| {
        let a = net.add_nat(2, 1)?;
        let b = net.add_random_nat(3, 1)?;
        Ok((net, [a, b]))
    });
    let (net, behind) = match made {
        Ok(made) => made,
        Err(reason) => return unavailable("a_relay_carries", &reason),
    };
    let Some(tcpdump) = ["/usr/bin/tcpdump", "/usr/sbin/tcpdump"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        return unavailable("a_relay_carries", "there is no tcpdump");
    };
    let root = tempfile::Builder::new()
        .prefix("swarmshare-relay-")
        .tempdir()
        .unwrap();
    let logs = root.path();
    fs::create_dir(logs.join("owner")).unwrap();
    let file = logs.join("owner").join("payload.bin");
    random_file(&file, 8_000_000, 1819);
    let mut data = fs::read(&file).unwrap();
    for at in (0..data.len() - CANARY.len()).step_by(64 * 1024) {
        data[at..at + CANARY.len()].copy_from_slice(CANARY);
    }
    fs::write(&file, &data).unwrap();
    // Everything the relay's host sends or receives.
    let capture = logs.join("relay.pcap");
    let dump = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &net.nodes[1],
            tcpdump,
            "-i",
            "any",
            "-U",
            "-s",
            "0",
            "-w",
        ])
        .arg(&capture)
        .arg("tcp")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    // The owner gives slowly, so the two behind the NATs hold different chunks.
    let slowly = ["--peers", "1", "--upload-limit", "1MB"];
    let owner = NsProc::start_owner(logs, &net.nodes[0], PORT, &file, &slowly);
    // A slow relay: the two behind the NATs need each other's chunks.
    let (relay, a, b) = start_relay_and_pair(logs, &net, &behind);
    let copies = ["relay", "a", "b"].map(|n| logs.join(n).join("payload.bin"));
    let done = wait_until(Duration::from_secs(180), || copies.iter().all(|c| c.exists()));
    stop_capture(dump, &capture);
    if !done {
        let kept = root.keep();
        panic!(
            "not every peer completed within 180 s (logs in {})",
            kept.display()
        );
    }
    for c in &copies {
        assert!(same_file(&file, c), "{} differs", c.display());
    }
    // The relay logs each circuit's bytes as it ends, on its way out too.
    let mut relay = relay;
    relay.terminate(Duration::from_secs(10));
    let relayed = bytes_of(&relay, "relay_circuit", "bytes");
    let circuits: usize = [&a, &b].iter().map(|p| links(p, "relayed").len()).sum();
    let punched: usize = [&a, &b].iter().map(|p| links(p, "punched").len()).sum();
    eprintln!("relayed {relayed} bytes over {circuits} circuit ends; {punched} holes punched");
    assert_eq!(
        punched, 0,
        "a hole was punched through a NAT that randomizes ports"
    );
    assert!(
        circuits >= 2,
        "the two behind the NATs never met through the relay"
    );
    assert!(
        relayed > 10 * 102_400,
        "the relay forwarded {relayed} bytes, not even ten chunks"
    );
    let wire = fs::read(&capture).unwrap();
    assert!(
        wire.len() as u64 > relayed,
        "the capture holds the relay's traffic ({} bytes)",
        wire.len()
    );
    assert!(
        !wire.windows(CANARY.len()).any(|w| w == CANARY),
        "the file's bytes crossed the relay's wire in clear"
    );
    drop((relay, a, b, owner));
    drop(net);
}

#[test]
fn peers_behind_nats_meet_through_the_owner_when_no_peer_can_relay() {
    owner_only("ownr", "owner alone", Net::add_nat);
}

#[test]
fn peers_behind_home_routers_that_drop_strangers_punch_through_too() {
    // Routers that drop what nobody inside asked for (where plain masquerade answers
    // RST): an attempt waits for the other side's SYN instead of failing at once.
    owner_only("home", "home routers", Net::add_firewalled_nat);
}

/// Only the owner can be dialled (it introduces, and forwards nothing): two NATs made by
/// `nat` with two peers each, 20 MB; they must meet on their LAN and punch between the NATs.
fn owner_only(name: &str, label: &str, nat: fn(&mut Net, usize, usize) -> Result<Vec<String>, String>) {
    let made = Net::create(name, &[Some(RATE); 3]).and_then(|mut net| {
        let a = nat(&mut net, 1, 2)?;
        let b = nat(&mut net, 2, 2)?;
        Ok((net, [a, b]))
    });
    let (net, behind) = match made {
        Ok(made) => made,
        Err(reason) => return unavailable(label, &reason),
    };
    let root = tempfile::Builder::new()
        .prefix(&format!("swarmshare-{name}-"))
        .tempdir()
        .unwrap();
    let logs = root.path();
    fs::create_dir(logs.join("owner")).unwrap();
    let file = logs.join("owner").join("payload.bin");
    let size = 20_000_000;
    random_file(&file, size, 1820);
    // An owner slower than the links: the two NATs must trade, not both fetch from it.
    let slower = ["--upload-limit", "2MB"];
    let mut owner = NsProc::start_owner(logs, &net.nodes[0], PORT, &file, &slower);
    let peers: Vec<NsProc> = (0..2)
        .flat_map(|n| (0..2).map(move |k| (n, k)))
        .map(|(n, k)| start_peer(logs, &format!("nat{n}{k}"), &behind[n][k], &nat_host_ip(n + 1, k)))
        .collect();
    let copies: Vec<_> = peers
        .iter()
        .map(|p| logs.join(&p.name).join("payload.bin"))
        .collect();
    let started = std::time::Instant::now();
    let done = wait_until(Duration::from_secs(240), || copies.iter().all(|c| c.exists()));
    if !done {
        let kept = root.keep();
        panic!(
            "not every peer completed within 240 s (logs in {})",
            kept.display()
        );
    }
    let took = started.elapsed();
    for c in &copies {
        assert!(same_file(&file, c), "{} differs", c.display());
    }
    owner.terminate(Duration::from_secs(10));
    let punched: usize = peers.iter().map(|p| links(p, "punched").len()).sum();
    let lan: usize = peers.iter().map(|p| links(p, "lan").len()).sum();
    let owner_sent = bytes_of(&owner, "chunk_sent", "bytes");
    eprintln!(
        "{label}: all complete after {:.1} s; {punched} punched and {lan} LAN link ends; owner sent {:.2} F",
        took.as_secs_f64(),
        owner_sent as f64 / size as f64
    );
    assert!(lan > 0, "the two behind one NAT never met on their network");
    assert!(punched > 0, "no hole was punched between the NATs");
    // Each NAT needs the file once from outside; without the punched links the owner
    // would send it twice over.
    assert!(owner_sent < 2 * size as u64, "the owner sent {owner_sent} bytes");
    drop((peers, owner));
    drop(net);
}

#[test]
fn a_relayed_pair_moves_to_a_direct_connection_once_a_hole_can_be_punched() {
    // Two plain NATs whose routers first drop everything to and from each other, before
    // connection tracking sees it (no hole can be punched: the pair meets through the
    // relay), then stop.
    let made = Net::create("upgr", &[None, None, None, None]).and_then(|mut net| {
        let a = net.add_nat(2, 1)?;
        let b = net.add_nat(3, 1)?;
        Ok((net, [a, b]))
    });
    let (net, behind) = match made {
        Ok(made) => made,
        Err(reason) => return unavailable("a_relayed_pair_moves", &reason),
    };
    let wall = |router: usize, other: usize, up: bool| {
        let ns = &net.nodes[router];
        let rules = if up {
            format!(
                "table inet wall {{ chain pre {{ type filter hook prerouting priority -300; ip saddr {0} drop; ip daddr {0} drop; }}; }}",
                node_ip(other)
            )
        } else {
            "delete table inet wall".to_owned()
        };
        super::netlab::must("ip", &["netns", "exec", ns, "nft", &rules]);
    };
    wall(2, 3, true);
    wall(3, 2, true);
    let root = tempfile::Builder::new()
        .prefix("swarmshare-upgr-")
        .tempdir()
        .unwrap();
    let logs = root.path();
    fs::create_dir(logs.join("owner")).unwrap();
    let file = logs.join("owner").join("payload.bin");
    let size = 16_000_000;
    random_file(&file, size, 1821);
    // Slow sources, so the pair is still trading when the walls come down.
    let slowly = ["--peers", "1", "--upload-limit", "300KB"];
    let owner = NsProc::start_owner(logs, &net.nodes[0], PORT, &file, &slowly);
    let (relay, a, b) = start_relay_and_pair(logs, &net, &behind);
    let met = wait_until(Duration::from_secs(60), || !links(&a, "relayed").is_empty());
    assert!(met, "the pair never met through the relay");
    assert!(links(&a, "punched").is_empty(), "a hole through the walls");
    wall(2, 3, false);
    wall(3, 2, false);
    // The relay introduces them again within 45 s; they punch, and the direct connection
    // takes the circuit's place (long before the circuit's 120 s).
    let upgraded = wait_until(Duration::from_secs(90), || {
        [&a, &b].iter().any(|p| count_of(&p.events(), "nat_upgrade") > 0)
    });
    let copies = ["relay", "a", "b"].map(|n| logs.join(n).join("payload.bin"));
    let done = wait_until(Duration::from_secs(180), || copies.iter().all(|c| c.exists()));
    if !(upgraded && done) {
        let kept = root.keep();
        panic!(
            "upgraded: {upgraded}, all complete: {done} (logs in {})",
            kept.display()
        );
    }
    for c in &copies {
        assert!(same_file(&file, c), "{} differs", c.display());
    }
    let punched: usize = [&a, &b].iter().map(|p| links(p, "punched").len()).sum();
    // After the upgrade chunks flow between the two over the punched connection (named,
    // as the circuit was, by the other NAT's address: told apart by time).
    let at = |p: &NsProc, event: &str| -> Vec<String> {
        p.events()
            .into_iter()
            .filter(|e| e["event"] == event)
            .filter_map(|e| e["timestamp"].as_str().map(str::to_owned))
            .collect()
    };
    let since = [&a, &b]
        .iter()
        .flat_map(|p| at(p, "nat_upgrade"))
        .min()
        .unwrap_or_default();
    let direct: u64 = [(&a, 3), (&b, 2)]
        .iter()
        .flat_map(|(p, other)| {
            let (other, since) = (format!("{}:", node_ip(*other)), since.clone());
            p.events().into_iter().filter(move |e| {
                e["event"] == "chunk_received"
                    && e["peer"].as_str().unwrap_or_default().starts_with(&other)
                    && e["timestamp"].as_str().unwrap_or_default() > since.as_str()
            })
        })
        .map(|e| e["bytes"].as_u64().unwrap_or(0))
        .sum();
    let mut relay = relay;
    relay.terminate(Duration::from_secs(10));
    // The circuit ended with the upgrade (the relay logs it), not at its 120 s cap.
    let ended = at(&relay, "relay_circuit");
    eprintln!(
        "upgraded at {since}: {punched} punched link ends, {direct} bytes between the pair since; circuits ended at {ended:?}"
    );
    assert!(punched >= 1, "no hole punched once the walls came down");
    assert!(direct > 0, "nothing moved over the direct connection");
    // Seconds of the day of a log timestamp ("…T16:49:30.371662Z").
    let secs = |t: &str| -> f64 {
        let clock = t.split_once('T').map_or("", |(_, c)| c.trim_end_matches('Z'));
        clock
            .split(':')
            .map(|x| x.parse::<f64>().unwrap_or(f64::NAN))
            .fold(0.0, |acc, x| acc * 60.0 + x)
    };
    assert!(
        ended.iter().any(|t| (secs(t) - secs(&since)).abs() < 5.0),
        "the relay's circuit did not end with the upgrade"
    );
    drop((relay, a, b, owner));
    drop(net);
}
