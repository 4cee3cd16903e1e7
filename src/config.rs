//! From command-line flags to a validated [`Config`].

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, ValueEnum};

/// Flags of `gnocchid serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port the HTTP API listens on.
    #[arg(long, env = "GNOCCHID_LISTEN", default_value = "0.0.0.0:8041")]
    listen: SocketAddr,

    /// Directory holding the embedded stores (index, incoming log, aggregates).
    #[arg(long, env = "GNOCCHID_DATA_DIR", default_value = "./gnocchid-data")]
    data_dir: PathBuf,

    /// The index: `sqlite://PATH`, `postgresql://…` or `mysql://…`
    /// (default: an SQLite file in the data directory).
    #[arg(long, env = "GNOCCHID_INDEXER_URL")]
    indexer_url: Option<String>,

    /// Where accepted measures wait for processing: a directory (`file:///…`,
    /// the default under the data directory) or `redis://host:port/?prefix=…`.
    #[arg(long, env = "GNOCCHID_INCOMING_URL")]
    incoming_url: Option<String>,

    /// Where aggregates are stored: a directory (`file:///…`, the default under
    /// the data directory), `s3://bucket?endpoint=…` or `memory://`.
    #[arg(long, env = "GNOCCHID_STORAGE_URL")]
    storage_url: Option<String>,

    /// Number of sacks the incoming measures are spread over. Every process of
    /// a deployment must use the same number.
    #[arg(long, env = "GNOCCHID_SACKS", default_value_t = 128)]
    sacks: u32,

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

    /// Start with an empty index: no default archive policies and no default rule.
    #[arg(long, env = "GNOCCHID_NO_DEFAULT_ARCHIVE_POLICIES")]
    no_default_archive_policies: bool,

    /// Resource searches of `/v1/aggregates` kept in memory (what alarm
    /// evaluators repeat); any index write drops them all. Used only with the
    /// embedded SQLite index, which no other process writes; 0 turns it off.
    #[arg(long, env = "GNOCCHID_SEARCH_CACHE_ENTRIES", default_value_t = 16_384)]
    search_cache_entries: usize,

    /// Memory for decoded splits, in MiB, filled on demand. A split decodes to
    /// 28 KiB per aggregation method whatever it holds, so queries over many
    /// metrics stay in memory only if this covers one split per method of
    /// each: 1,000 metrics of a six-method policy need about 340 MiB.
    #[arg(long, env = "GNOCCHID_SPLIT_CACHE_MIB", default_value_t = 1024)]
    split_cache_mib: u64,
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
    pub indexer_url: String,
    pub incoming_url: String,
    pub storage_url: String,
    pub sacks: u32,
    pub auth_mode: AuthMode,
    pub policy_file: Option<PathBuf>,
    pub max_limit: u32,
    pub cors_allowed_origins: Vec<String>,
    pub enable_proxy_headers: bool,
    pub default_archive_policies: bool,
    pub search_cache_entries: usize,
    pub split_cache_bytes: u64,
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
        let indexer_url = args.indexer_url.unwrap_or_else(|| {
            format!("sqlite://{}", args.data_dir.join("index.sqlite").display())
        });
        if args.sacks == 0 {
            return Err(ConfigError::ZeroSacks);
        }
        let in_data_dir = |name: &str| format!("file://{}", absolute(&args.data_dir.join(name)));
        let incoming_url = args.incoming_url.unwrap_or_else(|| in_data_dir("incoming"));
        let storage_url = args.storage_url.unwrap_or_else(|| in_data_dir("storage"));
        Ok(Self {
            listen: args.listen,
            indexer_url,
            incoming_url,
            storage_url,
            sacks: args.sacks,
            data_dir: args.data_dir,
            auth_mode: args.auth_mode,
            policy_file: args.policy_file,
            max_limit: args.max_limit,
            cors_allowed_origins: args
                .cors_allowed_origin
                .into_iter()
                .filter(|origin| !origin.is_empty())
                .collect(),
            enable_proxy_headers: args.enable_proxy_headers,
            default_archive_policies: !args.no_default_archive_policies,
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
