// swift-tools-version:6.0
// mulan: prepares training data for MuLan-style music/text models.
import PackageDescription

// What every target shares, named once.
/// The command-line tools; each is an executable target of the same name over MulanCommands.
let tools = ["mulan-ingest", "mulan-filter", "mulan-shard", "mulan-train", "mulan-embed", "mulan-search", "mulan-eval",
             "mulan-report", "mulan-dedupe"]
let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")

let package = Package(
    name: "mulan",
    platforms: [.macOS(.v13)],
    products: tools.map { .executable(name: $0, targets: [$0]) } + [
        // The parsers, for the libFuzzer harnesses of fuzz/ (a separate package that depends on this one).
        .library(name: "MulanKit", targets: ["MulanCore", "MulanFormats", "MulanText", "MulanShards", "MulanShardFormat", "MulanTensor"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // C boundaries: module maps and shims only.
        .systemLibrary(name: "CMulanFFmpeg", pkgConfig: "libavformat",
                       providers: [.apt(["libavformat-dev", "libavcodec-dev", "libavutil-dev", "libswresample-dev"])]),
        .systemLibrary(name: "CMulanSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CMulanCrypto", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CMulanChromaprint", pkgConfig: "libchromaprint", providers: [.apt(["libchromaprint-dev"])]),
        .systemLibrary(name: "CMulanEBUR128", pkgConfig: "libebur128", providers: [.apt(["libebur128-dev"])]),
        .target(name: "CMulanICU", linkerSettings: [.linkedLibrary("icuuc"), .linkedLibrary("icudata")]),
        // CPU features (CPUID) and mallopt for MulanTensor; OpenBLAS itself is loaded at run time (dlopen, in
        // libc since glibc 2.34) after its kernel family is chosen: see Sources/MulanTensor/OpenBLASLibrary.swift.
        .target(name: "CMulanOpenBLAS"),

        // Swift layers.
        .target(name: "MulanCore", dependencies: ["CMulanCrypto"]),
        // The parsers of untrusted bytes users bring (CSV, TOML, JSON Lines, manifests, the corpora's own
        // formats): what the fuzz harnesses exercise.
        .target(name: "MulanFormats", dependencies: ["MulanCore"]),
        .target(name: "MulanMedia", dependencies: ["MulanCore", "CMulanFFmpeg", "CMulanChromaprint", "CMulanEBUR128"]),
        .target(name: "MulanCatalog", dependencies: ["MulanCore", "CMulanSQLite"]),
        .target(name: "MulanText", dependencies: ["MulanCore", "MulanFormats", "CMulanICU"]),
        .target(name: "MulanIngest", dependencies: ["MulanCore", "MulanFormats", "MulanMedia", "MulanCatalog"]),
        .target(name: "MulanFiltering", dependencies: ["MulanCore", "MulanFormats", "MulanText", "MulanCatalog"]),
        // The shard format (dataset.json, tar members, sidecars): what writers and readers share, without the catalog.
        .target(name: "MulanShardFormat", dependencies: ["MulanCore"]),
        .target(name: "MulanShards", dependencies: ["MulanCore", "MulanFormats", "MulanCatalog", "MulanMedia", "MulanShardFormat"]),
        .target(name: "MulanDedupe", dependencies: ["MulanCore", "MulanCatalog"]),
        .target(name: "MulanTensor", dependencies: ["CMulanOpenBLAS"]),
        .target(name: "MulanDSP", dependencies: ["MulanCore", "CMulanFFmpeg"]),
        // Evaluation and metrics records: written by the trainer, read by reports, with no model code.
        .target(name: "MulanRecords"),
        .target(name: "MulanTraining", dependencies: ["MulanCore", "MulanFormats", "MulanMedia", "MulanShardFormat", "MulanTensor", "MulanDSP",
                                                      "MulanText", "MulanRecords"]),
        .target(name: "MulanReport", dependencies: ["MulanCore", "MulanCatalog", "MulanShardFormat", "MulanRecords"]),
        // Zero-shot audio filtering: catalog clips scored against text prompts with a trained model. Its own
        // module because MulanFiltering (text) must not pull in the model stack.
        .target(name: "MulanAudioFilter", dependencies: ["MulanCore", "MulanCatalog", "MulanTraining", "MulanRecords"]),
        .target(name: "MulanCommands", dependencies: [
            "MulanCore", "MulanFormats", "MulanIngest", "MulanCatalog", "MulanText", "MulanFiltering", "MulanShards", "MulanTraining",
            "MulanReport", "MulanDedupe", "MulanMedia", "MulanAudioFilter", "MulanRecords", "MulanShardFormat", "MulanTensor",
            "MulanDSP",
            argumentParser,
        ]),
    ] + tools.map { tool in
        // Each tool is a thin entry point over MulanCommands (mulan-train sets MulanTensor's allocation policy first).
        .executableTarget(name: tool, dependencies: ["MulanCommands", argumentParser] + (tool == "mulan-train" ? ["MulanTensor"] : []))
    } + [
        // Tests.
        .target(name: "MulanTestSupport", dependencies: ["MulanCore", "MulanCatalog"], path: "Tests/MulanTestSupport"),
        .testTarget(name: "MulanCoreTests", dependencies: ["MulanCore", "MulanTestSupport"]),
        .testTarget(name: "MulanFormatsTests", dependencies: ["MulanFormats", "MulanCore", "MulanTestSupport"]),
        .testTarget(name: "MulanMediaTests", dependencies: ["MulanMedia", "CMulanEBUR128", "MulanTestSupport"]),
        .testTarget(name: "MulanCatalogTests", dependencies: ["MulanCatalog", "MulanTestSupport"]),
        .testTarget(name: "MulanTextTests", dependencies: ["MulanText", "MulanCore", "MulanTestSupport"]),
        .testTarget(name: "MulanFilteringTests", dependencies: ["MulanFiltering", "MulanFormats", "MulanText", "MulanCatalog", "MulanTestSupport"]),
        .testTarget(name: "MulanShardsTests", dependencies: ["MulanShards", "MulanShardFormat", "MulanCatalog", "MulanTestSupport"]),
        .testTarget(name: "MulanTensorTests", dependencies: ["MulanTensor", "MulanTestSupport"]),
        .testTarget(name: "MulanDSPTests", dependencies: ["MulanDSP", "MulanMedia", "MulanTestSupport"]),
        .testTarget(name: "MulanTrainingTests", dependencies: ["MulanTraining", "MulanFormats", "MulanTensor", "MulanShards", "MulanShardFormat", "MulanText",
                                                              "MulanRecords", "MulanTestSupport"]),
        .testTarget(name: "MulanIngestTests", dependencies: ["MulanIngest", "MulanFormats", "MulanCatalog", "MulanMedia", "MulanTestSupport"]),
        .testTarget(name: "MulanAudioFilterTests", dependencies: ["MulanAudioFilter", "MulanFormats", "MulanIngest", "MulanTraining", "MulanRecords", "MulanCatalog",
                                                                 "MulanCore", "MulanTestSupport"]),
        .testTarget(name: "MulanReportTests", dependencies: ["MulanReport", "MulanCatalog", "MulanShardFormat", "MulanTestSupport"]),
        .testTarget(name: "MulanDedupeTests", dependencies: ["MulanDedupe", "MulanCatalog", "MulanMedia", "MulanShards",
                                                             "MulanShardFormat", "MulanTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
