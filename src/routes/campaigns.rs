//! Campaigns (roles marketer and admin): create one from a JSON body or a CSV upload, list,
//! read, pause, resume, cancel.

use std::collections::HashMap;

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::{stream, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;

use super::openapi::CommandProblems;
use super::{json_body, AppState};
use crate::app::{Audience, CampaignView, ListKind, NewCampaign};
use crate::auth::Client;
use crate::domain::campaign::{Guard, Rollout};
use crate::domain::{
    bounds, parse_time, validate_message_object, FieldError, PageId, Psid, Role, Violations,
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
            (CampaignBody = "application/json"),
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
        let new = body.into_campaign(state.herald.clock.now())?;
        let members = csv_members(payload);
        let audience = Audience::Listed {
            members: Box::pin(members),
            kind: ListKind::Csv,
        };
        state.herald.create_campaign(&client, new, audience).await?
    } else {
        // Refused before the body is read: an upload of the wrong type costs nothing.
        super::json::require_json(&req)?;
        let bytes = payload
            .to_bytes_limited(MAX_JSON_BODY)
            .await
            .map_err(|_| {
                ApiError::TooLarge(
                    "the body is over 16 MiB: upload large audiences as text/csv".into(),
                )
            })?
            .map_err(|e| ApiError::BadRequest(format!("the body could not be read: {e}")))?;
        let mut body = CampaignBody::parse(json_body(&req, &bytes)?)?;
        let audience = body.audience.take();
        let new = body.into_campaign(state.herald.clock.now())?;
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

/// `GET /v1/campaigns`.
#[derive(Serialize, ToSchema)]
struct CampaignList {
    campaigns: Vec<CampaignView>,
}

/// Every campaign with its counts.
#[utoipa::path(tag = "campaigns", responses((status = 200, body = CampaignList), CommandProblems))]
#[get("/campaigns")]
async fn list(state: web::Data<AppState>, client: Client) -> Result<HttpResponse, ApiError> {
    client.require(CAMPAIGN_ROLES)?;
    let campaigns = state.herald.campaigns().await?;
    Ok(HttpResponse::Ok().json(CampaignList { campaigns }))
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

/// `POST /v1/campaigns` as JSON. As `text/csv` (a `psid` column), the other fields are query
/// parameters.
// Read by serde (the first bad field is named), then each field is checked in
// `CampaignBody::into_campaign`. The document has always called these `…Request`; serde's
// messages name the Rust types.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CampaignRequest)]
struct CampaignBody {
    name: String,
    page_id: Option<String>,
    #[schema(value_type = Object)]
    message: Value,
    // Required in a JSON body; a CSV upload's comes from the body instead.
    #[schema(value_type = AudienceBody)]
    audience: Option<AudienceBody>,
    /// At most 365 days ahead.
    #[schema(value_type = Option<DateTime<Utc>>)]
    send_at: Option<Value>,
    /// 1 to 300 (Messenger's page limit), and at most the page's `[send_rate] per_page`.
    rate_per_second: Option<u32>,
    /// Default true.
    respect_quiet_hours: Option<bool>,
    rollout: Option<RolloutBody>,
    guard: Option<GuardBody>,
}

/// A campaign's audience: listed PSIDs, or a segment (`marketing_opted_in`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = AudienceRequest)]
struct AudienceBody {
    #[schema(value_type = Option<Vec<String>>)]
    psids: Option<Vec<Value>>,
    segment: Option<String>,
}

/// `rollout`: send to `first_percent` first, then wait `hold` (e.g. `"2h"`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RolloutRequest)]
struct RolloutBody {
    /// 1 to 99.
    // Read wider than it may be, so that 150 is refused in Herald's words, not serde's.
    #[schema(value_type = u8)]
    first_percent: u32,
    /// At most 30 days.
    hold: String,
}

/// `guard`: pause once `min_sends` have gone if opt-outs exceed `max_opt_out_percent`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = GuardRequest)]
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

    /// Checks every field and names each bad one; dates are bounded from `now`.
    fn into_campaign(self, now: DateTime<Utc>) -> Result<NewCampaign, ApiError> {
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
        if let Some(Err(e)) = send_at.map(|at| bounds::check_send_at(at, now)) {
            v.push("send_at", e);
        }
        if let Some(Err(e)) = self
            .rate_per_second
            .map(|rate| bounds::check_range(rate, &bounds::CAMPAIGN_RATE))
        {
            v.push("rate_per_second", e);
        }
        let rollout = self.rollout.and_then(|r| r.read(&mut v));
        let guard = self.guard.map(|g| g.read(&mut v));
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

impl RolloutBody {
    /// The rollout, each bad field named in `v`.
    fn read(self, v: &mut Violations) -> Option<Rollout> {
        let first_percent = match bounds::check_range(self.first_percent, &bounds::FIRST_PERCENT)
            .and_then(|()| u8::try_from(self.first_percent).map_err(|e| e.to_string()))
        {
            Ok(percent) => Some(percent),
            Err(e) => {
                v.push("rollout.first_percent", e);
                None
            }
        };
        let Ok(hold) = humantime::parse_duration(&self.hold) else {
            v.push(
                "rollout.hold",
                "must be a duration such as \"2h\" or \"30m\"",
            );
            return None;
        };
        if let Err(e) = bounds::check_hold(hold) {
            v.push("rollout.hold", e);
        }
        Some(Rollout {
            first_percent: first_percent?,
            hold_seconds: i64::try_from(hold.as_secs()).unwrap_or(i64::MAX),
        })
    }
}

impl GuardBody {
    /// The guard, each bad field named in `v`.
    fn read(self, v: &mut Violations) -> Guard {
        if !(0.0..=100.0).contains(&self.max_opt_out_percent) {
            v.push("guard.max_opt_out_percent", "must be from 0 to 100");
        }
        if self.min_sends == 0 {
            v.push("guard.min_sends", "must be at least 1");
        }
        Guard {
            max_opt_out_percent: self.max_opt_out_percent,
            min_sends: self.min_sends,
        }
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

/// The PSIDs of a CSV upload as they arrive, record by record: the first record names the
/// columns (one of them `psid`); a record that is malformed or holds no PSID is an error naming
/// the line it starts on. The `csv` crate reads each record, so quoted fields may hold commas,
/// quotes and line breaks, and lines may end in LF, CRLF or a lone CR.
fn csv_members(payload: web::Payload) -> impl Stream<Item = Result<Psid, FieldError>> {
    let reader = CsvRecords {
        payload,
        buffer: Vec::new(),
        start: 0,
        line: 1,
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

/// Reads a CSV body record by record from the request's stream, keeping at most one partial
/// record in memory.
struct CsvRecords {
    payload: web::Payload,
    buffer: Vec<u8>,
    /// Where the unread part of `buffer` starts.
    start: usize,
    /// The line the next record starts on (the header is line 1).
    line: u64,
    psid_column: Option<usize>,
    /// A blank line, allowed only at the end.
    blank_since: Option<u64>,
    /// The body has been read to its end.
    done: bool,
    /// A record was refused: the stream ends there.
    failed: bool,
}

impl CsvRecords {
    async fn next(&mut self) -> Option<Result<Psid, FieldError>> {
        if self.failed {
            return None;
        }
        let item = self.next_psid().await;
        if matches!(item, Some(Err(_))) {
            self.failed = true;
        }
        item
    }

    async fn next_psid(&mut self) -> Option<Result<Psid, FieldError>> {
        loop {
            let (fields, line) = match self.next_record().await {
                Ok(Some(record)) => record,
                Ok(None) => return None,
                Err(e) => return Some(Err(e)),
            };
            let place = format!("line {line}");
            if fields.iter().all(|f| f.trim().is_empty()) {
                self.blank_since.get_or_insert(line);
                continue;
            }
            if let Some(blank) = self.blank_since {
                return Some(Err(FieldError::new(format!("line {blank}"), "is empty")));
            }
            let Some(column) = self.psid_column else {
                match fields
                    .iter()
                    // A spreadsheet's "CSV UTF-8" starts with a byte order mark.
                    .position(|f| {
                        f.trim_start_matches('\u{feff}')
                            .trim()
                            .eq_ignore_ascii_case("psid")
                    }) {
                    Some(i) => self.psid_column = Some(i),
                    None => {
                        return Some(Err(FieldError::new(place, "the header has no psid column")))
                    }
                }
                continue;
            };
            let psid = fields.get(column).map(|f| f.trim()).unwrap_or_default();
            return Some(Psid::parse(psid).map_err(|e| FieldError::new(place, e)));
        }
    }

    /// The next record's fields (none for a blank line) and the line it starts on; `None` at
    /// the end.
    async fn next_record(&mut self) -> Result<Option<(Vec<String>, u64)>, FieldError> {
        loop {
            let line = self.line;
            let unread = &self.buffer[self.start..];
            if let Some((consumed, fields)) = next_record(unread, self.done)
                .map_err(|e| FieldError::new(format!("line {line}"), e))?
            {
                self.line += line_ends(&unread[..consumed]);
                self.start += consumed;
                return Ok(Some((fields, line)));
            }
            if self.done {
                return Ok(None);
            }
            if unread.len() > MAX_CSV_RECORD {
                self.done = true;
                return Err(FieldError::new(
                    format!("line {line}"),
                    "starts a record longer than 64 KiB",
                ));
            }
            // What was read is gone from the buffer before more is read: memory holds a chunk
            // and a partial record, whatever the size of the upload.
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

/// The longest CSV record Herald reads.
const MAX_CSV_RECORD: usize = 64 * 1024;

/// The first record of `unread` and how many bytes it took with its line end, or `None` when
/// more input is needed (or, at the `end` of the body, there is none). A blank line is a record
/// with no fields: the `csv` crate would skip it, and Herald refuses one before the last record.
/// A record is taken only once something follows it: the next chunk could still extend it.
fn next_record(unread: &[u8], end: bool) -> Result<Option<(usize, Vec<String>)>, String> {
    let blank = match unread {
        [b'\r', b'\n', ..] => Some(2),
        [b'\r'] if !end => return Ok(None),
        [b'\n' | b'\r', ..] => Some(1),
        [] => return Ok(None),
        _ => None,
    };
    if let Some(consumed) = blank {
        return Ok(Some((consumed, Vec::new())));
    }
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(unread);
    let mut record = csv::ByteRecord::new();
    match reader.read_byte_record(&mut record) {
        Ok(true) => {}
        Ok(false) => return Ok(None),
        Err(e) => return Err(format!("is not valid CSV: {e}")),
    }
    let mut consumed = usize::try_from(reader.position().byte()).unwrap_or(usize::MAX);
    if consumed >= unread.len() && !end {
        return Ok(None);
    }
    consumed = consumed.min(unread.len());
    if unread[..consumed].ends_with(b"\r") && unread.get(consumed) == Some(&b'\n') {
        consumed += 1;
    }
    let fields = record
        .iter()
        .map(|f| String::from_utf8(f.to_vec()).map_err(|_| "is not UTF-8".to_owned()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some((consumed, fields)))
}

/// How many lines `text` ends: LF, CRLF and a lone CR each end one.
fn line_ends(text: &[u8]) -> u64 {
    let mut ends = 0;
    let mut bytes = text.iter().peekable();
    while let Some(b) = bytes.next() {
        match b {
            b'\n' => ends += 1,
            b'\r' if bytes.peek() != Some(&&b'\n') => ends += 1,
            _ => {}
        }
    }
    ends
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every record of `text` read as the stream reads it, one chunk of `chunk` bytes at a
    /// time: the fields and the line each starts on.
    fn records(text: &str, chunk: usize) -> Vec<(u64, Vec<String>)> {
        let bytes = text.as_bytes();
        let (mut out, mut start, mut line, mut have) = (Vec::new(), 0, 1, 0);
        loop {
            let end = have >= bytes.len();
            match next_record(&bytes[start..have.min(bytes.len())], end).expect("csv") {
                Some((consumed, fields)) => {
                    out.push((line, fields));
                    line += line_ends(&bytes[start..start + consumed]);
                    start += consumed;
                }
                None if end => return out,
                None => have += chunk,
            }
        }
    }

    fn fields(row: &[&str]) -> Vec<String> {
        row.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn records_keep_quoted_commas_quotes_and_line_breaks_in_any_chunking() {
        let text =
            "psid,name\r\n4242,\"Lovelace, Ada\"\r4243,\"two\nlines \"\"quoted\"\"\"\n4244,x";
        let expected = vec![
            (1, fields(&["psid", "name"])),
            (2, fields(&["4242", "Lovelace, Ada"])),
            (3, fields(&["4243", "two\nlines \"quoted\""])),
            (5, fields(&["4244", "x"])),
        ];
        for chunk in [1, 2, 3, 7, 64] {
            assert_eq!(records(text, chunk), expected, "in chunks of {chunk}");
        }
    }

    #[test]
    fn blank_lines_are_records_without_fields() {
        let got = records("psid\r\n\r\n\n\r9701\n", 1);
        let lines: Vec<(u64, usize)> = got.iter().map(|(l, f)| (*l, f.len())).collect();
        assert_eq!(lines, [(1, 1), (2, 0), (3, 0), (4, 0), (5, 1)]);
    }
}
