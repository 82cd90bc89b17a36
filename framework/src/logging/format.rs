//! How a log line is written, as text or as JSON: one pass over the event's fields into
//! the line, the span's fields spliced in as they were rendered when the span opened,
//! and the timestamp's date and time of day rendered once a second.
//!
//! This replaces tracing-subscriber's own formats on the request path, where they cost
//! as much as the rest of the framework's work per request: they paint colours that are
//! then turned off, escape every value through a guard, and the JSON one parses each
//! span's fields back from JSON for every event.
//!
//! Text: `2026-12-04T10:10:20.865817Z  INFO request{plugin="hello" id=7}: kneedeep::server: served status=200`
//!
//! JSON: `{"timestamp":"…","level":"INFO","fields":{"message":"served","status":200},"target":"kneedeep::server","span":{"plugin":"hello","id":7,"name":"request"}}`
//!
//! A plugin's request span shows the id of the request being served beside its fields
//! (see [`super::request`]).

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber, span};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use super::request::{self, SERVED_TARGET, Served};

/// Text lines or JSON lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Style {
    Text,
    Json,
}

/// Renders a span's fields when it opens: `key=value` pairs for text, the members of a
/// JSON object for JSON.
pub(super) struct SpanFields(pub(super) Style);

impl<'writer> FormatFields<'writer> for SpanFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut visitor = FieldWriter::new(self.0, &mut writer, true);
        fields.record(&mut visitor);
        visitor.result
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &span::Record<'_>,
    ) -> fmt::Result {
        let first = current.fields.is_empty();
        let mut visitor = FieldWriter::new(self.0, &mut current.fields, first);
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes whole lines in the given style.
pub(super) struct Lines(pub(super) Style);

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
    N: for<'writer> FormatFields<'writer> + 'static,
{
    fn format_event(
        &self,
        context: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        match self.0 {
            Style::Text => {
                write_timestamp(&mut writer)?;
                writer.write_str(padded_level(metadata.level()))?;
                if let Some(scope) = context.event_scope() {
                    for span in scope.from_root() {
                        write_span::<S, N>(&mut writer, Style::Text, &span)?;
                    }
                    writer.write_char(' ')?;
                }
                write!(writer, "{}: ", metadata.target())?;
                let mut visitor = FieldWriter::new(Style::Text, &mut writer, true);
                event.record(&mut visitor);
                visitor.result?;
            }
            Style::Json => {
                writer.write_str(r#"{"timestamp":""#)?;
                write_timestamp(&mut writer)?;
                write!(writer, r#"","level":"{}","fields":{{"#, metadata.level())?;
                let mut visitor = FieldWriter::new(Style::Json, &mut writer, true);
                event.record(&mut visitor);
                visitor.result?;
                writer.write_str(r#"},"target":"#)?;
                write_json_string(&mut writer, metadata.target())?;
                if let Some(span) = context.lookup_current() {
                    write_span::<S, N>(&mut writer, Style::Json, &span)?;
                }
                writer.write_char('}')?;
            }
        }
        writeln!(writer)
    }
}

/// Writes a span of an event's line in `style`: its name, the fields [`SpanFields`]
/// rendered when it opened, and the request's id if it is a request span.
fn write_span<S, N>(out: &mut dyn fmt::Write, style: Style, span: &SpanRef<'_, S>) -> fmt::Result
where
    S: for<'lookup> LookupSpan<'lookup>,
    N: 'static,
{
    let extensions = span.extensions();
    let fields = extensions
        .get::<FormattedFields<N>>()
        .map_or("", |fields| fields.fields.as_str());
    let request = request_id(span.metadata());
    match style {
        Style::Text => write_text_span(out, span.name(), fields, request),
        Style::Json => write_json_span(out, span.name(), fields, request),
    }
}

/// The number of the request being served, for the span its lines show it in.
fn request_id(span: &Metadata<'_>) -> Option<u64> {
    request::is_request_span(span)
        .then(request::current_request)
        .flatten()
}

/// A span of a text line, `name{fields id=<request>}:`, where `fields` were rendered when
/// it opened.
fn write_text_span(
    out: &mut dyn fmt::Write,
    name: &str,
    fields: &str,
    request: Option<u64>,
) -> fmt::Result {
    out.write_str(name)?;
    if fields.is_empty() && request.is_none() {
        return out.write_char(':');
    }
    out.write_char('{')?;
    out.write_str(fields)?;
    if let Some(id) = request {
        out.write_str(if fields.is_empty() { "id=" } else { " id=" })?;
        out.write_str(itoa::Buffer::new().format(id))?;
    }
    out.write_str("}:")
}

/// The `span` member of a JSON line, `,"span":{fields,"id":<request>,"name":name}`,
/// where `fields` were rendered when it opened.
fn write_json_span(
    out: &mut dyn fmt::Write,
    name: &str,
    fields: &str,
    request: Option<u64>,
) -> fmt::Result {
    out.write_str(r#","span":{"#)?;
    if !fields.is_empty() {
        out.write_str(fields)?;
        out.write_char(',')?;
    }
    if let Some(id) = request {
        out.write_str(r#""id":"#)?;
        out.write_str(itoa::Buffer::new().format(id))?;
        out.write_char(',')?;
    }
    out.write_str(r#""name":"#)?;
    write_json_string(out, name)?;
    out.write_char('}')
}

/// A request's `served` line, as [`Lines`] writes the event it stands for: at `info`,
/// from `kneedeep::server`, inside the plugin's request span, whose fields `span_fields`
/// are (from [`plugin_span_fields`]). Written piece by piece rather than through
/// [`FieldWriter`], because it is on every request's path.
pub(super) fn served_line(
    out: &mut String,
    style: Style,
    span_fields: &str,
    served: &Served<'_>,
) -> fmt::Result {
    let mut number = itoa::Buffer::new();
    match style {
        Style::Text => {
            write_timestamp(out)?;
            out.push_str("  INFO request{");
            out.push_str(span_fields);
            out.push_str(" id=");
            out.push_str(number.format(served.id));
            out.push_str("}: ");
            out.push_str(SERVED_TARGET);
            out.push_str(": served method=");
            push_json_string(out, served.method);
            out.push_str(" path=");
            push_json_string(out, served.path);
            out.push_str(" status=");
            out.push_str(number.format(served.status));
            out.push_str(" latency_us=");
            out.push_str(number.format(served.latency_us));
        }
        Style::Json => {
            out.push_str(r#"{"timestamp":""#);
            write_timestamp(out)?;
            out.push_str(r#"","level":"INFO","fields":{"message":"served","method":"#);
            push_json_string(out, served.method);
            out.push_str(r#","path":"#);
            push_json_string(out, served.path);
            out.push_str(r#","status":"#);
            out.push_str(number.format(served.status));
            out.push_str(r#","latency_us":"#);
            out.push_str(number.format(served.latency_us));
            out.push_str(r#"},"target":""#);
            out.push_str(SERVED_TARGET);
            out.push_str(r#"","span":{"#);
            out.push_str(span_fields);
            out.push_str(r#","id":"#);
            out.push_str(number.format(served.id));
            out.push_str(r#","name":"request"}}"#);
        }
    }
    out.push('\n');
    Ok(())
}

/// [`write_json_string`] to a string, with the common case of nothing to escape copied
/// whole.
fn push_json_string(out: &mut String, text: &str) {
    if text
        .bytes()
        .any(|byte| byte < 0x20 || byte == b'"' || byte == b'\\')
    {
        // Writing to a string does not fail.
        let _ = write_json_string(out, text);
        return;
    }
    out.push('"');
    out.push_str(text);
    out.push('"');
}

/// The fields of a plugin's request span, `plugin=<name>`, as [`SpanFields`] renders them.
pub(super) fn plugin_span_fields(style: Style, plugin: &str) -> String {
    let mut fields = String::new();
    // Writing to a string does not fail.
    let _ = FieldWriter::new(style, &mut fields, true).try_write("plugin", Value::Str(plugin));
    fields
}

/// Writes fields one after the other in a style: `message` bare and the others as
/// `key=value` for text, `"key":value` members for JSON.
struct FieldWriter<'a> {
    style: Style,
    out: &'a mut dyn fmt::Write,
    first: bool,
    result: fmt::Result,
}

/// A field's value, by how it is written.
#[derive(Clone, Copy)]
enum Value<'a> {
    /// A string: quoted in both styles.
    Str(&'a str),
    /// An integer: written as it displays, in both styles.
    Unsigned(u64),
    Signed(i64),
    /// A float or a boolean: written as it displays, in both styles.
    Plain(&'a dyn fmt::Display),
    /// Anything else: its `Debug`, which JSON then quotes.
    Debug(&'a dyn fmt::Debug),
}

impl<'a> FieldWriter<'a> {
    fn new(style: Style, out: &'a mut dyn fmt::Write, first: bool) -> Self {
        FieldWriter {
            style,
            out,
            first,
            result: Ok(()),
        }
    }

    fn write(&mut self, field: &Field, value: Value<'_>) {
        if self.result.is_ok() {
            self.result = self.try_write(field.name(), value);
        }
    }

    fn try_write(&mut self, name: &str, value: Value<'_>) -> fmt::Result {
        let separator = match self.style {
            Style::Text => " ",
            Style::Json => ",",
        };
        if !std::mem::take(&mut self.first) {
            self.out.write_str(separator)?;
        }

        let bare = match self.style {
            Style::Text if name == "message" => true,
            Style::Text => {
                self.out.write_str(name)?;
                self.out.write_char('=')?;
                false
            }
            Style::Json => {
                write_json_string(self.out, name)?;
                self.out.write_char(':')?;
                false
            }
        };
        match value {
            Value::Str(text) if bare => self.out.write_str(text),
            Value::Str(text) => write_json_string(self.out, text),
            Value::Unsigned(number) => self.out.write_str(itoa::Buffer::new().format(number)),
            Value::Signed(number) => self.out.write_str(itoa::Buffer::new().format(number)),
            Value::Plain(value) => write!(self.out, "{value}"),
            Value::Debug(value) if self.style == Style::Json => {
                self.out.write_char('"')?;
                write!(JsonEscaped(&mut *self.out), "{value:?}")?;
                self.out.write_char('"')
            }
            Value::Debug(value) => write!(self.out, "{value:?}"),
        }
    }
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, Value::Str(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, Value::Unsigned(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(field, Value::Signed(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(field, Value::Plain(&value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if value.is_finite() {
            self.write(field, Value::Plain(&value));
        } else {
            // JSON has no NaN or infinity; as text, `Debug` writes them.
            self.write(field, Value::Debug(&value));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        // An error's message is text: written as it displays, and quoted in JSON.
        self.write(field, Value::Debug(&format_args!("{value}")));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // The message comes here as `format_args!`, whose `Debug` is its text; in JSON it
        // is still a string.
        self.write(field, Value::Debug(value));
    }
}

/// A level as the text lines show it: right-aligned in five, a space either side.
fn padded_level(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::TRACE => " TRACE ",
        tracing::Level::DEBUG => " DEBUG ",
        tracing::Level::INFO => "  INFO ",
        tracing::Level::WARN => "  WARN ",
        tracing::Level::ERROR => " ERROR ",
    }
}

/// Writes `text` as a JSON string, quotes included. Text lines quote strings the same
/// way: what a reader of either sees is one escaping.
fn write_json_string(out: &mut dyn fmt::Write, text: &str) -> fmt::Result {
    out.write_char('"')?;
    write_json_escaped(out, text)?;
    out.write_char('"')
}

/// Escapes what is written through it for the inside of a JSON string.
struct JsonEscaped<'a>(&'a mut dyn fmt::Write);

impl fmt::Write for JsonEscaped<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write_json_escaped(self.0, text)
    }
}

/// Writes `text` escaped for the inside of a JSON string. What needs escaping is ASCII,
/// so the bytes are scanned, and a string with nothing to escape is written whole.
fn write_json_escaped(out: &mut dyn fmt::Write, text: &str) -> fmt::Result {
    let mut plain_from = 0;
    for (index, byte) in text.bytes().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..0x20 => "",
            _ => continue,
        };
        out.write_str(&text[plain_from..index])?;
        if escaped.is_empty() {
            write!(out, "\\u{byte:04x}")?;
        } else {
            out.write_str(escaped)?;
        }
        plain_from = index + 1;
    }
    out.write_str(&text[plain_from..])
}

thread_local! {
    /// The second last rendered on this thread and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Writes the time now as RFC 3339 in UTC with microseconds: `2026-12-04T10:10:20.865817Z`.
fn write_timestamp(out: &mut impl fmt::Write) -> fmt::Result {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = now.as_secs();
    SECOND.with_borrow_mut(|(rendered, text)| {
        if *rendered != seconds {
            text.clear();
            render_second(text, seconds)?;
            *rendered = seconds;
        }
        out.write_str(text)?;
        write_fraction(out, now.subsec_micros())
    })
}

/// Writes `.ffffffZ`: the microseconds of a second, as the timestamp ends.
fn write_fraction(out: &mut dyn fmt::Write, micros: u32) -> fmt::Result {
    let mut digits = *b".000000Z";
    let mut rest = micros;
    for digit in digits[1..7].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out.write_str(std::str::from_utf8(&digits).map_err(|_| fmt::Error)?)
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix time in seconds.
fn render_second(out: &mut String, unix_seconds: u64) -> fmt::Result {
    let days = i64::try_from(unix_seconds / 86_400).unwrap_or(i64::MAX);
    let of_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date of a count of days since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
pub(super) mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Runs `emit` under a subscriber in `style` and returns what it wrote.
    pub(in crate::logging) fn lines_of(style: Style, emit: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);

        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .fmt_fields(SpanFields(style))
            .event_format(Lines(style))
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    fn served() {
        let span = tracing::info_span!(
            "request",
            plugin = "notes",
            id = 7u64,
            method = %"POST",
            user = tracing::field::Empty
        );
        span.record("user", "ada");
        span.in_scope(|| {
            tracing::info!(
                status = 201u64,
                delta = -3i64,
                ok = true,
                ratio = 0.5,
                nothing = f64::NAN,
                path = ?"/a \"b\"",
                "served {}",
                "now"
            );
        });
        tracing::warn!(target: "elsewhere", "outside");
    }

    #[test]
    fn json_lines_parse_and_carry_the_span() {
        let text = lines_of(Style::Json, served);
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|error| panic!("{line}: {error}"))
            })
            .collect();

        let served = &lines[0];
        assert_eq!(served["level"], "INFO");
        assert_eq!(served["target"], module_path!());
        assert_eq!(served["fields"]["message"], "served now");
        assert_eq!(served["fields"]["status"], 201);
        assert_eq!(served["fields"]["delta"], -3);
        assert_eq!(served["fields"]["ok"], true);
        assert_eq!(served["fields"]["ratio"], 0.5);
        assert_eq!(served["fields"]["nothing"], "NaN");
        assert_eq!(served["fields"]["path"], r#""/a \"b\"""#);
        assert_eq!(served["span"]["name"], "request");
        assert_eq!(served["span"]["plugin"], "notes");
        assert_eq!(served["span"]["id"], 7);
        assert_eq!(served["span"]["method"], "POST");
        assert_eq!(served["span"]["user"], "ada");
        let timestamp = served["timestamp"].as_str().unwrap();
        assert_eq!(
            timestamp.len(),
            "2026-12-04T10:10:20.865817Z".len(),
            "{timestamp}"
        );

        let outside = &lines[1];
        assert_eq!(outside["level"], "WARN");
        assert_eq!(outside["target"], "elsewhere");
        assert!(outside.get("span").is_none(), "{outside}");
    }

    #[test]
    fn text_lines_read_like_the_usual_format() {
        let text = lines_of(Style::Text, served);
        let lines: Vec<&str> = text.lines().collect();

        let (timestamp, rest) = lines[0].split_once(' ').unwrap();
        assert!(timestamp.ends_with('Z'), "{timestamp}");
        assert_eq!(
            rest,
            format!(
                r#" INFO request{{plugin="notes" id=7 method=POST user="ada"}}: {}: served now status=201 delta=-3 ok=true ratio=0.5 nothing=NaN path="/a \"b\"""#,
                module_path!()
            )
        );
        assert!(
            lines[1].ends_with(" WARN elsewhere: outside"),
            "{}",
            lines[1]
        );
    }

    #[test]
    fn renders_dates_across_eras_and_leap_days() {
        let render = |seconds| {
            let mut text = String::new();
            render_second(&mut text, seconds).unwrap();
            text
        };
        assert_eq!(render(0), "1970-01-01T00:00:00");
        assert_eq!(render(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(render(1_796_378_420), "2026-12-04T10:00:20");
        assert_eq!(render(4_107_542_399), "2100-02-28T23:59:59");
    }

    #[test]
    fn an_error_field_is_its_message_and_a_json_string() {
        let error = std::io::Error::other("disk \"full\"");
        let emit = || {
            tracing::warn!(
                error = &error as &(dyn std::error::Error + 'static),
                "failed"
            );
        };

        let json = lines_of(Style::Json, emit);
        let line: serde_json::Value =
            serde_json::from_str(json.trim_end()).unwrap_or_else(|parse| panic!("{json}: {parse}"));
        assert_eq!(line["fields"]["error"], "disk \"full\"");

        let text = lines_of(Style::Text, emit);
        assert!(
            text.trim_end().ends_with(r#"failed error=disk "full""#),
            "{text}"
        );
    }

    #[test]
    fn escapes_json_strings() {
        let mut text = String::new();
        write_json_string(&mut text, "a \"quoted\"\\path\n\u{1}é").unwrap();
        assert_eq!(text, r#""a \"quoted\"\\path\n\u0001é""#);
        let parsed: String = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed, "a \"quoted\"\\path\n\u{1}é");
    }
}
