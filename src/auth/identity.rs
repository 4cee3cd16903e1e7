//! Establishing the caller's identity from request headers.

use base64::Engine;
use http::HeaderMap;

use crate::config::AuthMode;

/// The authenticated caller, in the terms Gnocchi's policies use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The `user` credential: the basic-auth or remote user name, or `X-User-Id`.
    pub user_id: String,
    /// `X-Project-Id` in `noauth` mode; basic and remote-user callers have none.
    pub project_id: Option<String>,
    /// Roles, lowercase; `admin` grants everything the default policy reserves.
    pub roles: Vec<String>,
}

/// Why a request carries no usable identity: a 401.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("missing or malformed credentials")]
    Unauthenticated,
}

impl Caller {
    /// Reads the identity from the headers, as Gnocchi's helper for `mode` does.
    pub fn from_headers(mode: AuthMode, headers: &HeaderMap) -> Result<Self, IdentityError> {
        match mode {
            AuthMode::Basic => basic_user(headers).map(Self::named),
            AuthMode::Remoteuser => header(headers, "remote-user")
                .map(|user| Self::named(user.to_owned()))
                .ok_or(IdentityError::Unauthenticated),
            AuthMode::Noauth => {
                let user_id = header(headers, "x-user-id").ok_or(IdentityError::Unauthenticated)?;
                let roles = header(headers, "x-roles")
                    .map(|roles| {
                        roles
                            .split(',')
                            .map(|role| role.trim().to_ascii_lowercase())
                            .filter(|role| !role.is_empty())
                            .collect()
                    })
                    .unwrap_or_default();
                Ok(Self {
                    user_id: user_id.to_owned(),
                    project_id: header(headers, "x-project-id").map(str::to_owned),
                    roles,
                })
            }
        }
    }

    /// A user known by name only: `admin` is the administrator.
    fn named(user: String) -> Self {
        let roles = if user == "admin" {
            vec!["admin".to_owned()]
        } else {
            Vec::new()
        };
        Self {
            user_id: user,
            project_id: None,
            roles,
        }
    }

    /// What Gnocchi records as a resource's or metric's `creator`:
    /// `user:project` when a project is known, else the user.
    pub fn creator(&self) -> String {
        match &self.project_id {
            Some(project) => format!("{}:{project}", self.user_id),
            None => self.user_id.clone(),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|role| role == "admin")
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

/// The user name of `Authorization: basic base64(user:password)`; the
/// password is ignored, as Gnocchi ignores it.
fn basic_user(headers: &HeaderMap) -> Result<String, IdentityError> {
    let value = header(headers, "authorization").ok_or(IdentityError::Unauthenticated)?;
    let (scheme, encoded) = value
        .split_once(' ')
        .ok_or(IdentityError::Unauthenticated)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(IdentityError::Unauthenticated);
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| IdentityError::Unauthenticated)?;
    let decoded = String::from_utf8(decoded).map_err(|_| IdentityError::Unauthenticated)?;
    let (user, _password) = decoded
        .split_once(':')
        .ok_or(IdentityError::Unauthenticated)?;
    Ok(user.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn basic_takes_the_user_name_and_makes_admin_admin() {
        let foobar = Caller::from_headers(
            AuthMode::Basic,
            &headers(&[("authorization", "basic Zm9vYmFyOg==")]),
        )
        .unwrap();
        assert_eq!(foobar.user_id, "foobar");
        assert_eq!(foobar.creator(), "foobar");
        assert!(!foobar.is_admin());
        let admin = Caller::from_headers(
            AuthMode::Basic,
            &headers(&[("authorization", "Basic YWRtaW46")]),
        )
        .unwrap();
        assert!(admin.is_admin());
    }

    #[test]
    fn basic_refuses_missing_or_undecodable_credentials() {
        for value in ["", "basic hello:", "bearer abc", "basic"] {
            let map = if value.is_empty() {
                HeaderMap::new()
            } else {
                headers(&[("authorization", value)])
            };
            assert_eq!(
                Caller::from_headers(AuthMode::Basic, &map),
                Err(IdentityError::Unauthenticated),
                "{value:?}"
            );
        }
    }

    #[test]
    fn noauth_reads_trusted_headers() {
        let caller = Caller::from_headers(
            AuthMode::Noauth,
            &headers(&[
                ("x-user-id", "u1"),
                ("x-project-id", "p1"),
                ("x-roles", "Member, Admin"),
            ]),
        )
        .unwrap();
        assert_eq!(caller.creator(), "u1:p1");
        assert_eq!(caller.roles, ["member", "admin"]);
        assert!(caller.is_admin());
    }

    #[test]
    fn remote_user_needs_the_header() {
        assert!(Caller::from_headers(AuthMode::Remoteuser, &HeaderMap::new()).is_err());
        let caller =
            Caller::from_headers(AuthMode::Remoteuser, &headers(&[("remote-user", "jd")])).unwrap();
        assert_eq!(caller.user_id, "jd");
    }
}
