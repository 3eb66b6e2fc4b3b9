//! `casarray_requests_total` on the forwarding path without a label lookup.
//!
//! `with_label_values` hashes three strings and takes a read lock on every
//! call. Almost every answer of a member has one of a few statuses, so the
//! counter of each (service, member, status) among those is resolved once,
//! on first use (a series appears only once it counts something, as with
//! the label lookup), and kept in the snapshot.

use std::sync::OnceLock;

use http::StatusCode;
use prometheus::{IntCounter, IntCounterVec};

/// The statuses whose counters are kept resolved.
const COMMON: [StatusCode; 8] = [
    StatusCode::OK,
    StatusCode::NO_CONTENT,
    StatusCode::PARTIAL_CONTENT,
    StatusCode::FOUND,
    StatusCode::NOT_MODIFIED,
    StatusCode::UNAUTHORIZED,
    StatusCode::NOT_FOUND,
    StatusCode::INTERNAL_SERVER_ERROR,
];

/// The request counters of one (service, member) pair.
#[derive(Debug)]
pub struct RequestCounters {
    vec: IntCounterVec,
    service: String,
    member: String,
    common: [OnceLock<IntCounter>; COMMON.len()],
}

impl RequestCounters {
    pub fn new(vec: &IntCounterVec, service: &str, member: &str) -> Self {
        RequestCounters {
            vec: vec.clone(),
            service: service.to_owned(),
            member: member.to_owned(),
            common: Default::default(),
        }
    }

    /// Counts one answer with `status`.
    pub fn inc(&self, status: StatusCode) {
        match COMMON.iter().position(|&s| s == status) {
            Some(i) => self.common[i].get_or_init(|| self.child(status)).inc(),
            None => self.child(status).inc(),
        }
    }

    fn child(&self, status: StatusCode) -> IntCounter {
        self.vec
            .with_label_values(&[&self.service, &self.member, status.as_str()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus::core::Collector;
    use prometheus::Opts;

    #[test]
    fn counts_land_in_the_labelled_series() {
        let vec = IntCounterVec::new(Opts::new("t", "t"), &["service", "member", "code"]).unwrap();
        let c = RequestCounters::new(&vec, "owa", "EX1");
        c.inc(StatusCode::OK);
        c.inc(StatusCode::OK);
        c.inc(StatusCode::IM_A_TEAPOT);
        assert_eq!(vec.with_label_values(&["owa", "EX1", "200"]).get(), 2);
        assert_eq!(vec.with_label_values(&["owa", "EX1", "418"]).get(), 1);
        // Nothing counted, no series.
        assert_eq!(vec.collect()[0].get_metric().len(), 2);
    }
}
