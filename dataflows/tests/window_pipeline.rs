//! The windowing and detection operators driven by an `InputHandle`, on two workers.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;
use sentinel_dataflows::detect::{BaselineConfig, Metric, SeverityBands, StatisticalConfig};
use sentinel_dataflows::model::{EntityKeys, EventType, MetricEvent};
use sentinel_dataflows::operators::{AggregationPlan, DetectStatistical, DistinctCounts, PreAggregate, WindowMerge};
use sentinel_dataflows::window::{Dimension, WindowAggregate};
use timely::dataflow::operators::{Inspect, Probe};
use timely::dataflow::{InputHandleVec, ProbeHandle};

const MINUTE: u64 = 60_000;
const T0: u64 = 1_717_200_000_000;

fn event(minute: u64, i: u64, app: &str, user: &str, cost: f64) -> MetricEvent {
    let id = format!("{app}-{minute}-{i}");
    MetricEvent {
        timestamp_ms: T0 + minute * MINUTE + i,
        event_type: EventType::Response,
        is_error: false,
        prompt_tokens: 10,
        completion_tokens: 5,
        total_tokens: 15,
        latency_ms: 100.0,
        cost,
        keys: EntityKeys::new([&id, app, "tenant", "model-a", user, ""]).unwrap(),
        read_ns: 0,
    }
}

fn cost_detector() -> StatisticalConfig {
    StatisticalConfig {
        id: "cost".into(),
        name: "Cost".into(),
        metric: Metric::CostPerMinute,
        group_by: Dimension::Application,
        window_ms: MINUTE,
        baseline: BaselineConfig {
            threshold: 4.0,
            min_history: 5,
            ..Default::default()
        },
        min_calls: 1,
        severity: SeverityBands::default(),
        state_ttl_ms: 3_600_000,
        cooldown_ms: 0,
        seasonal: None,
    }
}

/// Feeds 30 minutes of two applications, with a cost spike in `chat` at minute 20, and returns
/// the anomalies and the application windows seen by every worker.
fn run(workers: usize) -> (Vec<(String, String)>, Vec<WindowAggregate>) {
    let anomalies = Arc::new(Mutex::new(Vec::new()));
    let windows = Arc::new(Mutex::new(Vec::new()));
    let (a, w) = (Arc::clone(&anomalies), Arc::clone(&windows));
    timely::execute(timely::Config::process(workers), move |worker| {
        let mut input = InputHandleVec::<u64, MetricEvent>::new();
        let probe = ProbeHandle::new();
        let (a, w) = (Arc::clone(&a), Arc::clone(&w));
        worker.dataflow::<u64, _, _>(|scope| {
            let mut plan = AggregationPlan {
                groups: Vec::new(),
                distinct_widths: Vec::new(),
                max_samples: 2,
                quantiles: Vec::new(),
            };
            plan.require_distinct(MINUTE);
            let latency = Rc::new(RefCell::new(Histogram::<u64>::new(3).unwrap()));
            let (partials, pairs) = input.to_stream(scope).pre_aggregate(plan, latency);
            let merged = partials.merge_windows(pairs.distinct_counts(), 2);
            merged.clone().inspect(move |agg| w.lock().unwrap().push(agg.clone()));
            merged
                .detect_statistical(vec![cost_detector()], None)
                .0
                .inspect(move |an| {
                    a.lock()
                        .unwrap()
                        .push((an.affected_entity.id.clone(), an.context.window_start.clone()))
                })
                .probe_with(&probe);
        });
        if worker.index() == 0 {
            for minute in 0..30 {
                input.advance_to(T0 + minute * MINUTE);
                for i in 0..20 {
                    let cost = if minute == 20 {
                        1.0
                    } else {
                        0.01 + (i % 3) as f64 * 0.001
                    };
                    input.send(event(minute, i, "chat", &format!("u{}", i % 4), cost));
                    input.send(event(minute, i, "search", &format!("v{}", i % 7), 0.02));
                }
            }
        }
        input.advance_to(T0 + 31 * MINUTE);
        while probe.less_than(input.time()) {
            worker.step();
        }
    })
    .unwrap();
    let mut anomalies = anomalies.lock().unwrap().clone();
    anomalies.sort();
    let mut windows = windows.lock().unwrap().clone();
    windows.sort_by(|a, b| (a.window_end, &a.key).cmp(&(b.window_end, &b.key)));
    (anomalies, windows)
}

#[test]
fn finds_the_spike_and_counts_distinct_users_on_two_workers() {
    let (anomalies, windows) = run(2);
    assert_eq!(
        anomalies,
        vec![("chat".to_owned(), "2024-06-01T00:20:00.000Z".to_owned())]
    );
    assert_eq!(windows.len(), 60, "30 minutes x 2 applications");
    let chat = windows.iter().find(|w| w.key == "chat").unwrap();
    assert_eq!(
        (chat.acc.calls, chat.distinct_users, chat.distinct_models),
        (20, Some(4), Some(1))
    );
    let search = windows.iter().find(|w| w.key == "search").unwrap();
    assert_eq!(search.distinct_users, Some(7));
    assert_eq!(chat.acc.samples.len(), 2, "sample ids are capped");
}

#[test]
fn one_and_two_workers_agree() {
    assert_eq!(run(1), run(2));
}
