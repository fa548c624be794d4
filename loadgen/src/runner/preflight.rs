//! Checks before a run: the open-files limit a run needs (raised as far as allowed),
//! and warnings about a configuration that will run but not as asked.

use crate::config::{Config, Scenario};

/// File descriptors a run needs: one per client, plus a few per thread (its poll) and
/// the result files.
pub(super) fn fds_needed(config: &Config) -> u64 {
    u64::from(config.clients) + 64 + 4 * config.threads as u64
}

/// Raises the soft RLIMIT_NOFILE towards what `config` needs, as far as the hard limit
/// allows; returns the soft limit now in force (`None` if it could not be read).
pub(super) fn raise_fd_limit(config: &Config) -> Option<u64> {
    rlimit::increase_nofile_limit(fds_needed(config)).ok()
}

/// Warnings about a configuration that will run but not as asked, for the user to see
/// before it starts: more clients than the open-files limit lets loadgen open (after
/// raising the soft limit as far as it may), or a connect ramp that takes longer than
/// the measured duration.
pub fn preflight(config: &Config) -> Vec<String> {
    preflight_warnings(config, raise_fd_limit(config))
}

/// [`preflight`] given the open-files limit loadgen can reach.
pub(super) fn preflight_warnings(config: &Config, fd_limit: Option<u64>) -> Vec<String> {
    let mut warnings = Vec::new();
    let needed = fds_needed(config);
    if let Some(limit) = fd_limit
        && limit < needed
    {
        let fit = limit.saturating_sub(needed - u64::from(config.clients));
        warnings.push(format!(
            "--clients {} needs about {needed} open files but the limit is {limit} \
             (ulimit -n); about {fit} clients can connect, the rest will fail",
            config.clients
        ));
    }
    if config.addrs.len() > 1 && config.scenario != Scenario::Echo {
        warnings.push(format!(
            "--scenario {} over {} addresses: client i talks to address i mod {}, so rooms \
             and dm pairs are split over the servers; servers that do not share rooms and \
             nicks deliver only within each, and the rest counts as lost",
            config.scenario.name(),
            config.addrs.len(),
            config.addrs.len()
        ));
    }
    let ramp_s = f64::from(config.clients) / config.connect_rate;
    if ramp_s > config.duration.as_secs_f64() {
        warnings.push(format!(
            "connecting {} clients at --connect-rate {} takes {ramp_s:.1}s, longer than \
             --duration {:.1}s",
            config.clients,
            config.connect_rate,
            config.duration.as_secs_f64()
        ));
    }
    warnings
}
