#!/usr/bin/env bash
# Prepare this checkout: system tools, a Python 3.11+ virtualenv in .venv and the project
# installed into it (editable, with the dev extra). Idempotent: a second run that finds
# everything in place installs nothing and takes well under a second.
#
#   bash scripts/setup.sh        (or: source scripts/setup.sh)
#
# Environment:
#   PYTHON=/path/to/python3.x            interpreter for a new .venv (default: first 3.11+ on PATH)
#   COMMUNECAST_SKIP_SYSTEM_PACKAGES=1   do not check/install mosquitto, ffmpeg, espeak-ng, opus-tools
#   COMMUNECAST_SETUP_VERBOSE=1          show apt/pip output instead of keeping it in a log

if [ -z "${BASH_VERSION:-}" ]; then
    exec bash "$0" "$@"
fi

# The whole body runs in a subshell so that sourcing this file leaks no options,
# variables or open file descriptors into the caller's shell.
_communecast_setup() (
    set -euo pipefail

    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    cd "$root"
    venv="$root/.venv"
    stamp="$venv/.communecast-pyproject.sha256"
    verbose="${COMMUNECAST_SETUP_VERBOSE:-0}"
    log_dir="${TMPDIR:-/tmp}"

    say() { printf '[setup] %s\n' "$*"; }
    die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }

    # Run a command quietly; on failure show the end of its output.
    quietly() {
        local name=$1
        shift
        if [[ $verbose == 1 ]]; then
            "$@"
            return
        fi
        local log="$log_dir/communecast-setup-$name.$$.log"
        if "$@" >"$log" 2>&1; then
            rm -f "$log"
        else
            local rc=$?
            tail -n 40 "$log" >&2 || true
            printf '[setup] ERROR: %s failed (exit %s); full output in %s\n' "$name" "$rc" "$log" >&2
            return "$rc"
        fi
    }

    # Two setups at once (say test.sh and demo.sh) must not build the same venv together.
    if command -v flock >/dev/null 2>&1; then
        local_key=$(printf '%s' "$root" | cksum | cut -d' ' -f1)
        exec 9>"$log_dir/communecast-setup.$(id -u).$local_key.lock"
        flock -w 900 9 || die "another setup of $root is still running"
    fi

    # --- root privileges for apt ------------------------------------------------------
    sudo_cmd=()
    can_apt=0
    if command -v apt-get >/dev/null 2>&1; then
        if [[ $(id -u) == 0 ]]; then
            can_apt=1
        elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
            can_apt=1
            sudo_cmd=(sudo -n)
        fi
    fi
    apt_updated=0
    apt_install() {
        if [[ $apt_updated == 0 ]]; then
            say "apt-get update"
            quietly apt-update "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
                apt-get update -q
            apt_updated=1
        fi
        say "apt-get install $*"
        quietly apt-install "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "$@"
    }

    # mosquitto lives in /usr/sbin, which is not on an ordinary user's PATH on Debian.
    have() {
        command -v "$1" >/dev/null 2>&1 || [[ -x /usr/sbin/$1 || -x /usr/local/sbin/$1 ]]
    }

    # --- system tools -------------------------------------------------------------------
    if [[ ${COMMUNECAST_SKIP_SYSTEM_PACKAGES:-0} != 1 ]]; then
        # alsa-utils: aplay is the agent's audio path, and `agent doctor` probes with it.
        # opus-tools: opusdec decodes the controller's Ogg/Opus on a station in ~4 MB instead of
        # ffmpeg's ~55 MB (device_agents/hardware/decode.py; the agent falls back to ffmpeg).
        apt_packages=(mosquitto mosquitto-clients ffmpeg espeak-ng alsa-utils opus-tools)
        missing=()
        for cmd in mosquitto mosquitto_passwd ffmpeg ffprobe espeak-ng aplay opusdec; do
            have "$cmd" || missing+=("$cmd")
        done
        # LED boards: a font with Vietnamese glyphs for the bitmap path (docs/led.md).
        if [[ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]]; then
            if [[ $can_apt == 1 ]]; then
                apt_install fonts-dejavu-core
            else
                echo "[setup] WARNING: install fonts-dejavu-core (LED bitmap path needs DejaVuSans.ttf)" >&2
            fi
        fi
        # Web panel browser tests (docs/panel.md): Debian's Chromium, driven headless.
        if [[ ! -x /usr/bin/chromium ]]; then
            if [[ $can_apt == 1 ]]; then
                apt_install chromium
            else
                echo "[setup] WARNING: install chromium (the panel's browser tests need /usr/bin/chromium)" >&2
            fi
        fi
        if ((${#missing[@]})); then
            say "missing system commands: ${missing[*]}"
            if [[ $can_apt == 1 ]]; then
                apt_install "${apt_packages[@]}"
                still=()
                for cmd in "${missing[@]}"; do
                    have "$cmd" || still+=("$cmd")
                done
                ((${#still[@]} == 0)) || die "still missing after apt-get install: ${still[*]}"
            else
                {
                    echo "[setup] ERROR: these commands are needed: ${missing[*]}"
                    echo "[setup] They come from the packages: ${apt_packages[*]}"
                    echo "[setup] Install them as root, e.g.:"
                    echo "[setup]   sudo apt-get update && sudo apt-get install -y --no-install-recommends ${apt_packages[*]}"
                    echo "[setup] (or set COMMUNECAST_SKIP_SYSTEM_PACKAGES=1 to skip this check)"
                } >&2
                exit 1
            fi
        fi
    fi

    # --- Python 3.11+ -------------------------------------------------------------------
    py_ok() {
        "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
    }
    find_python() {
        local c
        for c in "${PYTHON:-}" python3 python3.14 python3.13 python3.12 python3.11; do
            [[ -n $c ]] || continue
            command -v "$c" >/dev/null 2>&1 || continue
            if py_ok "$c"; then
                command -v "$c"
                return 0
            fi
        done
        return 1
    }

    venv_ok=0
    if [[ -x $venv/bin/python ]] && py_ok "$venv/bin/python" \
        && "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
        venv_ok=1
    fi

    if [[ $venv_ok == 0 ]]; then
        py=$(find_python) || die "Python 3.11 or newer is required and none was found on PATH
[setup] (looked for: ${PYTHON:+$PYTHON }python3 python3.14 python3.13 python3.12 python3.11).
[setup] On Debian 12: apt-get install python3 python3-venv; elsewhere install 3.11+ and
[setup] run again with PYTHON=/path/to/python3.11"
        # Debian splits venv/ensurepip into python3-venv.
        if ! "$py" -c 'import ensurepip, venv' >/dev/null 2>&1; then
            pyver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
            if [[ $can_apt == 1 ]]; then
                apt_install python3-venv "python$pyver-venv" || apt_install python3-venv
            else
                die "$py has no venv/ensurepip module; install it as root:
[setup]   sudo apt-get install -y python3-venv python$pyver-venv"
            fi
        fi
        if [[ -e $venv ]]; then
            say "recreating .venv (the existing one is broken or older than Python 3.11)"
            quietly venv "$py" -m venv --clear "$venv"
        else
            say "creating .venv with $("$py" -c 'import sys; print(sys.version.split()[0])') ($py)"
            quietly venv "$py" -m venv "$venv"
        fi
        rm -f "$stamp"
    fi

    # --- front-end libraries (the panel's map: Leaflet, docs/map.md) ------------------------
    # From the npm registry with the committed lock file; never committed, never a CDN. Without
    # node/npm the map still works (the server draws the stations as SVG): say so and go on.
    frontend="$root/controller/web/frontend"
    if [[ -f $frontend/package-lock.json ]]; then
        if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
            lock_sum=$(cksum <"$frontend/package-lock.json" | cut -d' ' -f1)
            lock_stamp="$frontend/node_modules/.communecast-lock.cksum"
            if [[ $(cat "$lock_stamp" 2>/dev/null || true) != "$lock_sum" ]]; then
                say "npm ci in controller/web/frontend (Leaflet for the panel's map)"
                quietly npm-ci npm ci --prefix "$frontend" --no-audit --no-fund --ignore-scripts
                printf '%s\n' "$lock_sum" >"$lock_stamp"
            fi
        else
            echo "[setup] WARNING: node and npm not found: the panel's map will show stations on a plain SVG" \
                "background without Leaflet (install them, e.g. apt-get install nodejs npm, and run setup again)" >&2
        fi
    fi

    # --- the project itself -------------------------------------------------------------
    want=$("$venv/bin/python" -c \
        'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' \
        "$root/pyproject.toml")
    have_stamp=$(cat "$stamp" 2>/dev/null || true)
    if [[ $want == "$have_stamp" && -x $venv/bin/communecast ]]; then
        say "ready (.venv is up to date with pyproject.toml)"
        exit 0
    fi

    say "installing the project into .venv (pip install -e '.[dev]')"
    export PIP_DISABLE_PIP_VERSION_CHECK=1
    quietly pip "$venv/bin/python" -m pip install -e "${root}[dev]"
    printf '%s\n' "$want" >"$stamp"
    say "ready"
)

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    _communecast_setup "$@"
    exit $?
fi
_communecast_setup "$@"
