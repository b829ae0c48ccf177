use std::time::Instant;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use voting::paredao::{ParedaoId, ParedaoState, ParticipantId};
use voting::vote::Vote;

use super::find_paredao;
use crate::admission::VoteSlot;
use crate::anti_bot::altcha::ChallengeView;
use crate::client::Client;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
pub struct VoteRequest {
    /// The participant voted for (to leave the house).
    #[schema(example = "ana")]
    pub participant_id: String,
    /// Proof that a person cast this vote: the solved ALTCHA challenge, as the widget sends it
    /// (base64 of its JSON payload). Each challenge buys one vote.
    #[serde(default)]
    pub captcha: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VoteAccepted {
    pub paredao_id: ParedaoId,
    pub participant_id: ParticipantId,
    /// Always `accepted`: the vote is durable in the queue and will be counted.
    #[schema(example = "accepted")]
    pub status: &'static str,
    /// The challenge for the next vote, so that voting again costs one request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_challenge: Option<ChallengeView>,
}

/// Casts one vote. Answered 202 only once the vote is durable in the message queue. On any 5xx
/// the same vote may be sent again with the same solved challenge: it is counted at most once.
#[utoipa::path(
    post, path = "/api/paredoes/{paredao_id}/votes", tag = "votes",
    params(("paredao_id" = String, Path, description = "The paredão id, or `current`")),
    request_body = VoteRequest,
    responses(
        (status = 202, description = "Vote accepted and durable", body = VoteAccepted),
        (status = 400, description = "Malformed JSON, or the captcha solution is missing or malformed", body = ErrorBody),
        (status = 403, description = "The captcha solution is forged, expired, for another paredão, or already used", body = ErrorBody),
        (status = 404, description = "No such paredão", body = ErrorBody),
        (status = 409, description = "`paredao_not_open`: the paredão has not opened yet", body = ErrorBody),
        (status = 410, description = "`paredao_closed`: the paredão has closed; the vote has ended", body = ErrorBody),
        (status = 413, description = "Body too large", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "Unknown participant or missing field", body = ErrorBody),
        (status = 429, description = "Too many votes from this client; see Retry-After", body = ErrorBody),
        (status = 503, description = "`overloaded`: refused at once because the replica holds as many votes as it may; \
            the request was not read, nothing was counted and the captcha was not used, so the same vote may be sent again \
            after Retry-After. `vote_not_durable`: the broker did not confirm the vote in time, is away, or is blocked by a \
            resource alarm; the vote may or may not be counted, and sending it again after Retry-After with the same solved \
            challenge is safe: the challenge was released, and the store counts each challenge at most once", body = ErrorBody),
    )
)]
pub async fn cast_vote(
    _slot: VoteSlot,
    State(state): State<AppState>,
    Path(paredao_id): Path<String>,
    client: Client,
    body: Result<Json<VoteRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<VoteAccepted>), ApiError> {
    let outcome = accept(&state, &paredao_id, &client, body).await;
    // Accepted votes are counted by the batcher when the broker confirms them.
    if let Err(e) = &outcome {
        metrics::counter!("paredao_votes_rejected_total", "reason" => e.code()).increment(1);
    }
    outcome
}

async fn accept(
    state: &AppState,
    paredao_id: &str,
    client: &Client,
    body: Result<Json<VoteRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<VoteAccepted>), ApiError> {
    // First, before any work: a flood is refused at the cost of one map lookup.
    state.rate_limiter.check(&client.address, Instant::now()).map_err(ApiError::RateLimited)?;
    // Recorded into the request's span, so the access log line says what was voted.
    tracing::Span::current().record("paredao", paredao_id);
    // The deliberate error path, before the captcha is spent: the viewer's retry still works.
    if state.fault.strikes() {
        return Err(ApiError::InjectedFault);
    }
    // A broker in a resource alarm takes no messages: say so now rather than after the captcha
    // is spent and the publish has waited.
    if state.broker.is_blocked() {
        return Err(ApiError::NotDurable(crate::batcher::PublishError::BrokerBlocked));
    }
    let Json(request) = body?;
    tracing::Span::current().record("participant", request.participant_id.as_str());
    let paredao = find_paredao(state, paredao_id)?;
    let now = Utc::now();
    match paredao.state_at(now) {
        ParedaoState::Open => {}
        ParedaoState::Closed => return Err(ApiError::ParedaoClosed(paredao.id.to_string())),
        other => return Err(ApiError::ParedaoNotOpen { paredao: paredao.id.to_string(), state: other }),
    }
    let participant = paredao.participant(&request.participant_id).ok_or_else(|| ApiError::UnknownParticipant {
        paredao: paredao.id.to_string(),
        participant: request.participant_id.clone(),
    })?;
    let spent = state.anti_bot.check(&paredao.id, request.captcha.as_deref(), Some(client.ip)).await?;

    let mut vote = Vote::new(paredao.id.clone(), participant.id.clone(), now);
    if let Some(spend) = &spent {
        vote = vote.spending(spend.id(), spend.expires_at());
    }
    // Should this fail (a 503) or the client leave first, `spent` drops and releases the
    // challenge: the same solved challenge may be sent again, and the store counts it once.
    state.batcher.submit(vote).await.map_err(ApiError::NotDurable)?;
    if let Some(spend) = spent {
        spend.keep();
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(VoteAccepted {
            paredao_id: paredao.id.clone(),
            participant_id: participant.id.clone(),
            status: "accepted",
            next_challenge: state.anti_bot.challenge(&paredao.id, client),
        }),
    ))
}
