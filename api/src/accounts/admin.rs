//! The admins' management of the team's accounts: list, create, change role or password,
//! delete. Every change is audited; deleting an account or changing its password ends its
//! sessions, and the last admin can be neither deleted nor made a producer.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use voting::accounts::{Account, AccountError, AccountName, Password, Role};

use crate::error::{ApiError, ErrorBody};
use crate::identity::AdminUser;
use crate::state::AppState;

/// An account as the admins see it (never its hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub name: AccountName,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    /// Set while the account is locked after repeated failed logins.
    pub locked_until: Option<DateTime<Utc>>,
}

impl From<&Account> for AccountView {
    fn from(a: &Account) -> Self {
        let locked_until = a.locked_until.filter(|t| *t > Utc::now());
        Self { name: a.name.clone(), role: a.role, created_at: a.created_at, locked_until }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewAccount {
    /// Lowercase letters, digits, `-` and `_`.
    #[schema(example = "ana")]
    pub name: String,
    pub role: Role,
    /// At least 10 characters.
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct AccountChange {
    pub role: Option<Role>,
    /// A new password (at least 10 characters); the account's sessions end.
    pub password: Option<String>,
}

fn unprocessable(code: &'static str, message: String) -> ApiError {
    ApiError::BadRequest { status: StatusCode::UNPROCESSABLE_ENTITY, code, message }
}

fn parse_name(name: &str) -> Result<AccountName, ApiError> {
    AccountName::parse(name).map_err(|e| unprocessable("invalid_name", e.to_string()))
}

fn parse_password(password: String) -> Result<Password, ApiError> {
    Password::parse(password).map_err(|e| unprocessable("invalid_password", e.to_string()))
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Exists(_) => {
                ApiError::BadRequest { status: StatusCode::CONFLICT, code: "account_exists", message: e.to_string() }
            }
            AccountError::LastAdmin(_) => {
                ApiError::BadRequest { status: StatusCode::CONFLICT, code: "last_admin", message: e.to_string() }
            }
            AccountError::NotFound(name) => ApiError::NotFound(format!("account '{name}'")),
            AccountError::Store(e) => {
                tracing::warn!(error = %e, "the store failed on an account change");
                ApiError::Unavailable("the store cannot be reached; nothing was changed")
            }
        }
    }
}

fn store_error(e: voting::store::StoreError) -> ApiError {
    AccountError::Store(e).into()
}

/// Every account of the production team, by name.
#[utoipa::path(
    get, path = "/api/admin/accounts", tag = "accounts",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "The accounts", body = [AccountView]),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
    )
)]
pub async fn list_accounts(
    _admin: AdminUser,
    State(state): State<AppState>,
) -> Result<Json<Vec<AccountView>>, ApiError> {
    let all = state.store.list_accounts().await.map_err(store_error)?;
    Ok(Json(all.iter().map(AccountView::from).collect()))
}

/// Creates an account.
#[utoipa::path(
    post, path = "/api/admin/accounts", tag = "accounts",
    security(("session" = [], "csrf" = []), ("bearer" = [])),
    request_body = NewAccount,
    responses(
        (status = 201, description = "Created", body = AccountView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin, or `csrf_failed`", body = ErrorBody),
        (status = 409, description = "`account_exists`", body = ErrorBody),
        (status = 422, description = "`invalid_name` or `invalid_password` (at least 10 characters)", body = ErrorBody),
    )
)]
pub async fn create_account(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    body: Result<Json<NewAccount>, JsonRejection>,
) -> Result<impl IntoResponse, ApiError> {
    let Json(new) = body?;
    let name = parse_name(&new.name)?;
    let password = parse_password(new.password)?;
    let account = Account {
        name,
        role: new.role,
        password_hash: state.accounts.passwords.hash(password).await?,
        created_at: Utc::now(),
        failed_logins: 0,
        locked_until: None,
    };
    state.store.create_account(&account).await?;
    crate::audit::record(
        &state,
        &admin,
        "account.create",
        account.name.as_str(),
        serde_json::json!({ "role": account.role.as_str() }),
    )
    .await;
    Ok((StatusCode::CREATED, Json(AccountView::from(&account))))
}

/// Changes an account's role or password (a new password ends its sessions).
#[utoipa::path(
    put, path = "/api/admin/accounts/{name}", tag = "accounts",
    security(("session" = [], "csrf" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "The account's name")),
    request_body = AccountChange,
    responses(
        (status = 200, description = "Changed", body = AccountView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin, or `csrf_failed`", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "`last_admin`: the only admin cannot become a producer", body = ErrorBody),
        (status = 422, description = "`invalid_password`", body = ErrorBody),
    )
)]
pub async fn update_account(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Result<Json<AccountChange>, JsonRejection>,
) -> Result<Json<AccountView>, ApiError> {
    let Json(change) = body?;
    let name = parse_name(&name).map_err(|_| ApiError::NotFound(format!("account '{name}'")))?;
    let password = change.password.map(parse_password).transpose()?;
    let password_changed = password.is_some();
    let hash = match password {
        Some(p) => Some(state.accounts.passwords.hash(p).await?),
        None => None,
    };
    let updated = state.store.update_account(&name, change.role, hash).await?;
    // This replica at once; the others when their cache entry ages out.
    state.accounts.sessions.forget_account(name.as_str());
    crate::audit::record(
        &state,
        &admin,
        "account.update",
        name.as_str(),
        serde_json::json!({ "role": change.role.map(Role::as_str), "password_changed": password_changed }),
    )
    .await;
    Ok(Json(AccountView::from(&updated)))
}

/// Deletes an account and ends its sessions.
#[utoipa::path(
    delete, path = "/api/admin/accounts/{name}", tag = "accounts",
    security(("session" = [], "csrf" = []), ("bearer" = [])),
    params(("name" = String, Path, description = "The account's name")),
    responses(
        (status = 204, description = "Deleted; its sessions have ended"),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin, or `csrf_failed`", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "`last_admin`: the only admin cannot be deleted", body = ErrorBody),
    )
)]
pub async fn delete_account(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let name = parse_name(&name).map_err(|_| ApiError::NotFound(format!("account '{name}'")))?;
    state.store.delete_account(&name).await?;
    state.accounts.sessions.forget_account(name.as_str());
    crate::audit::record(&state, &admin, "account.delete", name.as_str(), serde_json::Value::Null).await;
    Ok(StatusCode::NO_CONTENT)
}
