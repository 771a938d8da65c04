// swift-tools-version:6.0
import PackageDescription

// Module layout (docs/architecture.md has the table and a code map):
//   CLibSSH, CSystem  system-library targets: module maps and static inline C glue only.
//   CSpawn            the spawner's fork-to-exec child code and SCM_RIGHTS messages, in C.
//   FivedSystem       the one system layer: syscalls (errno read at once, EINTR
//                     retried), owned descriptors, socket addresses, the monotonic
//                     clock, the signal self-pipe, epoll.
//   LibSSH            the only importer of CLibSSH; owns every libssh handle.
//   FivedCore         pure policy and state: configuration, service names,
//                     authorized_keys, the access decision, the channel state
//                     machine, the byte relay's algorithm, what a service learns,
//                     PROXY v2, TCPMUX parsing. No sockets, no libssh.
//   FivedRuntime      what both executables run: the relay's ends on SSH channels
//                     and descriptors.
//   FivedFleet        the fleet's name registry in etcd (its JSON gateway, URLSession):
//                     lease, records, watch; no libssh, never on a worker thread.
//   FivedServer       the daemon: acceptor, workers, connections, channels, backends,
//                     and its metrics (Metrics/: swift-metrics into swift-prometheus,
//                     served over HTTP by FlyingFox).
//   FivedClient       fived-connect's runtime: dialing, stdio bridges, -L and -R.
//   fived, fived-connect  thin executables: arguments in, a runtime started.
let package = Package(
    name: "fived",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "fived", targets: ["fived"]),
        .executable(name: "fived-connect", targets: ["fived-connect"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/LebJe/TOMLKit", from: "0.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
        // Metrics (issue 17): the swift-metrics API, swift-prometheus's registry
        // and text exposition, and FlyingFox's small HTTP/1.1 server to serve it.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.1"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibSSH",
            pkgConfig: "libssh",
            providers: [.apt(["libssh-dev"])]
        ),
        // Linux calls Swift's Glibc module does not expose (pidfd_open, GNU
        // posix_spawn extensions, the packed epoll_event): static inline wrappers only.
        .systemLibrary(name: "CSystem"),
        // The spawner's child side (fork, then only async-signal-safe calls until
        // execve) and SCM_RIGHTS messages: plain C, since nothing after fork may run Swift.
        .target(name: "CSpawn"),
        .target(
            name: "FivedSystem",
            dependencies: ["CSystem"]
        ),
        .target(
            name: "LibSSH",
            dependencies: ["CLibSSH"]
        ),
        .target(
            name: "FivedCore",
            dependencies: [
                .product(name: "TOMLKit", package: "TOMLKit"),
                .product(name: "Crypto", package: "swift-crypto"),
                // RSA (rsa-sha2-256/512) signature verification for certificate authorities.
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "FivedRuntime",
            dependencies: ["FivedCore", "FivedSystem", "LibSSH"]
        ),
        .target(
            name: "FivedFleet",
            dependencies: [
                "FivedCore",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "FivedServer",
            dependencies: [
                "FivedCore", "FivedRuntime", "FivedSystem", "LibSSH", "CSystem", "CSpawn", "FivedFleet",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "FlyingFox", package: "FlyingFox"),
                .product(name: "FlyingSocks", package: "FlyingFox"),
            ]
        ),
        .target(
            name: "FivedClient",
            dependencies: ["FivedCore", "FivedRuntime", "FivedSystem", "LibSSH"]
        ),
        .executableTarget(
            name: "fived",
            dependencies: [
                "FivedCore", "FivedServer", "FivedSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "fived-connect",
            dependencies: [
                "FivedCore", "FivedClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "FivedCoreTests",
            dependencies: ["FivedCore"]
        ),
        // A libssh server in the test process, for LibSSHTests and FivedRuntimeTests.
        .target(
            name: "SSHTestSupport",
            dependencies: ["LibSSH", "FivedSystem"],
            path: "Tests/SSHTestSupport"
        ),
        .testTarget(
            name: "LibSSHTests",
            dependencies: ["LibSSH", "FivedSystem", "SSHTestSupport"]
        ),
        .testTarget(
            name: "FivedRuntimeTests",
            dependencies: [
                "FivedRuntime", "FivedServer", "FivedClient", "FivedSystem", "FivedCore", "LibSSH", "SSHTestSupport",
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["FivedCore"],
            // The test peers and the client matrix's drivers are scripts the tests run.
            exclude: ["Peers", "Clients"]
        ),
    ]
)
