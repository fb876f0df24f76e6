//! The edges' messages turned into Core calls. The edges (bouncer API, ingest, community
//! agent) only build messages and wait for answers; this module is the one place that knows
//! both sides.

use ipnet::IpNet;

use crowdwall_engine::decide::{value_text, Decision, Origin};
use crowdwall_engine::enforce::Firewall;

use super::Core;
use crate::api::{ApiMsg, ApiReply};
use crate::external::{ExternalReport, ExternalUpdate};
use crate::ingest::IngestMsg;
use crate::time::{self, Micros};

/// Answers one bouncer API request from the store.
pub(super) fn api<F: Firewall>(core: &mut Core<F>, msg: ApiMsg) {
    let r = crate::api::answer(&mut core.store, &msg.key_sha256, &msg.user_agent, msg.req);
    let reply = r.unwrap_or_else(|e| {
        log::error!("bouncer API: {e}");
        ApiReply::Internal
    });
    let _ = msg.reply.send(reply);
}

/// Applies a new version of the community blocklist.
pub(super) fn community<F: Firewall>(
    core: &mut Core<F>,
    update: ExternalUpdate,
    agent: Option<&crate::community::agent::Agent>,
) {
    match core.apply_external(update) {
        Ok(r) => log::info!(
            "community blocklist: {} added, {} removed, {} allowlisted",
            r.inserted,
            r.deleted,
            r.refused_allowlisted
        ),
        Err(e) => {
            log::error!("applying the community blocklist: {e}");
            if let Some(a) = agent {
                a.apply_failed();
            }
        }
    }
}

/// Applies one pulled update (CrowdSec, a feed, feeds no longer configured).
pub(super) fn ingest<F: Firewall>(core: &mut Core<F>, msg: IngestMsg) {
    match msg {
        IngestMsg::External { update, reply } => {
            let r = core.apply_external(update).map_err(|e| e.to_string());
            let _ = reply.send(r);
        }
        IngestMsg::Feed {
            name,
            entries,
            until,
            reply,
        } => {
            let r = apply_feed(core, &name, entries, until);
            let _ = reply.send(r);
        }
        IngestMsg::Forget { keep } => {
            let now = time::now();
            let mut gone: Vec<String> = match core.store.active(now) {
                Ok(a) => a
                    .into_iter()
                    .filter(|d| d.origin == Origin::Lists && !keep.contains(&d.scenario))
                    .map(|d| d.scenario)
                    .collect(),
                Err(e) => {
                    log::error!("feeds: reading the store: {e}");
                    return;
                }
            };
            gone.sort();
            gone.dedup();
            for name in gone {
                let r = core.apply_external(ExternalUpdate::Replace {
                    origin: Origin::Lists,
                    list: Some(name.clone()),
                    decisions: Vec::new(),
                });
                match r {
                    Ok(r) => log::info!(
                        "feed {name} is no longer configured: {} decision(s) ended",
                        r.deleted
                    ),
                    Err(e) => log::error!("feed {name}: ending its decisions: {e}"),
                }
            }
        }
    }
}

fn apply_feed<F: Firewall>(
    core: &mut Core<F>,
    name: &str,
    entries: Vec<IpNet>,
    until: Micros,
) -> Result<ExternalReport, String> {
    // A list that would ban an allowlisted range is wrong as a whole (a publisher's mistake
    // or a hostile list): refusing it keeps the previous version instead of applying the rest.
    let allow = &core.allow;
    let mut bad = entries
        .iter()
        .filter_map(|n| allow.check(n).map(|why| (n, why)));
    if let Some((n, why)) = bad.next() {
        let more = bad.count();
        return Err(format!(
            "it would ban {} which is allowlisted ({why}){}",
            value_text(n),
            if more > 0 {
                format!(
                    ", and {more} more allowlisted entr{}",
                    if more == 1 { "y" } else { "ies" }
                )
            } else {
                String::new()
            }
        ));
    }
    let now = time::now();
    let decisions = entries
        .into_iter()
        .map(|value| Decision {
            id: 0,
            value,
            origin: Origin::Lists,
            scenario: name.to_string(),
            reason: format!("listed in {name}"),
            created: now,
            until,
            ports: Default::default(),
        })
        .collect();
    core.apply_external(ExternalUpdate::Replace {
        origin: Origin::Lists,
        list: Some(name.to_string()),
        decisions,
    })
    .map_err(|e| e.to_string())
}
