//! The HTTP ingest listener: `POST /api/v1/telemetry/events` (one record) and
//! `POST /api/v1/telemetry/batch` (`{"events": [...]}`), JSON, plain or gzip. It moves bytes:
//! what a record means is the caller's [`Admission`]. The key the admission gives a record
//! picks one of the readers' queues and, in it, a lane (a reader keeps one event-time clock per
//! lane, so it needs to know which lanes have nothing waiting). The request is answered once
//! every record of it has been taken by its reader, so an accepted record is one the job has.

use std::collections::VecDeque;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use super::server::HttpServer;

/// Why a record was refused, as the answer reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// A short machine-readable reason.
    pub reason: String,
    /// What was wrong, for a person.
    pub message: String,
}

/// What the listener asks of its caller: who a key is, and what a record is.
pub trait Admission: Send + Sync + 'static {
    /// The caller behind an `Authorization` header, as an index the checks get back; `None`
    /// refuses the request.
    fn authenticate(&self, authorization: Option<&str>) -> Option<usize>;

    /// Checks one record from `caller`: its routing key (records with one key keep their order
    /// and go to one reader and lane), or why it is refused. A refused record is queued all the same,
    /// keyed 0, so that the job dead-letters it with its bytes.
    fn check(&self, caller: usize, record: &[u8]) -> Result<u64, Refusal>;
}

/// A batch of records handed to one reader, and who waits for it to be taken.
struct Handed {
    /// Each record with its lane.
    records: Vec<(usize, Vec<u8>)>,
    next: usize,
    taken: Option<oneshot::Sender<()>>,
}

struct QueueState {
    batches: VecDeque<Handed>,
    records: usize,
    /// Records waiting per lane.
    per_lane: Vec<usize>,
    closed: bool,
}

type Waker = Arc<dyn Fn() + Send + Sync>;

/// Records waiting for one reader, bounded in records. The listener adds whole requests or
/// nothing; the reader takes them without waiting.
#[derive(Clone)]
pub struct IngestQueue {
    state: Arc<Mutex<QueueState>>,
    wake: Arc<Mutex<Option<Waker>>>,
    capacity: usize,
    lanes: usize,
}

/// What a reader found in its queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// It stopped at the budget, or when told to; more may wait.
    More,
    /// Nothing waits now.
    Empty,
    /// The listener has stopped and nothing waits: the reader is done.
    Closed,
}

impl std::fmt::Debug for IngestQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("IngestQueue")
            .field("records", &state.records)
            .field("capacity", &self.capacity)
            .field("closed", &state.closed)
            .finish()
    }
}

impl IngestQueue {
    /// A queue holding at most `capacity` records, in `lanes` lanes.
    pub fn new(capacity: usize, lanes: usize) -> IngestQueue {
        let lanes = lanes.max(1);
        IngestQueue {
            state: Arc::new(Mutex::new(QueueState {
                batches: VecDeque::new(),
                records: 0,
                per_lane: vec![0; lanes],
                closed: false,
            })),
            wake: Arc::default(),
            capacity: capacity.max(1),
            lanes,
        }
    }

    /// How many lanes it has.
    pub fn lanes(&self) -> usize {
        self.lanes
    }

    /// Whether nothing waits in `lane`.
    pub fn lane_is_empty(&self, lane: usize) -> bool {
        self.lock().per_lane.get(lane).is_none_or(|n| *n == 0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets what is called when records arrive (the reader's activator).
    pub fn set_waker(&self, wake: Waker) {
        *self.wake.lock().unwrap_or_else(|e| e.into_inner()) = Some(wake);
    }

    fn wake(&self) {
        if let Some(wake) = self.wake.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            wake();
        }
    }

    /// Whether `more` records fit now.
    fn fits(&self, more: usize) -> bool {
        let state = self.lock();
        !state.closed && state.records + more <= self.capacity
    }

    /// Adds a batch of records, each with its lane; `taken` is told once its last record has
    /// been read.
    fn push(&self, records: Vec<(usize, Vec<u8>)>, taken: oneshot::Sender<()>) {
        {
            let mut state = self.lock();
            state.records += records.len();
            for (lane, _) in &records {
                state.per_lane[*lane % self.lanes] += 1;
            }
            state.batches.push_back(Handed {
                records,
                next: 0,
                taken: Some(taken),
            });
        }
        self.wake();
    }

    /// No more records will come: the reader finishes once it has read what waits.
    pub fn close(&self) {
        self.lock().closed = true;
        self.wake();
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.lock().records == 0
    }

    /// Passes up to `budget` records to `each` (lane and bytes), stopping early when it returns
    /// `false` (that record counts as read). Never waits for the listener.
    pub fn take(&self, budget: usize, each: &mut dyn FnMut(usize, &[u8]) -> bool) -> Taken {
        let mut state = self.lock();
        let mut passed = 0;
        while passed < budget {
            let Some(batch) = state.batches.front_mut() else {
                return if state.closed { Taken::Closed } else { Taken::Empty };
            };
            let (lane, bytes) = &batch.records[batch.next];
            let lane = *lane % self.lanes;
            let go_on = each(lane, bytes);
            batch.next += 1;
            passed += 1;
            if batch.next == batch.records.len() {
                if let Some(taken) = batch.taken.take() {
                    let _ = taken.send(());
                }
                state.batches.pop_front();
            }
            state.records -= 1;
            state.per_lane[lane] -= 1;
            if !go_on {
                break;
            }
        }
        if state.records == 0 && state.closed {
            Taken::Closed
        } else if state.records == 0 {
            Taken::Empty
        } else {
            Taken::More
        }
    }
}

/// Limits of the listener.
#[derive(Clone, Debug)]
pub struct IngestLimits {
    /// Largest request body, compressed or not, and largest body after gunzip.
    pub max_body_bytes: usize,
    /// Most records in one batch.
    pub max_batch_records: usize,
    /// How long a request waits for its records to be taken before it is answered 503.
    pub take_timeout: Duration,
    /// `Retry-After` of a 429, seconds.
    pub retry_after_secs: u64,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_body_bytes: 10 << 20,
            max_batch_records: 10_000,
            take_timeout: Duration::from_secs(30),
            retry_after_secs: 1,
        }
    }
}

struct Shared {
    admission: Arc<dyn Admission>,
    queues: Vec<IngestQueue>,
    limits: IngestLimits,
}

/// A running listener.
pub struct IngestServer {
    /// Where it listens (the port resolved when 0 was asked).
    pub addr: SocketAddr,
    server: Option<HttpServer>,
    queues: Vec<IngestQueue>,
}

impl IngestServer {
    /// Listens on `listen`, on a runtime of its own, handing records to `queues` (one per
    /// reader) as `admission` routes them.
    pub fn start(
        listen: SocketAddr,
        admission: Arc<dyn Admission>,
        queues: Vec<IngestQueue>,
        limits: IngestLimits,
    ) -> Result<IngestServer, String> {
        if queues.is_empty() {
            return Err("ingest: no reader to hand records to".into());
        }
        // Bodies over the limit are refused while they arrive, not once read whole.
        let body_limit = limits.max_body_bytes;
        let shared = Arc::new(Shared {
            admission,
            queues: queues.clone(),
            limits,
        });
        let app = Router::new()
            .route("/api/v1/telemetry/events", post(one_event))
            .route("/api/v1/telemetry/batch", post(batch))
            .with_state(shared)
            .fallback(|| async { refuse(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
            .layer(axum::extract::DefaultBodyLimit::max(body_limit));
        let server = HttpServer::start(listen, app, "ingest")?;
        Ok(IngestServer {
            addr: server.addr,
            server: Some(server),
            queues,
        })
    }

    /// Stops accepting, answers the requests in flight, then closes the queues: the readers
    /// finish once they have read what waits.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
        for q in &self.queues {
            q.close();
        }
    }
}

impl Drop for IngestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A whole request refused: its status and a JSON body saying why.
struct Refused {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

fn refuse(status: StatusCode, code: &'static str, message: &str) -> Response {
    Refused {
        status,
        code,
        message: message.to_owned(),
    }
    .into_response()
}

/// The body, gunzipped when it says it is gzip, within the size limit.
fn body_of(headers: &HeaderMap, body: Bytes, limit: usize) -> Result<Vec<u8>, Refused> {
    if body.len() > limit {
        return Err(Refused {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "too_large",
            message: format!("the body is {} bytes; the limit is {limit}", body.len()),
        });
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "identity" | "" => Ok(body.to_vec()),
        "gzip" => {
            let mut out = Vec::new();
            let mut reader = flate2::read::GzDecoder::new(&body[..]).take(limit as u64 + 1);
            reader.read_to_end(&mut out).map_err(|e| Refused {
                status: StatusCode::BAD_REQUEST,
                code: "bad_encoding",
                message: format!("the body is not valid gzip: {e}"),
            })?;
            if out.len() > limit {
                return Err(Refused {
                    status: StatusCode::PAYLOAD_TOO_LARGE,
                    code: "too_large",
                    message: format!("the body is over {limit} bytes once gunzipped"),
                });
            }
            Ok(out)
        }
        other => Err(Refused {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "bad_encoding",
            message: format!("Content-Encoding `{other}` is not supported; send identity or gzip"),
        }),
    }
}

#[derive(Deserialize)]
struct BatchBody<'a> {
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
}

type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

async fn one_event(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    admit(shared, headers, body, false).await
}

async fn batch(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    admit(shared, headers, body, true).await
}

async fn admit(shared: Arc<Shared>, headers: HeaderMap, body: Body, batched: bool) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let Some(caller) = shared.admission.authenticate(authorization) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "send a configured ingest key as `Authorization: Bearer <key>`",
        );
    };
    let body = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_large",
                &format!("the body is over {} bytes", shared.limits.max_body_bytes),
            )
        }
        Err(e) => return refuse(e.status(), "bad_body", &e.body_text()),
    };
    let body = match body_of(&headers, body, shared.limits.max_body_bytes) {
        Ok(b) => b,
        Err(refused) => return refused.into_response(),
    };
    // The records: the batch's events, or the body itself. A body that is not a batch is one
    // record, so that what was sent is dead-lettered rather than lost.
    let records: Vec<Vec<u8>> = if batched {
        match serde_json::from_slice::<BatchBody>(&body) {
            Ok(b) if b.events.len() > shared.limits.max_batch_records => {
                return refuse(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_many_events",
                    &format!(
                        "the batch holds {} events; the limit is {}",
                        b.events.len(),
                        shared.limits.max_batch_records
                    ),
                );
            }
            Ok(b) => b.events.iter().map(|e| e.get().as_bytes().to_vec()).collect(),
            Err(_) => vec![body],
        }
    } else {
        vec![body]
    };
    let admission = Arc::clone(&shared.admission);
    let readers = shared.queues.len() as u64;
    let mut errors = Vec::new();
    let mut per_reader: Vec<Vec<(usize, Vec<u8>)>> = vec![Vec::new(); shared.queues.len()];
    for (index, record) in records.into_iter().enumerate() {
        let key = match admission.check(caller, &record) {
            Ok(key) => key,
            Err(refusal) => {
                errors.push(json!({"index": index, "reason": refusal.reason, "message": refusal.message}));
                0
            }
        };
        // The key picks the reader, and the rest of it the lane.
        let reader = (key % readers) as usize;
        let lane = ((key / readers) % shared.queues[reader].lanes() as u64) as usize;
        per_reader[reader].push((lane, record));
    }
    let total: usize = per_reader.iter().map(Vec::len).sum();
    // All or nothing: a request the queues cannot take whole is refused whole.
    if per_reader
        .iter()
        .zip(&shared.queues)
        .any(|(records, q)| !records.is_empty() && !q.fits(records.len()))
    {
        let mut refused = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "full",
            "the job's queue is full; retry after the delay given",
        );
        if let Ok(value) = shared.limits.retry_after_secs.to_string().parse() {
            refused.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return refused;
    }
    let mut taken = Vec::new();
    for (records, q) in per_reader.into_iter().zip(&shared.queues) {
        if !records.is_empty() {
            let (tell, told) = oneshot::channel();
            q.push(records, tell);
            taken.push(told);
        }
    }
    let all_taken = async {
        for told in taken {
            if told.await.is_err() {
                return false;
            }
        }
        true
    };
    match tokio::time::timeout(shared.limits.take_timeout, all_taken).await {
        Ok(true) => {}
        _ => {
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_taken",
                "the job did not take the records in time; they may still be processed",
            )
        }
    }
    let rejected = errors.len();
    Json(json!({
        "accepted": total - rejected,
        "rejected": rejected,
        "errors": errors,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes every JSON object; any other JSON value is refused as `not_an_object`. The key is
    /// the record's length.
    struct ObjectsOnly;

    impl Admission for ObjectsOnly {
        fn authenticate(&self, authorization: Option<&str>) -> Option<usize> {
            (authorization == Some("Bearer k")).then_some(0)
        }
        fn check(&self, _caller: usize, record: &[u8]) -> Result<u64, Refusal> {
            match serde_json::from_slice::<serde_json::Value>(record) {
                Ok(v) if v.is_object() => Ok(record.len() as u64),
                _ => Err(Refusal {
                    reason: "not_an_object".into(),
                    message: "an event is a JSON object".into(),
                }),
            }
        }
    }

    async fn json_of(response: reqwest::Response) -> serde_json::Value {
        serde_json::from_str(&response.text().await.unwrap()).unwrap()
    }

    fn batch_of(n: usize) -> String {
        let events: Vec<String> = (0..n).map(|i| format!("{{\"n\":{i}}}")).collect();
        format!("{{\"events\":[{}]}}", events.join(","))
    }

    #[test]
    fn a_full_queue_answers_429_and_a_request_is_answered_once_its_records_are_taken() {
        let queue = IngestQueue::new(10, 1);
        let limits = IngestLimits {
            max_batch_records: 10,
            ..IngestLimits::default()
        };
        let server = IngestServer::start(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(ObjectsOnly),
            vec![queue.clone()],
            limits,
        )
        .unwrap();
        let url = format!("http://{}/api/v1/telemetry/batch", server.addr);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let read = runtime.block_on(async {
            let client = reqwest::Client::new();
            let post = |body: String, key: &str| client.post(&url).bearer_auth(key).body(body).send();
            // Eight records wait for a reader; five more do not fit beside them.
            let first = tokio::spawn(post(batch_of(8), "k"));
            while queue.is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let full = post(batch_of(5), "k").await.unwrap();
            assert_eq!(full.status(), StatusCode::TOO_MANY_REQUESTS);
            assert_eq!(full.headers()[header::RETRY_AFTER], "1");
            let too_many = post(batch_of(11), "k").await.unwrap();
            assert_eq!(too_many.status(), StatusCode::PAYLOAD_TOO_LARGE);
            let wrong = post(batch_of(1), "nope").await.unwrap();
            assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
            tokio::time::sleep(Duration::from_millis(50)).await;
            assert!(!first.is_finished(), "answered only once its records are taken");

            // A reader from now on.
            let reader_queue = queue.clone();
            let reader = std::thread::spawn(move || {
                let mut read = Vec::new();
                loop {
                    let taken = reader_queue.take(100, &mut |_, bytes| {
                        read.push(String::from_utf8_lossy(bytes).into_owned());
                        true
                    });
                    match taken {
                        Taken::Closed => return read,
                        Taken::Empty => std::thread::sleep(Duration::from_millis(2)),
                        Taken::More => {}
                    }
                }
            });
            let answer = json_of(first.await.unwrap().unwrap()).await;
            assert_eq!(
                (answer["accepted"].as_u64(), answer["rejected"].as_u64()),
                (Some(8), Some(0))
            );
            // A refused record is reported by its place and reason, and handed on all the same.
            let mixed = json_of(post(r#"{"events":[{"a":1},"x",{"b":2}]}"#.into(), "k").await.unwrap()).await;
            assert_eq!(
                (mixed["accepted"].as_u64(), mixed["rejected"].as_u64()),
                (Some(2), Some(1))
            );
            assert_eq!(mixed["errors"][0]["index"], 1);
            assert_eq!(mixed["errors"][0]["reason"], "not_an_object");
            // A body that is not a batch is one record, refused, and handed on.
            let broken = json_of(post("{not json".into(), "k").await.unwrap()).await;
            assert_eq!(broken["rejected"], 1);
            reader
        });
        server.stop();
        let read = read.join().unwrap();
        assert_eq!(read.len(), 8 + 3 + 1);
        assert_eq!(&read[8..], ["{\"a\":1}", "\"x\"", "{\"b\":2}", "{not json"]);
    }

    #[test]
    fn a_reader_takes_whole_batches_in_order_and_tells_each_when_it_is_read() {
        let q = IngestQueue::new(5, 4);
        let (tell_a, mut told_a) = oneshot::channel();
        let (tell_b, mut told_b) = oneshot::channel();
        assert!(q.fits(5) && !q.fits(6));
        q.push(vec![(1, b"a1".to_vec()), (2, b"a2".to_vec())], tell_a);
        q.push(vec![(3, b"b1".to_vec())], tell_b);
        assert!(!q.fits(3), "five records at most");
        let mut seen = Vec::new();
        assert_eq!(
            q.take(1, &mut |k, b| {
                seen.push((k, b.to_vec()));
                true
            }),
            Taken::More
        );
        assert!(told_a.try_recv().is_err(), "half of a is not yet read");
        // What waits, lane by lane: a reader's clock on an empty lane may stop holding back.
        assert!(q.lane_is_empty(0) && q.lane_is_empty(1));
        assert!(!q.lane_is_empty(2) && !q.lane_is_empty(3));
        assert_eq!(
            q.take(10, &mut |k, b| {
                seen.push((k, b.to_vec()));
                true
            }),
            Taken::Empty
        );
        assert_eq!(seen, [(1, b"a1".to_vec()), (2, b"a2".to_vec()), (3, b"b1".to_vec())]);
        assert!(told_a.try_recv().is_ok() && told_b.try_recv().is_ok());
        assert!(q.is_empty() && q.fits(5));
        assert!((0..4).all(|lane| q.lane_is_empty(lane)));
        q.close();
        assert!(!q.fits(1), "a closed queue takes nothing");
        assert_eq!(q.take(10, &mut |_, _| true), Taken::Closed);
    }
}
