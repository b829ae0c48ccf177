//! Exports of a paredão's counts, as CSV or JSON: the totals, per hour or per minute. From the
//! frozen final result once there is one, else from the live counters. The per-hour CSV of the
//! frozen result is the byte string its digest is computed over (`voting::final_results`).

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use voting::final_results::{ExportRow, Granularity, ResultSeries, csv_lines, granularity_header, timestamp};

use super::{NamedParedao, ReadRefusals};
use crate::admission::ReadSlot;
use crate::error::{ApiError, ErrorBody};
use crate::identity::Producer;
use crate::state::AppState;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv` (default) or `json`.
    pub format: Option<String>,
    /// `total` (default), `hour` or `minute`.
    pub granularity: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Csv,
    Json,
}

/// The paredão's counts as a file: `text/csv; charset=utf-8` or `application/json`, with
/// `Content-Disposition: attachment; filename="paredao-<id>-<granularity>.<csv|json>"`, streamed.
/// CSV columns: `participant,votes` (total), `hour,participant,votes`, `minute,participant,votes`;
/// JSON: `{paredao_id, granularity, final, digest, rows: [{hour|minute, participant, votes}]}`.
/// Once the paredão is final, the per-hour CSV hashes (SHA-256) to its digest.
#[utoipa::path(
    get, path = "/api/paredoes/{paredao_id}/export", tag = "results",
    security(("session" = []), ("bearer" = [])),
    params(("paredao_id" = String, Path, description = "The paredão id, or `current`"), ExportQuery),
    responses(
        (status = 200, description = "The export", content(
            (String = "text/csv; charset=utf-8"),
            (serde_json::Value = "application/json"),
        )),
        (status = 401, description = "Not signed in as a member of the production team", body = ErrorBody),
        (status = 422, description = "`invalid_export`: an unknown format or granularity", body = ErrorBody),
        ReadRefusals,
    )
)]
pub async fn export(
    _who: Producer,
    _slot: ReadSlot,
    State(state): State<AppState>,
    NamedParedao(paredao): NamedParedao,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| invalid(e.body_text()))?;
    let format = match query.format.as_deref().unwrap_or("csv") {
        "csv" => Format::Csv,
        "json" => Format::Json,
        other => return Err(invalid(format!("format must be csv or json, not '{other}'"))),
    };
    let granularity_name = query.granularity.as_deref().unwrap_or("total");
    let granularity = Granularity::parse(granularity_name)
        .ok_or_else(|| invalid(format!("granularity must be total, hour or minute, not '{granularity_name}'")))?;

    let frozen = super::final_result::load_final(&state, &paredao).await?;
    let (series, digest) = match &frozen {
        Some(result) => (result.series(), Some(result.digest.clone())),
        None => {
            let by_minute = if granularity == Granularity::Minute {
                state.store.load_minutes_of(&paredao.id).await.map_err(|e| {
                    tracing::warn!(error = %e, paredao = %paredao.id, "could not read the minute counters");
                    ApiError::Unavailable("the store cannot be read right now")
                })?
            } else {
                Default::default()
            };
            let snapshot = state.results.snapshot();
            (ResultSeries::live(&paredao, snapshot.counts.get(&paredao.id), by_minute), None)
        }
    };
    let rows = series.rows(granularity);
    let (content_type, extension, chunks): (_, _, Box<dyn Iterator<Item = String> + Send>) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv", Box::new(csv_lines(granularity_header(granularity), rows))),
        Format::Json => {
            let head = serde_json::json!({
                "paredao_id": paredao.id,
                "granularity": granularity.as_str(),
                "final": frozen.is_some(),
                "digest": digest,
            })
            .to_string();
            // `{…head fields…,"rows":[` then one row per chunk, then `]}`.
            let open = format!("{},\"rows\":[", head.trim_end_matches('}'));
            let body = rows.into_iter().enumerate().map(move |(i, r)| {
                let row = json_row(granularity, &r);
                if i == 0 { row } else { format!(",{row}") }
            });
            (
                "application/json",
                "json",
                Box::new(std::iter::once(open).chain(body).chain(std::iter::once("]}".into()))),
            )
        }
    };
    let filename = format!("paredao-{}-{}.{extension}", paredao.id, granularity.as_str());
    let stream = futures::stream::iter(chunks.map(|c| Ok::<_, Infallible>(Bytes::from(c))));
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // The id is a slug: nothing in the name needs quoting or escaping.
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(response)
}

fn json_row(granularity: Granularity, r: &ExportRow) -> String {
    let mut row = serde_json::Map::new();
    if let Some(at) = r.period {
        let key = if granularity == Granularity::Minute { "minute" } else { "hour" };
        row.insert(key.into(), timestamp(at).into());
    }
    row.insert("participant".into(), r.participant.as_str().into());
    row.insert("votes".into(), r.votes.into());
    serde_json::Value::Object(row).to_string()
}

fn invalid(message: String) -> ApiError {
    ApiError::BadRequest { status: StatusCode::UNPROCESSABLE_ENTITY, code: "invalid_export", message }
}
