# crowdwall-hub: enable and start on a fresh install (systemd only).
if [ "$1" -eq 1 ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    systemctl enable --now crowdwall-hub.service >/dev/null 2>&1 || :
fi
