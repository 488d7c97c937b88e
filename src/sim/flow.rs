//! Fluid bandwidth: every node's upload cap is shared equally among the chunks it is
//! sending at that moment, and its download cap among the chunks it is receiving; a
//! transfer moves at the smaller of its two shares. When a node starts or ends a transfer,
//! the shares of the others at that node change, and their finishing times are worked out
//! again (an event already queued for the old time is recognised as stale by its version).

use super::NodeId;
use crate::scheduler::Time;

/// A transfer's handle.
pub(super) type FlowId = usize;

#[derive(Debug)]
struct Flow {
    src: NodeId,
    dst: NodeId,
    remaining: f64,
    rate: f64,
    since: Time,
    version: u64,
}

/// When a transfer will finish, for the event queue.
#[derive(Debug, Clone, Copy)]
pub(super) struct Due {
    pub(super) flow: FlowId,
    pub(super) version: u64,
    pub(super) at: Time,
}

/// Every transfer under way.
#[derive(Debug, Default)]
pub(super) struct Flows {
    flows: Vec<Option<Flow>>,
    free: Vec<FlowId>,
    up: Vec<Vec<FlowId>>,
    down: Vec<Vec<FlowId>>,
    up_cap: Vec<f64>,
    down_cap: Vec<f64>,
}

impl Flows {
    /// A node with these caps in bytes per second (`f64::INFINITY`: none).
    pub(super) fn add_node(&mut self, up: f64, down: f64) {
        self.up.push(Vec::new());
        self.down.push(Vec::new());
        self.up_cap.push(up);
        self.down_cap.push(down);
    }

    /// Whether `flow` is current at `version`.
    pub(super) fn is_current(&self, flow: FlowId, version: u64) -> bool {
        matches!(self.flows.get(flow), Some(Some(f)) if f.version == version)
    }

    /// Starts moving `bytes` from `src` to `dst`; returns the finishing times that changed.
    pub(super) fn start(
        &mut self,
        now: Time,
        src: NodeId,
        dst: NodeId,
        bytes: f64,
        due: &mut Vec<Due>,
    ) -> FlowId {
        let flow = Flow {
            src,
            dst,
            remaining: bytes,
            rate: 0.0,
            since: now,
            version: 0,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.flows[id] = Some(flow);
                id
            }
            None => {
                self.flows.push(Some(flow));
                self.flows.len() - 1
            }
        };
        self.up[src].push(id);
        self.down[dst].push(id);
        self.rerate(now, src, dst, due);
        id
    }

    /// Ends `flow` (finished or cancelled); returns the finishing times that changed.
    pub(super) fn end(&mut self, now: Time, flow: FlowId, due: &mut Vec<Due>) {
        let Some(Some(f)) = self.flows.get_mut(flow).map(Option::take) else {
            return;
        };
        self.free.push(flow);
        self.up[f.src].retain(|&x| x != flow);
        self.down[f.dst].retain(|&x| x != flow);
        self.rerate(now, f.src, f.dst, due);
    }

    fn rerate(&mut self, now: Time, src: NodeId, dst: NodeId, due: &mut Vec<Due>) {
        let mut touched: Vec<FlowId> = self.up[src].clone();
        for &f in &self.down[dst] {
            if !touched.contains(&f) {
                touched.push(f);
            }
        }
        for id in touched {
            let Some(Some(f)) = self.flows.get(id) else {
                continue;
            };
            let share = |cap: f64, n: usize| cap / n.max(1) as f64;
            let rate = share(self.up_cap[f.src], self.up[f.src].len())
                .min(share(self.down_cap[f.dst], self.down[f.dst].len()));
            let Some(Some(f)) = self.flows.get_mut(id) else {
                continue;
            };
            let elapsed = now.saturating_sub(f.since).as_secs_f64();
            if f.rate.is_finite() {
                f.remaining = (f.remaining - f.rate * elapsed).max(0.0);
            } else {
                f.remaining = 0.0;
            }
            f.rate = rate;
            f.since = now;
            f.version += 1;
            let secs = if rate.is_infinite() || f.remaining <= 0.0 {
                0.0
            } else {
                f.remaining / rate
            };
            due.push(Due {
                flow: id,
                version: f.version,
                at: now + Time::from_secs_f64(secs.min(1e9)),
            });
        }
    }
}
