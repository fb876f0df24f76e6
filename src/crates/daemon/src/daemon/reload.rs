//! `crowdwall reload` and SIGHUP: the new file is read and checked whole; what needs a
//! restart is refused; changed sources are restarted (the old ones come back if a new one
//! cannot start); the Core swaps scenarios, allowlist and ban policy.

use serde_json::json;

use crowdwall_engine::decide::Allowlist;
use crowdwall_engine::enforce::Firewall;

use super::{Core, DaemonError, RunOptions};
use crate::config::Config;
use crate::control::Response;
use crate::source::Sources;

impl<F: Firewall> Core<F> {
    /// Swaps in what a new configuration changes in the core: scenarios (bucket state is
    /// kept when they did not change), allowlist, ban policy. `new` is already validated; the
    /// keys that need a restart were compared by the caller. Returns what changed.
    pub fn reload(&mut self, new: Config) -> Result<Vec<&'static str>, DaemonError> {
        let mut changed = Vec::new();
        if new.scenario_specs()? != self.cfg.scenario_specs()?
            || new.detect.max_buckets != self.cfg.detect.max_buckets
        {
            // Built first: a failure leaves everything as it was.
            let old = self.detector.parsers.stats();
            self.detector = new.detector()?;
            // Counters run since the start, not since the last reload.
            self.detector.parsers.carry_stats(&old);
            changed.push("scenarios");
        }
        if new.allowlist.cidrs != self.cfg.allowlist.cidrs
            || new.allowlist.own_addresses != self.cfg.allowlist.own_addresses
            || new.allowlist.from_dir != self.cfg.allowlist.from_dir
        {
            let own = if new.allowlist.own_addresses {
                self.allow.own().to_vec()
            } else {
                Vec::new()
            };
            self.allow = Allowlist::new(new.allowlist_nets());
            self.allow.set_own(own);
            changed.push("allowlist");
        }
        let b = (&new.ban, &self.cfg.ban);
        if b.0.duration != b.1.duration
            || b.0.max_duration != b.1.max_duration
            || b.0.escalate != b.1.escalate
            || b.0.forget_after != b.1.forget_after
        {
            self.policy = new.ban.policy();
            self.forget_after = new.ban.forget_after.micros();
            changed.push("ban");
        }
        // After every config change: are the logged-in admins still allowlisted?
        self.lockout = crate::lockout::Guard::new(&new.lockout);
        self.lockout
            .check(&self.allow, "after a config reload", true);
        self.cfg = new;
        Ok(changed)
    }
}

/// `crowdwall reload` and SIGHUP: reads the config file again, refuses it (changing nothing)
/// when it is broken or changes what needs a restart, else restarts the sources whose
/// section changed and swaps the core's parts. If a changed source cannot start (an address
/// in use), the old sources are started again and the reload is refused.
pub(super) async fn reload<F: Firewall>(
    core: &mut Core<F>,
    sources: &mut Sources,
    opts: &RunOptions,
) -> Response {
    let path = opts
        .config_path
        .clone()
        .unwrap_or_else(|| crate::config::DEFAULT_PATH.into());
    let stays = "the running configuration stays";
    let mut new = match Config::load(&path) {
        Ok(c) => c,
        Err(e) => return Response::Error(format!("{e}; {stays}")),
    };
    opts.apply(&mut new);
    let old = &core.cfg;
    let mut restart = Vec::new();
    if new.daemon.state_dir != old.daemon.state_dir {
        restart.push("daemon.state_dir");
    }
    if new.daemon.socket != old.daemon.socket {
        restart.push("daemon.socket");
    }
    if new.firewall.spec() != old.firewall.spec() {
        restart.push("firewall");
    }
    // A new port list means new sets and chains, and the read-back thread's handle knows
    // the table's layout from the start: both are built once, at start.
    if new.firewall_spec().port_groups != old.firewall_spec().port_groups {
        restart.push("the port lists of bans (scenarios.*.ports, ban.ports)");
    } else if new.ban.ports != old.ban.ports {
        // Same lists, another origin on them: the plan places each origin's decisions by
        // the mapping it started with, and removes them by it too; swapping it live would
        // look for old decisions' elements in the wrong sets and leave them in the kernel.
        restart.push("ban.ports");
    }
    if !restart.is_empty() {
        return Response::Error(format!(
            "{}: {} changed, which needs a restart (systemctl restart crowdwall); {stays}",
            path.display(),
            restart.join(", ")
        ));
    }
    if let Err(e) = new.detector() {
        return Response::Error(format!("{e}; {stays}"));
    }
    for w in new.warnings() {
        log::warn!("{}: {w}", path.display());
    }
    let mut changed = match sources.reload(super::run::sources_config(&new, 0)).await {
        Ok(c) => c,
        Err(e) => return Response::Error(format!("{}: {e}; {stays}", path.display())),
    };
    match core.reload(new) {
        Ok(c) => changed.extend(c),
        Err(e) => return Response::Error(format!("{e}; {stays}")),
    }
    log::info!(
        "configuration {} reloaded; changed: {}",
        path.display(),
        if changed.is_empty() {
            "nothing".to_string()
        } else {
            changed.join(", ")
        }
    );
    Response::Ok(json!({ "config": path, "changed": changed }))
}
