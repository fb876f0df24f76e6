# crowdwall %preun ($1: 0 = erase, 1 = upgrade): on erase stop the service and take the
# nftables table out (nothing would manage its bans any more).
if [ "$1" -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl disable --now crowdwall.service >/dev/null 2>&1 || :
    fi
    /usr/bin/crowdwall firewall remove >/dev/null 2>&1 || :
fi
