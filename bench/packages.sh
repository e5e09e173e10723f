# Shared by the bench scripts (sourced): `log` prints a section heading on stderr, and
# `ensure_packages PKG…` installs, with apt-get, only the Debian packages that are missing.

log() { printf '\n=== %s\n' "$*" >&2; }

ensure_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if ((${#missing[@]})); then
        log "installing missing packages: ${missing[*]}"
        apt-get update
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
    fi
}
