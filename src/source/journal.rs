//! The systemd journal through sd-journal. OWNER: source helper.
