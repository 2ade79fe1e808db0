//! The events feed (roles admin and compliance; backend: the events of its own messages).

use actix_web::{get, web, HttpResponse};
use serde::Deserialize;

use utoipa_actix_web::service_config::ServiceConfig;

use super::openapi::CommandProblems;
use super::AppState;
use crate::app::{FeedPage, FeedQuery, FeedStart, FEED_DEFAULT_LIMIT, FEED_MAX_LIMIT};
use crate::auth::Client;
use crate::domain::event::TypeFilter;
use crate::domain::{Role, Violations};
use crate::error::ApiError;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(get_events);
}

/// Who reads the feed (admin always may); what a backend sees is narrowed by the core.
const FEED_ROLES: &[Role] = &[Role::Compliance, Role::Backend];

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Event types, comma-separated: exact (`message.sent`), a family (`message.*`) or `*`.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    kind: Option<String>,
    /// A PSID: only the events about this person.
    recipient: Option<String>,
    /// A page's `next_cursor`; `end` for an empty page whose cursor is the end of the log now
    /// (to follow only what happens from now on); absent: from the oldest event kept.
    after: Option<String>,
    /// From 1 to 1000 events a page (default 100).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
}

impl EventsQuery {
    fn command(&self) -> Result<FeedQuery, ApiError> {
        let mut v = Violations::default();
        let types = self.kind.as_deref().and_then(|text| {
            let patterns = text
                .split(',')
                .map(|p| p.trim().to_owned())
                .filter(|p| !p.is_empty())
                .collect();
            TypeFilter::parse(patterns)
                .map_err(|e| v.push("type", e))
                .ok()
        });
        let limit = match self.limit.as_deref() {
            None => FEED_DEFAULT_LIMIT,
            Some(text) => match text.trim().parse::<usize>() {
                Ok(n) if (1..=FEED_MAX_LIMIT).contains(&n) => n,
                _ => {
                    v.push(
                        "limit",
                        format!("must be a whole number from 1 to {FEED_MAX_LIMIT}"),
                    );
                    FEED_DEFAULT_LIMIT
                }
            },
        };
        let recipient = self.recipient.as_deref().map(str::trim);
        if recipient.is_some_and(str::is_empty) {
            v.push("recipient", "must be a PSID");
        }
        if !v.is_empty() {
            return Err(ApiError::Invalid(v.into_inner()));
        }
        let start = match self.after.as_deref() {
            None => FeedStart::Beginning,
            Some("end") => FeedStart::End,
            Some(cursor) => FeedStart::Cursor(cursor.to_owned()),
        };
        Ok(FeedQuery {
            types,
            recipient: recipient.map(str::to_owned),
            start,
            limit,
        })
    }
}

/// Events, oldest first, a page at a time: the same events event endpoints are sent, to pull.
#[utoipa::path(
    tag = "events",
    params(EventsQuery),
    responses((status = 200, description = "`{\"events\": [...], \"next_cursor\"}`; an empty page is the end for now", body = FeedPage), CommandProblems)
)]
#[get("/events")]
async fn get_events(
    state: web::Data<AppState>,
    client: Client,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    client.require(FEED_ROLES)?;
    let page = state.herald.events_feed(&client, &query.command()?).await?;
    Ok(HttpResponse::Ok().json(page))
}
