//! Composition root: opens the stores, builds the shared state and runs the roles
//! until a shutdown signal arrives.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;

use indexer::{Indexer, UpgradeOptions};

use tokio_util::sync::CancellationToken;

use crate::aggregates::search_cache::SearchCache;
use crate::archive_policy::to_record;
use crate::auth::Policy;
use crate::config::Config;
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
/// SIGTERM; on the way out, processing stops after the API has drained.
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
    let indexer = open_indexer(&config).await?;
    let incoming = crate::incoming::open(&config.incoming_url, config.sacks)
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
    let searches = if config.indexer_url.starts_with("sqlite:") {
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

/// Connects to the index and brings its schema up to date; a fresh index gets
/// Gnocchi's default archive policies and rule unless the config says not to.
async fn open_indexer(config: &Config) -> anyhow::Result<Indexer> {
    let indexer = Indexer::connect(&config.indexer_url)
        .await
        .context("connecting to the indexer")?;
    let options = if config.default_archive_policies {
        UpgradeOptions {
            default_policies: carbonara::archive_policy::ArchivePolicy::builtin()
                .iter()
                .map(to_record)
                .collect(),
            create_default_rule: true,
        }
    } else {
        UpgradeOptions {
            default_policies: Vec::new(),
            create_default_rule: false,
        }
    };
    indexer
        .upgrade(&options)
        .await
        .context("upgrading the index schema")?;
    Ok(indexer)
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
