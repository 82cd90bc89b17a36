//! The context a plugin's requests run in, and their `served` lines.
//!
//! Every request to a plugin runs inside that plugin's `request` span, made once when the
//! routes are built: it carries `plugin=<name>`, so the plugin's own lines name it and a
//! `[log] level` directive naming the plugin applies to them. The request's number is
//! not a field of that span but the request context of the thread that polls the
//! request ([`RequestSpan::run`]), and the line format shows it as the span's `id`. A
//! span per request would cost, on every request, an entry in tracing-subscriber's
//! registry, its fields rendered into an allocated string, and their release; this
//! costs an enter and an exit.
//!
//! A request's `served` line is written straight to the log writer, in the format an
//! event would have, when the framework's own subscriber is installed; otherwise it is
//! an ordinary event. Either way it is filtered as an event at `info` from
//! `kneedeep::server` inside the plugin's span.
//!
//! A task that a handler spawns is outside the request: its lines carry the plugin when
//! it is instrumented with the current span, but not the request's number.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tracing::{Metadata, Span};

use super::format::{self, Style};

/// The target the `served` lines are filtered and written under.
pub(super) const SERVED_TARGET: &str = "kneedeep::server";

thread_local! {
    /// The number of the request being polled on this thread; 0 when none is.
    static CURRENT_REQUEST: Cell<u64> = const { Cell::new(0) };
}

/// The number of the request this thread is polling, if any.
pub(super) fn current_request() -> Option<u64> {
    Some(CURRENT_REQUEST.get()).filter(|id| *id != 0)
}

/// Whether a span is one made by [`RequestSpan::new`], whose lines show the request's
/// number.
pub(super) fn is_request_span(metadata: &Metadata<'_>) -> bool {
    metadata.name() == "request" && metadata.target() == module_path!()
}

/// The span every request to one plugin runs in.
pub(crate) struct RequestSpan {
    span: Span,
    /// Its fields as text lines and as JSON lines show them, rendered once.
    text_fields: String,
    json_fields: String,
}

/// What a request's `served` line says besides its plugin.
pub(crate) struct Served<'a> {
    pub(crate) id: u64,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) status: u16,
    pub(crate) latency_us: u64,
}

impl RequestSpan {
    /// Makes the span of `plugin`'s requests. Make it after the subscriber is installed:
    /// a span made before that stays disabled.
    pub(crate) fn new(plugin: &'static str) -> RequestSpan {
        RequestSpan {
            span: tracing::info_span!("request", plugin),
            text_fields: format::plugin_span_fields(Style::Text, plugin),
            json_fields: format::plugin_span_fields(Style::Json, plugin),
        }
    }

    /// Runs `future` as request `id` (never 0): inside this span, with `id` as the
    /// request context of whichever thread polls it.
    pub(crate) fn run<F: Future>(&self, id: u64, future: F) -> InRequest<'_, F> {
        InRequest {
            span: &self.span,
            id,
            future,
        }
    }

    /// Logs that a request was answered; call it from inside [`RequestSpan::run`], where
    /// the filter sees the plugin's span.
    pub(crate) fn served(&self, served: &Served<'_>) {
        if !tracing::enabled!(target: SERVED_TARGET, tracing::Level::INFO) {
            return;
        }
        let written = super::write_direct(|style, line| {
            let span_fields = match style {
                Style::Text => &self.text_fields,
                Style::Json => &self.json_fields,
            };
            format::served_line(line, style, span_fields, served)
        });
        if written {
            return;
        }
        tracing::info!(
            target: SERVED_TARGET,
            method = served.method,
            path = served.path,
            status = served.status,
            latency_us = served.latency_us,
            "served"
        );
    }
}

pin_project_lite::pin_project! {
    /// A request's future, polled inside its plugin's span and with its number as the
    /// thread's request context.
    pub(crate) struct InRequest<'a, F> {
        span: &'a Span,
        id: u64,
        #[pin]
        future: F,
    }
}

impl<F: Future> Future for InRequest<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let _context = RequestContext::enter(*this.id);
        this.future.poll(context)
    }
}

/// The thread's request context while a request is polled; the one before it comes back
/// when this is dropped, also when the poll panics.
struct RequestContext {
    outer: u64,
}

impl RequestContext {
    fn enter(id: u64) -> RequestContext {
        RequestContext {
            outer: CURRENT_REQUEST.replace(id),
        }
    }
}

impl Drop for RequestContext {
    fn drop(&mut self) {
        CURRENT_REQUEST.set(self.outer);
    }
}

#[cfg(test)]
mod tests {
    use futures_util::FutureExt;

    use super::*;
    use crate::logging::format::tests::lines_of;

    /// A line without its timestamp, which differs from line to line.
    fn untimed(style: Style, line: &str) -> String {
        match style {
            Style::Text => line.split_once(' ').unwrap().1.to_owned(),
            Style::Json => {
                let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
                value["timestamp"] = serde_json::Value::Null;
                value.to_string()
            }
        }
    }

    const SERVED: Served<'static> = Served {
        id: 7,
        method: "POST",
        path: "/plugins/notes/api/a \"quoted\" note",
        status: 201,
        latency_us: 1234,
    };

    #[test]
    fn the_served_line_written_directly_reads_as_the_event() {
        for style in [Style::Text, Style::Json] {
            let through_subscriber = lines_of(style, || {
                let span = RequestSpan::new("notes");
                span.run(SERVED.id, async { span.served(&SERVED) })
                    .now_or_never()
                    .unwrap();
            });

            let mut direct = String::new();
            let fields = format::plugin_span_fields(style, "notes");
            format::served_line(&mut direct, style, &fields, &SERVED).unwrap();

            assert_eq!(
                through_subscriber.lines().count(),
                1,
                "{through_subscriber}"
            );
            assert!(
                direct.ends_with('\n') && direct.lines().count() == 1,
                "{direct}"
            );
            assert_eq!(
                untimed(style, direct.trim_end()),
                untimed(style, through_subscriber.trim_end()),
                "{style:?}"
            );
        }
    }

    #[test]
    fn lines_inside_a_request_carry_its_plugin_and_number() {
        let text = lines_of(Style::Json, || {
            let span = RequestSpan::new("notes");
            span.run(41, async { tracing::info!("inside") })
                .now_or_never()
                .unwrap();
            span.run(42, async { tracing::info!("next") })
                .now_or_never()
                .unwrap();
            tracing::info!("outside");
        });
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();

        assert_eq!(lines[0]["span"]["plugin"], "notes");
        assert_eq!(lines[0]["span"]["id"], 41);
        assert_eq!(lines[1]["span"]["id"], 42);
        assert!(lines[2].get("span").is_none(), "{}", lines[2]);
        assert_eq!(current_request(), None);
    }
}
