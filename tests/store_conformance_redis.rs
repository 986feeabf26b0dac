//! The Redis store passes the store conformance suite, against one server
//! and against a three-node Redis Cluster.

mod redis_support;

use std::sync::Arc;
use std::time::Duration;

use redis_support::{shared_cluster, shared_server, unique_prefix};
use tower_cis::store::conformance::{Settings, StoreFactory};
use tower_cis::{RedisStore, SessionStore};

/// A store with the suite's settings, under a prefix of its own (so that it
/// starts empty) on a server shared by the whole binary.
fn configure(settings: Settings) -> tower_cis::RedisStoreBuilder {
    RedisStore::builder()
        .key_prefix(unique_prefix())
        .policy(settings.policy)
        .clock(Arc::new(settings.clock))
        .max_sessions(settings.max_sessions)
        .max_sessions_per_user(settings.max_sessions_per_user)
        .timeout(Duration::from_secs(5))
}

async fn purge(store: &RedisStore) {
    store.purge_expired().await.expect("purge failed");
}

struct SingleNode;

impl StoreFactory for SingleNode {
    type Store = RedisStore;

    async fn build(&self, settings: Settings) -> RedisStore {
        let store = configure(settings).url(shared_server().url()).build().expect("bad configuration");
        assert_eq!(store.stats().await.expect("stats failed"), Default::default(), "a fresh store is not empty");
        store
    }

    async fn purge(&self, store: &RedisStore) {
        purge(store).await;
    }
}

struct Cluster;

impl StoreFactory for Cluster {
    type Store = RedisStore;

    async fn build(&self, settings: Settings) -> RedisStore {
        let store = configure(settings).cluster(shared_cluster().urls()).build().expect("bad configuration");
        assert_eq!(store.stats().await.expect("stats failed"), Default::default(), "a fresh store is not empty");
        store
    }

    async fn purge(&self, store: &RedisStore) {
        purge(store).await;
    }
}

mod single_node {
    use super::SingleNode;
    tower_cis::store_conformance_tests!(SingleNode);
}

mod cluster {
    use super::Cluster;
    tower_cis::store_conformance_tests!(Cluster);
}
