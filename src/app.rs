//! Composition root: opens the stores, builds the shared state and runs the roles
//! until a shutdown signal arrives.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use indexer::{Indexer, UpgradeOptions, Upgraded};

use tokio_util::sync::CancellationToken;

use crate::aggregates::search_cache::SearchCache;
use crate::archive_policy::to_record;
use crate::auth::Policy;
use crate::config::{Config, IndexConfig, DEFAULT_SACKS};
use crate::http;
use crate::incoming::Incoming;
use crate::metric_cache::MetricCache;
use crate::metricd::Metricd;
use crate::storage::{AggregateStore, Coherence};

/// State shared by every request handler.
#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub policy: Policy,
    pub indexer: Indexer,
    pub metrics: Arc<MetricCache>,
    pub incoming: Arc<dyn Incoming>,
    pub storage: AggregateStore,
    pub metricd: Arc<Metricd>,
    /// Searches resolved by `/v1/aggregates`; see [`SearchCache`] for when it
    /// is trusted.
    pub searches: SearchCache,
    /// How this process names itself in `/v1/status`.
    pub processor_id: String,
}

/// Runs every role in this process (API, metricd, janitor) until SIGINT or
/// SIGTERM; on the way out, processing stops after the API has drained. Upgrades
/// the index first, as `gnocchid upgrade` would: the one-binary case needs no
/// separate step.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let address = listener.local_addr()?;
    let policy = match &config.policy_file {
        Some(path) => Policy::from_file(path)?,
        None => Policy::gnocchi_defaults(),
    };
    let (indexer, _, sacks) = open_indexer(&config.index).await?;
    let incoming = crate::incoming::open(&config.incoming_url, sacks)
        .await
        .context("opening the incoming store")?;
    // `serve` is the only writer of its storage: its cache needs no revalidation.
    let storage = AggregateStore::open(&config.storage_url)
        .context("opening the aggregate storage")?
        .with_cache_capacity(config.split_cache_bytes)
        .with_coherence(Coherence::Exclusive);
    let metrics = Arc::new(MetricCache::new(indexer.clone()));
    // An embedded SQLite index has no other writer than this process: cached
    // searches stay correct through the indexer's write generation. A shared
    // PostgreSQL or MySQL index may be written by other processes.
    let searches = if config.index.url.starts_with("sqlite:") {
        SearchCache::new(config.search_cache_entries)
    } else {
        SearchCache::disabled()
    };
    let metricd = Arc::new(Metricd::new(
        incoming.clone(),
        storage.clone(),
        indexer.clone(),
        metrics.clone(),
    ));
    let state = Arc::new(AppState {
        config,
        policy,
        indexer,
        metrics,
        incoming,
        storage,
        metricd: metricd.clone(),
        searches,
        processor_id: format!("{}.{}", hostname(), std::process::id()),
    });
    let processing = CancellationToken::new();
    let worker = tokio::spawn(metricd.run(processing.clone()));
    tracing::info!(listen = %address, data_dir = %state.config.data_dir.display(), "gnocchid serving");
    // One plain line on stdout, once everything is open, so that scripts and
    // tests that asked for port 0 learn the port without parsing logs.
    println!("gnocchid listening on {address}");
    http::serve(listener, state, shutdown_signal()).await?;
    processing.cancel();
    let _ = worker.await;
    tracing::info!("gnocchid stopped");
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}

/// `gnocchid upgrade`: brings the index's schema up to date (creating Gnocchi's
/// defaults in a new index unless told not to), stores the sack count in a new index,
/// reports what it did on stdout and returns. Safe to run from several hosts at once.
pub async fn upgrade(index: IndexConfig) -> anyhow::Result<()> {
    let (indexer, upgraded, sacks) = open_indexer(&index).await?;
    indexer.close().await;
    let migrated = if upgraded.from_version == upgraded.to_version {
        format!("already at schema version {}", upgraded.to_version)
    } else {
        format!(
            "schema version {} -> {}",
            upgraded.from_version, upgraded.to_version
        )
    };
    let defaults = if upgraded.defaults_created {
        "default archive policies created"
    } else {
        "no default archive policies created"
    };
    println!("gnocchid index upgraded: {migrated}; {defaults}; {sacks} sacks");
    Ok(())
}

/// Connects to the index and brings its schema up to date (a new index gets Gnocchi's
/// default archive policies and rule unless the config says not to, and the sack count
/// asked for); returns the index, what the upgrade did, and the sack count to use.
async fn open_indexer(index: &IndexConfig) -> anyhow::Result<(Indexer, Upgraded, u32)> {
    create_sqlite_dir(&index.url)?;
    let indexer = Indexer::connect(&index.url)
        .await
        .context("connecting to the indexer")?;
    let options = UpgradeOptions {
        default_policies: if index.default_archive_policies {
            carbonara::archive_policy::ArchivePolicy::builtin()
                .iter()
                .map(to_record)
                .collect()
        } else {
            Vec::new()
        },
        create_default_rule: index.default_archive_policies,
        sacks: Some(index.requested_sacks.unwrap_or(DEFAULT_SACKS)),
    };
    let upgraded = indexer
        .upgrade(&options)
        .await
        .context("upgrading the index schema")?;
    let sacks = resolve_sacks(upgraded.sacks, index.requested_sacks);
    Ok((indexer, upgraded, sacks))
}

/// The sack count this process uses: the one stored in the index wins, as in Gnocchi
/// (where the incoming store keeps it and `gnocchi-upgrade --sacks-number` does not
/// change an existing one). Measures already waiting sit in sacks derived from the
/// stored count, so a process using another count would mis-file new measures and
/// miss pending ones; a different count asked for explicitly is therefore ignored, and
/// said so.
fn resolve_sacks(stored: Option<u32>, requested: Option<u32>) -> u32 {
    match (stored, requested) {
        (Some(stored), Some(requested)) if stored != requested => {
            tracing::warn!(
                stored,
                requested,
                "--sacks {requested} ignored: the index was set up with {stored} sacks and \
                 every process sharing it must use that count"
            );
            stored
        }
        (Some(stored), _) => stored,
        (None, requested) => requested.unwrap_or(DEFAULT_SACKS),
    }
}

/// Creates the directory of an SQLite index file, as SQLite creates the file but not
/// its directory.
fn create_sqlite_dir(url: &str) -> anyhow::Result<()> {
    let Some(rest) = url.strip_prefix("sqlite://") else {
        return Ok(());
    };
    let path = std::path::Path::new(rest.split('?').next().unwrap_or(rest));
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the index directory {}", dir.display())),
        _ => Ok(()),
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {}
        _ = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_sack_count_wins() {
        assert_eq!(resolve_sacks(Some(64), None), 64);
        assert_eq!(resolve_sacks(Some(64), Some(64)), 64);
        assert_eq!(resolve_sacks(Some(64), Some(256)), 64);
        assert_eq!(resolve_sacks(None, Some(256)), 256);
        assert_eq!(resolve_sacks(None, None), DEFAULT_SACKS);
    }
}
