//! One link of the download side as the scheduler sees it: an explicit state
//! (`Vacant → Dialing → Up → Vacant`), and for an `Up` link its session: the server's last
//! list, the requests outstanding in the order the server answers them, and the link's
//! measured pace, from which its window and the expected arrival of each request follow.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use super::{Time, IN_FLIGHT_TIME, PIPELINE, PIPELINE_START, REFILL};
use crate::chunk_set::ChunkSet;
use crate::identity::PeerId;
use crate::manifest::ChunkId;

/// What a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// A neighbor slot the scheduler fills from the address book.
    Neighbor,
    /// The neighbor named on the command line (the seed's ring): always this endpoint.
    Pinned,
    /// The owner: a holder of every chunk, asked only when the neighbors would be slower.
    Owner,
    /// A peer that dialled us and offered a two-way link (it may be out of reach
    /// otherwise): filled only by [`super::Scheduler::adopt`], never dialled.
    Inbound,
}

/// Whom a dial is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    /// The endpoint the link was configured with (the owner, the pinned neighbor).
    Configured,
    /// A peer from the address book, at the address it had there.
    Peer {
        /// The peer that should answer.
        id: PeerId,
        /// Where to dial.
        addr: std::net::SocketAddr,
    },
}

/// A link's state.
#[derive(Debug)]
pub(crate) enum State {
    /// No connection; the next dial may start at `retry_at`.
    Vacant { retry_at: Time },
    /// A dial (connect and hello) is under way.
    Dialing { target: Target },
    /// Connected, hellos exchanged.
    Up(Box<Session>),
}

/// One outstanding chunk request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request {
    pub(crate) chunk: ChunkId,
    pub(crate) sent: Time,
}

/// How fast a link delivers: an average of the time each chunk spent at the head of the
/// link's queue, so a link kept busy measures its throughput.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    per_chunk: Option<Duration>,
    /// The last delivery, or when the link was last idle: the head request's clock starts
    /// at the later of this and its own sending.
    last_progress: Time,
}

impl Pace {
    fn new(now: Time) -> Pace {
        Pace {
            per_chunk: None,
            last_progress: now,
        }
    }

    /// The measured time per chunk, if any chunk has arrived.
    pub(crate) fn measured(&self) -> Option<Duration> {
        self.per_chunk
    }

    fn delivered(&mut self, now: Time, sent: Time) {
        let sample = now.saturating_sub(self.last_progress.max(sent));
        self.per_chunk = Some(match self.per_chunk {
            None => sample,
            // A short memory: a link that slows down is noticed within a few chunks.
            Some(old) => old.mul_f64(0.7) + sample.mul_f64(0.3),
        });
        self.last_progress = now;
    }
}

/// A connected link's session.
#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) peer: PeerId,
    pub(crate) ip: IpAddr,
    /// The server is the owner: it holds everything and is not asked for lists.
    pub(crate) owner: bool,
    pub(crate) since: Time,
    /// The server's last list (the owner's is full).
    pub(crate) list: Option<ChunkSet>,
    /// A list request outstanding: when it was sent and how long the server may hold it.
    pub(crate) list_asked: Option<(Time, Duration)>,
    /// A peer-list request is outstanding.
    pub(crate) peers_asked: bool,
    pub(crate) next_pex: Time,
    pub(crate) requests: VecDeque<Request>,
    /// Requests still to go in the refill under way (see [`Session::room`]).
    pub(crate) refill: usize,
    pub(crate) pace: Pace,
    /// The last chunk from it that was new to us (or when the session began).
    pub(crate) last_useful: Time,
    /// Since when its list has offered nothing we lack, if it does not now.
    pub(crate) useless_since: Option<Time>,
    /// Chunks from it that were new to us, this session.
    pub(crate) delivered: u32,
    /// A close the scheduler decided, handed to the driver at its next poll.
    pub(crate) closing: Option<Close>,
    /// How many candidates the book held when this neighbor was chosen.
    pub(crate) book_seen: usize,
    /// The pace to assume before this link measured its own (the owner's, from its batch).
    pub(crate) prior: Option<Duration>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answered {
    /// The chunk came.
    Chunk,
    /// The server does not hold it.
    NotHave,
    /// It was never sent (the download cap).
    Unsent,
}

/// Why the scheduler closes a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Close {
    /// It did not answer a request in time: it holds a slot without delivering.
    Idle,
    /// Its head request went unanswered far past the link's pace.
    Stalled,
    /// Another known peer may serve better (nothing new from this one for a while, or the
    /// book has grown).
    Rotate,
    /// It broke the protocol or sent bad chunks too often.
    Banned,
    /// It is the owner (a neighbor slot is not for the owner).
    IsOwner,
    /// Another slot is already connected to it.
    Duplicate,
    /// A direct connection to it replaces this one, through a relay (the whole two-way
    /// link ends, and the relay's circuit with it).
    Upgraded,
}

impl Close {
    /// A short name for logs.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Close::Idle => "it did not answer in time",
            Close::Stalled => "its requests stalled",
            Close::Rotate => "rotating to another neighbor",
            Close::Banned => "banned: too many bad chunks or violations",
            Close::IsOwner => "it is the owner",
            Close::Duplicate => "another slot already has it",
            Close::Upgraded => "a direct connection replaces this relayed one",
        }
    }
}

impl Session {
    pub(crate) fn new(peer: PeerId, ip: IpAddr, owner: bool, chunks: u32, now: Time) -> Session {
        Session {
            peer,
            ip,
            owner,
            since: now,
            list: owner.then(|| ChunkSet::full(chunks)),
            list_asked: None,
            peers_asked: false,
            next_pex: now,
            requests: VecDeque::new(),
            refill: 0,
            pace: Pace::new(now),
            last_useful: now,
            useless_since: None,
            delivered: 0,
            closing: None,
            book_seen: 0,
            prior: None,
        }
    }

    /// The time per chunk to plan with: measured, or `typical` (what the other links
    /// deliver) before anything has arrived.
    pub(crate) fn per_chunk(&self, typical: Duration) -> Duration {
        self.pace.per_chunk.or(self.prior).unwrap_or(typical)
    }

    /// How long the head request has waited (zero when nothing is outstanding).
    pub(crate) fn silence(&self, now: Time) -> Duration {
        match self.requests.front() {
            Some(head) => now.saturating_sub(self.pace.last_progress.max(head.sent)),
            None => Duration::ZERO,
        }
    }

    /// The pace the link shows now: its measured pace, or slower if the head request has
    /// already waited longer than that.
    pub(crate) fn effective(&self, now: Time, typical: Duration) -> Duration {
        self.per_chunk(typical).max(self.silence(now))
    }

    /// When the `i`-th outstanding request (0 = head) is expected to arrive. A head request
    /// within its expected time is expected at the rest of it; one already past its time
    /// is expected to take as long again as it has waited.
    pub(crate) fn expected(&self, i: usize, now: Time, typical: Duration) -> Time {
        let p = self.per_chunk(typical);
        let s = self.silence(now);
        let head = if s < p { p - s } else { s };
        now + head + self.effective(now, typical) * i as u32
    }

    /// When a request made now would arrive.
    pub(crate) fn expected_new(&self, now: Time, typical: Duration) -> Time {
        if self.requests.is_empty() {
            return now + self.per_chunk(typical);
        }
        self.expected(self.requests.len(), now, typical)
    }

    /// As [`Session::expected`], with a held-up head counted once rather than against every
    /// request behind it: the patient view, for asking the owner. A moment's hiccup (a busy
    /// CPU) does not make a whole queue look late, while a link that has stopped still
    /// falls behind by as long as it has been silent.
    pub(crate) fn expected_once(&self, i: usize, now: Time, typical: Duration) -> Time {
        let p = self.per_chunk(typical);
        let s = self.silence(now);
        let head = if s < p { p - s } else { s };
        now + head + p * i as u32
    }

    /// As [`Session::expected_new`], the patient view.
    pub(crate) fn expected_new_once(&self, now: Time, typical: Duration) -> Time {
        if self.requests.is_empty() {
            return now + self.per_chunk(typical);
        }
        self.expected_once(self.requests.len(), now, typical)
    }

    /// How many requests to keep in flight: a few at first, then 2 plus what the link
    /// delivers in [`IN_FLIGHT_TIME`]; one on a link slower than a chunk a second.
    pub(crate) fn window(&self) -> usize {
        match self.pace.per_chunk.or(self.prior) {
            None => PIPELINE_START,
            Some(p) if p >= Duration::from_secs(1) => 1,
            Some(p) => {
                let per_window = IN_FLIGHT_TIME.as_secs_f64() / p.as_secs_f64().max(1e-6);
                (2 + per_window as usize).clamp(2, PIPELINE)
            }
        }
    }

    /// Whether a request may go out now. While the server still has [`REFILL`] of ours to
    /// answer, requests wait until [`REFILL`] can go together; the link then fills one
    /// past its window (`REFILL - 1`), so a refill leaves when the old rule's single
    /// request would have and the server is never shorter of work than before. So under a
    /// steady flow requests leave in twos, in one write, and the server wakes once for
    /// both. A window of one (a link slower than a chunk a second) stays one.
    pub(crate) fn room(&self) -> bool {
        let (queued, limit) = (self.requests.len(), self.limit());
        queued < limit && (self.refill > 0 || queued < REFILL || limit - queued >= REFILL)
    }

    /// The most requests in flight: the window, plus `REFILL - 1` while refills go in twos.
    fn limit(&self) -> usize {
        match self.window() {
            w if w >= REFILL => w + REFILL - 1,
            w => w,
        }
    }

    /// Records a request sent now (a refill's first counts the rest of the room in).
    pub(crate) fn push_request(&mut self, request: Request) {
        let free = self.limit().saturating_sub(self.requests.len());
        self.refill = match self.refill {
            0 => free.saturating_sub(1),
            n => n - 1,
        };
        self.requests.push_back(request);
    }

    /// Whether a long poll of ours is out on this link (answers come in order, so nothing
    /// sent now would be answered before it).
    pub(crate) fn polling(&self) -> bool {
        self.list_asked.is_some_and(|(_, wait)| !wait.is_zero())
    }

    /// Whether `chunk` is requested on this link.
    pub(crate) fn has_request(&self, chunk: ChunkId) -> bool {
        self.requests.iter().any(|r| r.chunk == chunk)
    }

    /// Removes the request for `chunk`; a chunk that came records the pace, a refusal
    /// restarts the head's clock. Returns whether it was outstanding.
    pub(crate) fn answered(&mut self, chunk: ChunkId, now: Time, answer: Answered) -> bool {
        let Some(i) = self.requests.iter().position(|r| r.chunk == chunk) else {
            return false;
        };
        let Some(req) = self.requests.remove(i) else {
            return false;
        };
        // A refill is one pass over the link's room; the next answer starts another.
        self.refill = 0;
        match answer {
            Answered::Chunk => self.pace.delivered(now, req.sent),
            Answered::NotHave => self.pace.last_progress = now,
            // Never sent: says nothing about the server.
            Answered::Unsent => {}
        }
        true
    }

    /// Whether the server offers `chunk` (the owner offers everything).
    pub(crate) fn offers(&self, chunk: ChunkId) -> bool {
        self.list.as_ref().is_some_and(|l| l.contains(chunk))
    }
}
