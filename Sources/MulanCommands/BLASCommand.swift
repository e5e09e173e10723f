import ArgumentParser
import Foundation
import MulanCore
import MulanTensor
import MulanTraining

/// `mulan-train blas`: which OpenBLAS core mulan runs on this CPU and why, and optionally its
/// single-thread sgemm speed and a bit-for-bit check of 1 thread against N.
public struct BLASCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "blas",
        abstract: "Show the OpenBLAS core mulan runs on this CPU and why; measure it; check thread-count reproducibility.",
        discussion: """
        mulan loads OpenBLAS with the kernel family of the CPU's widest vectors (AVX-512: SkylakeX, or \
        Cooperlake with BF16; AVX2 and FMA: Haswell), whatever CPU model OpenBLAS knows; an \
        OPENBLAS_CORETYPE you set always wins. --gflops times cblas_sgemm on one thread; --check-threads N \
        computes products, a BERT encoder layer and a ResNet audio tower step at 1 and at N threads and \
        compares every output bit for bit. Exit codes: 0 ok; 1 the library cannot be loaded or a check \
        found a difference; 64 usage.
        """)

    @Flag(help: "Time cblas_sgemm on 1024×1024 matrices, one thread.") public var gflops = false
    @Option(help: ArgumentHelp("Compare 1 thread with this many, bit for bit.", valueName: "n")) public var checkThreads: Int?
    @Flag(help: "Print JSON instead of text.") public var json = false

    public init() {}

    public func validate() throws {
        if let n = checkThreads, n < 2 { throw ValidationError("--check-threads must be at least 2") }
    }

    public func run() async throws {
        let console = Console(quiet: true)
        try await runStage(console: console) {
            let core = try startBLAS(threads: 1, console: console)
            var report = BLASSelfCheck.Report(blas: core)
            if gflops {
                report.sgemmSize = 1024
                report.sgemmGFLOPS = BLASSelfCheck.sgemmGFLOPS(size: 1024)
            }
            if let n = checkThreads {
                report.threads = n
                report.comparisons = BLASSelfCheck.compareThreadCounts(n)
            }
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
            } else {
                print(text(report))
            }
            return report.allIdentical ? .success : .fatal
        }
    }

    func text(_ r: BLASSelfCheck.Report) -> String {
        var lines = ["library: \(r.blas.library)", "config: \(r.blas.config)",
                     "core: \(r.blas.core) (\(r.blas.choice.rawValue)\(r.blas.requested.map { ", OPENBLAS_CORETYPE=\($0)" } ?? ""))",
                     "cpu: \(r.blas.cpuModel) [\(r.blas.cpuFeatures.joined(separator: " "))]"]
        if let g = r.sgemmGFLOPS, let n = r.sgemmSize { lines.append(String(format: "sgemm %d³, 1 thread: %.1f GFLOP/s", n, g)) }
        for c in r.comparisons ?? [] {
            lines.append("\(c.identical ? "identical" : "DIFFERENT") at 1 and \(r.threads ?? 0) threads: \(c.name)"
                         + (c.identical ? "" : " (largest difference \(c.largestDifference))"))
        }
        return lines.joined(separator: "\n")
    }
}
