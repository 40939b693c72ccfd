#!/bin/sh
# Install wasmd as a system service: ./systemd/install.sh [PREFIX]   (as root)
#   PREFIX (default /opt/wasmd) gets a virtualenv with wasmd and, in share/doc/wasmd, the docs
#   the unit's Documentation= names; units, sysusers and an example config go where systemd
#   looks for them; the socket is enabled and started.
#   Environment: PYTHON (default /usr/bin/python3), SYSUSERS_DIR (default /usr/lib/sysusers.d;
#   /etc/sysusers.d where /usr is read-only, as in tests/test_system_nspawn.py's container).
set -eu
prefix=${1:-/opt/wasmd}
sysusers=${SYSUSERS_DIR:-/usr/lib/sysusers.d}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
units=/etc/systemd/system

# A system Python: the unit's ProtectHome=yes hides interpreters under /root or /home
# (pyenv and the like), which would fail the start with 203/EXEC.
python=${PYTHON:-/usr/bin/python3}
"$python" -m venv "$prefix"
"$prefix/bin/pip" install -q "$repo"
install -d -m 0755 "$prefix/share/doc/wasmd"
install -m 0644 "$repo/README.md" "$repo"/docs/*.md "$prefix/share/doc/wasmd/"

install -D -m 0644 "$here/wasmd.sysusers.conf" "$sysusers/wasmd.conf"
systemd-sysusers "$sysusers/wasmd.conf"

sed "s|/opt/wasmd|$prefix|g" "$here/wasmd.service" > "$units/wasmd.service"
install -m 0644 "$here/wasmd.socket" "$units/wasmd.socket"
mkdir -p "$units/wasmd.service.d"
version=$(systemctl --version | awk 'NR == 1 { print $2 }')
if [ "$version" -ge 253 ]; then
    install -m 0644 "$here/wasmd.service.d/notify-reload.conf" "$units/wasmd.service.d/"
fi

install -d -m 0755 /etc/wasmd /etc/wasmd/plugins.d
[ -e /etc/wasmd/wasmd.toml ] || install -m 0644 "$here/wasmd.toml" /etc/wasmd/wasmd.toml

# Beyond one machine (docs/operations.md), installed but not enabled: the NATS bridge and the
# OCI puller, with their extras, settings and the bridge's user.
"$prefix/bin/pip" install -q "$repo[bridge,oci]"
install -D -m 0644 "$here/wasmd-remote.sysusers.conf" "$sysusers/wasmd-remote.conf"
systemd-sysusers "$sysusers/wasmd-remote.conf"
for unit in wasmd-bridge.service wasmd-pull.service wasmd-pull.timer; do
    sed "s|/opt/wasmd|$prefix|g" "$here/$unit" > "$units/$unit"
done
[ -e /etc/wasmd/bridge.env ] || install -m 0600 "$here/bridge.env" /etc/wasmd/bridge.env
[ -e /etc/wasmd/sources.toml ] || install -m 0644 "$here/sources.toml" /etc/wasmd/sources.toml

systemctl daemon-reload
systemctl enable --now wasmd.socket
echo "wasmd installed in $prefix; socket /run/wasmd/wasmd.sock (group wasmd)."
echo "Drop plug-ins into /etc/wasmd/plugins.d; add users to the group: usermod -aG wasmd USER"
echo "Remote calls: edit /etc/wasmd/bridge.env, then systemctl enable --now wasmd-bridge"
echo "Plug-ins from a registry: edit /etc/wasmd/sources.toml, then systemctl enable --now wasmd-pull.timer"
