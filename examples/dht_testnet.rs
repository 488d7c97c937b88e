//! A Mainline DHT testnet on this machine, for benchmarks and trials without internet:
//! `cargo run --release --example dht_testnet [NODES] [BIND_IP]` starts NODES (default 5)
//! DHT nodes on BIND_IP (default 127.0.0.1), prints their addresses on one line as
//! `--dht-bootstrap` takes them, and runs until its standard input closes.

use std::io::Read;
use std::net::Ipv4Addr;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let count = match args.next().map(|a| a.parse::<usize>()) {
        None => 5,
        Some(Ok(n)) if (1..=64).contains(&n) => n,
        Some(_) => {
            eprintln!("error: NODES must be a number from 1 to 64");
            return ExitCode::from(2);
        }
    };
    let bind = match args.next().map(|a| a.parse::<Ipv4Addr>()) {
        None => Ipv4Addr::LOCALHOST,
        Some(Ok(ip)) => ip,
        Some(Err(e)) => {
            eprintln!("error: BIND_IP is not an IPv4 address ({e})");
            return ExitCode::from(2);
        }
    };
    let net = match mainline::Testnet::builder(count).bind_address(bind).build() {
        Ok(net) => net,
        Err(e) => {
            eprintln!("error: cannot start the testnet ({e})");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", net.bootstrap.join(","));
    // Runs until whoever started it closes our input.
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    ExitCode::SUCCESS
}
