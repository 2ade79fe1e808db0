//! Prometheus metrics (`GET /metrics`), through the `prometheus` crate: the registry belongs to
//! one application (no global registry, so two gateways in one test process do not mix their
//! counts).
//!
//! Counters are bumped where things happen (routes, the core, the worker); gauges that describe
//! stored state (outbox depth, the oldest due message, campaign progress) are read from the
//! store when scraped, so they cannot drift from it.

use prometheus::core::Collector;
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric Herald exports.
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route pattern (`/v1/messages/{id}`, never the raw path), method and
    /// status.
    pub http_requests: IntCounterVec,
    /// HTTP request latency by route pattern.
    pub http_seconds: HistogramVec,
    /// Policy decisions by outcome and reason (accepts, evaluations and send-time decisions).
    pub decisions: IntCounterVec,
    /// Delivery attempts by result (`sent`, `retry`, `failed`, `expired`) and Graph error code
    /// (`none` when Graph answered no error code).
    pub deliveries: IntCounterVec,
    /// Attempts that will be tried again.
    pub retries: IntCounter,
    /// Times the worker waited for a page's send rate.
    pub pacing_waits: IntCounter,
    /// Pages whose Graph API has failed for `[fallback] outage_after` (their breaker is open),
    /// as this instance last saw them.
    pub pages_out: IntGauge,
    /// Webhook events by type (`message`, `postback`, `delivery`, `read`, `optin`, …).
    pub webhook_events: IntCounterVec,
    /// Background tasks restarted after a panic, by task (`worker`, `campaigns`, …).
    pub task_restarts: IntCounterVec,
    /// Webhook events ignored, by type and reason (`unknown_page`: not a page of
    /// `[messenger.pages]`).
    pub webhook_ignored: IntCounterVec,
    /// Moments webhook events reported out of their sane range (and bounded), by field.
    pub webhook_moments_out_of_range: IntCounterVec,
    /// Events delivered, by endpoint.
    pub event_delivered: IntCounterVec,
    /// Events whose every attempt failed (no retry left), by endpoint.
    pub event_failed: IntCounterVec,
    outbox_depth: IntGauge,
    oldest_due_age: Gauge,
    campaign_messages: IntGaugeVec,
    event_retrying: IntGaugeVec,
    event_oldest_undelivered: GaugeVec,
}

/// Buckets for request and store latencies: 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The options of a latency histogram named `name`.
pub fn latency_opts(name: &str, help: &str) -> HistogramOpts {
    HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())
}

/// What the store says about itself when scraped.
pub struct StoredState {
    pub outbox_depth: u64,
    /// How long the earliest outbox entry has been due (0 when none is overdue).
    pub oldest_due_seconds: f64,
    /// `(campaign id, state, count)` for each campaign still running or paused.
    pub campaigns: Vec<(String, &'static str, u64)>,
    /// `(endpoint id, deliveries waiting for a retry, age of the oldest event not delivered
    /// in seconds)` for each enabled event endpoint.
    pub endpoints: Vec<(String, u64, f64)>,
}

impl Metrics {
    /// A registry with every metric, plus `extra` collectors (the store's latencies). Fails
    /// only on a mistake in this file (a bad or repeated name), which the tests would show.
    // Long on purpose: one entry per metric, its name and help beside its field, then one
    // registration per metric; split, the list would be harder to check against the fields.
    pub fn new(extra: Vec<Box<dyn Collector>>) -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();
        let metrics = Metrics {
            http_requests: IntCounterVec::new(
                Opts::new(
                    "herald_http_requests_total",
                    "HTTP requests by route, method and status",
                ),
                &["route", "method", "status"],
            )?,
            http_seconds: HistogramVec::new(
                latency_opts(
                    "herald_http_request_duration_seconds",
                    "HTTP request latency",
                ),
                &["route"],
            )?,
            decisions: IntCounterVec::new(
                Opts::new(
                    "herald_decisions_total",
                    "policy decisions by outcome and reason",
                ),
                &["outcome", "reason"],
            )?,
            deliveries: IntCounterVec::new(
                Opts::new(
                    "herald_deliveries_total",
                    "delivery attempts by result and Graph error code",
                ),
                &["result", "graph_code"],
            )?,
            retries: IntCounter::new(
                "herald_delivery_retries_total",
                "attempts that will be tried again",
            )?,
            pacing_waits: IntCounter::new(
                "herald_pacing_waits_total",
                "times a send waited for its page's send rate",
            )?,
            pages_out: IntGauge::new(
                "herald_pages_out",
                "pages whose Graph API has failed for outage_after: their circuit breaker is open",
            )?,
            webhook_events: IntCounterVec::new(
                Opts::new(
                    "herald_webhook_events_total",
                    "Messenger webhook events by type",
                ),
                &["type"],
            )?,
            task_restarts: IntCounterVec::new(
                Opts::new(
                    "herald_task_restarts_total",
                    "background tasks restarted after a panic, by task",
                ),
                &["task"],
            )?,
            webhook_ignored: IntCounterVec::new(
                Opts::new(
                    "herald_webhook_events_ignored_total",
                    "Messenger webhook events ignored, by type and reason",
                ),
                &["type", "reason"],
            )?,
            webhook_moments_out_of_range: IntCounterVec::new(
                Opts::new(
                    "herald_webhook_moments_out_of_range_total",
                    "moments webhook events reported out of their sane range, by field",
                ),
                &["field"],
            )?,
            outbox_depth: IntGauge::new("herald_outbox_depth", "messages waiting in the outbox")?,
            oldest_due_age: Gauge::new(
                "herald_outbox_oldest_due_age_seconds",
                "how long the earliest outbox entry has been due (0: nothing overdue)",
            )?,
            campaign_messages: IntGaugeVec::new(
                Opts::new(
                    "herald_campaign_messages",
                    "messages of running and paused campaigns by state",
                ),
                &["campaign", "state"],
            )?,
            event_delivered: IntCounterVec::new(
                Opts::new(
                    "herald_event_endpoint_delivered_total",
                    "events delivered, by endpoint",
                ),
                &["endpoint"],
            )?,
            event_failed: IntCounterVec::new(
                Opts::new(
                    "herald_event_endpoint_failed_total",
                    "events whose every attempt failed, by endpoint",
                ),
                &["endpoint"],
            )?,
            event_retrying: IntGaugeVec::new(
                Opts::new(
                    "herald_event_endpoint_retrying",
                    "event deliveries waiting for their retry, by endpoint",
                ),
                &["endpoint"],
            )?,
            event_oldest_undelivered: GaugeVec::new(
                Opts::new(
                    "herald_event_endpoint_oldest_undelivered_age_seconds",
                    "age of the oldest event not yet delivered, by endpoint (0: none)",
                ),
                &["endpoint"],
            )?,
            registry,
        };
        let own: Vec<Box<dyn Collector>> = vec![
            Box::new(metrics.http_requests.clone()),
            Box::new(metrics.http_seconds.clone()),
            Box::new(metrics.decisions.clone()),
            Box::new(metrics.deliveries.clone()),
            Box::new(metrics.retries.clone()),
            Box::new(metrics.pacing_waits.clone()),
            Box::new(metrics.pages_out.clone()),
            Box::new(metrics.webhook_events.clone()),
            Box::new(metrics.task_restarts.clone()),
            Box::new(metrics.webhook_ignored.clone()),
            Box::new(metrics.webhook_moments_out_of_range.clone()),
            Box::new(metrics.outbox_depth.clone()),
            Box::new(metrics.oldest_due_age.clone()),
            Box::new(metrics.campaign_messages.clone()),
            Box::new(metrics.event_delivered.clone()),
            Box::new(metrics.event_failed.clone()),
            Box::new(metrics.event_retrying.clone()),
            Box::new(metrics.event_oldest_undelivered.clone()),
        ];
        for collector in own.into_iter().chain(extra) {
            metrics.registry.register(collector)?;
        }
        Ok(metrics)
    }

    /// Counts one decision.
    pub fn decision(&self, outcome: &str, reason: &str) {
        self.decisions.with_label_values(&[outcome, reason]).inc();
    }

    /// Counts one delivery attempt's end.
    pub fn delivery(&self, result: &str, graph_code: Option<i64>) {
        let code = graph_code.map_or_else(|| "none".to_owned(), |c| c.to_string());
        self.deliveries.with_label_values(&[result, &code]).inc();
    }

    /// The text exposition of every metric, with the stored state as of now.
    pub fn render(&self, state: &StoredState) -> Result<String, prometheus::Error> {
        self.outbox_depth
            .set(i64::try_from(state.outbox_depth).unwrap_or(i64::MAX));
        self.oldest_due_age.set(state.oldest_due_seconds);
        // Campaigns that ended leave the gauge rather than stay at their last values forever.
        self.campaign_messages.reset();
        for (campaign, label, n) in &state.campaigns {
            self.campaign_messages
                .with_label_values(&[campaign.as_str(), label])
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
        // Endpoints deleted or disabled leave the gauges too.
        self.event_retrying.reset();
        self.event_oldest_undelivered.reset();
        for (endpoint, retrying, oldest) in &state.endpoints {
            self.event_retrying
                .with_label_values(&[endpoint.as_str()])
                .set(i64::try_from(*retrying).unwrap_or(i64::MAX));
            self.event_oldest_undelivered
                .with_label_values(&[endpoint.as_str()])
                .set(*oldest);
        }
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        String::from_utf8(out).map_err(|e| prometheus::Error::Msg(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_is_exported_once_touched() {
        let m = Metrics::new(Vec::new()).expect("metrics");
        m.decision("allow", "ok");
        m.delivery("failed", Some(551));
        m.webhook_events.with_label_values(&["message"]).inc();
        m.webhook_ignored
            .with_label_values(&["message", "unknown_page"])
            .inc();
        m.webhook_moments_out_of_range
            .with_label_values(&["timestamp"])
            .inc();
        m.http_requests
            .with_label_values(&["/v1/messages", "POST", "202"])
            .inc();
        m.http_seconds
            .with_label_values(&["/v1/messages"])
            .observe(0.01);
        let text = m
            .render(&StoredState {
                outbox_depth: 3,
                oldest_due_seconds: 1.5,
                campaigns: vec![("cmp_1".into(), "pending", 7)],
                endpoints: vec![("ep_1".into(), 2, 7.5)],
            })
            .expect("render");
        for line in [
            r#"herald_decisions_total{outcome="allow",reason="ok"} 1"#,
            r#"herald_deliveries_total{graph_code="551",result="failed"} 1"#,
            r#"herald_webhook_events_total{type="message"} 1"#,
            r#"herald_webhook_events_ignored_total{reason="unknown_page",type="message"} 1"#,
            r#"herald_webhook_moments_out_of_range_total{field="timestamp"} 1"#,
            r#"herald_http_requests_total{method="POST",route="/v1/messages",status="202"} 1"#,
            "herald_outbox_depth 3",
            "herald_outbox_oldest_due_age_seconds 1.5",
            r#"herald_campaign_messages{campaign="cmp_1",state="pending"} 7"#,
            r#"herald_event_endpoint_retrying{endpoint="ep_1"} 2"#,
            r#"herald_event_endpoint_oldest_undelivered_age_seconds{endpoint="ep_1"} 7.5"#,
            "herald_delivery_retries_total 0",
            "herald_pacing_waits_total 0",
            "herald_pages_out 0",
        ] {
            assert!(text.contains(line), "{line} in:\n{text}");
        }
    }
}
