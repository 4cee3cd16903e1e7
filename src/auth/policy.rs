//! Access rules in oslo.policy's language, with Gnocchi's defaults.
//!
//! A rule is a boolean expression over checks: `role:admin`, `rule:other`,
//! `user:%(creator)s` (a credential compared with a field of the object being
//! acted on), `@` (always), `!` (never), combined with `and`, `or`, `not` and
//! parentheses; the empty rule always allows. A policy file (JSON, or YAML of
//! `"action": "rule"` lines) overrides the defaults rule by rule, as
//! oslo.policy's file does for Gnocchi.

use std::collections::HashMap;
use std::path::Path;

use super::Caller;

/// Gnocchi's default rules (`gnocchi/rest/policies.py`).
const DEFAULT_RULES: &[(&str, &str)] = &[
    (
        "admin_or_creator",
        "role:admin or user:%(creator)s or project_id:%(created_by_project_id)s",
    ),
    ("resource_owner", "project_id:%(project_id)s"),
    ("metric_owner", "project_id:%(resource.project_id)s"),
    ("get status", "role:admin"),
    ("create resource", ""),
    (
        "get resource",
        "rule:admin_or_creator or rule:resource_owner",
    ),
    ("update resource", "rule:admin_or_creator"),
    ("delete resource", "rule:admin_or_creator"),
    ("delete resources", "rule:admin_or_creator"),
    (
        "list resource",
        "rule:admin_or_creator or rule:resource_owner",
    ),
    (
        "search resource",
        "rule:admin_or_creator or rule:resource_owner",
    ),
    ("create resource type", "role:admin"),
    ("delete resource type", "role:admin"),
    ("update resource type", "role:admin"),
    ("get resource type", ""),
    ("list resource type", ""),
    ("get archive policy", ""),
    ("list archive policy", ""),
    ("create archive policy", "role:admin"),
    ("update archive policy", "role:admin"),
    ("delete archive policy", "role:admin"),
    ("create archive policy rule", "role:admin"),
    ("get archive policy rule", ""),
    ("list archive policy rule", ""),
    ("update archive policy rule", "role:admin"),
    ("delete archive policy rule", "role:admin"),
    ("create metric", ""),
    ("delete metric", "rule:admin_or_creator"),
    ("get metric", "rule:admin_or_creator or rule:metric_owner"),
    (
        "search metric",
        "rule:admin_or_creator or rule:metric_owner",
    ),
    ("list metric", ""),
    ("list all metric", "role:admin"),
    ("get measures", "rule:admin_or_creator or rule:metric_owner"),
    ("post measures", "rule:admin_or_creator"),
];

/// Nesting depth past which rule references are taken for a cycle.
const MAX_RULE_DEPTH: usize = 16;

/// The fields of the object an action applies to, by dotted name
/// (`creator`, `project_id`, `resource.project_id`, ...).
#[derive(Debug, Clone, Default)]
pub struct Target {
    fields: Vec<(&'static str, String)>,
}

impl Target {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field; absent values are simply not added (checks on them fail).
    pub fn with(mut self, name: &'static str, value: Option<&str>) -> Self {
        if let Some(value) = value {
            self.fields.push((name, value.to_owned()));
        }
        self
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A policy file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("policy file {path}: {reason}")]
    Syntax { path: String, reason: String },
    #[error("rule {name:?}: {reason}")]
    Rule { name: String, reason: String },
}

/// Compiled rules by action name.
#[derive(Debug, Clone)]
pub struct Policy {
    rules: HashMap<String, Expr>,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Always,
    Never,
    Role(String),
    Rule(String),
    /// `credential:match`, where `match` may hold `%(field)s` placeholders.
    Generic {
        credential: String,
        pattern: String,
    },
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Default for Policy {
    fn default() -> Self {
        Self::gnocchi_defaults()
    }
}

impl Policy {
    /// Gnocchi's defaults: admins do everything, creators and owning projects
    /// reach their own resources and metrics, anyone reads policies.
    pub fn gnocchi_defaults() -> Self {
        let rules = DEFAULT_RULES
            .iter()
            .map(|(name, rule)| {
                let expr = parse(rule).expect("default rules parse");
                ((*name).to_owned(), expr)
            })
            .collect();
        Self { rules }
    }

    /// The defaults overridden by the rules of a JSON or YAML policy file.
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: shown.clone(),
            source,
        })?;
        let overrides = parse_policy_document(&text).map_err(|reason| PolicyError::Syntax {
            path: shown,
            reason,
        })?;
        let mut policy = Self::gnocchi_defaults();
        for (name, rule) in overrides {
            let expr = parse(&rule).map_err(|reason| PolicyError::Rule {
                name: name.clone(),
                reason,
            })?;
            policy.rules.insert(name, expr);
        }
        Ok(policy)
    }

    /// Whether `caller` may perform `action` on `target`. Unknown actions are
    /// refused.
    pub fn allows(&self, action: &str, caller: &Caller, target: &Target) -> bool {
        match self.rules.get(action) {
            Some(expr) => self.eval(expr, caller, target, 0),
            None => false,
        }
    }

    fn eval(&self, expr: &Expr, caller: &Caller, target: &Target, depth: usize) -> bool {
        match expr {
            Expr::Always => true,
            Expr::Never => false,
            Expr::Role(role) => caller.roles.iter().any(|r| r.eq_ignore_ascii_case(role)),
            Expr::Rule(name) => {
                depth < MAX_RULE_DEPTH
                    && self
                        .rules
                        .get(name)
                        .is_some_and(|rule| self.eval(rule, caller, target, depth + 1))
            }
            Expr::Generic {
                credential,
                pattern,
            } => {
                let Some(expected) = substitute(pattern, target) else {
                    return false;
                };
                match credential.as_str() {
                    "user" | "user_id" => caller.user_id == expected,
                    "project_id" | "tenant" => caller.project_id.as_deref() == Some(&expected),
                    _ => false,
                }
            }
            Expr::Not(inner) => !self.eval(inner, caller, target, depth),
            Expr::And(all) => all.iter().all(|e| self.eval(e, caller, target, depth)),
            Expr::Or(any) => any.iter().any(|e| self.eval(e, caller, target, depth)),
        }
    }
}

/// Replaces `%(field)s` with the target's field; `None` when a field is missing.
fn substitute(pattern: &str, target: &Target) -> Option<String> {
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(start) = rest.find("%(") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find(")s")?;
        out.push_str(target.get(&after[..end])?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    let unquoted = out
        .strip_prefix('\'')
        .and_then(|s| s.strip_suffix('\''))
        .map(str::to_owned);
    Some(unquoted.unwrap_or(out))
}

/// Parses one rule. Precedence as in oslo.policy: `not` > `and` > `or`.
fn parse(rule: &str) -> Result<Expr, String> {
    let tokens = tokenize(rule);
    if tokens.is_empty() {
        return Ok(Expr::Always);
    }
    let mut parser = Parser { tokens, at: 0 };
    let expr = parser.or()?;
    match parser.tokens.get(parser.at) {
        None => Ok(expr),
        Some(token) => Err(format!("unexpected {token:?}")),
    }
}

fn tokenize(rule: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for word in rule.split_whitespace() {
        let mut word = word;
        while let Some(rest) = word.strip_prefix('(') {
            tokens.push("(".to_owned());
            word = rest;
        }
        let mut closing = 0;
        while let Some(rest) = word.strip_suffix(')') {
            closing += 1;
            word = rest;
        }
        if !word.is_empty() {
            tokens.push(word.to_owned());
        }
        tokens.extend(std::iter::repeat_n(")".to_owned(), closing));
    }
    tokens
}

struct Parser {
    tokens: Vec<String>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.at).map(String::as_str)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut terms = vec![self.and()?];
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("or")) {
            self.at += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::Or(terms)
        })
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut terms = vec![self.not()?];
        while self.peek().is_some_and(|t| t.eq_ignore_ascii_case("and")) {
            self.at += 1;
            terms.push(self.not()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            Expr::And(terms)
        })
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.peek().is_some_and(|t| t.eq_ignore_ascii_case("not")) {
            self.at += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, String> {
        let token = self.peek().ok_or("rule ends too early")?.to_owned();
        self.at += 1;
        if token == "(" {
            let inner = self.or()?;
            if self.peek() != Some(")") {
                return Err("missing ')'".to_owned());
            }
            self.at += 1;
            return Ok(inner);
        }
        check(&token)
    }
}

fn check(token: &str) -> Result<Expr, String> {
    match token {
        "@" => return Ok(Expr::Always),
        "!" => return Ok(Expr::Never),
        _ => {}
    }
    let (kind, value) = token
        .split_once(':')
        .ok_or_else(|| format!("{token:?} is not a check"))?;
    Ok(match kind {
        "role" => Expr::Role(value.to_owned()),
        "rule" => Expr::Rule(value.to_owned()),
        _ => Expr::Generic {
            credential: kind.to_owned(),
            pattern: value.to_owned(),
        },
    })
}

/// Reads `{"action": "rule", ...}` JSON, or YAML made of `"action": "rule"`
/// lines (the shape of Gnocchi's `policy.yaml`).
fn parse_policy_document(text: &str) -> Result<Vec<(String, String)>, String> {
    if text.trim_start().starts_with('{') {
        let map: HashMap<String, String> =
            serde_json::from_str(text).map_err(|err| err.to_string())?;
        return Ok(map.into_iter().collect());
    }
    let mut rules = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line == "---" {
            continue;
        }
        let (name, rule) = split_yaml_pair(line)
            .ok_or_else(|| format!("line {}: expected \"action\": \"rule\"", number + 1))?;
        rules.push((name, rule));
    }
    Ok(rules)
}

fn split_yaml_pair(line: &str) -> Option<(String, String)> {
    let (name, rest) = take_scalar(line)?;
    let rest = rest.trim_start().strip_prefix(':')?.trim();
    let (rule, tail) = if rest.is_empty() {
        (String::new(), "")
    } else {
        take_scalar(rest)?
    };
    let tail = tail.trim();
    (tail.is_empty() || tail.starts_with('#')).then_some((name, rule))
}

/// One YAML scalar: quoted (single or double) or plain up to `:` or `#`.
fn take_scalar(text: &str) -> Option<(String, &str)> {
    let text = text.trim_start();
    let quote = text.chars().next()?;
    if quote == '"' || quote == '\'' {
        let body = &text[1..];
        let end = body.find(quote)?;
        return Some((body[..end].to_owned(), &body[end + 1..]));
    }
    let end = text.find([':', '#']).unwrap_or(text.len());
    Some((text[..end].trim().to_owned(), &text[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Caller {
        Caller {
            user_id: name.to_owned(),
            project_id: None,
            roles: if name == "admin" {
                vec!["admin".into()]
            } else {
                vec![]
            },
        }
    }

    fn project_member(user_id: &str, project: &str) -> Caller {
        Caller {
            user_id: user_id.to_owned(),
            project_id: Some(project.to_owned()),
            roles: vec!["member".into()],
        }
    }

    #[test]
    fn defaults_reserve_admin_actions() {
        let policy = Policy::gnocchi_defaults();
        let none = Target::new();
        assert!(policy.allows("create archive policy", &user("admin"), &none));
        assert!(!policy.allows("create archive policy", &user("foobar"), &none));
        assert!(policy.allows("get archive policy", &user("foobar"), &none));
        assert!(!policy.allows("get status", &user("foobar"), &none));
        assert!(!policy.allows("no such action", &user("admin"), &none));
    }

    #[test]
    fn creators_and_owning_projects_reach_their_objects() {
        let policy = Policy::gnocchi_defaults();
        let resource = Target::new()
            .with("creator", Some("foobar"))
            .with("project_id", Some("p1"));
        assert!(policy.allows("get resource", &user("foobar"), &resource));
        assert!(!policy.allows("get resource", &user("other"), &resource));
        assert!(policy.allows("get resource", &project_member("u9", "p1"), &resource));
        assert!(!policy.allows("update resource", &project_member("u9", "p1"), &resource));

        let metric = Target::new()
            .with("creator", Some("u1:p2"))
            .with("created_by_project_id", Some("p2"))
            .with("resource.project_id", Some("p3"));
        assert!(policy.allows("get measures", &project_member("u7", "p3"), &metric));
        assert!(policy.allows("post measures", &project_member("u8", "p2"), &metric));
        assert!(!policy.allows("post measures", &project_member("u7", "p3"), &metric));
    }

    #[test]
    fn grammar_precedence_and_parentheses() {
        assert_eq!(parse("").unwrap(), Expr::Always);
        assert_eq!(
            parse("role:a or role:b and not role:c").unwrap(),
            Expr::Or(vec![
                Expr::Role("a".into()),
                Expr::And(vec![
                    Expr::Role("b".into()),
                    Expr::Not(Box::new(Expr::Role("c".into())))
                ])
            ])
        );
        assert_eq!(
            parse("(role:a or role:b) and @").unwrap(),
            Expr::And(vec![
                Expr::Or(vec![Expr::Role("a".into()), Expr::Role("b".into())]),
                Expr::Always
            ])
        );
        assert!(parse("(role:a").is_err());
        assert!(parse("role:a or").is_err());
        assert!(parse("nonsense").is_err());
    }

    #[test]
    fn rule_cycles_are_refused_not_looped() {
        let mut policy = Policy::gnocchi_defaults();
        policy.rules.insert("a".into(), parse("rule:b").unwrap());
        policy.rules.insert("b".into(), parse("rule:a").unwrap());
        assert!(!policy.allows("a", &user("admin"), &Target::new()));
    }

    #[test]
    fn files_override_defaults() {
        let dir = std::env::temp_dir().join(format!("gnocchid-policy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let yaml = dir.join("policy.yaml");
        std::fs::write(
            &yaml,
            "# operators\n\"get status\": \"\"\n'create metric': 'role:admin'\n",
        )
        .unwrap();
        let policy = Policy::from_file(&yaml).unwrap();
        assert!(policy.allows("get status", &user("foobar"), &Target::new()));
        assert!(!policy.allows("create metric", &user("foobar"), &Target::new()));
        let json = dir.join("policy.json");
        std::fs::write(&json, r#"{"get status": "!"}"#).unwrap();
        let policy = Policy::from_file(&json).unwrap();
        assert!(!policy.allows("get status", &user("admin"), &Target::new()));
        std::fs::write(&json, r#"{"get status": "role:a or"}"#).unwrap();
        assert!(Policy::from_file(&json).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
