# crowdwall %post ($1: 1 = install, 2 = upgrade). rpm has no debhelper: the systemd steps are
# spelled out and skipped when systemd is not PID 1 (containers, build roots).
install -d -m 0700 /var/lib/crowdwall
install -d -m 0755 /etc/crowdwall/allowlist.d
if [ "$1" -eq 1 ] && [ ! -e /etc/crowdwall/allowlist.d/installer.list ]; then
    if addr=$(/usr/bin/crowdwall installer-address 2>/dev/null) && [ -n "$addr" ]; then
        {
            echo "# Address of the SSH session that installed crowdwall, allowlisted so that its own"
            echo "# install cannot lock it out. Delete this file to stop allowlisting it."
            echo "$addr"
        } > /etc/crowdwall/allowlist.d/installer.list
        echo "crowdwall: allowlisted $addr (this SSH session) in /etc/crowdwall/allowlist.d/installer.list"
    fi
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -eq 1 ]; then
        systemctl enable --now crowdwall.service >/dev/null 2>&1 || :
    else
        systemctl try-restart crowdwall.service >/dev/null 2>&1 || :
    fi
fi
if [ ! -d /run/systemd/system ]; then
    echo "crowdwall: systemd is not running here, so the service was NOT started: nothing protects sshd yet." >&2
    echo "crowdwall: start the daemon yourself with 'crowdwall run' (in the foreground, or under your init system)." >&2
fi
