#!/usr/bin/env bash
# Builds the Debian package fived_VERSION_amd64.deb: a release build with the Swift
# runtime linked in (swift build -c release --static-swift-stdlib), so the package
# needs only Debian's libssh (and, through it, OpenSSL) and libcurl (the fleet's
# etcd client speaks HTTP through Foundation's URLSession, which links it) besides
# the C and C++ runtime; then checks it with lintian, which must report no error.
#
# The version comes from the VERSION file (one line, e.g. 0.1.0); the top entry of
# packaging/deb/changelog must name the same version, or the script stops.
#
# What goes where (docs/install.md explains it to users):
#   /usr/sbin/fived, /usr/bin/fived-connect          stripped release builds
#   /usr/share/man/man{1,5,8}/*.gz                     from man/
#   /lib/systemd/system/fived.service                  examples/fived.service, /usr/sbin paths
#   /etc/fived/fived.toml                              packaging/deb/fived.toml, a conffile
#   /usr/share/doc/fived/{copyright,changelog.gz}      packaging/deb/
#   DEBIAN/{control,conffiles,md5sums,postinst,prerm,postrm}
# The maintainer scripts make the fived user and group, /var/lib/fived (root, 0700) and
# an empty /etc/fived/authorized_keys; purge removes them all.
#
# Installs what it misses with apt-get when run as root (libssh-dev, pkg-config,
# dpkg-dev, binutils, lintian).
#
# Environment:
#   FIVED_SCRATCH      build folder (swift --scratch-path), default .build; the
#                      release build goes to its release/ beside debug/
#   FIVED_PACKAGE_DIR  where the .deb is written, default the repository root
#   FIVED_LINTIAN      0 skips lintian (the package tests run it once themselves)
# Prints the .deb's path as its last line. Exit status 0, or 1 with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
scratch=${FIVED_SCRATCH:-.build}
out=${FIVED_PACKAGE_DIR:-$root}

die() {
    echo "package.sh: $*" >&2
    exit 1
}

version=$(tr -d '[:space:]' <VERSION)
[[ $version =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || die "VERSION: '$version' is not a Debian version (digits first; no hyphen: fived is a native package)"
changelog_version=$(sed -n '1s/^fived (\([^)]*\)).*/\1/p' packaging/deb/changelog)
[[ $changelog_version == "$version" ]] ||
    die "packaging/deb/changelog's top entry is for '$changelog_version' but VERSION says '$version': add an entry"

# --- what the build needs -------------------------------------------------------------
missing=()
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
pkg-config --exists libssh 2>/dev/null || missing+=(libssh-dev)
# FoundationNetworking, linked statically, links libcurl (-lcurl needs the dev package).
pkg-config --exists libcurl 2>/dev/null || missing+=(libcurl4-openssl-dev)
command -v dpkg-shlibdeps >/dev/null 2>&1 || missing+=(dpkg-dev)
command -v strip >/dev/null 2>&1 && command -v readelf >/dev/null 2>&1 || missing+=(binutils)
if [[ ${FIVED_LINTIAN:-1} != 0 ]]; then command -v lintian >/dev/null 2>&1 || missing+=(lintian); fi
# shellcheck source=scripts/packages.sh
source scripts/packages.sh
install_packages package.sh "${missing[@]}"

echo "package.sh: swift build -c release --static-swift-stdlib (minutes on two cores)..." >&2
# -z now: lintian's hardening-no-bindnow (full RELRO); the flag only changes the link.
started=$SECONDS
swift build --scratch-path "$scratch" -c release --static-swift-stdlib -Xlinker -z -Xlinker now >&2
echo "package.sh: took swift build $((SECONDS - started)) s" >&2
bin=$(swift build --scratch-path "$scratch" -c release --static-swift-stdlib --show-bin-path)

# --- the binaries may need only Debian's shared libraries -----------------------------
toolchain=$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")
for program in fived fived-connect; do
    [[ -x $bin/$program ]] || die "$bin/$program was not built"
    # readelf: what the binary asks for; ldd: where each is found; dpkg -S: whose it is.
    needed=$(readelf -d "$bin/$program" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
    [[ -n $needed ]] || die "$program: readelf found no NEEDED entries"
    for library in $needed; do
        # "libssh.so.4 => /lib/.../libssh.so.4 (0x...)", or "/lib64/ld-linux-x86-64.so.2 (0x...)" for the loader.
        path=$(ldd "$bin/$program" | awk -v lib="$library" '$2 == "=>" && $1 == lib { print $3 } $2 != "=>" && $1 ~ ("/" lib "$") { print $1 }')
        [[ -n $path && $path != "not" ]] || die "$program needs $library, which ldd does not find"
        case $(readlink -f "$path") in
        "$toolchain"/*) die "$program needs $library from the Swift toolchain ($path): the runtime is not linked in" ;;
        esac
        dpkg -S "$(readlink -f "$path")" >/dev/null 2>&1 || dpkg -S "$path" >/dev/null 2>&1 ||
            die "$program needs $library ($path), which no Debian package provides"
    done
done

# --- the tree -------------------------------------------------------------------------
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/fived
install -d -m 0755 "$stage"/{DEBIAN,usr/sbin,usr/bin,lib/systemd/system,etc/fived,usr/share/doc/fived} \
    "$stage"/usr/share/man/{man1,man5,man8}
# As dh_strip does: symbols out, the Swift metadata sections stay.
strip --strip-unneeded --remove-section=.comment --remove-section=.note -o "$stage/usr/sbin/fived" "$bin/fived"
strip --strip-unneeded --remove-section=.comment --remove-section=.note -o "$stage/usr/bin/fived-connect" "$bin/fived-connect"
chmod 0755 "$stage/usr/sbin/fived" "$stage/usr/bin/fived-connect"
for page in man/*.[158]; do
    section=${page##*.}
    gzip -9n <"$page" >"$stage/usr/share/man/man$section/${page##*/}.gz"
done
# The example unit, pointing at the packaged binary, with a header for this copy.
{
    echo "# fived as a hardened systemd service, installed by the fived package."
    echo "# Change it with a drop-in (systemctl edit fived), not here: upgrades replace this file."
    echo "# systemctl enable --now fived starts it; systemctl reload fived re-reads /etc/fived/fived.toml."
    sed -e '1,/^$/d' -e 's#/usr/local/bin/fived#/usr/sbin/fived#g' examples/fived.service
} >"$stage/lib/systemd/system/fived.service"
grep -q '^ExecStart=/usr/sbin/fived ' "$stage/lib/systemd/system/fived.service" || die "examples/fived.service: no ExecStart=/usr/local/bin/fived to point at /usr/sbin/fived"
install -m 0644 packaging/deb/fived.toml "$stage/etc/fived/fived.toml"
install -m 0644 packaging/deb/copyright "$stage/usr/share/doc/fived/copyright"
gzip -9n <packaging/deb/changelog >"$stage/usr/share/doc/fived/changelog.gz"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$stage/DEBIAN/"
echo /etc/fived/fived.toml >"$stage/DEBIAN/conffiles"

# --- Depends: dpkg-shlibdeps reads the binaries; adduser for the maintainer scripts ----
mkdir -p "$work/src/debian"
printf 'Source: fived\n\nPackage: fived\nArchitecture: amd64\n' >"$work/src/debian/control"
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O -e"$stage/usr/sbin/fived" -e"$stage/usr/bin/fived-connect" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
[[ $shlibs == *libssh-4* ]] || die "dpkg-shlibdeps did not find libssh-4 among the dependencies ($shlibs)"
depends="adduser, $shlibs"

installed_size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@DEPENDS@/$depends/" -e "s/@INSTALLED_SIZE@/$installed_size/" \
    packaging/deb/control.in >"$stage/DEBIAN/control"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage"/DEBIAN/{control,conffiles,md5sums}

# Reproducible: every file dated as the changelog's top entry.
epoch=$(date -d "$(sed -n 's/^ -- .*>  //p' packaging/deb/changelog | head -1)" +%s)
find "$stage" -exec touch -h -d "@$epoch" {} +
mkdir -p "$out"
deb=$out/fived_${version}_amd64.deb
started=$SECONDS
# xz level 2, not dpkg's 6: a third of the time (about 16 s of CPU per binary instead
# of 43) for a package 13% larger.
SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group -Zxz -z2 --build "$stage" "$deb" >&2
echo "package.sh: took dpkg-deb $((SECONDS - started)) s" >&2

if [[ ${FIVED_LINTIAN:-1} != 0 ]]; then
    echo "package.sh: lintian $deb" >&2
    # Errors fail the build; warnings and notes are shown. See docs/install.md for the ones that remain.
    started=$SECONDS
    lintian --fail-on error --display-info "$deb" >&2 || die "lintian reports errors"
    echo "package.sh: took lintian $((SECONDS - started)) s" >&2
fi
echo "package.sh: Depends: $depends" >&2
echo "$deb"
