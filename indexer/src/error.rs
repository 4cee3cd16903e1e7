//! [`IndexerError`]: every outcome a caller of the indexer must tell apart.
//!
//! Messages use Gnocchi's words where a client reads them (the conformance suite compares
//! them); the HTTP layer picks the status code.

use uuid::Uuid;

/// Result of an indexer call.
pub type Result<T, E = IndexerError> = std::result::Result<T, E>;

/// Errors returned by [`crate::Indexer`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexerError {
    /// The URL scheme is not one of `sqlite`, `postgresql`/`postgres`, `mysql`.
    #[error("unsupported indexer url scheme: {0}")]
    UnsupportedUrl(String),
    #[error("Archive policy {0} does not exist")]
    NoSuchArchivePolicy(String),
    #[error("Archive policy {0} already exists")]
    ArchivePolicyAlreadyExists(String),
    #[error("Archive policy {0} is still in use")]
    ArchivePolicyInUse(String),
    #[error("Archive policy rule {0} does not exist")]
    NoSuchArchivePolicyRule(String),
    #[error("Archive policy rule {0} already exists.")]
    ArchivePolicyRuleAlreadyExists(String),
    /// A metric was created without archive policy and no rule matches its name.
    #[error("No archive policy name specified and no archive policy rule found matching the metric name {0}")]
    NoArchivePolicyRuleMatch(String),
    #[error("Metric {0} does not exist")]
    NoSuchMetric(Uuid),
    #[error("Named metric {name} already exists")]
    NamedMetricAlreadyExists { name: String, resource_id: Uuid },
    #[error("'/' is not supported in metric name")]
    InvalidMetricName(String),
    #[error("Resource {0} does not exist")]
    NoSuchResource(String),
    #[error("Resource {0} already exists")]
    ResourceAlreadyExists(Uuid),
    /// A resource id that cannot be mapped to a UUID (contains `/`, or too long).
    #[error("invalid resource id: {0}")]
    InvalidResourceId(String),
    #[error("Resource type {0} does not exist")]
    NoSuchResourceType(String),
    #[error("Resource type {0} already exists")]
    ResourceTypeAlreadyExists(String),
    #[error("Resource type {0} is still in use")]
    ResourceTypeInUse(String),
    /// A resource type definition (or update) is invalid.
    #[error("{0}")]
    InvalidResourceType(String),
    /// An update would leave a resource inconsistent (ending before it
    /// started); `value` is written as Python writes a datetime.
    #[error("Value {value} for attribute {attribute} on resource type {resource_type} is invalid")]
    InvalidValue {
        resource_type: String,
        attribute: &'static str,
        value: String,
    },
    /// An attribute value does not satisfy the resource type's schema.
    #[error("{reason} for attribute {attribute}")]
    InvalidAttribute { attribute: String, reason: String },
    /// A search filter (or sort key) refers to an unknown attribute, has a value of the
    /// wrong type or cannot be parsed. `message` is meant for the client.
    #[error("{message}")]
    InvalidQuery {
        message: String,
        attribute: Option<String>,
    },
    /// A JSON search filter refused by Gnocchi's schema: `reason` is
    /// voluptuous's sentence, located (`… @ data['and'][0]`), `path` the
    /// location's parts.
    #[error("{reason}")]
    InvalidFilter { reason: String, path: Vec<String> },
    /// A pagination marker that does not designate an existing row.
    #[error("Invalid pagination: `Invalid marker: `{0}''")]
    InvalidPagination(String),
    /// A value in `index_setting` this build cannot read (written by hand, or by a
    /// newer gnocchid).
    #[error("invalid index setting {name}: {value:?}")]
    InvalidSetting { name: &'static str, value: String },
    /// The database refused the lock that serialises upgrades (see [`crate::Indexer::upgrade`]).
    #[error("cannot take the index's schema lock: {0}")]
    SchemaLock(String),
    /// Anything else reported by the database.
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl IndexerError {
    pub(crate) fn query(message: impl Into<String>, attribute: Option<&str>) -> Self {
        IndexerError::InvalidQuery {
            message: message.into(),
            attribute: attribute.map(str::to_owned),
        }
    }
    pub(crate) fn attribute(attribute: &str, reason: impl Into<String>) -> Self {
        IndexerError::InvalidAttribute {
            attribute: attribute.to_owned(),
            reason: reason.into(),
        }
    }
}

/// What a database error means for the caller, classified once here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Violation {
    Unique,
    ForeignKey,
}

pub(crate) fn violation(e: &sqlx::Error) -> Option<Violation> {
    match e {
        sqlx::Error::Database(db) => match db.kind() {
            sqlx::error::ErrorKind::UniqueViolation => Some(Violation::Unique),
            sqlx::error::ErrorKind::ForeignKeyViolation => Some(Violation::ForeignKey),
            _ => None,
        },
        _ => None,
    }
}

impl From<sqlx::Error> for IndexerError {
    fn from(e: sqlx::Error) -> Self {
        IndexerError::Database(e)
    }
}
