//! The paredões as the production team changes them: created, edited, opened and closed from
//! the admin area, while every API replica reads them (`Store::load_paredoes`).
//!
//! The rule that matters: at most one paredão is open at a time, so no two windows may share a
//! moment. Checking it needs every paredão, and two admins may act at once (one opens `a` while
//! the other moves `b` over it); each check would pass on what it read and both writes land.
//! So every change runs in one transaction that first bumps a single schedule document
//! (`switches/paredao_schedule`): two changes at once write the same document, the store lets
//! one commit and the other conflicts, and its retry reads what the first wrote. The write of
//! the paredão itself is also conditional on the window it was checked against, so a change
//! made outside this protocol is noticed rather than overwritten.
//!
//! Seeding from configuration only inserts what is absent: a seeded paredão the team has edited
//! since keeps the team's edits.

use std::time::Duration;

use bson::{DateTime as BsonDateTime, doc};
use chrono::{DateTime, Utc};
use mongodb::ClientSession;
use mongodb::options::{Acknowledgment, WriteConcern};
use thiserror::Error;

use crate::paredao::{Paredao, ParedaoId};
use crate::store::{MAX_TRANSACTION_ATTEMPTS, ParedaoDoc, Store, StoreError, commit, is_retryable};

/// Why a change to the paredões did not happen. `E` is the caller's own refusal (the change
/// was not allowed in the paredão's state).
#[derive(Debug, Error)]
pub enum ChangeError<E> {
    #[error("no such paredão")]
    NotFound,
    #[error("a paredão with this id exists already")]
    AlreadyExists,
    #[error("its window overlaps paredão '{0}'")]
    Overlap(ParedaoId),
    #[error("refused: {0}")]
    Refused(E),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What one attempt of a change's transaction came to.
enum Attempt<E> {
    Done(Paredao),
    Failed(ChangeError<E>),
}

const SCHEDULE_DOC: &str = "paredao_schedule";

impl Store {
    /// Writes `p` unless a paredão with its id exists (then it is left as it is). True when
    /// written.
    pub async fn insert_paredao_if_absent(&self, p: &Paredao) -> Result<bool, StoreError> {
        let mut doc = bson::to_document(&ParedaoDoc::from(p)).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // The upsert takes `_id` from the filter.
        doc.remove("_id");
        let result = self
            .paredoes()
            .clone_with_type::<bson::Document>()
            .update_one(doc! { "_id": p.id.as_str() }, doc! { "$setOnInsert": doc })
            .upsert(true)
            .await?;
        Ok(result.upserted_id.is_some())
    }

    /// One paredão, as stored now.
    pub async fn load_paredao(&self, id: &ParedaoId) -> Result<Option<Paredao>, StoreError> {
        match self.paredoes().find_one(doc! { "_id": id.as_str() }).await? {
            Some(d) => Ok(Some(Paredao::try_from(d)?)),
            None => Ok(None),
        }
    }

    /// Adds a new paredão, if its id is free and its window overlaps no other's.
    pub async fn create_paredao<E>(&self, p: &Paredao) -> Result<Paredao, ChangeError<E>> {
        self.in_schedule_transaction(|all, _now| {
            if all.iter().any(|o| o.id == p.id) {
                return Err(ChangeError::AlreadyExists);
            }
            Ok((None, p.clone()))
        })
        .await
    }

    /// Replaces paredão `id` with what `change` makes of it (given the stored paredão and the
    /// moment of the change), if the result overlaps no other paredão. `change` may run more
    /// than once (once per attempt of the transaction).
    pub async fn change_paredao<E, F>(&self, id: &ParedaoId, change: F) -> Result<Paredao, ChangeError<E>>
    where
        F: Fn(&Paredao, DateTime<Utc>) -> Result<Paredao, E>,
    {
        self.in_schedule_transaction(|all, now| {
            let current = all.iter().find(|o| &o.id == id).ok_or(ChangeError::NotFound)?;
            let changed = change(current, now).map_err(ChangeError::Refused)?;
            Ok((Some(current.clone()), changed))
        })
        .await
    }

    /// Runs `decide` over every paredão inside the schedule transaction: it returns the paredão
    /// it replaces (`None` for a new one) and the paredão to write, which is checked for
    /// overlaps and written conditionally.
    async fn in_schedule_transaction<E, F>(&self, decide: F) -> Result<Paredao, ChangeError<E>>
    where
        F: Fn(&[Paredao], DateTime<Utc>) -> Result<(Option<Paredao>, Paredao), ChangeError<E>>,
    {
        let mut attempt = 1;
        loop {
            match self.try_schedule_transaction(&decide).await {
                Ok(Attempt::Done(p)) => return Ok(p),
                Ok(Attempt::Failed(e)) => return Err(e),
                Err(e) if attempt < MAX_TRANSACTION_ATTEMPTS && is_retryable(&e) => {
                    tracing::debug!(error = %e, attempt, "retrying the paredões' schedule transaction");
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                }
                Err(e) => return Err(ChangeError::Store(e.into())),
            }
        }
    }

    async fn try_schedule_transaction<E, F>(&self, decide: &F) -> mongodb::error::Result<Attempt<E>>
    where
        F: Fn(&[Paredao], DateTime<Utc>) -> Result<(Option<Paredao>, Paredao), ChangeError<E>>,
    {
        let mut session = self.client.start_session().await?;
        let durable = WriteConcern::builder().w(Acknowledgment::Majority).journal(true).build();
        session.start_transaction().write_concern(durable).await?;
        // First: two changes at once both write this document, so one of them conflicts here.
        self.db
            .collection::<bson::Document>("switches")
            .update_one(
                doc! { "_id": SCHEDULE_DOC },
                doc! { "$inc": { "revision": 1_i64 }, "$set": { "updated_at": BsonDateTime::now() } },
            )
            .upsert(true)
            .session(&mut session)
            .await?;
        let all = match load_all(self, &mut session).await? {
            Ok(all) => all,
            Err(e) => {
                session.abort_transaction().await?;
                return Ok(Attempt::Failed(ChangeError::Store(e)));
            }
        };
        // The moment of the change, taken once the schedule is ours.
        let now = Utc::now();
        let (replaced, next) = match decide(&all, now) {
            Ok(decided) => decided,
            Err(e) => {
                session.abort_transaction().await?;
                return Ok(Attempt::Failed(e));
            }
        };
        // A change that keeps the window (a title, a photo) adds no overlap: seeded windows
        // that overlapped from the start still take their edits.
        let window_kept =
            replaced.as_ref().is_some_and(|old| old.opens_at == next.opens_at && old.closes_at == next.closes_at);
        if !window_kept && let Some(other) = all.iter().find(|o| o.id != next.id && o.overlaps(&next)) {
            session.abort_transaction().await?;
            return Ok(Attempt::Failed(ChangeError::Overlap(other.id.clone())));
        }
        let doc = ParedaoDoc::from(&next);
        match &replaced {
            None => {
                self.paredoes().insert_one(&doc).session(&mut session).await?;
            }
            Some(old) => {
                // Conditional on the window the overlap check saw.
                let matched = self
                    .paredoes()
                    .replace_one(
                        doc! {
                            "_id": old.id.as_str(),
                            "opens_at": BsonDateTime::from_chrono(old.opens_at),
                            "closes_at": BsonDateTime::from_chrono(old.closes_at),
                        },
                        &doc,
                    )
                    .session(&mut session)
                    .await?
                    .matched_count;
                if matched == 0 {
                    session.abort_transaction().await?;
                    return Ok(Attempt::Failed(ChangeError::Store(StoreError::Corrupt(format!(
                        "paredão '{}' changed while it was being changed; try again",
                        old.id
                    )))));
                }
            }
        }
        commit(&mut session).await?;
        Ok(Attempt::Done(next))
    }
}

async fn load_all(
    store: &Store,
    session: &mut ClientSession,
) -> mongodb::error::Result<Result<Vec<Paredao>, StoreError>> {
    let mut cursor = store.paredoes().find(doc! {}).session(&mut *session).await?;
    let mut docs = Vec::new();
    while let Some(d) = cursor.next(&mut *session).await {
        docs.push(d?);
    }
    Ok(docs.into_iter().map(Paredao::try_from).collect())
}
