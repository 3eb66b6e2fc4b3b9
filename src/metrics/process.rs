//! Process metrics read from `/proc/self` at scrape time (Linux; elsewhere
//! the collector reports nothing):
//!
//! - `casarray_process_resident_memory_bytes` (gauge)
//! - `casarray_process_open_fds` and `casarray_process_max_fds` (gauges)
//! - `casarray_process_threads` (gauge)
//! - `casarray_process_cpu_seconds_total` (counter: user + system time)
//! - `casarray_process_start_time_seconds` (gauge, Unix time)

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, Metric, MetricFamily, MetricType};

const RSS: &str = "casarray_process_resident_memory_bytes";
const OPEN_FDS: &str = "casarray_process_open_fds";
const MAX_FDS: &str = "casarray_process_max_fds";
const THREADS: &str = "casarray_process_threads";
const CPU: &str = "casarray_process_cpu_seconds_total";
const START: &str = "casarray_process_start_time_seconds";

/// (name, help, type) of every metric this collector reports.
const METRICS: [(&str, &str, MetricType); 6] = [
    (RSS, "Resident memory size in bytes.", MetricType::GAUGE),
    (OPEN_FDS, "Open file descriptors.", MetricType::GAUGE),
    (
        MAX_FDS,
        "Limit on open file descriptors (soft).",
        MetricType::GAUGE,
    ),
    (THREADS, "OS threads.", MetricType::GAUGE),
    (
        CPU,
        "User and system CPU time spent, in seconds.",
        MetricType::COUNTER,
    ),
    (
        START,
        "Start time of the process, Unix time in seconds.",
        MetricType::GAUGE,
    ),
];

/// The process metrics, as a Prometheus collector.
pub struct ProcessCollector {
    descs: Vec<Desc>,
}

impl ProcessCollector {
    pub fn new() -> Result<Self, prometheus::Error> {
        let descs = METRICS
            .iter()
            .map(|(name, help, _)| {
                Desc::new(
                    (*name).to_owned(),
                    (*help).to_owned(),
                    Vec::new(),
                    Default::default(),
                )
            })
            .collect::<Result<_, _>>()?;
        Ok(ProcessCollector { descs })
    }
}

impl Collector for ProcessCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(sample) = Sample::read() else {
            return Vec::new();
        };
        METRICS
            .iter()
            .filter_map(|&(name, help, kind)| {
                let value = match name {
                    RSS => sample.rss_bytes,
                    OPEN_FDS => sample.open_fds,
                    MAX_FDS => sample.max_fds,
                    THREADS => sample.threads,
                    CPU => sample.cpu_seconds,
                    START => sample.start_time,
                    _ => None,
                }?;
                Some(family(name, help, kind, value))
            })
            .collect()
    }
}

fn family(name: &str, help: &str, kind: MetricType, value: f64) -> MetricFamily {
    let mut metric = Metric::default();
    if kind == MetricType::COUNTER {
        let mut c = Counter::default();
        c.set_value(value);
        metric.set_counter(c);
    } else {
        let mut g = Gauge::default();
        g.set_value(value);
        metric.set_gauge(g);
    }
    let mut mf = MetricFamily::default();
    mf.set_name(name.to_owned());
    mf.set_help(help.to_owned());
    mf.set_field_type(kind);
    mf.set_metric(vec![metric]);
    mf
}

/// One reading of `/proc/self`; a value that cannot be read is `None`.
#[derive(Debug, Default)]
struct Sample {
    rss_bytes: Option<f64>,
    open_fds: Option<f64>,
    max_fds: Option<f64>,
    threads: Option<f64>,
    cpu_seconds: Option<f64>,
    start_time: Option<f64>,
}

impl Sample {
    fn read() -> Option<Sample> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let mut sample = parse_stat(&stat, ticks_per_second(), page_size(), boot_time());
        sample.open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|d| d.count() as f64);
        sample.max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|l| parse_max_open_files(&l));
        Some(sample)
    }
}

/// Parses `/proc/self/stat` (see proc(5)): the fields after the command
/// name, which is in parentheses and may itself hold spaces or parentheses.
fn parse_stat(stat: &str, ticks: f64, page: f64, boot: Option<f64>) -> Sample {
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_ascii_whitespace().collect())
        .unwrap_or_default();
    // Field n of proc(5) is fields[n - 3].
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<f64>().ok());
    let cpu = match (field(14), field(15)) {
        (Some(utime), Some(stime)) => Some((utime + stime) / ticks),
        _ => None,
    };
    Sample {
        rss_bytes: field(24).map(|pages| pages * page),
        threads: field(20),
        cpu_seconds: cpu,
        start_time: match (boot, field(22)) {
            (Some(boot), Some(start)) => Some(boot + start / ticks),
            _ => None,
        },
        ..Sample::default()
    }
}

/// The soft "Max open files" of `/proc/self/limits`; `None` when unlimited.
fn parse_max_open_files(limits: &str) -> Option<f64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `btime` of `/proc/stat`: boot time, Unix seconds.
fn boot_time() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn page_size() -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if size > 0 {
        size as f64
    } else {
        4096.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_a_tricky_command_name() {
        let stat = "4242 (we ir) d) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    250 50 0 0 20 0 7 0 1000 123456789 300 18446744073709551615";
        let s = parse_stat(stat, 100.0, 4096.0, Some(1_700_000_000.0));
        assert_eq!(s.cpu_seconds, Some(3.0));
        assert_eq!(s.threads, Some(7.0));
        assert_eq!(s.start_time, Some(1_700_000_010.0));
        assert_eq!(s.rss_bytes, Some(300.0 * 4096.0));
    }

    #[test]
    fn garbage_gives_nothing() {
        let s = parse_stat("garbage", 100.0, 4096.0, None);
        assert_eq!(s.cpu_seconds, None);
        assert_eq!(s.rss_bytes, None);
    }

    #[test]
    fn parses_the_open_files_limit() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_open_files(limits), Some(1024.0));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_max_open_files(unlimited), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reports_this_process() {
        let c = ProcessCollector::new().unwrap();
        let families = c.collect();
        let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
        for (name, _, _) in METRICS {
            assert!(names.contains(&name), "{name} missing: {names:?}");
        }
        let value = |n: &str| {
            let f = families.iter().find(|f| f.name() == n).unwrap();
            let m = &f.get_metric()[0];
            if f.get_field_type() == MetricType::COUNTER {
                m.get_counter().get_value()
            } else {
                m.get_gauge().get_value()
            }
        };
        assert!(value(RSS) > 1e6, "a Rust test binary uses more than 1 MB");
        assert!(value(OPEN_FDS) >= 3.0);
        assert!(value(START) > 1.6e9);
        assert!(value(CPU) >= 0.0);
        assert_eq!(c.desc().len(), METRICS.len());
    }
}
