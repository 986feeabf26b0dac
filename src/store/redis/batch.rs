//! Plain look-ups of concurrent requests, written to Redis together.
//!
//! Through a multiplexed connection, each request's command would otherwise
//! go out in a write of its own: the request's task wakes the connection's
//! task, which runs next and flushes that one command. Under load, the
//! system calls (on both sides) cost more than the commands. Here the
//! requests queue their commands for one batching task, which first lets the
//! other ready tasks queue theirs (one yield), then sends everything queued as
//! one pipeline: one write, and Redis reads and answers them in one go. A
//! lone request pays one extra hop through the scheduler.
//!
//! Each command still gets its own reply (errors included): batching changes
//! how commands travel, not what they do. A batch's round trip is bounded by
//! the store's timeout; the batching task ends when the store is dropped.

use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager};
use ::redis::{Cmd, ErrorKind, RedisError, RedisResult, Value};
use tokio::sync::{mpsc, oneshot};

/// Commands per pipeline at most.
const MAX_BATCH: usize = 256;

struct Job {
    command: Cmd,
    reply: oneshot::Sender<RedisResult<Value>>,
}

/// The queue of the batching task.
pub(super) struct Batcher {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Batcher {
    /// Starts the batching task on the current Tokio runtime.
    pub(super) fn spawn(connection: ConnectionManager, timeout: Duration) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(send_batches(connection, queue, timeout));
        Batcher { jobs }
    }

    /// Sends `command` with whatever other commands are queued; its reply,
    /// as Redis gave it (a server error is a `Value::ServerError`).
    pub(super) async fn send(&self, command: Cmd) -> RedisResult<Value> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { command, reply }).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

fn gone() -> RedisError {
    RedisError::from((ErrorKind::Io, "the Redis batching task has stopped"))
}

async fn send_batches(connection: ConnectionManager, mut queue: mpsc::UnboundedReceiver<Job>, timeout: Duration) {
    while let Some(first) = queue.recv().await {
        // The tasks that are ready now queue their commands meanwhile.
        tokio::task::yield_now().await;
        let mut batch = Vec::with_capacity(MAX_BATCH.min(queue.len() + 1));
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        // Round trips overlap: the next batch need not wait for this one.
        tokio::spawn(round_trip(connection.clone(), batch, timeout));
    }
}

async fn round_trip(mut connection: ConnectionManager, batch: Vec<Job>, timeout: Duration) {
    // Requests that gave up (their timeout, or the client went away) are
    // not sent.
    let mut pipeline = ::redis::pipe();
    let mut replies = Vec::with_capacity(batch.len());
    for job in batch {
        if !job.reply.is_closed() {
            pipeline.add_command(job.command);
            replies.push(job.reply);
        }
    }
    if replies.is_empty() {
        return;
    }
    let count = replies.len();
    let answered = tokio::time::timeout(timeout, connection.req_packed_commands(&pipeline, 0, count)).await;
    let values = match answered {
        Ok(Ok(values)) if values.len() == count => values,
        Ok(Ok(_)) => return fail(replies, RedisError::from((ErrorKind::Parse, "a pipeline's replies did not match"))),
        Ok(Err(error)) => return fail(replies, error),
        Err(_) => return fail(replies, RedisError::from((ErrorKind::Io, "Redis did not answer in time"))),
    };
    for (reply, value) in replies.into_iter().zip(values) {
        let _ = reply.send(Ok(value));
    }
}

fn fail(replies: Vec<oneshot::Sender<RedisResult<Value>>>, error: RedisError) {
    for reply in replies {
        let _ = reply.send(Err(error.clone()));
    }
}
