//! The production team runs the paredões: create, edit, open now, close now, and the list.
//! Changes need the admin role, reads any member of the team.
//!
//! The rules, checked in the store's schedule transaction (`voting::paredao_store`) against the
//! paredão as stored at that moment:
//! - at most one paredão is open at a time: no two windows share a moment (409 `paredao_overlap`);
//! - title, schedule and results visibility may change until it closes; the participants (and
//!   their photos) only while it is scheduled (409 `participants_locked` once it has opened);
//! - an open paredão keeps its opening; "open now" needs a closing still ahead (else 422).
//!
//! The replica that made a change serves it at once; the others on their next reload of the
//! paredões (`application.paredoes_refresh_ms`, 500 ms by default).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use voting::paredao::{
    Paredao, ParedaoId, ParedaoSpec, ParedaoState, Participant, ParticipantId, ResultsVisibility, slug_from,
};
use voting::paredao_store::ChangeError;

use super::paredao::ParedaoView;
use crate::error::{ApiError, ErrorBody};
use crate::identity::{AdminUser, Producer};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewParedao {
    /// The paredão's id in URLs (lowercase letters, digits, `-`, `_`); derived from the title
    /// when absent ("5º Paredão" → `5o-paredao`).
    #[schema(example = "5o-paredao")]
    pub id: Option<String>,
    #[schema(example = "5º Paredão")]
    pub title: String,
    /// Two or more.
    pub participants: Vec<NewParticipant>,
    pub opens_at: DateTime<Utc>,
    /// When the vote ends. Must be in the future.
    pub closes_at: DateTime<Utc>,
    #[serde(default)]
    pub results_visibility: ResultsVisibility,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NewParticipant {
    /// Derived from the name when absent ("Fábio Luz" → `fabio-luz`).
    #[schema(example = "fabio-luz")]
    pub id: Option<String>,
    #[schema(example = "Fábio Luz")]
    pub name: String,
}

/// The fields to change; those absent stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ParedaoEdit {
    pub title: Option<String>,
    /// Only while the paredão is scheduled. A participant keeping its id keeps its photo.
    pub participants: Option<Vec<NewParticipant>>,
    pub opens_at: Option<DateTime<Utc>>,
    pub closes_at: Option<DateTime<Utc>>,
    pub results_visibility: Option<ResultsVisibility>,
}

pub(crate) fn refused(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::BadRequest { status, code, message: message.into() }
}

fn invalid(message: impl Into<String>) -> ApiError {
    refused(StatusCode::UNPROCESSABLE_ENTITY, "invalid_paredao", message)
}

/// What the store's answer means for the client.
pub(crate) fn from_change(id: &str, e: ChangeError<ApiError>) -> ApiError {
    match e {
        ChangeError::NotFound => ApiError::UnknownParedao(id.to_string()),
        ChangeError::AlreadyExists => {
            refused(StatusCode::CONFLICT, "paredao_exists", format!("a paredão with id '{id}' exists already"))
        }
        ChangeError::Overlap(other) => refused(
            StatusCode::CONFLICT,
            "paredao_overlap",
            format!("its window overlaps paredão '{other}': at most one paredão may be open at a time"),
        ),
        ChangeError::Refused(e) => e,
        ChangeError::Store(e) => {
            tracing::warn!(error = %e, paredao = id, "changing a paredão failed in the store");
            ApiError::Unavailable("the store cannot be written right now; nothing was changed, try again")
        }
    }
}

fn participants_from(given: Vec<NewParticipant>, keep: &[Participant]) -> Result<Vec<Participant>, ApiError> {
    given
        .into_iter()
        .map(|p| {
            let raw = match p.id {
                Some(id) => id,
                None => slug_from(&p.name)
                    .ok_or_else(|| invalid(format!("no id can be made from the name '{}'; give one", p.name)))?,
            };
            let id = ParticipantId::parse(raw).map_err(|e| invalid(e.to_string()))?;
            let photo_url = keep.iter().find(|k| k.id == id).and_then(|k| k.photo_url.clone());
            Ok(Participant { id, name: p.name.trim().to_string(), photo_url })
        })
        .collect()
}

fn checked(spec: ParedaoSpec) -> Result<Paredao, ApiError> {
    Paredao::new(spec).map_err(|e| invalid(e.to_string()))
}

fn schedule_ahead(closes_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), ApiError> {
    if closes_at <= now {
        return Err(refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_schedule",
            "the closing must be in the future (to end the vote now, close it)",
        ));
    }
    Ok(())
}

/// Every paredão, the newest opening first, with its state now.
#[utoipa::path(
    get, path = "/api/admin/paredoes", tag = "paredao-admin",
    security(("session" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "Every paredão, the newest opening first", body = [ParedaoView]),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody),
    )
)]
pub async fn list_paredoes(_who: Producer, State(state): State<AppState>) -> Result<Json<Vec<ParedaoView>>, ApiError> {
    let mut all = state.store.load_paredoes().await.map_err(|e| {
        tracing::warn!(error = %e, "listing the paredões failed");
        ApiError::Unavailable("the store cannot be read right now")
    })?;
    all.sort_by_key(|p| std::cmp::Reverse(p.opens_at));
    Ok(Json(all.iter().map(ParedaoView::from).collect()))
}

/// One paredão as stored now.
#[utoipa::path(
    get, path = "/api/admin/paredoes/{paredao_id}", tag = "paredao-admin",
    security(("session" = []), ("bearer" = [])),
    params(("paredao_id" = String, Path, description = "The paredão id")),
    responses(
        (status = 200, description = "The paredão", body = ParedaoView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such paredão", body = ErrorBody),
        (status = 503, description = "The store cannot be read", body = ErrorBody),
    )
)]
pub async fn get_paredao(
    _who: Producer,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ParedaoView>, ApiError> {
    let parsed = ParedaoId::parse(id.as_str()).map_err(|_| ApiError::UnknownParedao(id.clone()))?;
    let found = state.store.load_paredao(&parsed).await.map_err(|e| {
        tracing::warn!(error = %e, "reading a paredão failed");
        ApiError::Unavailable("the store cannot be read right now")
    })?;
    found.map(|p| Json(ParedaoView::from(&p))).ok_or(ApiError::UnknownParedao(id))
}

/// Creates a paredão, scheduled (or open at once if its opening has passed).
#[utoipa::path(
    post, path = "/api/admin/paredoes", tag = "paredao-admin",
    security(("session" = [], "csrf" = []), ("bearer" = [])),
    request_body = NewParedao,
    responses(
        (status = 201, description = "Created", body = ParedaoView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Needs the admin role (or a CSRF token)", body = ErrorBody),
        (status = 409, description = "`paredao_exists`: the id is taken; `paredao_overlap`: its window overlaps another paredão's (named)", body = ErrorBody),
        (status = 422, description = "`invalid_paredao`: fewer than two participants, duplicate ids, a missing title or name, a bad id, closing before opening; `invalid_schedule`: the closing has passed", body = ErrorBody),
        (status = 503, description = "The store cannot be written; nothing was created", body = ErrorBody),
    )
)]
pub async fn create_paredao(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    body: Result<Json<NewParedao>, JsonRejection>,
) -> Result<(StatusCode, Json<ParedaoView>), ApiError> {
    let Json(request) = body?;
    let raw_id = match request.id {
        Some(id) => id,
        None => slug_from(&request.title).ok_or_else(|| invalid("no id can be made from the title; give one"))?,
    };
    let id = ParedaoId::parse(raw_id).map_err(|e| invalid(e.to_string()))?;
    schedule_ahead(request.closes_at, Utc::now())?;
    let paredao = checked(ParedaoSpec {
        id: id.clone(),
        title: request.title.trim().to_string(),
        participants: participants_from(request.participants, &[])?,
        opens_at: request.opens_at,
        closes_at: request.closes_at,
        results_visibility: request.results_visibility,
    })?;
    let created = state.store.create_paredao(&paredao).await.map_err(|e| from_change(id.as_str(), e))?;
    state.paredoes.put(created.clone());
    crate::audit::record(&state, &admin, "paredao.create", id.as_str(), json!(created)).await;
    Ok((StatusCode::CREATED, Json(ParedaoView::from(&created))))
}

/// Changes a paredão: title, schedule and results visibility until it closes; participants
/// only while it is scheduled.
#[utoipa::path(
    put, path = "/api/admin/paredoes/{paredao_id}", tag = "paredao-admin",
    security(("session" = [], "csrf" = []), ("bearer" = [])),
    params(("paredao_id" = String, Path, description = "The paredão id")),
    request_body = ParedaoEdit,
    responses(
        (status = 200, description = "Changed", body = ParedaoView),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Needs the admin role (or a CSRF token)", body = ErrorBody),
        (status = 404, description = "No such paredão", body = ErrorBody),
        (status = 409, description = "`participants_locked`: it has opened; `paredao_already_open`: an open paredão keeps its opening; \
            `paredao_already_closed`: a closed paredão does not change; `paredao_overlap`: the new window overlaps another paredão's", body = ErrorBody),
        (status = 422, description = "`invalid_paredao` or `invalid_schedule` (the closing has passed)", body = ErrorBody),
        (status = 503, description = "The store cannot be written; nothing was changed", body = ErrorBody),
    )
)]
pub async fn update_paredao(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<ParedaoEdit>, JsonRejection>,
) -> Result<Json<ParedaoView>, ApiError> {
    let Json(edit) = body?;
    let parsed = ParedaoId::parse(id.as_str()).map_err(|_| ApiError::UnknownParedao(id.clone()))?;
    let changed = state
        .store
        .change_paredao(&parsed, |current, now| {
            let phase = current.state_at(now);
            if phase == ParedaoState::Closed {
                return Err(refused(
                    StatusCode::CONFLICT,
                    "paredao_already_closed",
                    "a closed paredão does not change",
                ));
            }
            let mut spec = current.to_spec();
            if let Some(title) = &edit.title {
                spec.title = title.trim().to_string();
            }
            if let Some(participants) = &edit.participants {
                if phase != ParedaoState::Scheduled {
                    return Err(refused(
                        StatusCode::CONFLICT,
                        "participants_locked",
                        "the participants cannot change once the paredão has opened",
                    ));
                }
                let given = participants.iter().map(|p| NewParticipant { id: p.id.clone(), name: p.name.clone() });
                spec.participants = participants_from(given.collect(), &current.participants)?;
            }
            if let Some(opens_at) = edit.opens_at
                && opens_at != current.opens_at
            {
                if phase == ParedaoState::Open {
                    return Err(refused(
                        StatusCode::CONFLICT,
                        "paredao_already_open",
                        "an open paredão keeps its opening; close it to end the vote",
                    ));
                }
                spec.opens_at = opens_at;
            }
            if let Some(closes_at) = edit.closes_at {
                spec.closes_at = closes_at;
            }
            if let Some(visibility) = edit.results_visibility {
                spec.results_visibility = visibility;
            }
            schedule_ahead(spec.closes_at, now)?;
            checked(spec)
        })
        .await
        .map_err(|e| from_change(&id, e))?;
    state.paredoes.put(changed.clone());
    crate::audit::record(&state, &admin, "paredao.update", &id, json!(changed)).await;
    Ok(Json(ParedaoView::from(&changed)))
}

/// Opens a scheduled paredão now (its opening becomes now; its closing stays).
#[utoipa::path(
    post, path = "/api/admin/paredoes/{paredao_id}/open", tag = "paredao-admin",
    security(("session" = [], "csrf" = []), ("bearer" = [])),
    params(("paredao_id" = String, Path, description = "The paredão id")),
    responses(
        (status = 200, description = "Open; every replica takes votes within a second", body = ParedaoView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Needs the admin role (or a CSRF token)", body = ErrorBody),
        (status = 404, description = "No such paredão", body = ErrorBody),
        (status = 409, description = "`paredao_not_scheduled`: it is open or closed already; `paredao_overlap`: another paredão's window covers now", body = ErrorBody),
        (status = 422, description = "`invalid_schedule`: its closing is not in the future; move it first", body = ErrorBody),
        (status = 503, description = "The store cannot be written; nothing was changed", body = ErrorBody),
    )
)]
pub async fn open_paredao(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ParedaoView>, ApiError> {
    let parsed = ParedaoId::parse(id.as_str()).map_err(|_| ApiError::UnknownParedao(id.clone()))?;
    let opened = state
        .store
        .change_paredao(&parsed, |current, now| {
            let phase = current.state_at(now);
            if phase != ParedaoState::Scheduled {
                return Err(refused(
                    StatusCode::CONFLICT,
                    "paredao_not_scheduled",
                    format!("paredão '{}' is {}: only a scheduled one can be opened", current.id, phase.as_str()),
                ));
            }
            schedule_ahead(current.closes_at, now)?;
            let mut spec = current.to_spec();
            spec.opens_at = now;
            checked(spec)
        })
        .await
        .map_err(|e| from_change(&id, e))?;
    state.paredoes.put(opened.clone());
    crate::audit::record(
        &state,
        &admin,
        "paredao.open",
        &id,
        json!({ "opens_at": opened.opens_at, "closes_at": opened.closes_at }),
    )
    .await;
    Ok(Json(ParedaoView::from(&opened)))
}

/// Closes an open paredão now: its closing becomes now, and votes after it are refused (410).
/// Votes already accepted are still counted.
#[utoipa::path(
    post, path = "/api/admin/paredoes/{paredao_id}/close", tag = "paredao-admin",
    security(("session" = [], "csrf" = []), ("bearer" = [])),
    params(("paredao_id" = String, Path, description = "The paredão id")),
    responses(
        (status = 200, description = "Closed; every replica refuses votes within a second", body = ParedaoView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Needs the admin role (or a CSRF token)", body = ErrorBody),
        (status = 404, description = "No such paredão", body = ErrorBody),
        (status = 409, description = "`paredao_not_open`: only an open paredão can be closed", body = ErrorBody),
        (status = 503, description = "The store cannot be written; nothing was changed", body = ErrorBody),
    )
)]
pub async fn close_paredao(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ParedaoView>, ApiError> {
    let parsed = ParedaoId::parse(id.as_str()).map_err(|_| ApiError::UnknownParedao(id.clone()))?;
    let closed = state
        .store
        .change_paredao(&parsed, |current, now| {
            let phase = current.state_at(now);
            if phase != ParedaoState::Open {
                return Err(ApiError::ParedaoNotOpen { paredao: current.id.to_string(), state: phase });
            }
            let mut spec = current.to_spec();
            spec.closes_at = now;
            checked(spec)
        })
        .await
        .map_err(|e| from_change(&id, e))?;
    state.paredoes.put(closed.clone());
    crate::audit::record(&state, &admin, "paredao.close", &id, json!({ "closes_at": closed.closes_at })).await;
    Ok(Json(ParedaoView::from(&closed)))
}

/// Sets a participant's photo, while the paredão is scheduled. The body is the picture itself
/// (`image/jpeg`, `image/png` or `image/webp`, at most `uploads.max_photo_bytes`, 5 MiB by
/// default); it is decoded, shrunk to at most 600 px a side and stored re-encoded as JPEG, and
/// the participant's `photo_url` becomes `/fotos/<paredao>/<participant>-<hash>.jpg`.
#[utoipa::path(
    put, path = "/api/admin/paredoes/{paredao_id}/participants/{participant_id}/photo", tag = "paredao-admin",
    security(("session" = [], "csrf" = []), ("bearer" = [])),
    params(
        ("paredao_id" = String, Path, description = "The paredão id"),
        ("participant_id" = String, Path, description = "The participant id"),
    ),
    request_body(content = Vec<u8>, description = "The picture", content_type = "image/jpeg, image/png, image/webp"),
    responses(
        (status = 200, description = "Stored; the paredão with the participant's new `photo_url`", body = ParedaoView),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Needs the admin role (or a CSRF token)", body = ErrorBody),
        (status = 404, description = "No such paredão or participant", body = ErrorBody),
        (status = 409, description = "`participants_locked`: the paredão has opened", body = ErrorBody),
        (status = 413, description = "`photo_too_large`: over the size limit", body = ErrorBody),
        (status = 415, description = "`unsupported_image`: not JPEG, PNG or WebP", body = ErrorBody),
        (status = 422, description = "`invalid_image`: the bytes are not a picture of the type sent, or one too large to decode", body = ErrorBody),
        (status = 503, description = "The store cannot be written or the photo stored", body = ErrorBody),
    )
)]
pub async fn put_photo(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    Path((id, participant)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<ParedaoView>, ApiError> {
    use crate::photos::{self, PhotoError};

    let max = state.uploads.max_photo_bytes;
    let too_large =
        || refused(StatusCode::PAYLOAD_TOO_LARGE, "photo_too_large", format!("a photo may have at most {} bytes", max));
    let paredao_id = ParedaoId::parse(id.as_str()).map_err(|_| ApiError::UnknownParedao(id.clone()))?;
    let participant_id = ParticipantId::parse(participant.as_str())
        .map_err(|_| ApiError::NotFound(format!("participant '{participant}' of paredão '{id}'")))?;
    let content_type = headers.get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let unsupported = |e: PhotoError| refused(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_image", e.to_string());
    let format = photos::format_of(content_type).map_err(unsupported)?;
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            refused(e.status(), "bad_request", e.body_text())
        }
    })?;
    if bytes.len() > max {
        return Err(too_large());
    }
    // Fail before the work when the paredão cannot take a photo now (checked again when written).
    let current = state
        .store
        .load_paredao(&paredao_id)
        .await
        .map_err(|_| ApiError::Unavailable("the store cannot be read right now"))?
        .ok_or_else(|| ApiError::UnknownParedao(id.clone()))?;
    locked_unless_scheduled(&current, Utc::now())?;
    if current.participant(participant_id.as_str()).is_none() {
        return Err(ApiError::NotFound(format!("participant '{participant}' of paredão '{id}'")));
    }

    let jpeg = tokio::task::spawn_blocking(move || photos::reencode(&bytes, format))
        .await
        .map_err(|e| ApiError::Unexpected(anyhow::anyhow!("decoding a photo panicked: {e}")))?
        .map_err(|e| refused(StatusCode::UNPROCESSABLE_ENTITY, "invalid_image", e.to_string()))?;
    let (path, url) = photos::store(&state.uploads.dir, &paredao_id, &participant_id, &jpeg).await.map_err(|e| {
        tracing::error!(error = %e, dir = %state.uploads.dir.display(), "storing a photo failed");
        ApiError::Unavailable("the photo could not be stored; try again")
    })?;
    let changed = state
        .store
        .change_paredao(&paredao_id, |current, now| {
            locked_unless_scheduled(current, now)?;
            let mut spec = current.to_spec();
            let Some(p) = spec.participants.iter_mut().find(|p| p.id == participant_id) else {
                return Err(ApiError::NotFound(format!("participant '{participant_id}' of paredão '{paredao_id}'")));
            };
            p.photo_url = Some(url.clone());
            checked(spec)
        })
        .await;
    let changed = match changed {
        Ok(p) => p,
        Err(e) => {
            // Nobody points at it: don't leave it behind (unless an identical photo is in use).
            let _ = tokio::fs::remove_file(&path).await;
            return Err(from_change(&id, e));
        }
    };
    state.paredoes.put(changed.clone());
    crate::audit::record(
        &state,
        &admin,
        "participant.photo",
        &format!("{id}/{participant}"),
        json!({ "photo_url": url, "bytes": jpeg.len() }),
    )
    .await;
    Ok(Json(ParedaoView::from(&changed)))
}

fn locked_unless_scheduled(p: &Paredao, now: DateTime<Utc>) -> Result<(), ApiError> {
    if p.state_at(now) != ParedaoState::Scheduled {
        return Err(refused(
            StatusCode::CONFLICT,
            "participants_locked",
            "the participants and their photos cannot change once the paredão has opened",
        ));
    }
    Ok(())
}
