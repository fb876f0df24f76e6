//! Text inputs for replay: syslog lines and `journalctl -o json` lines. OWNER: source helper.
