# Shared shell helpers for speakerd's scripts. Source it; do not run it.
# shellcheck shell=bash

# Debian packages: building PyAudio and systemd-python, and the test rig's audio tools.
SPEAKERD_BUILD_PKGS=(python3-venv python3-dev gcc pkg-config portaudio19-dev libsystemd-dev)
# What the daemon itself uses at run time: ALSA tools, libspeexdsp for echo cancellation, and the
# time-zone database for alarms.
SPEAKERD_RUNTIME_PKGS=(alsa-utils libspeexdsp1 tzdata)
SPEAKERD_RIG_PKGS=(espeak-ng sox alsa-utils systemd)
# Only for scripts/test.sh: systemd-container boots the shipped unit under a real systemd, a
# PulseAudio server behind ALSA's pulse plugin is a microphone that can vanish mid-stream, acl's
# setfacl makes credentials like systemd 257's (root-owned, ACL for the service user), tzdata
# gives the timer tests Europe/Berlin's daylight-saving rules, mosquitto is the real MQTT broker
# the Home Assistant tests and bench/arbitration.py start, and debootstrap builds the Debian roots
# of the opt-in install runs (scripts/platforms.py); faketime runs the daemon across a daylight-saving change.
SPEAKERD_TEST_PKGS=(systemd-container libasound2-plugins acl tzdata mosquitto debootstrap faketime)

# test_pkgs: SPEAKERD_TEST_PKGS, plus pulseaudio unless PipeWire serves Pulse clients here
# (installing pulseaudio would remove pipewire-pulse from a desktop; those tests then skip).
test_pkgs() {
    printf '%s\n' "${SPEAKERD_TEST_PKGS[@]}"
    dpkg-query -W -f='${Status}' pipewire-pulse 2>/dev/null | grep -q "install ok installed" || echo pulseaudio
}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root for: $* (install sudo or run as root)"; fi
}

# apt_ensure PKG...: install the Debian packages that are missing (apt-get update only when needed).
apt_ensure() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    command -v apt-get >/dev/null 2>&1 || die "missing packages ${missing[*]} and no apt-get: install them by hand"
    say "installing Debian packages: ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# apt_optional PKG...: install those of the packages this system's archives have; say which not.
# (python3-lgpio is in Raspberry Pi OS's archive, not Debian's: plain Debian runs without it.)
apt_optional() {
    local pkg have=() updated=no
    for pkg in "$@"; do
        if ! apt-cache show "$pkg" >/dev/null 2>&1 && [ "$updated" = no ]; then
            as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
            updated=yes
        fi
        if apt-cache show "$pkg" >/dev/null 2>&1; then have+=("$pkg")
        else say "skipping $pkg: not in this system's package archives"; fi
    done
    [ "${#have[@]}" -eq 0 ] || apt_ensure "${have[@]}"
}

# pick_python: the newest python3 >= 3.11 on PATH.
pick_python() {
    local py
    for py in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$py" ] || continue
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$py"; return 0
        fi
    done
    die "speakerd needs Python 3.11 or newer"
}

# venv_install VENV ROOT [EDITABLE] [EXTRA...]: install speakerd and its dependencies into VENV.
venv_install() {
    local venv=$1 root=$2 editable=$3; shift 3
    local -a pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
    "${pip[@]}" install --upgrade pip >/dev/null
    mapfile -t reqs < <("$venv/bin/python" "$root/scripts/deps.py" "$@")
    # openwakeword 0.5.1 ships the models but asks for tflite-runtime (no wheel past 3.11) and for
    # training-only packages, so it goes in without them (--no-deps checks nothing). Whenever pip
    # later installs or upgrades something openwakeword depends on (numpy, onnxruntime), it would
    # re-check openwakeword and print a red "dependency resolver" ERROR about tflite-runtime:
    # --no-warn-conflicts, because the resolver has already made our own requirements agree.
    "${pip[@]}" install --no-warn-conflicts "${reqs[@]}"
    "${pip[@]}" install --no-deps "openwakeword==0.5.1"
    if [ "$editable" = editable ]; then
        "${pip[@]}" install --no-deps --no-build-isolation -e "$root"
    else
        "${pip[@]}" install --no-deps --no-build-isolation "$root"
    fi
}
