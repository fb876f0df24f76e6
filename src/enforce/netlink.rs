//! nftables through netlink. OWNER: netlink helper.
