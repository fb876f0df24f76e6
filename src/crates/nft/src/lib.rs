//! nftables through netlink: the production [`Firewall`](crowdwall_engine::enforce::Firewall),
//! [`NftFirewall`].
//!
//! # What it builds
//!
//! In own-table mode (`mode = "table"`, the default) everything lives in one `inet` table
//! of crowdwall's own. For each origin of a ban (local, manual, community, crowdsec, lists)
//! it holds:
//!
//! - a hash set of single addresses per family, `<origin>_v4` and `<origin>_v6`, with the
//!   timeout flag: every element carries its own expiry, so bans keep expiring in the kernel
//!   when the daemon is gone;
//! - an interval set of ranges (CIDR bans) per family, `<origin>_v4_net` and
//!   `<origin>_v6_net`, with timeouts likewise;
//! - a named counter `<origin>`;
//! - a verdict chain `ban_<origin>`: the counter, then `drop`, or with `verdict = "reject"`
//!   a TCP reset for TCP and ICMP(v6) administratively prohibited otherwise.
//!
//! The base chain `input`, and `forward` when that hook is enabled, has one rule per set:
//! the packet's source address is looked up in the set and a match jumps to that origin's
//! verdict chain. Each IPv4 set has a second rule for IPv6 packets from IPv4-mapped sources
//! (`::ffff:a.b.c.d`): their low 32 bits are looked up in the IPv4 set, so a mapped source
//! never slips past. Every load rebuilds the table in one transaction (add, delete, add,
//! then its contents), so the result does not depend on what was there before, and the old
//! table stays in force until the commit swaps in the new one.
//!
//! In set-only mode (`mode = "sets"`) crowdwall creates nothing: it fills the
//! administrator's own sets (`set_v4`, `set_v6`, `set_v4_net`, `set_v6_net`) in a table of
//! theirs, whose rules decide what a match does. At open the sets must exist with the right
//! key type and `flags timeout` (`flags interval, timeout` for the `_net` ones); a load
//! flushes and refills them in one transaction, so there is no moment without the bans.
//!
//! A second socket listens to the nftables event group so that changes someone else makes
//! to our table are noticed ([`Drift`](crowdwall_engine::enforce::Drift)) without polling.
//!
//! # Transport, and why it looks the way it does
//!
//! Every call is one nfnetlink batch built into one contiguous buffer and sent with one
//! `sendmsg`. A batch split over several sends (as `nftnl::Batch` does, in 128 KiB pages,
//! when sent with `mnl::Socket::send_all`) is seen by the kernel as a batch without END and
//! silently aborted, while its early messages are acked as success. A batch larger than the
//! socket's send buffer fails with EMSGSIZE, so the buffer is raised to the batch size
//! first (SO_SNDBUFFORCE). The kernel runs the whole batch inside `sendmsg`, so all acks are
//! queued when it returns: we drain the socket and match every `nlmsgerr` to its sequence
//! number, never stopping at the first one. Element messages carry as many elements as fit
//! one 64 KiB netlink attribute, so 100k bans are ~50 messages and ~50 acks, far from the
//! receive buffer's limit (overflowing it, ENOBUFS, loses acks while the batch may still
//! have committed). NETLINK_CAP_ACK keeps error acks from echoing our 64 KiB messages back;
//! NETLINK_EXT_ACK makes them name the offset of the failing element.
//!
//! # Kernel behaviour relied on (checked by `tests/netlink.rs` on 6.18)
//!
//! - A range ending at the family's last address is sent as a start element alone (its end
//!   would be one past the last address); the kernel accepts it, matches it open-ended, and
//!   deletes it by its start. `nft` shows it as the expected prefix.
//! - Adjacent ranges are fine: the end of one and the start of the next share a key and are
//!   told apart by the INTERVAL_END flag. Overlapping ranges abort the transaction
//!   (EEXIST), which is why the engine's plan hands over disjoint ranges only.
//! - Element adds carry no NLM_F_EXCL, so re-adding an element already there is a no-op
//!   instead of an EEXIST that would abort the transaction. Before 6.12 a re-add does not
//!   refresh the timeout either, so a refresh is a delete and an add in one transaction;
//!   deleting a missing element fails with ENOENT and aborts it.
//! - BEGIN/END carry no NLM_F_ACK: only kernels >= 6.10 would ack them (6.18 does when asked).
//! - Every other message is acked whether the batch commits or aborts; on abort the errors name
//!   the failing message, and with NETLINK_EXT_ACK the offset of the failing element.
//! - 100k ranges are 200k rbtree elements in an interval set: the kernel spends ~0.4 s
//!   inside `sendmsg` on them (userspace builds the 5 MB batch in ~50 ms). Dumping them back
//!   takes ~1 s, most of it in the kernel, whose set dump resumes each 32 KiB part by walking
//!   from the first element.
//!
//! Objects (table, chains, sets, rules) are serialised by the `nftnl` crate; counters and
//! element messages by `libnftnl` through `nftnl-sys`, because the safe crate has no named
//! counters, no element timeouts or flags, and adds with `NLM_F_EXCL`. Replies are parsed by
//! hand ([`wire`]): they are a few plain attributes.
//!
//! # Modules
//!
//! - [`wire`] (public): netlink message and attribute reading and writing, meant to be
//!   shared with the NFLOG source.
//! - `sock`: the transaction socket, acks, errors. `dump`: dumps and read-backs.
//! - `batch`: the batch buffer. `elem`: element encoding and decoding. `objects`: the own
//!   table's objects. `events`: the event listener. `firewall`: [`NftFirewall`].

mod batch;
mod consts;
mod dump;
mod elem;
mod events;
mod firewall;
mod objects;
mod sock;
pub mod spec;
pub mod wire;

pub use firewall::NftFirewall;
pub use spec::{FirewallHook, FirewallSection, FirewallSpec, Mode, TableFamily, Verdict};
