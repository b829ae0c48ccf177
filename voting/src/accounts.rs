//! The production team's accounts and sessions, in the store.
//!
//! Collections:
//! - `accounts`: one document per member of the team (`_id` = the name), with the role, the
//!   argon2id hash of the password (a PHC string; hashing lives in the API), when it was made,
//!   and the login failures counted since the last success (`failed_logins`, `locked_until`).
//! - `sessions`: one document per signed-in browser (`_id` = the SHA-256, hex, of the cookie's
//!   token, so a copy of the store holds no usable session), with the account's name and role,
//!   the CSRF token the pages send back, and when it ends. Every replica reads them here, so a
//!   logout or a deleted account ends the session everywhere; expired ones are ignored when read
//!   and deleted by the API's janitor (`forget_expired_sessions`), as the local store has no TTL
//!   indexes.
//!
//! Names are parsed once (`AccountName`), passwords too (`Password`, at least
//! `MIN_PASSWORD_CHARS`): a value of either type is valid.

use bson::{DateTime as BsonDateTime, doc};
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use mongodb::Collection;
use mongodb::options::ReturnDocument;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::slug::slug_id;
use crate::store::{Store, StoreError};

slug_id!(AccountName, "account name");

/// Shorter passwords are refused; a phrase of a few words is the idea.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longer ones are refused too: argon2's cost grows with the input, and nobody types this much.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// What a member of the production team may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Watches the night and exports results.
    Producer,
    /// Also creates, opens and closes paredões, manages accounts and the error switch.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "producer" => Ok(Role::Producer),
            "admin" => Ok(Role::Admin),
            other => Err(format!("the role is 'producer' or 'admin', not '{other}'")),
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("the password must have at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
}

/// A password good enough to be set (never printed, not even by `Debug`).
#[derive(Clone)]
pub struct Password(SecretString);

impl Password {
    pub fn parse(s: impl Into<String>) -> Result<Self, PasswordError> {
        let s: String = s.into();
        if s.chars().count() < MIN_PASSWORD_CHARS {
            return Err(PasswordError::TooShort);
        }
        if s.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::TooLong);
        }
        Ok(Self(s.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A member of the production team as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    #[serde(rename = "_id")]
    pub name: AccountName,
    pub role: Role,
    /// argon2id, as a PHC string (`$argon2id$v=19$m=…`).
    pub password_hash: String,
    #[serde(with = "bson::serde_helpers::chrono_datetime_as_bson_datetime")]
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub failed_logins: u32,
    #[serde(default, with = "optional_datetime")]
    pub locked_until: Option<DateTime<Utc>>,
}

/// A signed-in browser as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// SHA-256 (hex) of the cookie's token.
    #[serde(rename = "_id")]
    pub token_hash: String,
    pub name: AccountName,
    pub role: Role,
    pub csrf_token: String,
    #[serde(with = "bson::serde_helpers::chrono_datetime_as_bson_datetime")]
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Error)]
pub enum AccountError {
    #[error("an account named '{0}' exists already")]
    Exists(AccountName),
    #[error("no account is named '{0}'")]
    NotFound(AccountName),
    #[error("'{0}' is the last admin: make another admin first")]
    LastAdmin(AccountName),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<mongodb::error::Error> for AccountError {
    fn from(e: mongodb::error::Error) -> Self {
        AccountError::Store(e.into())
    }
}

/// MongoDB's duplicate key error.
fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match e.kind.as_ref() {
        ErrorKind::Write(WriteFailure::WriteError(w)) => w.code == 11000,
        ErrorKind::Command(c) => c.code == 11000,
        _ => false,
    }
}

impl Store {
    fn accounts(&self) -> Collection<Account> {
        self.db.collection("accounts")
    }
    fn sessions(&self) -> Collection<Session> {
        self.db.collection("sessions")
    }

    pub async fn ensure_account_indexes(&self) -> Result<(), StoreError> {
        use mongodb::IndexModel;
        self.sessions().create_index(IndexModel::builder().keys(doc! { "name": 1 }).build()).await?;
        self.sessions().create_index(IndexModel::builder().keys(doc! { "expires_at": 1 }).build()).await?;
        Ok(())
    }

    pub async fn create_account(&self, account: &Account) -> Result<(), AccountError> {
        match self.accounts().insert_one(account).await {
            Ok(_) => Ok(()),
            Err(e) if is_duplicate_key(&e) => Err(AccountError::Exists(account.name.clone())),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn find_account(&self, name: &AccountName) -> Result<Option<Account>, StoreError> {
        Ok(self.accounts().find_one(doc! { "_id": name.as_str() }).await?)
    }

    /// Every account, by name.
    pub async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let mut all: Vec<Account> = self.accounts().find(doc! {}).await?.try_collect().await?;
        all.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(all)
    }

    async fn admins(&self) -> Result<u64, StoreError> {
        Ok(self.accounts().count_documents(doc! { "role": Role::Admin.as_str() }).await?)
    }

    /// Changes an account's role (its open sessions follow at once) or its password (its open
    /// sessions end: whoever knew the old one is out). The last admin cannot become a producer.
    /// (Two admins demoting each other at the same instant could both pass the check; the team
    /// is a handful of people, and `./run.sh admin create` makes a new admin if it ever happens.)
    pub async fn update_account(
        &self,
        name: &AccountName,
        role: Option<Role>,
        password_hash: Option<String>,
    ) -> Result<Account, AccountError> {
        let current = self.find_account(name).await?.ok_or_else(|| AccountError::NotFound(name.clone()))?;
        if current.role == Role::Admin && role == Some(Role::Producer) && self.admins().await? <= 1 {
            return Err(AccountError::LastAdmin(name.clone()));
        }
        let mut set = doc! {};
        if let Some(role) = role {
            set.insert("role", role.as_str());
        }
        if let Some(hash) = &password_hash {
            set.insert("password_hash", hash);
            set.insert("failed_logins", 0);
            set.insert("locked_until", bson::Bson::Null);
        }
        if set.is_empty() {
            return Ok(current);
        }
        let updated = self
            .accounts()
            .find_one_and_update(doc! { "_id": name.as_str() }, doc! { "$set": set })
            .return_document(ReturnDocument::After)
            .await?
            .ok_or_else(|| AccountError::NotFound(name.clone()))?;
        if password_hash.is_some() {
            self.delete_sessions_of(name).await?;
        } else if let Some(role) = role {
            self.sessions()
                .update_many(doc! { "name": name.as_str() }, doc! { "$set": { "role": role.as_str() } })
                .await?;
        }
        Ok(updated)
    }

    /// Deletes an account and ends its sessions; the last admin stays.
    pub async fn delete_account(&self, name: &AccountName) -> Result<(), AccountError> {
        let current = self.find_account(name).await?.ok_or_else(|| AccountError::NotFound(name.clone()))?;
        if current.role == Role::Admin && self.admins().await? <= 1 {
            return Err(AccountError::LastAdmin(name.clone()));
        }
        self.accounts().delete_one(doc! { "_id": name.as_str() }).await?;
        self.delete_sessions_of(name).await?;
        Ok(())
    }

    /// Counts a failed login; at `max_failures` in a row the account is locked until
    /// `lock_until` and the count starts again. Returns the lock, if this failure set one.
    pub async fn record_login_failure(
        &self,
        name: &AccountName,
        max_failures: u32,
        lock_until: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let after = self
            .accounts()
            .find_one_and_update(doc! { "_id": name.as_str() }, doc! { "$inc": { "failed_logins": 1 } })
            .return_document(ReturnDocument::After)
            .await?;
        match after {
            Some(a) if a.failed_logins >= max_failures => {
                self.accounts()
                    .update_one(
                        doc! { "_id": name.as_str() },
                        doc! { "$set": { "failed_logins": 0, "locked_until": BsonDateTime::from_chrono(lock_until) } },
                    )
                    .await?;
                Ok(Some(lock_until))
            }
            _ => Ok(None),
        }
    }

    /// A login succeeded: the failures before it are forgotten.
    pub async fn record_login_success(&self, name: &AccountName) -> Result<(), StoreError> {
        self.accounts()
            .update_one(
                doc! { "_id": name.as_str() },
                doc! { "$set": { "failed_logins": 0, "locked_until": bson::Bson::Null } },
            )
            .await?;
        Ok(())
    }

    pub async fn insert_session(&self, session: &Session) -> Result<(), StoreError> {
        self.sessions().insert_one(session).await?;
        Ok(())
    }

    /// The session whose token hashes to `token_hash`, unless it has expired.
    pub async fn find_session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<Option<Session>, StoreError> {
        let found = self.sessions().find_one(doc! { "_id": token_hash }).await?;
        Ok(found.filter(|s| s.expires_at > now))
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.sessions().delete_one(doc! { "_id": token_hash }).await?;
        Ok(())
    }

    pub async fn delete_sessions_of(&self, name: &AccountName) -> Result<u64, StoreError> {
        Ok(self.sessions().delete_many(doc! { "name": name.as_str() }).await?.deleted_count)
    }

    /// Deletes the sessions that ended before `now`; returns how many.
    pub async fn forget_expired_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let bound = BsonDateTime::from_chrono(now);
        Ok(self.sessions().delete_many(doc! { "expires_at": { "$lt": bound } }).await?.deleted_count)
    }
}

/// `Option<DateTime<Utc>>` as a BSON date or null.
mod optional_datetime {
    use bson::DateTime as BsonDateTime;
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
        value.map(BsonDateTime::from_chrono).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
        Ok(Option::<BsonDateTime>::deserialize(d)?.map(|t| t.to_chrono()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_needs_ten_characters_and_is_never_printed() {
        assert_eq!(Password::parse("curta").unwrap_err(), PasswordError::TooShort);
        // Characters, not bytes: ten accented letters are enough.
        assert!(Password::parse("éééééééééé").is_ok());
        assert_eq!(Password::parse("a".repeat(MAX_PASSWORD_BYTES + 1)).unwrap_err(), PasswordError::TooLong);
        let p = Password::parse("uma senha comprida").unwrap();
        assert_eq!(format!("{p:?}"), "Password(***)");
    }

    #[test]
    fn names_are_slugs() {
        assert!(AccountName::parse("ana-souza").is_ok());
        assert!(AccountName::parse("Ana Souza").is_err());
        assert!(AccountName::parse("").is_err());
    }

    #[test]
    fn roles_parse_from_their_names() {
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
        assert_eq!("producer".parse::<Role>(), Ok(Role::Producer));
        assert!("root".parse::<Role>().is_err());
    }
}
