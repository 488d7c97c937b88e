//! Two-way links and knowing where you stand (issue 18): a peer nobody can dial learns so,
//! and still gives what it has over the links it dials. Here it listens on 127.0.0.2 while its connections come from 127.0.0.1, so the
//! address everyone knows it by (its connections' address, its announced port) answers
//! nothing: the owner cannot prove it, and no peer can dial it.

use std::path::Path;
use std::time::Duration;

use super::swarm::{events_of, Swarm};
use super::util::{count_of, free_port, peer_args, same_file, wait_until, Proc};

/// Starts a peer that joins through the swarm's owner and listens where nobody looks.
fn hidden_peer(swarm: &Swarm, dir: &Path) -> Proc {
    let args = peer_args(&swarm.owner_port.to_string(), free_port(), "127.0.0.2", dir);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Proc::start(&swarm.logs(), "hidden", &args)
}

fn count(proc: &Proc, event: &str) -> usize {
    count_of(&events_of(proc), event)
}

#[test]
fn a_peer_nobody_can_dial_still_uploads_over_the_links_it_dials() {
    let mut swarm = Swarm::new(4_000_000, 2, 181);
    // The owner gives slowly, so the swarm trades for a few seconds.
    swarm.owner_args = vec!["--upload-limit".into(), "1MB".into()];
    swarm.start_owner(2);
    // The hidden peer comes first and gets a part of the file from the owner (paced, as
    // for anyone the owner cannot prove), so it holds chunks the others will lack.
    let dir = swarm.root.path().join("hidden");
    let mut hidden = hidden_peer(&swarm, &dir);
    assert!(
        wait_until(Duration::from_secs(30), || count(&hidden, "chunk_received") >= 10),
        "the hidden peer got nothing from the owner: {}",
        hidden.errors()
    );
    swarm.start_swarm_peer(0);
    swarm.start_swarm_peer(1);
    swarm.wait_all_complete(Duration::from_secs(90));
    let copy = dir.join("payload.bin");
    assert!(
        wait_until(Duration::from_secs(60), || copy.exists()),
        "the hidden peer did not complete: {}",
        hidden.errors()
    );
    assert!(same_file(&swarm.file, &copy));
    // Nobody could dial it: the owner never proved it, so whatever it gave went over links
    // it dialled, which the others took both ways.
    let sent = count(&hidden, "chunk_sent");
    let lists = count(&hidden, "chunk_list_sent");
    let received = count(&hidden, "chunk_received");
    // It gives about as much as it takes (here ~37 of 40): at least 30%.
    assert!(
        sent * 10 >= received * 3,
        "the hidden peer sent {sent} chunks ({lists} lists) and received {received}"
    );
    let adopted: usize = (0..2)
        .map(|i| {
            let out = swarm.peer(i).output();
            out.matches("fetching over a link it dialled").count()
        })
        .sum();
    assert!(adopted > 0, "no peer took the hidden peer's offer");
    // Each knows where it stands: the owner dialled each back when asked.
    let standing = |p: &Proc| {
        events_of(p)
            .iter()
            .rev()
            .find(|e| e["event"] == "reachability")
            .and_then(|e| e["reachable"].as_bool())
    };
    // (A question the owner could not check now is asked again 10 s later.)
    let known = wait_until(Duration::from_secs(30), || {
        standing(&hidden).is_some() && standing(swarm.peer(0)).is_some()
    });
    assert!(known, "a peer never learned where it stands");
    assert_eq!(
        standing(&hidden),
        Some(false),
        "the hidden peer knows nobody can dial it"
    );
    assert_eq!(
        standing(swarm.peer(0)),
        Some(true),
        "a peer that listens where it says knows it"
    );
    hidden.terminate(Duration::from_secs(5));
}
