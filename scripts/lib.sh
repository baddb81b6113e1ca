# Shared shell helpers for speakerd's scripts. Source it; do not run it.
# shellcheck shell=bash

# Debian packages: building PyAudio and systemd-python, and the test rig's audio tools.
SPEAKERD_BUILD_PKGS=(python3-venv python3-dev gcc pkg-config portaudio19-dev libsystemd-dev)
SPEAKERD_RIG_PKGS=(espeak-ng sox alsa-utils systemd)
# Only for scripts/test.sh: systemd-container boots the shipped unit under a real systemd, and a
# PulseAudio server behind ALSA's pulse plugin is a microphone that can vanish mid-stream.
SPEAKERD_TEST_PKGS=(systemd-container libasound2-plugins libspeexdsp1)

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
    # openwakeword 0.5.1 ships the models but asks for tflite-runtime (no wheel past 3.11): skip it.
    "${pip[@]}" install --no-deps "openwakeword==0.5.1"
    mapfile -t reqs < <("$venv/bin/python" "$root/scripts/deps.py" "$@")
    "${pip[@]}" install "${reqs[@]}"
    if [ "$editable" = editable ]; then
        "${pip[@]}" install --no-deps --no-build-isolation -e "$root"
    else
        "${pip[@]}" install --no-deps --no-build-isolation "$root"
    fi
}
