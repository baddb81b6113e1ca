#!/usr/bin/env bash
# Install speakerd as a systemd service on Raspberry Pi OS Bookworm (Python 3.11) or Trixie (3.13).
#
#   sudo scripts/install.sh                      # install or upgrade; asks for the API key once
#   sudo scripts/install.sh --api-key-file FILE  # take the key from a file (or - for stdin)
#   sudo scripts/install.sh --uninstall          # remove; keeps /etc/speakerd and /var/lib/speakerd
#   sudo scripts/install.sh --uninstall --purge  # also remove configuration, state and the user
#
# Idempotent: running it again upgrades the code and keeps your configuration and key.
# DESTDIR=/some/root installs into that tree only: no apt, no user, no systemctl (used by tests).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
. "$root/scripts/lib.sh"

DESTDIR=${DESTDIR:-}
PREFIX=/opt/speakerd
ETC=/etc/speakerd
UNIT_DIR=/etc/systemd/system
mode=install purge=no start=yes key_file=""

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
    case $1 in
        --uninstall) mode=uninstall ;;
        --purge) purge=yes ;;
        --no-start) start=no ;;
        --api-key-file) key_file=${2:?--api-key-file needs a path}; shift ;;
        -h|--help) usage 0 ;;
        *) printf 'unknown option: %s\n' "$1" >&2; usage 2 ;;
    esac
    shift
done

d() { printf '%s%s' "$DESTDIR" "$1"; }
have_systemd() { [ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }
if [ -z "$DESTDIR" ] && [ "$(id -u)" -ne 0 ]; then die "run as root: sudo $0 $*"; fi

do_uninstall() {
    if have_systemd; then
        systemctl disable --now speakerd.service 2>/dev/null || true
    fi
    rm -f "$(d $UNIT_DIR/speakerd.service)" "$(d /usr/local/bin/speakerctl)" "$(d /usr/local/bin/speakerd)"
    rm -rf "$(d $PREFIX)"
    if [ "$purge" = yes ]; then
        rm -rf "$(d $ETC)" "$(d /var/lib/speakerd)"
        if [ -z "$DESTDIR" ] && id speakerd >/dev/null 2>&1; then userdel speakerd || true; fi
        say "speakerd removed, with its configuration, state and user"
    else
        say "speakerd removed; configuration kept in $ETC (use --purge to remove it)"
    fi
    have_systemd && systemctl daemon-reload
    return 0
}

read_key() {
    # The key goes to a root-only file that systemd hands the service as a credential.
    local key=""
    if [ -n "$key_file" ]; then
        if [ "$key_file" = - ]; then IFS= read -r key || true; else key=$(cat -- "$key_file"); fi
    elif [ -t 0 ]; then
        IFS= read -r -s -p "Gemini API key (input hidden; empty to set it later): " key || true
        echo >&2
    fi
    printf '%s' "$key" | tr -d '[:space:]'
}

do_install() {
    local py venv
    if [ -z "$DESTDIR" ]; then
        apt_ensure "${SPEAKERD_BUILD_PKGS[@]}" "${SPEAKERD_RUNTIME_PKGS[@]}" python3-spidev
        apt_optional python3-lgpio
    fi
    py=$(pick_python)
    venv=$(d $PREFIX/venv)
    say "installing speakerd into $PREFIX/venv ($("$py" --version))"
    mkdir -p "$(d $PREFIX)"
    # --system-site-packages: Debian's python3-lgpio (no aarch64 wheel on PyPI) and picamera2.
    [ -x "$venv/bin/python" ] || "$py" -m venv --system-site-packages "$venv"
    "$venv/bin/python" -m pip --disable-pip-version-check -q install --upgrade setuptools wheel
    venv_install "$venv" "$root" copy
    mkdir -p "$(d /usr/local/bin)"
    ln -sfn "$PREFIX/venv/bin/speakerctl" "$(d /usr/local/bin/speakerctl)"
    ln -sfn "$PREFIX/venv/bin/speakerd" "$(d /usr/local/bin/speakerd)"

    if [ -z "$DESTDIR" ] && ! id speakerd >/dev/null 2>&1; then
        say "creating the system user speakerd"
        useradd --system --user-group --home-dir /var/lib/speakerd --shell /usr/sbin/nologin speakerd
    fi
    if [ -z "$DESTDIR" ]; then
        local g
        # The unit asks for SupplementaryGroups=audio gpio spi, and systemd refuses to start it
        # (216/GROUP) if one is missing: Raspberry Pi OS has gpio and spi, plain Debian does not.
        for g in gpio spi; do
            getent group "$g" >/dev/null || groupadd --system "$g"
        done
        for g in audio gpio spi video; do
            getent group "$g" >/dev/null && usermod -aG "$g" speakerd
        done
    fi

    install -d -m 0755 "$(d $ETC)"
    if [ ! -e "$(d $ETC/speakerd.toml)" ]; then
        install -m 0644 "$root/config/speakerd.toml" "$(d $ETC/speakerd.toml)"
        say "wrote $ETC/speakerd.toml (edit it, then: sudo systemctl reload speakerd)"
    else
        install -m 0644 "$root/config/speakerd.toml" "$(d $ETC/speakerd.toml.example)"
        say "kept your $ETC/speakerd.toml (the new defaults are in speakerd.toml.example)"
    fi
    install -d -m 0700 "$(d $ETC/credentials)"
    local cred key
    cred=$(d $ETC/credentials/gemini-api-key)
    if [ ! -s "$cred" ] || [ -n "$key_file" ]; then
        key=$(read_key)
        if [ -n "$key" ]; then
            (umask 077 && printf '%s' "$key" > "$cred.tmp" && mv -f "$cred.tmp" "$cred")
            say "stored the API key in $ETC/credentials/gemini-api-key (root only)"
        elif [ ! -e "$cred" ]; then
            (umask 077 && : > "$cred")
            say "no API key yet: put it in $ETC/credentials/gemini-api-key, then restart speakerd"
        fi
    fi
    chmod 0600 "$cred"

    install -d -m 0755 "$(d $UNIT_DIR)"
    install -m 0644 "$root/systemd/speakerd.service" "$(d $UNIT_DIR/speakerd.service)"
    if have_systemd; then
        systemctl daemon-reload
        if "$venv/bin/speakerd" check-config --quiet --config "$ETC/speakerd.toml"; then
            systemctl enable speakerd.service >/dev/null
            if [ "$start" = yes ]; then systemctl restart speakerd.service; fi
            say "speakerd is running: systemctl status speakerd; journalctl -u speakerd -f"
        else
            say "fix the configuration above, then: sudo systemctl enable --now speakerd"
        fi
    else
        say "installed; start it with: systemctl enable --now speakerd"
    fi
}

if [ "$mode" = uninstall ]; then do_uninstall; else do_install; fi
