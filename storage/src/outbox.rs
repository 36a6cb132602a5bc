//! Webhook deliveries owed, kept until they are delivered or given up, so that a restart
//! delivers what was owed.
//!
//! A delivery is stored in the same transaction as the status change it tells of
//! ([`Store::transition`]). Tree `outbox`: due time (ms, big-endian) ++ sequence number -> JSON
//! [`Delivery`], so the due ones are a prefix scan in time order; a retry moves the entry to
//! its new due time.

use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use crate::error::{Result, StoreError};
use crate::keys::decode_u64;
use crate::store::{now_ms, Store, TxResult};
use crate::task::{TaskRecord, WebhookEvent};

/// `meta` key of the delivery sequence counter.
const NEXT_DELIVERY: &[u8] = b"next_delivery";
/// `meta` key of the signing secret of deliveries of tasks made without a key.
const SERVER_SECRET: &[u8] = b"webhook_secret";

/// One webhook delivery owed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Unique, increasing: the receiver can dedupe retries by it.
    pub seq: u64,
    /// When it is next due, ms since the epoch.
    pub due_ms: u64,
    /// Attempts made so far.
    pub attempts: u32,
    /// Where to.
    pub url: String,
    /// The key whose webhook secret signs it (`None`: the server's secret).
    pub owner: Option<String>,
    /// What it tells of.
    pub event: WebhookEvent,
    /// The JSON body: `{"event", "task"}` with the task's record as it was.
    pub body: String,
}

fn outbox_key(due_ms: u64, seq: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&due_ms.to_be_bytes());
    k[8..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The delivery the record's new status owes, if its webhook wants that event (its `seq` is
/// given when stored).
pub(crate) fn owed(record: &TaskRecord) -> Result<Option<Delivery>> {
    let Some(hook) = &record.webhook else {
        return Ok(None);
    };
    let Some(event) = WebhookEvent::of(record.status).filter(|e| hook.events.contains(e)) else {
        return Ok(None);
    };
    let body = serde_json::to_string(&serde_json::json!({"event": event, "task": record}))?;
    Ok(Some(Delivery {
        seq: 0,
        due_ms: now_ms(),
        attempts: 0,
        url: hook.url.clone(),
        owner: record.owner.clone(),
        event,
        body,
    }))
}

/// Stores `delivery` under the next sequence number, inside a transaction.
pub(crate) fn enqueue(
    outbox: &TransactionalTree,
    meta: &TransactionalTree,
    delivery: &Delivery,
) -> TxResult<()> {
    let seq = match meta.get(NEXT_DELIVERY)? {
        Some(v) => decode_u64(&v).map_err(ConflictableTransactionError::Abort)?,
        None => 1,
    };
    meta.insert(NEXT_DELIVERY, &(seq + 1).to_be_bytes()[..])?;
    let stored = Delivery {
        seq,
        ..delivery.clone()
    };
    let bytes = serde_json::to_vec(&stored)
        .map_err(|e| ConflictableTransactionError::Abort(StoreError::from(e)))?;
    outbox.insert(&outbox_key(stored.due_ms, seq)[..], bytes)?;
    Ok(())
}

impl Store {
    /// Up to `limit` deliveries due by `now_ms`, oldest due first.
    pub fn due_deliveries(&self, now_ms: u64, limit: usize) -> Result<Vec<Delivery>> {
        let mut out = Vec::new();
        for item in self.outbox.range(..outbox_key(now_ms + 1, 0)).take(limit) {
            out.push(serde_json::from_slice(&item?.1)?);
        }
        Ok(out)
    }

    /// Deliveries owed in all.
    pub fn deliveries_owed(&self) -> usize {
        self.outbox.len()
    }

    /// Forgets a delivery: it was delivered, or given up.
    pub fn delivery_done(&self, d: &Delivery) -> Result<()> {
        self.outbox.remove(outbox_key(d.due_ms, d.seq))?;
        self.db.flush()?;
        Ok(())
    }

    /// Moves a delivery to a later try, counting the attempt.
    pub fn delivery_retry(&self, d: &Delivery, due_ms: u64) -> Result<()> {
        let next = Delivery {
            due_ms,
            attempts: d.attempts + 1,
            ..d.clone()
        };
        let bytes = serde_json::to_vec(&next)?;
        let mut batch = sled::Batch::default();
        batch.remove(&outbox_key(d.due_ms, d.seq)[..]);
        batch.insert(&outbox_key(due_ms, d.seq)[..], bytes);
        self.outbox.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// The secret signing deliveries of a task owned by `owner` (its key's), or of tasks made
    /// without a key (the server's own, made on first use and kept).
    pub fn webhook_secret(&self, owner: Option<&str>) -> Result<String> {
        if let Some(owner) = owner {
            return self
                .key(owner)?
                .map(|k| k.webhook_secret)
                .ok_or_else(|| StoreError::Corrupt(format!("no key {owner} for its webhook")));
        }
        let fresh = crate::api_keys::random_secret();
        let got = self.meta.compare_and_swap(
            SERVER_SECRET,
            None as Option<&[u8]>,
            Some(fresh.as_bytes()),
        )?;
        let secret = match got {
            Ok(()) => {
                self.db.flush()?;
                fresh
            }
            Err(current) => String::from_utf8_lossy(&current.current.unwrap_or_default()).into(),
        };
        Ok(secret)
    }
}
