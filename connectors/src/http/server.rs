//! An HTTP app served on a tokio runtime of its own, never a worker's thread, and stopped
//! gracefully: the requests in flight are answered first.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use axum::Router;
use tokio::sync::oneshot;

/// A running server.
pub struct HttpServer {
    /// Where it listens (the port resolved when 0 was asked).
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `listen` and serves `app` on two runtime threads named after `name`.
    pub fn start(listen: SocketAddr, app: Router, name: &str) -> Result<HttpServer, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name(name)
            .enable_all()
            .build()
            .map_err(|e| format!("{name}: {e}"))?;
        let std_listener = std::net::TcpListener::bind(listen).map_err(|e| format!("{name}: binding {listen}: {e}"))?;
        std_listener.set_nonblocking(true).map_err(|e| format!("{name}: {e}"))?;
        let addr = std_listener.local_addr().map_err(|e| format!("{name}: {e}"))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let label = name.to_owned();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-http"))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!(server = %label, error = %e, "cannot listen");
                            return;
                        }
                    };
                    let served = axum::serve(listener, app).with_graceful_shutdown(async {
                        let _ = stopped.await;
                    });
                    if let Err(e) = served.await {
                        tracing::error!(server = %label, error = %e, "the server stopped");
                    }
                });
            })
            .map_err(|e| format!("{name}: {e}"))?;
        Ok(HttpServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// Stops accepting, lets the requests in flight finish, and waits.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}
