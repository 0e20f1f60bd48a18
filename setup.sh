#!/usr/bin/env bash
# PiBuddy installer: Debian packages, the checkout's .venv with PiBuddy in it, and optionally the
# systemd service. Idempotent: a second run changes nothing and takes a second or two.
set -euo pipefail

# ---- Debian packages: features add theirs here, with a word on why. ----------------------------------

# What PiBuddy needs to build and run on the Pi.
APT_RUNTIME_PACKAGES=(
    python3 python3-venv python3-dev # the interpreter (>= 3.11), venv, headers for C extensions
    build-essential pkg-config       # the C fast path, and wheels that are sdist-only on ARM
    libssl-dev libffi-dev            # building cryptography/cffi where no wheel exists, and the C fast path
    libssl3                          # libcrypto, which the C UDP packet fast path links at run time
    ca-certificates                  # TLS to the xiaozhi server and Home Assistant
    libopus0                         # Opus codec, loaded by opuslib-next through ctypes
    libportaudio2                    # PortAudio, loaded by sounddevice
    alsa-utils                       # arecord/aplay/amixer for audio troubleshooting
    libasound2-plugins               # the ALSA "pulse" PCM, for PulseAudio/PipeWire desktops
    espeak-ng                        # local speech for prompts and offline notices
)

# What the tests need on top (--dev): peers they start themselves on 127.0.0.1.
APT_DEV_PACKAGES=(
    mosquitto                        # MQTT broker (the system service is disabled; tests run their own)
    pulseaudio pulseaudio-utils      # null-sink virtual mic and speaker, paplay/parec/pactl
    shellcheck                       # lints setup.sh and scripts/ (tests/test_setup_script.py)
    dbus libdbus-1-dev libglib2.0-dev # a private D-Bus with python-dbusmock's BlueZ (builds dbus-python)
    sox                              # test speech: espeak-ng output padded and resampled
    redis-server                     # the gateways' shared device registry (the system service is disabled)
    systemd                          # systemd-analyze: the unit's verify and security-score tests
    chromium                         # the household page, driven headless by playwright (never a downloaded browser)
)

# The Silero VAD model comes from this wheel, installed without its dependencies (see step_install).
SILERO_VAD_REQUIREMENT='silero-vad>=6,<7'

# ---- Service layout (--service). -----------------------------------------------------------------------

SERVICE_USER=pibuddy
# Device access comes from the user's groups: systemd applies them (initgroups) for User=, so the unit
# needs no SupplementaryGroups= line, which would fail the unit on a system lacking one of the groups.
SERVICE_GROUPS=(audio gpio bluetooth video spi i2c)
CONFIG_DIR=/etc/pibuddy
STATE_DIR=/var/lib/pibuddy
UNIT_DIR=/etc/systemd/system
UNIT_NAME=pibuddy.service
MIN_PYTHON=(3 11)

# ---- Raspberry Pi ---------------------------------------------------------------------------------------

# Groups that open the Pi's devices: sound, GPIO pins, SPI (LED rings) and I2C (HAT codecs).
PI_USER_GROUPS=(audio gpio spi i2c)
PI_MODEL_FILE=/proc/device-tree/model
PI_CONFIG_TXT=/boot/firmware/config.txt # Raspberry Pi OS bookworm; read, never written
# Device-tree overlays of common I2S sound HATs (dtoverlay=NAME in config.txt), for the hint only.
PI_I2S_OVERLAYS=(
    "googlevoicehat-soundcard: Google AIY Voice HAT and I2S MEMS microphones"
    "wm8960-soundcard: WM8960 HATs (ReSpeaker 2-Mics v1, Waveshare WM8960 Audio HAT)"
    "max98357a: MAX98357A I2S amplifier (speaker only)"
    "hifiberry-dac: PCM5102A DACs (speaker only)"
)

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$REPO/.venv"
STAMP="$VENV/.pibuddy-setup-stamp"
# PIBUDDY_ROOT: install the --service files under this prefix instead of / (like DESTDIR; for tests).
ROOT="${PIBUDDY_ROOT:-}"
ROOT="${ROOT%/}"

CHANGES=0
DEV=0
SERVICE=0
USE_APT=1
VOSK_MODEL=""
PIPER_VOICE=""

usage() {
    cat <<EOF
Usage: ./setup.sh [--dev] [--service] [--no-apt] [--help]

Installs PiBuddy from this checkout: the Debian packages it needs, a virtualenv in .venv with PiBuddy
installed (editable), and optionally a systemd service. Safe to run again after pulling new code: steps
that are already done are skipped, and a run with nothing to do says so.

Options:
  --dev       also install the test extras (pip '.[test]') and the Debian packages the tests start as
              peers (mosquitto, pulseaudio, ...). The mosquitto system service is disabled again:
              tests run their own broker on 127.0.0.1. ./scripts/test.sh runs this for you.
  --service   (root) run PiBuddy at boot: create the '$SERVICE_USER' system user (in the groups
              ${SERVICE_GROUPS[*]} where they exist), install config.yaml as $CONFIG_DIR/config.yaml (mode 640, never
              overwriting an existing one), create $STATE_DIR (mode 700), install and enable
              $UNIT_NAME with ExecStart pointing at this checkout's .venv. The checkout must not live
              under /home or /root (the service cannot see them); /opt/pibuddy is the usual place.
  --no-apt    skip the Debian packages (machines managed otherwise); install them yourself.
  --vosk-model LANGUAGE
              download the small vosk model for LANGUAGE (zh-CN, en-US, de-DE, fr-FR, es-ES, ru-RU,
              ja-JP) or a model by name (vosk-model-...), once, for wake phrases and the local brain in
              languages other than English; prints the config keys to point at it.
  --piper-voice VOICE
              download a piper voice (e.g. en_US-lessac-medium, zh_CN-huayan-medium) for the local
              brain's replies. The piper program itself is installed on its own (see README).
  -h, --help  show this help.

Environment:
  PIBUDDY_PYTHON  the Python (>= ${MIN_PYTHON[0]}.${MIN_PYTHON[1]}) that creates .venv (default: python3)
  PIBUDDY_ROOT    with --service, install files under this directory instead of /, and read the Raspberry
                  Pi's model and $PI_CONFIG_TXT from it (for testing)
  PIBUDDY_MODELS_DIR
                  where --vosk-model/--piper-voice put models (default: 'models' in the state dir)
  PIBUDDY_VOSK_MIRROR, PIBUDDY_PIPER_MIRROR
                  download models from these mirrors (same layout as the official sites)

Apt runs through sudo when you are not root.
EOF
}

say() { printf '==> %s\n' "$*"; }
info() { printf '    %s\n' "$*"; }
die() {
    printf 'setup.sh: error: %s\n' "$*" >&2
    exit 1
}
changed() { CHANGES=$((CHANGES + 1)); }

parse_args() {
    local arg
    while [[ $# -gt 0 ]]; do
        arg="$1"
        shift
        case "$arg" in
            --dev) DEV=1 ;;
            --service) SERVICE=1 ;;
            --no-apt) USE_APT=0 ;;
            --vosk-model | --piper-voice)
                [[ $# -gt 0 && $1 != -* ]] || die "$arg needs a value (see ./setup.sh --help)"
                if [[ $arg == --vosk-model ]]; then VOSK_MODEL="$1"; else PIPER_VOICE="$1"; fi
                shift
                ;;
            -h | --help)
                usage
                exit 0
                ;;
            *)
                printf 'setup.sh: unknown option: %s (see ./setup.sh --help)\n' "$arg" >&2
                exit 2
                ;;
        esac
    done
}

# Run a command as root: directly, through sudo, or fail with a way out.
as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "installing Debian packages needs root: run as root, install sudo, or use --no-apt"
    fi
}

systemd_running() { [[ -d /run/systemd/system ]]; }

# ---- Step 0: a 64-bit system --------------------------------------------------------------------------

# PiBuddy's binary wheels (onnxruntime for Silero VAD, pymicro-wakeword, numpy 2) exist on PyPI for 64-bit
# x86 and ARM only. 32-bit Raspberry Pi OS (armhf, even on a 64-bit kernel) would have to compile numpy
# and has no onnxruntime or micro wake word at all, so it is refused rather than half supported.
check_architecture() {
    local arch
    if command -v dpkg >/dev/null; then
        arch="$(dpkg --print-architecture)" # the userland's, which is what wheels must match
    else
        arch="$(uname -m)"
    fi
    case "$arch" in
        amd64 | arm64 | x86_64 | aarch64) ;;
        armhf | armel | arm | armv6l | armv7l)
            die "this is a 32-bit ARM system ($arch). PiBuddy needs a 64-bit OS: its wake word, VAD" \
                "(onnxruntime) and numpy have no 32-bit ARM wheels. Flash Raspberry Pi OS (64-bit) bookworm;" \
                "it runs on the Pi 3, 4, 5, 400 and Zero 2 W (not on the Pi 1, 2 or Zero W)."
            ;;
        *) die "unsupported architecture '$arch': PiBuddy's binary dependencies exist for amd64 and arm64 only" ;;
    esac
}

# ---- Step 1: Debian packages ---------------------------------------------------------------------------

missing_packages() {
    local -A installed=()
    local name status
    while read -r name status; do
        [[ $status == installed ]] && installed[$name]=1
    done < <(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" 2>/dev/null || true)
    for name in "$@"; do
        [[ -n ${installed[$name]:-} ]] || printf '%s\n' "$name"
    done
}

step_apt() {
    say "Debian packages"
    if [[ $USE_APT -eq 0 ]]; then
        info "skipped (--no-apt)"
        return
    fi
    if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
        die "no dpkg/apt here: setup.sh supports Debian 12 and Raspberry Pi OS;" \
            "use --no-apt and install the equivalents of: ${APT_RUNTIME_PACKAGES[*]}"
    fi
    local wanted=("${APT_RUNTIME_PACKAGES[@]}")
    [[ $DEV -eq 1 ]] && wanted+=("${APT_DEV_PACKAGES[@]}")
    local missing
    mapfile -t missing < <(missing_packages "${wanted[@]}")
    if [[ ${#missing[@]} -eq 0 ]]; then
        info "all ${#wanted[@]} already installed"
        return
    fi
    info "installing: ${missing[*]}"
    local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -q -o DPkg::Lock::Timeout=300)
    as_root "${apt[@]}" update
    as_root "${apt[@]}" install -y --no-install-recommends "${missing[@]}"
    changed
    if [[ " ${missing[*]} " == *" mosquitto "* ]] && systemd_running; then
        info "disabling the mosquitto system service (tests start their own broker)"
        as_root systemctl disable --now mosquitto.service
    fi
    if [[ " ${missing[*]} " == *" redis-server "* ]] && systemd_running; then
        info "disabling the redis-server system service (tests start their own)"
        as_root systemctl disable --now redis-server.service
    fi
}

# ---- Step 2: Python and the virtualenv -----------------------------------------------------------------

# Succeeds when $1 runs and is at least MIN_PYTHON.
python_ok() {
    "$1" -c "import sys; sys.exit(sys.version_info < (${MIN_PYTHON[0]}, ${MIN_PYTHON[1]}))" 2>/dev/null
}

# Dies unless $1 is on PATH and at least MIN_PYTHON.
require_python() {
    command -v "$1" >/dev/null ||
        die "no '$1' found: install python3 (>= ${MIN_PYTHON[0]}.${MIN_PYTHON[1]}) or set PIBUDDY_PYTHON"
    python_ok "$1" ||
        die "PiBuddy needs Python >= ${MIN_PYTHON[0]}.${MIN_PYTHON[1]}, but '$1' is" \
            "$("$1" --version 2>&1 || echo 'not working')." \
            "Debian 12 and Raspberry Pi OS bookworm ship 3.11 (bullseye's 3.9 is too old: upgrade to" \
            "bookworm); elsewhere install a newer Python" \
            "and point PIBUDDY_PYTHON at it."
}

# Run before the apt step, so that bullseye's Python 3.9 is refused before any package is installed. A system
# with no python3 at all gets Debian's from the apt step (3.11 on bookworm); step_venv checks that one.
check_python() {
    [[ -x $VENV/bin/python ]] && python_ok "$VENV/bin/python" && return
    [[ -z ${PIBUDDY_PYTHON:-} ]] && ! command -v python3 >/dev/null && return
    require_python "${PIBUDDY_PYTHON:-python3}"
}

step_venv() {
    say "Python virtualenv ($VENV)"
    if [[ -x $VENV/bin/python ]] && python_ok "$VENV/bin/python"; then
        info "exists ($("$VENV/bin/python" --version 2>&1))"
        return
    fi
    local python="${PIBUDDY_PYTHON:-python3}"
    require_python "$python"
    if [[ -e $VENV ]]; then
        info "recreating: the existing one has no working Python >= ${MIN_PYTHON[0]}.${MIN_PYTHON[1]}"
    fi
    "$python" -m venv --clear "$VENV" ||
        die "could not create $VENV with $python (on Debian: apt-get install python3-venv)"
    info "created with $("$VENV/bin/python" --version 2>&1)"
    changed
}

# ---- Step 3: PiBuddy into the virtualenv ---------------------------------------------------------------

# A hash of everything that needs a reinstall when it changes: the packaging metadata and the C sources
# (the editable install picks up Python changes by itself).
source_hash() {
    local files=(pyproject.toml) f
    for f in setup.py setup.cfg; do
        [[ -f $f ]] && files+=("$f")
    done
    while IFS= read -r -d '' f; do
        files+=("$f")
    done < <(find . \( -path ./.venv -o -path ./.git -o -path ./build \) -prune -o \
        -type f \( -name '*.c' -o -name '*.h' -o -name '*.pyx' \) -print0 | LC_ALL=C sort -z)
    sha256sum "${files[@]}" | sha256sum | cut -d' ' -f1
}

# The installed PiBuddy is usable: the console script points at this venv and the package imports.
install_healthy() {
    local shebang
    [[ -x $VENV/bin/pibuddy ]] || return 1
    IFS= read -r shebang <"$VENV/bin/pibuddy" || return 1
    [[ $shebang == "#!$VENV/bin/"* ]] || return 1
    "$VENV/bin/python" -c 'import pibuddy' 2>/dev/null
}

# The C packet fast path is optional (setup.py falls back to its Python twin, and pip -q hides why):
# say which one this install runs.
report_packet_path() {
    local path
    path="$(env -u PIBUDDY_NATIVE "$VENV/bin/python" -c \
        'from pibuddy.xiaozhi.udp_codec import PACKET_PATH; print(PACKET_PATH)')"
    if [[ $path == native* ]]; then
        info "UDP packet path: $path"
    else
        printf 'setup.sh: WARNING: UDP packet path: %s; install build-essential and libssl-dev, then run %s\n' \
            "$path" "$VENV/bin/pip install -e $REPO" >&2
    fi
}

step_install() {
    local extras="runtime" target="."
    if [[ $DEV -eq 1 ]]; then
        extras="test"
        target=".[test]"
    fi
    say "PiBuddy in the virtualenv (extras: $extras)"
    local hash recorded_hash="" recorded_extras=""
    hash="$(source_hash)"
    [[ -f $STAMP ]] && read -r recorded_hash recorded_extras <"$STAMP"
    if [[ $recorded_hash == "$hash" && ($recorded_extras == test || $extras == runtime) ]] && install_healthy; then
        info "up to date (pyproject.toml and C sources unchanged)"
        return
    fi
    info "pip install -e '$target'"
    rm -f "$STAMP"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q -e "$target"
    # The Silero VAD model file ships in the silero-vad wheel, whose dependencies (torch) PiBuddy never
    # imports: onnxruntime runs the model. --no-deps keeps torch out.
    info "pip install --no-deps silero-vad (its ONNX model only)"
    "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps "$SILERO_VAD_REQUIREMENT"
    install_healthy || die "PiBuddy installed but $VENV/bin/pibuddy does not work"
    report_packet_path
    printf '%s %s\n' "$hash" "$extras" >"$STAMP"
    changed
}

# ---- Step 4 (--service): user, config, state dir, unit -------------------------------------------------

check_service_preconditions() {
    [[ $EUID -eq 0 ]] || die "--service needs root: sudo ./setup.sh --service"
    case "$REPO/" in
        /home/* | /root/* | /run/user/*)
            die "the service runs as '$SERVICE_USER' with ProtectHome=true and cannot see $REPO." \
                "Put a checkout in /opt/pibuddy and install from there:" \
                "sudo git clone '$REPO' /opt/pibuddy && sudo /opt/pibuddy/setup.sh --service"
            ;;
    esac
    [[ $REPO =~ ^[A-Za-z0-9._/+-]+$ ]] ||
        die "the checkout path '$REPO' has characters a unit's ExecStart= would need quoted; move it (e.g. /opt/pibuddy)"
    [[ -f $REPO/config.yaml ]] || die "config.yaml is missing from $REPO"
}

# Group and user lookups, in $ROOT's files when a prefix is set.
group_exists() {
    if [[ -n $ROOT ]]; then
        grep -q "^$1:" "$ROOT/etc/group" 2>/dev/null
    else
        getent group "$1" >/dev/null
    fi
}

user_exists() {
    if [[ -n $ROOT ]]; then
        grep -q "^$1:" "$ROOT/etc/passwd" 2>/dev/null
    else
        getent passwd "$1" >/dev/null
    fi
}

user_groups() {
    if [[ -n $ROOT ]]; then
        awk -F: -v u="$1" '{ n = split($4, m, ","); for (i = 1; i <= n; i++) if (m[i] == u) print $1 }' \
            "$ROOT/etc/group"
    else
        id -nG "$1" | tr ' ' '\n'
    fi
}

# "uid gid" of a user.
user_ids() {
    if [[ -n $ROOT ]]; then
        awk -F: -v u="$1" '$1 == u { print $3, $4 }' "$ROOT/etc/passwd"
    else
        printf '%s %s\n' "$(id -u "$1")" "$(id -g "$1")"
    fi
}

step_service_user() {
    say "Service user '$SERVICE_USER'"
    local prefix=() wanted=() group
    [[ -n $ROOT ]] && prefix=(--prefix "$ROOT")
    for group in "${SERVICE_GROUPS[@]}"; do
        group_exists "$group" && wanted+=("$group")
    done
    local joined
    joined="$(IFS=,; echo "${wanted[*]}")"
    if ! user_exists "$SERVICE_USER"; then
        useradd "${prefix[@]}" --system --user-group --home-dir "$STATE_DIR" --no-create-home \
            --shell /usr/sbin/nologin --comment "PiBuddy service" ${joined:+--groups "$joined"} "$SERVICE_USER"
        info "created, groups: ${wanted[*]:-none}"
        changed
        return
    fi
    local current missing=()
    current=" $(user_groups "$SERVICE_USER" | tr '\n' ' ') "
    for group in "${wanted[@]}"; do
        [[ $current == *" $group "* ]] || missing+=("$group")
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        info "exists, groups: ${wanted[*]:-none}"
        return
    fi
    usermod "${prefix[@]}" --append --groups "$(IFS=,; echo "${missing[*]}")" "$SERVICE_USER"
    info "added to groups: ${missing[*]}"
    changed
}

# Create directory $1 or fix it to mode $2 and owner $3 (uid:gid), reporting only real changes.
ensure_dir() {
    local path="$1" mode="$2" owner="$3"
    if [[ -d $path && "$(stat -c '%a %u:%g' "$path")" == "$mode $owner" ]]; then
        info "$path exists (mode $mode)"
        return
    fi
    mkdir -p "$path"
    chmod "$mode" "$path"
    chown "$owner" "$path"
    info "$path ready (mode $mode)"
    changed
}

step_service_files() {
    local uid gid
    read -r uid gid < <(user_ids "$SERVICE_USER")
    [[ -n $gid ]] || die "cannot find the ids of user $SERVICE_USER"

    say "Configuration ($CONFIG_DIR/config.yaml)"
    if [[ ! -d $ROOT$CONFIG_DIR ]]; then
        install -d -m 755 "$ROOT$CONFIG_DIR" # root's; the file itself is what the group may read
        changed
    fi
    local config="$ROOT$CONFIG_DIR/config.yaml"
    if [[ -e $config ]]; then
        info "keeping the existing $CONFIG_DIR/config.yaml"
    else
        install -m 640 -o 0 -g "$gid" "$REPO/config.yaml" "$config"
        info "installed from config.yaml (mode 640, root:$SERVICE_USER): edit it before starting"
        changed
    fi

    say "State directory ($STATE_DIR)"
    ensure_dir "$ROOT$STATE_DIR" 700 "$uid:$gid"
}

# The unit from systemd/, with ExecStart's program pointed at this checkout's venv.
render_unit() {
    local line command program
    while IFS= read -r line || [[ -n $line ]]; do
        if [[ $line == ExecStart=* ]]; then
            command="${line#ExecStart=}"
            program="${command%% *}"
            printf 'ExecStart=%s%s\n' "$VENV/bin/pibuddy" "${command#"$program"}"
        else
            printf '%s\n' "$line"
        fi
    done <"$REPO/systemd/$UNIT_NAME"
}

step_unit() {
    say "systemd unit ($UNIT_DIR/$UNIT_NAME)"
    local target="$ROOT$UNIT_DIR/$UNIT_NAME" rendered unit_changed=0
    rendered="$(render_unit)"
    if [[ -f $target && "$(<"$target")" == "$rendered" ]]; then
        info "up to date"
    else
        mkdir -p "$ROOT$UNIT_DIR"
        printf '%s\n' "$rendered" >"$target.tmp"
        chmod 644 "$target.tmp"
        mv "$target.tmp" "$target"
        info "installed, ExecStart=$VENV/bin/pibuddy ..."
        unit_changed=1
        changed
    fi
    local systemctl=(systemctl)
    if [[ -n $ROOT ]]; then
        systemctl+=(--root="$ROOT")
    elif systemd_running && [[ $unit_changed -eq 1 ]]; then
        systemctl daemon-reload
    fi
    if "${systemctl[@]}" --quiet is-enabled "$UNIT_NAME" 2>/dev/null; then
        info "enabled"
    else
        "${systemctl[@]}" --quiet enable "$UNIT_NAME"
        info "enabled now (starts at boot)"
        changed
    fi
}

# The gateway relays thousands of small UDP packets a second; the kernel's default receive buffer cap
# (212 992 bytes on Raspberry Pi OS) holds only ~40 ms of them. Raise the cap so the gateway can ask for 4 MiB.
SYSCTL_FILE=/etc/sysctl.d/60-pibuddy.conf
SYSCTL_LINE='net.core.rmem_max = 4194304'

step_sysctl() {
    say "UDP receive buffer for the gateway ($SYSCTL_FILE)"
    local target="$ROOT$SYSCTL_FILE"
    if [[ -f $target && "$(<"$target")" == "$SYSCTL_LINE" ]]; then
        info "up to date"
        return
    fi
    mkdir -p "$(dirname "$target")"
    printf '%s\n' "$SYSCTL_LINE" >"$target"
    chmod 644 "$target"
    if [[ -z $ROOT ]]; then
        sysctl -q -p "$target" || info "could not apply it now (container?); it applies at the next boot"
    fi
    info "installed"
    changed
}

# The service must be able to run the venv's interpreter, and the service user to import PiBuddy from
# the checkout. These check this host, so they are skipped when installing into a PIBUDDY_ROOT prefix.
check_service_interpreter() {
    [[ -z $ROOT ]] || return 0
    local interpreter
    interpreter="$(readlink -f "$VENV/bin/python")"
    case "$interpreter" in
        /home/* | /root/* | /run/user/*)
            die "the venv's Python is $interpreter, hidden from the service by ProtectHome=true." \
                "Recreate the venv from a system Python: rm -rf '$VENV' &&" \
                "sudo PIBUDDY_PYTHON=/usr/bin/python3 ./setup.sh --service"
            ;;
    esac
}

check_service_can_run() {
    [[ -z $ROOT ]] || return 0
    (cd / && runuser -u "$SERVICE_USER" -- "$VENV/bin/python" -c 'import pibuddy') 2>/dev/null ||
        die "user $SERVICE_USER cannot import PiBuddy from $REPO: make the checkout readable (chmod -R o+rX '$REPO')"
}

# ---- Step 5 (--vosk-model, --piper-voice): speech models that no package ships ---------------------------

step_models() {
    [[ -n $VOSK_MODEL || -n $PIPER_VOICE ]] || return 0
    local dir="${PIBUDDY_MODELS_DIR:-}" owner=""
    if [[ -z $dir && $SERVICE -eq 1 ]]; then
        dir="$ROOT$STATE_DIR/models"
        owner="$SERVICE_USER:$SERVICE_USER"
    fi
    local -a where=()
    [[ -n $dir ]] && where=(--dir "$dir")
    if [[ -n $VOSK_MODEL ]]; then
        say "vosk model $VOSK_MODEL"
        if ! "$VENV/bin/python" -c 'import vosk' 2>/dev/null; then
            local requirement
            requirement="$("$VENV/bin/python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["vosk"][0])')"
            info "pip install $requirement (the optional vosk extra)"
            "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$requirement"
        fi
        fetch_model fetch vosk "$VOSK_MODEL" "${where[@]}" ${PIBUDDY_VOSK_MIRROR:+--base-url "$PIBUDDY_VOSK_MIRROR"}
    fi
    if [[ -n $PIPER_VOICE ]]; then
        say "piper voice $PIPER_VOICE"
        fetch_model fetch piper "$PIPER_VOICE" "${where[@]}" ${PIBUDDY_PIPER_MIRROR:+--base-url "$PIBUDDY_PIPER_MIRROR"}
        command -v piper >/dev/null || info "the piper program is not installed yet: see README, Local brain"
    fi
    if [[ -n $owner && -z $ROOT ]]; then
        chown -R "$owner" "$dir"
    fi
}

fetch_model() {
    local output
    output="$("$VENV/bin/pibuddy" models "$@")" || die "could not fetch the model (the line above says why)"
    while IFS= read -r line; do info "$line"; done <<<"$output"
    [[ $output == downloaded:* ]] && changed
    return 0
}

# ---- Step 6: Raspberry Pi hints (only on a Pi; nothing here changes the system) -------------------------

# Whether config.txt turns on a dtparam (i2s, spi, i2c_arm), by the last setting that names it.
pi_param_on() {
    local value
    value="$(sed -nE "s/^[[:space:]]*dtparam=(.*,)?$1=([a-z]+).*/\2/p" "$2" | tail -n1)"
    [[ $value == on ]]
}

step_pi_hints() {
    local model_file="$ROOT$PI_MODEL_FILE" model
    [[ -r $model_file ]] || return 0
    model="$(tr -d '\0' <"$model_file")"
    [[ $model == "Raspberry Pi"* ]] || return 0
    say "Raspberry Pi: $model"
    local user group current missing=()
    user="${SUDO_USER:-$(id -un)}"
    if [[ $user != root ]]; then
        current=" $(user_groups "$user" | tr '\n' ' ') "
        for group in "${PI_USER_GROUPS[@]}"; do
            if group_exists "$group" && [[ $current != *" $group "* ]]; then
                missing+=("$group")
            fi
        done
        if [[ ${#missing[@]} -gt 0 ]]; then
            info "to run PiBuddy as $user: sudo usermod -aG $(IFS=,; echo "${missing[*]}") $user (then log in again)"
        fi
    fi
    local config="$ROOT$PI_CONFIG_TXT"
    if [[ ! -r $config ]]; then
        info "no $PI_CONFIG_TXT (Raspberry Pi OS bookworm keeps it there): no boot configuration hints"
        return 0
    fi
    local overlays
    overlays="$(sed -nE 's/^[[:space:]]*dtoverlay=([^,[:space:]]+).*/\1/p' "$config" | tr '\n' ' ')"
    overlays="${overlays% }"
    info "$PI_CONFIG_TXT: overlays: ${overlays:-none}; setup.sh reads it, never edits it"
    pi_param_on spi "$config" ||
        info "SPI is off; LED rings on SPI (APA102, as on ReSpeaker HATs) need it: sudo raspi-config nonint do_spi 0"
    pi_param_on i2c_arm "$config" ||
        info "I2C is off; HAT codecs set up over I2C (WM8960) need it: sudo raspi-config nonint do_i2c 0"
    if ! arecord -l 2>/dev/null | grep -q '^card '; then
        info "no microphone found (arecord -l). For an I2S HAT, add its line to $PI_CONFIG_TXT and reboot, e.g.:"
        local entry
        for entry in "${PI_I2S_OVERLAYS[@]}"; do
            info "  dtoverlay=${entry%%:*}   # ${entry#*: }"
        done
        info "  (a USB microphone needs nothing there)"
    fi
}

# ---- Summary -------------------------------------------------------------------------------------------

next_steps() {
    if [[ $CHANGES -eq 0 ]]; then
        say "Done in ${SECONDS}s: nothing changed"
    else
        say "Done in ${SECONDS}s: $CHANGES step(s) changed something"
    fi
    cat <<EOF

Next:
  Edit the configuration:  ${EDITOR:-nano} $REPO/config.yaml   (the service reads $CONFIG_DIR/config.yaml)
  Check it:                $VENV/bin/pibuddy check
  Run in this terminal:    $VENV/bin/pibuddy run
EOF
    if [[ $SERVICE -eq 1 ]]; then
        cat <<EOF
  Start the service:       sudo systemctl restart pibuddy && journalctl -u pibuddy -f
  Service configuration:   sudoedit $CONFIG_DIR/config.yaml
EOF
    else
        cat <<EOF
  Run it at boot:          sudo ./setup.sh --service   (from a checkout in /opt/pibuddy)
EOF
    fi
    [[ $DEV -eq 1 ]] && echo "  Run the tests:           ./scripts/test.sh"
    [[ -z $VOSK_MODEL ]] && echo "  Chinese or other languages offline: ./setup.sh --vosk-model zh-CN"
    return 0
}

main() {
    parse_args "$@"
    cd "$REPO"
    check_architecture
    check_python
    [[ $SERVICE -eq 1 ]] && check_service_preconditions
    step_apt
    step_venv
    step_install
    if [[ $SERVICE -eq 1 ]]; then
        check_service_interpreter
        step_service_user
        check_service_can_run
        step_service_files
        step_sysctl
        step_unit
    fi
    step_models
    step_pi_hints
    next_steps
}

main "$@"
