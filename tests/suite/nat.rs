//! Peers behind a NAT (issue 18), on a wire: an owner and a peer on a public segment, and
//! two peers behind a router that masquerades them (nftables), each node in its own
//! network namespace (so the host's own network answers nothing it should not). The hosts
//! behind the NAT can dial out and nobody can dial them. They must complete, learn that
//! they cannot be reached and the address the world sees them at, and still give chunks to
//! the public peer over the links they dialled.

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use super::netlab::{nat_host_ip, node_ip, unavailable, Net, NsProc};
use super::util::{count_of, peer_args, random_file, same_file, wait_until};

const PORT: u16 = 7400;

fn peer(logs: &Path, name: &str, ns: &str, bind: &str, dir: &Path) -> NsProc {
    let args = peer_args(&format!("{}:{PORT}", node_ip(0)), PORT, bind, dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    NsProc::start(logs, name, ns, &args)
}

#[test]
fn peers_behind_a_nat_complete_know_it_and_give_over_the_links_they_dial() {
    // The owner, a public peer, and the NAT's router (node 2, 10.77.0.12 outside).
    let made = Net::create("nat", &[None, None, None]).and_then(|mut net| {
        let hosts = net.add_nat(2, 2)?;
        Ok((net, hosts))
    });
    let (net, hosts) = match made {
        Ok(made) => made,
        Err(reason) => return unavailable("peers_behind_a_nat", &reason),
    };
    let root = tempfile::Builder::new()
        .prefix("swarmshare-nat-")
        .tempdir()
        .unwrap();
    let logs = root.path();
    let file = logs.join("owner").join("payload.bin");
    fs::create_dir(logs.join("owner")).unwrap();
    random_file(&file, 6_000_000, 77);
    let slowly = ["--peers", "1", "--upload-limit", "1MB"];
    let owner = NsProc::start_owner(logs, &net.nodes[0], PORT, &file, &slowly);
    // The hosts behind the NAT come first and get a part of the file from the owner's
    // allowance for peers it cannot dial back; then the public peer joins.
    let natted: Vec<NsProc> = hosts
        .iter()
        .enumerate()
        .map(|(k, ns)| {
            let bind = nat_host_ip(2, k);
            peer(logs, &format!("nat{k}"), ns, &bind, &logs.join(format!("nat{k}")))
        })
        .collect();
    let started = Instant::now();
    let some = wait_until(Duration::from_secs(30), || {
        natted
            .iter()
            .all(|p| count_of(&p.events(), "chunk_received") >= 5)
    });
    assert!(some, "the peers behind the NAT got nothing from the owner");
    let public = peer(logs, "public", &net.nodes[1], &node_ip(1), &logs.join("public"));
    let copies = [logs.join("public"), logs.join("nat0"), logs.join("nat1")].map(|d| d.join("payload.bin"));
    let done = wait_until(Duration::from_secs(120), || copies.iter().all(|c| c.exists()));
    assert!(done, "not every peer completed within 120 s");
    eprintln!("all complete after {:.1} s", started.elapsed().as_secs_f64());
    for c in &copies {
        assert!(same_file(&file, c), "{} differs", c.display());
    }
    // Each peer behind the NAT knows nobody can dial it, and where the world sees it (its
    // first question goes a second after it starts; one that got no answer asks again
    // 10 s later).
    let asked = wait_until(Duration::from_secs(45), || {
        natted.iter().all(|p| count_of(&p.events(), "reachability") > 0)
    });
    assert!(asked, "a peer behind the NAT never learned where it stands");
    for p in &natted {
        let standing = p
            .events()
            .into_iter()
            .rev()
            .find(|e| e["event"] == "reachability");
        let standing = standing.unwrap_or_else(|| panic!("{} logged no reachability", p.name));
        assert_eq!(standing["reachable"], false, "{standing}");
        let seen = standing["seen"].as_str().unwrap_or_default();
        assert!(seen.starts_with(&format!("{}:", node_ip(2))), "seen as {seen}");
    }
    let public_standing = public
        .events()
        .into_iter()
        .rev()
        .find(|e| e["event"] == "reachability");
    if let Some(s) = public_standing {
        assert_eq!(s["reachable"], true, "{s}");
    }
    // They gave chunks over the links they dialled (nobody could dial them).
    let sent: usize = natted.iter().map(|p| count_of(&p.events(), "chunk_sent")).sum();
    let received: usize = natted
        .iter()
        .map(|p| count_of(&p.events(), "chunk_received"))
        .sum();
    eprintln!("behind the NAT: {sent} chunks sent, {received} received");
    assert!(
        sent > 0,
        "the peers behind the NAT gave nothing ({received} received)"
    );
    drop((public, natted, owner));
    drop(net);
}
