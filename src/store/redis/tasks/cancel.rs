//! Cancels reaching the instance that runs the operation.
//!
//! The commit of a cancel sets the record's `x` and PUBLISHes the task id.
//! Each store has one subscriber connection, made by a background task on the
//! first [`TaskStore::cancelled`](crate::tasks::TaskStore::cancelled), that
//! wakes the local waiters of that id. A waiter reads `x` once when it starts
//! (a cancel may have come first). After each (re)subscription, and every poll
//! interval while it cannot subscribe, the background task reads `x` of every
//! task waited on here, so a cancel published while it was not subscribed is
//! not lost; a PING every second finds a connection that went quiet.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ::redis::aio::MultiplexedConnection;
use ::redis::{PushInfo, PushKind, Value, cmd};
use parking_lot::Mutex;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::sync::watch;

use super::Inner;
use crate::tasks::TaskId;

/// How often the subscriber connection is PINGed.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// The tasks waited on in this process, each with a flag set on cancel.
pub(super) struct Waiters {
    map: Mutex<HashMap<TaskId, watch::Sender<bool>>>,
    listening: AtomicBool,
    poll: Duration,
}

impl Waiters {
    pub(super) fn new(poll: Duration) -> Self {
        Waiters { map: Mutex::new(HashMap::new()), listening: AtomicBool::new(false), poll }
    }

    /// Wakes the waiters of `id`, if any.
    fn wake(&self, id: &TaskId) {
        if let Some(flag) = self.map.lock().get(id) {
            flag.send_replace(true);
        }
    }

    /// The tasks waited on and not known to be cancelled.
    fn waiting(&self) -> Vec<TaskId> {
        self.map.lock().iter().filter(|(_, flag)| !*flag.borrow()).map(|(id, _)| id.clone()).collect()
    }
}

/// One `cancelled` future's hold on its task's flag; unregisters on drop.
pub(super) struct Waiter {
    inner: Arc<Inner>,
    id: TaskId,
    flag: Option<watch::Receiver<bool>>,
}

impl Waiter {
    /// Registers at once, so that no wake-up after this call is missed.
    pub(super) fn register(inner: &Arc<Inner>, id: &TaskId) -> Self {
        let flag = inner.waiters.map.lock().entry(id.clone()).or_insert_with(|| watch::channel(false).0).subscribe();
        Waiter { inner: Arc::clone(inner), id: id.clone(), flag: Some(flag) }
    }

    /// Resolves once the task is cancelled.
    pub(super) async fn cancelled(mut self) {
        listen(&self.inner);
        match self.inner.is_cancelled(&self.id).await {
            Ok(true) => return,
            Ok(false) => {}
            // The listener's re-checks find it later.
            Err(error) => tracing::debug!(task = %self.id, %error, "could not check for a cancel"),
        }
        let Some(flag) = self.flag.as_mut() else { return };
        if flag.wait_for(|cancelled| *cancelled).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut map = self.inner.waiters.map.lock();
        drop(self.flag.take());
        if map.get(&self.id).is_some_and(|flag| flag.receiver_count() == 0) {
            map.remove(&self.id);
        }
    }
}

/// Starts the store's listener, once, on the current Tokio runtime.
fn listen(inner: &Arc<Inner>) {
    if inner.waiters.listening.swap(true, Ordering::AcqRel) {
        return;
    }
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn(listener(Arc::downgrade(inner)))),
        Err(_) => inner.waiters.listening.store(false, Ordering::Release),
    }
}

/// Subscribes, re-checks, serves messages until the connection drops, and
/// again; polls while it cannot subscribe. Ends once the store is dropped.
async fn listener(store: Weak<Inner>) {
    loop {
        let Some(inner) = store.upgrade() else { return };
        let (pushes, mut received) = unbounded_channel();
        match inner.subscribe(pushes).await {
            Ok(connection) => {
                inner.recheck().await;
                let timeout = inner.link.timeout();
                drop(inner);
                serve(&store, connection, &mut received, timeout).await;
            }
            Err(error) => {
                tracing::debug!(%error, "cannot subscribe to task cancels; polling");
                inner.recheck().await;
                let poll = inner.waiters.poll;
                drop(inner);
                tokio::time::sleep(poll).await;
            }
        }
    }
}

/// Wakes waiters as cancels are published; returns when the connection
/// drops or stops answering, or the store is gone.
async fn serve(
    store: &Weak<Inner>,
    mut connection: MultiplexedConnection,
    received: &mut UnboundedReceiver<PushInfo>,
    timeout: Duration,
) {
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            push = received.recv() => match push {
                Some(PushInfo { kind: PushKind::Message, data }) => {
                    let Some(inner) = store.upgrade() else { return };
                    if let Some(id) = data.get(1).and_then(task_id) {
                        inner.waiters.wake(&id);
                    }
                }
                Some(PushInfo { kind: PushKind::Disconnection, .. }) | None => return,
                Some(_) => {}
            },
            _ = heartbeat.tick() => {
                if store.strong_count() == 0 {
                    return;
                }
                let ping = tokio::time::timeout(timeout, cmd("PING").query_async::<Value>(&mut connection)).await;
                if !matches!(ping, Ok(Ok(_))) {
                    tracing::debug!("the task cancel subscription stopped answering; reconnecting");
                    return;
                }
            }
        }
    }
}

fn task_id(value: &Value) -> Option<TaskId> {
    match value {
        Value::BulkString(bytes) => TaskId::parse(std::str::from_utf8(bytes).ok()?),
        Value::SimpleString(text) => TaskId::parse(text),
        _ => None,
    }
}

impl Inner {
    /// Wakes the waiters of every task waited on here that was cancelled.
    async fn recheck(&self) {
        let waiting = self.waiters.waiting();
        for chunk in waiting.chunks(super::FETCH_BATCH) {
            match self.fetch(chunk, &["x"]).await {
                Ok(flags) => {
                    for (id, flag) in chunk.iter().zip(flags) {
                        if flag.first().is_some_and(|x| x.as_deref() == Some(&b"1"[..])) {
                            self.waiters.wake(id);
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "could not re-check tasks for cancels");
                    return;
                }
            }
        }
    }
}
