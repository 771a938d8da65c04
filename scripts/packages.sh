# Sourced by demo.sh and test.sh: install_packages NAME PACKAGE... installs the
# Debian packages given when we are root (quietly), or names the command to run
# and exits 1 when we are not. Nothing to do when the list is empty.
install_packages() {
    local who=$1
    shift
    (($#)) || return 0
    if [[ $(id -u) -eq 0 ]]; then
        echo "$who: installing $*" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null
        apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    else
        echo "$who: missing $*: run  sudo apt-get install $*" >&2
        exit 1
    fi
}
