// swift-tools-version:6.0
// libFuzzer harnesses for mulan's parsers (docs/reliability.md). Not part of `make test`: build and
// run them with scripts/fuzz.sh (`make fuzz`), which passes -sanitize=fuzzer,address.
import PackageDescription

let harness: [String] = ["fuzz-manifest", "fuzz-text-formats", "fuzz-tar", "fuzz-safetensors", "fuzz-tokenizer", "fuzz-toml"]

let package = Package(
    name: "mulan-fuzz",
    platforms: [.macOS(.v13)],
    dependencies: [.package(name: "mulan", path: "..")],
    targets: [
        .target(name: "FuzzSupport", dependencies: [.product(name: "MulanKit", package: "mulan")]),
    ] + harness.map { name in
        .executableTarget(name: name, dependencies: ["FuzzSupport", .product(name: "MulanKit", package: "mulan")])
    },
    swiftLanguageModes: [.v6]
)
