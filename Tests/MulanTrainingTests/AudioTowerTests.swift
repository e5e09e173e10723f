import Foundation
import MulanTensor
import MulanTraining
import Testing

@Suite("Audio tower: compact ResNet over log-mel spectrograms")
struct AudioTowerTests {
    static let tiny = AudioTowerConfig(melBands: 8, widths: [4, 8], blocksPerStage: 1, embeddingDim: 6)

    @Test func defaultConfigAndDecodingDefaults() throws {
        let config = AudioTowerConfig()
        #expect(config.melBands == 128 && config.widths == [32, 64, 128, 256])
        #expect(config.blocksPerStage == 1 && config.embeddingDim == 128)
        let decoded = try JSONDecoder().decode(AudioTowerConfig.self, from: Data(#"{"widths": [8, 16]}"#.utf8))
        #expect(decoded == AudioTowerConfig(widths: [8, 16]))
        let roundTrip = try JSONDecoder().decode(AudioTowerConfig.self, from: JSONEncoder().encode(Self.tiny))
        #expect(roundTrip == Self.tiny)
    }

    @Test func parameterNamesFollowTorchvision() {
        var random = RandomSource(seed: 1)
        let tower = AudioTower(AudioTowerConfig(), random: &random)
        let names = tower.namedParameters.map(\.name)
        func bn(_ p: String) -> [String] { ["weight", "bias", "running_mean", "running_var"].map { "\(p).\($0)" } }
        var expected = ["conv1.weight"] + bn("bn1")
        for s in 1...4 {
            let b = "layer\(s).0"
            expected += ["\(b).conv1.weight"] + bn("\(b).bn1") + ["\(b).conv2.weight"] + bn("\(b).bn2")
            if s > 1 { expected += ["\(b).downsample.0.weight"] + bn("\(b).downsample.1") }
        }
        expected += ["fc.weight", "fc.bias"]
        #expect(names == expected)
        let shapes = Dictionary(uniqueKeysWithValues: tower.namedParameters.map { ($0.name, $0.parameter.value.shape) })
        #expect(shapes["conv1.weight"] == [32, 1, 3, 3])
        #expect(shapes["layer2.0.conv1.weight"] == [64, 32, 3, 3])
        #expect(shapes["layer4.0.conv2.weight"] == [256, 256, 3, 3])
        #expect(shapes["layer3.0.downsample.0.weight"] == [128, 64, 1, 1])
        #expect(shapes["fc.weight"] == [128, 256])
        // The torchvision-style count: convs + BN affine + fc.
        let convs = 32 * 9 + 2 * 32 * 32 * 9 + (64 * 32 * 9 + 64 * 64 * 9 + 64 * 32) + (128 * 64 * 9 + 128 * 128 * 9 + 128 * 64)
            + (256 * 128 * 9 + 256 * 256 * 9 + 256 * 128)
        let norms = 2 * (32 + 2 * 32 + 3 * 64 + 3 * 128 + 3 * 256)
        #expect(tower.parameterCount == convs + norms + 256 * 128 + 128)
    }

    @Test func outputShapeAndUnitNorms() {
        var random = RandomSource(seed: 2)
        let tower = AudioTower(AudioTowerConfig(), random: &random)
        let x = Tensor.normal(shape: [2, 128, 45], std: 1, using: &random)
        for training in [true, false] {
            let y = tower.forward(x, training: training)
            #expect(y.shape == [2, 128])
            for r in 0..<2 {
                let norm = y.storage[(r * 128)..<(r * 128 + 128)].reduce(0) { $0 + $1 * $1 }.squareRoot()
                #expect(abs(norm - 1) < 1e-5)
            }
        }
    }

    @Test func basicBlockWithProjectionGradients() {
        var random = RandomSource(seed: 3)
        let block = BasicBlock(3, 5, stride: 2, random: &random)
        #expect(block.downsample != nil)
        let x = Tensor.normal(shape: [3, 3, 6, 7], std: 1, using: &random)
        let bad = TrainingGradientCheck.check(input: x, parameters: block.namedParameters,
                                              forward: { block.forward($0, training: true) },
                                              backward: { block.backward($0) }, epsilon: 1e-3)
        #expect(bad.isEmpty, "\(bad.prefix(5))")
    }

    @Test func identityBlockGradients() {
        // Seed chosen so that no pre-activation lies within the step of a ReLU kink, where central
        // differences are meaningless (seed 4 has one 5e-5 from zero).
        var random = RandomSource(seed: 41)
        let block = BasicBlock(4, 4, random: &random)
        #expect(block.downsample == nil)
        let x = Tensor.normal(shape: [2, 4, 5, 5], std: 1, using: &random)
        let bad = TrainingGradientCheck.check(input: x, parameters: block.namedParameters,
                                              forward: { block.forward($0, training: true) },
                                              backward: { block.backward($0) }, epsilon: 1e-3)
        #expect(bad.isEmpty, "\(bad.prefix(5))")
    }

    @Test func tinyTowerEndToEndGradients() {
        var random = RandomSource(seed: 5)
        let tower = AudioTower(Self.tiny, random: &random)
        let x = Tensor.normal(shape: [3, 8, 16], std: 1, using: &random)
        let bad = TrainingGradientCheck.check(input: x, parameters: tower.namedParameters,
                                              forward: { tower.forward($0, training: true) },
                                              backward: { tower.backward($0, inputGradient: true) },
                                              epsilon: 1e-3, samples: 24)
        #expect(bad.isEmpty, "\(bad.prefix(5))")
    }

    /// The training step `mulan-train blas --check-threads` compares (BLASSelfCheck), here on the
    /// test process's own OpenBLAS core.
    static func tinyStep(threads: Int) -> [Tensor] {
        BLAS.threads = threads
        defer { BLAS.threads = 1 }
        return BLASSelfCheck.audioTowerStep()
    }

    @Test func resultsDoNotDependOnThreadCount() {
        let one = Self.tinyStep(threads: 1), two = Self.tinyStep(threads: 2)
        #expect(one == two)
    }
}
