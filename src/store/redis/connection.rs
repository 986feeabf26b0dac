//! One Redis node through a `ConnectionManager` (which reconnects by itself),
//! or a Redis Cluster through a `ClusterConnection` (which follows the slot
//! map); established on first use, every call bounded by the store's timeout.

use std::future::Future;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
#[cfg(feature = "tasks")]
use ::redis::{
    AsyncConnectionConfig, ConnectionInfo, IntoConnectionInfo, ProtocolVersion, PushInfo, aio::MultiplexedConnection,
};
use ::redis::{
    Client, Cmd, ErrorKind, FromRedisValue, RedisError, RedisResult, Script, ScriptInvocation, ServerErrorKind, Value,
    cmd,
};
use tokio::sync::OnceCell;
#[cfg(feature = "tasks")]
use tokio::sync::mpsc::UnboundedSender;

use super::batch::Batcher;
use crate::store::StoreError;

/// A connection of either kind. Clones share the underlying connection.
#[derive(Clone)]
pub(super) enum Connection {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Connection {
    /// Runs a script (EVALSHA, with a reload on NOSCRIPT).
    pub(super) async fn invoke<T: FromRedisValue>(mut self, invocation: &ScriptInvocation<'_>) -> RedisResult<T> {
        match &mut self {
            Connection::Single(connection) => invocation.invoke_async(connection).await,
            Connection::Cluster(connection) => invocation.invoke_async(connection).await,
        }
    }

    /// Runs a plain command.
    pub(super) async fn query<T: FromRedisValue>(mut self, command: &Cmd) -> RedisResult<T> {
        match &mut self {
            Connection::Single(connection) => command.query_async(connection).await,
            Connection::Cluster(connection) => command.query_async(connection).await,
        }
    }
}

/// How to connect.
pub(super) enum Connector {
    Single(Client, ConnectionManagerConfig),
    /// The cluster, and the nodes it was given (for connections of their own).
    Cluster(ClusterClient, #[cfg_attr(not(feature = "tasks"), allow(dead_code))] Vec<String>),
}

impl Connector {
    pub(super) fn single(url: &str, timeout: Duration) -> RedisResult<Self> {
        let client = Client::open(url)?;
        // No response timeout here: `Link::run` bounds every call, and one
        // timer per request is enough.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(None)
            // Retry soon after a restart: a dead node refuses connections at
            // once, so frequent attempts cost little.
            .set_min_delay(Duration::from_millis(20))
            .set_max_delay(Duration::from_millis(500));
        Ok(Connector::Single(client, config))
    }

    pub(super) fn cluster(nodes: &[String], timeout: Duration) -> RedisResult<Self> {
        let client = ClusterClient::builder(nodes.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout);
        Ok(Connector::Cluster(client.build()?, nodes.to_vec()))
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Connector::Cluster(..))
    }

    async fn connect(&self) -> RedisResult<Connection> {
        match self {
            // Lazy: the manager connects (and reconnects) in the background.
            Connector::Single(client, config) => {
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone()).map(Connection::Single)
            }
            Connector::Cluster(client, _) => client.get_async_connection().await.map(Connection::Cluster),
        }
    }

    /// A connection of its own that hands what Redis pushes (pub/sub
    /// messages, and `Disconnection` when it drops) to `pushes`, for
    /// SUBSCRIBE. RESP3 (Redis 6 or later). In a cluster, a connection to the
    /// first node that answers: PUBLISH reaches every node.
    #[cfg(feature = "tasks")]
    pub(super) async fn subscriber(
        &self,
        pushes: UnboundedSender<PushInfo>,
        timeout: Duration,
    ) -> RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_push_sender(pushes);
        let resp3 = |info: &ConnectionInfo| {
            let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
            Client::open(info.clone().set_redis_settings(settings))
        };
        match self {
            Connector::Single(client, _) => {
                resp3(client.get_connection_info())?.get_multiplexed_async_connection_with_config(&config).await
            }
            Connector::Cluster(_, nodes) => {
                let mut failure = None;
                for node in nodes {
                    let attempt = async {
                        let info = node.as_str().into_connection_info()?;
                        resp3(&info)?.get_multiplexed_async_connection_with_config(&config).await
                    };
                    match attempt.await {
                        Ok(connection) => return Ok(connection),
                        Err(error) => failure = Some(error),
                    }
                }
                Err(failure.unwrap_or_else(|| RedisError::from((ErrorKind::Client, "no cluster node given"))))
            }
        }
    }
}

/// The connector and, once the first call made it, the connection (and the
/// task that batches look-ups on one node).
pub(super) struct Link {
    connector: Connector,
    connection: OnceCell<Connection>,
    batcher: std::sync::OnceLock<Batcher>,
    timeout: Duration,
}

impl Link {
    pub(super) fn new(connector: Connector, timeout: Duration) -> Self {
        Link { connector, connection: OnceCell::new(), batcher: std::sync::OnceLock::new(), timeout }
    }

    pub(super) fn connector(&self) -> &Connector {
        &self.connector
    }

    pub(super) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `call` on the connection (making it first if need be), within the
    /// timeout. Every failure, the timeout included, is `Unavailable`.
    pub(super) async fn run<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(Connection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.bounded(async { call(self.connection().await?.clone()).await }).await
    }

    /// Sends a plain command together with those of concurrent requests (see
    /// `batch.rs`); in a cluster, on its own. Within the timeout, like `run`;
    /// a server error in the reply is a failure too.
    pub(super) async fn query_batched(&self, command: Cmd) -> Result<Value, StoreError> {
        self.bounded(async {
            let reply = match self.connection().await? {
                Connection::Single(manager) => self.batcher(manager).send(command).await?,
                cluster @ Connection::Cluster(_) => cluster.clone().query::<Value>(&command).await?,
            };
            reply.extract_error()
        })
        .await
    }

    /// Runs `script` on `key` with `args` (EVALSHA), batched like
    /// `query_batched`; a Redis that lost its scripts (a restart) gets the
    /// script loaded again. Within the timeout, like `run`.
    pub(super) async fn invoke_batched(&self, script: &Script, key: &str, args: &[u64]) -> Result<Value, StoreError> {
        let evalsha = || {
            let mut evalsha = cmd("EVALSHA");
            evalsha.arg(script.get_hash()).arg(1).arg(key).arg(args);
            evalsha
        };
        self.bounded(async {
            match self.connection().await? {
                Connection::Single(manager) => {
                    let batcher = self.batcher(manager);
                    match batcher.send(evalsha()).await?.extract_error() {
                        Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                            script.load_async(&mut manager.clone()).await?;
                            batcher.send(evalsha()).await?.extract_error()
                        }
                        reply => reply,
                    }
                }
                cluster @ Connection::Cluster(_) => {
                    let mut invocation = script.key(key);
                    invocation.arg(args);
                    cluster.clone().invoke(&invocation).await
                }
            }
        })
        .await
    }

    /// The batching task of a single node, started on first use.
    fn batcher(&self, manager: &ConnectionManager) -> &Batcher {
        self.batcher.get_or_init(|| Batcher::spawn(manager.clone(), self.timeout))
    }

    /// The connection, made on first use.
    async fn connection(&self) -> RedisResult<&Connection> {
        match self.connection.get() {
            Some(connection) => Ok(connection),
            None => self.connection.get_or_try_init(|| self.connector.connect()).await,
        }
    }

    /// `attempt` within the timeout, on a Tokio runtime; every failure, the
    /// timeout and a missing runtime included, is `Unavailable`.
    async fn bounded<T>(&self, attempt: impl Future<Output = RedisResult<T>>) -> Result<T, StoreError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::unavailable("the Redis store needs a Tokio runtime"));
        }
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(unavailable(&error)),
            Err(_) => Err(StoreError::unavailable(format!("Redis did not answer within {:?}", self.timeout))),
        }
    }
}

fn unavailable(error: &RedisError) -> StoreError {
    StoreError::unavailable(format!("Redis failed: {error}"))
}
