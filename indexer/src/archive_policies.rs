//! Archive policies and archive policy rules.

use serde::{Deserialize, Serialize};

use crate::dialect::{get_i64, get_string, Sql};
use crate::error::{violation, Violation};
use crate::{Conn, Indexer, IndexerError, Result};

/// An archive policy as stored: validated by the caller (carbonara), kept verbatim here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivePolicy {
    pub name: String,
    pub back_window: u32,
    pub definition: Vec<ArchivePolicyItem>,
    pub aggregation_methods: Vec<String>,
}

/// One granularity of an archive policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivePolicyItem {
    pub granularity_ns: i64,
    /// `None` (with `timespan_ns`) for an archive kept without limit.
    pub points: Option<u64>,
    pub timespan_ns: Option<i64>,
}

/// Maps metric names matching `metric_pattern` (an fnmatch glob) to an archive policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchivePolicyRule {
    pub name: String,
    pub metric_pattern: String,
    pub archive_policy_name: String,
}

pub(crate) fn policy_from_row(row: &sqlx::any::AnyRow, prefix: &str) -> Result<ArchivePolicy> {
    let c = |n: &str| format!("{prefix}{n}");
    let definition: Vec<ArchivePolicyItem> =
        serde_json::from_str(&get_string(row, &c("definition"))?).unwrap_or_default();
    let aggregation_methods: Vec<String> =
        serde_json::from_str(&get_string(row, &c("aggregation_methods"))?).unwrap_or_default();
    Ok(ArchivePolicy {
        name: get_string(row, &c("name"))?,
        back_window: get_i64(row, &c("back_window"))?.unwrap_or(0) as u32,
        definition,
        aggregation_methods,
    })
}

pub(crate) const POLICY_COLUMNS: &str = "name, back_window, definition, aggregation_methods";

fn rule_from_row(row: &sqlx::any::AnyRow) -> Result<ArchivePolicyRule> {
    Ok(ArchivePolicyRule {
        name: get_string(row, "name")?,
        metric_pattern: get_string(row, "metric_pattern")?,
        archive_policy_name: get_string(row, "archive_policy_name")?,
    })
}

/// Python's `fnmatch.fnmatchcase`: `*`, `?`, `[seq]`, `[!seq]`.
pub fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, length consumed including ']')
        let mut i = 0;
        let negate = matches!(p.first(), Some('!'));
        if negate {
            i += 1;
        }
        let start = i;
        let mut matched = false;
        while i < p.len() {
            if p[i] == ']' && i > start {
                return Some((matched != negate, i + 1));
            }
            if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
                if p[i] <= c && c <= p[i + 2] {
                    matched = true;
                }
                i += 3;
            } else {
                if p[i] == c {
                    matched = true;
                }
                i += 1;
            }
        }
        None
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|k| go(&p[1..], &n[k..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => match (
                n.first(),
                class(&p[1..], n.first().copied().unwrap_or('\0')),
            ) {
                (Some(_), Some((m, len))) => m && go(&p[1 + len..], &n[1..]),
                (None, _) => false,
                (Some(c), None) => *c == '[' && go(&p[1..], &n[1..]),
            },
            Some(c) => n.first() == Some(c) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

impl Indexer {
    /// Creates `policy`; [`IndexerError::ArchivePolicyAlreadyExists`] if the name is taken.
    pub async fn create_archive_policy(&self, policy: &ArchivePolicy) -> Result<ArchivePolicy> {
        let mut tx = self.begin().await?;
        self.insert_archive_policy(&mut tx, policy).await?;
        tx.commit().await?;
        Ok(policy.clone())
    }

    /// Inserts `policy` on `conn` (a transaction, or the upgrade's locked connection).
    pub(crate) async fn insert_archive_policy(
        &self,
        conn: &mut Conn,
        policy: &ArchivePolicy,
    ) -> Result<()> {
        let sql = Sql::new(format!(
            "INSERT INTO archive_policy ({POLICY_COLUMNS}) VALUES (?, ?, ?, ?)"
        ))
        .arg(&policy.name)
        .arg(policy.back_window as i64)
        .arg(serde_json::to_string(&policy.definition).unwrap_or_default())
        .arg(serde_json::to_string(&policy.aggregation_methods).unwrap_or_default());
        match self.execute(conn, &sql).await {
            Ok(_) => Ok(()),
            Err(IndexerError::Database(e)) if violation(&e) == Some(Violation::Unique) => Err(
                IndexerError::ArchivePolicyAlreadyExists(policy.name.clone()),
            ),
            Err(e) => Err(e),
        }
    }

    pub async fn get_archive_policy(&self, name: &str) -> Result<ArchivePolicy> {
        let mut tx = self.conn().await?;
        let row = self
            .fetch_optional(
                &mut tx,
                &Sql::new(format!(
                    "SELECT {POLICY_COLUMNS} FROM archive_policy WHERE name = ?"
                ))
                .arg(name),
            )
            .await?;
        match row {
            Some(r) => policy_from_row(&r, ""),
            None => Err(IndexerError::NoSuchArchivePolicy(name.to_owned())),
        }
    }

    /// All policies, ordered by name.
    pub async fn list_archive_policies(&self) -> Result<Vec<ArchivePolicy>> {
        let mut tx = self.conn().await?;
        let rows = self
            .fetch_all(
                &mut tx,
                &Sql::new(format!("SELECT {POLICY_COLUMNS} FROM archive_policy")),
            )
            .await?;
        let mut v = rows
            .iter()
            .map(|r| policy_from_row(r, ""))
            .collect::<Result<Vec<_>>>()?;
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// Replaces the definition (and back window when given) of policy `name`. The caller
    /// has checked that the change is allowed.
    pub async fn update_archive_policy(
        &self,
        name: &str,
        definition: &[ArchivePolicyItem],
        back_window: Option<u32>,
    ) -> Result<ArchivePolicy> {
        let mut tx = self.begin().await?;
        let row = self
            .fetch_optional(
                &mut tx,
                &Sql::new(format!(
                    "SELECT {POLICY_COLUMNS} FROM archive_policy WHERE name = ?"
                ))
                .arg(name),
            )
            .await?;
        let Some(row) = row else {
            return Err(IndexerError::NoSuchArchivePolicy(name.to_owned()));
        };
        let mut policy = policy_from_row(&row, "")?;
        policy.definition = definition.to_vec();
        if let Some(bw) = back_window {
            policy.back_window = bw;
        }
        self.execute(
            &mut tx,
            &Sql::new("UPDATE archive_policy SET definition = ?, back_window = ? WHERE name = ?")
                .arg(serde_json::to_string(&policy.definition).unwrap_or_default())
                .arg(policy.back_window as i64)
                .arg(name),
        )
        .await?;
        tx.commit().await?;
        Ok(policy)
    }

    /// Deletes policy `name`. Refused with [`IndexerError::ArchivePolicyInUse`] while a
    /// metric (even one marked for deletion but not yet expunged, as in Gnocchi) or a rule
    /// refers to it.
    pub async fn delete_archive_policy(&self, name: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let in_use = self
            .fetch_optional(
                &mut tx,
                &Sql::new(
                    "SELECT 1 AS x FROM metric WHERE archive_policy_name = ? UNION ALL SELECT 1 AS x FROM archive_policy_rule WHERE archive_policy_name = ?",
                )
                .arg(name)
                .arg(name),
            )
            .await?
            .is_some();
        if in_use {
            return Err(IndexerError::ArchivePolicyInUse(name.to_owned()));
        }
        let n = match self
            .execute(
                &mut tx,
                &Sql::new("DELETE FROM archive_policy WHERE name = ?").arg(name),
            )
            .await
        {
            Ok(n) => n,
            Err(IndexerError::Database(e)) if violation(&e) == Some(Violation::ForeignKey) => {
                return Err(IndexerError::ArchivePolicyInUse(name.to_owned()))
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Err(IndexerError::NoSuchArchivePolicy(name.to_owned()));
        }
        tx.commit().await?;
        Ok(())
    }

    /// Creates a rule; the policy must exist ([`IndexerError::NoSuchArchivePolicy`]).
    pub async fn create_archive_policy_rule(
        &self,
        rule: &ArchivePolicyRule,
    ) -> Result<ArchivePolicyRule> {
        let mut tx = self.begin().await?;
        self.insert_archive_policy_rule(&mut tx, rule).await?;
        tx.commit().await?;
        Ok(rule.clone())
    }

    /// Inserts `rule` on `conn` (a transaction, or the upgrade's locked connection).
    pub(crate) async fn insert_archive_policy_rule(
        &self,
        conn: &mut Conn,
        rule: &ArchivePolicyRule,
    ) -> Result<()> {
        if self
            .fetch_optional(
                conn,
                &Sql::new("SELECT name FROM archive_policy WHERE name = ?")
                    .arg(&rule.archive_policy_name),
            )
            .await?
            .is_none()
        {
            return Err(IndexerError::NoSuchArchivePolicy(
                rule.archive_policy_name.clone(),
            ));
        }
        let sql = Sql::new("INSERT INTO archive_policy_rule (name, archive_policy_name, metric_pattern) VALUES (?, ?, ?)")
            .arg(&rule.name)
            .arg(&rule.archive_policy_name)
            .arg(&rule.metric_pattern);
        match self.execute(conn, &sql).await {
            Ok(_) => Ok(()),
            Err(IndexerError::Database(e)) if violation(&e) == Some(Violation::Unique) => Err(
                IndexerError::ArchivePolicyRuleAlreadyExists(rule.name.clone()),
            ),
            Err(IndexerError::Database(e)) if violation(&e) == Some(Violation::ForeignKey) => Err(
                IndexerError::NoSuchArchivePolicy(rule.archive_policy_name.clone()),
            ),
            Err(e) => Err(e),
        }
    }

    pub async fn get_archive_policy_rule(&self, name: &str) -> Result<ArchivePolicyRule> {
        let mut tx = self.conn().await?;
        let row = self
            .fetch_optional(
                &mut tx,
                &Sql::new("SELECT name, archive_policy_name, metric_pattern FROM archive_policy_rule WHERE name = ?").arg(name),
            )
            .await?;
        match row {
            Some(r) => rule_from_row(&r),
            None => Err(IndexerError::NoSuchArchivePolicyRule(name.to_owned())),
        }
    }

    /// All rules, by `metric_pattern` in reverse (byte-wise) alphabetical order, as Gnocchi
    /// documents; ties by name.
    pub async fn list_archive_policy_rules(&self) -> Result<Vec<ArchivePolicyRule>> {
        let mut tx = self.conn().await?;
        let rows = self
            .fetch_all(
                &mut tx,
                &Sql::new(
                    "SELECT name, archive_policy_name, metric_pattern FROM archive_policy_rule",
                ),
            )
            .await?;
        let mut v = rows.iter().map(rule_from_row).collect::<Result<Vec<_>>>()?;
        v.sort_by(|a, b| {
            b.metric_pattern
                .cmp(&a.metric_pattern)
                .then_with(|| a.name.cmp(&b.name))
        });
        Ok(v)
    }

    /// Renames rule `name` to `new_name`.
    pub async fn rename_archive_policy_rule(
        &self,
        name: &str,
        new_name: &str,
    ) -> Result<ArchivePolicyRule> {
        let mut tx = self.begin().await?;
        let row = self
            .fetch_optional(
                &mut tx,
                &Sql::new("SELECT name, archive_policy_name, metric_pattern FROM archive_policy_rule WHERE name = ?").arg(name),
            )
            .await?;
        let Some(row) = row else {
            return Err(IndexerError::NoSuchArchivePolicyRule(name.to_owned()));
        };
        let mut rule = rule_from_row(&row)?;
        if name != new_name {
            match self
                .execute(
                    &mut tx,
                    &Sql::new("UPDATE archive_policy_rule SET name = ? WHERE name = ?")
                        .arg(new_name)
                        .arg(name),
                )
                .await
            {
                Ok(_) => {}
                Err(IndexerError::Database(e)) if violation(&e) == Some(Violation::Unique) => {
                    return Err(IndexerError::ArchivePolicyRuleAlreadyExists(
                        new_name.to_owned(),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
        tx.commit().await?;
        rule.name = new_name.to_owned();
        Ok(rule)
    }

    pub async fn delete_archive_policy_rule(&self, name: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        let n = self
            .execute(
                &mut tx,
                &Sql::new("DELETE FROM archive_policy_rule WHERE name = ?").arg(name),
            )
            .await?;
        if n == 0 {
            return Err(IndexerError::NoSuchArchivePolicyRule(name.to_owned()));
        }
        tx.commit().await?;
        Ok(())
    }

    /// The rule applying to `metric_name`: among matching rules, the one with the longest
    /// pattern (Gnocchi's choice).
    pub async fn match_rule(&self, metric_name: &str) -> Result<Option<ArchivePolicyRule>> {
        let rules = self.list_archive_policy_rules().await?;
        Ok(best_rule(rules, metric_name))
    }

    pub(crate) async fn match_rule_tx(
        &self,
        tx: &mut crate::Conn,
        metric_name: &str,
    ) -> Result<Option<ArchivePolicyRule>> {
        let rows = self
            .fetch_all(
                tx,
                &Sql::new(
                    "SELECT name, archive_policy_name, metric_pattern FROM archive_policy_rule",
                ),
            )
            .await?;
        let rules = rows.iter().map(rule_from_row).collect::<Result<Vec<_>>>()?;
        Ok(best_rule(rules, metric_name))
    }
}

fn best_rule(mut rules: Vec<ArchivePolicyRule>, metric_name: &str) -> Option<ArchivePolicyRule> {
    rules.sort_by(|a, b| {
        b.metric_pattern
            .chars()
            .count()
            .cmp(&a.metric_pattern.chars().count())
            .then_with(|| a.name.cmp(&b.name))
    });
    rules
        .into_iter()
        .find(|r| fnmatch(&r.metric_pattern, metric_name))
}

#[cfg(test)]
mod tests {
    use super::fnmatch;

    #[test]
    fn fnmatch_like_python() {
        assert!(fnmatch("*", "anything"));
        assert!(fnmatch("disk.*", "disk.io"));
        assert!(!fnmatch("disk.*", "cpu"));
        assert!(fnmatch("disk.io.*", "disk.io.rate"));
        assert!(fnmatch("h?st", "host"));
        assert!(fnmatch("[a-c]x", "bx"));
        assert!(!fnmatch("[!a-c]x", "bx"));
    }
}
