//! The run's result assembly: the threads' totals merged into the [`Summary`], the
//! warnings for the user, the result files written and the verdict.

use std::collections::BTreeMap;
use std::time::Duration;

use super::collector::Collector;
use super::{RunError, RunReport, SECOND_NS};
use crate::client::ErrorCounts;
use crate::config::{Config, Scenario};
use crate::lag::SendLag;
use crate::recorder::{merge, new_histogram};
use crate::report::{Percentiles, Summary, Verdict};
use crate::results::{self, HlogWriter, ResultFiles};
use crate::verify::Anomalies;

impl Collector<'_> {
    /// Merges the threads' totals and writes every result file.
    pub(super) fn finish(
        mut self,
        config: &Config,
        files: ResultFiles,
        started_rfc: String,
        stamp: &str,
    ) -> Result<RunReport, RunError> {
        let mut corrected = new_histogram();
        let mut uncorrected = new_histogram();
        let mut lag_free = new_histogram();
        let mut anomalies = Anomalies::default();
        let mut errors = ErrorCounts::default();
        let mut lag = SendLag::default();
        let mut deferred = 0;
        let mut churn = crate::churn::ChurnCounts::default();
        let mut replay = new_histogram();
        let (mut sent, mut connected) = (0, 0);
        let sent_by = |id: u32| {
            self.shared
                .sent
                .get(id as usize)
                .map_or(0, |n| n.load(std::sync::atomic::Ordering::Relaxed))
        };
        // Every thread has ended, so the send counts are final.
        let mut room_sent: BTreeMap<u32, u64> = BTreeMap::new();
        let (mut expected, mut received) = (0u64, 0u64);
        let mut first_error = None;
        let mut rooms = crate::fanout::RoomTallies::new(config);
        for totals in self.done.iter().flatten() {
            merge(&mut corrected, &totals.corrected);
            merge(&mut uncorrected, &totals.uncorrected);
            merge(&mut lag_free, &totals.lag_free);
            anomalies.merge(totals.anomalies);
            errors.merge(totals.errors);
            lag.merge(&totals.lag);
            deferred += totals.deferred;
            churn.merge(totals.churn);
            merge(&mut replay, &totals.replay);
            sent += totals.sent_measured;
            for (plan, got) in &totals.receivers {
                rooms.add(plan, sent_by(plan.id), *got);
                if config.role.is_split() {
                    // Who else is in the room, and what they sent, only `merge` knows.
                    received += got;
                    continue;
                }
                expected += match config.scenario {
                    Scenario::Room => *room_sent
                        .entry(plan.group_start)
                        .or_insert_with(|| plan.expected(config.scenario, sent_by)),
                    scenario => plan.expected(scenario, sent_by),
                };
                received += got;
            }
            connected += totals.connected;
            if first_error.is_none() {
                first_error.clone_from(&totals.first_error);
            }
        }
        if connected == 0 && !(self.interrupted && self.timeline.is_none()) {
            return Err(RunError::NoConnections {
                addr: config.addr_list(),
                first_error,
            });
        }
        let (duration_ns, cpu_per_msg) = match self.timeline {
            Some(t) => {
                let end_ns = self.shared.end_ns();
                let duration_ns = end_ns.saturating_sub(t.measure_ns);
                (
                    duration_ns,
                    self.cpu_per_message(t.measure_tick, end_ns / SECOND_NS),
                )
            }
            None => (0, None),
        };
        let round2 = |v: f64| (v * 100.0).round() / 100.0;
        let duration_s = duration_ns as f64 / 1e9;
        let per_s = |n: u64| {
            if duration_s > 0.0 {
                n as f64 / duration_s
            } else {
                0.0
            }
        };
        let c = Percentiles::of(&corrected);
        let u = Percentiles::of(&uncorrected);
        let f = Percentiles::of(&lag_free);
        let summary = Summary {
            label: config.label(),
            scenario: config.scenario.name().into(),
            protocol: config.protocol.name().into(),
            addr: config.addr_list(),
            clients: config.clients,
            connected,
            threads: self.threads as u32,
            rate_per_client: config.rate,
            payload_bytes: config.payload,
            room_size: (config.scenario == Scenario::Room).then_some(config.room_size),
            duration_s,
            warmup_s: config.warmup.as_secs_f64(),
            target_rate: if config.role.sends() {
                config.target_rate()
            } else {
                0.0
            },
            achieved_send_rate: per_s(sent),
            receive_rate: per_s(received),
            sent,
            expected,
            received,
            lost: expected.saturating_sub(received),
            duplicated: anomalies.duplicated,
            reordered: anomalies.reordered,
            corrupted: anomalies.corrupted,
            errors: errors.total(),
            connect_failures: errors.connect_failures,
            disconnects: errors.disconnects,
            server_errors: errors.server_errors,
            late_sends: lag.late,
            deferred_sends: deferred,
            max_send_lag_us: lag.max_ns / 1000,
            p50_us: c.p50,
            p90_us: c.p90,
            p99_us: c.p99,
            p999_us: c.p999,
            p9999_us: c.p9999,
            max_us: c.max,
            mean_us: (c.mean * 10.0).round() / 10.0,
            uncorrected_p50_us: u.p50,
            uncorrected_p99_us: u.p99,
            uncorrected_max_us: u.max,
            loadgen_cpu_us_per_msg: cpu_per_msg.map(|(total, _)| round2(total)),
            loadgen_user_us_per_msg: cpu_per_msg.map(|(_, user)| round2(user)),
            started_at: started_rfc,
            interrupted: self.interrupted,
            order_breaks: (config.scenario == Scenario::Room
                && config.protocol == crate::config::Protocol::Binary)
                .then_some(churn.order_breaks),
            churn_reconnects: (config.churn > 0.0).then_some(churn.reconnects),
            replayed: (config.churn > 0.0).then_some(churn.replayed),
            resume_missed: (config.churn > 0.0).then_some(churn.missed),
            replay_p50_us: (config.churn > 0.0).then(|| Percentiles::of(&replay).p50),
            replay_p99_us: (config.churn > 0.0).then(|| Percentiles::of(&replay).p99),
            replay_max_us: (config.churn > 0.0).then(|| Percentiles::of(&replay).max),
            send_window_us: Some(config.send_window.as_micros() as u64),
            own_lag_p99_us: Some(lag.own_us_at(0.99)),
            own_lag_p999_us: Some(lag.own_us_at(0.999)),
            held_sends: Some(lag.held),
            held_max_us: Some(lag.held_max_ns / 1000),
            lag_free_p50_us: Some(f.p50),
            lag_free_p99_us: Some(f.p99),
            lag_free_p999_us: Some(f.p999),
            lag_free_max_us: Some(f.max),
            trustworthy: Some(crate::lag::trustworthy(lag.late, sent)),
            role: config
                .role
                .is_split()
                .then(|| config.role.name().to_owned()),
            clock_offset_us: self
                .probe
                .as_ref()
                .and_then(|p| p.measured())
                .map(|c| c.offset_us),
            clock_offset_bound_us: self
                .probe
                .as_ref()
                .and_then(|p| p.measured())
                .map(|c| c.bound_us),
        };

        let mut warnings: Vec<String> = crate::lag::warning(&summary).into_iter().collect();
        if let Some(late) = self.late_start {
            warnings.push(format!(
                "the clients were ready only {:.3}s after --start-at, so sending began {} s \
                 later than asked (on the same wall-clock second grid)",
                late.late_ns as f64 / 1e9,
                late.shift_s
            ));
        }
        if summary.connect_failures > 0 {
            warnings.push(format!(
                "{} of {} clients could not connect",
                summary.connect_failures, summary.clients
            ));
        }
        if errors.rate_limited_clients > 0 {
            warnings.push(format!(
                "the server rate-limited {} of {} clients (error 209); see its --rate-limit: \
                 it read their messages only at that rate, so the {} messages counted lost \
                 include those it had not yet read when the run ended",
                errors.rate_limited_clients, summary.clients, summary.lost
            ));
        }
        match &self.probe {
            Some(crate::clock_offset::Probe::Failed(why)) => {
                warnings.push(format!("clock offset to the server not measured: {why}"));
            }
            Some(crate::clock_offset::Probe::NoEcho(protocol)) => warnings.push(format!(
                "clock offset to the server not measured (--protocol {protocol} has no Echo): \
                 latencies across machines carry their clocks' unknown offset"
            )),
            _ => {}
        }
        if let Some(e) = first_error {
            warnings.push(format!("first error: {e}"));
        }
        if summary.interrupted {
            warnings.push("interrupted: results cover only part of the run".into());
        }

        let mut files = files;
        files.summary = results::append_summary(&files.summary, &summary, stamp)?;
        results::write_hgrm(&files.hgrm, &corrected)?;
        results::write_hgrm(&files.uncorrected_hgrm, &uncorrected)?;
        results::write_series(&files.series, &self.series)?;
        let comment = format!("loadgen run {}", self.label);
        let hlog = self
            .hlog
            .take()
            .unwrap_or_else(|| HlogWriter::new(self.started_at, &comment));
        hlog.write(&files.hlog)?;
        rooms.write(&files.series)?;
        let verdict = Verdict::judge(
            &summary,
            config.thresholds.max_p99,
            config.thresholds.max_loss,
        );
        Ok(RunReport {
            summary,
            files,
            warnings,
            verdict,
        })
    }

    /// CPU time (total, user) in microseconds per message sent over the measured ticks
    /// `[first, end)`.
    fn cpu_per_message(&self, first: u64, end: u64) -> Option<(f64, f64)> {
        let before = *self.cpu_at.get(&first.checked_sub(1)?)?;
        let last = (first..end).rev().find(|k| self.cpu_at.contains_key(k))?;
        let after = *self.cpu_at.get(&last)?;
        let sent: u64 = self.sent_in.range(first..=last).map(|(_, n)| n).sum();
        if sent == 0 {
            return None;
        }
        let per_msg = |d: Duration| d.as_secs_f64() * 1e6 / sent as f64;
        Some((
            per_msg(after.total().saturating_sub(before.total())),
            per_msg(after.user.saturating_sub(before.user)),
        ))
    }
}
