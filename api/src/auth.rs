//! Who is calling: `Authorization: Bearer <token>` against the store's hashed keys.
//!
//! While no key exists the server runs open (the binary allows that only on loopback, unless
//! told `--insecure`): every caller may do everything, as the one local user. The first key
//! made (by `reel keys create` or `POST /api/keys`) closes it for good: from then on every
//! `/api` route needs a live key, and admin routes an admin key (revoking every key does not
//! reopen it; `reel keys create` on the stopped server's data dir makes a new one). A key sees only the tasks it made; an admin key
//! sees all.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use storage::{ApiKey, Store, TaskParams, TaskRecord};
use warp::http::StatusCode;

use crate::errors::ApiError;
use crate::routes::Access;

/// The caller of one request.
#[derive(Clone, Debug)]
pub enum Caller {
    /// No keys exist: the local user, allowed everything.
    Open,
    /// A valid key.
    Key(ApiKey),
}

impl Caller {
    /// The id a new task of this caller is owned by.
    pub fn owner(&self) -> Option<String> {
        match self {
            Caller::Open => None,
            Caller::Key(k) => Some(k.id.clone()),
        }
    }

    /// True for the open server's user and admin keys.
    pub fn is_admin(&self) -> bool {
        match self {
            Caller::Open => true,
            Caller::Key(k) => k.admin,
        }
    }

    /// Whether this caller may see the task at all (others get a 404, not a 403).
    pub fn may_see(&self, record: &TaskRecord) -> bool {
        self.is_admin() || record.owner == self.owner()
    }

    /// The priority of this caller's tasks that name none: its key's own (default 5).
    pub fn default_priority(&self) -> u8 {
        self.key()
            .and_then(|k| k.priority)
            .unwrap_or(TaskParams::DEFAULT_PRIORITY)
    }

    /// The most a request of this caller may ask for: its key's own, or the top for the open
    /// server's user and admin keys.
    pub fn priority_ceiling(&self) -> u8 {
        if self.is_admin() {
            TaskParams::PRIORITY.1
        } else {
            self.default_priority()
        }
    }

    /// The key, when there is one.
    pub fn key(&self) -> Option<&ApiKey> {
        match self {
            Caller::Open => None,
            Caller::Key(k) => Some(k),
        }
    }
}

/// Whether keys are needed, cached: keys change only through this process (the store is
/// locked by it), so the routes that make and revoke keys keep it true.
pub struct Auth {
    store: Arc<Store>,
    keys_exist: AtomicBool,
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

impl Auth {
    /// Reads whether any live key exists.
    pub fn new(store: Arc<Store>) -> Result<Auth, storage::StoreError> {
        let keys_exist = AtomicBool::new(store.has_keys()?);
        Ok(Auth { store, keys_exist })
    }

    /// True when every `/api` call needs a key.
    pub fn required(&self) -> bool {
        self.keys_exist.load(Ordering::Relaxed)
    }

    /// Reads the store again after keys changed.
    pub fn refresh(&self) -> Result<(), storage::StoreError> {
        self.keys_exist
            .store(self.store.has_keys()?, Ordering::Relaxed);
        Ok(())
    }

    /// The caller of a request with this `Authorization` header, if allowed `access`.
    pub fn check(&self, header: Option<&str>, access: Access) -> Result<Caller, ApiError> {
        if access == Access::Public {
            return Ok(Caller::Open);
        }
        if !self.required() {
            return Ok(Caller::Open);
        }
        let token = header
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthorized("send an API key: Authorization: Bearer <key>"))?;
        let key = self
            .store
            .key_for_token(token)?
            .ok_or_else(|| unauthorized("unknown or revoked API key"))?;
        if access == Access::Admin && !key.admin {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "this route needs an admin key",
            ));
        }
        Ok(Caller::Key(key))
    }
}
