//! Plans a Kafka input on the main thread before the workers start: which partitions exist,
//! where each one resumes, and where each one ended at start (for `--exit-when-caught-up`).
//! These lookups block on the network, so they never run on a worker.

use sentinel_connectors::kafka::{committed_offsets, end_offsets, partitions_of, Assignment, KafkaSettings};

/// Everything the workers need to read Kafka.
#[derive(Clone, Debug)]
pub struct KafkaInput {
    /// Connection.
    pub settings: KafkaSettings,
    /// Consumer group (for committed offsets).
    pub group_id: String,
    /// Every partition of every input topic, in a fixed order.
    pub partitions: Vec<Assignment>,
    /// Stop once every partition reaches its end offset at start.
    pub exit_when_caught_up: bool,
}

impl KafkaInput {
    /// Looks up partitions, committed offsets and end offsets.
    pub fn plan(
        settings: KafkaSettings,
        group_id: String,
        topics: &[String],
        exit_when_caught_up: bool,
    ) -> Result<Self, String> {
        let ids = partitions_of(&settings, topics)?;
        let committed = committed_offsets(&settings, &group_id, &ids)?;
        let ends = end_offsets(&settings, &ids)?;
        let partitions = ids
            .iter()
            .zip(ends)
            .map(|((topic, partition), end)| Assignment {
                topic: topic.clone(),
                partition: *partition,
                start: committed
                    .iter()
                    .find(|c| &c.topic == topic && c.partition == *partition)
                    .and_then(|c| c.offset),
                end_at_start: end,
            })
            .collect();
        Ok(KafkaInput {
            settings,
            group_id,
            partitions,
            exit_when_caught_up,
        })
    }

    /// The partitions worker `index` of `peers` reads: every `peers`-th, starting at `index`.
    pub fn share(&self, index: usize, peers: usize) -> Vec<Assignment> {
        self.partitions
            .iter()
            .enumerate()
            .filter(|(i, _)| i % peers.max(1) == index)
            .map(|(_, a)| a.clone())
            .collect()
    }
}
