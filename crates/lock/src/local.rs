//! In-process coalescing: the local queue in front of the Redis queue.
//!
//! Tasks of one [`LockManager`](crate::LockManager) (and its clones) that
//! want the same resource do not all talk to Redis. Per resource, at most
//! one of them at a time — the *slot owner* — acquires in Redis or holds
//! the lock; the others wait here, in a FIFO queue, for a local hand-off.
//!
//! * The slot owner's release pops the first local waiter and sends one
//!   release script in "hand to local" mode: unless remote waiters are
//!   queued in Redis, the lock goes straight to that waiter (its token,
//!   its TTL, no fence: it asks for one on demand) and the script's reply
//!   is delivered to it ([`Handoff::Granted`]): no further round trip. When remote waiters are
//!   queued, they are served first (exactly as without the local queue),
//!   and the local waiter gets [`Handoff::Redis`]: it becomes the slot
//!   owner and waits in the Redis queue itself.
//! * A slot owner that gives up (timeout, error, cancellation) passes the
//!   slot on with [`Handoff::Redis`].
//! * A waiter that leaves is taken out of the queue; if it was already
//!   popped, what reached it (a grant, or the slot) is passed on by the
//!   caller.
//! * When the holding owner's lease has run out by this process's clock
//!   (a stuck holder), the head of the local queue takes the slot over
//!   and goes to Redis, which decides as it does for any waiter: the same
//!   lease semantics as without the local queue.
//!
//! An entry lives while its slot is owned and is removed when the slot
//! falls idle, so the table does not grow with the number of resources
//! ever locked.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::guard::Lease;

/// How often a waiter that is not the head re-checks a holder whose lease
/// ran out (the head takes the slot over at once).
const TAKE_OVER_RECHECK: Duration = Duration::from_millis(20);

/// What a local waiter is told when its turn comes. (No `Debug`: the
/// value carries the whole token.)
pub(crate) enum Handoff {
    /// The lock is yours: its value in Redis (`TOKEN[!]`), and when
    /// the release that handed it over was sent (the lease counts from
    /// there).
    Granted {
        /// The lock's new value.
        value: String,
        /// When the hand-off was sent.
        sent: Instant,
    },
    /// You own the slot: acquire in Redis (the lock went to a remote
    /// waiter, or was not the releaser's to hand over).
    Redis,
}

/// One queued local waiter.
pub(crate) struct Waiting {
    pub(crate) token: String,
    pub(crate) ttl_ms: u64,
    pub(crate) tx: oneshot::Sender<Handoff>,
}

struct Slot {
    /// The token of the task that acquires or holds the lock for this
    /// process.
    owner: String,
    /// The owner's lease, once it holds the lock.
    lease: Option<Arc<Lease>>,
    queue: VecDeque<Waiting>,
}

/// What [`LocalQueues::pop_next`] found.
pub(crate) enum Next {
    /// The caller does not own the slot (a `try_acquire` taken beside the
    /// owner, or an owner whose slot was taken over).
    NotOwner,
    /// Nobody waits: the slot is idle now.
    Idle,
    /// The next waiter, which owns the slot from now on.
    Waiter(Waiting),
}

/// Per-manager table: resource → local slot.
#[derive(Default)]
pub(crate) struct LocalQueues {
    slots: Mutex<HashMap<String, Slot>>,
}

impl LocalQueues {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the slot if it is idle (`true`).
    pub(crate) fn try_own(&self, resource: &str, token: &str) -> bool {
        let mut slots = self.lock();
        if slots.contains_key(resource) {
            return false;
        }
        slots.insert(resource.to_owned(), Slot::new(token));
        true
    }

    /// Takes the slot if it is idle (`None`), else queues behind the
    /// owner and returns where the hand-off will arrive.
    pub(crate) fn join(
        &self,
        resource: &str,
        token: &str,
        ttl_ms: u64,
    ) -> Option<oneshot::Receiver<Handoff>> {
        let mut slots = self.lock();
        match slots.get_mut(resource) {
            None => {
                slots.insert(resource.to_owned(), Slot::new(token));
                None
            }
            Some(slot) => {
                let (tx, rx) = oneshot::channel();
                slot.queue.push_back(Waiting {
                    token: token.to_owned(),
                    ttl_ms,
                    tx,
                });
                Some(rx)
            }
        }
    }

    /// The owner `token` now holds the lock under `lease`.
    pub(crate) fn hold(&self, resource: &str, token: &str, lease: Arc<Lease>) {
        if let Some(slot) = self.lock().get_mut(resource) {
            if slot.owner == token {
                slot.lease = Some(lease);
            }
        }
    }

    /// The owner `token` releases: the next waiter (now the owner), or
    /// idle (the entry is removed), or not the owner at all.
    pub(crate) fn pop_next(&self, resource: &str, token: &str) -> Next {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(resource) else {
            return Next::NotOwner;
        };
        if slot.owner != token {
            return Next::NotOwner;
        }
        match slot.queue.pop_front() {
            None => {
                slots.remove(resource);
                Next::Idle
            }
            Some(next) => {
                slot.owner.clone_from(&next.token);
                slot.lease = None;
                Next::Waiter(next)
            }
        }
    }

    /// The owner `token` gives the slot up without a lock to hand over:
    /// the first waiter still listening goes to Redis, or the slot falls
    /// idle. A no-op when `token` does not own the slot.
    pub(crate) fn pass(&self, resource: &str, token: &str) {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(resource) else {
            return;
        };
        if slot.owner != token {
            return;
        }
        slot.lease = None;
        while let Some(next) = slot.queue.pop_front() {
            slot.owner.clone_from(&next.token);
            if next.tx.send(Handoff::Redis).is_ok() {
                return;
            }
        }
        slots.remove(resource);
    }

    /// A queued waiter leaves: `true` when it was still queued (nothing
    /// reached it), `false` when a release had already popped it.
    pub(crate) fn leave(&self, resource: &str, token: &str) -> bool {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(resource) else {
            return false;
        };
        match slot.queue.iter().position(|w| w.token == token) {
            Some(i) => {
                slot.queue.remove(i);
                true
            }
            None => false,
        }
    }

    /// For a queued waiter: when to look at the holder again (its lease
    /// end), `None` when there is no lease to watch (the owner is still
    /// acquiring: it gives up by its own deadline).
    pub(crate) fn check_at(&self, resource: &str, token: &str) -> Option<Instant> {
        let slots = self.lock();
        let slot = slots.get(resource)?;
        let until = slot.lease.as_ref()?.valid_until();
        let now = Instant::now();
        if until > now {
            Some(until)
        } else if slot.queue.front().is_some_and(|w| w.token == token) {
            Some(now)
        } else {
            Some(now + TAKE_OVER_RECHECK)
        }
    }

    /// The holder's remaining lease by this process's clock, if known.
    pub(crate) fn holder_left(&self, resource: &str) -> Duration {
        self.lock()
            .get(resource)
            .and_then(|s| s.lease.as_ref())
            .map_or(Duration::ZERO, |l| {
                l.valid_until().saturating_duration_since(Instant::now())
            })
    }

    /// The head waiter `token` takes the slot over when the holder's lease
    /// has run out (a stuck holder): `true` when it now owns the slot.
    pub(crate) fn take_over(&self, resource: &str, token: &str) -> bool {
        let mut slots = self.lock();
        let Some(slot) = slots.get_mut(resource) else {
            return false;
        };
        let expired = slot
            .lease
            .as_ref()
            .is_some_and(|l| l.valid_until() <= Instant::now());
        if !expired || !matches!(slot.queue.front(), Some(w) if w.token == token) {
            return false;
        }
        slot.queue.pop_front();
        slot.owner = token.to_owned();
        slot.lease = None;
        true
    }

    /// Resources with a local slot (tests: the table must not leak).
    #[cfg(any(test, feature = "test-hooks"))]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Slot {
    fn new(owner: &str) -> Slot {
        Slot {
            owner: owner.to_owned(),
            lease: None,
            queue: VecDeque::new(),
        }
    }
}
