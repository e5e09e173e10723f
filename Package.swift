// swift-tools-version:6.0
// mulan: prepares training data for MuLan-style music/text models.
import PackageDescription

let package = Package(
    name: "mulan",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "mulan-ingest", targets: ["mulan-ingest"]),
        .executable(name: "mulan-filter", targets: ["mulan-filter"]),
        .executable(name: "mulan-shard", targets: ["mulan-shard"]),
        .executable(name: "mulan-train", targets: ["mulan-train"]),
        .executable(name: "mulan-embed", targets: ["mulan-embed"]),
        .executable(name: "mulan-search", targets: ["mulan-search"]),
        .executable(name: "mulan-eval", targets: ["mulan-eval"]),
        .executable(name: "mulan-report", targets: ["mulan-report"]),
        .executable(name: "mulan-dedupe", targets: ["mulan-dedupe"]),
        // The parsers, for the libFuzzer harnesses of fuzz/ (a separate package that depends on this one).
        .library(name: "MulanKit", targets: ["MulanCore", "MulanText", "MulanShards", "MulanTensor"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C boundaries: module maps and shims only.
        .systemLibrary(name: "CFFmpeg", pkgConfig: "libavformat",
                       providers: [.apt(["libavformat-dev", "libavcodec-dev", "libavutil-dev", "libswresample-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CChromaprint", pkgConfig: "libchromaprint", providers: [.apt(["libchromaprint-dev"])]),
        .systemLibrary(name: "CEBUR128", pkgConfig: "libebur128", providers: [.apt(["libebur128-dev"])]),
        .target(name: "CICUShim", linkerSettings: [.linkedLibrary("icuuc"), .linkedLibrary("icudata")]),
        // CPU features (CPUID) and mallopt for MulanTensor; OpenBLAS itself is loaded at run time (dlopen, in
        // libc since glibc 2.34) after its kernel family is chosen: see Sources/MulanTensor/OpenBLASLibrary.swift.
        .target(name: "COpenBLAS"),

        // Swift layers.
        .target(name: "MulanCore", dependencies: ["CCrypto"]),
        .target(name: "MulanMedia", dependencies: ["MulanCore", "CFFmpeg", "CChromaprint", "CEBUR128"]),
        .target(name: "MulanCatalog", dependencies: ["MulanCore", "CSQLite"]),
        .target(name: "MulanText", dependencies: ["MulanCore", "CICUShim"]),
        .target(name: "MulanIngest", dependencies: ["MulanCore", "MulanMedia", "MulanCatalog"]),
        .target(name: "MulanFiltering", dependencies: ["MulanCore", "MulanText", "MulanCatalog"]),
        .target(name: "MulanShards", dependencies: ["MulanCore", "MulanCatalog", "MulanMedia"]),
        .target(name: "MulanDedupe", dependencies: ["MulanCore", "MulanCatalog"]),
        .target(name: "MulanTensor", dependencies: ["COpenBLAS"]),
        .target(name: "MulanDSP", dependencies: ["MulanCore", "CFFmpeg"]),
        .target(name: "MulanTraining", dependencies: ["MulanCore", "MulanMedia", "MulanShards", "MulanTensor", "MulanDSP", "MulanText"]),
        .target(name: "MulanReport", dependencies: ["MulanCore", "MulanCatalog", "MulanShards", "MulanTraining"]),
        // Zero-shot audio filtering: catalog clips scored against text prompts with a trained model. Its own
        // module because MulanFiltering (text) must not pull in the model stack.
        .target(name: "MulanAudioFilter", dependencies: ["MulanCore", "MulanCatalog", "MulanTraining"]),
        .target(name: "MulanCommands", dependencies: [
            "MulanCore", "MulanIngest", "MulanCatalog", "MulanText", "MulanFiltering", "MulanShards", "MulanTraining",
            "MulanReport", "MulanDedupe", "MulanMedia", "MulanAudioFilter",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "mulan-ingest", dependencies: [
            "MulanCommands", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "mulan-filter", dependencies: [
            "MulanCommands", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "mulan-shard", dependencies: [
            "MulanCommands", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "mulan-train", dependencies: [
            "MulanCommands", "MulanTensor", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "mulan-embed", dependencies: [
            "MulanCommands", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "mulan-search", dependencies: [
            "MulanCommands", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "mulan-eval", dependencies: [
            "MulanCommands", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "mulan-report", dependencies: [
            "MulanCommands", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "mulan-dedupe", dependencies: [
            "MulanCommands", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        // Tests.
        .target(name: "MulanTestSupport", dependencies: ["MulanCore", "MulanCatalog"], path: "Tests/MulanTestSupport"),
        .testTarget(name: "MulanCoreTests", dependencies: ["MulanCore", "MulanTestSupport"]),
        .testTarget(name: "MulanMediaTests", dependencies: ["MulanMedia", "CEBUR128", "MulanTestSupport"]),
        .testTarget(name: "MulanCatalogTests", dependencies: ["MulanCatalog", "MulanTestSupport"]),
        .testTarget(name: "MulanTextTests", dependencies: ["MulanText", "MulanCore", "MulanTestSupport"]),
        .testTarget(name: "MulanFilteringTests", dependencies: ["MulanFiltering", "MulanText", "MulanCatalog", "MulanTestSupport"]),
        .testTarget(name: "MulanShardsTests", dependencies: ["MulanShards", "MulanCatalog", "MulanTestSupport"]),
        .testTarget(name: "MulanTensorTests", dependencies: ["MulanTensor", "MulanTestSupport"]),
        .testTarget(name: "MulanDSPTests", dependencies: ["MulanDSP", "MulanMedia", "MulanTestSupport"]),
        .testTarget(name: "MulanTrainingTests", dependencies: ["MulanTraining", "MulanTensor", "MulanShards", "MulanText", "MulanTestSupport"]),
        .testTarget(name: "MulanIngestTests", dependencies: ["MulanIngest", "MulanCatalog", "MulanMedia", "MulanTestSupport"]),
        .testTarget(name: "MulanAudioFilterTests", dependencies: ["MulanAudioFilter", "MulanTraining", "MulanCatalog", "MulanCore",
                                                                 "MulanTestSupport"]),
        .testTarget(name: "MulanReportTests", dependencies: ["MulanReport", "MulanCatalog", "MulanTestSupport"]),
        .testTarget(name: "MulanDedupeTests", dependencies: ["MulanDedupe", "MulanCatalog", "MulanMedia", "MulanShards",
                                                             "MulanTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
