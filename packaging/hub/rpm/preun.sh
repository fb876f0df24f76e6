# crowdwall-hub: stop and disable on removal (not on upgrade).
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl disable --now crowdwall-hub.service >/dev/null 2>&1 || :
fi
