// swift-tools-version:6.0
import PackageDescription

// Module layout (see docs/architecture.md):
//   CLibSSH      system-library target: module map + shim.h, C glue only.
//   LibSSH       the only importer of CLibSSH; owns every libssh handle.
//   FivedCore    pure policy: configuration, service names, authorized_keys,
//                the open decision, PROXY v2, TCPMUX parsing. No sockets, no libssh,
//                so it is tested without either (STYLE.md puts Pump/Channels here too;
//                they live in FivedServer instead so that purity is enforced by the
//                module graph rather than by convention).
//   FivedServer  the runtime: acceptor, worker event loops, channel pumps, backends.
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
    ],
    targets: [
        .systemLibrary(
            name: "CLibSSH",
            pkgConfig: "libssh",
            providers: [.apt(["libssh-dev"])]
        ),
        // Linux calls Swift's Glibc module does not expose (pidfd_open, GNU
        // posix_spawn extensions): static inline wrappers only.
        .systemLibrary(name: "CSystem"),
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
            name: "FivedServer",
            dependencies: [
                "FivedCore", "LibSSH", "CSystem",
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "fived",
            dependencies: [
                "FivedCore", "FivedServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "fived-connect",
            dependencies: [
                "FivedCore", "LibSSH",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(
            name: "FivedCoreTests",
            dependencies: ["FivedCore"]
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: ["FivedCore"]
        ),
    ]
)
