//! Live updates. The feed says how far the store has got; each subscriber reads from the store
//! what it has not seen yet, at its own pace. A slow subscriber is therefore never skipped: it
//! is told that it is behind, and then gets every anomaly it missed, in arrival order.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use futures_util::Stream;
use serde_json::Value;
use tokio::sync::{oneshot, watch};

use crate::store::{AnomalyFilter, Applied, Since, Store, StoredAggregate};

/// A subscriber this many records behind the store is told so before it catches up: more
/// than the feed stores in a few batches, so a burst alone does not set it off.
pub const BEHIND: u64 = 10_000;

/// Records read from the store per query.
const READ: u32 = 256;

/// What a subscription yields.
#[derive(Clone, Debug, PartialEq)]
pub enum Delivery<T> {
    /// A new record matching the subscription (an anomaly with its lifecycle fields, or an aggregate).
    Record(T),
    /// The subscriber has fallen `backlog` records behind the store. Every one of them that
    /// matches follows, oldest first.
    Behind {
        /// Records stored since the last one delivered (matching or not).
        backlog: u64,
    },
    /// The store could not be read. The subscription tries again at the next arrival.
    Failed(String),
}

/// Callers waiting for their lifecycle events to be applied, by event id.
type Expected = Arc<Mutex<HashMap<String, Vec<oneshot::Sender<Applied>>>>>;

/// Where the store has got: shared by the feed, the subscribers, and the API calls waiting for
/// their changes to come back from the anomaly-events stream. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Live {
    anomalies_stored: Arc<watch::Sender<u64>>,
    aggregates_stored: Arc<watch::Sender<u64>>,
    behind: u64,
    expected: Expected,
}

impl Live {
    /// A hub for `store` as it is now: subscribers get what arrives from here on.
    pub fn of(store: &dyn Store) -> Live {
        Live {
            anomalies_stored: Arc::new(watch::Sender::new(store.last_seq())),
            aggregates_stored: Arc::new(watch::Sender::new(store.last_aggregate_seq())),
            behind: BEHIND,
            expected: Expected::default(),
        }
    }

    /// Says what became of lifecycle event `event_id` once the feed applies it. Ask before
    /// publishing the event, so the answer cannot come first.
    pub fn expect(&self, event_id: &str) -> oneshot::Receiver<Applied> {
        let (tell, told) = oneshot::channel();
        self.expected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(event_id.to_owned())
            .or_default()
            .push(tell);
        told
    }

    /// Nobody waits for `event_id` any more (it was not published, or the wait timed out).
    pub fn forget(&self, event_id: &str) {
        self.expected.lock().unwrap_or_else(|p| p.into_inner()).remove(event_id);
    }

    /// The feed applied `event_id` with `outcome`: tells whoever waits for it.
    pub fn applied(&self, event_id: &str, outcome: &Applied) {
        let waiting = self.expected.lock().unwrap_or_else(|p| p.into_inner()).remove(event_id);
        for tell in waiting.into_iter().flatten() {
            let _ = tell.send(outcome.clone());
        }
    }

    /// Tells subscribers they are behind at `backlog` records instead of [`BEHIND`].
    pub fn behind_at(self, backlog: u64) -> Live {
        Live {
            behind: backlog,
            ..self
        }
    }

    /// The store now holds anomalies up to `last_seq`: wakes the subscribers.
    pub fn stored(&self, last_seq: u64) {
        advance(&self.anomalies_stored, last_seq);
    }

    /// The store now holds aggregates up to `last_seq`: wakes the subscribers.
    pub fn aggregates_stored(&self, last_seq: u64) {
        advance(&self.aggregates_stored, last_seq);
    }

    /// The anomalies matching `filter` that arrive from now on. The stream ends when the hub
    /// is dropped.
    pub fn anomalies(
        &self,
        store: Arc<dyn Store>,
        filter: AnomalyFilter,
    ) -> impl Stream<Item = Delivery<Value>> + Send + 'static {
        let read: ReadSince<Value> = Arc::new(move |after, upto, limit| store.since(after, upto, &filter, limit));
        self.follow(&self.anomalies_stored, read)
    }

    /// The aggregates that arrive from now on.
    pub fn aggregates(&self, store: Arc<dyn Store>) -> impl Stream<Item = Delivery<StoredAggregate>> + Send + 'static {
        let read: ReadSince<StoredAggregate> =
            Arc::new(move |after, upto, limit| store.aggregates_since(after, upto, limit));
        self.follow(&self.aggregates_stored, read)
    }

    fn follow<T: Send + 'static>(
        &self,
        arrivals: &watch::Sender<u64>,
        read: ReadSince<T>,
    ) -> impl Stream<Item = Delivery<T>> + Send + 'static {
        let stored = arrivals.subscribe();
        let after = *stored.borrow();
        let reader = Reader {
            stored,
            read,
            after,
            pending: VecDeque::new(),
            told_behind: false,
            failed: false,
            behind: self.behind,
        };
        futures_util::stream::unfold(reader, |mut r| async move {
            let next = r.next().await?;
            Some((next, r))
        })
    }
}

fn advance(arrivals: &watch::Sender<u64>, last_seq: u64) {
    arrivals.send_if_modified(|seen| {
        let newer = last_seq > *seen;
        if newer {
            *seen = last_seq;
        }
        newer
    });
}

/// Reads what arrived after one arrival number and up to another, at most so many.
type ReadSince<T> = Arc<dyn Fn(u64, u64, u32) -> Result<Since<T>, String> + Send + Sync>;

/// One subscriber's position.
struct Reader<T> {
    stored: watch::Receiver<u64>,
    read: ReadSince<T>,
    /// Every record up to this arrival number has been read.
    after: u64,
    pending: VecDeque<Delivery<T>>,
    told_behind: bool,
    /// The last read failed: wait for the next arrival before trying again, rather than spin.
    failed: bool,
    behind: u64,
}

impl<T: Send + 'static> Reader<T> {
    async fn next(&mut self) -> Option<Delivery<T>> {
        loop {
            if let Some(d) = self.pending.pop_front() {
                return Some(d);
            }
            if std::mem::take(&mut self.failed) {
                self.stored.changed().await.ok()?;
            }
            let latest = *self.stored.borrow_and_update();
            if self.after >= latest {
                self.stored.changed().await.ok()?;
                continue;
            }
            let backlog = latest - self.after;
            if backlog > self.behind && !self.told_behind {
                self.told_behind = true;
                return Some(Delivery::Behind { backlog });
            }
            self.told_behind &= backlog > u64::from(READ);
            let (read, after) = (Arc::clone(&self.read), self.after);
            match tokio::task::spawn_blocking(move || read(after, latest, READ)).await {
                Ok(Ok(since)) => {
                    self.after = since.read_to;
                    self.pending
                        .extend(since.records.into_iter().map(|(_, r)| Delivery::Record(r)));
                }
                Ok(Err(e)) => {
                    self.failed = true;
                    return Some(Delivery::Failed(e));
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Delivery::Failed(e.to_string()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SqliteStore, StoreOptions};
    use futures_util::StreamExt;
    use sentinel_dataflows::model::{Anomaly, Severity};

    fn anomaly(i: u64) -> Vec<u8> {
        let severity = if i.is_multiple_of(3) {
            Severity::Critical
        } else {
            Severity::Info
        };
        let a = Anomaly::sample(
            &[b"live", &i.to_le_bytes()],
            "cost-spike",
            severity,
            0.9,
            "chat",
            1_000_000 + i,
        );
        serde_json::to_vec(&a).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscriber_that_falls_behind_is_told_and_then_gets_every_anomaly_it_missed() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(StoreOptions::at(dir.path().join("s.db"))).unwrap());
        store.add_anomalies((0..10).map(anomaly).collect()).unwrap();
        let live = Live::of(&*store).behind_at(100);
        let critical = AnomalyFilter {
            end_ms: u64::MAX >> 1,
            severities: vec!["critical".into()],
            ..AnomalyFilter::default()
        };
        let mut stream = Box::pin(live.anomalies(Arc::clone(&store), critical));

        // Live, as they come: only what arrives after subscribing, only what matches.
        let added = store.add_anomalies((10..20).map(anomaly).collect()).unwrap();
        live.stored(added.last_seq);
        let mut got = Vec::new();
        while got.len() < 3 {
            match stream.next().await.unwrap() {
                Delivery::Record(a) => got.push(a["id"].as_str().unwrap().to_owned()),
                other => panic!("{other:?}"),
            }
        }
        let want: Vec<String> = [12u64, 15, 18]
            .iter()
            .map(|i| {
                serde_json::from_slice::<Value>(&anomaly(*i)).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(got, want, "the critical ones of 10..20, in arrival order");

        // It stops reading while 600 arrive in batches: it is told, then gets all 200 that match.
        for from in (20..620).step_by(100) {
            let added = store.add_anomalies((from..from + 100).map(anomaly).collect()).unwrap();
            live.stored(added.last_seq);
        }
        assert_eq!(stream.next().await.unwrap(), Delivery::Behind { backlog: 600 });
        let mut caught_up = Vec::new();
        while caught_up.len() < 200 {
            match stream.next().await.unwrap() {
                Delivery::Record(a) => caught_up.push(a["id"].as_str().unwrap().to_owned()),
                other => panic!("told twice or failed: {other:?}"),
            }
        }
        let want: Vec<String> = (20..620u64)
            .filter(|i| i.is_multiple_of(3))
            .map(|i| {
                serde_json::from_slice::<Value>(&anomaly(i)).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert_eq!(caught_up, want, "none skipped, none twice, oldest first");
    }
}
