//! When a server answers a long poll (`LIST_WAIT`), as a rule without clocks or sockets,
//! so the real upload side and the simulator decide alike and tests can drive it.
//!
//! A server answers once it holds [`LIST_BATCH`] chunks the last list on the connection
//! did not name, or one such chunk once [`LIST_GAP`] has passed since that list (at once
//! if it has sent no list yet), and in any case after the client's wait, cut to
//! [`MAX_LIST_WAIT`].

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
/// `since_list` the time since that list (`None`: no list sent yet).
pub(crate) fn due(held: u32, listed: u32, since_list: Option<Duration>) -> Due {
    if held <= listed {
        return Due::OnNews;
    }
    if held >= listed.saturating_add(LIST_BATCH) {
        return Due::Now;
    }
    match since_list {
        Some(since) if since < LIST_GAP => Due::In(LIST_GAP - since),
        _ => Due::Now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_first_poll_with_anything_held_is_answered_at_once() {
        assert_eq!(due(1, 0, None), Due::Now);
        assert_eq!(due(0, 0, None), Due::OnNews);
    }

    #[test]
    fn nothing_new_waits_for_news_however_long_ago_the_list_was() {
        assert_eq!(due(7, 7, Some(Duration::ZERO)), Due::OnNews);
        assert_eq!(due(7, 7, Some(Duration::from_secs(60))), Due::OnNews);
    }

    #[test]
    fn a_batch_of_news_is_answered_at_once() {
        assert_eq!(due(11, 7, Some(Duration::ZERO)), Due::Now);
        assert_eq!(due(10, 7, Some(Duration::ZERO)), Due::In(LIST_GAP));
        // No overflow near the top of the range.
        assert_eq!(due(u32::MAX, u32::MAX - 1, Some(MS)), Due::Now);
    }

    #[test]
    fn a_little_news_waits_out_the_gap_since_the_last_list() {
        assert_eq!(due(8, 7, Some(20 * MS)), Due::In(LIST_GAP - 20 * MS));
        assert_eq!(due(8, 7, Some(LIST_GAP)), Due::Now);
        assert_eq!(due(8, 7, Some(Duration::from_secs(3))), Due::Now);
    }
}
