//! Bearer API keys with read and admin scopes, compared in constant time.

use subtle::ConstantTimeEq;

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Queries only.
    Read,
    /// Queries and lifecycle changes (acknowledge, resolve).
    Admin,
}

/// One configured key.
#[derive(Clone)]
pub struct ApiKey {
    /// The secret the client sends as `Authorization: Bearer <key>`.
    pub key: String,
    /// What it may do.
    pub scope: Scope,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Why a request is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    /// No key, or not one of ours: 401.
    Unauthenticated,
    /// A key without the scope the request needs: 403.
    Forbidden,
}

/// The keys a server accepts; with none, every request is allowed (the server then listens
/// on loopback only).
#[derive(Clone, Debug, Default)]
pub struct Keys {
    keys: Vec<ApiKey>,
}

impl Keys {
    /// These keys.
    pub fn new(keys: Vec<ApiKey>) -> Keys {
        Keys { keys }
    }

    /// Whether no key is configured.
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks an `Authorization` header value against `needed`. Every key is compared, in
    /// constant time, so the answer's timing says nothing about which bytes matched.
    ///
    /// ```
    /// use sentinel_serve::auth::{ApiKey, Denied, Keys, Scope};
    /// let keys = Keys::new(vec![ApiKey { key: "r-123".into(), scope: Scope::Read }]);
    /// assert_eq!(keys.check(Some("Bearer r-123"), Scope::Read), Ok(()));
    /// assert_eq!(keys.check(Some("Bearer r-123"), Scope::Admin), Err(Denied::Forbidden));
    /// assert_eq!(keys.check(Some("Bearer nope"), Scope::Read), Err(Denied::Unauthenticated));
    /// ```
    pub fn check(&self, authorization: Option<&str>, needed: Scope) -> Result<(), Denied> {
        match self.scope_of(authorization)? {
            scope if scope >= needed => Ok(()),
            _ => Err(Denied::Forbidden),
        }
    }

    /// The scope an `Authorization` header value grants (every scope when no key is
    /// configured). Every key is compared, in constant time.
    pub fn scope_of(&self, authorization: Option<&str>) -> Result<Scope, Denied> {
        if self.is_open() {
            return Ok(Scope::Admin);
        }
        Ok(self.keys[self.presented(authorization)?].scope)
    }

    /// Which configured key an `Authorization` header value presents: its place in the list.
    /// Every key is compared, in constant time.
    ///
    /// ```
    /// use sentinel_serve::auth::{ApiKey, Denied, Keys, Scope};
    /// let key = |k: &str| ApiKey { key: k.into(), scope: Scope::Read };
    /// let keys = Keys::new(vec![key("first-key"), key("second-key")]);
    /// assert_eq!(keys.presented(Some("Bearer second-key")), Ok(1));
    /// assert_eq!(keys.presented(None), Err(Denied::Unauthenticated));
    /// ```
    pub fn presented(&self, authorization: Option<&str>) -> Result<usize, Denied> {
        let presented = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or(Denied::Unauthenticated)?;
        let mut found = None;
        for (i, k) in self.keys.iter().enumerate() {
            let same: bool = k.key.as_bytes().ct_eq(presented.as_bytes()).into();
            if same && found.is_none() {
                found = Some(i);
            }
        }
        found.ok_or(Denied::Unauthenticated)
    }
}
