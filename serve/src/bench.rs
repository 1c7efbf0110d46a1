//! Subscription latency, for `sentinel bench serve`: anomalies handed to the feed at a steady
//! rate, as the job's anomaly sink hands them, timed until a GraphQL subscriber on a real
//! WebSocket (graphql-transport-ws) receives each one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::feed::{FeedSender, FeedStream, Unsent};

/// What a latency run saw.
#[derive(Clone, Debug, Default)]
pub struct LatencyRun {
    /// Anomalies handed to the feed.
    pub sent: u64,
    /// Of those, received by the subscriber.
    pub received: u64,
    /// Feed to subscriber, µs, one per anomaly received.
    pub latencies_us: Vec<u64>,
    /// Times the subscriber was told it was behind.
    pub behind: u64,
}

/// Subscribes to `anomalyDetected` on the server at `addr`, then hands `records` (id and JSON)
/// to `feed`, `rate` a second, and waits up to five seconds for the last to arrive.
pub fn subscription_latency(
    addr: SocketAddr,
    key: Option<&str>,
    feed: &FeedSender,
    records: Vec<(String, Vec<u8>)>,
    rate: f64,
) -> Result<LatencyRun, String> {
    let received: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let behind = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (sink, told) = (Arc::clone(&received), Arc::clone(&behind));
    let authorization = key.map(|k| format!("Bearer {k}"));
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let client = std::thread::spawn(move || {
        runtime.block_on(async move {
            let mut request = format!("ws://{addr}/graphql")
                .into_client_request()
                .map_err(|e| e.to_string())?;
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                axum::http::HeaderValue::from_static("graphql-transport-ws"),
            );
            let (mut socket, _) = tokio_tungstenite::connect_async(request)
                .await
                .map_err(|e| e.to_string())?;
            let payload = authorization.map_or(json!({}), |a| json!({"Authorization": a}));
            let send = |v: Value| Message::text(v.to_string());
            socket
                .send(send(json!({"type": "connection_init", "payload": payload})))
                .await
                .map_err(|e| e.to_string())?;
            socket
                .send(send(json!({"id": "1", "type": "subscribe",
                    "payload": {"query": "subscription { anomalyDetected { id } }"}})))
                .await
                .map_err(|e| e.to_string())?;
            let mut acked = false;
            loop {
                let msg = tokio::select! {
                    m = socket.next() => m,
                    _ = &mut stop_rx => break,
                };
                let Some(Ok(Message::Text(text))) = msg else {
                    if msg.is_none() {
                        break;
                    }
                    continue;
                };
                let now = Instant::now();
                let v: Value = serde_json::from_str(&text).unwrap_or_default();
                match v["type"].as_str() {
                    Some("connection_ack") if !acked => {
                        acked = true;
                        // Give the server the subscribe message before the first anomaly.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        let _ = ready_tx.send(Ok(()));
                    }
                    Some("next") => {
                        if let Some(id) = v["payload"]["data"]["anomalyDetected"]["id"].as_str() {
                            sink.lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(id.to_owned(), now);
                        } else {
                            told.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    Some("ping") => {
                        let _ = socket.send(send(json!({"type": "pong"}))).await;
                    }
                    Some("connection_error") | Some("error") => {
                        let _ = ready_tx.send(Err(text.to_string()));
                        break;
                    }
                    _ => {}
                }
            }
            Ok::<(), String>(())
        })
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| "the subscriber did not connect".to_owned())??;

    let mut sent_at: HashMap<String, Instant> = HashMap::with_capacity(records.len());
    let started = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    for (i, (id, record)) in records.into_iter().enumerate() {
        let due = started + interval * i as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let handed = Instant::now();
        let mut record = record;
        loop {
            match feed.try_send(FeedStream::Anomalies, record) {
                Ok(()) => break,
                Err(Unsent::Full(back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(Unsent::Closed) => return Err("the feed is gone".into()),
            }
        }
        sent_at.insert(id, handed);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while received.lock().unwrap_or_else(|p| p.into_inner()).len() < sent_at.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = stop_tx.send(());
    let _ = client.join();
    let received = received.lock().unwrap_or_else(|p| p.into_inner());
    let latencies_us: Vec<u64> = sent_at
        .iter()
        .filter_map(|(id, sent)| {
            received
                .get(id)
                .map(|r| r.saturating_duration_since(*sent).as_micros() as u64)
        })
        .collect();
    Ok(LatencyRun {
        sent: sent_at.len() as u64,
        received: latencies_us.len() as u64,
        latencies_us,
        behind: behind.load(std::sync::atomic::Ordering::Relaxed),
    })
}
