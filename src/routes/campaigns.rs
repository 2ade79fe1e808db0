//! Campaigns (roles marketer and admin): create one from a JSON body or a CSV upload, list,
//! read, pause, resume, cancel.

use std::collections::HashMap;

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use futures_util::{stream, Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Map, Value};

use utoipa_actix_web::service_config::ServiceConfig;

use super::openapi::CommandProblems;
use super::schemas::{CampaignList, CampaignRequest};
use super::{json_body, AppState};
use crate::app::{Audience, CampaignView, ListKind, NewCampaign};
use crate::auth::Client;
use crate::domain::campaign::{Guard, Rollout};
use crate::domain::{
    parse_time, validate_message_object, FieldError, PageId, Psid, Role, Violations,
};
use crate::error::ApiError;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(get_one)
        .service(pause)
        .service(resume)
        .service(cancel);
}

/// Who may touch campaigns.
const CAMPAIGN_ROLES: &[Role] = &[Role::Marketer];

/// The one segment Herald knows.
const MARKETING_OPTED_IN: &str = "marketing_opted_in";

/// `POST /v1/campaigns` with a JSON body, or a `text/csv` body with a `psid` column and the
/// other fields as query parameters (`message`, `rollout` and `guard` as JSON).
#[utoipa::path(
    tag = "campaigns",
    request_body(
        description = "JSON, or `text/csv` with a `psid` column and the other fields as query parameters",
        content(
            (CampaignRequest = "application/json"),
            (String = "text/csv")
        )
    ),
    responses((status = 201, description = "scheduled", body = CampaignView), CommandProblems)
)]
#[post("/campaigns")]
async fn create(
    state: web::Data<AppState>,
    client: Client,
    req: HttpRequest,
    query: web::Query<HashMap<String, String>>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    client.require(CAMPAIGN_ROLES)?;
    let csv = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/csv"));
    let view = if csv {
        let body = CampaignBody::parse(query_as_json(&query)?)?;
        if body.audience.is_some() {
            return Err(invalid(
                "audience",
                "comes from the CSV body, not a parameter",
            ));
        }
        let new = body.into_campaign()?;
        let members = csv_members(payload);
        let audience = Audience::Listed {
            members: Box::pin(members),
            kind: ListKind::Csv,
        };
        state.herald.create_campaign(&client, new, audience).await?
    } else {
        let bytes = payload
            .to_bytes_limited(MAX_JSON_BODY)
            .await
            .map_err(|_| {
                ApiError::TooLarge(
                    "the body is over 16 MiB: upload large audiences as text/csv".into(),
                )
            })?
            .map_err(|e| ApiError::BadRequest(format!("the body could not be read: {e}")))?;
        let mut body = CampaignBody::parse(json_body(&bytes)?)?;
        let audience = body.audience.take();
        let new = body.into_campaign()?;
        match audience {
            Some(AudienceBody { psids: Some(psids), segment: None }) => {
                let members = stream::iter(psids.into_iter().enumerate().map(|(i, p)| {
                    p.as_str()
                        .and_then(|s| Psid::parse(s).ok())
                        .ok_or_else(|| {
                            FieldError::new(format!("audience.psids[{i}]"), "must be a PSID string")
                        })
                }));
                let audience = Audience::Listed {
                    members,
                    kind: ListKind::Json,
                };
                state.herald.create_campaign(&client, new, audience).await?
            }
            Some(AudienceBody { psids: None, segment: Some(segment) }) if segment == MARKETING_OPTED_IN => {
                let audience = Audience::<stream::Empty<Result<Psid, FieldError>>>::MarketingOptedIn;
                state.herald.create_campaign(&client, new, audience).await?
            }
            Some(AudienceBody { psids: None, segment: Some(segment) }) => {
                return Err(invalid(
                    "audience.segment",
                    &format!("unknown segment {segment:?}; the one segment is {MARKETING_OPTED_IN}"),
                ))
            }
            _ => {
                return Err(invalid(
                    "audience",
                    "is required: {\"psids\": [...]} or {\"segment\": \"marketing_opted_in\"}, or upload text/csv",
                ))
            }
        }
    };
    Ok(HttpResponse::Created().json(view))
}

/// A JSON campaign body may list up to about a million PSIDs; larger audiences go as CSV.
const MAX_JSON_BODY: usize = 16 * 1024 * 1024;

/// Every campaign with its counts.
#[utoipa::path(tag = "campaigns", responses((status = 200, body = CampaignList), CommandProblems))]
#[get("/campaigns")]
async fn list(state: web::Data<AppState>, client: Client) -> Result<HttpResponse, ApiError> {
    client.require(CAMPAIGN_ROLES)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"campaigns": state.herald.campaigns().await?})))
}

/// A campaign: status and counts.
#[utoipa::path(tag = "campaigns", params(("id" = String, Path, description = "cmp_…")), responses((status = 200, body = CampaignView), CommandProblems))]
#[get("/campaigns/{id}")]
async fn get_one(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    client.require(CAMPAIGN_ROLES)?;
    Ok(HttpResponse::Ok().json(state.herald.campaign(&id).await?))
}

#[utoipa::path(tag = "campaigns", params(("id" = String, Path, description = "cmp_…")), responses((status = 200, body = CampaignView), CommandProblems))]
#[post("/campaigns/{id}/pause")]
async fn pause(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    client.require(CAMPAIGN_ROLES)?;
    Ok(HttpResponse::Ok().json(state.herald.pause_campaign(&client, &id).await?))
}

#[utoipa::path(tag = "campaigns", params(("id" = String, Path, description = "cmp_…")), responses((status = 200, body = CampaignView), CommandProblems))]
#[post("/campaigns/{id}/resume")]
async fn resume(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    client.require(CAMPAIGN_ROLES)?;
    Ok(HttpResponse::Ok().json(state.herald.resume_campaign(&client, &id).await?))
}

#[utoipa::path(tag = "campaigns", params(("id" = String, Path, description = "cmp_…")), responses((status = 200, body = CampaignView), CommandProblems))]
#[post("/campaigns/{id}/cancel")]
async fn cancel(
    state: web::Data<AppState>,
    client: Client,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    client.require(CAMPAIGN_ROLES)?;
    Ok(HttpResponse::Ok().json(state.herald.cancel_campaign(&client, &id).await?))
}

fn invalid(field: &str, message: &str) -> ApiError {
    ApiError::Invalid(vec![FieldError::new(field, message)])
}

/// The campaign body as sent; each field is checked in [`CampaignBody::into_campaign`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignBody {
    name: String,
    page_id: Option<String>,
    message: Value,
    audience: Option<AudienceBody>,
    send_at: Option<Value>,
    rate_per_second: Option<u32>,
    respect_quiet_hours: Option<bool>,
    rollout: Option<RolloutBody>,
    guard: Option<GuardBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AudienceBody {
    psids: Option<Vec<Value>>,
    segment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RolloutBody {
    first_percent: u8,
    /// How long to wait after the first part, e.g. `"2h"`.
    hold: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GuardBody {
    max_opt_out_percent: f64,
    min_sends: u64,
}

impl CampaignBody {
    /// Reads the body's shape; a field of the wrong type or an unknown one is named.
    fn parse(value: Value) -> Result<CampaignBody, ApiError> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let field = e.path().to_string();
            invalid(&field, &e.into_inner().to_string())
        })
    }

    /// Checks every field and names each bad one.
    fn into_campaign(self) -> Result<NewCampaign, ApiError> {
        let mut v = Violations::default();
        let name = self.name.trim().to_owned();
        if name.is_empty() || name.chars().count() > 200 {
            v.push("name", "must be 1 to 200 characters");
        }
        let page_id = self
            .page_id
            .as_deref()
            .and_then(|p| match PageId::parse(p) {
                Ok(id) => Some(id),
                Err(e) => {
                    v.push("page_id", e);
                    None
                }
            });
        validate_message_object(&self.message, "message", &mut v);
        let send_at = self
            .send_at
            .as_ref()
            .and_then(|s| parse_time(s, "send_at", &mut v));
        let rollout = self.rollout.and_then(|r| {
            if !(1..=99).contains(&r.first_percent) {
                v.push("rollout.first_percent", "must be from 1 to 99");
            }
            match humantime::parse_duration(&r.hold) {
                Ok(hold) => Some(Rollout {
                    first_percent: r.first_percent,
                    hold_seconds: i64::try_from(hold.as_secs()).unwrap_or(i64::MAX),
                }),
                Err(_) => {
                    v.push(
                        "rollout.hold",
                        "must be a duration such as \"2h\" or \"30m\"",
                    );
                    None
                }
            }
        });
        let guard = self.guard.map(|g| {
            if !(0.0..=100.0).contains(&g.max_opt_out_percent) {
                v.push("guard.max_opt_out_percent", "must be from 0 to 100");
            }
            if g.min_sends == 0 {
                v.push("guard.min_sends", "must be at least 1");
            }
            Guard {
                max_opt_out_percent: g.max_opt_out_percent,
                min_sends: g.min_sends,
            }
        });
        if !v.is_empty() {
            return Err(ApiError::Invalid(v.into_inner()));
        }
        Ok(NewCampaign {
            name,
            page_id,
            message: self.message,
            send_at,
            rate_per_second: self.rate_per_second,
            respect_quiet_hours: self.respect_quiet_hours.unwrap_or(true),
            rollout,
            guard,
        })
    }
}

/// A CSV upload's fields come as query parameters: the JSON ones (`message`, `rollout`,
/// `guard`) as JSON text, numbers and booleans as text.
fn query_as_json(query: &HashMap<String, String>) -> Result<Value, ApiError> {
    let mut body = Map::new();
    for (key, text) in query {
        let value = match key.as_str() {
            "message" | "rollout" | "guard" => serde_json::from_str(text)
                .map_err(|e| invalid(key, &format!("must be JSON: {e}")))?,
            "rate_per_second" => text
                .parse::<u32>()
                .map(Value::from)
                .map_err(|_| invalid(key, "must be a whole number"))?,
            "respect_quiet_hours" => text
                .parse::<bool>()
                .map(Value::from)
                .map_err(|_| invalid(key, "must be true or false"))?,
            _ => Value::String(text.clone()),
        };
        body.insert(key.clone(), value);
    }
    Ok(Value::Object(body))
}

/// The PSIDs of a CSV upload as they arrive, line by line: the first line names the columns
/// (one of them `psid`); a line that is malformed or holds no PSID is an error naming it.
fn csv_members(payload: web::Payload) -> impl Stream<Item = Result<Psid, FieldError>> {
    let reader = CsvLines {
        payload,
        buffer: Vec::new(),
        start: 0,
        line: 0,
        psid_column: None,
        blank_since: None,
        done: false,
        failed: false,
    };
    stream::unfold(reader, |mut reader| async move {
        let item = reader.next().await?;
        Some((item, reader))
    })
}

/// Reads a CSV body line by line from the request's stream, keeping one partial line in memory.
struct CsvLines {
    payload: web::Payload,
    buffer: Vec<u8>,
    /// Where the unread part of `buffer` starts.
    start: usize,
    /// The number of the last line read (the header is line 1).
    line: u64,
    psid_column: Option<usize>,
    /// A blank line, allowed only at the end.
    blank_since: Option<u64>,
    /// The body has been read to its end.
    done: bool,
    /// A line was refused: the stream ends there.
    failed: bool,
}

impl CsvLines {
    async fn next(&mut self) -> Option<Result<Psid, FieldError>> {
        if self.failed {
            return None;
        }
        loop {
            let text = match self.next_line().await {
                Ok(Some(text)) => text,
                Ok(None) => return None,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            };
            self.line += 1;
            let place = format!("line {}", self.line);
            if text.trim().is_empty() {
                self.blank_since.get_or_insert(self.line);
                continue;
            }
            if let Some(blank) = self.blank_since {
                self.failed = true;
                return Some(Err(FieldError::new(format!("line {blank}"), "is empty")));
            }
            let fields = match parse_csv_line(&text) {
                Ok(fields) => fields,
                Err(e) => {
                    self.failed = true;
                    return Some(Err(FieldError::new(place, e)));
                }
            };
            let Some(column) = self.psid_column else {
                match fields
                    .iter()
                    .position(|f| f.trim().eq_ignore_ascii_case("psid"))
                {
                    Some(i) => self.psid_column = Some(i),
                    None => {
                        self.failed = true;
                        return Some(Err(FieldError::new(place, "the header has no psid column")));
                    }
                }
                continue;
            };
            let psid = fields.get(column).map(|f| f.trim()).unwrap_or_default();
            return Some(Psid::parse(psid).map_err(|e| {
                self.failed = true;
                FieldError::new(place, e)
            }));
        }
    }

    /// The next line of text, without its line break; `None` at the end.
    async fn next_line(&mut self) -> Result<Option<String>, FieldError> {
        loop {
            if let Some(at) = self.buffer[self.start..].iter().position(|b| *b == b'\n') {
                let end = self.start + at;
                let line = self.buffer[self.start..end].to_vec();
                self.start = end + 1;
                return utf8(line, self.line + 1).map(Some);
            }
            if self.done {
                if self.start == self.buffer.len() {
                    return Ok(None);
                }
                let line = self.buffer[self.start..].to_vec();
                self.start = self.buffer.len();
                return utf8(line, self.line + 1).map(Some);
            }
            if self.buffer.len() - self.start > MAX_CSV_LINE {
                self.done = true;
                return Err(FieldError::new(
                    format!("line {}", self.line + 1),
                    "is longer than 64 KiB",
                ));
            }
            // What was read is gone from the buffer before more is read: memory holds a chunk
            // and a partial line, whatever the size of the upload.
            self.buffer.drain(..self.start);
            self.start = 0;
            match self.payload.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    self.done = true;
                    return Err(FieldError::new("body", format!("could not be read: {e}")));
                }
                None => self.done = true,
            }
        }
    }
}

/// The longest CSV line Herald reads.
const MAX_CSV_LINE: usize = 64 * 1024;

fn utf8(mut line: Vec<u8>, number: u64) -> Result<String, FieldError> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    String::from_utf8(line).map_err(|_| FieldError::new(format!("line {number}"), "is not UTF-8"))
}

/// One CSV line's fields, with CSV's quoting (a quoted field may hold commas and quotes).
fn parse_csv_line(text: &str) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes());
    match reader.records().next() {
        Some(Ok(record)) => Ok(record.iter().map(str::to_owned).collect()),
        Some(Err(e)) => Err(format!("is not valid CSV: {e}")),
        None => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_keep_quoted_commas_together() {
        assert_eq!(
            parse_csv_line(r#"4242,"Lovelace, Ada""#).expect("csv"),
            ["4242", "Lovelace, Ada"]
        );
        assert!(
            parse_csv_line(r#"4242,"unclosed"#).is_ok(),
            "csv reads to the end of the line"
        );
    }
}
