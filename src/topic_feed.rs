//! `sentinel serve`'s input: the job's output topics read into the store's feed on a thread of
//! its own, from where the store last got to (or from the start for a new store), so a replica
//! rebuilds its store from the topics and a restarted one resumes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use sentinel_connectors::kafka::{end_offsets, partitions_of, KafkaSettings, PartitionReader};

use crate::kafka_input::assignment;
use sentinel_serve::feed::{FeedSender, FeedStream};

/// Records read per pass at most before positions are handed to the feed.
const READ_BUDGET: usize = 4_096;

/// A running topic reader.
pub struct TopicFeed {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TopicFeed {
    /// Plans the partitions of `topics` (each with the stream its records are), resuming each
    /// from `positions` (`(topic, partition, next offset)`, from the store), and starts reading.
    pub fn start(
        settings: &KafkaSettings,
        topics: &[(String, FeedStream)],
        positions: &[(String, i32, i64)],
        feed: FeedSender,
    ) -> Result<TopicFeed, String> {
        let names: Vec<String> = topics.iter().map(|(t, _)| t.clone()).collect();
        let ids = partitions_of(settings, &names)?;
        let ends = end_offsets(settings, &ids)?;
        let mut assignments = Vec::with_capacity(ids.len());
        for ((topic, partition), end) in ids.iter().zip(ends) {
            let start = positions
                .iter()
                .find(|(t, p, _)| t == topic && p == partition)
                .map(|(_, _, next)| *next);
            assignments.push(assignment(settings, topic, *partition, start, end)?);
        }
        let streams: Vec<FeedStream> = assignments
            .iter()
            .map(|a| {
                topics
                    .iter()
                    .find(|(t, _)| *t == a.topic)
                    .map(|(_, s)| *s)
                    .expect("partitions of the topics asked")
            })
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let settings = settings.clone();
        let thread = std::thread::Builder::new()
            .name("serve-topics".into())
            .spawn(move || {
                let me = std::thread::current();
                let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || me.unpark());
                let reader = match PartitionReader::open(&settings, "sentinel-serve", &assignments, wake) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "serve: cannot read the topics");
                        return;
                    }
                };
                read_until_stopped(reader, &streams, &feed, &thread_stop);
            })
            .map_err(|e| e.to_string())?;
        Ok(TopicFeed {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops reading; what was read is in the feed's queue.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

fn read_until_stopped(mut reader: PartitionReader, streams: &[FeedStream], feed: &FeedSender, stop: &AtomicBool) {
    let mut caught_up = false;
    let mut read = 0u64;
    let mut sent_to: Vec<i64> = reader.positions().map(|(_, _, next)| next).collect();
    while !stop.load(Ordering::Relaxed) {
        let mut open = true;
        let status = reader.read(READ_BUDGET, &mut |record| {
            read += 1;
            // A tombstone carries nothing to store.
            if !record.payload.is_empty() {
                open = feed.send(streams[record.slot], record.payload.to_vec());
            }
            open
        });
        if !open {
            return;
        }
        for (slot, (topic, partition, next)) in reader.positions().enumerate() {
            if next > sent_to[slot] {
                if !feed.send_position(topic, partition, next) {
                    return;
                }
                sent_to[slot] = next;
            }
        }
        if !caught_up && reader.caught_up() {
            caught_up = true;
            eprintln!(
                "sentinel serve: caught up with {} partitions after reading {read} records; {} anomalies stored",
                reader.partitions(),
                feed.flush()
            );
        }
        if status == sentinel_connectors::kafka::ReaderStatus::Idle {
            // Woken by the reader when records arrive; the timeout bounds a missed wake-up.
            std::thread::park_timeout(Duration::from_millis(200));
        }
    }
}
