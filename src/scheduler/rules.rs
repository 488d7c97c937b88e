//! The numbers of the scheduler's policy, each with what it decides. The simulator and the
//! real peer use the same ones.

use std::time::Duration;

/// The largest window of requests in flight on one link (1.6 MB of chunks; one more while
/// refills go in twos, see [`REFILL`]).
pub(crate) const PIPELINE: usize = 16;
/// Requests go out at least this many at a time while the server still has this many of
/// ours to answer: one write and one wake-up at the server for the lot.
pub(crate) const REFILL: usize = 2;
/// Requests in flight on a link before its pace is known.
pub(crate) const PIPELINE_START: usize = 4;
/// How much of a link's pace is kept in flight: enough that the server always has the next
/// request, few enough that a slow server is not handed chunks another could bring sooner.
pub(crate) const IN_FLIGHT_TIME: Duration = Duration::from_millis(100);
/// The pace assumed before any link has delivered.
pub(crate) const DEFAULT_PACE: Duration = Duration::from_millis(20);
/// How much sooner the neighbors must be expected to bring a chunk than the owner before
/// the owner is left alone; past it, the owner is asked.
pub(crate) const OWNER_PATIENCE: Duration = Duration::from_millis(500);
/// How long a new link may take to answer its first list request.
pub(crate) const FIRST_LIST_LATE: Duration = Duration::from_secs(1);
/// The slowest a list's bytes are expected to come at, bytes per second (as slow as the
/// connection lets any frame come): a list request may take its size at this rate more.
pub(crate) const LIST_RATE: u64 = 64 * 1024;
/// How long a later list request may take, on top of the long poll's wait.
pub(crate) const LIST_LATE: Duration = Duration::from_secs(3);
/// How long a server may hold a list request until it has something new.
pub(crate) const LIST_WAIT: Duration = Duration::from_secs(1);
/// A link whose head request waited this many times its pace is stalled...
pub(crate) const STALL_FACTOR: u32 = 8;
/// ...but never before this long.
pub(crate) const STALL_MIN: Duration = Duration::from_secs(2);
/// An unpinned neighbor that delivers nothing new this long is swapped for another.
pub(crate) const ROTATE_AFTER: Duration = Duration::from_secs(3);
/// An unpinned neighbor whose list offers nothing we lack this long is swapped sooner.
pub(crate) const ROTATE_USELESS: Duration = Duration::from_secs(1);
/// How often a neighbor is asked which peers it knows.
pub(crate) const PEX_EVERY: Duration = Duration::from_secs(5);
/// The owner is asked for peers after this, then twice as long each time...
pub(crate) const OWNER_PEX_FIRST: Duration = Duration::from_millis(100);
/// ...up to this.
pub(crate) const OWNER_PEX_EVERY: Duration = Duration::from_secs(2);
/// How often a peer looks for its slowest neighbor...
pub(crate) const SLOW_EVERY: Duration = Duration::from_secs(2);
/// ...and swaps it for another when it is this many times slower than the median: a
/// busy server's clients move away, an idle one's come, so load evens out.
pub(crate) const SLOW_RATIO: f64 = 2.0;
/// Missing chunks that no neighbor offers are asked of the owner once no neighbor has had
/// a request of ours for this long: the neighbors have nothing left we lack (chunks only a
/// slow or departed peer holds, say).
pub(crate) const STARVED_AFTER: Duration = Duration::from_millis(300);
/// How often the scheduler wants [`Scheduler::handle_timeout`] while downloading.
pub(crate) const TICK: Duration = Duration::from_millis(50);
/// How long a slot with no candidate waits before looking again (a new peer in the book
/// wakes it sooner).
pub(crate) const VACANT_RETRY: Duration = Duration::from_millis(300);
/// Dial timeout for an address someone else told us of.
pub(crate) const UNPROVEN_DIAL: Duration = Duration::from_secs(2);
/// Dial timeout for a first-hand or configured address.
pub(crate) const DIAL: Duration = Duration::from_secs(5);
