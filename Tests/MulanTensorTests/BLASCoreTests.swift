import MulanTensor
import Testing

/// How mulan chooses OpenBLAS's core, and how fixed blocks keep products independent of threads.
/// (Tests/MulanTrainingTests/BLASCoreProcessTests.swift runs `mulan-train blas` under each core.)
@Suite("OpenBLAS core choice and product blocks")
struct BLASCoreTests {
    @Test func theCoreFollowsTheWidestVectorsNotTheCPUModel() {
        #expect(CPUFeatures(avx2FMA: false, avx512: false, avx512BF16: false).preferredCore == nil)
        #expect(CPUFeatures(avx2FMA: true, avx512: false, avx512BF16: false).preferredCore == "Haswell")
        #expect(CPUFeatures(avx2FMA: true, avx512: true, avx512BF16: false).preferredCore == "SkylakeX")
        #expect(CPUFeatures(avx2FMA: true, avx512: true, avx512BF16: true).preferredCore == "Cooperlake")
        #expect(CPUFeatures(avx2FMA: true, avx512: true, avx512BF16: true).level == .avx512)
        #expect(CPUFeatures(avx2FMA: false, avx512: false, avx512BF16: false).level == .belowAVX2)
    }

    @Test(arguments: [("Prescott", BLASCore.VectorLevel.belowAVX2), ("KATMAI", .belowAVX2), ("Core2", .belowAVX2),
                      ("Sandybridge", .belowAVX2), ("Haswell", .avx2), ("zen", .avx2), ("SkylakeX", .avx512),
                      ("COOPERLAKE", .avx512), ("SapphireRapids", .avx512)])
    func coreNamesHaveTheirVectorLevel(name: String, level: BLASCore.VectorLevel) {
        #expect(BLASCore.level(ofCore: name) == level)
    }

    /// On the Xeons of issue 27, OpenBLAS 0.3.21 ran its generic Prescott kernel here. With the
    /// user's own OPENBLAS_CORETYPE the core is theirs (the next test covers mulan's choice alone).
    @Test func theCoreInUseIsNotGenericOnACPUWithAVX2() throws {
        let features = CPUFeatures.current
        let core = try BLAS.load()
        guard features.avx2FMA else {
            print("skipped: this CPU has no AVX2 and FMA, so OpenBLAS's own detection stands (core \(core.core))")
            return
        }
        guard core.choice != .environment else {
            print("skipped: OPENBLAS_CORETYPE=\(core.requested ?? "") is set for this process; core \(core.core)")
            #expect(core.warning == nil || core.belowCPU)
            return
        }
        #expect(core.choice == .cpuFeatures)
        #expect(core.core.lowercased() == features.preferredCore?.lowercased(), "\(core.summary)")
        #expect(core.coreLevel == features.level && !core.belowCPU && core.warning == nil, "\(core.summary)")
    }

    @Test func blocksDependOnTheShapeAlone() {
        #expect(BLAS.gemmBlocks(0) == 1)
        #expect(BLAS.gemmBlocks(63) == 1)
        #expect(BLAS.gemmBlocks(64) == 2)
        #expect(BLAS.gemmBlocks(128) == 4)
        #expect(BLAS.gemmBlocks(255) == 4)
        #expect(BLAS.gemmBlocks(256) == 8)
        #expect(BLAS.gemmBlocks(100_000) == BLAS.maxGemmBlocks)
    }
}
