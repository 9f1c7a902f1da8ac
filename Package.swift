// swift-tools-version:6.0
import PackageDescription

// Modules where requests spend little of their time (configuration, setting up an exec, pairing
// and discovery, messaging) are optimized for size in release builds: loopsyd 110 KB smaller.
let optimizedForSize: [SwiftSetting] = [.unsafeFlags(["-Osize"], .when(configuration: .release))]

let package = Package(
    name: "loopsy",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "loopsyd", targets: ["loopsyd"]),
        .executable(name: "loopsy", targets: ["loopsy"]),
        .executable(name: "loopsy-mcp", targets: ["loopsy-mcp"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/modelcontextprotocol/swift-sdk", exact: "0.12.1"),
    ],
    targets: [
        .systemLibrary(name: "CMicroHTTPD", pkgConfig: "libmicrohttpd",
                       providers: [.apt(["libmicrohttpd-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CPosix"),

        // libcurl, dlopened on first use (see its header): only libcurl4-gnutls-dev's headers at build time.
        .target(name: "CCurl"),
        // avahi-client, dlopened when discovery starts (see its header): libavahi-client-dev's headers at build time.
        .target(name: "CAvahi"),
        .target(name: "LoopsyPOSIX", dependencies: ["CPosix"]),
        .target(name: "LoopsyHTTP", dependencies: ["CMicroHTTPD", "LoopsyPOSIX"]),
        .target(name: "LoopsyAPI"),
        .target(name: "LoopsyStore", dependencies: ["CSQLite", "LoopsyAPI", "LoopsyPOSIX"]),
        .target(name: "LoopsyConfig", dependencies: [
            "LoopsyAPI", "LoopsyPOSIX", .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: optimizedForSize),
        // What every domain library shares: answers given later, the change bus.
        .target(name: "LoopsyCore", dependencies: ["LoopsyAPI", "LoopsyPOSIX", "LoopsyStore"]),
        // Domain libraries: what a node does, without HTTP (LoopsyServer's handlers serve them).
        .target(name: "LoopsyTransfer", dependencies: [
            "LoopsyCore", "LoopsyAPI", "LoopsyConfig", "LoopsyStore", "LoopsyPOSIX",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .target(name: "LoopsyRun", dependencies: [
            "LoopsyCore", "LoopsyAPI", "LoopsyConfig", "LoopsyStore", "LoopsyPOSIX",
        ], swiftSettings: optimizedForSize),
        .target(name: "LoopsyPeers", dependencies: [
            "LoopsyCore", "LoopsyAPI", "LoopsyConfig", "LoopsyStore", "LoopsyClient", "LoopsyPOSIX", "CAvahi",
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: optimizedForSize),
        .target(name: "LoopsyMessaging", dependencies: [
            "LoopsyCore", "LoopsyPeers", "LoopsyAPI", "LoopsyConfig", "LoopsyStore", "LoopsyClient", "LoopsyPOSIX",
        ], swiftSettings: optimizedForSize),
        .target(name: "LoopsyServer", dependencies: [
            "LoopsyCore", "LoopsyTransfer", "LoopsyRun", "LoopsyPeers", "LoopsyMessaging", "LoopsyHTTP", "LoopsyAPI", "LoopsyStore", "LoopsyConfig", "LoopsyClient", "LoopsyPOSIX",
            .product(name: "Crypto", package: "swift-crypto"),
        ], resources: [
            // The dashboard's files, compiled into the binary as byte arrays (no Foundation Bundle).
            .embedInCode("Dashboard/Web/index.html"), .embedInCode("Dashboard/Web/app.js"),
            .embedInCode("Dashboard/Web/app.css"), .embedInCode("Dashboard/Web/icon.svg"),
        ]),
        .target(name: "LoopsyClient", dependencies: [
            "CCurl", "LoopsyAPI", "LoopsyConfig", "LoopsyPOSIX", .product(name: "Crypto", package: "swift-crypto"),
        ]),

        .executableTarget(name: "loopsyd", dependencies: [
            "LoopsyServer", "LoopsyHTTP", "LoopsyStore", "LoopsyConfig", "LoopsyAPI", "LoopsyPOSIX",
        ]),
        .executableTarget(name: "loopsy", dependencies: [
            "LoopsyClient", "LoopsyConfig", "LoopsyAPI", "LoopsyPOSIX",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .executableTarget(name: "loopsy-mcp", dependencies: [
            "LoopsyAPI", "LoopsyClient", "LoopsyConfig", "LoopsyPOSIX", .product(name: "MCP", package: "swift-sdk"),
        ]),

        .testTarget(name: "LoopsyStoreTests", dependencies: ["LoopsyStore"]),
        .testTarget(name: "LoopsyPOSIXTests", dependencies: ["LoopsyPOSIX"]),
        .testTarget(name: "LoopsyCoreTests", dependencies: ["LoopsyCore", "LoopsyAPI", "LoopsyPOSIX"]),
        .testTarget(name: "LoopsyMessagingTests", dependencies: ["LoopsyMessaging", "LoopsyCore", "LoopsyStore", "LoopsyAPI"]),
        .testTarget(name: "LoopsyPeersTests", dependencies: [
            "LoopsyPeers", "LoopsyAPI", "LoopsyConfig", .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .testTarget(name: "LoopsyRunTests", dependencies: ["LoopsyRun", "LoopsyAPI", "LoopsyConfig", "LoopsyPOSIX"]),
        .testTarget(name: "LoopsyTransferTests", dependencies: [
            "LoopsyTransfer", "LoopsyAPI", "LoopsyConfig", "LoopsyCore", "LoopsyPOSIX", .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .testTarget(name: "LoopsyAPITests", dependencies: ["LoopsyAPI"]),
        .testTarget(name: "LoopsyHTTPTests", dependencies: ["LoopsyHTTP", "LoopsyClient", "LoopsyPOSIX"]),
        .testTarget(name: "LoopsyClientTests", dependencies: ["LoopsyClient", "LoopsyAPI", "LoopsyHTTP", "LoopsyPOSIX"]),
        .testTarget(name: "LoopsyServerTests", dependencies: [
            "LoopsyServer", "LoopsyHTTP", "LoopsyConfig", "LoopsyAPI", "LoopsyPOSIX", "LoopsyCore",
        ]),
        .testTarget(name: "LoopsyConfigTests", dependencies: ["LoopsyConfig"]),
        .testTarget(name: "IntegrationTests", dependencies: [
            "LoopsyAPI", "LoopsyClient", "LoopsyConfig", "LoopsyStore", "LoopsyPeers", .product(name: "Crypto", package: "swift-crypto"),
        ]),
    ]
)
