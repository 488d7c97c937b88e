//! The scheduler's outputs: what a link does next ([`Scheduler::poll`]) and what the
//! passing of time decides ([`Scheduler::handle_timeout`], [`Scheduler::next_timeout`]).

use std::time::Duration;

use super::choose::{Busy, Choice};
use super::link::{Request, Session, State};
use super::pick::{self, Others};
use super::{
    Action, Close, Known, LinkId, Role, Scheduler, Target, Time, DIAL, LIST_WAIT, MAX_COPIES,
    OWNER_PEX_EVERY, PEX_EVERY, STARVED_AFTER, UNPROVEN_DIAL, VACANT_RETRY,
};
use crate::identity::PeerId;
use crate::manifest::ChunkId;

impl Scheduler {
    /// The next thing `link` should do at `now`, if anything. Call until `None`, then again
    /// when the link is woken or an answer arrives.
    pub(crate) fn poll(&mut self, link: LinkId, now: Time) -> Option<Action> {
        if link >= self.links.len() || self.held.is_complete() {
            return None;
        }
        let inbound = self.links[link].role == Role::Inbound;
        match &mut self.links[link].state {
            State::Vacant { retry_at } if *retry_at <= now && !inbound => self.dial(link, now),
            State::Vacant { .. } | State::Dialing { .. } => None,
            State::Up(s) => {
                if let Some(close) = s.closing.take() {
                    return Some(self.close(link, close, now));
                }
                // A server answers in order: a request sent behind a long poll would wait
                // for it, so while one is out, this link asks for nothing more.
                if s.polling() {
                    return None;
                }
                if s.next_pex <= now && !s.peers_asked {
                    s.peers_asked = true;
                    let l = &mut self.links[link];
                    let every = match l.role {
                        Role::Owner => {
                            let every = l.pex_every;
                            l.pex_every = (every * 2).min(OWNER_PEX_EVERY);
                            every
                        }
                        _ => PEX_EVERY,
                    };
                    l.next_pex = now + every;
                    if let State::Up(s) = &mut l.state {
                        s.next_pex = l.next_pex;
                    }
                    return Some(Action::AskPeers);
                }
                if !s.room() {
                    return None;
                }
                // Fresh chunks first, then a late one from elsewhere (before any long poll,
                // which would hold it up), then a newer list.
                if let Some(c) = self.pick_fresh(link, now).or_else(|| self.pick_late(link, now)) {
                    return Some(self.request(link, c, now));
                }
                let s = self.session(link)?;
                // Nothing left to pick: the refill under way (if any) ends here.
                s.refill = 0;
                if !s.owner && s.list_asked.is_none() {
                    let wait = s.list.is_some().then_some(LIST_WAIT);
                    s.list_asked = Some((now, wait.unwrap_or(Duration::ZERO)));
                    return Some(Action::AskList(wait));
                }
                None
            }
        }
    }

    fn request(&mut self, link: LinkId, c: ChunkId, now: Time) -> Action {
        if self.links[link].role != Role::Owner {
            self.last_busy = now;
        }
        if self.taken.contains(c) {
            self.stats.second_requests += 1;
        }
        if let Some(s) = self.session(link) {
            s.push_request(Request { chunk: c, sent: now });
        }
        let i = c as usize;
        self.inflight[i] = self.inflight[i].saturating_add(1);
        self.refresh(c);
        Action::Request(c)
    }

    fn close(&mut self, link: LinkId, why: Close, now: Time) -> Action {
        let l = &mut self.links[link];
        let retry_at = match (l.role, why) {
            (Role::Neighbor | Role::Inbound, _) => now,
            // A configured endpoint that turned out to be banned or the owner is not
            // dialled again this run.
            (_, Close::Banned | Close::IsOwner) => now + Duration::from_secs(86_400 * 365),
            _ => now + l.retry,
        };
        if let State::Up(s) = std::mem::replace(&mut l.state, State::Vacant { retry_at }) {
            match why {
                Close::Idle | Close::Stalled if s.delivered == 0 => {
                    self.judge.failed(s.peer, Some(s.ip), now)
                }
                Close::Idle | Close::Stalled => self.judge.failed(s.peer, None, now),
                Close::Rotate | Close::Duplicate => self.judge.rested(s.peer, now),
                Close::Banned | Close::IsOwner | Close::Upgraded => {}
            }
            self.release(s.requests);
        }
        Action::Close(why)
    }

    fn busy(&self, except: LinkId) -> Vec<Busy> {
        let mut busy = Vec::new();
        for (i, l) in self.links.iter().enumerate() {
            if i == except || l.role == Role::Owner {
                continue;
            }
            match &l.state {
                State::Up(s) => busy.push(Busy {
                    peer: Some(s.peer),
                    ip: (l.role != Role::Inbound).then_some(s.ip),
                }),
                State::Dialing {
                    target: Target::Peer { id, addr },
                    ..
                } => busy.push(Busy {
                    peer: Some(*id),
                    ip: (l.role != Role::Inbound).then_some(addr.ip()),
                }),
                _ => {}
            }
        }
        busy
    }

    fn excluded(&self, also: Option<PeerId>) -> Vec<PeerId> {
        [Some(self.me), self.owner, also].into_iter().flatten().collect()
    }

    fn dial(&mut self, link: LinkId, now: Time) -> Option<Action> {
        let (target, timeout) = match self.links[link].role {
            // Filled by the peers that dial us, never by a dial.
            Role::Inbound => return None,
            Role::Pinned | Role::Owner => (Target::Configured, DIAL),
            Role::Neighbor => {
                let mut rng = std::mem::replace(&mut self.rng, rand::SeedableRng::seed_from_u64(0));
                let picked = self.with_choice(link, None, now, |choice| choice.pick(&mut rng));
                self.rng = rng;
                let Some(c) = picked else {
                    self.links[link].state = State::Vacant {
                        retry_at: now + VACANT_RETRY,
                    };
                    return None;
                };
                let timeout = if matches!(c.known, Known::Gossip(_)) {
                    UNPROVEN_DIAL
                } else {
                    DIAL
                };
                (
                    Target::Peer {
                        id: c.id,
                        addr: c.addr,
                    },
                    timeout,
                )
            }
        };
        self.links[link].state = State::Dialing { target };
        Some(Action::Dial { target, timeout })
    }

    /// Whether another peer than `current` could take `link`'s slot now.
    pub(super) fn could_move(&self, link: LinkId, current: PeerId, now: Time) -> bool {
        self.with_choice(link, Some(current), now, |choice| choice.any())
    }

    /// Runs `f` on the choice of a peer for `link` (never this node, the owner, or `also`).
    fn with_choice<R>(
        &self,
        link: LinkId,
        also: Option<PeerId>,
        now: Time,
        f: impl FnOnce(&Choice<'_>) -> R,
    ) -> R {
        let candidates = self.book.candidates();
        let (busy, excluded) = (self.busy(link), self.excluded(also));
        f(&Choice {
            candidates: &candidates,
            busy: &busy,
            judge: &self.judge,
            excluded: &excluded,
            slots: self.neighbor_slots,
            now,
            addresses: self.book.addresses(),
        })
    }

    fn others(&self, except: LinkId, now: Time) -> (Others<'_>, Option<&Session>) {
        let mut sessions = Vec::new();
        let mut me = None;
        for (i, l) in self.links.iter().enumerate() {
            if let State::Up(s) = &l.state {
                if i == except {
                    me = Some(&**s);
                } else {
                    sessions.push(&**s);
                }
            }
        }
        let others = Others {
            sessions,
            typical: self.typical,
            now,
            patient: me.is_some_and(|s: &Session| s.owner),
        };
        (others, me)
    }

    /// Whether the owner may be asked for chunks no neighbor offers: not while its batch
    /// streams in (such a chunk is most likely on its way to someone in a batch), and then
    /// when the neighbors have had nothing for us for a while (starved) or are not
    /// delivering (the fallback clock). Starved needs a neighbor that is up: one not
    /// reached yet is waited for.
    pub(super) fn owner_fallback(&self, now: Time) -> bool {
        let neighbor_up = self
            .links
            .iter()
            .any(|l| l.role != Role::Owner && matches!(&l.state, State::Up(s) if s.list.is_some()));
        let starved = neighbor_up && now.saturating_sub(self.last_busy) >= STARVED_AFTER;
        !self.batch.streaming && (starved || self.fallback.use_owner(now))
    }

    /// A chunk nobody is fetching: rarest first from a neighbor's list; from the owner,
    /// one the neighbors would be slow to bring.
    fn pick_fresh(&mut self, link: LinkId, now: Time) -> Option<ChunkId> {
        let mut rng = std::mem::replace(&mut self.rng, rand::SeedableRng::seed_from_u64(0));
        let fallback = self.owner_fallback(now);
        let picked = {
            let (others, me) = self.others(link, now);
            let me = me?;
            if me.owner {
                pick::from_owner(me, &others, &self.taken, fallback, &mut rng)
            } else {
                let lists: Vec<_> = others
                    .sessions
                    .iter()
                    .filter(|s| !s.owner)
                    .filter_map(|s| s.list.as_ref())
                    .chain(me.list.as_ref())
                    .collect();
                me.list
                    .as_ref()
                    .and_then(|list| pick::rarest(&self.taken, list, &lists, &mut rng))
            }
        };
        self.rng = rng;
        picked
    }

    /// A chunk requested elsewhere that this link would bring clearly sooner.
    fn pick_late(&mut self, link: LinkId, now: Time) -> Option<ChunkId> {
        let endgame = self.endgame();
        let (others, me) = self.others(link, now);
        let me = me?;
        // The owner is asked only for what the neighbors would be clearly late with, even
        // in the endgame: its upload is the swarm's scarcest.
        let margin = match (me.owner, endgame) {
            (true, _) => Some(super::OWNER_PATIENCE),
            (false, true) => Some(Duration::ZERO),
            (false, false) => None,
        };
        let usable = |c: ChunkId| {
            let i = c as usize;
            !self.held.contains(c) && self.arriving[i] == 0 && self.inflight[i] < MAX_COPIES
        };
        pick::late(me, &others, margin, usable)
    }

    /// Each link's state in one line, for debugging and the simulator's trace.
    pub(crate) fn describe(&self, now: Time) -> String {
        let mut out = format!(
            "held {} taken {} typical {:?}:",
            self.held.count(),
            self.taken.count(),
            self.typical
        );
        for l in &self.links {
            match &l.state {
                State::Vacant { retry_at } => out += &format!(" [vacant {:?}]", retry_at.saturating_sub(now)),
                State::Dialing { .. } => out += " [dialing]",
                State::Up(s) => {
                    let wanted = s
                        .list
                        .as_ref()
                        .map_or(0, |list| self.taken.sample_wanted(Some(list), 0, 10_000).len());
                    out += &format!(
                        " [{} list {} new {} req {} win {} pace {:?} silence {:?}{}]",
                        s.peer.short(),
                        s.list.as_ref().map_or(0, |l| l.count()),
                        wanted,
                        s.requests.len(),
                        s.window(),
                        s.pace.measured(),
                        s.silence(now),
                        if s.list_asked.is_some() { " asking" } else { "" }
                    )
                }
            }
        }
        out
    }

    /// What the download is waiting for, for the `waiting` log line.
    pub(crate) fn waiting(&self) -> String {
        let mut up = 0;
        let mut requested = 0;
        let mut owner = "no owner link";
        for l in &self.links {
            match (&l.state, l.role) {
                (State::Up(s), Role::Owner) => {
                    owner = "the owner is connected";
                    requested += s.requests.len();
                }
                (State::Up(s), _) => {
                    up += 1;
                    requested += s.requests.len();
                }
                (_, Role::Owner) => owner = "the owner is not reachable",
                _ => {}
            }
        }
        format!("{up} neighbor(s) connected, {owner}, {requested} request(s) outstanding")
    }
}
