//! A wake-up callback that can be installed after the thing that calls it was created.

use std::sync::{Arc, Mutex};

/// Holds a callback, callable from any thread. Transports are connected before the dataflow
/// operator that reads or writes them exists; the operator installs its activator here later.
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// use sentinel_connectors::wake::WakeSlot;
/// let slot = WakeSlot::new();
/// let call = slot.callback();
/// call(); // nothing installed yet: a no-op
/// let hits = Arc::new(AtomicUsize::new(0));
/// let h = Arc::clone(&hits);
/// slot.install(Arc::new(move || { h.fetch_add(1, Ordering::Relaxed); }));
/// call();
/// assert_eq!(hits.load(Ordering::Relaxed), 1);
/// ```
#[derive(Default)]
pub struct WakeSlot(Mutex<Option<Arc<dyn Fn() + Send + Sync>>>);

impl WakeSlot {
    /// An empty slot.
    pub fn new() -> Arc<Self> {
        Arc::new(WakeSlot::default())
    }

    /// Installs (or replaces) the callback.
    pub fn install(&self, wake: Arc<dyn Fn() + Send + Sync>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(wake);
    }

    /// A callback that calls whatever is installed at the time.
    pub fn callback(self: &Arc<Self>) -> Arc<dyn Fn() + Send + Sync> {
        let slot = Arc::clone(self);
        Arc::new(move || {
            let installed = slot.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if let Some(wake) = installed {
                wake();
            }
        })
    }
}
