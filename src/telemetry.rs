//! Logging and metrics setup, and the process readings `/metrics` adds at scrape time.

use std::fmt;
use std::io::IsTerminal;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::config::LogFormat;

/// sqlx logs every statement it finds slow, and more at debug: noise at the default level.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// Structured logs to stderr (stdout is for command output); JSON when asked.
pub fn init(format: LogFormat) {
    let filter = filter(|name| std::env::var(name).ok());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .try_init(),
        // Colour codes are garbage in a file or a log collector.
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
    };
}

/// `IDBRIDGE_LOG`, else `RUST_LOG`, else [`DEFAULT_FILTER`]. A filter that does not parse is
/// said on stderr, not silently replaced by something the operator did not ask for.
fn filter(var: impl Fn(&str) -> Option<String>) -> EnvFilter {
    for name in ["IDBRIDGE_LOG", "RUST_LOG"] {
        let Some(value) = var(name).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        match EnvFilter::try_new(&value) {
            Ok(f) => return f,
            Err(e) => {
                eprintln!("{name}={value:?} is not a log filter ({e}); using {DEFAULT_FILTER}");
                break;
            }
        }
    }
    EnvFilter::new(DEFAULT_FILTER)
}

/// One JSON object a line with every field at the top level: the fields of the spans the event
/// is in (the request id), then the event's own, so log queries need no knowledge of nesting.
/// The stock JSON format puts them under `fields`, `span` and `spans`.
struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut map = Map::new();
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        map.insert("timestamp".into(), now.into());
        map.insert("level".into(), meta.level().as_str().into());
        map.insert("target".into(), meta.target().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                // JsonFields stored them as one JSON object.
                if let Some(fields) = ext.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(o)) = serde_json::from_str::<Value>(fields)
                {
                    map.extend(o);
                }
            }
        }
        event.record(&mut JsonVisitor(&mut map));
        writeln!(writer, "{}", Value::Object(map))
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

/// What every series the recorder renders means; the exporter writes `# HELP` only for these.
const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "idbridge_http_requests_total",
        "HTTP requests by route template, method and status.",
    ),
    (
        "idbridge_http_request_duration_seconds",
        "HTTP request latency by route template, method and status.",
    ),
    (
        "idbridge_scim_operations_total",
        "SCIM operations by directory, resource and operation.",
    ),
    (
        "idbridge_sso_failures_total",
        "Failed single sign-on steps by reason.",
    ),
    (
        "idbridge_rate_limited_total",
        "Requests refused by a rate limit (429), and failed sign-ins not audited, by limit.",
    ),
    (
        "idbridge_sign_in_audit_skipped_total",
        "Failed sign-ins past their connection's audit limit: logged, not written to the audit log.",
    ),
    (
        "idbridge_sign_ins_total",
        "Sign-ins finished at the SAML ACS or the OIDC callback, by protocol and outcome \
         (success, denied by the organization, failed).",
    ),
];

/// The process-wide Prometheus recorder. Installed once; later callers (tests building several
/// apps) share it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            for (name, help) in DESCRIPTIONS {
                metrics::describe_counter!(*name, *help);
            }
            handle
        })
        .clone()
}

/// Readings of this process from /proc (Linux); each is absent where it cannot be read.
#[derive(Debug, Default)]
pub struct ProcessStats {
    pub resident_memory_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub start_time_seconds: Option<f64>,
}

/// Clock ticks a second in /proc: USER_HZ, which Linux fixes at 100 for user space on every
/// architecture (the Prometheus Go client's procfs reader assumes the same).
const USER_HZ: f64 = 100.0;

pub fn process_stats() -> ProcessStats {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let resident_memory_bytes = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024);
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its
    // closing parenthesis, where field 3 (state) is index 0.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |field: usize| fields.get(field - 3).and_then(|v| v.parse::<u64>().ok());
    let cpu_seconds = ticks(14)
        .zip(ticks(15))
        .map(|(user, system)| (user + system) as f64 / USER_HZ);
    let boot_time = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<u64>().ok())
    });
    let start_time_seconds = boot_time
        .zip(ticks(22))
        .map(|(boot, since_boot)| boot as f64 + since_boot as f64 / USER_HZ);
    ProcessStats {
        resident_memory_bytes,
        open_fds,
        cpu_seconds,
        start_time_seconds,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_carry_span_and_event_fields_at_the_top_level() {
        let buf = Buffer::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .fmt_fields(JsonFields::new())
            .event_format(FlatJson)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("request", request_id = "r-1");
            let _entered = span.enter();
            tracing::info!(status = 200u16, route = "/healthz", "request");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let line: Value = serde_json::from_str(out.trim()).expect("one JSON line");
        assert_eq!(line["request_id"], "r-1", "{line}");
        assert_eq!(line["status"], 200, "{line}");
        assert_eq!(line["route"], "/healthz", "{line}");
        assert_eq!(line["message"], "request", "{line}");
        assert_eq!(line["level"], "INFO", "{line}");
        for nested in ["fields", "span", "spans"] {
            assert!(line.get(nested).is_none(), "{line}");
        }
    }

    #[test]
    fn idbridge_log_wins_over_rust_log_and_sqlx_is_quiet_by_default() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let default = EnvFilter::new(DEFAULT_FILTER).to_string();
        assert_eq!(filter(env(&[])).to_string(), default);
        assert!(default.contains("sqlx=warn"));
        assert_eq!(filter(env(&[("RUST_LOG", "debug")])).to_string(), "debug");
        assert_eq!(
            filter(env(&[("IDBRIDGE_LOG", "warn"), ("RUST_LOG", "debug")])).to_string(),
            "warn"
        );
        assert_eq!(filter(env(&[("IDBRIDGE_LOG", "=[")])).to_string(), default);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_readings_are_sane_on_linux() {
        let p = process_stats();
        assert!(p.resident_memory_bytes.unwrap() > 1024 * 1024, "{p:?}");
        assert!(p.open_fds.unwrap() >= 3, "{p:?}");
        assert!(p.cpu_seconds.unwrap() >= 0.0, "{p:?}");
        let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
        let start = p.start_time_seconds.unwrap();
        assert!(start <= now + 1.0 && start > now - 86_400.0, "{p:?}");
    }
}
