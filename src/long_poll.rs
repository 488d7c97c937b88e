//! When a server answers a long poll (`LIST_WAIT`), as a rule without clocks or sockets,
//! so the real upload side and the simulator decide alike and tests can drive it.
//!
//! A server answers once it holds [`LIST_BATCH`] chunks the last list on the connection
//! did not name, or one such chunk once [`LIST_GAP`] has passed since that list (at once
//! if it has sent no list yet), and in any case after the client's wait, cut to
//! [`MAX_LIST_WAIT`].
//!
//! Both numbers double for a client whose lists bring few requests ([`Patience`]): one that
//! polls again having asked for fewer than 2 chunks since the last list learnt little it
//! could fetch from it (in a swarm where everyone is at the same point, most of a server's
//! new chunks are ones the client is already fetching elsewhere), so the next list waits
//! for more news, up to [`MAX_LEVEL`] doublings (fewer on a small file: a batch stays
//! within 1/64 of the chunks); a list that brought 4 requests or more halves them again. A list costs both sides about what a chunk request does (a message
//! each way, a wake-up each); in the simulator this takes lists from 1.0-1.6 per chunk
//! fetched to 0.3-0.5, for 0.3-0.8% more time to complete.

use std::time::Duration;

/// The longest a server holds a `LIST_WAIT` before answering.
pub(crate) const MAX_LIST_WAIT: Duration = Duration::from_secs(5);
/// A long poll is answered at once when the server got this many chunks since its last
/// list on the connection...
pub(crate) const LIST_BATCH: u32 = 4;
/// ...and for fewer, no sooner than this after that list: in a swarm where every peer
/// gets a chunk every few milliseconds, a list per new chunk per client would be most of
/// the messages (and wake-ups) a peer handles, and most would offer nothing the client
/// is not already fetching.
pub(crate) const LIST_GAP: Duration = Duration::from_millis(50);

/// How many times [`LIST_BATCH`] and [`LIST_GAP`] double at most for a client whose lists
/// bring few requests (to 16 chunks and 200 ms)...
pub(crate) const MAX_LEVEL: u8 = 2;
/// ...and no further than leaves the batch at most this share of the file's chunks: on a
/// small file, waiting 200 ms for news is a large part of the whole download (a 8 MB file
/// under a 10 MB/s cap took 8% longer with 16 and 200 ms in the simulator), so its lists
/// stay prompt; the doubling starts at 512 chunks (8 of 512) and reaches 16 at 1,024.
const BATCH_SHARE: u32 = 64;

/// A list followed by fewer chunk requests than this makes the next one wait for more...
const USE_LOW: u32 = 2;
/// ...and one followed by this many or more, for less.
const USE_HIGH: u32 = 4;
/// How patient a server is with one connection's long polls, from how many chunk requests
/// followed its recent lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Patience {
    level: u8,
    /// The highest level for the swarm's file (see [`BATCH_SHARE`]).
    max_level: u8,
    /// A list has been sent on the connection.
    listed: bool,
    /// Chunks asked for since the last list.
    asked: u32,
}

impl Patience {
    /// A new connection's, in a swarm of `chunks` chunks: lists as prompt as can be.
    pub(crate) fn new(chunks: u32) -> Patience {
        let max_level = (1..=MAX_LEVEL)
            .take_while(|&l| (LIST_BATCH << l).saturating_mul(BATCH_SHARE) <= chunks)
            .last()
            .unwrap_or(0);
        Patience {
            level: 0,
            max_level,
            listed: false,
            asked: 0,
        }
    }

    /// The client asked for a chunk.
    pub(crate) fn requested(&mut self) {
        self.asked = self.asked.saturating_add(1);
    }

    /// The client polls again: the requests since the last list tell how much use it was.
    pub(crate) fn polled(&mut self) {
        if !self.listed {
            return;
        }
        if self.asked < USE_LOW {
            self.level = (self.level + 1).min(self.max_level);
        } else if self.asked >= USE_HIGH {
            self.level = self.level.saturating_sub(1);
        }
    }

    /// A list went out.
    pub(crate) fn listed(&mut self) {
        self.listed = true;
        self.asked = 0;
    }

    /// The chunks a list waits for, and the gap after the last list that lets fewer go.
    fn batch_and_gap(self) -> (u32, Duration) {
        (LIST_BATCH << self.level, LIST_GAP * (1u32 << self.level))
    }
}

/// What a held long poll is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// Answer now.
    Now,
    /// There is news; answer once this much more time has passed.
    In(Duration),
    /// Nothing new: answer when the server gains a chunk (or the wait ends).
    OnNews,
}

/// The rule: `held` chunks held now, `listed` named by the connection's last list,
/// `since_list` the time since that list (`None`: no list sent yet), `patience` the
/// connection's.
pub(crate) fn due(held: u32, listed: u32, since_list: Option<Duration>, patience: Patience) -> Due {
    if held <= listed {
        return Due::OnNews;
    }
    let (batch, gap) = patience.batch_and_gap();
    if held >= listed.saturating_add(batch) {
        return Due::Now;
    }
    match since_list {
        Some(since) if since < gap => Due::In(gap - since),
        _ => Due::Now,
    }
}

/// How long a plain `LIST_REQUEST` waits before its answer: none, unless the connection's
/// last list went less than [`LIST_GAP`] ago (`since_list`); then the rest of that gap.
/// An honest client asks this way for its first list only, so this costs it nothing,
/// while a client that asks over and over gets 20 lists a second, not as many as the
/// server can encode.
pub(crate) fn list_request_wait(since_list: Option<Duration>) -> Duration {
    since_list.map_or(Duration::ZERO, |since| LIST_GAP.saturating_sub(since))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    /// A fresh connection's patience in a swarm of 100 MiB (1,024 chunks).
    const P0: Patience = Patience {
        level: 0,
        max_level: MAX_LEVEL,
        listed: false,
        asked: 0,
    };

    #[test]
    fn a_first_poll_with_anything_held_is_answered_at_once() {
        assert_eq!(due(1, 0, None, P0), Due::Now);
        assert_eq!(due(0, 0, None, P0), Due::OnNews);
    }

    #[test]
    fn nothing_new_waits_for_news_however_long_ago_the_list_was() {
        assert_eq!(due(7, 7, Some(Duration::ZERO), P0), Due::OnNews);
        assert_eq!(due(7, 7, Some(Duration::from_secs(60)), P0), Due::OnNews);
    }

    #[test]
    fn a_batch_of_news_is_answered_at_once() {
        assert_eq!(due(11, 7, Some(Duration::ZERO), P0), Due::Now);
        assert_eq!(due(10, 7, Some(Duration::ZERO), P0), Due::In(LIST_GAP));
        // No overflow near the top of the range.
        assert_eq!(due(u32::MAX, u32::MAX - 1, Some(MS), P0), Due::Now);
    }

    #[test]
    fn a_little_news_waits_out_the_gap_since_the_last_list() {
        assert_eq!(due(8, 7, Some(20 * MS), P0), Due::In(LIST_GAP - 20 * MS));
        assert_eq!(due(8, 7, Some(LIST_GAP), P0), Due::Now);
        assert_eq!(due(8, 7, Some(Duration::from_secs(3)), P0), Due::Now);
    }

    #[test]
    fn lists_that_bring_few_requests_make_the_server_wait_for_more_news() {
        let mut p = Patience::new(1024);
        assert_eq!(p, P0);
        p.polled();
        assert_eq!(p, P0, "a first poll is no sign of anything");
        // A list, one chunk asked for, a poll: 8 chunks or 100 ms.
        p.listed();
        p.requested();
        p.polled();
        assert_eq!(due(15, 7, Some(Duration::ZERO), p), Due::Now);
        assert_eq!(due(14, 7, Some(20 * MS), p), Due::In(80 * MS));
        for _ in 0..5 {
            p.listed();
            p.polled();
        }
        // At most MAX_LEVEL doublings: 16 chunks or 200 ms.
        assert_eq!(due(22, 7, Some(Duration::ZERO), p), Due::In(200 * MS));
        assert_eq!(due(23, 7, Some(Duration::ZERO), p), Due::Now);
        assert_eq!(due(8, 7, Some(200 * MS), p), Due::Now);
        // Nothing new is still nothing new.
        assert_eq!(due(7, 7, Some(Duration::from_secs(9)), p), Due::OnNews);
        // Lists that bring 2 or 3 requests keep the level; 4 or more lower it one step.
        p.listed();
        p.requested();
        p.requested();
        p.polled();
        assert_eq!(due(22, 7, Some(Duration::ZERO), p), Due::In(200 * MS));
        p.listed();
        for _ in 0..4 {
            p.requested();
        }
        p.polled();
        assert_eq!(due(15, 7, Some(Duration::ZERO), p), Due::Now);
        assert_eq!(due(14, 7, Some(Duration::ZERO), p), Due::In(100 * MS));
        p.listed();
        for _ in 0..9 {
            p.requested();
        }
        p.polled();
        assert_eq!(due(11, 7, Some(Duration::ZERO), p), Due::Now);
    }

    #[test]
    fn a_plain_list_request_comes_no_sooner_than_the_gap_after_the_last_list() {
        assert_eq!(list_request_wait(None), Duration::ZERO);
        assert_eq!(list_request_wait(Some(10 * MS)), LIST_GAP - 10 * MS);
        assert_eq!(list_request_wait(Some(LIST_GAP)), Duration::ZERO);
        assert_eq!(list_request_wait(Some(Duration::from_secs(9))), Duration::ZERO);
    }

    #[test]
    fn a_small_file_keeps_its_lists_prompt() {
        for (chunks, most) in [(80, 0), (511, 0), (512, 1), (1023, 1), (1024, 2), (u32::MAX, 2)] {
            let mut p = Patience::new(chunks);
            for _ in 0..5 {
                p.listed();
                p.polled();
            }
            assert_eq!(p.level, most, "{chunks} chunks");
        }
    }
}
