//! Control-socket requests: list, add and delete decisions, bouncer keys; status and metrics
//! are answered in [`super::status`].

use serde_json::json;

use crowdwall_engine::decide::{self, Decision};
use crowdwall_engine::enforce::{Firewall, Ports};

use super::{Core, StatusExtra};
use crate::control::{Request, Response};
use crate::time::{self, format_duration, format_rfc3339, Micros, SECOND};

impl<F: Firewall> Core<F> {
    pub fn handle_request(&mut self, req: Request, extra: &StatusExtra) -> Response {
        match self.request(req, extra) {
            Ok(v) => Response::Ok(v),
            Err(msg) => Response::Error(msg),
        }
    }

    fn request(&mut self, req: Request, extra: &StatusExtra) -> Result<serde_json::Value, String> {
        let now = time::now();
        match req {
            Request::List => {
                let active = self.store.active(now).map_err(|e| e.to_string())?;
                Ok(serde_json::Value::Array(
                    active
                        .iter()
                        .map(|d| {
                            decision_json(d, self.desired.effective_ports(d.origin, &d.ports), now)
                        })
                        .collect(),
                ))
            }
            Request::Add {
                value,
                duration,
                reason,
                ports,
            } => {
                let net = crowdwall_base::parse_net(&value).map_err(|e| e.to_string())?;
                let ports = match ports.as_deref() {
                    None => Ports::all(),
                    Some(p) => {
                        let p = Ports::parse(p).map_err(|e| format!("--ports: {e}"))?;
                        let layout = self.desired.layout();
                        if !layout.has_ports(&p) {
                            let known: Vec<String> =
                                layout.port_groups.iter().map(|g| g.to_list()).collect();
                            return Err(format!(
                                "--ports {}: the table has no sets for that list; it takes the lists the config names (scenarios.*.ports, [ban.ports]){}",
                                p.to_list(),
                                if known.is_empty() {
                                    ", and it names none".to_string()
                                } else {
                                    format!(": {}", known.join(" or "))
                                }
                            ));
                        }
                        p
                    }
                };
                let dur = match duration {
                    Some(s) => time::parse_duration(&s)
                        .map(time::from_duration)
                        .map_err(|e| e.to_string())?,
                    None => self.policy.duration,
                };
                let mut d =
                    decide::manual(net, dur, reason.as_deref().unwrap_or(""), &self.allow, now)
                        .map_err(|e| e.to_string())?;
                d.ports = ports;
                self.store.insert(&mut d).map_err(|e| e.to_string())?;
                self.track(&d);
                log::warn!(
                    "manual ban {} for {} ({})",
                    d.value_text(),
                    format_duration(time::to_duration(dur)),
                    d.reason
                );
                self.sync().map_err(|e| {
                    format!("stored, but the kernel refused it: {e} (it will be retried)")
                })?;
                Ok(decision_json(
                    &d,
                    self.desired.effective_ports(d.origin, &d.ports),
                    now,
                ))
            }
            Request::Delete { value } => {
                let net = crowdwall_base::parse_net(&value).map_err(|e| e.to_string())?;
                let gone = self
                    .store
                    .delete_value(&net, now)
                    .map_err(|e| e.to_string())?;
                for (id, origin, ports) in &gone {
                    self.desired.remove(*id, *origin, ports, &net);
                }
                let n = gone.len();
                if n == 0 {
                    return Err(format!(
                        "no active decision on exactly {} (see `crowdwall decisions list`; `crowdwall decisions delete --range CIDR` ends everything inside a range)",
                        decide::value_text(&net)
                    ));
                }
                log::warn!(
                    "unban {} ({n} decision(s) deleted)",
                    decide::value_text(&net)
                );
                self.sync()
                    .map_err(|e| format!("deleted, but the kernel refused it: {e}"))?;
                Ok(json!({ "deleted": n, "value": decide::value_text(&net) }))
            }
            Request::DeleteCovered { range } => {
                let cover = match &range {
                    Some(r) => Some(crowdwall_base::parse_net(r).map_err(|e| e.to_string())?),
                    None => None,
                };
                let active = self.store.active(now).map_err(|e| e.to_string())?;
                // Every value inside the range, sub-ranges included, each once.
                let values: std::collections::BTreeSet<ipnet::IpNet> = active
                    .iter()
                    .map(|d| d.value)
                    .filter(|v| cover.is_none_or(|c| c.contains(v)))
                    .collect();
                let mut n = 0;
                for v in &values {
                    let gone = self.store.delete_value(v, now).map_err(|e| e.to_string())?;
                    for (id, origin, ports) in &gone {
                        self.desired.remove(*id, *origin, ports, v);
                    }
                    n += gone.len();
                }
                let what = match &cover {
                    Some(c) => format!("inside {}", decide::value_text(c)),
                    None => "all".to_string(),
                };
                if n > 0 {
                    log::warn!(
                        "unban {what}: {} value(s), {n} decision(s) deleted",
                        values.len()
                    );
                    self.sync()
                        .map_err(|e| format!("deleted, but the kernel refused it: {e}"))?;
                }
                Ok(json!({
                    "deleted": n,
                    "values": values.iter().map(decide::value_text).collect::<Vec<_>>(),
                    "range": cover.map(|c| decide::value_text(&c)),
                }))
            }
            Request::Forget { value } => {
                let net = crowdwall_base::parse_net(&value).map_err(|e| e.to_string())?;
                let had = self
                    .store
                    .forget_offences(&net)
                    .map_err(|e| e.to_string())?;
                if had {
                    log::warn!(
                        "offence history of {} forgotten (its next ban is a first offence)",
                        decide::value_text(&net)
                    );
                }
                Ok(json!({ "value": decide::value_text(&net), "forgotten": had }))
            }
            Request::Status => {
                serde_json::to_value(self.status(extra, now)).map_err(|e| e.to_string())
            }
            Request::Metrics => {
                serde_json::to_value(self.metrics(extra, now)).map_err(|e| e.to_string())
            }
            Request::Log { after, max } => {
                let (lines, next) = crowdwall_base::logging::recent(after, max.min(10_000));
                Ok(json!({ "lines": lines, "next": next, "pid": std::process::id() }))
            }
            // Handled by the serve loop, which owns the sources.
            Request::Reload => Err("reload is handled by the daemon loop".into()),
            r @ (Request::BouncerAdd { .. }
            | Request::BouncerList
            | Request::BouncerDelete { .. }) => {
                crate::api::bouncer_request(&mut self.store, r, now)
            }
        }
    }
}

/// A decision as `decisions list` gets it; `ports` is what its ban covers (its own list or
/// its origin's, `all` for every port).
pub fn decision_json(d: &Decision, ports: &Ports, now: Micros) -> serde_json::Value {
    json!({
        "id": d.id,
        "value": d.value_text(),
        "origin": d.origin,
        "scenario": d.scenario,
        "ports": if ports.is_all() { "all".to_string() } else { ports.to_list() },
        "reason": d.reason,
        "created": format_rfc3339(d.created),
        "until": format_rfc3339(d.until),
        "remaining": format_duration(std::time::Duration::from_secs(((d.until - now).max(0) / SECOND) as u64)),
    })
}
