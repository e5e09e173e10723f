import Foundation
import MulanCore
import MulanTensor
import MulanTestSupport
@testable import MulanTraining
import Testing

/// The paper's two audio towers (issue 23): ResNet-50's bottleneck stages and the Audio Spectrogram
/// Transformer.
@Suite("ResNet-50 and AST audio towers")
struct PaperTowerTests {
    static func resnet50(widths: [Int] = AudioTowerConfig.resnet50Widths, melBands: Int = 128, embeddingDim: Int = 128) -> AudioTowerConfig {
        var c = AudioTowerConfig(melBands: melBands, widths: widths, embeddingDim: embeddingDim)
        c.kind = .resnet50
        return c
    }

    @Test func resnet50HasResNet50sLayout() throws {
        var random = RandomSource(seed: 1)
        let tower = AudioTower(Self.resnet50(), random: &random)
        #expect(tower.stages.map(\.count) == [3, 4, 6, 3])
        let shapes = Dictionary(uniqueKeysWithValues: tower.namedParameters.map { ($0.name, $0.parameter.value.shape) })
        #expect(shapes["conv1.weight"] == [64, 1, 3, 3])
        #expect(shapes["layer1.0.conv1.weight"] == [64, 64, 1, 1] && shapes["layer1.0.conv3.weight"] == [256, 64, 1, 1])
        #expect(shapes["layer1.0.downsample.0.weight"] == [256, 64, 1, 1] && shapes["layer1.1.downsample.0.weight"] == nil)
        #expect(shapes["layer2.0.conv2.weight"] == [128, 128, 3, 3] && shapes["layer2.0.downsample.0.weight"] == [512, 256, 1, 1])
        #expect(shapes["layer3.5.conv3.weight"] == [1024, 256, 1, 1] && shapes["layer4.2.bn3.running_var"] == [2048])
        #expect(shapes["fc.weight"] == [128, 2048])
        // torchvision's resnet50 has 25,557,032 parameters: less its 7×7 RGB stem (9,408) and 1000-way fc
        // (2,049,000), plus this stem (576) and a 2048 → 128 fc (262,272).
        #expect(tower.parameterCount == 25_557_032 - 9_408 - 2_049_000 + 576 + 262_272)
        // The stride-2 stages halve the map: 64 × 96 → stem 32 × 48 → pool 16 × 24 → 16, 8, 4, 2 rows.
        let x = Tensor.normal(shape: [2, 64, 96], std: 1, using: &random)
        var config = Self.resnet50(widths: [16, 32, 64, 128], melBands: 64, embeddingDim: 8)
        let small = AudioTower(config, random: &random)
        let e = small.forward(x, training: false)
        #expect(e.shape == [2, 8] && abs(e.storage[0..<8].reduce(0) { $0 + $1 * $1 } - 1) < 1e-5)
        config.widths = [16, 32, 64, 130]
        var training = TrainingConfig(sampleRate: 16000)
        training.audio = config
        do {
            try training.checkAudio(source: "test")
            Issue.record("widths that are not multiples of 4 must be refused")
        } catch {
            #expect(error.description.contains("resnet50 tower needs 4 stage widths, each a multiple of 4"), "\(error.description)")
        }
        let json = String(decoding: try JSONEncoder().encode(Self.resnet50()), as: UTF8.self)
        #expect(json.contains(#""kind":"resnet50""#) && !json.contains("ast"))
    }

    /// Batch norm couples every position of a channel, so a step of one weight moves all of a
    /// channel's pre-activations and crosses some ReLU kinks, which central differences cannot
    /// follow (PyTorch's autograd against float64 differences fails the same way). The batch-norm
    /// shifts before each ReLU are raised to +3 so the ReLUs almost never clip: the checks then see
    /// the blocks' wiring, not the kinks.
    static func raiseShifts(_ module: any Module) {
        for (name, p) in module.namedParameters where name.hasSuffix("bias") && name.contains("bn") {
            p.value = Tensor(shape: p.value.shape, repeating: 3)
        }
    }

    @Test func bottleneckGradients() {
        var random = RandomSource(seed: 41)
        for (input, planes, stride) in [(6, 2, 2), (8, 2, 1)] {
            let block = Bottleneck(input, planes: planes, stride: stride, random: &random)
            #expect((block.downsample == nil) == (stride == 1 && input == 4 * planes))
            Self.raiseShifts(block)
            let x = Tensor.normal(shape: [3, input, 6, 7], std: 1, using: &random)
            // (Not bn2.bias: with ReLU2 linear, conv3 turns its shift into a constant per channel that
            // bn3 removes, so its true gradient is 0 and differences show only rounding.)
            let bad = TrainingGradientCheck.check(input: x, parameters: block.namedParameters.filter { $0.name != "bn2.bias" },
                                                  forward: { block.forward($0, training: true) },
                                                  backward: { block.backward($0) }, epsilon: 1e-3)
            #expect(bad.isEmpty, "in \(input), planes \(planes), stride \(stride): \(bad.prefix(5))")
        }
    }

    /// The whole tower's wiring (stem, 16 bottlenecks, pooling, fc, normalization): the derivative of
    /// L = Σ e·r along the analytic gradient of all weights, and along the input gradient, equals the
    /// gradient's norm.
    @Test func tinyResNet50EndToEndGradients() {
        var random = RandomSource(seed: 5)
        let tower = AudioTower(Self.resnet50(widths: [8, 8, 16, 16], melBands: 32, embeddingDim: 6), random: &random)
        Self.raiseShifts(tower)
        let x = Tensor.normal(shape: [4, 32, 64], std: 1, using: &random)
        let r = Tensor.normal(shape: [4, 6], std: 1, using: &random)
        func loss(_ input: Tensor) -> Double {
            zip(tower.forward(input, training: true).storage, r.storage).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let weights = tower.namedParameters.filter { $0.parameter.trainable }
        tower.zeroGrads()
        _ = tower.forward(x, training: true)
        let dx = tower.backward(r, inputGradient: true)!
        let grads = weights.map(\.parameter.grad)
        let norm = grads.reduce(0.0) { $0 + $1.storage.reduce(0.0) { $0 + Double($1) * Double($1) } }.squareRoot()
        let h = 1e-2 / max(norm, 1)
        let saved = weights.map(\.parameter.value)
        func shift(_ sign: Double) {
            for (k, (_, p)) in weights.enumerated() {
                var v = saved[k]
                for i in v.storage.indices { v.storage[i] += Float(sign * h * Double(grads[k].storage[i]) / norm) }
                p.value = v
            }
        }
        shift(1)
        let plus = loss(x)
        shift(-1)
        let minus = loss(x)
        for (k, (_, p)) in weights.enumerated() { p.value = saved[k] }
        let along = (plus - minus) / (2 * h)
        #expect(norm > 0 && abs(along - norm) <= 0.05 * norm, "weights: derivative along the gradient \(along), norm \(norm)")
        let dxNorm = dx.storage.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
        let hx = 1e-2 / max(dxNorm, 1)
        func moved(_ sign: Double) -> Tensor {
            var m = x
            for i in m.storage.indices { m.storage[i] += Float(sign * hx * Double(dx.storage[i]) / dxNorm) }
            return m
        }
        let alongInput = (loss(moved(1)) - loss(moved(-1))) / (2 * hx)
        #expect(dxNorm > 0 && abs(alongInput - dxNorm) <= 0.05 * dxNorm, "input: derivative along the gradient \(alongInput), norm \(dxNorm)")
    }

    @Test func astLayoutNamesAndPatchGrid() throws {
        var random = RandomSource(seed: 2)
        let tower = ASTTower(ASTConfig(width: 16, layers: 2, heads: 2, feedForward: 32), melBands: 64, frames: 1001,
                             embeddingDim: 8, random: &random)
        #expect(tower.patchGrid == (5, 99))   // ⌊(64 − 16) / 10⌋ + 1, ⌊(1001 − 16) / 10⌋ + 1
        let shapes = Dictionary(uniqueKeysWithValues: tower.namedParameters.map { ($0.name, $0.parameter.value.shape) })
        #expect(shapes["patch_embed.weight"] == [16, 1, 16, 16] && shapes["patch_embed.bias"] == [16])
        #expect(shapes["cls_token"] == [16] && shapes["pos_embed"] == [1 + 5 * 99, 16])
        #expect(shapes["encoder.layer.1.attention.self.query.weight"] == [16, 16] && shapes["encoder.layer.1.output.dense.weight"] == [16, 32])
        #expect(shapes["proj.weight"] == [8, 16] && shapes["encoder.layer.2.output.dense.weight"] == nil)
        #expect(!tower.clsToken.decays && !tower.positionEmbedding.decays && tower.patchEmbed.weight.decays)
        // The default is CPU-sized; the configuration round-trips and is written only for the AST.
        var config = AudioTowerConfig(melBands: 64)
        config.kind = .ast
        config.ast = ASTConfig()
        let decoded = try JSONDecoder().decode(AudioTowerConfig.self, from: JSONEncoder().encode(config))
        #expect(decoded == config && decoded.ast == ASTConfig(width: 128, layers: 4, heads: 4, feedForward: 512))
        var training = TrainingConfig(sampleRate: 16000)
        training.audio = config
        training.windowSeconds = 0.1   // 11 frames: no 16-frame patch
        do {
            try training.checkAudio(source: "test")
            Issue.record("a window shorter than a patch must be refused")
        } catch {
            #expect(error.description.contains("at least 16 mel bands and 16 frames"), "\(error.description)")
        }
        training.windowSeconds = 10
        try training.checkAudio(source: "test")
        #expect(training.windowFrames == 1001)
    }

    /// Central differences through the whole AST (patch embedding, [CLS] and positions, two encoder
    /// layers, the last computing [CLS] alone, projection and L2 normalization), input included.
    @Test func tinyASTEndToEndGradients() {
        var random = RandomSource(seed: 6)
        let tower = ASTTower(ASTConfig(width: 8, layers: 2, heads: 2, feedForward: 16), melBands: 20, frames: 36,
                             embeddingDim: 5, random: &random)
        #expect(tower.patchGrid == (1, 3))
        let x = Tensor.normal(shape: [3, 20, 36], std: 1, using: &random)
        let bad = TrainingGradientCheck.check(input: x, parameters: tower.namedParameters,
                                              forward: { tower.forward($0, training: true) },
                                              backward: { tower.backward($0, inputGradient: true) },
                                              epsilon: 1e-2, tolerance: 3e-2, samples: 40)
        #expect(bad.isEmpty, "\(bad.prefix(5))")
        // Only [CLS] is pooled, but every patch reaches it: each input column under a patch has a gradient.
        tower.zeroGrads()
        _ = tower.forward(x, training: true)
        let dx = tower.backward(Tensor.normal(shape: [3, 5], std: 1, using: &random), inputGradient: true)!
        for t in [0, 15, 20, 35] { #expect(dx.storage[5 * 36 + t] != 0, "frame \(t) gets no gradient") }
    }
}

/// `mulan-train --audio-tower resnet50|ast` (tiny sizes) on `TimbreCorpus`, a resume, and `mulan-embed`.
@Suite("ResNet-50 and AST in mulan-train and mulan-embed", .serialized)
struct PaperTowerTrainingTests {
    @Test(arguments: [["--audio-tower", "resnet50", "--audio-widths", "8,8,16,16"],
                      ["--audio-tower", "ast", "--ast-width", "16", "--ast-layers", "1", "--ast-heads", "2", "--ast-feed-forward", "32"]])
    func trainsResumesAndEmbeds(_ tower: [String]) throws {
        let (h, dataset) = try TimbreCorpus.make(perClass: 2)
        let run = h.dir.file("run")
        let common = ["--dataset", dataset, "--run-dir", run, "--batch-size", "8", "--text-width", "32", "--text-layers", "1",
                      "--text-heads", "2", "--text-feed-forward", "64", "--max-text-length", "16", "--window-seconds", "2",
                      "--mel-bands", "32", "--shuffle-buffer", "40", "--eval-samples", "6", "--threads", "2", "--quiet"] + tower
        let r = try TestProcess.run(TestPaths.executable("mulan-train"), common + ["--steps", "2", "--eval-every", "2", "--checkpoint-every", "2"])
        try #require(r.status == 0, "\(r.stderr)")
        let trained = try SafeTensors.read(run + "/checkpoint-000002.safetensors")
        let config = try #require(trained.metadata["config"])
        #expect(config.contains(#""kind":"\#(tower[1])""#), "\(config.prefix(400))")
        if tower[1] == "ast" {
            #expect(trained.tensors["audio.pos_embed"]?.shape == [1 + 2 * 19, 16], "mel 32 × 201 frames: a 2 × 19 grid")
            #expect(trained.tensors["optimizer.m.audio.cls_token"] != nil)
        } else {
            #expect(trained.tensors["audio.layer4.2.conv3.weight"]?.shape == [16, 4, 1, 1])
        }
        let resumed = try TestProcess.run(TestPaths.executable("mulan-train"), common + ["--steps", "3", "--resume", "--eval-every", "3",
                                                                                         "--checkpoint-every", "3"])
        #expect(resumed.status == 0, "\(resumed.stderr)")

        let wav = h.dir.file("files/square.wav")
        try EmbedSearchEvalTests.generate(wav, classIndex: 1, frequency: 330, seconds: 5)
        let out = h.dir.file("index")
        let embed = try TestProcess.run(TestPaths.executable("mulan-embed"), ["--run-dir", run, "--audio", wav, "--out", out,
                                                                             "--threads", "2", "--quiet"])
        try #require(embed.status == 0, "\(embed.stderr)")
        let index = try EmbeddingIndex(directory: out)
        let embedder = try Embedder(checkpoint: run + "/checkpoint-000003.safetensors", vocabulary: nil)
        let samples = try Embedder.decodeFile(wav, sampleRate: 16000).get()
        let direct = try #require(embedder.embed(clips: [samples]).first ?? nil)
        #expect(direct.windows == 3)
        #expect(zip(direct.embedding, index.embedding(0)).allSatisfy { abs($0 - $1) < 1e-5 }, "mulan-embed and Embedder differ")
    }

    @Test func usageErrors() throws {
        let train = TestPaths.executable("mulan-train")
        let blocks = try TestProcess.run(train, ["--dataset", "x", "--run-dir", "y", "--audio-tower", "resnet50", "--audio-blocks", "2"])
        #expect(blocks.status == 64 && blocks.stderr.contains("--audio-blocks does not apply"), "\(blocks.stderr)")
        let heads = try TestProcess.run(train, ["--dataset", "x", "--run-dir", "y", "--audio-tower", "ast", "--ast-width", "30"])
        #expect(heads.status == 64 && heads.stderr.contains("--ast-width must be a positive multiple of --ast-heads"), "\(heads.stderr)")
        let kind = try TestProcess.run(train, ["--dataset", "x", "--run-dir", "y", "--audio-tower", "resnet18"])
        #expect(kind.status == 64 && kind.stderr.contains("resnet, resnet50, ast, musicnn or vgg"), "\(kind.stderr)")
    }
}
