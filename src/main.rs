//! The `swarmshare` command: parses arguments into validated configs and calls the
//! library. No protocol logic lives here.
//!
//! Exit codes: 0 success (or a clean shutdown on Ctrl-C / SIGTERM); 1 failure while
//! running; 2 invalid input (arguments, the file, a busy port, an unusable directory).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use swarmshare::config::{
    parse_http_addr, parse_rate, parse_size, ChunkFiles, ConfigError, DemoConfig, DhtSetting, Endpoint,
    OwnerConfig, PeerConfig,
};
use swarmshare::logging::{self, LogFormat};
use swarmshare::owner::{Owner, OwnerSockets};
use swarmshare::peer::Peer;
use swarmshare::progress::Bars;
use swarmshare::ticket::Ticket;
use swarmshare::{demo, status, Error};

#[derive(Parser)]
#[command(
    name = "swarmshare",
    version,
    about = "Share one file with many peers: an owner, a ring of peers, verified chunks",
    after_help = "Examples:\n  swarmshare owner 5000 movie.mkv --peers 5 --http 8080\n  swarmshare peer 5000 5001 5002 --dir peer1\n  swarmshare demo --size 100MiB --linger 30\n\nExit codes: 0 success (or stopped by Ctrl-C/SIGTERM), 1 failure while running, 2 invalid input (nothing started)."
)]
struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    log_format: Format,
    /// Only warnings and errors (no line per chunk); RUST_LOG overrides.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// More detail: -v for debug lines, -vv for trace; RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Split FILE into chunks and serve them to peers.
    #[command(after_help = "Example:\n  swarmshare owner 5000 movie.mkv --peers 5")]
    Owner(OwnerArgs),
    /// Join a swarm: get a batch from the owner, then trade chunks with neighbors.
    #[command(
        after_help = "Example (the seed's first peer, in its own folder):\n  swarmshare peer 5000 5001 5002 --dir peer1"
    )]
    Peer(PeerArgs),
    /// Run an owner and a ring of peers on this machine and check every copy.
    #[command(after_help = "Example:\n  swarmshare demo --peers 5 --size 4MiB")]
    Demo(DemoArgs),
    /// Show what a peer's (or owner's) directory holds: manifest, verified chunks, missing
    /// and damaged chunk IDs, what the summary claims. Read-only.
    #[command(
        after_help = "Examples:\n  swarmshare status peer1\n  swarmshare status peer1 --json | jq .missing"
    )]
    Status(StatusArgs),
    /// Show the manifest FILE would have (chunk count, sizes, swarm ID) without serving it.
    #[command(after_help = "Example:\n  swarmshare inspect movie.mkv --json")]
    Inspect(InspectArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  swarmshare completions bash > /etc/bash_completion.d/swarmshare\n  swarmshare completions zsh > ~/.zfunc/_swarmshare"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    #[command(after_help = "Example:\n  swarmshare man > /usr/local/share/man/man1/swarmshare.1")]
    Man,
}

#[derive(clap::Args)]
struct StatusArgs {
    /// The directory given to `peer --dir` (or `owner --dir`).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct InspectArgs {
    /// The file.
    file: PathBuf,
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct OwnerArgs {
    /// TCP port to listen on.
    port: u16,
    /// The file to share: a path relative to the current directory, not to --dir.
    file: PathBuf,
    /// How many peers the first round is for: the first N proven peers each get a share of
    /// about chunks / N (together the file once); later peers get none.
    #[arg(long, default_value_t = 5)]
    peers: u32,
    /// Say it is safe to leave once every chunk is held by at least this many peers.
    #[arg(long, default_value_t = 1)]
    safe_copies: u32,
    /// Cap on upload, bytes per second across all connections (10MB, 500KiB, 1000000).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    upload_limit: Option<u64>,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    bind: IpAddr,
    /// Serve the live web view here: PORT (on 127.0.0.1) or IP:PORT.
    #[arg(long, value_name = "ADDR", value_parser = parse_http_addr)]
    http: Option<SocketAddr>,
    /// Work directory for the chunk files (kept in DIR/.swarmshare).
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// A private swarm: print a ticket (and keep it in DIR/.swarmshare/ticket); only peers
    /// holding it can connect to any node of the swarm.
    #[arg(long)]
    private: bool,
    /// Chunk files in DIR/.swarmshare/chunks: auto (clones of FILE where the filesystem
    /// shares blocks, none elsewhere), copy (copies elsewhere), none.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    chunk_files: ChunkFiles,
    /// Bootstrap nodes of the Mainline DHT, HOST:PORT,... (default: the public ones). The
    /// swarm is announced and looked up there under a key derived from the swarm (from the
    /// ticket's secret for a private swarm).
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',', value_parser = parse_dht_node)]
    dht_bootstrap: Vec<Endpoint>,
    /// No DHT: neither announce this node nor look the swarm up there.
    #[arg(long, conflicts_with = "dht_bootstrap")]
    no_dht: bool,
}

#[derive(clap::Args)]
struct PeerArgs {
    /// OWNER PORT [DOWNLOAD_NEIGHBOR]; with --join, OWNER may be left out: the owner (a
    /// port on this machine, or HOST:PORT), the TCP port this peer listens on, and the
    /// download neighbor the seed's ring names (preferred, not exclusive).
    #[arg(value_name = "[OWNER] PORT [DOWNLOAD_NEIGHBOR]", num_args = 1..=3, required = true)]
    args: Vec<String>,
    /// Join a private swarm with the ticket its owner printed; then the arguments are
    /// PORT [DOWNLOAD_NEIGHBOR] (the owner's address is in the ticket).
    #[arg(long, value_name = "TICKET")]
    ticket: Option<Ticket>,
    /// As --ticket, the ticket read from FILE (keeps the secret out of the process list).
    #[arg(long, value_name = "FILE", conflicts_with = "ticket")]
    ticket_file: Option<PathBuf>,
    /// Join through this peer, already in the swarm, instead of the owner.
    #[arg(long, value_name = "HOST:PORT")]
    join: Option<Endpoint>,
    /// How many neighbors to download from at once.
    #[arg(long, default_value_t = swarmshare::config::DEFAULT_NEIGHBORS)]
    neighbors: usize,
    /// Cap on upload, bytes per second across all connections (10MB, 500KiB, 1000000).
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    upload_limit: Option<u64>,
    /// Cap on download, bytes per second across all connections.
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    download_limit: Option<u64>,
    /// Exit (status 0) once complete for 3 s and no neighbor has asked for anything for 3 s.
    #[arg(long)]
    exit_when_done: bool,
    /// With --exit-when-done: exit at the latest this many seconds after completing.
    #[arg(long, value_name = "SECS", requires = "exit_when_done")]
    seed_time: Option<u64>,
    /// Do not wait for the disk: skip fsync. A killed peer loses no more than with syncing
    /// (every file appears whole or not at all); after a power cut, chunks may need
    /// fetching again.
    /// For scratch disks and benchmarks.
    #[arg(long)]
    no_fsync: bool,
    /// Serve the live web view here: PORT (on 127.0.0.1) or IP:PORT.
    #[arg(long, value_name = "ADDR", value_parser = parse_http_addr)]
    http: Option<SocketAddr>,
    /// Directory for this peer's chunks and the finished file.
    #[arg(long, default_value = ".")]
    dir: PathBuf,
    /// Chunk files in DIR/.swarmshare/chunks: auto (clones of the data file where the
    /// filesystem shares blocks, none elsewhere), copy (copies elsewhere), none.
    #[arg(long, value_name = "MODE", default_value = "auto")]
    chunk_files: ChunkFiles,
    /// Address to listen on.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::UNSPECIFIED))]
    bind: IpAddr,
    /// Bootstrap nodes of the Mainline DHT, HOST:PORT,... (default: the public ones). The
    /// swarm is announced and looked up there under a key derived from the swarm (from the
    /// ticket's secret for a private swarm).
    #[arg(long, value_name = "HOST:PORT,...", value_delimiter = ',', value_parser = parse_dht_node)]
    dht_bootstrap: Vec<Endpoint>,
    /// No DHT: neither announce this node nor look the swarm up there.
    #[arg(long, conflicts_with = "dht_bootstrap")]
    no_dht: bool,
    /// No relays: neither relay for peers nobody can dial, nor keep a reservation at a
    /// relay when nobody can dial this peer (then it trades only over the links it dials
    /// and those dialled to it).
    #[arg(long)]
    no_relay: bool,
}

#[derive(clap::Args)]
struct DemoArgs {
    /// Number of peers in the ring.
    #[arg(long, default_value_t = 5)]
    peers: u32,
    /// Size of the random sample file (bytes, or with KiB/MiB/GiB/KB/MB/GB).
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    size: u64,
    /// Keep the demo folder instead of deleting it.
    #[arg(long)]
    keep: bool,
    /// Fail if the swarm has not completed after this many seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// Where the owner serves the live web view: PORT or IP:PORT (default: a free port on
    /// 127.0.0.1; the URL is printed on stderr).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0", value_parser = parse_http_addr)]
    http: SocketAddr,
    /// No web view.
    #[arg(long, conflicts_with = "http")]
    no_http: bool,
    /// Keep the swarm (and the web view) up this many seconds after every peer completed.
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    linger: u64,
}

/// A `--dht-bootstrap` node: HOST:PORT, not an IPv6 address (the Mainline DHT is IPv4).
fn parse_dht_node(text: &str) -> Result<Endpoint, String> {
    let node: Endpoint = text.parse().map_err(|e: ConfigError| e.to_string())?;
    if node.host().parse::<std::net::Ipv6Addr>().is_ok() {
        return Err("the Mainline DHT speaks IPv4: give an IPv4 address or a host name".to_owned());
    }
    Ok(node)
}

/// `--no-dht` and `--dht-bootstrap` as one setting.
fn dht_setting(off: bool, nodes: Vec<Endpoint>) -> DhtSetting {
    match (off, nodes.is_empty()) {
        (true, _) => DhtSetting::Off,
        (false, true) => DhtSetting::Public,
        (false, false) => DhtSetting::Nodes(nodes),
    }
}

/// Splits `[OWNER] PORT [DOWNLOAD_NEIGHBOR]`: OWNER may be left out only with `--join`.
fn peer_positionals(
    args: &[String],
    joining: bool,
    ticket: bool,
) -> Result<(Option<Endpoint>, u16, Option<Endpoint>), ConfigError> {
    let port = |text: &str| {
        text.parse::<u16>().map_err(|_| ConfigError::BadPort {
            text: text.to_owned(),
        })
    };
    if ticket {
        return match args {
            [p] => Ok((None, port(p)?, None)),
            [p, n] => Ok((None, port(p)?, Some(n.parse()?))),
            _ => Err(ConfigError::PeerArgs { got: args.len() }),
        };
    }
    match args {
        [p] if joining => Ok((None, port(p)?, None)),
        [o, p] => Ok((Some(o.parse()?), port(p)?, None)),
        [o, p, n] => Ok((Some(o.parse()?), port(p)?, Some(n.parse()?))),
        _ => Err(ConfigError::PeerArgs { got: args.len() }),
    }
}

/// Threads for disk work (hashing, chunk reads and writes). Disk work is short and mostly
/// page-cache bound; more threads would only add stacks and allocator arenas.
const MAX_BLOCKING_THREADS: usize = 8;

/// Parses the arguments; a usage error is printed with whatever the user typed escaped
/// (clap would echo an argument raw, escape sequences and all, to a terminal).
fn parse_args() -> Result<Cli, ExitCode> {
    use clap::error::ErrorKind;
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            Err(ExitCode::SUCCESS)
        }
        Err(e) => {
            let text = e.render().to_string();
            for line in text.trim_end().lines() {
                eprintln!("{}", swarmshare::text::printable(std::ffi::OsStr::new(line)));
            }
            Err(ExitCode::from(2))
        }
    }
}

fn main() -> ExitCode {
    let cli = match parse_args() {
        Ok(cli) => cli,
        Err(code) => return code,
    };
    let level = match (cli.quiet, cli.verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let format = match cli.log_format {
        Format::Human => LogFormat::Human,
        Format::Json => LogFormat::Json,
    };
    // Generated text goes to stdout alone, before anything else starts.
    match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "swarmshare", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        Command::Man => {
            return match clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write the man page: {e}");
                    ExitCode::from(1)
                }
            };
        }
        // Reports read files and print; they need neither the runtime nor the log.
        Command::Status(a) => return print_report(status_report(a)),
        Command::Inspect(a) => return print_report(inspect_report(a)),
        _ => {}
    }
    // Bars for the commands that download, when someone is watching.
    let bars = matches!(cli.command, Command::Peer(_) | Command::Demo(_))
        .then(Bars::for_terminal)
        .flatten();
    let log = logging::init(format, level, bars.as_ref());
    // A node is one thread of its own plus the blocking pool (disk writes, hashing): with
    // one runtime thread, a task woken by another never wakes a second thread to run it,
    // which cost a quarter of a peer's CPU. The demo runs a whole swarm in one process.
    let mut builder = if matches!(cli.command, Command::Demo(_)) {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match builder
        .enable_all()
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(run(cli.command, bars));
    drop(runtime);
    // The log's last lines are out before the error line.
    drop(log);
    match result {
        Ok(report) => {
            // After the log's last lines, so the demo's table is the last thing printed.
            if let Some(report) = report {
                println!("{report}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Runs a command; the demo returns its report, printed once the log is flushed.
async fn run(command: Command, bars: Option<Bars>) -> Result<Option<String>, Error> {
    match command {
        Command::Owner(a) => {
            let mut config = OwnerConfig::new(
                SocketAddr::new(a.bind, a.port),
                a.file,
                a.dir,
                a.peers,
                a.safe_copies,
            )?;
            config.upload_limit = a.upload_limit;
            config.http = a.http;
            config.private = a.private;
            config.chunk_files = a.chunk_files;
            config.dht = dht_setting(a.no_dht, a.dht_bootstrap);
            let sockets = OwnerSockets::bind(&config).await?;
            // A ticket names the port actually bound.
            config.listen = sockets.local_addr().unwrap_or(config.listen);
            let owner = Owner::prepare(&config).await?;
            if let Some(ticket) = owner.ticket() {
                eprintln!("ticket: {}", ticket.encode());
            }
            // The swarm ID is what peers check; it is printed whatever the log filter.
            eprintln!(
                "swarmshare owner: {} ({} chunks) is swarm {}",
                swarmshare::text::Quoted(owner.manifest().name()),
                owner.manifest().layout().chunk_count(),
                owner.manifest().swarm_id()
            );
            owner.run(sockets, shutdown_on_signal()).await.map(|()| None)
        }
        Command::Peer(a) => {
            let ticket = match &a.ticket_file {
                Some(path) => Some(swarmshare::config::read_ticket_file(path)?),
                None => a.ticket,
            };
            let (owner, port, neighbor) = peer_positionals(&a.args, a.join.is_some(), ticket.is_some())?;
            // With a ticket, the owner is dialled at the ticket's first address.
            let owner = owner.or_else(|| {
                ticket
                    .as_ref()
                    .and_then(|t| t.addrs().first())
                    .map(|&addr| Endpoint::from_addr(addr))
            });
            let mut config = PeerConfig::new(
                SocketAddr::new(a.bind, port),
                owner,
                neighbor,
                a.join,
                a.neighbors,
                a.dir,
            )?;
            config.upload_limit = a.upload_limit;
            config.download_limit = a.download_limit;
            config.exit_when_done = a.exit_when_done;
            config.seed_time = a.seed_time.map(Duration::from_secs);
            config.fsync = !a.no_fsync;
            config.chunk_files = a.chunk_files;
            config.http = a.http;
            config.ticket = ticket;
            config.dht = dht_setting(a.no_dht, a.dht_bootstrap);
            config.relay = !a.no_relay;
            let peer = Peer::bind(config).await?;
            if let Some(bars) = bars {
                let (name, progress) = (format!("peer :{port}"), peer.progress());
                tokio::spawn(async move { bars.track(name, progress).await });
            }
            peer.run(shutdown_on_signal()).await.map(|()| None)
        }
        Command::Demo(a) => {
            let mut config = DemoConfig::new(a.peers, a.size, a.keep, Duration::from_secs(a.timeout))?;
            config.http = (!a.no_http).then_some(a.http);
            config.linger = Duration::from_secs(a.linger);
            let report = demo::run(config, bars).await?;
            Ok(Some(report.to_string()))
        }
        // Handled in main, before the runtime starts.
        Command::Completions { .. } | Command::Man | Command::Status(_) | Command::Inspect(_) => Ok(None),
    }
}

/// `swarmshare status`: the directory's state, as text or JSON.
fn status_report(a: &StatusArgs) -> Result<String, Error> {
    status::status(&a.dir, a.json)
}

/// `swarmshare inspect`: the manifest the file would have, as text or JSON.
fn inspect_report(a: &InspectArgs) -> Result<String, Error> {
    status::inspect(&a.file, a.json)
}

/// Prints a report, or its error as one line with the error's exit code.
fn print_report(report: Result<String, Error>) -> ExitCode {
    match report {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// A token cancelled on Ctrl-C or SIGTERM.
fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        trigger.cancel();
    });
    token
}
