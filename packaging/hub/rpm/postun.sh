# crowdwall-hub: the database goes with the package (rpm has no purge).
if [ "$1" -eq 0 ]; then
    rm -rf /var/lib/crowdwall-hub /var/lib/private/crowdwall-hub
fi
if [ "$1" -ge 1 ] && [ -d /run/systemd/system ]; then
    systemctl try-restart crowdwall-hub.service >/dev/null 2>&1 || :
fi
