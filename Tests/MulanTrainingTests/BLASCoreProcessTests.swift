import Foundation
import MulanTensor
import MulanTestSupport
import Testing

/// `mulan-train blas` in child processes, where OPENBLAS_CORETYPE can be set or unset before
/// OpenBLAS loads: mulan's own choice, a user's core winning, a warning for a slow one, and 1-thread
/// against 2-thread results bit for bit under every core this CPU can run.
@Suite("OpenBLAS cores in child processes")
struct BLASCoreProcessTests {
    static var binary: String { TestPaths.executable("mulan-train") }

    static func blas(_ arguments: [String], core: String?) throws -> (report: [String: Any], result: ProcessResult) {
        let result = try TestProcess.run(binary, ["blas", "--json"] + arguments,
                                         environment: core.map { ["OPENBLAS_CORETYPE": $0] },
                                         unsetting: core == nil ? ["OPENBLAS_CORETYPE"] : [])
        let report = try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any] ?? [:]
        return (report, result)
    }

    @Test func withoutOPENBLAS_CORETYPEMulanChoosesFromTheCPUsFeatures() throws {
        let (report, r) = try Self.blas([], core: nil)
        #expect(r.status == 0, "\(r.stderr)")
        let blas = try #require(report["blas"] as? [String: Any])
        let features = CPUFeatures.current
        guard let preferred = features.preferredCore else {
            print("skipped: this CPU has no AVX2 and FMA; OpenBLAS detected \(blas["core"] ?? "?")")
            #expect(blas["choice"] as? String == "openblas")
            return
        }
        #expect(blas["choice"] as? String == "cpu-features")
        #expect((blas["core"] as? String)?.lowercased() == preferred.lowercased(), "\(blas)")
        #expect(blas["core_level"] as? String == features.level.rawValue)
        #expect(!r.stderr.contains("warning"), "\(r.stderr)")
    }

    @Test func aUsersCoreWinsAndAGenericOneIsNeverSilent() throws {
        let (report, r) = try Self.blas([], core: "Prescott")
        #expect(r.status == 0, "\(r.stderr)")
        let blas = try #require(report["blas"] as? [String: Any])
        #expect(blas["core"] as? String == "Prescott")
        #expect(blas["choice"] as? String == "environment")
        if CPUFeatures.current.avx2FMA {
            #expect(r.stderr.contains("warning: OpenBLAS runs its Prescott kernel"), "\(r.stderr)")
        }
    }

    /// The cores OpenBLAS 0.3.21 has for x86-64 that this CPU can run, from the oldest generic one
    /// to AVX-512: each must give the same bits at 1 and 2 threads.
    static var coresToCheck: [String] {
        let f = CPUFeatures.current
        return ["Prescott", "Core2", "Nehalem"] + (f.avx2FMA ? ["Sandybridge", "Haswell", "Zen"] : [])
            + (f.avx512 ? ["SkylakeX"] : []) + (f.avx512BF16 ? ["Cooperlake"] : [])
    }

    @Test(arguments: coresToCheck)
    func resultsAreBitIdenticalAtOneAndTwoThreads(core: String) throws {
        let (report, r) = try Self.blas(["--check-threads", "2"], core: core)
        #expect(r.status == 0, "\(r.stderr)")
        #expect((report["blas"] as? [String: Any])?["core"] as? String == core)
        let comparisons = report["comparisons"] as? [[String: Any]] ?? []
        #expect(comparisons.count == 7)
        for c in comparisons {
            #expect(c["identical"] as? Bool == true, "\(core): \(c)")
        }
    }

    @Test func stagesThatMultiplySayWhichCoreRunsAtTheirStart() throws {
        let dir = TempDir()
        for (tool, arguments) in [("mulan-train", ["--dataset", dir.file("missing")]),
                                  ("mulan-embed", ["--checkpoint", dir.file("missing.safetensors"), "--text", "x",
                                                   "--out", dir.file("out")])] {
            let r = try TestProcess.run(TestPaths.executable(tool), arguments, unsetting: ["OPENBLAS_CORETYPE"])
            #expect(r.status == 1 || r.status == 64, "\(tool): \(r.stderr)")
            #expect(r.stderr.hasPrefix("BLAS: OpenBLAS"), "\(tool): \(r.stderr)")
        }
    }
}
