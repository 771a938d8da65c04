/// fived's release version and the SSH identification it derives.
public enum FivedVersion {
    /// The release, as in the repository's VERSION file and the Debian package
    /// (`VersionTests` keeps the two equal).
    public static let current = "0.1.0"

    /// The software-version part of fived's SSH identification string (RFC 4253
    /// §4.2: `SSH-2.0-softwareversion SP comments`; no spaces or minus signs in
    /// the first part). It starts with `OpenSSH` on purpose: OpenSSH's client
    /// turns on its modern behaviour only for servers whose version matches
    /// `OpenSSH*` (compat.c `compat_banner`, flag SSH_NEW_OPENSSH), and without it
    /// it sends neither `eow@openssh.com` (so `ssh host yes | head -c 5` would
    /// never end) nor `no-more-sessions@openssh.com`. `OpenSSH_compatible`
    /// matches none of the older `OpenSSH_2.*`…`OpenSSH_7.7*` patterns that
    /// switch bug workarounds on in OpenSSH or PuTTY; libssh's client reads no
    /// version number from it (misc.c `ssh_analyze_banner`). docs/libssh.md.
    public static let sshSoftwareVersion = "OpenSSH_compatible"

    /// The identification after `SSH-2.0-`: software version, then fived's own
    /// name and release as the comment.
    public static var sshIdentification: String { "\(sshSoftwareVersion) fived_\(current)" }
}
