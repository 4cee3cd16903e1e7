//! From command-line flags to a validated [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Flags of `gnocchid serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port the HTTP API listens on.
    #[arg(long, env = "GNOCCHID_LISTEN", default_value = "0.0.0.0:8041")]
    listen: SocketAddr,

    #[command(flatten)]
    index: IndexArgs,

    /// Where accepted measures wait for processing: a directory (`file:///…`,
    /// the default under the data directory) or `redis://host:port/?prefix=…`.
    #[arg(long, env = "GNOCCHID_INCOMING_URL")]
    incoming_url: Option<String>,

    /// Where aggregates are stored: a directory (`file:///…`, the default under
    /// the data directory), `s3://bucket?endpoint=…` or `memory://`.
    #[arg(long, env = "GNOCCHID_STORAGE_URL")]
    storage_url: Option<String>,

    /// How callers are identified.
    #[arg(long, env = "GNOCCHID_AUTH_MODE", value_enum, default_value_t = AuthMode::Basic)]
    auth_mode: AuthMode,

    /// Access rules (oslo.policy JSON or YAML) overriding Gnocchi's defaults.
    #[arg(long, env = "GNOCCHID_POLICY_FILE")]
    policy_file: Option<PathBuf>,

    /// Largest page a listing returns, and the page size when none is asked for.
    #[arg(long, env = "GNOCCHID_MAX_LIMIT", default_value_t = 1000)]
    max_limit: u32,

    /// Origins allowed by CORS (repeat the flag, or separate with commas).
    #[arg(long, env = "GNOCCHID_CORS_ALLOWED_ORIGIN", value_delimiter = ',')]
    cors_allowed_origin: Vec<String>,

    /// Build links from `Forwarded`/`X-Forwarded-*` headers set by a trusted proxy.
    #[arg(long, env = "GNOCCHID_ENABLE_PROXY_HEADERS")]
    enable_proxy_headers: bool,

    /// Longest a request may take before it is answered `503 Service
    /// Unavailable` (seconds, or a span such as `90s`, `2min`). Generous by
    /// default: a `refresh=true` read or a large batch must fit.
    #[arg(long, env = "GNOCCHID_REQUEST_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    request_timeout: Duration,

    /// Resource searches of `/v1/aggregates` kept in memory (what alarm
    /// evaluators repeat); any index write drops them all. Used only with the
    /// embedded SQLite index, which no other process writes; 0 turns it off.
    #[arg(long, env = "GNOCCHID_SEARCH_CACHE_ENTRIES", default_value_t = 16_384)]
    search_cache_entries: usize,

    /// Memory for decoded splits, in MiB, filled on demand. A split holds 8
    /// bytes per aggregation method for each slot between its first and last
    /// point (28 KiB per method when full), so queries over many metrics stay
    /// in memory when this covers their splits: 1,000 metrics of a
    /// six-method policy need about 170 MiB for one full split of each.
    #[arg(long, env = "GNOCCHID_SPLIT_CACHE_MIB", default_value_t = 512)]
    split_cache_mib: u64,
}

/// Flags of `gnocchid upgrade`.
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    #[command(flatten)]
    index: IndexArgs,
}

/// Flags naming the index and what a new index starts with: shared by `serve` (which
/// upgrades on start) and `upgrade`.
#[derive(Debug, Args)]
struct IndexArgs {
    /// Directory holding the embedded stores (index, incoming log, aggregates).
    #[arg(long, env = "GNOCCHID_DATA_DIR", default_value = "./gnocchid-data")]
    data_dir: PathBuf,

    /// The index: `sqlite://PATH`, `postgresql://…` or `mysql://…`
    /// (default: an SQLite file in the data directory).
    #[arg(long, env = "GNOCCHID_INDEXER_URL")]
    indexer_url: Option<String>,

    /// Number of sacks incoming measures are spread over [default: 128]. The first
    /// upgrade stores it in the index and every process uses the stored count; a
    /// different value given later is ignored with a warning.
    #[arg(long, env = "GNOCCHID_SACKS", alias = "sacks-number")]
    sacks: Option<u32>,

    /// Start with an empty index: no default archive policies and no default rule.
    #[arg(
        long,
        env = "GNOCCHID_NO_DEFAULT_ARCHIVE_POLICIES",
        alias = "skip-archive-policies-creation"
    )]
    no_default_archive_policies: bool,
}

/// A positive span in Gnocchi's timespan grammar (`60`, `60s`, `2min`).
fn parse_duration(text: &str) -> Result<Duration, carbonara::timespan::TimespanError> {
    let nanos = carbonara::timespan::parse_timespan(text)?;
    Ok(Duration::from_nanos(nanos.unsigned_abs()))
}

/// How a caller's identity is established.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// `Authorization: basic base64(user:)`; the user name is the identity, `admin` is admin.
    Basic,
    /// Identity from `X-User-Id` and `X-Project-Id`, roles from `X-Roles`.
    Noauth,
    /// Identity from the `REMOTE_USER` header set by a fronting web server.
    Remoteuser,
}

/// Everything a running gnocchid needs to know, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub index: IndexConfig,
    pub incoming_url: String,
    pub storage_url: String,
    pub auth_mode: AuthMode,
    pub policy_file: Option<PathBuf>,
    pub max_limit: u32,
    pub cors_allowed_origins: Vec<String>,
    pub enable_proxy_headers: bool,
    /// Bound on the handling of one request (see `--request-timeout`).
    pub request_timeout: Duration,
    /// Searches `/v1/aggregates` may reuse (see `--search-cache-entries`).
    pub search_cache_entries: usize,
    /// Capacity of the decoded-split cache (see `--split-cache-mib`).
    pub split_cache_bytes: u64,
}

/// The sack count of a deployment that has never stored one.
pub const DEFAULT_SACKS: u32 = 128;

/// Which index to open, and what its first upgrade puts in it.
#[derive(Debug, Clone)]
pub struct IndexConfig {
    pub url: String,
    /// The sack count given by flag or environment; `None` means "whatever the index
    /// says, [`DEFAULT_SACKS`] on a new one", so that only an explicit, different value
    /// earns a warning.
    pub requested_sacks: Option<u32>,
    /// Create Gnocchi's default archive policies and rule in a new index.
    pub default_archive_policies: bool,
}

impl IndexConfig {
    fn from_args(args: &IndexArgs) -> Result<Self, ConfigError> {
        if args.sacks == Some(0) {
            return Err(ConfigError::ZeroSacks);
        }
        let url = args.indexer_url.clone().unwrap_or_else(|| {
            format!("sqlite://{}", args.data_dir.join("index.sqlite").display())
        });
        Ok(Self {
            url,
            requested_sacks: args.sacks,
            default_archive_policies: !args.no_default_archive_policies,
        })
    }

    /// Resolves `gnocchid upgrade`'s flags.
    pub fn from_upgrade_args(args: UpgradeArgs) -> Result<Self, ConfigError> {
        Self::from_args(&args.index)
    }
}

/// Flags that do not make a usable configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--max-limit must be at least 1")]
    ZeroMaxLimit,
    #[error("--sacks must be at least 1")]
    ZeroSacks,
}

impl Config {
    /// Resolves and checks the flags of `gnocchid serve`.
    pub fn from_args(args: ServeArgs) -> Result<Self, ConfigError> {
        if args.max_limit == 0 {
            return Err(ConfigError::ZeroMaxLimit);
        }
        let index = IndexConfig::from_args(&args.index)?;
        let data_dir = args.index.data_dir;
        let in_data_dir = |name: &str| format!("file://{}", absolute(&data_dir.join(name)));
        let incoming_url = args.incoming_url.unwrap_or_else(|| in_data_dir("incoming"));
        let storage_url = args.storage_url.unwrap_or_else(|| in_data_dir("storage"));
        Ok(Self {
            listen: args.listen,
            incoming_url,
            storage_url,
            data_dir,
            index,
            auth_mode: args.auth_mode,
            policy_file: args.policy_file,
            max_limit: args.max_limit,
            cors_allowed_origins: args
                .cors_allowed_origin
                .into_iter()
                .filter(|origin| !origin.is_empty())
                .collect(),
            enable_proxy_headers: args.enable_proxy_headers,
            request_timeout: args.request_timeout,
            search_cache_entries: args.search_cache_entries,
            split_cache_bytes: args.split_cache_mib.saturating_mul(1 << 20),
        })
    }
}

/// `path` made absolute against the working directory, for `file://` URLs.
fn absolute(path: &std::path::Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}
