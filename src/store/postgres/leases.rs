//! Partitions of pages and who owns them.
//!
//! Each partition has a row: its owner, an epoch that grows at every change of owner, and a
//! lease that the owner renews every third of its length. Every round an instance
//!
//! 1. says it is alive (`instances`), and counts the instances alive: its fair share is
//!    ⌈partitions / instances⌉;
//! 2. renews what it holds — a partition whose epoch moved on was taken over, and is dropped;
//! 3. lets go of what is over its share (an instance joined), or takes partitions nobody holds
//!    or whose lease ran out (an instance left or died), up to its share. A partition it lets go
//!    of first stops being claimed from, and is handed over once none of its sends is still in
//!    flight (the next rounds check), so that a handover sends nothing twice.
//!
//! An owner claims work only while its lease is good by its own clock, which stops a margin
//! before the database's `lease_until`: by the time another instance can take the partition,
//! the old owner has stopped claiming. The new owner then waits one pacing window (a second:
//! Messenger counts sends per page per second) before it sends, so that no page's second holds
//! sends of both owners.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{PgStore, Prepared, StoreError};

/// How long a new owner waits before sending: Messenger's pacing window.
pub(crate) const PACING_WINDOW: Duration = Duration::from_secs(1);

/// How an instance takes part in running the outbox.
#[derive(Debug, Clone)]
pub struct LeaseSettings {
    /// How long a partition is held without renewal.
    pub lease: Duration,
}

/// How long an event delivery round is taken to be in flight after this instance last said it
/// runs the round's chain (`Engine::runs_chain`): a receiver's 15 s, and a margin. A partition
/// being handed over is let go only once this long has passed, so that a round under way is
/// recorded (its cursor moved) before the next owner reads where the endpoint stands, and a
/// rebalance delivers nothing twice. The store does not see a round end, so this is a bound
/// of the usual round, not of every one: a longer round (a slow endpoint and a long batch)
/// is refused by the fencing once the partition changed hands, and its events go again — at
/// least once still holds.
const EVENT_ROUND_LONGEST: Duration = Duration::from_secs(20);

/// A partition this instance holds.
#[derive(Debug, Clone, Copy)]
struct Held {
    epoch: i64,
    /// This instance claims work from it until then (by its own clock).
    good_until: Instant,
    /// And not before then: a new owner's pacing gap.
    sendable_at: Instant,
    /// Being handed over: no new claims; let go once its sends in flight are recorded.
    releasing: bool,
}

/// The partitions this instance holds.
pub(super) struct Leases {
    held: Mutex<BTreeMap<u32, Held>>,
    lease: Duration,
    /// When this instance last said it runs each chain's event delivery.
    events_run: Mutex<BTreeMap<u32, Instant>>,
}

/// The partitions whose work may be claimed now.
pub(super) struct Claimable {
    pub partitions: Vec<i32>,
    pub epochs: Vec<i64>,
    /// When none may be claimed yet but some will: the first moment one may.
    pub next: Option<Instant>,
}

impl Leases {
    pub(super) fn new(lease: Duration) -> Leases {
        Leases {
            held: Mutex::new(BTreeMap::new()),
            lease,
            events_run: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether this instance runs partitions at all (a gateway does, a tool does not).
    pub(super) fn enabled(&self) -> bool {
        !self.lease.is_zero()
    }

    /// The margin by which an owner stops before its lease does.
    fn margin(&self) -> Duration {
        self.lease / 5
    }

    pub(super) fn claimable(&self, now: Instant) -> Claimable {
        let held = self.held.lock();
        let mut c = Claimable {
            partitions: Vec::new(),
            epochs: Vec::new(),
            next: None,
        };
        for (p, h) in held
            .iter()
            .filter(|(_, h)| h.good_until > now && !h.releasing)
        {
            if h.sendable_at <= now {
                c.partitions.push(i32::try_from(*p).unwrap_or(i32::MAX));
                c.epochs.push(h.epoch);
            } else {
                c.next = Some(c.next.map_or(h.sendable_at, |n| n.min(h.sendable_at)));
            }
        }
        if !c.partitions.is_empty() {
            c.next = None;
        }
        c
    }

    /// Whether this instance holds `partition` now.
    pub(super) fn holds(&self, partition: u32, now: Instant) -> bool {
        self.held
            .lock()
            .get(&partition)
            .is_some_and(|h| h.good_until > now && !h.releasing)
    }

    /// Whether this instance runs the event delivery of chain (partition) `partition` now; a
    /// `true` is remembered, for a handover to wait for the round it starts.
    pub(super) fn runs_events(&self, partition: u32, now: Instant) -> bool {
        let runs = self.holds(partition, now);
        if runs {
            self.events_run.lock().insert(partition, now);
        }
        runs
    }

    /// Whether an event delivery round started on `partition` may still be in flight.
    fn events_in_flight(&self, partition: u32, now: Instant) -> bool {
        self.events_run
            .lock()
            .get(&partition)
            .is_some_and(|at| now.saturating_duration_since(*at) < EVENT_ROUND_LONGEST)
    }

    /// The partitions held now and not being handed over: those whose work this instance
    /// starts (as [`Leases::holds`] says of one).
    pub(super) fn running(&self, now: Instant) -> Vec<i32> {
        self.held
            .lock()
            .iter()
            .filter(|(_, h)| h.good_until > now && !h.releasing)
            .map(|(p, _)| i32::try_from(*p).unwrap_or(i32::MAX))
            .collect()
    }

    /// The epoch under which this instance holds `partition`, if it holds it at all (even
    /// while handing it over, or past its own lease margin: the database has the last word).
    pub(super) fn epoch_of(&self, partition: u32) -> Option<i64> {
        self.held.lock().get(&partition).map(|h| h.epoch)
    }

    /// The partitions held now.
    pub(super) fn held(&self, now: Instant) -> Vec<i32> {
        self.held
            .lock()
            .iter()
            .filter(|(_, h)| h.good_until > now)
            .map(|(p, _)| i32::try_from(*p).unwrap_or(i32::MAX))
            .collect()
    }

    fn snapshot(&self) -> (Vec<i32>, Vec<i64>) {
        self.held
            .lock()
            .iter()
            .map(|(p, h)| (i32::try_from(*p).unwrap_or(i32::MAX), h.epoch))
            .unzip()
    }

    /// Forgets the partitions another instance took over and extends the renewed ones.
    fn keep_renewed(&self, renewed: &[u32], good_until: Instant) {
        let mut held = self.held.lock();
        let lost: Vec<u32> = held
            .keys()
            .filter(|p| !renewed.contains(p))
            .copied()
            .collect();
        for p in lost {
            tracing::warn!(
                partition = p,
                "a partition was taken over by another instance"
            );
            held.remove(&p);
        }
        for p in renewed {
            if let Some(h) = held.get_mut(p) {
                h.good_until = good_until;
            }
        }
    }

    /// Marks partitions to let go of above the fair `share`, or keeps some being let go of
    /// below it; answers how many are held and not being let go of.
    fn rebalance(&self, share: u32) -> u32 {
        let mut held = self.held.lock();
        let active = held.values().filter(|h| !h.releasing).count();
        let active = u32::try_from(active).unwrap_or(u32::MAX);
        if active > share {
            // Over the fair share: stop claiming from the last ones (let go of below).
            for h in held
                .values_mut()
                .rev()
                .filter(|h| !h.releasing)
                .take((active - share) as usize)
            {
                h.releasing = true;
            }
            share
        } else {
            // Under it: keep what was being let go of first.
            let mut active = active;
            for h in held.values_mut().filter(|h| h.releasing) {
                if active < share {
                    h.releasing = false;
                    active += 1;
                }
            }
            active
        }
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One round: alive, renew, rebalance (see the module documentation).
pub(super) async fn round(store: &PgStore) -> Result<(), StoreError> {
    let client = store.client().await?;
    let started = Instant::now();
    let share = heartbeat(store, &client).await?;
    let renewed = renew(store, &client).await?;
    let good_until = started + store.leases.lease - store.leases.margin();
    store.leases.keep_renewed(&renewed, good_until);
    // Partitions marked in an earlier round: a claim that was under way as they were marked
    // has been recorded by now, and their sends in flight are visible.
    hand_over(store, &client).await?;
    let count = store.leases.rebalance(share);
    if count < share {
        take_free(store, &client, share - count, good_until).await?;
    }
    Ok(())
}

/// Says this instance is alive, forgets instances gone for an hour, and answers this instance's
/// fair share of the partitions among the live ones.
async fn heartbeat(store: &PgStore, client: &deadpool_postgres::Object) -> Result<u32, StoreError> {
    let lease_ms = millis(store.leases.lease);
    client
        .exec(
            "INSERT INTO instances (id, heartbeat_until)
             VALUES ($1, now() + $2::bigint * interval '1 millisecond')
             ON CONFLICT (id) DO UPDATE SET heartbeat_until = EXCLUDED.heartbeat_until",
            &[&store.instance, &lease_ms],
        )
        .await?;
    client
        .exec(
            "DELETE FROM instances WHERE heartbeat_until < now() - interval '1 hour'",
            &[],
        )
        .await?;
    let alive: i64 = client
        .one(
            "SELECT count(*) FROM instances WHERE heartbeat_until > now()",
            &[],
        )
        .await?
        .get(0);
    Ok(store
        .partitions
        .div_ceil(u32::try_from(alive.max(1)).unwrap_or(1)))
}

/// Renews what is held; what does not come back was taken over.
async fn renew(
    store: &PgStore,
    client: &deadpool_postgres::Object,
) -> Result<Vec<u32>, StoreError> {
    let (partitions, epochs) = store.leases.snapshot();
    // Rows are locked in partition order, as every transaction that locks several partitions
    // does (the write that records a batch of sends): no deadlock.
    Ok(client
        .rows(
            "WITH mine AS (
                 SELECT p.partition FROM partitions p
                 JOIN UNNEST($3::integer[], $4::bigint[]) AS h(partition, epoch)
                   ON p.partition = h.partition AND p.epoch = h.epoch
                 WHERE p.owner = $1 ORDER BY p.partition FOR UPDATE OF p)
             UPDATE partitions p SET lease_until = now() + $2::bigint * interval '1 millisecond'
             FROM mine WHERE p.partition = mine.partition
             RETURNING p.partition",
            &[
                &store.instance,
                &millis(store.leases.lease),
                &partitions,
                &epochs,
            ],
        )
        .await?
        .iter()
        .map(|row| u32::try_from(row.get::<_, i32>(0)).unwrap_or_default())
        .collect())
}

/// Takes up to `wanted` partitions whose lease ran out.
async fn take_free(
    store: &PgStore,
    client: &deadpool_postgres::Object,
    wanted: u32,
    good_until: Instant,
) -> Result<(), StoreError> {
    let taken = client
        .rows(
            "UPDATE partitions p SET owner = $1, epoch = p.epoch + 1,
                 lease_until = now() + $2::bigint * interval '1 millisecond'
             FROM (SELECT partition FROM partitions WHERE lease_until < now()
                   ORDER BY partition LIMIT $3 FOR UPDATE SKIP LOCKED) AS free
             WHERE p.partition = free.partition
             RETURNING p.partition, p.epoch",
            &[
                &store.instance,
                &millis(store.leases.lease),
                &i64::from(wanted),
            ],
        )
        .await?;
    let now = Instant::now();
    let mut held = store.leases.held.lock();
    for row in taken {
        let partition = u32::try_from(row.get::<_, i32>(0)).unwrap_or_default();
        let epoch: i64 = row.get(1);
        // A partition owned before may have sent a moment ago: wait out its second.
        let sendable_at = if epoch > 1 { now + PACING_WINDOW } else { now };
        tracing::info!(partition, epoch, "took a partition");
        held.insert(
            partition,
            Held {
                epoch,
                good_until,
                sendable_at,
                releasing: false,
            },
        );
    }
    Ok(())
}

/// Lets go of the partitions being handed over that have no send and no event delivery round in
/// flight here.
async fn hand_over(store: &PgStore, client: &deadpool_postgres::Object) -> Result<(), StoreError> {
    let releasing: Vec<i32> = store
        .leases
        .held
        .lock()
        .iter()
        .filter(|(_, h)| h.releasing)
        .map(|(p, _)| i32::try_from(*p).unwrap_or(i32::MAX))
        .collect();
    if releasing.is_empty() {
        return Ok(());
    }
    let busy: Vec<i32> = client
        .rows(
            "SELECT DISTINCT partition FROM outbox WHERE partition = ANY($1) AND claimed_by = $2",
            &[&releasing, &store.instance],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let now = Instant::now();
    let idle: Vec<i32> = releasing
        .into_iter()
        .filter(|p| !busy.contains(p))
        .filter(|p| {
            !store
                .leases
                .events_in_flight(u32::try_from(*p).unwrap_or_default(), now)
        })
        .collect();
    {
        let mut held = store.leases.held.lock();
        for p in &idle {
            held.remove(&u32::try_from(*p).unwrap_or_default());
        }
    }
    release(client, &store.instance, &idle).await
}

async fn release(
    client: &deadpool_postgres::Object,
    instance: &str,
    partitions: &[i32],
) -> Result<(), StoreError> {
    if partitions.is_empty() {
        return Ok(());
    }
    client
        .exec(
            "WITH mine AS (
                 SELECT partition FROM partitions WHERE owner = $1 AND partition = ANY($2)
                 ORDER BY partition FOR UPDATE)
             UPDATE partitions p SET owner = NULL, lease_until = now()
             FROM mine WHERE p.partition = mine.partition",
            &[&instance, &partitions],
        )
        .await?;
    Ok(())
}

/// Lets go of every partition (a clean shutdown), so that others take them at once.
pub(super) async fn release_all(store: &PgStore) -> Result<(), StoreError> {
    let partitions: Vec<i32> = {
        let mut held = store.leases.held.lock();
        let all = held
            .keys()
            .map(|p| i32::try_from(*p).unwrap_or(i32::MAX))
            .collect();
        held.clear();
        all
    };
    let client = store.client().await?;
    release(&client, &store.instance, &partitions).await?;
    client
        .exec("DELETE FROM instances WHERE id = $1", &[&store.instance])
        .await?;
    Ok(())
}
