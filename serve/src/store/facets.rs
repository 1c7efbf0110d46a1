//! The stored anomalies' facets (time, detector, severity, application, kind, entity, score)
//! in memory, in time order, with their strings interned: `statistics` over a week of a
//! million anomalies is one scan of a few megabytes instead of a grouped scan of the table.

use std::collections::HashMap;

use super::{GroupBy, GroupStats};

/// One anomaly's facets: 40 bytes, the names interned.
#[derive(Clone, Copy, Debug)]
struct Facet {
    ts_ms: u64,
    score: f64,
    detector: u32,
    severity: u32,
    application: u32,
    detector_type: u32,
    entity: u32,
}

impl Facet {
    fn value(&self, g: GroupBy) -> u32 {
        match g {
            GroupBy::Detector => self.detector,
            GroupBy::Severity => self.severity,
            GroupBy::Application => self.application,
            GroupBy::DetectorType => self.detector_type,
        }
    }
}

/// What a facet is made from.
pub(super) struct FacetRow<'a> {
    pub ts_ms: u64,
    pub score: f64,
    pub detector: &'a str,
    pub severity: &'a str,
    pub application: &'a str,
    pub detector_type: &'a str,
    pub entity: &'a str,
}

/// Figures over a range.
pub(super) struct Summary {
    pub total: u64,
    pub average_score: f64,
    pub groups: Vec<GroupStats>,
    pub top_entities: Vec<(String, u64)>,
}

/// Every stored anomaly's facets, oldest first.
#[derive(Default)]
pub(super) struct Facets {
    names: Vec<String>,
    ids: HashMap<String, u32>,
    rows: Vec<Facet>,
}

impl Facets {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.ids.insert(name.to_owned(), id);
        id
    }

    /// Adds one anomaly's facets, keeping time order (anomalies come nearly in order, so
    /// the insertion point is near the end).
    pub fn add(&mut self, row: FacetRow<'_>) {
        let facet = Facet {
            ts_ms: row.ts_ms,
            score: row.score,
            detector: self.intern(row.detector),
            severity: self.intern(row.severity),
            application: self.intern(row.application),
            detector_type: self.intern(row.detector_type),
            entity: self.intern(row.entity),
        };
        let at = self.rows.partition_point(|f| f.ts_ms <= row.ts_ms);
        self.rows.insert(at, facet);
    }

    /// Forgets anomalies before `ts_ms`, as retention by age deletes them.
    pub fn drop_before(&mut self, ts_ms: u64) {
        let n = self.rows.partition_point(|f| f.ts_ms < ts_ms);
        self.rows.drain(..n);
    }

    /// Keeps the newest `count`, as retention by count does.
    pub fn keep_newest(&mut self, count: usize) {
        let excess = self.rows.len().saturating_sub(count);
        self.rows.drain(..excess);
    }

    /// The figures over `[start_ms, end_ms)`: groups by count, largest first (ties by name),
    /// and the ten entities with the most anomalies.
    pub fn summary(&self, start_ms: u64, end_ms: u64, group_by: &[GroupBy]) -> Summary {
        let from = self.rows.partition_point(|f| f.ts_ms < start_ms);
        let to = self.rows.partition_point(|f| f.ts_ms < end_ms);
        let range = &self.rows[from..to.max(from)];
        let mut groups: HashMap<[u32; 4], (u64, f64)> = HashMap::new();
        let mut entities: HashMap<u32, u64> = HashMap::new();
        let mut score_sum = 0.0;
        for f in range {
            score_sum += f.score;
            *entities.entry(f.entity).or_default() += 1;
            if !group_by.is_empty() {
                let mut key = [u32::MAX; 4];
                for (slot, g) in key.iter_mut().zip(group_by) {
                    *slot = f.value(*g);
                }
                let e = groups.entry(key).or_default();
                e.0 += 1;
                e.1 += f.score;
            }
        }
        let name = |id: u32| self.names[id as usize].clone();
        let mut groups: Vec<GroupStats> = groups
            .into_iter()
            .map(|(key, (count, sum))| GroupStats {
                key: key[..group_by.len()].iter().map(|&id| name(id)).collect(),
                count,
                average_score: sum / count as f64,
            })
            .collect();
        groups.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        let mut top: Vec<(String, u64)> = entities.into_iter().map(|(id, n)| (name(id), n)).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(10);
        Summary {
            total: range.len() as u64,
            average_score: if range.is_empty() {
                0.0
            } else {
                score_sum / range.len() as f64
            },
            groups,
            top_entities: top,
        }
    }
}
