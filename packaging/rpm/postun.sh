# crowdwall %postun ($1: 0 = erase, 1 = upgrade): erase removes the state and the allowlist
# drop-in (rpm has no purge; a changed config is kept as crowdwall.toml.rpmsave).
if [ "$1" -eq 0 ]; then
    rm -rf /var/lib/crowdwall /run/crowdwall
    rm -f /etc/crowdwall/allowlist.d/installer.list
    rmdir /etc/crowdwall/allowlist.d 2>/dev/null || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
