//! API keys: who may call the API, stored hashed.
//!
//! A key is a random token (`reel_` and 64 hex digits) shown once, when it is made; the store
//! keeps only its SHA-256 (a token carries 256 random bits, so a fast hash is enough: there is
//! nothing to guess) and, by its short public id, what the key may do. Revoking keeps the
//! record, marked, so that the id of a task's owner stays meaningful.
//!
//! Trees: `keys`: SHA-256 of the token -> JSON [`ApiKey`]; `key_ids`: id -> that hash.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};
use crate::store::{now_ms, Store};

/// What a key may do; never holds the token itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Short public id (`key_` and 12 hex digits): what a task's `owner` names.
    pub id: String,
    /// A label for people.
    pub name: String,
    /// Admin keys see every task, manage keys, and read `/metrics` and `/api/stats`.
    pub admin: bool,
    /// When it was made, ms since the epoch.
    pub created_ms: u64,
    /// A revoked key authenticates nothing.
    pub revoked: bool,
    /// Signs this key's webhook deliveries (HMAC-SHA256); shown once with the token.
    pub webhook_secret: String,
    /// Priority of this key's tasks that name none; `None`: the server's default.
    #[serde(default)]
    pub priority: Option<u8>,
}

/// A new key and the only copy of its token.
#[derive(Clone, Debug)]
pub struct CreatedKey {
    /// The stored record.
    pub key: ApiKey,
    /// `Authorization: Bearer <token>`; not stored, cannot be shown again.
    pub token: String,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new webhook signing secret.
pub(crate) fn random_secret() -> String {
    format!("whsec_{}", random_hex(24))
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Store {
    /// Makes a key; the token in the answer is shown once and never stored.
    pub fn create_key(&self, name: &str, admin: bool, priority: Option<u8>) -> Result<CreatedKey> {
        let token = format!("reel_{}", random_hex(32));
        let key = ApiKey {
            id: format!("key_{}", random_hex(6)),
            name: name.to_owned(),
            admin,
            created_ms: now_ms(),
            revoked: false,
            webhook_secret: random_secret(),
            priority,
        };
        let hash = token_hash(&token);
        let bytes = serde_json::to_vec(&key)?;
        self.keys.insert(hash, bytes)?;
        self.key_ids.insert(key.id.as_bytes(), &hash[..])?;
        self.db.flush()?;
        Ok(CreatedKey { key, token })
    }

    /// The live key a token belongs to; `None` for an unknown or revoked one.
    pub fn key_for_token(&self, token: &str) -> Result<Option<ApiKey>> {
        match self.keys.get(token_hash(token))? {
            Some(v) => {
                let key: ApiKey = serde_json::from_slice(&v)?;
                Ok((!key.revoked).then_some(key))
            }
            None => Ok(None),
        }
    }

    /// The key with this id, revoked or not.
    pub fn key(&self, id: &str) -> Result<Option<ApiKey>> {
        let Some(hash) = self.key_ids.get(id.as_bytes())? else {
            return Ok(None);
        };
        match self.keys.get(hash)? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Err(StoreError::Corrupt(format!("key id {id} without its key"))),
        }
    }

    /// Every key, revoked ones included, oldest first.
    pub fn keys(&self) -> Result<Vec<ApiKey>> {
        let mut out = Vec::new();
        for item in self.keys.iter() {
            out.push(serde_json::from_slice::<ApiKey>(&item?.1)?);
        }
        out.sort_by(|a, b| (a.created_ms, &a.id).cmp(&(b.created_ms, &b.id)));
        Ok(out)
    }

    /// True once any key has been made, revoked or not: from then on every API call needs a
    /// live one. Revoking the last key must not reopen the server to everybody.
    pub fn has_keys(&self) -> Result<bool> {
        Ok(!self.keys.is_empty())
    }

    /// Revokes a key (at once: the next request with it is refused). `None` if no such key.
    pub fn revoke_key(&self, id: &str) -> Result<Option<ApiKey>> {
        let Some(hash) = self.key_ids.get(id.as_bytes())? else {
            return Ok(None);
        };
        let Some(v) = self.keys.get(&hash)? else {
            return Ok(None);
        };
        let mut key: ApiKey = serde_json::from_slice(&v)?;
        key.revoked = true;
        self.keys.insert(hash, serde_json::to_vec(&key)?)?;
        self.db.flush()?;
        Ok(Some(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_find_their_key_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        assert!(!store.has_keys().unwrap());
        let made = store.create_key("ci", false, Some(7)).unwrap();
        assert!(made.token.starts_with("reel_") && made.token.len() == 5 + 64);
        assert_eq!(
            store.key_for_token(&made.token).unwrap(),
            Some(made.key.clone())
        );
        assert_eq!(store.key_for_token("reel_nope").unwrap(), None);
        assert!(store.has_keys().unwrap());
        // The token itself is nowhere in the database.
        for tree in [&store.keys, &store.key_ids] {
            for item in tree.iter() {
                let (k, v) = item.unwrap();
                let hay = [k.as_ref(), v.as_ref()].concat();
                assert!(!hay
                    .windows(made.token.len())
                    .any(|w| w == made.token.as_bytes()));
            }
        }
        let revoked = store.revoke_key(&made.key.id).unwrap().unwrap();
        assert!(revoked.revoked);
        assert_eq!(store.key_for_token(&made.token).unwrap(), None);
        assert!(
            store.has_keys().unwrap(),
            "revoking the last key keeps keys required"
        );
        assert_eq!(store.keys().unwrap(), vec![revoked.clone()]);
        assert_eq!(store.key(&made.key.id).unwrap(), Some(revoked));
        assert_eq!(store.revoke_key("key_missing").unwrap(), None);
    }
}
